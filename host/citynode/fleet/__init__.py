"""Fleet collection: frames from the broker, verified, into a store that analysts query.

One path, one module per step (docs/fleet.md has the whole picture):

    broker ──$share/GROUP/<prefix>/+/frames──▶ collector.py ─▶ verifier (MAC, replay)
           ─▶ citynode.decode.BulkDecoder ─▶ rows.py (store rows: boot, seq, UTC,
           calibration id, firmware) ─▶ qc.py (climate flags) ─▶ store.py (one
           transaction) ─▶ PUBACK to the broker, only after the commit

    schema.py         the store's tables and their columns (Arrow types), one place
    store.py          the Store interface, IngestBatch, open_store(target)
    parquet_store.py  the embedded default: Parquet files by kind and day, DuckDB reads them
    pg_store.py       PostgreSQL: partitions by day, COPY, a frame ledger for idempotence
    pg_migrations/    versioned schema migrations for PostgreSQL
    qc.py             range, persistence, spike/dip and buddy checks on climate rows
    qc_buddy.py       the buddy check: titanlib.buddy_check on each minute's scene of the city
    qc_config.py      the checks' table, its TOML/JSON overrides, the nodes' positions
    collector.py      the `citynode collect` loop
    mqtt_session.py   its MQTT 5 session: shared subscription, persistent, acks by hand
    fleet_sim.py      signed traffic of many simulated nodes (`citynode fleet-sim`)
    sim_publish.py    where the simulator's messages go: paho connections (QoS 1) or a list
    health.py         one row per node for `citynode fleet`
    report.py         the static HTML page of `citynode fleet report`
"""
