"""CPU time per sample: the citynode path against a naive JSON-per-sample loop (bench/bench_node.py, part 3).

Both read the same simulated ADXL345 (200 Hz, +-2 g, FIFO stream mode) over
the same simulated bus on a manual clock, and write to a null port.

citynode: the firmware's Sampler as the node runs it (bursts of FIFO reads into
a buffer, calibration in place, feature accumulation and the windows' spectra,
delta-bitpack encoding, framing, a write), blocks of 200 samples, 10 s feature
windows, the bench calibration. Timed over whole windows, spectra included.

naive: per sample, readfrom_mem of the 6 data bytes (one FIFO entry), unpack,
floats in g, a dict, json.dumps, write a line: what MicroPython sensor
projects typically do.

Each run also times the bus reads on their own (the simulated part computes
its samples inside them, so they cost far more than the real I2C transfer's
CPU time would), and the citynode stages one by one on captured blocks:
calibration, feature accumulation, spectra, encoding, framing.

Parameters (env NODEBENCH): samples (a multiple of 2000, default 20000).
"""

import gc
import json
import struct
import time

import micropython
import nodebench_rig as rig
from citynode_fw import calibration, config
from citynode_fw.features import Features
from citynode_fw.link import Link
from citynode_fw.node import probe
from citynode_fw.sampler import ACCEL_HEAD, Sampler
from citynode_fw.status import Counters
from citynode_protocol import wire as messages  # what the node itself imports

ticks_us = time.ticks_us
ticks_diff = time.ticks_diff
ODR_HZ = 200
BLOCK = 200
WINDOW_S = 10


def citynode(samples, cal):
    _clock, bus, board = rig.sim()
    out = rig.NullOut()
    counters = Counters()
    link = Link(1, counters, out, rig.Stdin())
    s = Sampler(link, counters, Features(), _log)
    accel, _a = probe(bus, "accel", "adxl345")
    s.set_parts(None, accel)
    values = config.defaults()
    values["accel_odr_hz"] = ODR_HZ
    values["accel_block_samples"] = BLOCK
    values["feature_window_s"] = WINDOW_S
    assert not s.configure(values, cal, board.ms())
    s.start_stream(board.ms())
    # time the driver's FIFO reads (the bus and the simulated part) from outside
    read_us = [0, 0]
    real_read = accel.read_fifo_into

    def timed_read(buf, n):
        t = ticks_us()
        got = real_read(buf, n)
        read_us[0] += ticks_diff(ticks_us(), t)
        read_us[1] += got
        return got

    accel.read_fifo_into = timed_read
    # one window of warm-up, then whole windows
    _run(s, board, WINDOW_S * ODR_HZ // BLOCK)
    read_us[0] = 0
    read_us[1] = 0
    sent = out.bytes
    first = s.index
    blocks = s.blocks + samples // BLOCK
    gc.collect()
    m0 = micropython.mem_total()
    t0 = ticks_us()
    _run(s, board, blocks)
    total = ticks_diff(ticks_us(), t0)
    made = micropython.mem_total() - m0
    done = s.index - first
    rig.result(
        "cpu_citynode",
        samples=done,
        total_us=total,
        read_us=read_us[0],
        read_samples=read_us[1],
        alloc_bytes=made,
        frames=out.frames[messages.ACCEL],
        bytes=out.bytes - sent,
        features=out.frames[messages.FEATURES],
        dropped=counters.tx_dropped,
        encoding=s._encoder.encoding,
        flags=s._cal_flags,
    )
    return s, link, board, accel, real_read


def _run(s, board, blocks):
    """Run the sampler's loop until `blocks` blocks are done and no spectrum is pending."""
    f = s.features
    while s.blocks < blocks or f.busy:
        wait = s.poll(board.ms())
        board.sleep_ms(wait if wait < 20 else 20)


def _log(level, text):
    pass


def stages(s, link, board, accel, read, samples):
    """The citynode stages one at a time on captured raw blocks (the sampler's own parts)."""
    n = BLOCK
    raws = []
    for _ in range(10):
        raw = bytearray(6 * n)
        burst = bytearray(6 * 32)
        got = 0
        while got < n:
            board.sleep_ms(100)
            k = read(burst, min(32, n - got))
            raw[6 * got : 6 * (got + k)] = burst[: 6 * k]
            got += k
        raws.append(raw)
    acal = s.calib.accel
    blk = bytearray(6 * n)
    s.features = None  # the sampler is done: its window buffers make room for these
    gc.collect()
    feats = Features()
    feats.configure(s.odr_mhz, WINDOW_S, s.range_g, (0.0, 0.0), messages.ACCEL_CALIBRATED)
    enc = s._encoder
    w = s._writer
    p = w.payload
    fmt = messages.FORMATS[messages.ACCEL]
    t_cal = t_add = t_fft = t_enc = t_frame = 0
    first = 0
    for k in range(samples // n):
        blk[:] = raws[k % len(raws)]
        t = ticks_us()
        acal.apply_into(blk, n)
        t1 = ticks_us()
        feats.add_block(blk, n, first)
        t2 = ticks_us()
        end = enc.encode_into(blk, n, p, ACCEL_HEAD)
        t3 = ticks_us()
        struct.pack_into(fmt, p, 0, enc.encoding, messages.ACCEL_CALIBRATED, s.range_g, 0, s.odr_mhz, first, n, 0)
        link.send(w, messages.ACCEL, end, board.ms())
        t4 = ticks_us()
        t_cal += ticks_diff(t1, t)
        t_add += ticks_diff(t2, t1)
        t_enc += ticks_diff(t3, t2)
        t_frame += ticks_diff(t4, t3)
        first += n
        while feats.busy:  # the spectra of a window that just closed
            t = ticks_us()
            feats.step()
            t_fft += ticks_diff(ticks_us(), t)
    rig.result(
        "cpu_stages",
        samples=first,
        calibration_us=t_cal,
        features_us=t_add,
        spectra_us=t_fft,
        encode_us=t_enc,
        frame_us=t_frame,
        windows=feats.windows,
    )


def naive(samples):
    clock, bus, board = rig.sim()
    accel, address = probe(bus, "accel", "adxl345")
    accel.configure(ODR_HZ * 1000, 2)  # +-2 g full resolution: 256 LSB/g; FIFO stream mode
    accel.start()
    out = rig.NullText()
    k_g = 1 / 256
    step_us = 1000000 // ODR_HZ
    i2c = bus
    read_us = 0
    gc.collect()
    m0 = micropython.mem_total()
    t0 = ticks_us()
    for _ in range(samples):
        clock.advance_us(step_us)
        r = ticks_us()
        data = i2c.readfrom_mem(address, 0x32, 6)  # DATAX0..DATAZ1: one FIFO entry
        read_us += ticks_diff(ticks_us(), r)
        x, y, z = struct.unpack("<hhh", data)
        rec = {"node": 1, "t": board.ms(), "x": x * k_g, "y": y * k_g, "z": z * k_g}
        out.write(json.dumps(rec) + "\n")
    total = ticks_diff(ticks_us(), t0)
    made = micropython.mem_total() - m0
    rig.result("cpu_naive", samples=samples, total_us=total, read_us=read_us, alloc_bytes=made,
               bytes=out.bytes, line=json.dumps(rec).replace(" ", "~"))


def main():
    p = rig.params()
    samples = p.get("samples", 20000)
    cal = calibration.Calibration(rig.CALIBRATION)
    naive(samples)
    s, link, board, accel, read = citynode(samples, cal)
    stages(s, link, board, accel, read, samples)


main()
