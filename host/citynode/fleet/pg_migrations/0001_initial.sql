-- citynode store, schema version 1: the tables of citynode/fleet/schema.py.
--
-- Data tables are partitioned by RANGE on `received`, one partition a day,
-- created on demand by the store before it writes (climate_20261207 ...).
-- They carry no unique constraint: the `frames` ledger alone says which frames
-- are stored. So the same tables can be TimescaleDB hypertables instead:
-- create them without PARTITION BY, then SELECT create_hypertable('climate', 'received');
-- and so on for each data table (a hypertable allows no unique index without
-- its time column, and these have none).

CREATE TABLE climate (
    node_id bigint NOT NULL,
    boot bigint NOT NULL,
    seq bigint NOT NULL,
    time timestamptz,
    node_time_s double precision,
    received timestamptz NOT NULL,
    calibration_id bigint,
    firmware text,
    temperature_c double precision,
    relative_humidity_pct double precision,
    status bigint,
    qc_flags integer,
    qc_score integer
) PARTITION BY RANGE (received);
CREATE INDEX ON climate (node_id, time);
CREATE INDEX ON climate (node_id, boot, seq);

CREATE TABLE accel (
    node_id bigint NOT NULL,
    boot bigint NOT NULL,
    seq bigint NOT NULL,
    time timestamptz,
    node_time_s double precision,
    received timestamptz NOT NULL,
    calibration_id bigint,
    firmware text,
    sample_index bigint,
    ax_g double precision,
    ay_g double precision,
    az_g double precision,
    segment bigint
) PARTITION BY RANGE (received);
CREATE INDEX ON accel (node_id, time);
CREATE INDEX ON accel (node_id, boot, seq);

CREATE TABLE accel_blocks (
    node_id bigint NOT NULL,
    boot bigint NOT NULL,
    seq bigint NOT NULL,
    time timestamptz,
    node_time_s double precision,
    received timestamptz NOT NULL,
    calibration_id bigint,
    firmware text,
    encoding bigint,
    flags bigint,
    range_g bigint,
    odr_hz double precision,
    first_index bigint,
    n_samples bigint,
    age_ms bigint,
    gap_before bigint,
    segment bigint
) PARTITION BY RANGE (received);
CREATE INDEX ON accel_blocks (node_id, time);
CREATE INDEX ON accel_blocks (node_id, boot, seq);

CREATE TABLE features (
    node_id bigint NOT NULL,
    boot bigint NOT NULL,
    seq bigint NOT NULL,
    time timestamptz,
    node_time_s double precision,
    received timestamptz NOT NULL,
    calibration_id bigint,
    firmware text,
    window_s double precision,
    age_ms bigint,
    n_samples bigint,
    flags bigint,
    rms_x_g double precision,
    peak_x_g double precision,
    dominant_freq_x_hz double precision,
    rms_y_g double precision,
    peak_y_g double precision,
    dominant_freq_y_hz double precision,
    rms_z_g double precision,
    peak_z_g double precision,
    dominant_freq_z_hz double precision,
    pitch_deg double precision,
    roll_deg double precision
) PARTITION BY RANGE (received);
CREATE INDEX ON features (node_id, time);
CREATE INDEX ON features (node_id, boot, seq);

CREATE TABLE status (
    node_id bigint NOT NULL,
    boot bigint NOT NULL,
    seq bigint NOT NULL,
    time timestamptz,
    node_time_s double precision,
    received timestamptz NOT NULL,
    calibration_id bigint,
    firmware text,
    uptime_s bigint,
    free_heap bigint,
    mpy_major bigint,
    mpy_minor bigint,
    mpy_patch bigint,
    app_major bigint,
    app_minor bigint,
    app_patch bigint,
    protocol_minor bigint,
    sensors_fitted bigint,
    sensors_ok bigint,
    flags bigint,
    supply_v double precision,
    sensor_errors bigint,
    crc_errors bigint,
    timeouts bigint,
    fifo_overruns bigint,
    tx_dropped bigint,
    command_errors bigint
) PARTITION BY RANGE (received);
CREATE INDEX ON status (node_id, time);
CREATE INDEX ON status (node_id, boot, seq);

CREATE TABLE log (
    node_id bigint NOT NULL,
    boot bigint NOT NULL,
    seq bigint NOT NULL,
    time timestamptz,
    node_time_s double precision,
    received timestamptz NOT NULL,
    calibration_id bigint,
    firmware text,
    level bigint,
    level_name text,
    text text
) PARTITION BY RANGE (received);
CREATE INDEX ON log (node_id, time);
CREATE INDEX ON log (node_id, boot, seq);

CREATE TABLE time (
    node_id bigint NOT NULL,
    boot bigint NOT NULL,
    seq bigint NOT NULL,
    time timestamptz,
    node_time_s double precision,
    received timestamptz NOT NULL,
    calibration_id bigint,
    firmware text,
    utc_ms bigint,
    utc timestamptz,
    plausible boolean
) PARTITION BY RANGE (received);
CREATE INDEX ON time (node_id, time);
CREATE INDEX ON time (node_id, boot, seq);

CREATE TABLE frames (
    node_id bigint NOT NULL,
    boot bigint NOT NULL,
    seq bigint NOT NULL,
    type integer,
    time timestamptz,
    received timestamptz NOT NULL,
    PRIMARY KEY (node_id, boot, seq)
);
CREATE TABLE rejects (
    received timestamptz NOT NULL,
    topic text,
    node_id bigint,
    reason text,
    boot bigint,
    seq bigint,
    frame bytea
);
CREATE INDEX ON frames (received);
CREATE INDEX ON rejects (received);
