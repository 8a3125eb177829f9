"""Simulated trials as rosbag2 (mcap by default, sqlite3 on request) via the replay writer.

Topics: ``imu/<location>`` (sensor_msgs/Imu) and ``gait/torque_reference`` (JointTorque,
SOURCE_REFERENCE, N m). Stamps are the trial's fixed sample stamps, so the same seed gives the
same messages.
"""

from __future__ import annotations

from pathlib import Path

from gait_estimator.sim.dataset import Trial


def write_bag(path, trial: Trial, storage: str = "mcap", overwrite: bool = False) -> Path:
    from gait_estimator.replay.trial_bag import write_trial_bag

    return write_trial_bag(path, trial, storage, overwrite=overwrite)
