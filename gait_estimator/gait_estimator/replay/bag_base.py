"""What the rosbag2 reader and writer share: storages, default topic names, and the library
errors they turn into ``BagError`` (with the bag path) at every boundary where bag bytes are touched."""

from __future__ import annotations

import sqlite3
import struct

from gait_estimator.core import topology

__all__ = [
    "DEFAULT_COMMAND_TOPIC",
    "DEFAULT_ESTIMATE_TOPIC",
    "DEFAULT_FRAME_TOPIC",
    "DEFAULT_IMU_PREFIX",
    "DEFAULT_REFERENCE_TOPIC",
    "DIAGNOSTICS_TOPIC",
    "LIB_ERRORS",
    "STORAGES",
    "describe",
    "imu_topic",
    "normalise_topic",
]

STORAGES = ("mcap", "sqlite3")
DEFAULT_IMU_PREFIX = topology.TOPIC_IMU.split("{")[0]  # "imu/"
DEFAULT_FRAME_TOPIC = topology.TOPIC_FRAME
DEFAULT_REFERENCE_TOPIC = topology.TOPIC_REFERENCE
DEFAULT_ESTIMATE_TOPIC = topology.TOPIC_ESTIMATE
DEFAULT_COMMAND_TOPIC = topology.TOPIC_COMMAND
DIAGNOSTICS_TOPIC = topology.TOPIC_DIAGNOSTICS

# Everything rosbags, sqlite, the mcap parser or the OS raise on bad input. The reader wraps
# these into BagError (with the path) at every boundary where bag bytes are touched.
LIB_ERRORS: tuple[type[BaseException], ...]


def _lib_errors() -> tuple[type[BaseException], ...]:
    from rosbags.rosbag2 import ReaderError, WriterError

    errors: list[type[BaseException]] = [
        ReaderError,
        WriterError,
        OSError,
        EOFError,
        struct.error,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        AssertionError,
        sqlite3.Error,
        UnicodeDecodeError,
        OverflowError,  # a garbage length field in a damaged mcap chunk
        MemoryError,  # ... or one that asks for gigabytes
    ]
    try:
        import apsw

        errors.append(apsw.Error)
    except ImportError:  # pragma: no cover - rosbags' sqlite3 backend depends on apsw
        pass
    try:
        from rosbags.serde import SerdeError

        errors.append(SerdeError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


LIB_ERRORS = _lib_errors()


def normalise_topic(name: str) -> str:
    """Topic name with exactly one leading slash (rosbag2 records absolute names)."""
    return "/" + name.strip().lstrip("/")


def imu_topic(location: str, prefix: str = DEFAULT_IMU_PREFIX) -> str:
    """``imu/<location>`` (or ``<prefix><location>``)."""
    return f"{prefix}{location}"


def describe(exc: BaseException) -> str:
    text = str(exc).strip() or "no details"
    return f"{type(exc).__name__}: {text}"
