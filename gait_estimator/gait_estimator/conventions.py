"""Names, units and sign conventions shared by every layer (one place, imported everywhere).

Joint torques follow the OpenSim gait2392 coordinates (as the Dorschky 2019 reference data):
a positive torque acts to increase the coordinate.

- ``hip_flexion_*``: + flexion (angle and moment).
- ``knee_angle_*``: + extension; the coordinate is negative in flexion, so the knee extensor
  moment of early stance is positive.
- ``ankle_angle_*``: + dorsiflexion; the plantarflexor moment of push-off is negative.

Winter (2009) reports extensor (hip, knee) and plantarflexor (ankle) moments as positive,
so ``WINTER_TO_OPENSIM_SIGN`` maps his moment curves onto ours (hip -, knee +, ankle -). His
angles (hip flexion +, knee flexion +, ankle dorsiflexion +) map with
``WINTER_ANGLE_TO_OPENSIM_SIGN`` (hip +, knee -, ankle +).

Frames: REP 103 (x forward, y left, z up) for the world; each IMU frame is attached to its
segment. Quaternions: ROS messages x,y,z,w; transforms3d w,x,y,z; scipy x,y,z,w. Convert only
with the helpers below.
"""

from __future__ import annotations

from typing import Final

import numpy as np

GRAVITY: Final[float] = 9.80665  # m/s^2, standard gravity

# IMU locations in canonical order (ImuFrame.locations, dataset keys).
IMU_LOCATIONS: Final[tuple[str, ...]] = (
    "pelvis",
    "thigh_l",
    "thigh_r",
    "shank_l",
    "shank_r",
    "foot_l",
    "foot_r",
)
OPTIONAL_IMU_LOCATIONS: Final[tuple[str, ...]] = ("trunk",)

# Per-IMU signal names. Feature channels are named "<location>/<signal>".
ACC_SIGNALS: Final[tuple[str, ...]] = ("acc_x", "acc_y", "acc_z")  # m/s^2, specific force
GYRO_SIGNALS: Final[tuple[str, ...]] = ("gyro_x", "gyro_y", "gyro_z")  # rad/s
QUAT_SIGNALS: Final[tuple[str, ...]] = ("quat_x", "quat_y", "quat_z", "quat_w")
EULER_SIGNALS: Final[tuple[str, ...]] = ("roll", "pitch", "yaw")  # rad, sxyz (REP 103)
GRAVITY_SIGNALS: Final[tuple[str, ...]] = ("grav_x", "grav_y", "grav_z")  # unit gravity dir

# Sagittal joint coordinates (OpenSim names), canonical output order.
JOINTS_R: Final[tuple[str, ...]] = ("hip_flexion_r", "knee_angle_r", "ankle_angle_r")
JOINTS_L: Final[tuple[str, ...]] = ("hip_flexion_l", "knee_angle_l", "ankle_angle_l")
JOINTS: Final[tuple[str, ...]] = JOINTS_R + JOINTS_L

# Multiply a Winter (2009) moment by this to get the OpenSim convention (moments only).
WINTER_TO_OPENSIM_SIGN: Final[dict[str, float]] = {"hip": -1.0, "knee": 1.0, "ankle": -1.0}
# Multiply a Winter (2009) joint angle by this to get the OpenSim coordinate.
WINTER_ANGLE_TO_OPENSIM_SIGN: Final[dict[str, float]] = {"hip": 1.0, "knee": -1.0, "ankle": 1.0}


def channel_name(location: str, signal: str) -> str:
    """Feature channel name, e.g. ``channel_name("thigh_r", "gyro_z") == "thigh_r/gyro_z"``."""
    return f"{location}/{signal}"


def joint_kind(joint: str) -> str:
    """``"hip"``, ``"knee"`` or ``"ankle"`` for an OpenSim coordinate name."""
    for kind in ("hip", "knee", "ankle"):
        if joint.startswith(kind):
            return kind
    raise ValueError(f"joint {joint!r}: not a hip, knee or ankle coordinate")


# Quaternion order conversion: the only place where the three libraries' orders meet.
def quat_xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    """ROS / scipy (x, y, z, w) -> transforms3d (w, x, y, z); works on [..., 4] arrays."""
    q = np.asarray(q)
    return np.concatenate([q[..., 3:4], q[..., 0:3]], axis=-1)


def quat_wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    """transforms3d (w, x, y, z) -> ROS / scipy (x, y, z, w); works on [..., 4] arrays."""
    q = np.asarray(q)
    return np.concatenate([q[..., 1:4], q[..., 0:1]], axis=-1)
