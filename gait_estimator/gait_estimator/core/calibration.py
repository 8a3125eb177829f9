"""Sensor-to-segment calibration: per IMU, the rotation from the sensor frame to the segment frame.

The models read each IMU in its segment frame (``sim/imu.py``, ``train/sim2real.py``): x forward,
y left, z up when standing in the neutral pose; the same on both legs (the frames are not
mirrored, so one set of rules serves left and right). A real sensor strapped on at any angle
measures ``v_sensor = R^T v_segment``; calibration finds ``R`` (``v_segment = R v_sensor``) from:

- **standing** (optional, first): the specific force points up, so its mean gives z;
- **walking**: for leg segments the dominant angular-velocity axis in the horizontal plane is the
  joint (medio-lateral) axis y; for the pelvis the forward direction is where the horizontal
  acceleration follows the rate of change of the vertical one (inverted-pendulum gait: braking
  while the vertical acceleration falls after heel strike, propulsion while it rises);
- **the sign of y** (left vs right, forward vs backward) from the shape of gait: the swing-phase
  peak of the thigh and shank rotate them backward about y (negative), the foot's push-off peak
  is positive, and the mean pitch while walking is forward for the thigh, backward for the shank
  and foot (with a standing period only);
- **walking alone**: z is the mean specific force over whole strides, turned by the typical
  mean segment pitch while walking (``PRIORS``), so expect a few degrees more error.

Each sensor gets a quality score in [0, 1] (stillness while standing, how planar the rotation is,
how clear the sign is, enough motion); below ``min_quality`` it is flagged and
:func:`apply_to_imu` refuses it (:func:`apply_to_frame` marks it invalid), so a bad calibration
is never used silently. :func:`check_alignment` scores how far signals are from the model's frame
(a mis-mounted, uncalibrated sensor scores low).

This module is the public API; the code lives in ``calibration_types`` (what a calibration is),
``calibration_estimate`` (finding it), ``calibration_apply`` (using it) and ``calibration_file``
(YAML).
"""

from __future__ import annotations

from gait_estimator.core.calibration_apply import (
    apply_to_arrays,
    apply_to_channels,
    apply_to_frame,
    apply_to_imu,
    apply_to_recordings,
    require_usable,
)
from gait_estimator.core.calibration_estimate import (
    PRIORS,
    calibrate_sensor,
    calibrate_wearer,
    check_alignment,
    find_standing,
)
from gait_estimator.core.calibration_file import read_calibration, write_calibration
from gait_estimator.core.calibration_types import (
    FORMAT,
    SensorCalibration,
    WearerCalibration,
    rotation_angle_deg,
)

__all__ = [
    "FORMAT",
    "PRIORS",
    "SensorCalibration",
    "WearerCalibration",
    "apply_to_arrays",
    "apply_to_channels",
    "apply_to_frame",
    "apply_to_imu",
    "apply_to_recordings",
    "calibrate_sensor",
    "calibrate_wearer",
    "check_alignment",
    "find_standing",
    "read_calibration",
    "require_usable",
    "rotation_angle_deg",
    "write_calibration",
]
