"""Input plausibility gate and bounded work of the synchronizer (issue 13: implausible IMU values,
stamps ahead of the host clock, a +1 h stamp jump)."""

from __future__ import annotations

import numpy as np
import pytest

from gait_estimator.core.plausibility import DEFAULT_LIMITS, implausible_rows, why_implausible
from gait_estimator.core.samples import ImuSample
from gait_estimator.core.synchronizer import ImuSynchronizer
from gait_estimator.errors import ConfigError

MS = 1_000_000
LOCS = ("pelvis", "thigh_r")
GOOD = np.array([0.5, 9.81, -1.0, 0.1, -2.0, 0.3, 0.0, 0.0, 0.0, 1.0])


@pytest.mark.parametrize(
    ("index", "value", "fragment"),
    [
        (0, 1e9, "acceleration"),
        (2, -16.1 * 9.80665, "acceleration"),
        (4, 36.0, "angular velocity"),
        (5, np.nan, "non-finite"),
        (1, np.inf, "non-finite"),
        (9, 10.0, "quaternion norm"),
        (9, 0.0, "quaternion norm"),
    ],
)
def test_each_implausible_value_is_named(index, value, fragment):
    v = GOOD.copy()
    v[index] = value
    assert fragment in why_implausible(v)
    assert implausible_rows(np.stack([GOOD, v])).tolist() == [False, True]


def test_full_scale_values_of_common_imus_pass():
    v = GOOD.copy()
    v[0:3] = 15.9 * 9.80665
    v[3:6] = -34.9
    v[6:10] = [0.0, 0.0, 0.05, 1.04]  # norm 1.041: within the tolerance, renormalised later
    assert why_implausible(v) is None
    assert not implausible_rows(v[None]).any()
    with pytest.raises(ConfigError, match="max_acc_mps2"):
        type(DEFAULT_LIMITS)(max_acc_mps2=-1.0)


def _sample(loc, t, acc=None):
    v = GOOD if acc is None else np.concatenate([acc, GOOD[3:]])
    return ImuSample(loc, t, v[0:3], v[3:6], v[6:10])


def test_implausible_samples_are_counted_and_never_make_a_valid_frame():
    sync = ImuSynchronizer(LOCS, 100.0, 30 * MS, 100 * MS, estimate_clock_offset=False)
    t0 = 10**12
    frames = []
    for k in range(60):
        t = t0 + k * 10 * MS
        bad = 20 <= k < 40  # 200 ms of 1e9 m/s^2 on thigh_r
        sync.push(_sample("pelvis", t), t)
        sync.push(_sample("thigh_r", t, np.array([1e9, 0.0, 0.0]) if bad else None), t)
        frames += sync.poll(t)
    c = sync.counters
    assert c["implausible"] == 20 and c["rejected"] == 20
    acc = np.array([f.acc[1] for f in frames])
    valid = np.array([f.valid[1] for f in frames])
    assert np.abs(acc[valid]).max() < 20.0, "an implausible value reached a valid frame"
    # thigh_r frames are invalid from the first implausible sample (t0 + 200 ms) to the next
    # plausible one (t0 + 400 ms), at once: not bridged from the last good sample.
    stamps = np.array([f.stamp_ns for f in frames])
    bad = (stamps >= t0 + 200 * MS) & (stamps < t0 + 400 * MS)
    assert bad.sum() == 20 and not valid[bad].any()
    assert valid[~bad].all()
    assert np.array([f.valid[0] for f in frames]).all()  # the pelvis is not affected


def test_stamps_ahead_of_the_host_clock_are_rejected():
    sync = ImuSynchronizer(LOCS, 100.0, 30 * MS, 100 * MS, estimate_clock_offset=False)
    host = 10**12
    for k in range(50):
        t = host + k * 10 * MS
        for loc in LOCS:
            assert not sync.push(_sample(loc, t + 3 * 10**9), t)  # device clock 3 s ahead
    assert sync.counters["ahead"] == 100
    assert sync.poll(host + 10**9) == []  # nothing valid can come of them


def test_a_one_hour_stamp_jump_builds_no_backlog():
    """Trusted stamps, every IMU jumps +1 h: before the fix one poll built 360000 frames."""
    sync = ImuSynchronizer(LOCS, 100.0, 30 * MS, 100 * MS, estimate_clock_offset=False)
    host = 10**12
    frames = []
    for k in range(100):
        t = host + k * 10 * MS
        d = t + (3600 * 10**9 if k >= 50 else 0)
        for loc in LOCS:
            sync.push(_sample(loc, d), t)
        out = sync.poll(t)
        assert len(out) <= (sync.max_backlog_ns + sync.latency_ns + sync.max_ahead_ns) * 100 / 1e9 + 1
        frames += out
    assert sync.counters["ahead"] == 100
    assert len(frames) <= 100  # at most one frame per 10 ms of host time: the grid follows the host
    last_good = host + 49 * 10 * MS
    late = [f for f in frames if f.stamp_ns > last_good + sync.max_gap_ns]
    assert late and not any(f.valid.any() for f in late)  # the jumped samples are never used
    # With offset estimation the same jump is a clock jump: rejected, then the stream restarts.
    sync = ImuSynchronizer(LOCS, 100.0, 30 * MS, 100 * MS, estimate_clock_offset=True)
    sizes = []
    for k in range(200):
        t = host + k * 10 * MS
        d = t + (3600 * 10**9 if k >= 50 else 0)
        for loc in LOCS:
            sync.push(_sample(loc, d), t)
        sizes.append(len(sync.poll(t)))
    assert max(sizes) <= 5 and sync.counters["clock_resets"] == 2
