"""The interpreter's version and word size, as a RESULT line."""

import sys

import nodebench_rig as rig

rig.result("version", version="%d.%d.%d" % sys.implementation.version[:3], bits=64 if sys.maxsize > 2**32 else 32, platform=sys.platform)
