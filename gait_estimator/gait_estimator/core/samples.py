"""Plain data records that flow through the core: one IMU sample in, one synchronized frame out.

Time is integer nanoseconds everywhere in core. Quaternions are (x, y, z, w), sensor frame ->
world frame (REP 103), as in ROS messages; convert with ``gait_estimator.conventions`` only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IDENTITY_QUAT_XYZW", "ImuSample", "SyncFrame"]

IDENTITY_QUAT_XYZW = np.array([0.0, 0.0, 0.0, 1.0])


@dataclass(frozen=True, slots=True)
class ImuSample:
    """One reading of one IMU.

    ``stamp_ns`` is the sensor's own stamp (device clock, or host clock if the driver stamps on
    receipt); the synchronizer maps it onto the host clock. ``acc`` is specific force including
    gravity (m/s^2), ``gyro`` angular velocity (rad/s), both in the sensor frame; ``quat_xyzw``
    the sensor orientation in the world frame.
    """

    location: str
    stamp_ns: int
    acc: np.ndarray  # [3]
    gyro: np.ndarray  # [3]
    quat_xyzw: np.ndarray  # [4]

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp_ns", int(self.stamp_ns))
        for name in ("acc", "gyro", "quat_xyzw"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))


@dataclass(frozen=True, slots=True)
class SyncFrame:
    """N IMUs resampled onto one instant of the synchronizer's fixed-rate grid.

    ``stamp_ns`` is the grid time (host clock after device-clock offset removal). Row ``i`` of
    ``acc``/``gyro``/``quat_xyzw`` belongs to ``locations[i]``. ``valid[i]`` is False when that
    stream has no sample yet or its newest sample is older than ``max_gap``; the row then holds
    zeros and the identity orientation (0, 0, 0, 1) and must not be used.
    """

    stamp_ns: int
    locations: tuple[str, ...]
    acc: np.ndarray  # [L, 3]
    gyro: np.ndarray  # [L, 3]
    quat_xyzw: np.ndarray  # [L, 4]
    valid: np.ndarray  # [L] bool
    # [L] bool: invalid because the sensor sent implausible values (a true fault, core.faults),
    # not merely late; None when unknown (treated as late)
    implausible: np.ndarray | None = None

    @property
    def all_valid(self) -> bool:
        return bool(self.valid.all())

    def index(self, location: str) -> int:
        return self.locations.index(location)
