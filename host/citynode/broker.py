"""A throwaway Mosquitto broker on a free loopback port: for tests, the demo and trying things.

    with LocalBroker(tmp_path, tls=True, users={"node7": "secret"}) as broker:
        broker.url        # mqtt://127.0.0.1:PORT
        broker.tls_url    # mqtts://127.0.0.1:PORT2 (with tls=True)
        broker.ca_pem     # the CA that signed the broker's certificate (broker.ca_der: DER)

The broker is the real Mosquitto (Debian package `mosquitto`; `make install`
installs it where it can). Its folder holds the config, the log and, with
tls=True, a CA and a server certificate made here for 127.0.0.1. It keeps
any number of QoS 1 messages for a client that is away (`max_queued_messages`,
0: no limit; Mosquitto's own default of 1000 would drop the rest of a stopped
collector's share without a word: docs/fleet-operations.md). `stop()`
(or leaving the block) ends it; `restart()` stops it and starts it again on
the same ports, keeping its persistence file, as a broker restart in the field.
"""

import datetime
import getpass
import ipaddress
import os
import shutil
import socket
import subprocess
from pathlib import Path

from citynode.errors import CitynodeError
from citynode.local_service import LocalService, free_port

START_TIMEOUT_S = 10.0


def mosquitto_path():
    """The mosquitto executable, or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def make_ca_and_server_cert(folder, host="127.0.0.1"):
    """(ca.pem, server.pem, server.key) in folder: a private CA and a certificate it signed for host.
    The CA also goes to ca.der: MicroPython's TLS reads DER only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "citynode test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder = Path(folder)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.der").write_bytes(ca.public_bytes(serialization.Encoding.DER))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(paths[2], 0o600)
    return paths


class LocalBroker(LocalService):
    name = "mosquitto"
    start_timeout_s = START_TIMEOUT_S

    def __init__(self, folder, tls=False, users=None, persistence=True, max_queued_messages=0):
        super().__init__(folder)
        self.tls = tls
        self.users = dict(users or {})
        self.persistence = persistence
        self.max_queued_messages = max_queued_messages
        self.tls_port = None
        self.ca_pem = None
        self.ca_der = None
        self.log_path = self.folder / "mosquitto.log"

    @property
    def url(self):
        return "mqtt://127.0.0.1:%d" % self.port

    @property
    def tls_url(self):
        return "mqtts://127.0.0.1:%d" % self.tls_port

    def _write_config(self):
        auth = "allow_anonymous true\n"
        if self.users:
            passwd = self.folder / "passwd"
            passwd.write_text("".join("%s:%s\n" % kv for kv in self.users.items()))
            os.chmod(passwd, 0o600)
            subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)
            auth = "allow_anonymous false\npassword_file %s\n" % passwd
        lines = [
            # as root, mosquitto would switch to user "mosquitto", who cannot read this folder
            "user %s" % getpass.getuser(),
            "per_listener_settings false",
            "persistence %s" % ("true" if self.persistence else "false"),
            "persistence_location %s/" % self.folder,
            "max_queued_messages %d" % self.max_queued_messages,
            "log_dest file %s" % self.log_path,
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "listener %d 127.0.0.1" % self.port,
        ]
        if self.tls:
            ca, cert, key = make_ca_and_server_cert(self.folder)
            self.ca_pem = ca
            self.ca_der = ca.with_suffix(".der")
            lines += ["listener %d 127.0.0.1" % self.tls_port, "cafile %s" % ca, "certfile %s" % cert,
                      "keyfile %s" % key]
        conf = self.folder / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n" + auth)
        return conf

    def start(self):
        exe = mosquitto_path()
        if exe is None:
            raise CitynodeError("mosquitto not found: install it (Debian: apt-get install mosquitto mosquitto-clients)")
        if self.port is None:
            self.port = free_port()
            self.tls_port = free_port() if self.tls else None
            self.conf = self._write_config()
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ports = [p for p in (self.port, self.tls_port) if p]
        self._wait_ready(lambda: all(_accepts(p) for p in ports), "listen on %s" % ports)
        return self

    def _exit_reason(self):
        return self.proc.stderr.read().decode(errors="replace").strip() or self._log_tail()


def _accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
