"""`citynode record`, `monitor` and `plot` against a mocked serial link.

The "node" here is a pseudo-terminal pair made by the test: the command opens
the slave's path exactly as it opens /dev/ttyUSB0, and a thread writes frames
built with citynode.traffic (the protocol package's pack/build/to_wire) into
the master. Every wait is bounded.
"""

import datetime
import io
import math
import os
import pty
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from citynode import cli, monitor_view, plotting
from citynode.commands import monitor as monitor_command
from citynode.demo import gravity
from citynode.traffic import TrafficBuilder
from citynode_protocol import armour, messages
from citynode_protocol.decoder import Decoder, decode_all

HOST = Path(__file__).resolve().parents[2] / "host"
PROTOCOL = Path(__file__).resolve().parents[2] / "protocol"

# The world the fake node measures.
ODR_HZ = 100.0
BLOCK = 25  # samples per accel block: 4 blocks a node second
FREQ_HZ = 7.3
AMP_G = 0.02
PITCH_DEG, ROLL_DEG = 1.5, -0.8
TEMP_C, RH_PCT = 14.2, 71.5
RANGE_G = 2


def node_stream(node_id=1, freq_hz=FREQ_HZ, climate=True, junk_every=0, seed=1, node=None):
    """Endless wire chunks of one node: an accel block every 0.25 s of node time,
    climate every second, features and status every 2 s, and (junk_every) REPL text.

    node: the TrafficBuilder to build with (its `now_ms` follows the stream)."""
    rng = np.random.default_rng(seed)
    node = node or TrafficBuilder(node_id)
    g = np.array(gravity(PITCH_DEG, ROLL_DEG))
    k = 32768.0 / RANGE_G
    i = 0
    while True:
        t_ms = 1000 + i * 250
        node.now_ms = t_ms + 250
        out = bytearray()
        if climate and i % 4 == 0:
            out += node.climate(t_ms, TEMP_C, RH_PCT)
        t = (i * BLOCK + np.arange(BLOCK)) / ODR_HZ
        a = np.tile(g, (BLOCK, 1)) + rng.normal(0, 0.0005, (BLOCK, 3))
        a[:, 2] += AMP_G * np.sin(2 * np.pi * freq_hz * t)
        out += node.accel_block(t_ms + 250, np.rint(a * k).astype(int), odr_hz=ODR_HZ, range_g=RANGE_G,
                                flags=messages.ACCEL_CALIBRATED, age_ms=250)
        if i % 8 == 7:
            out += node.features(t_ms + 250, age_ms=2000, window_s=2.0, n_samples=200, dominant_freq_z_hz=freq_hz,
                                 rms_z_g=AMP_G / math.sqrt(2), pitch_deg=PITCH_DEG, roll_deg=ROLL_DEG)
            fitted = messages.SENSOR_CLIMATE | messages.SENSOR_ACCEL
            out += node.status(t_ms + 250, uptime_s=t_ms // 1000, free_heap=50000, app_minor=1, sensors_fitted=fitted,
                               sensors_ok=fitted if climate else messages.SENSOR_ACCEL,
                               flags=messages.STATUS_STREAMING)
        if junk_every and i % junk_every == junk_every - 1:
            out += b"MPY: soft reboot\r\n"
        yield bytes(out)
        i += 1


def app_node(hold=0, **options):
    """A PtyNode streaming node_stream(**options) that answers set_time, as the app does;
    hold: chunks it had buffered, sent before its first answer."""
    node = TrafficBuilder(options.get("node_id", 1))
    node.now_ms = 0  # until the stream's first chunk: a command may come first
    return PtyNode(node_stream(node=node, **options), node=node, hold=hold)


def capture_bytes(seconds, **options):
    """A finite capture of `seconds` of node time."""
    stream = node_stream(**options)
    return b"".join(next(stream) for _ in range(int(seconds * 4)))


class PtyNode:
    """A pseudo-terminal playing a node: commands open `port`; a thread writes `chunks`.

    With `node` (the chunks' TrafficBuilder) it also answers `set_time` and
    `status` as the app does, in the same frame sequence; without, it answers
    nothing. `sent` holds every byte that went into the terminal, in order (a
    full terminal buffer drops the rest of a chunk, as a node's UART would)."""

    def __init__(self, chunks, interval=0.01, node=None, hold=0):
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self._slave)
        self.sent = bytearray()
        self.commands = []
        self._node = node
        self._hold = hold  # chunks kept back until the first command: a node whose port nobody read
        self.held = 0  # bytes of them
        self._lines = b""
        self._chunks = iter(chunks)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _answers(self):
        try:
            self._lines += os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return b""
        out = bytearray()
        while b"\n" in self._lines:
            line, self._lines = self._lines.split(b"\n", 1)
            try:
                rid, cmd, args = armour.decode_command(line)
            except armour.ArmourError:
                continue
            self.commands.append(cmd)
            if self._node is None:
                continue
            t = self._node.now_ms
            if cmd == "set_time":
                out += self._node.time_anchor(t, args["utc_ms"])
            out += self._node.reply(t, rid, body={})
        return bytes(out)

    def _run(self):
        if self._hold:
            held = b"".join(next(self._chunks) for _ in range(self._hold))
            self.held = len(held)
            while not self.commands and not self._stop.wait(0.01):
                answers = self._answers()
            if not self._write_all(held + answers):
                return
        while not self._stop.is_set():
            answers = self._answers()  # built before the next chunk: the sequence stays in order
            chunk = answers + next(self._chunks)
            try:
                n = os.write(self.master, chunk)
            except BlockingIOError:
                n = 0
            except OSError:
                return
            self.sent += chunk[:n]
            self._stop.wait(self._interval)

    def _write_all(self, data):
        view = memoryview(data)
        for _ in range(1000):
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                n = 0
            except OSError:
                return False
            self.sent += view[:n]
            view = view[n:]
            if not view:
                return True
            self._stop.wait(0.005)
        return False

    def hang_up(self):
        """The node goes away (USB unplugged): reads on the port fail."""
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        self.master = None

    def close(self):
        self._stop.set()
        self._thread.join(2)
        for fd in (self.master, self._slave):
            if fd is not None:
                os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_cli(capsys, *argv):
    """cli.main in this process: (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("citynode: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], err


# -- record --------------------------------------------------------------------------


def test_record_keeps_the_bytes_exactly_and_summarises(tmp_path, capsys):
    out = tmp_path / "cap.bin"
    with app_node(junk_every=5) as node:
        code, stdout, err = run_cli(capsys, "record", "--port", node.port, "--duration", "1.0", "-o", str(out))
        time.sleep(0.05)
    assert code == 0, err
    data = out.read_bytes()
    assert len(data) > 2000
    # Byte for byte what went into the port, REPL junk and all: a run of what was sent.
    assert data in bytes(node.sent)
    assert b"MPY: soft reboot" in data
    assert not (tmp_path / "cap.bin.part").exists()
    msgs, stats = decode_all(data)
    kinds = {m.name for m in msgs}
    assert {"accel", "climate"} <= kinds
    line = stdout.strip().splitlines()[-1]
    assert line.startswith("recorded 1.0 s from %s into %s: %d bytes, %d frames (" % (node.port, out, len(data), stats.frames))
    assert "accel %d" % sum(m.name == "accel" for m in msgs) in line
    assert "0 lost" in line and "0 CRC errors" in line


def test_record_starts_from_what_the_node_sends_now(tmp_path, capsys):
    """Data the node buffered while nobody read comes first on the link; the capture
    starts at the TIME frame the node sent on taking the host's clock."""
    import json

    out = tmp_path / "cap.bin"
    before = time.time()
    with app_node(hold=40) as node:  # 10 s of node time, waiting in the buffers
        code, stdout, err = run_cli(capsys, "record", "--port", node.port, "--duration", "0.5", "-o", str(out),
                                    "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert node.commands == ["set_time", "status"]
    assert summary["older_bytes_dropped"] >= node.held > 0 and summary["node_clock_set"] is True
    assert summary["bytes"] == out.stat().st_size and summary["lost"] == 0 and summary["frames"] > 0
    started = datetime.datetime.fromisoformat(summary["started_utc"].replace("Z", "+00:00")).timestamp()
    ended = datetime.datetime.fromisoformat(summary["ended_utc"].replace("Z", "+00:00")).timestamp()
    assert before <= started <= ended <= time.time()
    msgs, stats = decode_all(out.read_bytes())
    assert msgs[0].name == "time" and abs(msgs[0]["utc_ms"] / 1000 - started) < 60
    assert stats.frames == summary["frames"] and stats.nodes[1].lost == 0
    oldest = min(m.time_ms for m in msgs if m.name == "accel")
    assert oldest > 1000 + 40 * 250  # nothing from the held 10 s


def test_record_of_a_node_that_does_not_answer_keeps_everything_and_says_so(tmp_path):
    from citynode.commands.record import record

    out = tmp_path / "cap.bin"
    with PtyNode(node_stream()) as node:  # frames, but no app answering commands
        rec = record(node.port, str(out), duration=0.3, answer_timeout=0.3)
    assert "did not answer set_time" in rec.warning and "older" in rec.warning
    assert rec.older_bytes == 0 and not rec.clock_set
    data = out.read_bytes()
    assert rec.bytes == len(data) > 0 and data in bytes(node.sent)


def test_record_bad_port_is_one_line_and_writes_nothing(tmp_path, capsys):
    code, _out, err = run_cli(capsys, "record", "--port", "/dev/ttyNOPE9", "--duration", "1", "-o", str(tmp_path / "c.bin"))
    assert_one_line_error(code, err, "no such port /dev/ttyNOPE9")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("port, words", [("/dev/null", "is not a serial port"), ("folder", "is a folder"),
                                         ("file", "is a file")])
def test_record_from_something_that_is_no_serial_port_is_one_line(tmp_path, capsys, port, words):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_bytes(b"x")
    port = port if port.startswith("/") else str(tmp_path / port)
    code, _out, err = run_cli(capsys, "record", "--port", port, "--duration", "1", "-o", str(tmp_path / "c.bin"))
    assert_one_line_error(code, err, words, "`citynode ports` lists ports")
    assert not (tmp_path / "c.bin").exists() and not (tmp_path / "c.bin.part").exists()


def test_record_output_folder_missing_is_one_line_and_writes_nothing(tmp_path, capsys):
    with app_node() as node:
        code, _out, err = run_cli(capsys, "record", "--port", node.port, "--duration", "1",
                                  "-o", str(tmp_path / "nope" / "c.bin"))
    assert_one_line_error(code, err, "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_record_output_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _out, err = run_cli(capsys, "record", "--port", "loop://", "--duration", "1",
                              "-o", str(tmp_path / "file" / "c.bin"))
    assert_one_line_error(code, err, "does not exist")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_record_output_folder_read_only_is_one_line(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code, _out, err = run_cli(capsys, "record", "--port", "loop://", "--duration", "1", "-o", str(folder / "c.bin"))
    finally:
        folder.chmod(0o700)
    assert_one_line_error(code, err, "not writable")
    assert list(folder.iterdir()) == []


def test_record_without_port_says_how_to_give_one(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CITYNODE_PORT", raising=False)
    code, _out, err = run_cli(capsys, "record", "--duration", "1", "-o", str(tmp_path / "c.bin"))
    assert_one_line_error(code, err, "CITYNODE_PORT")


def test_record_port_from_environment(tmp_path, capsys, monkeypatch):
    with app_node() as node:
        monkeypatch.setenv("CITYNODE_PORT", node.port)
        code, stdout, err = run_cli(capsys, "record", "--duration", "0.3", "-o", str(tmp_path / "c.bin"))
    assert code == 0, err
    assert node.port in stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_record_finishes_the_capture(tmp_path, sig):
    """Ctrl-C (or SIGTERM) mid-recording: the capture holds what was received, complete."""
    out = tmp_path / "cap.bin"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HOST), str(PROTOCOL)]))
    with app_node() as node:
        proc = subprocess.Popen(
            [sys.executable, "-m", "citynode", "record", "--port", node.port, "--duration", "30", "-o", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            part = tmp_path / "cap.bin.part"
            deadline = time.monotonic() + 15
            while not (part.exists() and part.stat().st_size > 1000):
                assert time.monotonic() < deadline, "record wrote nothing within 15 s"
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.05)
            proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, stderr
    assert b"Traceback" not in stderr
    assert stdout.decode().startswith("recording interrupted after ")
    assert not part.exists()
    data = out.read_bytes()
    assert len(data) > 1000 and data in bytes(node.sent)
    msgs, _stats = decode_all(data)
    assert sum(m.name == "accel" for m in msgs) > 2


def test_record_link_lost_keeps_what_came(tmp_path, capsys):
    out = tmp_path / "cap.bin"
    with app_node() as node:
        timer = threading.Timer(0.5, node.hang_up)
        timer.start()
        try:
            code, _stdout, err = run_cli(capsys, "record", "--port", node.port, "--duration", "10", "-o", str(out))
        finally:
            timer.join()
    assert_one_line_error(code, err, "bytes received before are in %s" % out)
    assert out.read_bytes() in bytes(node.sent) and out.stat().st_size > 0
    assert not (tmp_path / "cap.bin.part").exists()


def test_record_progress_on_a_terminal_renders(tmp_path):
    """The rich progress panel, as a terminal would show it."""
    from citynode.commands.record import LiveProgress, record

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with app_node() as node:
        progress = LiveProgress(console, node.port, str(tmp_path / "c.bin"), 0.6)
        rec = record(node.port, str(tmp_path / "c.bin"), duration=0.6, progress=progress)
    text = console.file.getvalue()
    assert "recording %s" % node.port in text and "link: " in text and "frames: accel" in text
    assert rec.bytes == (tmp_path / "c.bin").stat().st_size > 0


# -- monitor -------------------------------------------------------------------------


def test_monitor_prints_a_line_per_message_and_stops_by_itself(capsys):
    with app_node(junk_every=7) as node:
        start = time.monotonic()
        code, stdout, err = run_cli(capsys, "monitor", "--port", node.port, "--duration", "1.0")
        took = time.monotonic() - start
    assert code == 0, err
    assert took < 3.0
    lines = stdout.strip().splitlines()
    assert lines[-1].startswith("link: ") and " 0 lost, 0 CRC errors" in lines[-1]
    kinds = {line.split()[0] for line in lines[:-1]}
    assert {"accel", "climate", "features", "status"} <= kinds
    climate = next(line for line in lines if line.startswith("climate "))
    assert "node=1" in climate and "temperature_c=14.2" in climate and "relative_humidity_pct=71.5" in climate
    features = next(line for line in lines if line.startswith("features "))
    assert "dominant_freq_z_hz=7.3" in features and "pitch_deg=1.5" in features and "roll_deg=-0.8" in features
    accel = next(line for line in lines if line.startswith("accel "))
    assert "odr_hz=100" in accel and "n_samples=25" in accel and "age_ms=250" in accel


def test_monitor_starts_from_what_the_node_sends_now(capsys):
    with app_node(hold=40) as node:  # 10 s of node time, waiting in the buffers
        code, stdout, err = run_cli(capsys, "monitor", "--port", node.port, "--duration", "0.5")
    assert code == 0 and err == "", err
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("time node=1 ")  # the node took the host's clock
    accel_t = [float(line.split(" t=")[1].split()[0]) for line in lines if line.startswith("accel ")]
    assert accel_t and min(accel_t) > (1000 + 40 * 250) / 1000.0  # nothing from the held 10 s


def test_monitor_live_view_on_a_terminal():
    console = Console(file=io.StringIO(), force_terminal=True, width=110, height=40)
    with app_node(climate=False) as node:
        stats = monitor_command.monitor(node.port, duration=1.0, console=console)
    text = console.file.getvalue()
    assert stats.frames > 10
    assert "acceleration of node 1" in text
    assert any(0x2800 < ord(ch) <= 0x28FF for ch in text)  # the braille plot
    assert "NOT OK: climate" in text  # status says the climate sensor is missing
    assert "link: " in text


class QuitAfter:
    """Keys for monitor(): `q` after n looks."""

    def __init__(self, n):
        self.n = n

    def pressed(self):
        self.n -= 1
        return self.n < 0


def test_monitor_on_a_silent_node_says_how_to_quit_and_q_quits():
    console = Console(file=io.StringIO(), force_terminal=True, width=160, height=40)
    with PtyNode(iter(lambda: b"", None)) as node:  # nothing at all, no answers
        stats = monitor_command.monitor(node.port, console=console, keys=QuitAfter(20), answer_timeout=0.2)
    text = console.file.getvalue()
    assert stats.frames == 0
    assert "q or Ctrl-C quits" in text
    assert "no frames yet: is the node running the citynode app?" in text
    assert "did not answer set_time" in text


def test_quit_key_reads_q_from_a_terminal_and_restores_it():
    import termios

    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        with monitor_command.QuitKey(slave) as keys:
            assert not keys.pressed()
            os.write(master, b"x")
            assert not keys.pressed()
            os.write(master, b"q")
            assert any(keys.pressed() or time.sleep(0.01) for _ in range(200))  # once the pty has passed it on
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_monitor_bad_port_is_one_line(capsys):
    code, _out, err = run_cli(capsys, "monitor", "--port", "/dev/ttyNOPE9", "--duration", "1")
    assert_one_line_error(code, err, "no such port")


def test_render_shows_latest_values_link_stats_and_plot():
    data = capture_bytes(6)
    dec = Decoder()
    state = monitor_view.MonitorState(window_s=2.0)
    for m in dec.feed(data):
        state.add(m)
    console = Console(record=True, width=100, file=io.StringIO())
    console.print(monitor_view.render(state, dec.stats, "test", width=100))
    text = console.export_text()
    assert "14.20 °C   71.50 %RH" in text
    assert "pitch +1.50°  roll -0.80°" in text
    assert "z 14.14 mg 7.30 Hz" in text
    assert "link: %d frames, 0 lost, 0 CRC errors" % dec.stats.frames in text
    assert "last 2 s at 100 Hz" in text
    # the plot keeps only the window
    assert len(state.nodes[1].accel_window(2.0)) == 200


def test_braille_plot_draws_a_ramp_corner_to_corner():
    lines = monitor_view.braille_plot(np.arange(100.0), width=10, height=2)
    assert len(lines) == 2 and all(len(line) == 10 for line in lines)
    assert lines[1][0] != "\u2800" and lines[0][-1] != "\u2800"  # bottom left, top right
    assert lines[0][0] == "\u2800" and lines[1][-1] == "\u2800"
    flat = monitor_view.braille_plot(np.zeros(50), width=5, height=1)
    assert len(set(flat[0])) == 1 and flat[0][0] != "\u2800"


def test_message_line_for_every_kind():
    node = TrafficBuilder(3)
    wire = (node.log(10, 'boot "ok"') + node.time_anchor(20, "2026-11-26T06:00:00Z")
            + node.reply(30, 7, body={"site": "deck"}))
    lines = [monitor_view.message_line(m) for m in decode_all(wire)[0]]
    assert lines == [
        'log node=3 seq=0 t=0.010 level=info text="boot \\"ok\\""',
        "time node=3 seq=1 t=0.020 utc_ms=1795672800000 utc=2026-11-26T06:00:00.000000Z",
        'reply node=3 seq=2 t=0.030 request_id=7 code=0 body={"site":"deck"}',
    ]


# -- plot ----------------------------------------------------------------------------


def test_analysis_finds_frequency_tilt_and_climate():
    msgs, _stats = decode_all(capture_bytes(12))
    s = plotting.series(msgs, 1)
    assert s.odr_hz == ODR_HZ and len(s.accel_t) == 12 * 100 and len(s.runs) == 1
    spec = plotting.accel_spectrum(s)
    axis, f = plotting.strongest_axis(spec)
    assert axis == "z" and abs(f - FREQ_HZ) < 0.03
    assert spec["peaks"]["x"] is None and spec["peaks"]["y"] is None  # noise has no dominant frequency
    pitch, roll = plotting.tilt_deg(s.accel_g)
    assert abs(pitch - PITCH_DEG) < 0.02 and abs(roll - ROLL_DEG) < 0.02
    assert abs(s.temperature_c.mean() - TEMP_C) < 0.02 and s.humidity_pct.mean() == RH_PCT
    np.testing.assert_allclose(np.diff(s.accel_t), 0.01, atol=1e-9)


def test_welch_power_matches_the_signal():
    fs = 200.0
    t = np.arange(4000) / fs
    x = 0.3 * np.sin(2 * np.pi * 12.34 * t)
    freqs, psd = plotting.welch(x, fs)
    power = np.sum(psd) * (freqs[1] - freqs[0])
    assert abs(power - 0.3**2 / 2) < 0.01 * 0.3**2 / 2  # Parseval, within 1 %
    assert abs(plotting.dominant_peak(freqs, psd) - 12.34) < 0.01


def test_series_unwraps_node_time_and_splits_runs_at_gaps():
    node = TrafficBuilder(1)
    block = np.zeros((10, 3), dtype=int)
    wire = node.accel_block(0xFFFFFFC0, block, odr_hz=100.0)  # 64 ms before the u32 wrap
    wire += node.accel_block(0x00000024, block, odr_hz=100.0)  # 100 ms later, after it
    wire += node.accel_block(0x00000088 + 30, block, odr_hz=100.0, first_index=30, age_ms=30)  # 10 samples lost
    wire += node.features(0x00000088 + 30, age_ms=300, window_s=0.3)  # the window started 300 ms before
    node.restart()
    wire += node.accel_block(0x00000010, block, odr_hz=100.0)  # the node restarted
    s = plotting.series(decode_all(wire)[0], 1)
    assert s.features[0][0] == pytest.approx(0.2 + 0.03 - 0.3)
    assert s.accel_t[10] == pytest.approx(0.1) and s.accel_t[20] == pytest.approx(0.2)
    assert s.restarts == 1 and s.accel_t[30] == pytest.approx(0.23)  # carries on from the last frame
    assert [r[:2] for r in s.runs] == [(0, 20), (20, 30), (30, 40)]


def test_plot_writes_a_readable_png(tmp_path, capsys):
    cap = tmp_path / "cap.bin"
    cap.write_bytes(capture_bytes(10))
    png = tmp_path / "plot.png"
    code, stdout, err = run_cli(capsys, "plot", str(cap), "-o", str(png))
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50000
    assert stdout.startswith("wrote %s: node 1, 10 climate readings (mean 14.20 °C, 71.50 %%RH)" % png)
    assert "dominant 7.30 Hz (z)" in stdout


def test_plot_capture_without_climate_or_accel_still_draws(tmp_path, capsys):
    cap = tmp_path / "cap.bin"
    cap.write_bytes(TrafficBuilder(2).status(1000, uptime_s=1))
    code, stdout, err = run_cli(capsys, "plot", str(cap), "-o", str(tmp_path / "p.png"))
    assert code == 0, err
    assert (tmp_path / "p.png").stat().st_size > 0


@pytest.mark.parametrize("content, words", [
    (None, "No such file"),
    (b"", "no citynode frames in 0 bytes"),
    (bytes(range(256)) * 8, "no citynode frames in 2048 bytes"),
])
def test_plot_bad_capture_is_one_line(tmp_path, capsys, content, words):
    cap = tmp_path / "cap.bin"
    if content is not None:
        cap.write_bytes(content)
    code, _out, err = run_cli(capsys, "plot", str(cap), "-o", str(tmp_path / "p.png"))
    assert_one_line_error(code, err, words)
    assert not (tmp_path / "p.png").exists()


def test_plot_unknown_node_and_bad_output_are_one_line(tmp_path, capsys):
    cap = tmp_path / "cap.bin"
    cap.write_bytes(capture_bytes(1))
    code, _out, err = run_cli(capsys, "plot", str(cap), "--node", "9", "-o", str(tmp_path / "p.png"))
    assert_one_line_error(code, err, "no frames of node 9", "node 1")
    code, _out, err = run_cli(capsys, "plot", str(cap), "-o", str(tmp_path / "no" / "p.png"))
    assert_one_line_error(code, err, "does not exist")
