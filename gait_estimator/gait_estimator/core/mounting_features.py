"""Stride features of one calibrated IMU for the mounting monitor (``core/mounting.py``) and its
thresholds (``MountingConfig``): the segment priors (what a well-mounted sensor shows over a
walking stride), the stride period, the gravity-referenced segment frame and the first-harmonic
features the checks compare."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from gait_estimator.errors import ConfigError

_AXES = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")


@dataclass(frozen=True, slots=True)
class MountingConfig:
    """Thresholds of the checks (set on simulated subjects and the real walkers' virtual IMUs;
    never on the Dorschky real IMUs)."""

    eval_period_s: float = 0.1  # how often the checks run
    history_s: float = 5.0  # samples kept (two of the longest strides)
    min_stride_s: float = 0.5
    max_stride_s: float = 2.5
    walk_acf: float = 0.4  # autocorrelation at the stride period that counts as walking
    walk_gyro_rms: float = 0.5  # rad/s: the most moving leg sensor's RMS while walking
    dead_acc_sd: float = 1e-3  # m/s^2
    dead_gyro_sd: float = 1e-4  # rad/s
    abs_rotation_deg: float = 35.0  # frame found vs the physical expectation
    rel_rotation_deg: float = 18.0  # frame found vs the baseline since reset
    slip_deg: float = 10.0  # drift from the baseline ...
    slip_rate_deg_s: tuple[float, float] = (2.0, 7.0)  # ... still growing at this rate (2-s fit)
    baseline_tau_s: float = 20.0  # the baseline follows slow changes (speed) with this time constant
    min_asym: float = 0.08  # |asymmetry| below this leaves the joint axis' sign to the expectation
    axis_ratio: float = 3.0  # the joint axis' variance over the next axis' that makes it stand out
    phase_tol_deg: float = 90.0  # off the legs' consensus by more: moves with the other leg
    swap_score: float = -1.0  # thigh/shank order score below this: swapped
    dead_window_s: float = 0.3  # the dead-axis check looks at this much of the newest signal
    # A check must hold this long to latch a fault: confirm_strides (then the stride windows hold
    # only samples after a change); slipping, when no other check holds, confirm_s.
    confirm_s: float = 0.5
    confirm_strides: float = 1.25

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            vals = v if isinstance(v, tuple) else (v,)
            if not all(isinstance(x, int | float) and math.isfinite(x) for x in vals):
                raise ConfigError(f"mounting.{f.name}", v, "must be finite numbers")
        if not 0.0 < self.min_stride_s < self.max_stride_s <= self.history_s / 2.0:
            raise ConfigError("mounting.max_stride_s", self.max_stride_s,
                              "need 0 < min_stride_s < max_stride_s <= history_s / 2")
        if self.eval_period_s <= 0 or self.confirm_s < 0 or self.baseline_tau_s <= 0:
            raise ConfigError("mounting.eval_period_s/confirm_s/baseline_tau_s",
                              (self.eval_period_s, self.confirm_s, self.baseline_tau_s),
                              "need eval_period_s > 0, confirm_s >= 0, baseline_tau_s > 0")
        lo, hi = self.slip_rate_deg_s
        if not 0.0 <= lo < hi:
            raise ConfigError("mounting.slip_rate_deg_s", self.slip_rate_deg_s, "need 0 <= low < high")



@dataclass(frozen=True, slots=True)
class SegmentPrior:
    """What a segment's calibrated IMU shows over a stride of walking."""

    mean_pitch_deg: float  # stride-mean pitch atan2(acc_x, acc_z)
    asym_sign: float  # sign of the swing/push-off asymmetry of w = -gyro_y (0: not used)
    phase_deg: float  # first-harmonic phase lead of w over the shank's (leg segments)


# Medians over simulated subjects (0.5-2.0 m/s, domain randomisation; thigh +7, shank -14 to -17,
# foot -15 to -17, pelvis -8 to -11 deg pitch; phase leads thigh +52, foot -11 deg) and the real
# walkers' virtual IMUs (thigh +6, shank -15, foot -13, pelvis -2; thigh lead +45): never the
# Dorschky IMUs. The spread between people and speeds (about +-15 deg) sets abs_rotation_deg.
PRIORS: dict[str, SegmentPrior] = {
    "pelvis": SegmentPrior(-8.0, 0.0, 0.0),
    "trunk": SegmentPrior(0.0, 0.0, 0.0),
    "thigh": SegmentPrior(7.0, 1.0, 52.0),
    "shank": SegmentPrior(-14.0, 1.0, 0.0),
    "foot": SegmentPrior(-15.0, -1.0, -11.0),
}



def stride_period(signals: Sequence[np.ndarray], rate_hz: float, min_s: float, max_s: float
                  ) -> tuple[float, float]:
    """(period s, autocorrelation there) of rotation-invariant leg signals (one per leg, each
    [N]): the shortest lag in [min_s, max_s] (and at most N / 2) whose summed unbiased
    autocorrelation is within 85 % of the best; (NaN, 0) when there is no such lag."""
    n = min(len(s) for s in signals) if signals else 0
    lo, hi = int(math.ceil(min_s * rate_hz)), min(int(max_s * rate_hz), n // 2)
    if hi <= lo + 2:
        return math.nan, 0.0
    acf = np.zeros(hi + 1)
    for s in signals:
        x = np.asarray(s[-n:], dtype=np.float64)
        x = x - x.mean()
        var = float(x @ x) / n
        if not var > 1e-12:
            continue
        f = np.fft.rfft(x, 2 * n)
        r = np.fft.irfft(f * np.conj(f))[: hi + 1] / (n - np.arange(hi + 1))
        acf += r / var
    acf /= max(len(signals), 1)
    seg = acf[lo: hi + 1]
    best = float(seg.max())
    if not best > 0:
        return math.nan, 0.0
    peaks = [k for k in range(1, len(seg) - 1) if seg[k] >= seg[k - 1] and seg[k] >= seg[k + 1]]
    k = next((k for k in peaks if seg[k] >= 0.85 * best), int(np.argmax(seg)))
    frac = 0.0
    if 0 < k < len(seg) - 1:  # parabolic peak: the stride to a fraction of a sample
        den = seg[k - 1] - 2.0 * seg[k] + seg[k + 1]
        frac = float(np.clip(0.5 * (seg[k - 1] - seg[k + 1]) / den, -0.5, 0.5)) if den < 0 else 0.0
    return (lo + k + frac) / rate_hz, float(seg[k])


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else None


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b of two 3-vectors (np.cross costs ten times more on one pair)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _frame(z: np.ndarray, y_hint: np.ndarray) -> np.ndarray | None:
    """Rows x, y, z of a right-handed frame with this z and y as close to ``y_hint`` as can be."""
    y = _unit(y_hint - (y_hint @ z) * z)
    if y is None:
        return None
    return np.array([_cross(y, z), y, z])


@lru_cache(maxsize=64)
def _harmonic(n: int) -> np.ndarray:
    """exp(-2 pi i k / n), k < n: the first harmonic of an n-sample stride."""
    return np.exp(-2j * np.pi * np.arange(n) / n)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the rotation between two frames (rows = axes)."""
    c = (float(np.trace(a @ b.T)) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def _change_deg(frame: np.ndarray, axis_ok: bool, base: np.ndarray, base_axis_ok: bool) -> float:
    """How far ``frame`` turned from ``base``: the whole rotation where both joint axes stand
    out, else gravity's direction alone."""
    if axis_ok and base_axis_ok:
        return _angle_deg(frame, base)
    return math.degrees(math.acos(min(1.0, max(-1.0, float(frame[2] @ base[2])))))


def _wrap_deg(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


@dataclass(slots=True)
class _Stride:
    """What one sensor showed over the last stride."""

    dead: str  # "" or the dead channel's name
    frame: np.ndarray | None  # rows x, y, z found (segment axes in sensor coordinates)
    axis_ok: bool  # the joint axis stands out (else only z is compared with a baseline)
    pitch_deg: float
    upside_down: bool
    rms_w: float  # RMS of the rate about the joint axis found
    phase_deg: float  # its first-harmonic phase (window start = 0)


def _stride_features(acc: np.ndarray, gyro: np.ndarray, frac: float, prior: SegmentPrior,
                     expected: np.ndarray, cfg: MountingConfig, n_dead: int) -> _Stride:
    """``acc``/``gyro``: the last whole samples of the stride plus the one before (weight ``frac``)."""
    sd = np.concatenate([acc[-n_dead:].std(axis=0), gyro[-n_dead:].std(axis=0)])
    lim = np.array([cfg.dead_acc_sd] * 3 + [cfg.dead_gyro_sd] * 3)
    dead = next((_AXES[i] for i in range(6) if sd[i] < lim[i]), "")
    # Mean specific force over exactly one stride (the velocity change over it is then ~0).
    g = (acc[1:].sum(axis=0) + frac * acc[0]) / (len(acc) - 1 + frac)
    acc, gyro = acc[1:], gyro[1:]
    z = _unit(g)
    pitch = math.degrees(math.atan2(float(g[0]), float(g[2])))
    if z is None:
        return _Stride(dead, None, False, pitch, False, 0.0, 0.0)
    # Joint axis: the dominant gyro axis in the plane normal to gravity; its sign from the gait's
    # shape where that is clear, else the sign nearer the expected frame.
    gh = gyro - np.outer(gyro @ z, z)
    ev, vec = np.linalg.eigh(np.cov(gh.T))
    axis_ok = bool(ev[-1] >= cfg.axis_ratio * max(ev[-2], 1e-12))
    axis = vec[:, -1]
    frame = _frame(z, axis)
    flipped = _frame(z, -axis)
    if frame is None or flipped is None:
        return _Stride(dead, None, False, pitch, float(z[2]) < 0.0, 0.0, 0.0)
    asym = 0.0
    if prior.asym_sign != 0.0:
        p = -(gyro @ axis)
        k = max(0, int(0.01 * (len(p) - 1)))
        part = np.partition(p, [k, len(p) - 1 - k])  # 1st and 99th percentile (nearest rank)
        lo, hi = float(part[k]), float(part[len(p) - 1 - k])
        asym = float((hi + lo) / max(hi - lo, 1e-9)) * prior.asym_sign
    nearer = _angle_deg(flipped, expected) < _angle_deg(frame, expected)
    if asym <= -cfg.min_asym or (asym < cfg.min_asym and nearer):
        axis, frame = -axis, flipped
    # Rate about the joint axis found: the same whatever the sensor's rotation.
    w = -(gyro @ axis)
    n = len(w)
    c = complex(w @ _harmonic(n))
    phase = math.degrees(math.atan2(c.imag, c.real))
    rms = float(np.sqrt(np.mean(w * w)))
    return _Stride(dead, frame, axis_ok, pitch, float(z[2]) < -0.5, rms, phase)


def _expected_frame(prior: SegmentPrior) -> np.ndarray:
    t = math.radians(prior.mean_pitch_deg)
    z = np.array([math.sin(t), 0.0, math.cos(t)])
    frame = _frame(z, np.array([0.0, 1.0, 0.0]))
    assert frame is not None
    return frame
