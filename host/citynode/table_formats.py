"""The names of `citynode decode`'s table formats and time formats.

Kept apart from citynode.tables (numpy, pyarrow) so that `citynode decode
--help` can list them without importing either.
"""

FORMATS = ("csv", "jsonl", "parquet")
EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}
# How CSV and JSON Lines write a UTC time; Parquet always has a timestamp type.
#   iso       2026-11-26T06:12:24.125000Z (ISO 8601, µs, Z)
#   epoch-us  1795673544125000 (µs since 1970-01-01T00:00:00Z)
TIME_FORMATS = ("iso", "epoch-us")
