"""The checks of the uplink's config values (broker URL, node key): config.py loads this
module for a call and drops it again, so its code is not on the heap of a node at work."""


def check(key, kind, value, allowed):
    if not isinstance(value, str) or len(value) > allowed:
        raise ValueError("%s must be text of at most %d characters" % (key, allowed))
    if value and kind == "url" and broker(value) is None:
        raise ValueError("%s must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT], not %r" % (key, value))
    if value and kind == "key" and (len(value) != 64 or not _hex(value)):
        raise ValueError("%s must be 64 hex digits (the host's keystore makes it)" % key)
    return value


def broker(url):
    """(tls, host, port) of mqtt://host[:port] or mqtts://host[:port], else None."""
    for scheme, tls, port in (("mqtt://", False, 1883), ("mqtts://", True, 8883)):
        if url.startswith(scheme):
            rest = url[len(scheme) :]
            host, _, text = rest.partition(":")
            if not host or "/" in rest or "@" in rest:
                return None
            if text:
                if not text.isdigit() or not 0 < int(text) < 65536:
                    return None
                port = int(text)
            return tls, host, port
    return None


def _hex(text):
    for c in text:
        if c not in "0123456789abcdefABCDEF":
            return False
    return True
