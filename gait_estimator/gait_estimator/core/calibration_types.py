"""What a sensor-to-segment calibration is: per IMU a rotation with its quality
(:class:`SensorCalibration`), per wearer the set (:class:`WearerCalibration`); see
``core/calibration.py`` for how it is found and used."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FORMAT", "MIN_QUALITY", "VERSION", "SensorCalibration", "WearerCalibration", "rotation_angle_deg"]

FORMAT = "gait_estimator.calibration"
VERSION = 1
MIN_QUALITY = 0.5


@dataclass
class SensorCalibration:
    """``rotation``: sensor -> segment (``v_segment = rotation @ v_sensor``); rows are the segment
    axes x, y, z written in sensor coordinates."""

    location: str
    rotation: np.ndarray
    quality: float
    method: str
    details: dict[str, float] = field(default_factory=dict)
    min_quality: float = MIN_QUALITY

    @property
    def flagged(self) -> bool:
        return not self.quality >= self.min_quality


@dataclass
class WearerCalibration:
    sensors: dict[str, SensorCalibration]
    wearer: str = "wearer"
    source: str = ""
    created: str = ""

    def flagged(self) -> list[str]:
        return [loc for loc, s in self.sensors.items() if s.flagged]


def rotation_angle_deg(r: np.ndarray) -> float:
    """Angle of a rotation matrix (deg)."""
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))
