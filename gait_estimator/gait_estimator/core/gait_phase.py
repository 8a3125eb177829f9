"""Gait phase and gait events of both legs, causal and streaming, from the IMU frames (ROS-free).

Per leg, one signal: the sagittal angular velocity of the shank (the foot where the leg has no
shank IMU), ``w = -gyro_y`` in the segment frame (x forward, y left, z up; the simulator's and
REP 103's segment frames), positive while the distal end swings forward. One stride of ``w``:

    loading dip (< 0) -> mid-stance (about 0) -> pre-swing dip (< 0) -> upward zero crossing
    (toe off shortly before) -> mid-swing peak (> 0) -> downward zero crossing (heel strike
    shortly after) -> loading dip ...

Events (the deterministic detector of Aminian 2002 / Salarian 2004, made causal):

- heel strike: the first downward zero crossing after a confirmed mid-swing peak, plus
  ``hs_offset_s + hs_offset_stride`` x the stride time; it is emitted at the first frame at or
  after that estimated time, so the phase wraps at the heel strike's own frame and
  ``detected_ns - stamp_ns`` is the honest detection latency (under one frame period unless a
  frame is late);
- toe off: the upward zero crossing after a pre-swing dip, minus ``to_offset_s`` (in the past
  when it is detected: stamped with its estimated time, detected at the crossing's frame);
- mid-swing peak: ``w`` above an adaptive threshold, confirmed once it falls ``peak_drop_rad_s``
  below its running maximum.

Phase observer: the phase restarts at each heel strike, ``(t - t_hs) / T`` with ``T`` the
smoothed stride time, and each later landmark of the stride (toe off, mid-swing peak) re-aims it
without a jump: from the landmark on, the phase runs linearly from its current value to 1 over
the remaining time that landmark has so far been followed by until the next heel strike (learned
per leg, exponentially smoothed). So the phase is monotone within a stride, stays in [0, 1)
(it saturates just below 1 if the heel strike is late) and wraps exactly at the heel strike.

Validity: a leg's phase is valid while it walks (a heel strike within ``standstill_factor`` x
the stride time), after a heel strike of its own, once ``min_strides`` consistent strides (HS ->
TO -> swing peak -> HS, stride time in [min_stride_s, max_stride_s], within
``consistency_ratio`` of the one before) were seen on this leg or on the other leg. Otherwise the
phase is NaN and the state UNKNOWN: standing still, start-up, or an invalid / missing sensor
row (at that frame; a gap longer than ``max_gap_s`` also restarts that leg's detector and its
run of consistent strides). Confidence: 1 minus the relative change of the last two strides
over ``confidence_span`` (0 when invalid).

Records map 1:1 onto ``gait_estimator_msgs/GaitState`` and ``GaitEvent``: per-leg tuples indexed
by ``LEG_RIGHT`` / ``LEG_LEFT``, stamps in ns (0 = none yet), NaN where not valid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from gait_estimator.core.samples import SyncFrame
from gait_estimator.errors import ConfigError

__all__ = [
    "HEEL_STRIKE",
    "LEG_LEFT",
    "LEG_RIGHT",
    "STATE_STANCE",
    "STATE_SWING",
    "STATE_UNKNOWN",
    "TOE_OFF",
    "GaitEvent",
    "GaitPhaseConfig",
    "GaitPhaseEstimator",
    "GaitPhaseState",
    "leg_sources",
    "make_gait_phase",
    "sagittal_rate",
]

LEG_RIGHT = 0
LEG_LEFT = 1
LEG_SUFFIX = ("r", "l")
STATE_UNKNOWN = 0
STATE_STANCE = 1
STATE_SWING = 2
HEEL_STRIKE = 0
TOE_OFF = 1
# Segments whose sagittal rate drives the detector, in order of preference.
SOURCE_SEGMENTS = ("shank", "foot")
# Gyro axis and sign of the sagittal rate (distal end forward = +) in the segment frame.
SAGITTAL_AXIS = 1
SAGITTAL_SIGN = -1.0
PHASE_MAX = 1.0 - 1e-9  # the phase saturates here when a heel strike comes late
NS = 1e9


@dataclass(frozen=True, slots=True)
class GaitPhaseConfig:
    """Detector and observer parameters. The defaults were set on simulated subjects (seeds the
    tests and benchmark do not use) and, for ``to_offset_s`` only, also on mocap_walkers; never
    on schreiber2019, biomechzoo or the Dorschky real IMUs."""

    swing_peak_min_rad_s: float = 1.2  # smallest mid-swing peak that counts
    swing_peak_fraction: float = 0.35  # ... and at least this fraction of the mean of recent peaks
    peak_drop_rad_s: float = 0.4  # fall below the running maximum that confirms the peak
    dip_rad_s: float = 0.3  # the pre-swing dip must go below -this to arm toe off
    # Heel strike after the downward zero crossing: hs_offset_s + hs_offset_stride x stride time
    # (the shank's terminal-swing deceleration is slower in slow, long strides).
    hs_offset_s: float = 0.007
    hs_offset_stride: float = 0.026
    # Toe off before the upward zero crossing: 41 ms on simulated subjects, 59 ms on the
    # mocap_walkers (2 people, virtual IMUs); the middle (schreiber2019 stays held out).
    to_offset_s: float = 0.050
    nominal_stride_s: float = 1.1  # stride time assumed before one was measured
    min_stance_fraction: float = 0.3  # no toe off earlier than this fraction of a stride after HS
    min_stride_s: float = 0.5
    max_stride_s: float = 2.5
    consistency_ratio: float = 1.35  # consecutive strides within this ratio are consistent
    min_strides: int = 1  # consistent strides (either leg) before the phase is valid
    standstill_factor: float = 1.3  # no heel strike for this x stride time: not walking
    stride_smoothing: float = 0.6  # weight of the newest stride / landmark timing
    confidence_span: float = 0.1  # relative stride change that takes the confidence to 0
    max_gap_s: float = 0.05  # a longer gap between frames restarts the detectors
    landmarks: bool = True  # re-aim the phase at toe off and mid-swing peak

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool):
                continue
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"gait_phase.{f.name}", v, "must be a finite number >= 0")
        for name in ("swing_peak_fraction", "min_stance_fraction", "stride_smoothing"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"gait_phase.{name}", getattr(self, name), "must be in (0, 1]")
        if not 0.0 < self.min_stride_s < self.max_stride_s:
            raise ConfigError("gait_phase.max_stride_s", self.max_stride_s,
                              f"must exceed min_stride_s = {self.min_stride_s} > 0")
        if self.consistency_ratio <= 1.0 or self.standstill_factor <= 1.0:
            raise ConfigError("gait_phase.consistency_ratio/standstill_factor",
                              (self.consistency_ratio, self.standstill_factor), "must both exceed 1")
        if self.min_strides < 1 or self.confidence_span <= 0 or self.max_gap_s <= 0:
            raise ConfigError("gait_phase.min_strides/confidence_span/max_gap_s",
                              (self.min_strides, self.confidence_span, self.max_gap_s),
                              "need min_strides >= 1 and confidence_span, max_gap_s > 0")


@dataclass(frozen=True, slots=True)
class GaitEvent:
    """One gait event (``GaitEvent.msg``): ``stamp_ns`` its estimated time, ``detected_ns`` the
    frame at which it was detected; ``stride_time_s`` the stride a heel strike closes (NaN for a
    toe off, the first heel strike, or a stride that was not walking)."""

    stamp_ns: int
    leg: int
    event: int
    detected_ns: int
    stride_time_s: float = math.nan


@dataclass(slots=True)
class GaitPhaseState:
    """Gait state of both legs at one frame (``GaitState.msg``, fields by the same names) plus
    the events detected at this frame (published on their own topic). Read-only by convention:
    not frozen, because a frozen dataclass costs 2-3 us more per frame to build (push's budget
    is a tenth of the model step)."""

    stamp_ns: int
    phase: tuple[float, float]
    phase_valid: tuple[bool, bool]
    state: tuple[int, int]
    last_heel_strike_ns: tuple[int, int]
    last_toe_off_ns: tuple[int, int]
    stride_time_s: tuple[float, float]
    cadence_steps_per_min: float
    walking_speed_m_s: float
    confidence: tuple[float, float]
    events: tuple[GaitEvent, ...] = field(default=())


def leg_sources(locations: Sequence[str]) -> tuple[int | None, int | None]:
    """Row index of each leg's detector IMU in ``locations`` (shank, else foot; None: no IMU)."""
    out: list[int | None] = []
    for suffix in LEG_SUFFIX:
        idx = None
        for seg in SOURCE_SEGMENTS:
            name = f"{seg}_{suffix}"
            if name in locations:
                idx = list(locations).index(name)
                break
        out.append(idx)
    return out[0], out[1]


def sagittal_rate(gyro: np.ndarray) -> np.ndarray:
    """Sagittal angular velocity (rad/s, distal end forward = +) from segment-frame gyro [..., 3]."""
    return SAGITTAL_SIGN * np.asarray(gyro, dtype=np.float64)[..., SAGITTAL_AXIS]


class _Leg:
    """Detector and phase observer of one leg. Times in s (float) inside, ns at the boundary."""

    def __init__(self, leg: int, cfg: GaitPhaseConfig) -> None:
        self.leg, self.cfg = leg, cfg
        self.reset()

    def reset(self) -> None:
        self.prev_w = math.nan
        self.prev_t = math.nan
        self.swing_max = -math.inf  # running maximum while above the peak threshold
        self.peak_seen = False  # mid-swing peak confirmed, waiting for the downward crossing
        self.dip_seen = False  # pre-swing dip seen, waiting for the upward crossing
        self.pending_hs = math.nan  # estimated heel strike not reached by the frame clock yet
        self.peak_mean = math.nan
        self.peak_thr = self.cfg.swing_peak_min_rad_s
        self.state = STATE_UNKNOWN
        self.last_hs = math.nan
        self.last_to = math.nan
        self.last_hs_ns = 0
        self.last_to_ns = 0
        self.stride = math.nan  # smoothed stride time, s
        self.last_stride = math.nan
        self.prev_stride = math.nan
        self.consistent = 0  # consistent strides in a row
        self.stride_ok = False  # this stride so far: heel strike seen, TO and peak in order
        self.stride_to = math.nan  # detection times of this stride's landmarks
        self.stride_peak = math.nan
        self.rem_to = math.nan  # learned time from TO / peak detection to the next heel strike
        self.rem_peak = math.nan
        self.anchor_t = math.nan  # current landmark: time, phase there, remaining time
        self.anchor_phase = 0.0
        self.anchor_rem = math.nan
        self.conf = 0.0

    # -- detector ------------------------------------------------------------------------
    # Hot path (every frame): NaN compares False, so unset times/values need no isnan checks.
    def step(self, t: float, t_ns: int, w: float, other_stride: float) -> list[GaitEvent] | tuple[()]:
        cfg = self.cfg
        events: list[GaitEvent] | tuple[()] = ()
        if t - self.prev_t > cfg.max_gap_s:
            self.reset()  # no crossing is interpolated over a gap
        stride = self.stride if self.stride == self.stride else other_stride
        if t >= self.pending_hs - 1e-9:
            events = [self._heel_strike(self.pending_hs, t, t_ns)]
            self.pending_hs = math.nan
        pw, pt = self.prev_w, self.prev_t
        self.prev_w, self.prev_t = w, t
        if not self.peak_seen:  # mid-swing peak
            if w > self.peak_thr and w > self.swing_max:
                self.swing_max = w
            elif self.swing_max > self.peak_thr and w < self.swing_max - cfg.peak_drop_rad_s:
                self._peak(t)
        elif pw > 0.0 >= w:  # heel strike: the downward zero crossing after the peak
            self.peak_seen = False
            t_hs = pt + (t - pt) * pw / (pw - w) + cfg.hs_offset_s + cfg.hs_offset_stride * (
                stride if stride == stride else cfg.nominal_stride_s)
            if t_hs <= t + 1e-9:
                events = [*events, self._heel_strike(t_hs, t, t_ns)]
            else:
                self.pending_hs = t_hs
            return events
        # Toe off: upward zero crossing after a pre-swing dip, not too early in stance.
        if w < -cfg.dip_rad_s:
            if not self.dip_seen and not self.peak_seen and self.pending_hs != self.pending_hs:
                guard = cfg.min_stance_fraction * (stride if stride == stride else cfg.nominal_stride_s)
                self.dip_seen = not t - self.last_hs <= guard  # also True before any heel strike
        elif self.dip_seen and pw < 0.0 <= w:
            self.dip_seen = False
            t_to = pt + (t - pt) * (-pw) / (w - pw) - cfg.to_offset_s
            if not t_to <= self.last_hs:
                events = [*events, self._toe_off(t_to, t, t_ns)]
        return events

    def _peak(self, t: float) -> None:
        cfg = self.cfg
        self.peak_seen = True
        self.dip_seen = False
        self.peak_mean = self.swing_max if math.isnan(self.peak_mean) else (
            0.7 * self.peak_mean + 0.3 * self.swing_max)
        self.peak_thr = max(cfg.swing_peak_min_rad_s, cfg.swing_peak_fraction * self.peak_mean)
        self.swing_max = -math.inf
        if self.state != STATE_UNKNOWN:
            self.state = STATE_SWING
        if self.stride_ok and math.isnan(self.stride_peak):
            self.stride_peak = t
            self._aim(t, self.rem_peak)

    def _toe_off(self, t_to: float, t: float, t_ns: int) -> GaitEvent:
        self.last_to = t_to
        self.last_to_ns = t_ns - round((t - t_to) * NS)
        if self.state != STATE_UNKNOWN:
            self.state = STATE_SWING
        if self.stride_ok and math.isnan(self.stride_to) and math.isnan(self.stride_peak):
            self.stride_to = t
            self._aim(t, self.rem_to)
        return GaitEvent(self.last_to_ns, self.leg, TOE_OFF, t_ns)

    def _heel_strike(self, t_hs: float, t: float, t_ns: int) -> GaitEvent:
        cfg = self.cfg
        hs_ns = t_ns - round((t - t_hs) * NS)
        duration = t_hs - self.last_hs
        closes = self.stride_ok and cfg.min_stride_s <= duration <= cfg.max_stride_s
        stride_time = math.nan
        if closes:
            stride_time = duration
            complete = not math.isnan(self.stride_to) and not math.isnan(self.stride_peak)
            ratio_ok = math.isnan(self.last_stride) or (
                max(duration, self.last_stride) / min(duration, self.last_stride) <= cfg.consistency_ratio)
            self.consistent = self.consistent + 1 if (complete and ratio_ok) else 0
            self.prev_stride, self.last_stride = self.last_stride, duration
            a = cfg.stride_smoothing
            self.stride = duration if math.isnan(self.stride) or not ratio_ok else (
                a * duration + (1 - a) * self.stride)
            if not math.isnan(self.stride_to):
                r = t_hs - self.stride_to
                self.rem_to = r if math.isnan(self.rem_to) else a * r + (1 - a) * self.rem_to
            if not math.isnan(self.stride_peak):
                r = t_hs - self.stride_peak
                self.rem_peak = r if math.isnan(self.rem_peak) else a * r + (1 - a) * self.rem_peak
        else:
            self.consistent = 0
            self.prev_stride = self.last_stride = math.nan
        self.last_hs, self.last_hs_ns = t_hs, hs_ns
        self.stride_ok = True
        self.dip_seen = False  # the loading dip after a heel strike does not arm toe off
        self.stride_to = self.stride_peak = math.nan
        self.anchor_t, self.anchor_phase, self.anchor_rem = t_hs, 0.0, self.stride
        self.state = STATE_STANCE
        self.update_confidence()
        return GaitEvent(hs_ns, self.leg, HEEL_STRIKE, t_ns, stride_time)

    # -- observer ------------------------------------------------------------------------
    def _aim(self, t: float, remaining: float) -> None:
        """Re-aim the phase at a landmark: from its current value to 1 over ``remaining``."""
        if not self.cfg.landmarks or math.isnan(remaining) or math.isnan(self.anchor_rem):
            return
        self.anchor_phase = self._raw_phase(t)
        self.anchor_t, self.anchor_rem = t, remaining

    def _raw_phase(self, t: float) -> float:
        rem = max(self.anchor_rem, 1e-3)
        p = self.anchor_phase + (1.0 - self.anchor_phase) * (t - self.anchor_t) / rem
        return min(max(p, 0.0), PHASE_MAX)

    def walking(self, t: float, other_stride: float) -> bool:
        """A heel strike within standstill_factor x the stride time (False while either is unset)."""
        stride = self.stride if self.stride == self.stride else other_stride
        return t - self.last_hs <= self.cfg.standstill_factor * stride

    def phase(self, t: float, other_stride: float) -> float:
        if self.anchor_rem != self.anchor_rem:  # first stride of this leg: the other leg's stride
            if other_stride != other_stride:
                return math.nan
            self.anchor_rem = other_stride
        return self._raw_phase(t)

    def update_confidence(self) -> None:
        """Stride-to-stride consistency, updated at each heel strike."""
        if math.isnan(self.prev_stride):
            self.conf = 0.5 if self.consistent >= 1 else 0.0
        else:
            change = abs(self.last_stride - self.prev_stride) / self.last_stride
            self.conf = min(max(1.0 - change / self.cfg.confidence_span, 0.0), 1.0)


class GaitPhaseEstimator:
    """Streaming gait phase and events of both legs from synchronized IMU frames.

    ``locations`` are the frame's IMU locations (``SyncFrame.locations``); each leg uses its
    shank IMU, else its foot IMU (a leg with neither stays UNKNOWN). ``rate_hz`` is the frame
    rate (it bounds the frame gap that restarts the detectors). Call :meth:`push` once per frame,
    in stamp order.
    """

    def __init__(self, rate_hz: float, locations: Sequence[str],
                 config: GaitPhaseConfig | None = None) -> None:
        if not (isinstance(rate_hz, int | float) and math.isfinite(rate_hz) and rate_hz > 0):
            raise ConfigError("rate_hz", rate_hz, "must be a finite number > 0")
        self.rate_hz = float(rate_hz)
        self.locations = tuple(locations)
        self.config = config or GaitPhaseConfig()
        self.sources = leg_sources(self.locations)
        if self.sources == (None, None):
            raise ConfigError("locations", list(self.locations),
                              "gait phase needs a shank or foot IMU of at least one leg "
                              "(shank_r, shank_l, foot_r, foot_l)")
        gap = max(self.config.max_gap_s, 2.5 / self.rate_hz)
        cfg = self.config if gap == self.config.max_gap_s else _replace_gap(self.config, gap)
        self._legs = (_Leg(LEG_RIGHT, cfg), _Leg(LEG_LEFT, cfg))
        self._t0_ns: int | None = None

    def reset(self) -> None:
        for leg in self._legs:
            leg.reset()
        self._t0_ns = None

    def push(self, frame: SyncFrame) -> GaitPhaseState:
        """Advance by one frame; the state at ``frame.stamp_ns`` with the events detected now."""
        if frame.locations is not self.locations and frame.locations != self.locations:
            raise ConfigError("frame.locations", list(frame.locations),
                              f"must be the estimator's locations {list(self.locations)}")
        t_ns = int(frame.stamp_ns)
        if self._t0_ns is None:
            self._t0_ns = t_ns
        t = (t_ns - self._t0_ns) / NS  # float seconds from the first frame stay exact
        right, left = self._legs
        src_r, src_l = self.sources
        gyro, valid = frame.gyro, frame.valid
        events: list[GaitEvent] = []
        # An invalid (or non-finite) row makes its leg invalid at this frame and is skipped; a
        # gap longer than max_gap_s restarts the leg's detector at its next valid row.
        sensor_ok = [False, False]
        for i, leg, src, other in ((0, right, src_r, left), (1, left, src_l, right)):
            if src is None or not valid[src]:
                continue
            w = SAGITTAL_SIGN * float(gyro[src, SAGITTAL_AXIS])
            if math.isfinite(w):
                sensor_ok[i] = True
                got = leg.step(t, t_ns, w, other.stride)
                if got:
                    events.extend(got)
        # Walking: a heel strike within standstill_factor strides; a pause ends the consistent run.
        walk_r, walk_l = right.walking(t, left.stride), left.walking(t, right.stride)
        if not walk_r:
            right.consistent = 0
        if not walk_l:
            left.consistent = 0
        walk_r, walk_l = walk_r and sensor_ok[0], walk_l and sensor_ok[1]
        n = self.config.min_strides
        seen = right.consistent >= n or left.consistent >= n
        p_r = right.phase(t, left.stride) if walk_r and seen and right.stride_ok else math.nan
        p_l = left.phase(t, right.stride) if walk_l and seen and left.stride_ok else math.nan
        ok_r, ok_l = p_r == p_r, p_l == p_l
        s_r, s_l = right.last_stride, left.last_stride
        if ok_r and ok_l and s_r == s_r and s_l == s_l:
            cadence = 240.0 / (s_r + s_l)
        elif ok_r and s_r == s_r:
            cadence = 120.0 / s_r
        elif ok_l and s_l == s_l:
            cadence = 120.0 / s_l
        else:
            cadence = math.nan
        return GaitPhaseState(
            t_ns,
            (p_r, p_l),
            (ok_r, ok_l),
            (right.state if ok_r else STATE_UNKNOWN, left.state if ok_l else STATE_UNKNOWN),
            (right.last_hs_ns, left.last_hs_ns),
            (right.last_to_ns, left.last_to_ns),
            (s_r, s_l),
            cadence,
            math.nan,
            (right.conf if ok_r else 0.0, left.conf if ok_l else 0.0),
            tuple(events),
        )


def _replace_gap(cfg: GaitPhaseConfig, gap: float) -> GaitPhaseConfig:
    from dataclasses import replace

    return replace(cfg, max_gap_s=gap)


def make_gait_phase(
    rate_hz: float, locations: Sequence[str], config: GaitPhaseConfig | None = None
) -> GaitPhaseEstimator | None:
    """The estimator of a pipeline with these IMU ``locations``; None when no leg has a shank or
    foot IMU (the phase is then unknown, NaN, on every message)."""
    if leg_sources(tuple(locations)) == (None, None):
        return None
    return GaitPhaseEstimator(rate_hz, locations, config)
