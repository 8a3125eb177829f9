"""Gait phase and events (core.gait_phase) on simulated walking, and the metrics (core.gait_metrics).

The simulator's exact event times (sim.gait_events.exact_events) are the reference; every
subject here is drawn from seeds the detector's defaults were not set on.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gait_estimator.core.gait_metrics import (
    event_timing,
    match_events,
    phase_error,
    phase_rmse_pct,
    reference_phase,
)
from gait_estimator.core.gait_phase import (
    HEEL_STRIKE,
    LEG_LEFT,
    LEG_RIGHT,
    STATE_STANCE,
    STATE_SWING,
    STATE_UNKNOWN,
    TOE_OFF,
    GaitEvent,
    GaitPhaseConfig,
    GaitPhaseEstimator,
    GaitPhaseState,
    sagittal_rate,
)
from gait_estimator.core.samples import SyncFrame
from gait_estimator.errors import ConfigError
from gait_estimator.sim.gait_events import exact_events, trial_frames
from gait_estimator.sim.generate import sample_subject, simulate_trial

RATE = 100.0
SIDES = ((LEG_RIGHT, "r"), (LEG_LEFT, "l"))
TOL_NS = 100_000_000


@lru_cache(maxsize=16)
def walk(subject_seed: int, speed: float, duration: float = 20.0):
    subject = sample_subject(np.random.default_rng(subject_seed), f"P{subject_seed}")
    seed = subject_seed * 7 + 1
    trial = simulate_trial(subject, duration, speed, RATE, seed=seed, extras=False)
    ev = exact_events(subject, duration, speed, RATE, seed)
    return trial, {k: np.round(v * 1e9).astype(np.int64) for k, v in ev.items()}


def run(frames, est: GaitPhaseEstimator | None = None) -> tuple[list[GaitPhaseState], GaitPhaseEstimator]:
    frames = list(frames)
    est = est or GaitPhaseEstimator(RATE, frames[0].locations)
    return [est.push(f) for f in frames], est


def events_of(states, leg: int, kind: int) -> np.ndarray:
    return np.array([e.stamp_ns for s in states for e in s.events if e.leg == leg and e.event == kind],
                    dtype=np.int64)


def still_frames(locations: tuple[str, ...], n: int, t0_ns: int, rng: np.random.Generator) -> list[SyncFrame]:
    """Standing: gravity on every accelerometer, gyro noise of a consumer MEMS (0.01 rad/s)."""
    k = len(locations)
    acc = np.tile([0.0, 0.0, 9.81], (k, 1))
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (k, 1))
    period = int(1e9 / RATE)
    return [SyncFrame(t0_ns + i * period, locations, acc, rng.normal(0.0, 0.01, (k, 3)), quat,
                      np.ones(k, dtype=bool)) for i in range(n)]


# -- metrics -----------------------------------------------------------------------------------
def test_reference_phase_is_linear_between_heel_strikes_and_nan_outside() -> None:
    t = np.array([0, 100, 150, 200, 300, 399, 400, 450], dtype=np.int64)
    ph = reference_phase(t, np.array([100, 200, 400]))
    assert math.isnan(ph[0]) and math.isnan(ph[-1]) and math.isnan(ph[-2])
    np.testing.assert_allclose(ph[1:6], [0.0, 0.5, 0.0, 0.5, 0.995])


def test_phase_error_is_circular() -> None:
    np.testing.assert_allclose(phase_error(np.array([0.99, 0.01, 0.5]), np.array([0.01, 0.99, 0.25])),
                               [-0.02, 0.02, 0.25], atol=1e-12)
    assert phase_rmse_pct(np.array([0.99, 0.02, np.nan]), np.array([0.01, 0.0, 0.3])) == pytest.approx(2.0)
    assert math.isnan(phase_rmse_pct(np.array([np.nan]), np.array([0.5])))


def test_event_matching_counts_missed_and_extra_and_signs_the_error() -> None:
    ms = 1_000_000
    ref = np.array([1000, 2000, 3000]) * ms
    det = np.array([1010, 1990, 2100, 5000]) * ms  # 2100 is the second candidate for 2000: extra
    assert match_events(det, ref, 50 * ms) == [(0, 0), (1, 1)]
    et = event_timing(det, ref, 50 * ms)
    assert (et.matched, et.missed, et.extra) == (2, 1, 2)
    assert et.mae_ms == pytest.approx(10.0) and et.bias_ms == pytest.approx(0.0)
    assert et.errors_ms == (10.0, -10.0)
    wide = event_timing(det, ref, 1000 * ms)  # 2100 now reaches 3000
    assert (wide.matched, wide.missed, wide.extra) == (3, 0, 1)
    inside = event_timing(det, ref, 50 * ms, (1500 * ms, 4000 * ms))  # 1000 and 5000 left out
    assert (inside.n_reference, inside.matched, inside.missed, inside.extra) == (2, 1, 1, 1)
    assert inside.errors_ms == (-10.0,)
    with pytest.raises(ValueError, match="tolerance"):
        match_events(det, ref, -1)


def test_records_map_one_to_one_onto_the_messages() -> None:
    from dataclasses import fields

    from gait_estimator_msgs.msg import GaitEvent as GaitEventMsg
    from gait_estimator_msgs.msg import GaitState

    state_fields = {f.name for f in fields(GaitPhaseState)} - {"stamp_ns", "events"}
    assert state_fields == set(GaitState.get_fields_and_field_types()) - {"header"}
    event_fields = {f.name for f in fields(GaitEvent)} - {"stamp_ns"}
    assert event_fields == set(GaitEventMsg.get_fields_and_field_types()) - {"header"}
    assert (GaitState.LEG_RIGHT, GaitState.LEG_LEFT) == (LEG_RIGHT, LEG_LEFT)
    assert (GaitState.STATE_UNKNOWN, GaitState.STATE_STANCE, GaitState.STATE_SWING) == (
        STATE_UNKNOWN, STATE_STANCE, STATE_SWING)
    assert (GaitEventMsg.HEEL_STRIKE, GaitEventMsg.TOE_OFF) == (HEEL_STRIKE, TOE_OFF)
    trial, _ = walk(11, 1.2)
    s = run(trial_frames(trial))[0][-1]
    msg = GaitState(phase=list(s.phase), phase_valid=list(s.phase_valid), state=list(s.state),
                    last_heel_strike_ns=list(s.last_heel_strike_ns), last_toe_off_ns=list(s.last_toe_off_ns),
                    stride_time_s=list(s.stride_time_s), cadence_steps_per_min=s.cadence_steps_per_min,
                    walking_speed_m_s=s.walking_speed_m_s, confidence=list(s.confidence))
    assert list(msg.phase) == list(s.phase) and msg.last_heel_strike_ns[0] == s.last_heel_strike_ns[0] > 0


# -- configuration -----------------------------------------------------------------------------
def test_bad_configuration_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="gait_phase.stride_smoothing"):
        GaitPhaseConfig(stride_smoothing=0.0)
    with pytest.raises(ConfigError, match="gait_phase.hs_offset_s"):
        GaitPhaseConfig(hs_offset_s=float("nan"))
    with pytest.raises(ConfigError, match="max_stride_s"):
        GaitPhaseConfig(min_stride_s=3.0)
    with pytest.raises(ConfigError, match="shank or foot"):
        GaitPhaseEstimator(RATE, ("pelvis", "thigh_r", "thigh_l"))
    with pytest.raises(ConfigError, match="rate_hz"):
        GaitPhaseEstimator(0.0, ("shank_r",))
    trial, _ = walk(11, 1.2)
    est = GaitPhaseEstimator(RATE, ("shank_r", "shank_l"))
    with pytest.raises(ConfigError, match="frame.locations"):
        est.push(next(trial_frames(trial)))


def test_sagittal_rate_is_minus_gyro_y_and_positive_in_mid_swing() -> None:
    trial, ev = walk(11, 1.2)
    w = sagittal_rate(trial.imu["shank_r"]["gyro"])
    np.testing.assert_array_equal(w, -trial.imu["shank_r"]["gyro"][:, 1].astype(np.float64))
    t = trial.time_ns
    for hs in ev["heel_strike_r"][1:-1]:  # the swing peak is in the 250 ms before heel strike
        seg = w[(t > hs - 250_000_000) & (t < hs)]
        assert seg.max() > 3.0
    for to in ev["toe_off_r"][1:-1]:  # stance ends in a dip: the shank rotates backward
        seg = w[(t > to - 150_000_000) & (t < to)]
        assert seg.min() < -1.0


# -- simulated walking -------------------------------------------------------------------------
@pytest.mark.parametrize(("subject_seed", "speed"), [(21, 0.6), (22, 1.0), (23, 1.4), (24, 1.9)])
def test_events_and_phase_match_the_simulator(subject_seed: int, speed: float) -> None:
    trial, ev = walk(subject_seed, speed)
    states, _ = run(trial_frames(trial))
    t = trial.time_ns
    end = t[-1] - 200_000_000
    for leg, side in SIDES:
        for kind, key in ((HEEL_STRIKE, "heel_strike"), (TOE_OFF, "toe_off")):
            det = events_of(states, leg, kind)  # a swing must precede the first heel strike
            timing = event_timing(det, ev[f"{key}_{side}"], TOL_NS, (600_000_000, end))
            assert timing.missed == 0 and timing.extra == 0, (side, key, timing)
            assert timing.mae_ms < (8.0 if kind == HEEL_STRIKE else 15.0), (side, key, timing.mae_ms)
        phase = np.array([s.phase[leg] for s in states])
        valid = np.array([s.phase_valid[leg] for s in states])
        assert np.isnan(phase[~valid]).all()
        ref_phase = reference_phase(t, ev[f"heel_strike_{side}"])
        both = valid & np.isfinite(ref_phase)
        assert both.sum() > 0.8 * np.isfinite(ref_phase).sum()
        assert phase_rmse_pct(phase[both], ref_phase[both]) < 2.0
        strides = np.diff(ev[f"heel_strike_{side}"]) / 1e9
        got = np.array([s.stride_time_s[leg] for s in states])[valid]
        assert np.nanmedian(got) == pytest.approx(np.median(strides), rel=0.03)
        states_v = np.array([s.state[leg] for s in states])[valid]
        assert set(np.unique(states_v)) == {STATE_STANCE, STATE_SWING}
    cad = np.array([s.cadence_steps_per_min for s in states])
    ref_cad = 120.0 / np.mean(np.diff(ev["heel_strike_r"]) / 1e9)
    assert np.nanmedian(cad) == pytest.approx(ref_cad, rel=0.03)


@pytest.mark.parametrize("rate", [50.0, 200.0])
def test_other_frame_rates_give_the_same_events(rate: float) -> None:
    subject = sample_subject(np.random.default_rng(77), "R")
    trial = simulate_trial(subject, 20.0, 1.3, rate, seed=3, extras=False)
    hs = np.round(exact_events(subject, 20.0, 1.3, rate, 3)["heel_strike_r"] * 1e9).astype(np.int64)
    est = GaitPhaseEstimator(rate, tuple(trial.imu))
    states = [est.push(f) for f in trial_frames(trial)]
    timing = event_timing(events_of(states, LEG_RIGHT, HEEL_STRIKE), hs, TOL_NS,
                          (600_000_000, int(trial.time_ns[-1]) - 200_000_000))
    assert timing.missed == 0 and timing.extra == 0 and timing.mae_ms < 5.0
    phase = np.array([s.phase[LEG_RIGHT] for s in states])
    assert phase_rmse_pct(phase, reference_phase(trial.time_ns, hs)) < 1.5


def check_stream(states: list[GaitPhaseState], cfg: GaitPhaseConfig) -> int:
    """Phase properties of one stream; returns the number of wraps checked."""
    wraps = 0
    for leg in (LEG_RIGHT, LEG_LEFT):
        prev: GaitPhaseState | None = None
        for s in states:
            p = s.phase[leg]
            if not s.phase_valid[leg]:
                assert math.isnan(p) and s.state[leg] == STATE_UNKNOWN and s.confidence[leg] == 0.0
                prev = None
                continue
            assert 0.0 <= p < 1.0 and s.state[leg] in (STATE_STANCE, STATE_SWING)
            hs_now = [e for e in s.events if e.leg == leg and e.event == HEEL_STRIKE]
            if prev is not None:
                if hs_now:  # wraps exactly at the heel strike's frame, to the time since it
                    wraps += 1
                    assert p < prev.phase[leg]
                    assert s.last_heel_strike_ns[leg] == hs_now[0].stamp_ns
                    assert 0 <= s.stamp_ns - hs_now[0].stamp_ns < 1e9 / RATE
                    assert p < 1.0 / RATE / cfg.min_stride_s + 1e-9
                else:  # monotone within a stride
                    assert p >= prev.phase[leg]
                    assert s.last_heel_strike_ns[leg] == prev.last_heel_strike_ns[leg]
            for e in s.events:  # honest latency: never detected before it happened
                assert e.detected_ns == s.stamp_ns and e.stamp_ns <= e.detected_ns
            prev = s
    return wraps


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject_seed=st.integers(100, 10_000), speed=st.floats(0.5, 2.0))
def test_phase_is_monotone_within_a_stride_and_wraps_at_heel_strike(subject_seed: int, speed: float) -> None:
    subject = sample_subject(np.random.default_rng(subject_seed), "H")
    trial = simulate_trial(subject, 12.0, speed, RATE, seed=subject_seed, extras=False)
    states, est = run(trial_frames(trial))
    assert check_stream(states, est.config) >= 4  # both legs; 0.5 m/s walks about 6 strides


@settings(max_examples=15, deadline=None)
@given(periods=st.lists(st.floats(0.9, 1.2), min_size=6, max_size=10), amp=st.floats(2.0, 8.0),
       seed=st.integers(0, 1000))
def test_properties_hold_on_irregular_synthetic_strides(periods: list[float], amp: float, seed: int) -> None:
    """A shank-like rate with a different period every stride, noise and a random start."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, sum(periods), 1.0 / RATE)
    edges = np.concatenate([[0.0], np.cumsum(periods)])
    k = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(periods) - 1)
    u = (t - edges[k]) / np.asarray(periods)[k]  # 0 at toe-off-ish, swing peak at u = 0.2
    w = amp * np.exp(-((u - 0.2) / 0.09) ** 2) - 0.45 * amp * np.exp(-((u - 0.9) / 0.07) ** 2) \
        - 0.3 * amp * np.exp(-((u - 0.45) / 0.05) ** 2) + rng.normal(0.0, 0.02, t.size)
    locs = ("shank_r",)
    gyro = np.zeros((t.size, 1, 3))
    gyro[:, 0, 1] = -w
    frames = [SyncFrame(int(round(x * 1e9)), locs, np.zeros((1, 3)), gyro[i], np.array([[0, 0, 0, 1.0]]),
                        np.ones(1, dtype=bool)) for i, x in enumerate(t)]
    states, est = run(frames)
    assert check_stream(states, est.config) >= 3
    assert not any(s.phase_valid[LEG_LEFT] for s in states)  # no left IMU: never a guess


def test_standing_still_is_invalid_and_emits_nothing() -> None:
    locs = ("pelvis", "shank_r", "shank_l", "foot_r", "foot_l")
    states, _ = run(still_frames(locs, 1000, 0, np.random.default_rng(0)))
    assert not any(v for s in states for v in s.phase_valid)
    assert all(math.isnan(p) for s in states for p in s.phase)
    assert all(s.state == (STATE_UNKNOWN, STATE_UNKNOWN) for s in states)
    assert not any(s.events for s in states)
    assert all(math.isnan(s.cadence_steps_per_min) for s in states)


def test_onset_valid_within_two_strides_and_stop_invalid_within_one_and_a_half() -> None:
    trial, ev = walk(31, 1.1)
    walking = list(trial_frames(trial))
    locs = walking[0].locations
    rng = np.random.default_rng(1)
    pre = still_frames(locs, 300, 0, rng)
    shift = 3_000_000_000
    walking = [SyncFrame(f.stamp_ns + shift, locs, f.acc, f.gyro, f.quat_xyzw, f.valid) for f in walking]
    post = still_frames(locs, 400, walking[-1].stamp_ns + 10_000_000, rng)
    states, _ = run(pre + walking + post)
    stamps = np.array([s.stamp_ns for s in states])
    stride_ns = float(np.mean(np.diff(ev["heel_strike_r"])))
    for leg in (LEG_RIGHT, LEG_LEFT):
        valid = np.array([s.phase_valid[leg] for s in states])
        assert not valid[:300].any()
        first = stamps[np.argmax(valid)]
        assert first - shift <= 2.0 * stride_ns, (leg, (first - shift) / stride_ns)
        last = stamps[len(valid) - 1 - np.argmax(valid[::-1])]
        assert last - walking[-1].stamp_ns <= 1.5 * stride_ns
        assert not valid[-100:].any()


def test_invalid_sensor_makes_only_its_leg_invalid_then_recovers() -> None:
    trial, ev = walk(41, 1.3)
    frames = list(trial_frames(trial))
    i_r = frames[0].locations.index("shank_r")
    lost = range(800, 1000)
    out = []
    for k, f in enumerate(frames):
        if k in lost:
            valid = f.valid.copy()
            valid[i_r] = False
            gyro = f.gyro.copy()
            gyro[i_r] = 0.0
            f = SyncFrame(f.stamp_ns, f.locations, f.acc, gyro, f.quat_xyzw, valid)
        out.append(f)
    states, _ = run(out)
    right = np.array([s.phase_valid[LEG_RIGHT] for s in states])
    left = np.array([s.phase_valid[LEG_LEFT] for s in states])
    assert right[700:800].all() and not right[800:1000].any()
    assert np.isnan([states[k].phase[LEG_RIGHT] for k in lost]).all()
    assert left[700:1100].all()  # the other leg keeps its phase
    assert right[1300:].all()  # back after the sensor returns (the left leg's stride helps)


def test_single_lost_samples_blank_only_their_frames() -> None:
    """Dropouts shorter than max_gap_s: the leg is invalid at those frames only, no event lost."""
    trial, ev = walk(42, 1.2)
    frames = list(trial_frames(trial))
    i_l = frames[0].locations.index("shank_l")
    lost = set(range(500, len(frames), 37))
    out = []
    for k, f in enumerate(frames):
        if k in lost:
            valid = f.valid.copy()
            valid[i_l] = False
            f = SyncFrame(f.stamp_ns, f.locations, f.acc, np.zeros_like(f.gyro), f.quat_xyzw, valid)
        out.append(f)
    states, _ = run(out)
    left = np.array([s.phase_valid[LEG_LEFT] for s in states])
    assert not left[sorted(lost)].any()
    kept = np.array([k not in lost for k in range(len(states))])
    assert left[400:][kept[400:]].all()
    det = events_of(states, LEG_LEFT, HEEL_STRIKE)
    window = (600_000_000, int(trial.time_ns[-1]) - 200_000_000)
    timing = event_timing(det, ev["heel_strike_l"], TOL_NS, window)
    assert timing.missed == 0 and timing.extra == 0 and timing.mae_ms < 8.0


def test_foot_imu_drives_a_leg_without_a_shank_imu() -> None:
    trial, ev = walk(51, 1.2)
    locs = ("pelvis", "foot_r", "foot_l")
    states, _ = run(trial_frames(trial, locs))
    det = events_of(states, LEG_RIGHT, HEEL_STRIKE)
    window = (600_000_000, int(trial.time_ns[-1]) - 200_000_000)
    timing = event_timing(det, ev["heel_strike_r"], TOL_NS, window)
    assert timing.missed == 0 and timing.extra == 0
    assert timing.mae_ms < 20.0


def test_reset_forgets_the_walk() -> None:
    trial, _ = walk(11, 1.2)
    frames = list(trial_frames(trial))
    states, est = run(frames)
    assert states[-1].phase_valid == (True, True)
    est.reset()
    again = [est.push(f) for f in frames[:60]]
    assert not any(v for s in again for v in s.phase_valid)
    assert again[-1].last_heel_strike_ns == (0, 0) or any(s.events for s in again)
