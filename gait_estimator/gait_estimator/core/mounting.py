"""Mounting-fault detection from physical consistency, streaming and causal (ROS-free).

Nothing here is trained on faults: every check compares the calibrated IMU signals (segment
frames: x forward, y left, z up when standing) with what a walking leg must produce.

Once per ``eval_period_s`` while the wearer walks, over the last stride (its period from the
autocorrelation of each leg's summed gyro norms, which no rotation, swap or dead axis changes):

- **dead axis**: a channel whose standard deviation over the newest ``dead_window_s`` is below
  ``dead_acc_sd`` / ``dead_gyro_sd`` (a walking segment moves every axis: noise and coupling at
  the least);
- **rotated / upside down**: the sensor's frame found from the stride, z = the mean specific
  force over exactly one stride (gravity: the accelerations average out), y = the dominant gyro
  axis normal to it (the joint axis), signed by the gait's shape where that is clear (the shank
  and thigh swing forward faster than they swing back; the foot's push-off outruns its swing),
  else by the nearer expectation; compared (a) with the physical expectation (z tilted by the
  segment's typical mean pitch, y left): ``abs_rotation_deg``; (b) with the frame found over the
  first stride since reset (a baseline that follows slow changes, ``baseline_tau_s``):
  ``rel_rotation_deg``. Upside down: gravity reads downward. Where the joint axis does not
  stand out (``axis_ratio``; the pelvis of real walkers) only gravity's direction is compared;
- **slipping**: the change from the baseline exceeds ``slip_deg`` while a 2-s line fit says it
  still grows at ``slip_rate_deg_s`` (a slow drift; a knock is a jump within one stride);
- **left/right swapped, wrong leg**: the first harmonic, at the stride frequency, of each leg
  sensor's rate about its joint axis found (so a rotated sensor keeps its phase), less its
  segment's phase lead over the shank, is its leg's phase; the right leg's and the left leg's
  + 180 deg must agree. A sensor more than ``phase_tol_deg`` off the consensus, whose frame is
  the one its twin on the other leg showed, moves with the other leg: both of the pair (or the
  twin not clearly on its own leg) -> swapped left/right; one -> that sensor is on the wrong leg;
- **thigh/shank swapped**: on each leg, the shank's rate exceeds the thigh's, its stride-mean
  pitch is behind the thigh's (the knee flexes) and it lags the thigh in phase; all reversed
  (``swap_score``), with each sensor's frame sound for the other segment -> swapped.

Standing still, nothing is checked (a seated wearer's thigh is horizontal: no false alarm), and
every sensor stays ``ok``. A check that holds at one evaluation makes the sensor ``suspect``;
once a check has held ``confirm_strides`` strides (the stride windows are then past a change),
the sensor latches a ``fault`` of the first class in ``_PRIORITY`` that holds then (slipping,
when it is the only check holding on any sensor, after ``confirm_s``), with a reason naming the
sensor, until :meth:`MountingMonitor.reset`. Each sensor names the joints whose estimate needs it (hip: pelvis
+ thigh, knee: thigh + shank, ankle: shank + foot, per side): ``joints``;
``MountingStatus.joints_to_zero`` is the union over the sensors at fault.

Not detectable from these signals: every left/right pair swapped at once (the legs are then
merely relabelled), a rotation present from the first stride that stays within the spread of
walking frames between people (under about ``abs_rotation_deg``), a turn of the pelvis about
the vertical when its joint axis does not stand out.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gait_estimator.conventions import JOINTS
from gait_estimator.core.mounting_features import (
    PRIORS,
    MountingConfig,
    SegmentPrior,
    _angle_deg,
    _change_deg,
    _expected_frame,
    _frame,
    _Stride,
    _stride_features,
    _unit,
    _wrap_deg,
    stride_period,
)
from gait_estimator.core.samples import SyncFrame
from gait_estimator.errors import ConfigError

__all__ = [
    "DEAD_AXIS",
    "FAULT",
    "FAULT_CLASSES",
    "OK",
    "ROTATED",
    "SLIPPING",
    "SUSPECT",
    "SWAPPED_LEFT_RIGHT",
    "SWAPPED_THIGH_SHANK",
    "WRONG_LEG",
    "MountingConfig",
    "MountingMonitor",
    "MountingStatus",
    "SensorStatus",
    "affected_joints",
    "stride_period",
]

OK, SUSPECT, FAULT = "ok", "suspect", "fault"
ROTATED = "rotated"  # includes upside down
SLIPPING = "slipping"
SWAPPED_LEFT_RIGHT = "swapped_left_right"
SWAPPED_THIGH_SHANK = "swapped_thigh_shank"
WRONG_LEG = "wrong_leg"
DEAD_AXIS = "dead_axis"
FAULT_CLASSES = (ROTATED, SLIPPING, SWAPPED_LEFT_RIGHT, SWAPPED_THIGH_SHANK, WRONG_LEG, DEAD_AXIS)
# When several checks hold for one sensor, the first class here explains the others.
_PRIORITY = (DEAD_AXIS, SWAPPED_THIGH_SHANK, SWAPPED_LEFT_RIGHT, WRONG_LEG, ROTATED, SLIPPING)
LEG_SEGMENTS = ("thigh", "shank", "foot")


@dataclass(frozen=True, slots=True)
class SensorStatus:
    """One IMU: ``level`` ok | suspect | fault; ``fault`` its class ("" when ok) from
    ``FAULT_CLASSES``; ``reason`` one line naming the sensor; ``joints`` the joint coordinates
    whose estimate uses it (``affected_joints``); ``since_ns`` the frame stamp at which the level
    was reached (0 when ok)."""

    location: str
    level: str
    fault: str
    reason: str
    joints: tuple[str, ...]
    since_ns: int = 0


@dataclass(frozen=True, slots=True)
class MountingStatus:
    """Every IMU's status at one frame. ``walking``: the last evaluation saw walking (checks
    ran); ``stride_s`` its stride period (NaN when not walking)."""

    stamp_ns: int
    walking: bool
    stride_s: float
    sensors: tuple[SensorStatus, ...]

    @property
    def ok(self) -> bool:
        return all(s.level == OK for s in self.sensors)

    @property
    def faults(self) -> tuple[SensorStatus, ...]:
        return tuple(s for s in self.sensors if s.level == FAULT)

    @property
    def joints_to_zero(self) -> tuple[str, ...]:
        """Joints (``conventions.JOINTS`` order) whose estimate uses a sensor at fault."""
        bad = {j for s in self.faults for j in s.joints}
        return tuple(j for j in JOINTS if j in bad)

    def sensor(self, location: str) -> SensorStatus:
        for s in self.sensors:
            if s.location == location:
                return s
        raise KeyError(location)

    def summary(self) -> str:
        """One line: "ok", or the reasons of the sensors not ok (faults first)."""
        bad = sorted((s for s in self.sensors if s.level != OK), key=lambda s: s.level != FAULT)
        return "; ".join(s.reason for s in bad) if bad else "ok"


def affected_joints(location: str) -> tuple[str, ...]:
    """Joint coordinates whose estimate needs the IMU at ``location``: hip = pelvis + thigh,
    knee = thigh + shank, ankle = shank + foot, per side; () for a location no joint uses."""
    seg, _, side = location.partition("_")
    if seg == "pelvis":
        return ("hip_flexion_r", "hip_flexion_l")
    names = {"thigh": ("hip_flexion", "knee_angle"), "shank": ("knee_angle", "ankle_angle"),
             "foot": ("ankle_angle",)}.get(seg, ())
    return tuple(f"{n}_{side}" for n in names) if side in ("r", "l") else ()


class _Sensor:
    """Latched state and baseline of one IMU."""

    def __init__(self, location: str) -> None:
        self.location = location
        seg, _, side = location.partition("_")
        self.segment, self.side = seg, side
        self.prior = PRIORS.get(seg, SegmentPrior(0.0, 0.0, 0.0))
        self.expected = _expected_frame(self.prior)
        self.joints = affected_joints(location)
        self.reset()

    def reset(self) -> None:
        self.baseline: np.ndarray | None = None
        self.baseline_axis_ok = False
        self.collect: list[tuple[float, np.ndarray, bool]] = []  # (t, frame, axis_ok) until the baseline
        self.drift: deque[tuple[float, float]] = deque()  # (t, change from baseline)
        self.held: dict[str, float] = {}  # class -> time its check started to hold
        self.level, self.fault, self.reason, self.since_ns = OK, "", "", 0
        self.status = SensorStatus(self.location, OK, "", "", self.joints)


class MountingMonitor:
    """Streaming mounting-fault checks of every IMU of ``locations`` (``SyncFrame.locations``)
    at ``rate_hz`` frames per second; :meth:`push` each frame in stamp order."""

    def __init__(self, rate_hz: float, locations: Sequence[str],
                 config: MountingConfig | None = None) -> None:
        if not (isinstance(rate_hz, int | float) and math.isfinite(rate_hz) and rate_hz > 0):
            raise ConfigError("rate_hz", rate_hz, "must be a finite number > 0")
        self.rate_hz = float(rate_hz)
        self.locations = tuple(locations)
        if not self.locations or len(set(self.locations)) != len(self.locations):
            raise ConfigError("locations", list(self.locations),
                              "must be distinct IMU locations, at least one")
        self.config = config or MountingConfig()
        self._n_hist = int(round(self.config.history_s * self.rate_hz))
        self._every = max(1, int(round(self.config.eval_period_s * self.rate_hz)))
        self._sensors = [_Sensor(loc) for loc in self.locations]
        self._legs = {side: [i for i, s in enumerate(self._sensors)
                             if s.side == side and s.segment in LEG_SEGMENTS] for side in ("r", "l")}
        k = len(self.locations)
        self._acc = np.zeros((self._n_hist, k, 3))
        self._gyro = np.zeros((self._n_hist, k, 3))
        self._valid = np.zeros((self._n_hist, k), dtype=bool)
        self.reset()

    def reset(self) -> None:
        """Forget the history, the baselines and every latched fault (after a re-calibration)."""
        for s in self._sensors:
            s.reset()
        self._valid[:] = False
        self._count = 0
        self._t0_ns: int | None = None
        self._walking, self._stride_s = False, math.nan
        self._status = self._make_status(0)

    # -- streaming --------------------------------------------------------------------
    def push(self, frame: SyncFrame) -> MountingStatus:
        """Add one frame; the status at its stamp (the checks run every ``eval_period_s``)."""
        if frame.locations is not self.locations and frame.locations != self.locations:
            raise ConfigError("frame.locations", list(frame.locations),
                              f"must be the monitor's locations {list(self.locations)}")
        i = self._count % self._n_hist
        valid = np.asarray(frame.valid, dtype=bool)
        acc, gyro = np.asarray(frame.acc, dtype=np.float64), np.asarray(frame.gyro, dtype=np.float64)
        finite = np.isfinite(acc).all(axis=1) & np.isfinite(gyro).all(axis=1)
        self._acc[i], self._gyro[i], self._valid[i] = acc, gyro, valid & finite
        self._count += 1
        if self._t0_ns is None:
            self._t0_ns = int(frame.stamp_ns)
        if self._count % self._every == 0:
            self._evaluate((int(frame.stamp_ns) - self._t0_ns) / 1e9, int(frame.stamp_ns))
            self._status = self._make_status(int(frame.stamp_ns))
        elif self._status.stamp_ns != frame.stamp_ns:
            self._status = MountingStatus(int(frame.stamp_ns), self._status.walking, self._status.stride_s,
                                          self._status.sensors)
        return self._status

    @property
    def status(self) -> MountingStatus:
        return self._status

    def _history(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = min(self._count, self._n_hist)
        idx = (np.arange(self._count - n, self._count)) % self._n_hist
        return self._acc[idx], self._gyro[idx], self._valid[idx]

    # -- checks -----------------------------------------------------------------------
    def _evaluate(self, t: float, t_ns: int) -> None:
        cfg = self.config
        acc, gyro, valid = self._history()
        norms = np.where(valid, np.linalg.norm(gyro, axis=2), 0.0)
        legs = [norms[:, idx].sum(axis=1) for idx in self._legs.values() if idx]
        if not legs:  # no leg IMU: the stride comes from whatever there is
            legs = [norms.sum(axis=1)]
        period, acf = stride_period(legs, self.rate_hz, cfg.min_stride_s, cfg.max_stride_s)
        p = int(period * self.rate_hz) if period == period else 0
        frac = period * self.rate_hz - p if p else 0.0
        rms = np.sqrt(np.mean(norms[-p:] ** 2, axis=0)) if p else np.zeros(len(self._sensors))
        leg_idx = [i for idx in self._legs.values() for i in idx] or list(range(len(self._sensors)))
        walking = bool(p and acf >= cfg.walk_acf and float(rms[leg_idx].max()) >= cfg.walk_gyro_rms)
        self._walking, self._stride_s = walking, (period if walking else math.nan)
        if not walking:
            for s in self._sensors:
                s.held.clear()
                if s.level == SUSPECT:
                    s.level, s.reason, s.since_ns = OK, "", 0
            return
        n_dead = max(3, min(p, int(round(cfg.dead_window_s * self.rate_hz))))
        feats: list[_Stride | None] = []
        for k, s in enumerate(self._sensors):
            if p + 1 > len(valid) or not valid[-p - 1:, k].all():
                feats.append(None)
                continue
            feats.append(_stride_features(acc[-p - 1:, k], gyro[-p - 1:, k], frac, s.prior, s.expected,
                                          cfg, n_dead))
        found: list[dict[str, str]] = [{} for _ in self._sensors]
        for k, (s, f) in enumerate(zip(self._sensors, feats, strict=True)):
            if f is not None:
                found[k].update(self._single_checks(s, f, t, period))
        self._swap_checks(feats, found)
        self._phase_checks(feats, found)
        hold = max(cfg.confirm_s, cfg.confirm_strides * period)
        alone = sum(1 for f in found if f) == 1  # one sensor drifting: a slip, not a swap
        for k, s in enumerate(self._sensors):
            self._update(s, found[k], t, t_ns, hold, alone)

    def _single_checks(self, s: _Sensor, f: _Stride, t: float, period: float) -> dict[str, str]:
        cfg = self.config
        out: dict[str, str] = {}
        if f.dead:
            out[DEAD_AXIS] = f"{s.location}: {f.dead} is flat while walking (dead axis)"
            return out
        if f.frame is None:
            return out
        frame = f.frame
        if s.segment in LEG_SEGMENTS:
            absolute = _angle_deg(frame, s.expected)
        else:  # the pelvis' joint axis has no sign the gait gives: gravity alone, the axis vs baseline
            absolute = math.degrees(math.acos(min(1.0, max(-1.0, float(frame[2] @ s.expected[2])))))
            if s.baseline is not None and float(frame[1] @ s.baseline[1]) < 0.0:
                frame = np.stack([-frame[0], -frame[1], frame[2]])
        if f.upside_down:
            out[ROTATED] = f"{s.location}: upside down (gravity reads downward)"
        elif absolute > cfg.abs_rotation_deg:
            out[ROTATED] = f"{s.location}: rotated {absolute:.0f} deg from its segment's walking frame"
        change = math.nan
        if s.baseline is not None:
            change = _change_deg(frame, f.axis_ok, s.baseline, s.baseline_axis_ok)
            s.drift.append((t, change))
            while s.drift and s.drift[0][0] < t - 2.0:
                s.drift.popleft()
            if change > cfg.rel_rotation_deg and ROTATED not in out:
                out[ROTATED] = f"{s.location}: rotated {change:.0f} deg since the walk began"
            if change > cfg.slip_deg and s.drift[0][0] <= t - 1.5:
                tt, cc = np.array([d[0] for d in s.drift]), np.array([d[1] for d in s.drift])
                rate = float(np.polyfit(tt - t, cc, 1)[0])  # deg/s over the last 2 s
                lo, hi = cfg.slip_rate_deg_s
                past = float(cc[tt <= t - 1.5][-1])  # a slip was under way 1.5 s ago already
                if lo <= rate <= hi and 2.5 <= past <= change - 3.0:
                    out[SLIPPING] = f"{s.location}: slipping ({change:.0f} deg drift, {rate:.0f} deg/s)"
        # Baseline: the mean frame over the first stride (of stride windows), then a slow average
        # while the sensor looks steady.
        if not out and (change != change or change < cfg.slip_deg / 2.0):
            if s.baseline is None:
                s.collect.append((t, frame, f.axis_ok))
                if t - s.collect[0][0] >= max(period, 1.0):
                    z = _unit(np.sum([c[1][2] for c in s.collect], axis=0))
                    y0 = s.collect[0][1][1]  # (the pelvis' axis has no sign of its own: align)
                    y = np.sum([c[1][1] * (1.0 if c[1][1] @ y0 >= 0 else -1.0) for c in s.collect], axis=0)
                    base = None if z is None else _frame(z, y)
                    if base is not None:
                        s.baseline, s.baseline_axis_ok = base, all(c[2] for c in s.collect)
                    s.collect.clear()
            else:
                s.baseline_axis_ok = s.baseline_axis_ok and f.axis_ok
                a = min(1.0, cfg.eval_period_s / cfg.baseline_tau_s)
                z = _unit((1 - a) * s.baseline[2] + a * frame[2])
                mixed = None if z is None else _frame(z, (1 - a) * s.baseline[1] + a * frame[1])
                s.baseline = mixed if mixed is not None else s.baseline
        return out

    def _swap_checks(self, feats: list[_Stride | None], found: list[dict[str, str]]) -> None:
        """Thigh vs shank of each leg: rate, mean pitch (the knee flexes) and phase order."""
        for side in ("r", "l"):
            ti = self._find(f"thigh_{side}")
            si = self._find(f"shank_{side}")
            if ti is None or si is None:
                continue
            ft, fs = feats[ti], feats[si]
            if ft is None or fs is None or ft.dead or fs.dead or not (ft.rms_w > 0 and fs.rms_w > 0):
                continue
            # A rotated sensor also upsets the order: a swap must leave both frames sound.
            thigh, shank = self._sensors[ti], self._sensors[si]
            if not (self._explains_swap(ft, shank) and self._explains_swap(fs, thigh)):
                continue
            lead = _wrap_deg(ft.phase_deg - fs.phase_deg)
            score = (math.log2(fs.rms_w / ft.rms_w) + (ft.pitch_deg - fs.pitch_deg) / 15.0
                     + math.sin(math.radians(lead)) / math.sin(math.radians(PRIORS["thigh"].phase_deg)))
            if score < self.config.swap_score:
                why = f"thigh_{side} and shank_{side} swapped (order score {score:.1f})"
                found[ti][SWAPPED_THIGH_SHANK] = why
                found[si][SWAPPED_THIGH_SHANK] = why

    def _explains_swap(self, f: _Stride, other: _Sensor) -> bool:
        """``f`` looks like ``other``'s sensor: its frame near ``other``'s expected one (and near
        ``other``'s baseline when there is one)."""
        cfg = self.config
        if f.frame is None or f.upside_down or _angle_deg(f.frame, other.expected) > cfg.abs_rotation_deg:
            return False
        return other.baseline is None or _change_deg(
            f.frame, f.axis_ok, other.baseline, other.baseline_axis_ok) <= cfg.rel_rotation_deg

    def _phase_checks(self, feats: list[_Stride | None], found: list[dict[str, str]]) -> None:
        """Each leg sensor's implied right-leg phase against the consensus of all of them."""
        implied: dict[int, float] = {}
        for side, idx in self._legs.items():
            for k in idx:
                f = feats[k]
                if f is None or f.dead or f.frame is None or f.rms_w <= 0:
                    continue
                implied[k] = f.phase_deg - self._sensors[k].prior.phase_deg - (180.0 if side == "l" else 0.0)
        if len(implied) < 3:
            return
        tol = self.config.phase_tol_deg
        keys = list(implied)
        support = {k: sum(abs(_wrap_deg(implied[j] - implied[k])) < 60.0 for j in keys) for k in keys}
        anchor = max(keys, key=lambda k: support[k])
        group = [implied[j] for j in keys if abs(_wrap_deg(implied[j] - implied[anchor])) < 60.0]
        if 2 * len(group) <= len(keys):
            return  # no majority: nothing to compare with
        ref = math.degrees(math.atan2(sum(math.sin(math.radians(a)) for a in group),
                                      sum(math.cos(math.radians(a)) for a in group)))
        resid = {k: abs(_wrap_deg(implied[k] - ref)) for k in keys}
        off = {k for k in keys if resid[k] > tol}
        for k in sorted(off):
            s = self._sensors[k]
            twin = self._find(f"{s.segment}_{'l' if s.side == 'r' else 'r'}")
            f = feats[k]
            if f is None or (twin is not None and not self._explains_swap(f, self._sensors[twin])):
                continue  # not the other leg's sensor as it was seen: a rotation, not a swap
            # The twin moving with this leg (or not clearly with its own): both swapped.
            if twin is not None and (twin in off or resid.get(twin, 0.0) > tol / 2.0):
                why = f"{s.segment}_r and {s.segment}_l swapped (each moves with the other leg)"
                found[k][SWAPPED_LEFT_RIGHT] = found[twin][SWAPPED_LEFT_RIGHT] = why
            else:
                other = "left" if s.side == "r" else "right"
                found[k][WRONG_LEG] = f"{s.location}: moves with the {other} leg (on the wrong leg)"

    def _find(self, location: str) -> int | None:
        try:
            return self.locations.index(location)
        except ValueError:
            return None

    def _update(self, s: _Sensor, found: dict[str, str], t: float, t_ns: int, hold: float,
                alone: bool) -> None:
        for cls in list(s.held):
            if cls not in found:
                del s.held[cls]
        for cls in found:
            s.held.setdefault(cls, t)
        if s.level == FAULT:
            return  # latched until reset
        if not found:
            s.level, s.reason, s.since_ns = OK, "", 0
            return
        # The class is the first (in _PRIORITY) of the checks that hold when one has held a stride
        # and a quarter (the stride windows are then past any change); slipping latches sooner when
        # it is the only check that holds, on this sensor alone.
        cls = next(c for c in _PRIORITY if c in found)
        slip = alone and cls == SLIPPING and t - s.held[SLIPPING] >= self.config.confirm_s - 1e-9
        if slip or any(t - s.held[c] >= hold - 1e-9 for c in found):
            s.level, s.fault, s.reason, s.since_ns = FAULT, cls, found[cls], t_ns
            return
        if s.level != SUSPECT:
            s.since_ns = t_ns
        s.level, s.fault, s.reason = SUSPECT, cls, found[cls]

    def _make_status(self, t_ns: int) -> MountingStatus:
        out = []
        for s in self._sensors:
            if s.level == OK:
                st = SensorStatus(s.location, OK, "", "", s.joints)
            else:
                st = SensorStatus(s.location, s.level, s.fault, s.reason, s.joints, s.since_ns)
            out.append(st)
        return MountingStatus(t_ns, self._walking, self._stride_s, tuple(out))
