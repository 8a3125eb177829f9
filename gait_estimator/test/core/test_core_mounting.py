"""Mounting-fault detection (core.mounting) on simulated walks with injected faults.

Every walk is simulated here with domain randomisation (residual mounting rotation, soft-tissue
wobble, a drawn IMU grade) from seeds the thresholds were not set on; faults are injected with
sim.mounting_faults from ``ONSET_S`` on, after the monitor saw a few normal strides.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from gait_estimator.conventions import IMU_LOCATIONS
from gait_estimator.core.mounting import (
    DEAD_AXIS,
    FAULT,
    OK,
    ROTATED,
    SLIPPING,
    SWAPPED_LEFT_RIGHT,
    SWAPPED_THIGH_SHANK,
    WRONG_LEG,
    MountingConfig,
    MountingMonitor,
    affected_joints,
    stride_period,
)
from gait_estimator.core.samples import SyncFrame
from gait_estimator.errors import ConfigError
from gait_estimator.sim import mounting_faults as mf
from gait_estimator.sim.generate import sample_subject, simulate_trial
from gait_estimator.sim.randomization import DomainRandomization

RATE = 100.0
WALK_S = 14.0
ONSET_S = 5.0
ONSET = int(ONSET_S * RATE)


@cache
def walk(seed: int, speed: float) -> tuple[dict, float]:
    """(imu, stride time s) of a simulated, domain-randomised walk."""
    rng = np.random.default_rng(seed)
    subject = sample_subject(rng, f"T{seed}")
    trial = simulate_trial(subject, WALK_S, speed, RATE, seed=int(rng.integers(2**31 - 1)), extras=False,
                           randomization=DomainRandomization())
    hs = np.sort(np.asarray(trial.events["heel_strike_r"], dtype=float)) / RATE
    return {k: dict(v) for k, v in trial.imu.items()}, float(np.median(np.diff(hs)))


def latched(imu: dict) -> list[tuple[int, str, str, str]]:
    """(frame index, location, class, reason) of each sensor's fault as it latches."""
    mon = MountingMonitor(RATE, tuple(imu))
    out: dict[str, tuple[int, str, str, str]] = {}
    for k, frame in enumerate(mf.frames(imu, RATE)):
        for s in mon.push(frame).faults:
            out.setdefault(s.location, (k, s.location, s.fault, s.reason))
    return sorted(out.values())


def _rot(loc: str, rotvec: list[float]):
    return lambda imu, rng: mf.rotate(imu, loc, np.asarray(rotvec, dtype=float), ONSET)


FAULT_CASES = {  # name: (inject(imu, rng), sensors touched, class expected)
    "rotated 40 deg (x+y) thigh_l": (_rot("thigh_l", [28.28, 28.28, 0.0]), {"thigh_l"}, ROTATED),
    "rotated 90 deg about y pelvis": (_rot("pelvis", [0.0, 90.0, 0.0]), {"pelvis"}, ROTATED),
    "rotated 35 deg about z foot_r": (_rot("foot_r", [0.0, 0.0, 35.0]), {"foot_r"}, ROTATED),
    "upside down shank_r": (_rot("shank_r", [180.0, 0.0, 0.0]), {"shank_r"}, ROTATED),
    "swapped shank_r/shank_l": (lambda imu, rng: mf.swap(imu, "shank_r", "shank_l", ONSET),
                                {"shank_r", "shank_l"}, SWAPPED_LEFT_RIGHT),
    "swapped thigh_l/shank_l": (lambda imu, rng: mf.swap(imu, "thigh_l", "shank_l", ONSET),
                                {"thigh_l", "shank_l"}, SWAPPED_THIGH_SHANK),
    "foot_l on the right leg": (lambda imu, rng: mf.wrong_leg(imu, "foot_l", rng, ONSET),
                                {"foot_l"}, WRONG_LEG),
    "thigh_r on the left leg": (lambda imu, rng: mf.wrong_leg(imu, "thigh_r", rng, ONSET),
                                {"thigh_r"}, WRONG_LEG),
    "dead gyro_y shank_r": (lambda imu, rng: mf.dead_axis(imu, "shank_r", "gyro_y", ONSET),
                            {"shank_r"}, DEAD_AXIS),
    "dead acc_x pelvis": (lambda imu, rng: mf.dead_axis(imu, "pelvis", "acc_x", ONSET),
                          {"pelvis"}, DEAD_AXIS),
}


@pytest.mark.parametrize("speed", [0.7, 1.3, 1.8])
@pytest.mark.parametrize("case", sorted(FAULT_CASES))
def test_fault_detected_within_three_strides_with_sensor_and_class(case: str, speed: float) -> None:
    imu, stride = walk(4100, speed)
    make, touched, cls = FAULT_CASES[case]
    events = latched(make(imu, np.random.default_rng(1)))
    assert events, f"{case} at {speed} m/s: not detected"
    first = events[0]
    assert first[1] in touched and first[2] == cls, f"{case}: first fault {first}"
    strides = (first[0] - ONSET) / RATE / stride
    assert 0.0 < strides <= 3.0, f"{case} at {speed} m/s: {strides:.2f} strides"
    assert {e[1] for e in events} <= touched, f"{case}: other sensors latched: {events}"
    assert first[1] in first[3], "the reason names the sensor"


@pytest.mark.parametrize("axis", [(0, 0, 1), (1, 0, 0), (0.6, 0.8, 0.0)])
def test_slipping_is_detected_as_slipping_before_it_reaches_30_deg(axis: tuple[float, float, float]) -> None:
    imu, stride = walk(4101, 1.2)
    events = latched(mf.slip(imu, "thigh_r", np.array(axis), RATE, ONSET, max_deg=45.0, duration_s=10.0))
    assert events and events[0][1] == "thigh_r" and events[0][2] == SLIPPING, events
    seconds = (events[0][0] - ONSET) / RATE
    assert seconds < 30.0 / 4.5, f"slip detected {seconds:.1f} s after it began (30 deg at 6.7 s)"
    assert {e[1] for e in events} == {"thigh_r"}


@pytest.mark.parametrize("seed,speed", [(4200, 0.6), (4201, 1.0), (4202, 1.4), (4203, 1.9), (4204, 1.2)])
def test_clean_walks_raise_no_alarm_and_find_the_stride(seed: int, speed: float) -> None:
    imu, stride = walk(seed, speed)
    mon = MountingMonitor(RATE, tuple(imu))
    statuses = [mon.push(f) for f in mf.frames(imu, RATE)]
    assert all(s.level == OK for st in statuses for s in st.sensors), [
        st.summary() for st in statuses if not st.ok][:3]
    assert statuses[-1].walking
    assert statuses[-1].stride_s == pytest.approx(stride, rel=0.1)
    assert statuses[-1].summary() == "ok" and statuses[-1].joints_to_zero == ()


def standing(n: int, rng: np.random.Generator, locations: tuple[str, ...] = IMU_LOCATIONS) -> dict:
    """Standing (or sitting: the thigh horizontal) still: gravity in a fixed tilt, sensor noise."""
    out = {}
    for loc in locations:
        tilt = np.radians(90.0 if loc.startswith("thigh") else rng.uniform(-10, 10))
        g = 9.81 * np.array([np.sin(tilt), 0.0, np.cos(tilt)])
        out[loc] = {"acc": g + rng.normal(0, 0.02, (n, 3)), "gyro": rng.normal(0, 0.003, (n, 3))}
    return out


def test_standing_or_sitting_still_raises_no_alarm_and_is_not_walking() -> None:
    imu = standing(1500, np.random.default_rng(3))
    mon = MountingMonitor(RATE, tuple(imu))
    statuses = [mon.push(f) for f in mf.frames(imu, RATE)]
    assert all(st.ok and not st.walking for st in statuses)


def test_fault_latches_until_reset_and_names_the_joints_to_zero() -> None:
    imu, _ = walk(4100, 1.3)
    bad = mf.rotate(imu, "shank_l", [180, 0, 0], ONSET)
    mon = MountingMonitor(RATE, tuple(bad))
    frames = mf.frames(bad, RATE)
    for f in frames:
        st = mon.push(f)
    assert [s.location for s in st.faults] == ["shank_l"]
    assert st.joints_to_zero == ("knee_angle_l", "ankle_angle_l")
    assert "shank_l" in st.summary() and "upside down" in st.summary()
    # the fault stays latched through standing still ...
    still = standing(300, np.random.default_rng(0))
    for f in mf.frames(still, RATE, tuple(bad), t0_ns=frames[-1].stamp_ns + 10_000_000):
        st = mon.push(f)
    assert st.sensor("shank_l").level == FAULT and st.sensor("shank_l").fault == ROTATED
    # ... and reset clears it
    mon.reset()
    assert mon.status.ok and mon.status.joints_to_zero == ()


def test_affected_joints_follow_the_segments_each_joint_spans() -> None:
    assert affected_joints("pelvis") == ("hip_flexion_r", "hip_flexion_l")
    assert affected_joints("thigh_r") == ("hip_flexion_r", "knee_angle_r")
    assert affected_joints("shank_l") == ("knee_angle_l", "ankle_angle_l")
    assert affected_joints("foot_r") == ("ankle_angle_r",)
    assert affected_joints("trunk") == ()


def test_stride_period_of_a_periodic_signal() -> None:
    t = np.arange(600) / RATE
    x = np.abs(np.sin(np.pi * t / 1.1)) ** 3 + 0.3 * np.sin(2 * np.pi * t / 1.1)  # 1.1 s period
    period, acf = stride_period([x], RATE, 0.5, 2.5)
    assert period == pytest.approx(1.1, abs=0.02) and acf > 0.9
    assert np.isnan(stride_period([np.ones(600)], RATE, 0.5, 2.5)[0])


def test_bad_config_and_frames_are_refused_with_the_name() -> None:
    with pytest.raises(ConfigError, match="rate_hz"):
        MountingMonitor(0.0, IMU_LOCATIONS)
    with pytest.raises(ConfigError, match="max_stride_s"):
        MountingConfig(max_stride_s=4.0)
    with pytest.raises(ConfigError, match="confirm_s"):
        MountingConfig(confirm_s=-1.0)
    mon = MountingMonitor(RATE, IMU_LOCATIONS)
    frame = SyncFrame(0, ("pelvis",), np.zeros((1, 3)), np.zeros((1, 3)), np.array([[0, 0, 0, 1.0]]),
                      np.ones(1, dtype=bool))
    with pytest.raises(ConfigError, match="frame.locations"):
        mon.push(frame)


@pytest.mark.parametrize("locations", [("shank_r", "shank_l"), ("pelvis", "thigh_r", "thigh_l"),
                                       ("thigh_r", "shank_r", "foot_r")])
def test_fewer_imus_clean_is_quiet_and_upside_down_is_found(locations: tuple[str, ...]) -> None:
    full, stride = walk(4205, 1.1)
    imu = {loc: full[loc] for loc in locations}
    assert latched(imu) == []
    events = latched(mf.rotate(imu, locations[-1], [180.0, 0.0, 0.0], ONSET))
    assert [(e[1], e[2]) for e in events] == [(locations[-1], ROTATED)]
    assert (events[0][0] - ONSET) / RATE / stride <= 3.0


def test_an_invalid_stream_is_not_judged_and_does_not_upset_the_others() -> None:
    imu, _ = walk(4205, 1.1)
    mon = MountingMonitor(RATE, tuple(imu))
    dead_row = list(imu).index("foot_l")
    for f in mf.frames(mf.dead_axis(imu, "foot_l", "gyro_x"), RATE):
        valid = f.valid.copy()
        valid[dead_row] = False
        st = mon.push(SyncFrame(f.stamp_ns, f.locations, f.acc, f.gyro, f.quat_xyzw, valid))
    assert st.ok and st.walking
