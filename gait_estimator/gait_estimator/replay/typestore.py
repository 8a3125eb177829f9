"""A rosbags typestore for ROS 2 Jazzy with gait_estimator_msgs registered from its .msg files.

The offline path (bags, validation) therefore needs no generated message code and no ROS
install: the .msg files are found in the installed share directory (colcon or the venv
prefix) or, in a source checkout, next to this package.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from gait_estimator.errors import BagError

MSG_PACKAGE = "gait_estimator_msgs"
MSG_NAMES = ("JointTorque", "ImuFrame", "FeatureWindow", "ImuBundle", "GaitState", "GaitEvent")
JOINT_TORQUE = f"{MSG_PACKAGE}/msg/JointTorque"
IMU_FRAME = f"{MSG_PACKAGE}/msg/ImuFrame"
FEATURE_WINDOW = f"{MSG_PACKAGE}/msg/FeatureWindow"
IMU_BUNDLE = f"{MSG_PACKAGE}/msg/ImuBundle"
GAIT_STATE = f"{MSG_PACKAGE}/msg/GaitState"
GAIT_EVENT = f"{MSG_PACKAGE}/msg/GaitEvent"
IMU = "sensor_msgs/msg/Imu"


def msg_directory() -> Path:
    """Directory holding gait_estimator_msgs' .msg files.

    Search order: $GAIT_ESTIMATOR_MSG_DIR, every prefix in $AMENT_PREFIX_PATH, the running
    Python's prefix (the venv the repository's setup installs into), the source checkout.
    """
    candidates: list[Path] = []
    if override := os.environ.get("GAIT_ESTIMATOR_MSG_DIR"):
        candidates.append(Path(override))
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidates.append(Path(prefix) / "share" / MSG_PACKAGE / "msg")
    candidates.append(Path(sys.prefix) / "share" / MSG_PACKAGE / "msg")
    candidates.append(Path(__file__).resolve().parents[3] / MSG_PACKAGE / "msg")
    for directory in candidates:
        if all((directory / f"{name}.msg").is_file() for name in MSG_NAMES):
            return directory
    raise BagError(
        f"{MSG_PACKAGE} .msg files not found; looked in: {', '.join(str(c) for c in candidates)}"
        " (set GAIT_ESTIMATOR_MSG_DIR)"
    )


@lru_cache(maxsize=1)
def make_typestore() -> Typestore:
    """Jazzy typestore with sensor_msgs etc. built in and our messages registered."""
    store = get_typestore(Stores.ROS2_JAZZY)
    directory = msg_directory()
    types = {}
    for name in MSG_NAMES:
        text = (directory / f"{name}.msg").read_text(encoding="utf-8")
        types.update(get_types_from_msg(text, f"{MSG_PACKAGE}/msg/{name}"))
    store.register(types)
    return store
