"""ImuSynchronizer: property-based tests over arrival orders, rates, drops, duplicates and gaps."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gait_estimator.core.samples import ImuSample
from gait_estimator.core.synchronizer import ImuSynchronizer, slerp
from gait_estimator.errors import ConfigError

MS = 1_000_000
# GE_PROP_EXAMPLES=2000 for a deeper local search (CI: 40 examples per property).
PROPS = settings(
    max_examples=int(os.environ.get("GE_PROP_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def quat_about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """x, y, z, w quaternions of rotations by ``angle`` [N] about the unit ``axis``."""
    h = np.asarray(angle)[:, None] / 2.0
    return np.concatenate([np.sin(h) * axis, np.cos(h)], axis=1)


@dataclass
class Stream:
    """A linear-in-time synthetic IMU stream: the exact value at any device time is known."""

    location: str
    dev: np.ndarray  # device stamps actually delivered (after drops), int64
    recv: np.ndarray  # receive stamps, int64
    acc0: np.ndarray
    acc1: np.ndarray  # per second
    gyro0: np.ndarray
    gyro1: np.ndarray
    axis: np.ndarray
    theta0: float
    omega: float  # rad/s about axis
    offset_ns: int  # true host - device offset
    t_ref_ns: int = 0  # device time at which acc/gyro equal acc0/gyro0 (keeps values plausible)

    def acc(self, t_dev_ns: np.ndarray) -> np.ndarray:
        return self.acc0 + np.outer((np.asarray(t_dev_ns) - self.t_ref_ns) * 1e-9, self.acc1)

    def gyro(self, t_dev_ns: np.ndarray) -> np.ndarray:
        return self.gyro0 + np.outer((np.asarray(t_dev_ns) - self.t_ref_ns) * 1e-9, self.gyro1)

    def quat(self, t_dev_ns: np.ndarray) -> np.ndarray:
        return quat_about(self.axis, self.theta0 + self.omega * np.asarray(t_dev_ns) * 1e-9)

    def samples(self, rng: np.random.Generator, flip_signs: bool = True) -> list[tuple[int, ImuSample]]:
        q = self.quat(self.dev)
        if flip_signs:  # q and -q are the same rotation; the synchronizer must cope
            q = q * np.where(rng.random(len(q)) < 0.3, -1.0, 1.0)[:, None]
        acc, gyro = self.acc(self.dev), self.gyro(self.dev)
        return [
            (int(r), ImuSample(self.location, int(d), acc[i], gyro[i], q[i]))
            for i, (d, r) in enumerate(zip(self.dev, self.recv, strict=True))
        ]


def make_stream(
    rng: np.random.Generator,
    location: str,
    rate_hz: float,
    duration_s: float,
    drop_p: float,
    max_delay_ns: int,
    start_ns: int,
    offset_ns: int = 0,
    stop_ns: int | None = None,
) -> Stream:
    period = 1e9 / rate_hz
    n = int(duration_s * rate_hz)
    dev = (start_ns + np.round(np.arange(n) * period)).astype(np.int64)
    keep = rng.random(n) >= drop_p
    keep[0] = True
    if stop_ns is not None:
        keep &= dev <= stop_ns
    dev = dev[keep]
    delay = rng.integers(0, max_delay_ns + 1, size=len(dev))
    recv = dev + offset_ns + delay
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return Stream(
        location,
        dev,
        recv,
        rng.normal(size=3) * 5,
        rng.normal(size=3) * 5,
        rng.normal(size=3),
        rng.normal(size=3) * 3,
        axis,
        float(rng.uniform(-3, 3)),
        float(rng.uniform(-8, 8)),
        offset_ns,
    )


def run(sync: ImuSynchronizer, arrivals: list[tuple[int, ImuSample]], end_ns: int, emitted_at=None) -> list:
    """Push every arrival and poll at its time; ``emitted_at`` (a list) receives, per frame, the
    index of the arrival after which it went out (``len(arrivals)``: the final poll)."""
    frames = []
    for k, (recv, sample) in enumerate(arrivals):
        sync.push(sample, recv)
        new = sync.poll(recv)
        frames += new
        if emitted_at is not None:
            emitted_at += [k] * len(new)
    new = sync.poll(end_ns)
    frames += new
    if emitted_at is not None:
        emitted_at += [len(arrivals)] * len(new)
    return frames


def assert_grid(frames: list, rate_hz: float) -> None:
    stamps = np.asarray([f.stamp_ns for f in frames], dtype=np.int64)
    assert np.all(np.diff(stamps) > 0)
    if len(stamps) > 1:
        assert np.abs(np.diff(stamps) - 1e9 / rate_hz).max() <= 1.0 + 1e-6


stream_params = st.tuples(
    st.floats(40.0, 1000.0),  # rate
    st.floats(0.0, 0.3),  # drop probability
    st.integers(0, 15 * MS),  # max transport / buffering delay
    st.integers(0, 50 * MS),  # start offset
)


@PROPS
@given(
    seed=st.integers(0, 2**32 - 1),
    params=st.lists(stream_params, min_size=1, max_size=4),
    out_rate=st.floats(20.0, 400.0),
    dup_p=st.floats(0.0, 0.2),
    stop=st.lists(st.none() | st.floats(0.05, 0.4), min_size=4, max_size=4),
)
def test_linear_signals_are_reproduced_exactly_and_dead_streams_flagged(seed, params, out_rate, dup_p, stop):
    rng = np.random.default_rng(seed)
    duration = 0.5
    streams = []
    for i, (rate, drop_p, max_delay, start) in enumerate(params):
        stop_ns = None if stop[i] is None else int(stop[i] * 1e9)
        streams.append(make_stream(rng, f"imu{i}", rate, duration, drop_p, max_delay, start, stop_ns=stop_ns))
    max_interval = max(int(np.diff(s.dev).max(initial=0)) for s in streams)
    max_delay = max(p[2] for p in params)
    latency = max_interval + max_delay + MS
    max_gap = latency + 5 * MS
    arrivals = [a for s in streams for a in s.samples(rng)]
    dups = [arrivals[i] for i in np.flatnonzero(rng.random(len(arrivals)) < dup_p)]
    arrivals += [(r + int(rng.integers(0, 3 * latency)), smp) for r, smp in dups]
    arrivals.sort(key=lambda a: a[0])  # arrival order: out of order in device time
    sync = ImuSynchronizer(
        [s.location for s in streams], out_rate, latency, max_gap, estimate_clock_offset=False
    )
    end = max(int(s.recv.max()) for s in streams) + latency + max_gap + 50 * MS
    emitted_at: list[int] = []
    frames = run(sync, arrivals, end, emitted_at)

    assert frames
    assert_grid(frames, out_rate)
    emitted_at = np.asarray(emitted_at)
    for i, s in enumerate(streams):
        t = np.asarray([f.stamp_ns for f in frames], dtype=np.int64)
        valid = np.asarray([f.valid[i] for f in frames])
        # Start-up race of emit_early: a frame may go out once every stream has a sample at or
        # after t, before any sample of this stream at or before t has arrived (out of order); it
        # is then invalid for this stream (no data yet), never filled with a guess.
        own = np.array([smp.stamp_ns if smp.location == s.location else np.iinfo(np.int64).max
                        for _, smp in arrivals] + [np.iinfo(np.int64).max], dtype=np.int64)
        oldest_in = np.minimum.accumulate(own)[emitted_at]  # oldest sample of s arrived by then
        before_first = oldest_in > t
        acc = np.asarray([f.acc[i] for f in frames])
        gyro = np.asarray([f.gyro[i] for f in frames])
        quat = np.asarray([f.quat_xyzw[i] for f in frames])
        np.testing.assert_allclose(np.linalg.norm(quat, axis=1), 1.0, atol=1e-12)
        first, last = int(s.dev[0]), int(s.dev[-1])
        expect_valid = (t >= first) & (t - last <= max_gap) & ~before_first
        assert np.array_equal(valid, expect_valid), (
            "validity must be exactly: started and not stale > max_gap"
        )
        # Dead stream: flagged by the first frame more than max_gap after its last sample.
        assert not valid[t > last + max_gap].any()
        inside = valid & (t <= last)  # interpolated: exact
        held = valid & (t > last)  # held newest value, at most max_gap
        np.testing.assert_allclose(acc[inside], s.acc(t[inside]), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(gyro[inside], s.gyro(t[inside]), rtol=1e-9, atol=1e-9)
        q_ref = s.quat(t[inside])
        err = np.minimum(
            np.abs(quat[inside] - q_ref).max(axis=1, initial=0),
            np.abs(quat[inside] + q_ref).max(axis=1, initial=0),
        )
        assert err.max(initial=0.0) < 1e-9
        np.testing.assert_allclose(acc[held], np.broadcast_to(s.acc([last])[0], acc[held].shape), atol=1e-9)
        assert np.all(acc[~valid] == 0.0) and np.all(quat[~valid] == [0, 0, 0, 1])
    c = sync.counters
    assert c["frames"] == len(frames)
    assert c["received"] == len(arrivals)
    # Every duplicate is caught (as a duplicate, or as late once its original was consumed); with
    # early emission an out-of-order original can also count late: the exact values above show
    # that nothing needed was lost.
    assert c["duplicates"] + c["late"] >= len(dups)
    assert c["rejected"] == 0 and c["overflow"] == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    rates=st.lists(st.floats(40.0, 1000.0), min_size=1, max_size=3),
    latency_ms=st.integers(0, 40),
    max_gap_ms=st.integers(1, 200),
    out_rate=st.floats(20.0, 500.0),
    garbage_p=st.floats(0.0, 0.3),
    clock=st.booleans(),
)
def test_no_exception_escapes_and_stamps_stay_on_grid(
    seed, rates, latency_ms, max_gap_ms, out_rate, garbage_p, clock
):
    """Arbitrary junk (NaN, zero quaternions, unknown names, clock jumps, wild stamps): no exception."""
    rng = np.random.default_rng(seed)
    locs = [f"imu{i}" for i in range(len(rates))]
    sync = ImuSynchronizer(locs, out_rate, latency_ms * MS, max_gap_ms * MS, estimate_clock_offset=clock)
    frames = []
    now = 0
    for _ in range(600):
        i = int(rng.integers(len(rates)))
        now += int(rng.exponential(1e9 / rates[i] / len(rates)))
        d = now + int(rng.normal(0, 5 * MS))
        acc, gyro, q = rng.normal(size=3), rng.normal(size=3), rng.normal(size=4)
        loc = locs[i]
        if rng.random() < garbage_p:
            kind = int(rng.integers(6))
            if kind == 0:
                acc[0] = np.nan
            elif kind == 1:
                q = np.zeros(4)
            elif kind == 2:
                loc = "nowhere"
            elif kind == 3:
                d += int(rng.integers(-(10**10), 10**10))  # device clock jump
            elif kind == 4:
                gyro[2] = np.inf
            else:
                q = q * 1e6
        q_norm = np.linalg.norm(q)
        q = q / q_norm if 0.1 < q_norm < 1e3 else q
        sync.push(ImuSample(loc, d, acc, gyro, q), now)
        if rng.random() < 0.7:
            frames += sync.poll(now + int(rng.integers(-5 * MS, 5 * MS)))
    frames += sync.poll(now + 10**9)
    assert_grid(frames, out_rate)
    for f in frames:
        assert np.all(np.isfinite(f.acc)) and np.all(np.isfinite(f.gyro))
        np.testing.assert_allclose(np.linalg.norm(f.quat_xyzw, axis=1), 1.0, atol=1e-12)


@PROPS
@given(
    seed=st.integers(0, 2**32 - 1),
    rates=st.lists(st.floats(40.0, 1000.0), min_size=1, max_size=3),
    burst_ms=st.integers(0, 20),
    drift_ppm=st.floats(-200.0, 200.0),
)
def test_clock_offset_and_usb_buffering_are_removed(seed, rates, burst_ms, drift_ppm):
    """Device clocks far from host time, bursty buffering delays: the offset estimate follows the
    minimum-delay envelope and the resampled signal is the true signal at host time."""
    rng = np.random.default_rng(seed)
    streams = []
    for i, rate in enumerate(rates):
        period = 1e9 / rate
        n = int(1.0 * rate)
        dev = (np.round(np.arange(n) * period)).astype(np.int64) + int(rng.integers(0, 10**12))
        offset = 1_700_000_000 * 10**9 - int(dev[0]) + int(rng.integers(0, 10 * MS))  # host epoch
        # USB buffering: samples arrive in bursts; every 20th sample sees only the base latency.
        base = 1 * MS
        delay = base + rng.integers(0, burst_ms * MS + 1, size=n)
        delay[::20] = base
        t_rel = (dev - dev[0]).astype(np.float64)
        recv = dev + offset + delay + np.round(t_rel * drift_ppm * 1e-6).astype(np.int64)
        axis = np.array([0.0, 0.0, 1.0])
        streams.append(
            Stream(
                f"imu{i}",
                dev,
                recv,
                rng.normal(size=3),
                rng.normal(size=3),
                rng.normal(size=3),
                rng.normal(size=3),
                axis,
                0.0,
                1.0,
                offset + base,
                int(dev[0]),
            )
        )
    arrivals = sorted((a for s in streams for a in s.samples(rng, flip_signs=False)), key=lambda a: a[0])
    latency = (burst_ms + 30) * MS
    sync = ImuSynchronizer(
        [s.location for s in streams], 100.0, latency, 100 * MS, estimate_clock_offset=True
    )
    frames = run(sync, arrivals, max(int(s.recv.max()) for s in streams) + 10**9)
    assert_grid(frames, 100.0)
    for i, s in enumerate(streams):
        est = sync.clock_offset_ns(s.location)
        # Error budget: true drift over the run, plus the slew (500 ppm) between two
        # minimum-delay samples (every 20th sample), plus integer rounding.
        tol_ns = abs(drift_ppm) * 1e-6 * 1e9 + 500e-6 * (21 * 1e9 / rates[i] + burst_ms * MS) + 1000
        assert abs(est - s.offset_ns) <= tol_ns
        # Frame values: the true signal at (host time - true offset), up to the offset error.
        t = np.asarray([f.stamp_ns for f in frames])
        ok = np.asarray([f.valid[i] for f in frames]) & (t - s.offset_ns <= s.dev[-1] - 2 * MS)
        acc = np.asarray([f.acc[i] for f in frames])[ok]
        ref = s.acc(t[ok] - s.offset_ns)
        slope = np.abs(s.acc1).max()
        assert np.abs(acc - ref).max(initial=0) <= slope * tol_ns * 1e-9 + 1e-9


def test_counters_drops_late_duplicates_rejected():
    sync = ImuSynchronizer(["a"], 100.0, 20 * MS, 100 * MS, estimate_clock_offset=False)
    q = [0, 0, 0, 1]
    for k in [0, 1, 2, 5, 6]:  # 3, 4 dropped
        assert sync.push(ImuSample("a", k * 10 * MS, [k, 0, 0], [0, 0, 0], q), k * 10 * MS + MS)
    assert sync.counters["dropped"] == 2
    assert not sync.push(ImuSample("a", 50 * MS, [0, 0, 0], [0, 0, 0], q), 61 * MS)  # duplicate
    assert sync.counters["duplicates"] == 1
    sync.poll(200 * MS)
    assert not sync.push(ImuSample("a", 30 * MS, [0, 0, 0], [0, 0, 0], q), 201 * MS)  # too late
    assert sync.counters["late"] == 1
    assert not sync.push(ImuSample("a", 300 * MS, [np.nan, 0, 0], [0, 0, 0], q), 301 * MS)
    assert not sync.push(ImuSample("a", 310 * MS, [0, 0, 0], [0, 0, 0], [0, 0, 0, 0]), 311 * MS)
    assert not sync.push(ImuSample("b", 310 * MS, [0, 0, 0], [0, 0, 0], q), 311 * MS)
    assert sync.counters["rejected"] == 3
    assert sync.counters["invalid_frames"] > 0  # 200 ms without a sample: flagged


def test_out_of_order_fill_in_takes_back_a_drop():
    sync = ImuSynchronizer(["a"], 100.0, 50 * MS, 100 * MS, estimate_clock_offset=False)
    q = [0, 0, 0, 1]
    for k in [0, 1, 3, 2]:
        sync.push(ImuSample("a", k * 10 * MS, [k, 0, 0], [0, 0, 0], q), 35 * MS)
    c = sync.counters
    assert (c["dropped"], c["reordered"]) == (0, 1)


def test_latency_is_bounded_when_a_stream_is_silent():
    """With one stream silent, frames still come out latency_ns after their stamp (flagged)."""
    sync = ImuSynchronizer(["a", "b"], 100.0, 25 * MS, 50 * MS, estimate_clock_offset=False)
    q = [0, 0, 0, 1]
    worst = 0
    for k in range(100):
        now = k * 10 * MS
        sync.push(ImuSample("a", now, [0, 0, 0], [0, 0, 0], q), now)
        for f in sync.poll(now):
            worst = max(worst, now - f.stamp_ns)
            assert not f.valid[1] and f.valid[0]
    assert worst <= 25 * MS + 10 * MS  # latency bound + the polling period


def test_early_emission_when_all_streams_are_in():
    sync = ImuSynchronizer(["a", "b"], 100.0, 50 * MS, 50 * MS, estimate_clock_offset=False)
    q = [0, 0, 0, 1]
    out = []
    for k in range(30):
        now = k * 10 * MS
        for loc in "ab":
            sync.push(ImuSample(loc, now, [0, 0, 0], [0, 0, 0], q), now)
        out += [now - f.stamp_ns for f in sync.poll(now)]
    # The grid starts one latency bound after the first arrival (out-of-order start-up samples
    # are still collected); from then on frames leave as soon as every stream has reached them.
    assert len(out) == 30 and out[:6] == [50 * MS, 40 * MS, 30 * MS, 20 * MS, 10 * MS, 0]
    assert max(out[6:]) == 0


def test_slerp_endpoints_and_unit_norm():
    rng = np.random.default_rng(1)
    qa, qb = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    qa /= np.linalg.norm(qa, axis=1, keepdims=True)
    qb /= np.linalg.norm(qb, axis=1, keepdims=True)
    np.testing.assert_allclose(slerp(qa, qb, np.zeros(5)), qa, atol=1e-12)
    end = slerp(qa, qb, np.ones(5))
    assert np.allclose(np.abs(np.einsum("ij,ij->i", end, qb)), 1.0)
    np.testing.assert_allclose(np.linalg.norm(slerp(qa, qb, rng.random(5)), axis=1), 1.0)
    np.testing.assert_allclose(slerp(qa, qa, np.full(5, 0.5)), qa, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"locations": []}, "locations"),
        ({"locations": ["a", "a"]}, "locations"),
        ({"rate_hz": 0.0}, "rate_hz"),
        ({"rate_hz": float("nan")}, "rate_hz"),
        ({"latency_ns": -1}, "latency_ns"),
        ({"max_gap_ns": 0}, "max_gap_ns"),
    ],
)
def test_bad_parameters_are_named(kwargs, name):
    args = {"locations": ["a"], "rate_hz": 100.0, "latency_ns": 10 * MS, "max_gap_ns": 50 * MS} | kwargs
    with pytest.raises(ConfigError, match=f"'{name}'"):
        ImuSynchronizer(**args)
