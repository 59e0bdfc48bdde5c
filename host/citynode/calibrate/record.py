"""The calibration document a flow writes: its id, date, method and site, its size limit, and the limits check."""

import json
import time
from dataclasses import dataclass

from citynode.errors import CitynodeError, UsageError


class Rejected(CitynodeError):
    """The result is outside the documented limits (and not forced)."""


@dataclass
class RecordOptions:
    """What every writing flow takes for its calibration record, and whether it may pass the limits."""

    force: bool = False
    site: str = None
    installer: str = None
    note: str = None


def utc_date():
    return time.strftime("%Y-%m-%d", time.gmtime())


def utc_stamp():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def record_site(session, opts):
    """The record's site: --site (else the node's own), with --installer and --note when given."""
    site = {"name": opts.site if opts.site is not None else session.site}
    if opts.installer:
        site["installer"] = opts.installer
    if opts.note:
        site["note"] = opts.note
    return site


MAX_DOCUMENT = 1024  # the node's limit on the canonical text (citynode_fw/calibration.py MAX_DOC)


def canonical_length(doc):
    """Length of the node's canonical JSON (keys sorted, no spaces; json.dumps of each scalar)."""
    return len(json.dumps(doc, sort_keys=True, separators=(",", ":")))


def new_document(session, current, method, site, climate_part=None, accel_part=None):
    """A full calibration document: the parts not calibrated now are kept from current."""
    doc = {"id": session.new_id(current), "date": utc_date(), "method": method, "site": site}
    cur = current or {}
    c = climate_part if climate_part is not None else cur.get("climate")
    a = accel_part if accel_part is not None else cur.get("accel")
    if c is not None:
        doc["climate"] = c
    if a is not None:
        doc["accel"] = a
    n = canonical_length(doc)
    if n > MAX_DOCUMENT:
        raise UsageError("the calibration record would be %d bytes, the node keeps at most %d: shorten --site, "
                         "--installer or --note" % (n, MAX_DOCUMENT))
    return doc


def refuse_or_warn(violations, force, ui, what):
    if not violations:
        return []
    text = "; ".join(str(v) for v in violations)
    if not force:
        raise Rejected("%s rejected: %s (use --force to store it anyway)" % (what, text))
    ui.say("FORCED past the limits: " + text)
    return [str(v) for v in violations]
