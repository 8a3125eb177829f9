"""Feature channels from synchronized IMU frames, as a model's metadata names them.

A channel is ``"<location>/<signal>"`` (``conventions.channel_name``). Signals per location:

- ``acc_x/y/z``: specific force incl. gravity, sensor frame, m/s^2;
- ``gyro_x/y/z``: angular velocity, sensor frame, rad/s;
- ``quat_x/y/z/w``: orientation sensor -> world, sign fixed to ``w >= 0``;
- ``roll/pitch/yaw``: the same orientation as static-axis xyz Euler angles (transforms3d
  ``"sxyz"``: R = Rz(yaw) Ry(pitch) Rx(roll)), rad;
- ``grav_x/y/z``: the unit direction of gravity (world -z, "down") in the sensor frame,
  i.e. ``R^T (0, 0, -1)``; yaw-free, so it does not drift with the heading.

The orientation representation is chosen when a model is trained (which channel names are in
its metadata) and is read back from the metadata here, never set separately.
:func:`channel_matrix` computes the same values for whole recordings (training, offline), so
online and offline features are one code path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gait_estimator.conventions import (
    ACC_SIGNALS,
    EULER_SIGNALS,
    GRAVITY_SIGNALS,
    GYRO_SIGNALS,
    QUAT_SIGNALS,
    channel_name,
)
from gait_estimator.core.samples import SyncFrame
from gait_estimator.errors import ModelMismatchError
from gait_estimator.runtime.metadata import ModelMetadata

__all__ = [
    "ORIENTATION_SIGNALS",
    "SIGNALS",
    "FeatureExtractor",
    "channel_matrix",
    "location_signals",
    "make_channels",
]

SIGNALS: tuple[str, ...] = ACC_SIGNALS + GYRO_SIGNALS + QUAT_SIGNALS + EULER_SIGNALS + GRAVITY_SIGNALS
_SIGNAL_INDEX = {s: i for i, s in enumerate(SIGNALS)}
ORIENTATION_SIGNALS: dict[str, tuple[str, ...]] = {
    "gravity": GRAVITY_SIGNALS,
    "euler": EULER_SIGNALS,
    "quat": QUAT_SIGNALS,
    "none": (),
}


def make_channels(locations: Sequence[str], orientation: str = "gravity") -> tuple[str, ...]:
    """Channel names for ``locations``: acc, gyro, then the chosen orientation representation."""
    if orientation not in ORIENTATION_SIGNALS:
        raise ValueError(f"orientation = {orientation!r}: must be one of {tuple(ORIENTATION_SIGNALS)}")
    sigs = ACC_SIGNALS + GYRO_SIGNALS + ORIENTATION_SIGNALS[orientation]
    return tuple(channel_name(loc, s) for loc in locations for s in sigs)


# Column ranges of the signal groups in a ``[..., len(SIGNALS)]`` table.
_GROUPS = {"acc": (0, 3), "gyro": (3, 6), "quat": (6, 10), "euler": (10, 13), "grav": (13, 16)}


def location_signals(
    acc: np.ndarray, gyro: np.ndarray, quat_xyzw: np.ndarray, groups=None, out: np.ndarray | None = None
) -> np.ndarray:
    """All ``SIGNALS`` for arrays with any leading shape: ``[..., 3], [..., 3], [..., 4] -> [..., 16]``.

    ``groups`` (names of ``_GROUPS``, default all): compute only those columns into ``out`` (the
    others keep whatever ``out`` holds): the per-frame path computes what its channels read, in
    the same arithmetic as the whole table."""
    if groups is None:
        groups = _GROUPS
    if out is None:
        out = np.empty(np.shape(acc)[:-1] + (len(SIGNALS),))
    if "acc" in groups:
        out[..., 0:3] = acc
    if "gyro" in groups:
        out[..., 3:6] = gyro
    if not ("quat" in groups or "euler" in groups or "grav" in groups):
        return out
    q = np.asarray(quat_xyzw, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., 3:4] < 0.0, -q, q)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    if "quat" in groups:
        out[..., 6:10] = q
    if "euler" in groups:
        out[..., 10] = np.arctan2(2.0 * (w * x + y * z), 1.0 - 2.0 * (x * x + y * y))
        out[..., 11] = np.arcsin(np.clip(2.0 * (w * y - z * x), -1.0, 1.0))
        out[..., 12] = np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
    if "grav" in groups:
        # Third row of R(q) = R^T e_z; gravity points along -e_z.
        out[..., 13] = -2.0 * (x * z - w * y)
        out[..., 14] = -2.0 * (y * z + w * x)
        out[..., 15] = -(1.0 - 2.0 * (x * x + y * y))
    return out


def _parse(channels: Sequence[str], locations: Sequence[str]) -> np.ndarray:
    """Flat gather index into a ``[L, len(SIGNALS)]`` table for each channel."""
    loc_index = {loc: i for i, loc in enumerate(locations)}
    idx = []
    for ch in channels:
        loc, _, sig = ch.partition("/")
        if loc not in loc_index:
            raise ModelMismatchError(
                f"channel {ch!r}: location {loc!r} is not among the synchronized IMUs {tuple(locations)}"
            )
        if sig not in _SIGNAL_INDEX:
            raise ModelMismatchError(f"channel {ch!r}: unknown signal {sig!r}; known signals: {SIGNALS}")
        idx.append(loc_index[loc] * len(SIGNALS) + _SIGNAL_INDEX[sig])
    return np.asarray(idx, dtype=np.intp)


def channel_matrix(channels: Sequence[str], imu: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
    """``[N, C]`` raw SI features of a recording: ``imu[location] = {"acc", "gyro", "quat"}``.

    The dataset layout of ``gait_estimator.sim.dataset.Trial.imu`` (quat x, y, z, w).
    """
    locations = tuple(dict.fromkeys(c.split("/", 1)[0] for c in channels))
    missing = [loc for loc in locations if loc not in imu]
    if missing:
        raise ModelMismatchError(f"recording lacks IMU location(s) {missing} needed by channels")
    table = np.stack(
        [location_signals(imu[loc]["acc"], imu[loc]["gyro"], imu[loc]["quat"]) for loc in locations], axis=1
    )  # [N, L, S]
    return table.reshape(table.shape[0], -1)[:, _parse(channels, locations)]


class FeatureExtractor:
    """One feature row per synchronized frame, in the model's channel order (raw SI units).

    ``row(frame)`` returns ``(row[C], valid)``; ``valid`` is False when any IMU the model reads
    is invalid in the frame. The frame's location order may differ from the model's; the
    mapping is built on the first frame (and rebuilt if the order changes).
    """

    def __init__(self, metadata: ModelMetadata) -> None:
        self.metadata = metadata
        self.channels = metadata.input_channels
        self.locations = metadata.locations
        self._frame_locations: tuple[str, ...] | None = None
        self._gather = np.empty(0, dtype=np.intp)
        self._loc_rows = np.empty(0, dtype=np.intp)

    def _bind(self, frame_locations: tuple[str, ...]) -> None:
        missing = [loc for loc in self.locations if loc not in frame_locations]
        if missing:
            raise ModelMismatchError(
                f"the model reads IMU location(s) {missing} that the synchronizer does not provide "
                f"(it provides {frame_locations})"
            )
        self._loc_rows = np.asarray([frame_locations.index(loc) for loc in self.locations], dtype=np.intp)
        self._gather = _parse(self.channels, self.locations)
        cols = self._gather % len(SIGNALS)
        self._groups = {g for g, (lo, hi) in _GROUPS.items() if ((cols >= lo) & (cols < hi)).any()}
        self._table = np.zeros((len(self.locations), len(SIGNALS)))
        self._frame_locations = frame_locations

    def row(self, frame: SyncFrame) -> tuple[np.ndarray, bool]:
        if frame.locations != self._frame_locations:
            self._bind(frame.locations)
        r = self._loc_rows
        table = location_signals(frame.acc[r], frame.gyro[r], frame.quat_xyzw[r], self._groups, self._table)
        valid = bool(frame.valid[r].all())
        return table.reshape(-1)[self._gather], valid
