"""The broker's CA certificate for a node that talks mqtts://: read on the host (PEM or DER),
checked to be an X.509 certificate, and written to the node as DER, the only form
MicroPython's TLS reads (`tls.SSLContext.load_verify_locations(cadata)`).

    der = ca_cert.load_der("broker-ca.pem")     # UsageError in one line: missing, not a certificate
    ca_cert.upload(port, der, "ca.der")         # through the raw REPL, SHA-256 read back

The node reads the file named by its `mqtt_ca` config key ("ca.der" by default)
when its uplink starts, so the app is restarted after the upload.
"""

import base64
import binascii
import re

from citynode.errors import UsageError

DEFAULT_NAME = "ca.der"
MAX_BYTES = 16 * 1024  # a CA certificate is 1-2 kB; anything near this is not one
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)


def load_der(path):
    """The certificate in file `path` as DER bytes; UsageError when it is missing or no certificate."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError("CA certificate %s: %s" % (path, exc.strerror or exc)) from None
    if len(data) > MAX_BYTES:
        raise UsageError("CA certificate %s: over %d kB, not a certificate" % (path, MAX_BYTES // 1024))
    return to_der(data, path)


def to_der(data, name="certificate"):
    """DER bytes of a PEM or DER certificate (the first one of a PEM bundle); UsageError otherwise."""
    found = _PEM.search(data)
    if found:
        try:
            data = base64.b64decode(b"".join(found.group(1).split()), validate=True)
        except (binascii.Error, ValueError):
            raise UsageError("CA certificate %s: its PEM text is not base64" % name) from None
    elif b"-----BEGIN" in data:
        raise UsageError("CA certificate %s: PEM, but not a CERTIFICATE (a key or a request?)" % name)
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise UsageError("CA certificate %s: not a certificate (neither PEM nor DER X.509)" % name) from None
    return cert.public_bytes(_der_encoding())


def _der_encoding():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def upload(port, der, name=DEFAULT_NAME, baudrate=115200):
    """Write the DER certificate to the node as `name` (raw REPL; the app restarts after)."""
    from citynode import node_files, serial_link

    with serial_link.raw_repl(port, baudrate) as transport:
        node_files.put_checked(transport, name, der, "CA upload")
