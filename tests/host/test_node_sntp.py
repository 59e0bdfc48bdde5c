"""citynode_fw.sntp under the MicroPython Unix port, over a real UDP socket, against an
SNTP responder written here from RFC 4330."""

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from citynode.paths import firmware_root, protocol_root

MICROPYTHON = Path(sys.executable).parent / "micropython"
NTP_TO_UNIX_S = 2208988800

PROGRAM = """
import socket, time
from citynode_fw.sntp import Sntp
from citynode_fw.nodetime import MASK
c = Sntp(socket.getaddrinfo("127.0.0.1", %d)[0][-1])
t0 = time.ticks_ms()
for _ in range(2000):
    now = time.ticks_diff(time.ticks_ms(), t0) & MASK
    utc = c.poll(now)
    if utc is not None:
        print("UTC", utc, "answers", c.answers, "rejected", c.rejected)
        break
    time.sleep_ms(2)
else:
    print("NONE", c.error)
"""


def _responder(sock, stop, offset_s):
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(100)
        except socket.timeout:
            continue
        if len(data) < 48 or data[0] & 7 != 3:
            continue
        now = time.time() + offset_s
        answer = bytearray(48)
        answer[0] = (4 << 3) | 4
        answer[1] = 1
        answer[24:32] = data[40:48]
        secs = int(now) + NTP_TO_UNIX_S
        struct.pack_into(">II", answer, 40, secs, int((now % 1) * 2**32))
        sock.sendto(bytes(answer), addr)


def test_the_node_takes_utc_from_a_real_udp_answer():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()
    offset_s = 86400 * 3  # the server's clock differs from this PC's, so the value is the server's
    thread = threading.Thread(target=_responder, args=(sock, stop, offset_s), daemon=True)
    thread.start()
    try:
        env = dict(os.environ, MICROPYPATH="%s:%s" % (firmware_root(), protocol_root()))
        before = time.time()
        out = subprocess.run([str(MICROPYTHON), "-c", PROGRAM % sock.getsockname()[1]], env=env,
                             capture_output=True, text=True, timeout=30)
        after = time.time()
    finally:
        stop.set()
        thread.join(2)
        sock.close()
    assert out.returncode == 0, out.stderr
    words = out.stdout.split()
    assert words[0] == "UTC", out.stdout
    utc_s = int(words[1]) / 1000.0
    assert before + offset_s - 1 <= utc_s <= after + offset_s + 1
