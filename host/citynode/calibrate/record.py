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


# The largest record a flow can write apart from its site words: every part, the longest method, numbers
# with their most digits. A site name not given comes from the node's config (at most 64 characters).
_LONGEST = {"id": 4294967295, "date": "2026-11-26",
            "method": "climate: temperature least-squares line (99999 points); humidity least-squares line "
                      "(99999 points)",
            "climate": {"t_gain": 1.012345, "t_offset_c": -0.1234, "rh_gain": 0.912345, "rh_offset_pct": -12.7123},
            "accel": {"bias_g": [-0.123456] * 3, "scale": [1.012345] * 3, "rotation": [[-0.1234567] * 3] * 3,
                      "tilt_zero_deg": [-12.345, -12.345]}}
NODE_SITE_MAX = 64  # config `site` (citynode_fw/config.py)


def check_fits(opts):
    """UsageError, before anything is measured, when --site/--installer/--note could make the record too long."""
    site = {"name": opts.site if opts.site is not None else "s" * NODE_SITE_MAX}
    if opts.installer:
        site["installer"] = opts.installer
    if opts.note:
        site["note"] = opts.note
    n = canonical_length(dict(_LONGEST, site=site))
    if n > MAX_DOCUMENT:
        raise UsageError("the calibration record could be %d bytes, the node keeps at most %d: shorten --site, "
                         "--installer or --note (a long note belongs in the report's folder)" % (n, MAX_DOCUMENT))


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
