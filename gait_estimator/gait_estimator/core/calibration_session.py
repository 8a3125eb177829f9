"""A live calibration routine (ROS-free; ``nodes/calibrator.py`` is its adapter): stand still for
``standing_s`` seconds, then walk ``strides`` strides; then :func:`core.calibration.calibrate_wearer`.

Samples are pushed as they arrive (data time: their stamps), so the routine behaves the same on a
starved machine. Strides are counted on one leg IMU (shank, else thigh, else foot) from the norm
of its angular velocity, which does not depend on how the sensor is mounted: one stride per
swing-phase peak (hysteresis between ``STRIDE_HIGH`` and ``STRIDE_LOW`` rad/s, at most one per
``STRIDE_MIN_S``). Phases: ``standing`` -> ``walking`` -> ``done`` | ``failed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gait_estimator.core.calibration import WearerCalibration, calibrate_wearer
from gait_estimator.errors import CalibrationError, ConfigError

__all__ = ["CalibrationSession", "stack_samples", "stride_location"]

STRIDE_HIGH, STRIDE_LOW, STRIDE_MIN_S = 3.0, 1.0, 0.7


def stack_samples(rows) -> tuple[dict, float]:
    """``{location: [(stamp_ns, acc, gyro), ...]}`` (>= 2 each) -> ``({location: {"acc", "gyro"}}
    in stamp order, rate_hz)`` (the median rate over the locations)."""
    imu, rates = {}, []
    for loc, items in rows.items():
        items = sorted(items, key=lambda x: x[0])
        stamps = np.array([x[0] for x in items], dtype=np.int64)
        rates.append(1e9 / float(np.median(np.diff(stamps))))
        imu[loc] = {"acc": np.array([x[1] for x in items]), "gyro": np.array([x[2] for x in items])}
    return imu, float(np.median(rates))


def stride_location(locations: Sequence[str]) -> str:
    """The IMU strides are counted on: a shank, else a thigh, else a foot."""
    for part in ("shank", "thigh", "foot"):
        for loc in locations:
            if loc.startswith(part):
                return loc
    raise ConfigError("locations", list(locations), "need a leg IMU (shank, thigh or foot) to count strides")


class CalibrationSession:
    """One stand-then-walk calibration of ``locations`` (see the module docstring)."""

    def __init__(
        self,
        locations: Sequence[str],
        standing_s: float = 3.0,
        strides: int = 8,
        max_walk_s: float = 60.0,
        min_quality: float = 0.5,
        wearer: str = "wearer",
    ) -> None:
        if not standing_s >= 0 or strides < 1 or not max_walk_s > 0:
            raise ConfigError("calibration", (standing_s, strides, max_walk_s), "needs standing_s >= 0, "
                              "strides >= 1, max_walk_s > 0")
        self.locations = tuple(locations)
        self.standing_s, self.strides_needed, self.max_walk_s = standing_s, strides, max_walk_s
        self.min_quality, self.wearer = min_quality, wearer
        self.counter = stride_location(self.locations)
        self.samples: dict[str, list] = {loc: [] for loc in self.locations}  # (stamp, acc, gyro)
        self.phase = "standing"
        self.message = ""
        self.strides = 0
        self._t0: int | None = None  # first stamp of the stride-counting IMU
        self._walk_t0: int | None = None
        self._now = 0
        self._armed = True  # below STRIDE_LOW since the last stride
        self._last_stride: int | None = None
        self.result: WearerCalibration | None = None

    @property
    def seconds(self) -> float:
        """Data time since the start of the current phase (s)."""
        start = self._walk_t0 if self.phase != "standing" and self._walk_t0 is not None else self._t0
        return 0.0 if start is None else (self._now - start) / 1e9

    @property
    def finished(self) -> bool:
        return self.phase in ("done", "failed", "computing")

    def push(self, location: str, stamp_ns: int, acc: np.ndarray, gyro: np.ndarray) -> bool:
        """Add one sample; True when the phase changed (standing -> walking, walking -> computing)."""
        if self.finished or location not in self.samples:
            return False
        self.samples[location].append((int(stamp_ns), np.asarray(acc, float), np.asarray(gyro, float)))
        if location != self.counter:
            return False
        self._now = int(stamp_ns)
        if self._t0 is None:
            self._t0 = self._now
        if self.phase == "standing":
            if self._now - self._t0 >= self.standing_s * 1e9:
                self.phase, self._walk_t0 = "walking", self._now
                return True
            return False
        w = float(np.linalg.norm(gyro))
        if w < STRIDE_LOW:
            self._armed = True
        elif w > STRIDE_HIGH and self._armed and (
            self._last_stride is None or self._now - self._last_stride >= STRIDE_MIN_S * 1e9
        ):
            self.strides += 1
            self._armed, self._last_stride = False, self._now
        if self.strides >= self.strides_needed:
            self.phase = "computing"
            return True
        if self.seconds > self.max_walk_s:
            self.fail(f"{self.strides} of {self.strides_needed} strides in {self.max_walk_s:g} s of walking")
            return True
        return False

    def fail(self, message: str) -> None:
        self.phase, self.message = "failed", message

    def compute(self) -> WearerCalibration:
        """The calibration of the collected samples (phase ``done``; ``failed`` when a sensor is
        flagged). CalibrationError (phase ``failed``) when the data cannot be calibrated."""
        try:
            for loc, items in self.samples.items():
                if len(items) < 2:
                    raise CalibrationError(f"IMU '{loc}' sent {len(items)} sample(s) during the calibration")
            imu, rate = stack_samples(self.samples)
            self.result = calibrate_wearer(
                imu, rate, self.standing_s, self.wearer, "calibrator node", self.min_quality
            )
        except CalibrationError as exc:
            self.fail(str(exc))
            raise
        flagged = self.result.flagged()
        if flagged:
            self.fail(f"flagged (quality < {self.min_quality}): {', '.join(flagged)}; stand still, then walk")
        else:
            self.phase = "done"
        return self.result

    def status(self) -> dict:
        out = {
            "phase": self.phase,
            "seconds": round(self.seconds, 2),
            "strides": self.strides,
            "strides_needed": self.strides_needed,
            "standing_s": self.standing_s,
        }
        if self.result is not None:
            out["quality"] = {loc: s.quality for loc, s in self.result.sensors.items()}
            out["flagged"] = self.result.flagged()
        if self.message:
            out["message"] = self.message
        return out
