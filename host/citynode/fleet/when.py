"""Times given on the command line: `-24h`, `-30m`, `-7d`, or a UTC date or time.

    parse("-24h", now_us)               # 24 hours before now
    parse("2026-12-01", now_us)         # midnight UTC
    parse("2026-12-01T06:30Z", now_us)  # a zone other than UTC is converted

All results are µs since 1970 (the stores' `time` and `received`).
"""

import datetime
import re
import time

from citynode.errors import UsageError

US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 7 * 86_400_000_000}
_AGO = re.compile(r"^-(\d+(?:\.\d+)?)([smhdw])$")


def now_us():
    return time.time_ns() // 1000


def parse(text, now):
    """µs since 1970 of `text` (see the module's doc); UsageError naming it if it is neither."""
    ago = _AGO.match(text.strip())
    if ago:
        return now - round(float(ago.group(1)) * US[ago.group(2)])
    try:
        when = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError("%r is not a time: give -24h, -30m, -7d or a UTC time like 2026-12-01T06:00Z" % text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return round(when.timestamp() * 1_000_000)


def iso(us):
    """`2026-12-01T06:00:00Z` for µs since 1970 (None stays None)."""
    if us is None:
        return None
    return datetime.datetime.fromtimestamp(us / 1e6, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def span_words(seconds):
    """`45 s`, `12 min`, `3 h 5 min`, `4 d 2 h`: a duration for people."""
    seconds = int(round(seconds))
    if seconds < 120:
        return "%d s" % seconds
    minutes = seconds // 60
    if minutes < 120:
        return "%d min" % minutes
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return "%d h %d min" % (hours, minutes) if minutes else "%d h" % hours
    days, hours = divmod(hours, 24)
    return "%d d %d h" % (days, hours) if hours else "%d d" % days
