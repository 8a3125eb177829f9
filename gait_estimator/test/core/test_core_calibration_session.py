"""The live calibration routine (``core.calibration_session``, what the ``calibrator`` node runs):
phases on data time, strides counted from a mounting-independent signal, failures named."""

from __future__ import annotations

import numpy as np
import pytest

from gait_estimator.core.calibration_session import CalibrationSession, stride_location
from gait_estimator.errors import ConfigError

RATE = 100.0


@pytest.fixture(scope="module")
def walk():
    from gait_estimator.sim.generate import sample_subject, simulate_trial

    return simulate_trial(sample_subject(np.random.default_rng(1)), 8.0, 1.0, RATE, seed=1, extras=False)


def feed(session, imu, first_k: int, count: int, standing: int = 0, shaky: tuple[str, ...] = ()):
    """``standing`` still samples (``shaky`` sensors swinging instead), then walking from the trial."""
    for k in range(first_k, first_k + count):
        for loc, sig in imu.items():
            if k < standing:
                a, g = np.array([0.0, 0.0, 9.81]), np.zeros(3)
                if loc in shaky:
                    g = np.array([0.0, 1.5 * np.sin(k / 5.0), 0.0])
            else:
                a, g = sig["acc"][k - standing], sig["gyro"][k - standing]
            session.push(loc, int(k * 1e9 / RATE), a, g)
        if session.finished:
            return k
    return None


def test_stand_then_walk_counts_the_strides_and_calibrates(walk) -> None:
    s = CalibrationSession(list(walk.imu), standing_s=1.0, strides=4)
    assert s.phase == "standing" and s.counter == "shank_l"
    end = feed(s, walk.imu, 0, 100 + len(walk.time_ns), standing=100)
    assert s.phase == "computing" and end is not None
    true = np.sum(walk.events["heel_strike_l"] <= end - 100)  # heel strikes walked by then
    assert abs(true - 4) <= 1, true
    s.compute()
    st = s.status()
    assert st["phase"] == "done" and st["flagged"] == [] and set(st["quality"]) == set(walk.imu)


def test_a_sensor_moving_while_standing_is_flagged_and_the_routine_fails(walk) -> None:
    s = CalibrationSession(list(walk.imu), standing_s=1.0, strides=4)
    feed(s, walk.imu, 0, 100 + len(walk.time_ns), standing=100, shaky=("thigh_r",))
    s.compute()
    assert s.phase == "failed" and s.result.flagged() == ["thigh_r"] and "thigh_r" in s.message


def test_no_walking_fails_after_max_walk_s_and_names_the_strides(walk) -> None:
    s = CalibrationSession(list(walk.imu), standing_s=0.5, strides=3, max_walk_s=2.0)
    g = np.tile([0.0, 0.0, 9.81], (400, 1))
    still = {loc: {"acc": g, "gyro": np.zeros((400, 3))} for loc in walk.imu}
    feed(s, still, 0, 400)
    assert s.phase == "failed" and "0 of 3 strides in 2 s" in s.message
    assert not s.push("pelvis", 10**10, np.zeros(3), np.zeros(3))  # ignored once finished


def test_needs_a_leg_imu_to_count_strides() -> None:
    assert stride_location(["pelvis", "thigh_r", "foot_r"]) == "thigh_r"
    with pytest.raises(ConfigError, match="leg IMU"):
        CalibrationSession(["pelvis"])
