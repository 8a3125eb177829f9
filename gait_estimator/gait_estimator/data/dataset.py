"""Dataset abstraction: recordings of IMU channels and joint moments on one uniform time base.

A :class:`Recording` is one continuous trial: ``inputs[N, C]`` in SI units (channels named
``"<location>/<signal>"`` as in :mod:`gait_estimator.conventions`) and ``moments[N, J]`` in
N·m/kg (body-mass normalised, OpenSim sign convention), sampled at ``sample_rate_hz``.
Loaders (:mod:`gait_estimator.data.loaders`) turn the simulator's dataset, generic CSV files and
OpenSim result files into recordings; everything downstream (training, evaluation, sweeps) only
sees recordings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gait_estimator import conventions
from gait_estimator.errors import ConfigError, DatasetError

__all__ = [
    "SIGNAL_GROUPS",
    "Recording",
    "channels_for",
    "parse_imus",
    "resample_array",
    "select_channels",
    "split_by_subject",
    "subjects_of",
]

# Signal groups usable on the command line (``--signals acc,gyro``).
SIGNAL_GROUPS: dict[str, tuple[str, ...]] = {
    "acc": conventions.ACC_SIGNALS,
    "gyro": conventions.GYRO_SIGNALS,
    "grav": conventions.GRAVITY_SIGNALS,
    "quat": conventions.QUAT_SIGNALS,
    "euler": conventions.EULER_SIGNALS,
    # The sagittal plane of a segment-aligned sensor frame (x forward, y left, z up, as the
    # simulator's IMUs): forward and vertical specific force, angular rate about the medio-lateral axis.
    "sagittal": ("acc_x", "acc_z", "gyro_y"),
}


@dataclass
class Recording:
    """One continuous trial on a uniform time base (see the module docstring)."""

    name: str
    subject_id: str
    mass_kg: float
    sample_rate_hz: float
    channels: tuple[str, ...]
    inputs: np.ndarray  # [N, C] float32, SI units
    joints: tuple[str, ...]
    moments: np.ndarray  # [N, J] float32, N·m/kg
    phase: np.ndarray | None = None  # [N] right gait-cycle phase in [0, 1), when known
    meta: dict[str, Any] = field(default_factory=dict)
    # [N, J] bool: False where a moment is not physically valid (e.g. a foot loaded off the force
    # plates); training and evaluation leave those samples out. ``None``: every sample is valid.
    valid: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.joints = tuple(self.joints)
        self.inputs = np.asarray(self.inputs, dtype=np.float32)
        self.moments = np.asarray(self.moments, dtype=np.float32)
        if self.inputs.ndim != 2 or self.inputs.shape[1] != len(self.channels):
            raise DatasetError(
                f"recording '{self.name}': inputs shape {self.inputs.shape} does not match "
                f"{len(self.channels)} channels"
            )
        if self.moments.ndim != 2 or self.moments.shape != (len(self.inputs), len(self.joints)):
            raise DatasetError(
                f"recording '{self.name}': moments shape {self.moments.shape} does not match "
                f"{len(self.inputs)} samples x {len(self.joints)} joints"
            )
        if self.valid is not None:
            self.valid = np.asarray(self.valid, dtype=bool)
            if self.valid.shape != self.moments.shape:
                raise DatasetError(
                    f"recording '{self.name}': validity mask shape {self.valid.shape} does not match "
                    f"moments {self.moments.shape}"
                )
        if not (self.sample_rate_hz > 0 and np.isfinite(self.sample_rate_hz)):
            raise DatasetError(f"recording '{self.name}': sample rate {self.sample_rate_hz!r} must be > 0 Hz")
        if not (self.mass_kg > 0 and np.isfinite(self.mass_kg)):
            raise DatasetError(f"recording '{self.name}': body mass {self.mass_kg!r} kg must be > 0")

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def duration_s(self) -> float:
        return len(self) / self.sample_rate_hz

    @property
    def locations(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.split("/", 1)[0] for c in self.channels))

    def select(self, channels: Sequence[str] | None = None, joints: Sequence[str] | None = None) -> Recording:
        """The same recording restricted to (and ordered as) ``channels`` and ``joints``."""
        inputs, moments, valid = self.inputs, self.moments, self.valid
        if channels is not None:
            inputs = inputs[:, _indices(self.channels, channels, f"recording '{self.name}'", "channel")]
        if joints is not None:
            jidx = _indices(self.joints, joints, f"recording '{self.name}'", "joint")
            moments = moments[:, jidx]
            valid = None if valid is None else valid[:, jidx]
        return replace(
            self,
            channels=tuple(channels or self.channels),
            inputs=inputs,
            joints=tuple(joints or self.joints),
            moments=moments,
            valid=valid,
        )

    def slice(self, start: int, stop: int, suffix: str = "") -> Recording:
        sl = slice(start, stop)
        return replace(
            self,
            name=self.name + suffix,
            inputs=self.inputs[sl],
            moments=self.moments[sl],
            phase=None if self.phase is None else self.phase[sl],
            valid=None if self.valid is None else self.valid[sl],
        )

    def fraction(self, start: float, stop: float, suffix: str = "") -> Recording:
        """Rows ``[start * N, stop * N)`` (time order), e.g. ``fraction(0.8, 1.0)`` = last 20 %."""
        n = len(self)
        return self.slice(int(round(start * n)), int(round(stop * n)), suffix)

    def resample(self, rate_hz: float) -> Recording:
        """This recording at ``rate_hz`` (linear interpolation, anti-alias low-pass when slowing)."""
        if abs(rate_hz - self.sample_rate_hz) < 1e-9:
            return self
        t = np.arange(len(self)) / self.sample_rate_hz
        t_new = np.arange(0.0, t[-1] + 0.5 / rate_hz, 1.0 / rate_hz)
        t_new = t_new[t_new <= t[-1] + 1e-9]
        phase = None
        if self.phase is not None:  # phase wraps at 1: interpolate its unwrapped angle
            unwrapped = np.unwrap(self.phase * 2 * np.pi) / (2 * np.pi)
            phase = np.mod(np.interp(t_new, t, unwrapped), 1.0)
        return replace(
            self,
            sample_rate_hz=float(rate_hz),
            inputs=resample_array(t, self.inputs, t_new, self.sample_rate_hz),
            moments=resample_array(t, self.moments, t_new, self.sample_rate_hz),
            phase=phase,
            # a resampled row is valid only where every source row it draws on is
            valid=None
            if self.valid is None
            else resample_array(t, self.valid.astype(np.float32), t_new) > 0.999,
        )


def _indices(have: Sequence[str], want: Sequence[str], where: str, what: str) -> list[int]:
    pos = {name: i for i, name in enumerate(have)}
    missing = [w for w in want if w not in pos]
    if missing:
        raise DatasetError(f"{where}: no {what}(s) {missing}; it has {list(have)}")
    return [pos[w] for w in want]


def resample_array(
    t: np.ndarray, values: np.ndarray, t_new: np.ndarray, rate_hz: float | None = None
) -> np.ndarray:
    """Interpolate ``values[N, K]`` sampled at ``t`` onto ``t_new`` (both seconds, increasing).

    When the new grid is coarser than the source (``rate_hz`` given), a zero-phase Butterworth
    low-pass at 0.4 x the new rate removes what would alias.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(t_new) > 1 and rate_hz is not None:
        new_rate = 1.0 / float(np.median(np.diff(t_new)))
        if new_rate < rate_hz * 0.99 and len(values) > 30:
            from scipy.signal import butter, sosfiltfilt

            sos = butter(4, 0.4 * new_rate, fs=rate_hz, output="sos")
            values = sosfiltfilt(sos, values, axis=0)
    out = np.empty((len(t_new), values.shape[1]), dtype=np.float32)
    for k in range(values.shape[1]):
        out[:, k] = np.interp(t_new, t, values[:, k])
    return out


_JOINT_SETS = {"right": "JOINTS_R", "left": "JOINTS_L", "all": "JOINTS"}


def parse_imus(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"pelvis,thigh_r"`` -> ``("pelvis", "thigh_r")``; ``None``/``"all"`` -> ``None``."""
    if text is None:
        return None
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if not items or items == ["all"]:
        return None
    known = conventions.IMU_LOCATIONS + conventions.OPTIONAL_IMU_LOCATIONS
    bad = [s for s in items if s not in known]
    if bad:
        raise ConfigError("imus", text, f"unknown location(s) {bad}; known: {list(known)}")
    return tuple(dict.fromkeys(items))


def parse_joints(text: str) -> tuple[str, ...]:
    """``right``/``left``/``all`` (the joint sets of ``conventions``) or a comma list of coordinates."""
    if text in _JOINT_SETS:
        return tuple(getattr(conventions, _JOINT_SETS[text]))
    joints = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [j for j in joints if j not in conventions.JOINTS]
    if bad or not joints:
        raise ConfigError("joints", text, f"must be right|left|all or names among {list(conventions.JOINTS)}")
    return joints


def channels_for(locations: Iterable[str], signals: Iterable[str] = ("acc", "gyro")) -> tuple[str, ...]:
    """Channel names for ``locations`` x signal groups, e.g. ``pelvis/acc_x`` ... ``pelvis/gyro_z``."""
    out = []
    for loc in locations:
        for group in signals:
            if group not in SIGNAL_GROUPS:
                raise ConfigError("signals", group, f"must be among {sorted(SIGNAL_GROUPS)}")
            out.extend(conventions.channel_name(loc, s) for s in SIGNAL_GROUPS[group])
    return tuple(out)


def select_channels(
    recordings: Sequence[Recording],
    imus: Sequence[str] | None = None,
    signals: Sequence[str] = ("acc", "gyro"),
    joints: Sequence[str] | None = None,
) -> list[Recording]:
    """Restrict every recording to the IMU subset (all common locations when ``None``) and joints."""
    if not recordings:
        raise DatasetError("no recordings to select from")
    if imus is None:
        common = [loc for loc in recordings[0].locations if all(loc in r.locations for r in recordings)]
        known = conventions.IMU_LOCATIONS + conventions.OPTIONAL_IMU_LOCATIONS
        order = [loc for loc in known if loc in common]
        imus = order + [loc for loc in common if loc not in order]
    channels = channels_for(imus, signals)
    return [r.select(channels, joints) for r in recordings]


def subjects_of(recordings: Sequence[Recording]) -> list[str]:
    return list(dict.fromkeys(r.subject_id for r in recordings))


def split_by_subject(recordings: Sequence[Recording]) -> dict[str, list[Recording]]:
    out: dict[str, list[Recording]] = {}
    for r in recordings:
        out.setdefault(r.subject_id, []).append(r)
    return out
