"""Domain randomization (sim/randomization.py): what it adds to the simulated IMUs, and that the
simulator without it is unchanged."""

from __future__ import annotations

import numpy as np

from gait_estimator.sim.generate import SPEED_RANGE, plan_trials, sample_subject, simulate_trial
from gait_estimator.sim.imu import ImuErrorModel
from gait_estimator.sim.randomization import (
    IMU_GRADES,
    DomainRandomization,
    heel_strikes_for,
    sample_error_model,
    soft_tissue,
)


def test_soft_tissue_is_a_damped_oscillation_started_at_each_heel_strike() -> None:
    dr = DomainRandomization()
    acc, gyro = soft_tissue("shank_r", np.array([0.5, 1.6]), 300, 100.0, dr, np.random.default_rng(1))
    mag = np.linalg.norm(acc, axis=1)
    assert np.all(mag[:50] == 0) and np.all(np.linalg.norm(gyro[:50], axis=1) == 0)  # before the strike
    assert mag[50:60].max() > 0.3  # excited at 0.5 s (amplitude m/s^2 scale)
    assert mag[100:160].max() < 0.05 * mag[50:60].max()  # decayed before the next strike
    assert mag[160:170].max() > 0.3  # excited again at 1.6 s
    # Off: nothing added.
    off = soft_tissue("shank_r", np.array([0.5]), 300, 100.0, DomainRandomization(soft_tissue_scale=0.0),
                      np.random.default_rng(1))
    assert not off[0].any() and not off[1].any()


def test_heel_strikes_per_location() -> None:
    ev = {"heel_strike_r": np.array([0.1, 1.2]), "heel_strike_l": np.array([0.65])}
    assert heel_strikes_for("thigh_l", ev).tolist() == [0.65]
    assert heel_strikes_for("pelvis", ev).tolist() == [0.1, 0.65, 1.2]


def test_an_imu_grade_is_drawn_from_the_table() -> None:
    rng = np.random.default_rng(0)
    drawn = {sample_error_model(ImuErrorModel(), DomainRandomization(), rng).acc_noise_density
             for _ in range(40)}
    assert drawn == {g["acc_noise_density"] for g in IMU_GRADES.values()}
    base = ImuErrorModel()
    assert sample_error_model(base, DomainRandomization(enabled=False), rng) is base


def test_randomized_trial_differs_and_plain_trial_is_unchanged() -> None:
    subject = sample_subject(np.random.default_rng(3))
    plain_a = simulate_trial(subject, 4.0, 1.2, seed=5, extras=False)
    plain_b = simulate_trial(subject, 4.0, 1.2, seed=5, extras=False, randomization=None)
    dr_a = simulate_trial(subject, 4.0, 1.2, seed=5, extras=False, randomization=DomainRandomization())
    dr_b = simulate_trial(subject, 4.0, 1.2, seed=5, extras=False, randomization=DomainRandomization())
    for loc in plain_a.imu:
        assert np.array_equal(plain_a.imu[loc]["acc"], plain_b.imu[loc]["acc"])
        assert np.array_equal(dr_a.imu[loc]["gyro"], dr_b.imu[loc]["gyro"])  # seeded: reproducible
    # Same moments (randomization is in the sensors), other sensor signals.
    assert np.array_equal(plain_a.moment_nm, dr_a.moment_nm)
    diff = np.abs(plain_a.imu["shank_r"]["acc"] - dr_a.imu["shank_r"]["acc"]).max()
    assert diff > 0.5, diff


def test_randomized_plan_spreads_speed_and_anthropometry() -> None:
    plain = plan_trials(60, 1.0, 11)
    wide = plan_trials(60, 1.0, 11, randomization=DomainRandomization())
    speeds = np.array([p[1] for p in wide])
    assert speeds.min() >= SPEED_RANGE[0] and speeds.max() <= SPEED_RANGE[1]
    assert np.ptp(speeds) > np.ptp([p[1] for p in plain])
    heights = [np.std([p[0]["height_m"] for p in plan]) for plan in (plain, wide)]
    assert heights[1] > 1.2 * heights[0], heights
    # Without randomization the plan is what it always was (same subjects from the same seed).
    assert [p[0]["height_m"] for p in plain] == [p[0]["height_m"] for p in plan_trials(60, 1.0, 11)]
