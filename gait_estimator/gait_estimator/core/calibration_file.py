"""Calibration files: a wearer calibration as YAML (:func:`write_calibration`,
:func:`read_calibration`), refused with the path and the rule when malformed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator.conventions import IMU_LOCATIONS, OPTIONAL_IMU_LOCATIONS
from gait_estimator.core.calibration_types import (
    FORMAT,
    MIN_QUALITY,
    VERSION,
    SensorCalibration,
    WearerCalibration,
)
from gait_estimator.errors import CalibrationError

__all__ = ["read_calibration", "write_calibration"]

_SENSOR_KEYS = {"rotation_sensor_to_segment", "quality", "method", "min_quality", "details"}
_TOP_KEYS = {"format", "version", "wearer", "source", "created", "sensors"}


def write_calibration(cal: WearerCalibration, path: str | Path) -> Path:
    import yaml

    doc = {
        "format": FORMAT,
        "version": VERSION,
        "wearer": cal.wearer,
        "source": cal.source,
        "created": cal.created,
        "sensors": {
            loc: {
                "rotation_sensor_to_segment": [[round(float(v), 6) for v in row] for row in s.rotation],
                "quality": float(s.quality),
                "min_quality": float(s.min_quality),
                "method": s.method,
                "details": {k: float(v) for k, v in s.details.items()},
            }
            for loc, s in cal.sensors.items()
        },
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = "# Sensor-to-segment calibration (gait-estimator calibrate). v_segment = R v_sensor.\n"
    p.write_text(header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    return p


def _rotation(raw: Any, where: str) -> np.ndarray:
    try:
        r = np.array(raw, dtype=float)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{where}: rotation must be a 3x3 list of numbers") from exc
    if r.shape != (3, 3) or not np.all(np.isfinite(r)):
        raise CalibrationError(f"{where}: rotation must be a 3x3 list of numbers, got shape {r.shape}")
    err = float(np.abs(r @ r.T - np.eye(3)).max())
    if err > 1e-3 or np.linalg.det(r) < 0:
        raise CalibrationError(
            f"{where}: not a rotation (orthonormality error {err:.2g}, det {np.linalg.det(r):.3f})"
        )
    u, _, vt = np.linalg.svd(r)  # re-orthonormalise the rounded values
    return u @ vt


def read_calibration(path: str | Path) -> WearerCalibration:
    """A per-wearer YAML written by :func:`write_calibration`, validated (CalibrationError naming
    the file and entry)."""
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise CalibrationError(f"{p}: cannot read calibration: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise CalibrationError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CalibrationError(f"{p}: not a calibration file (needs 'format: {FORMAT}')")
    if raw.get("version") != VERSION:
        raise CalibrationError(f"{p}: version {raw.get('version')!r} is not supported (expected {VERSION})")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise CalibrationError(f"{p}: unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    sensors_raw = raw.get("sensors")
    if not isinstance(sensors_raw, dict) or not sensors_raw:
        raise CalibrationError(f"{p}: 'sensors' must be a non-empty mapping of location -> calibration")
    known = IMU_LOCATIONS + OPTIONAL_IMU_LOCATIONS
    sensors = {}
    for loc, s in sensors_raw.items():
        where = f"{p}: sensors.{loc}"
        if loc not in known:
            raise CalibrationError(f"{where}: unknown location; known: {list(known)}")
        if not isinstance(s, dict) or set(s) - _SENSOR_KEYS or "rotation_sensor_to_segment" not in s:
            raise CalibrationError(
                f"{where}: needs rotation_sensor_to_segment (keys allowed: {sorted(_SENSOR_KEYS)})"
            )
        q, mq = s.get("quality", 1.0), s.get("min_quality", MIN_QUALITY)
        if not all(isinstance(v, int | float) and 0.0 <= v <= 1.0 for v in (q, mq)):
            raise CalibrationError(f"{where}: quality {q!r} and min_quality {mq!r} must be numbers in [0, 1]")
        details = s.get("details") or {}
        if not isinstance(details, dict):
            raise CalibrationError(f"{where}: details must be a mapping")
        sensors[loc] = SensorCalibration(
            loc,
            _rotation(s["rotation_sensor_to_segment"], where),
            float(q),
            str(s.get("method", "given")),
            dict(details),
            float(mq),
        )
    return WearerCalibration(
        sensors, str(raw.get("wearer", "wearer")), str(raw.get("source", "")), str(raw.get("created", ""))
    )
