"""Exact gait events of a simulated trial and its IMU data as synchronized frames (ROS-free).

``simulate_trial`` stores events rounded to sample indices and only the right leg's phase. The
kinematics are the first draws of the trial's seeded generator, so running them again with the
same seed gives the same strides with the event times unrounded (s), for both legs: the
reference for gait phase and event timing (``core.gait_metrics``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gait_estimator.core.samples import SyncFrame
from gait_estimator.sim import model as md

__all__ = ["EVENT_KEYS", "exact_events", "trial_frames"]

EVENT_KEYS = ("heel_strike_r", "heel_strike_l", "toe_off_r", "toe_off_l")


def exact_events(subject: dict, duration_s: float, speed_mps: float, rate_hz: float, seed: int) -> dict:
    """Event times (s from the trial start) of ``simulate_trial`` with the same arguments."""
    kin = md.simulate_kinematics(subject, duration_s, speed_mps, rate_hz, np.random.default_rng(seed))
    return {k: np.asarray(kin.events[k], dtype=np.float64) for k in EVENT_KEYS}


def trial_frames(trial, locations: tuple[str, ...] | None = None) -> Iterator[SyncFrame]:
    """One :class:`SyncFrame` per sample of a simulated trial, on its sample grid; a row is
    invalid where that IMU lost the sample (``imu[loc]["valid"]``)."""
    locs = tuple(locations or trial.imu.keys())
    acc = np.stack([np.asarray(trial.imu[loc]["acc"], dtype=np.float64) for loc in locs], axis=1)
    gyro = np.stack([np.asarray(trial.imu[loc]["gyro"], dtype=np.float64) for loc in locs], axis=1)
    quat = np.stack([np.asarray(trial.imu[loc]["quat"], dtype=np.float64) for loc in locs], axis=1)
    valid = np.stack([np.asarray(trial.imu[loc]["valid"], dtype=bool) for loc in locs], axis=1)
    for k, stamp in enumerate(np.asarray(trial.time_ns, dtype=np.int64)):
        yield SyncFrame(int(stamp), locs, acc[k], gyro[k], quat[k], valid[k])
