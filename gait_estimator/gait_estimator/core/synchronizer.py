"""Time synchronizer / resampler: N IMU streams in, frames on one fixed-rate grid out.

Each stream may have its own rate (tens of Hz to kHz), jitter, drops, duplicates and
out-of-order arrivals. :class:`ImuSynchronizer` turns them into :class:`SyncFrame` s at
``rate_hz`` with bounded latency.

Clock model (per stream). A sample carries its device stamp ``d`` and arrives at host time
``r = d + offset + delay`` where ``delay >= 0`` is transport plus USB buffering (bursty, the
problem Xsens and VectorNav users report). The synchronizer tracks the lower envelope of
``r - d``: ``offset_k = min(r_k - d_k, offset_{k-1} + slew * (r_k - r_{k-1}))``, O(1) per sample.
Decreases are immediate (a sample with less buffering was seen); increases are slewed at
``max_drift_ppm`` (device-clock drift up to that rate is followed, buffering bursts are not).
A sample's host time is ``d + offset``. The constant part of the transport delay is not
observable and stays in the offset (stamps are "earliest possible arrival" times). With
``estimate_clock_offset=False`` stamps are taken as host time (offset 0): the offline replay
mode, where stamps and receive times come from the recording.

A jump of more than ``clock_jump_ns`` between ``r - d`` and the offset (device reboot, clock
set) rejects the sample; ``clock_jump_resets`` consecutive jumps restart the stream's estimator.

Resampling. Frame ``k`` has stamp ``t0 + floor(k * 1e9 / rate_hz)`` (integer ns, exact for
rational rates; ``t0`` is the earliest sample buffered ``latency_ns`` after the first arrival).
For each stream, with ``a`` its newest sample at or before ``t`` and ``b`` the next one:

- ``t - a > max_gap_ns`` or no ``a``: invalid (zeros, identity quaternion, ``valid`` False);
- ``b`` present and ``b - a <= max_gap_ns``: linear interpolation of acc and gyro, slerp of the
  orientation (so linear signals are reproduced exactly and quaternions stay unit);
- otherwise: ``a`` is held (counted in ``held``), for at most ``max_gap_ns``;
- from a rejected *implausible* sample (``core.plausibility``) of the stream until its next
  plausible one: invalid at once. A sensor that sends garbage is faulty, not merely late, so it
  is not bridged like a lost packet.

Latency. Frame ``t`` is emitted by ``poll(now)`` once ``now >= t + latency_ns``, or earlier as
soon as every stream has a sample at or after ``t`` (``emit_early``). Choose ``latency_ns``
above the slowest stream's period plus its worst transport jitter; samples that arrive later
than that are counted ``late`` and dropped (the frame they belonged to is already out). With
``emit_early`` a frame may go out before an out-of-order sample inside its interval arrives; the
frame then interpolates across it (exact for linear signals) and the sample counts ``late``
only if it is older than the sample that bracketed the last frame.

Counters (``counters``, totals over streams): ``received``, ``dropped`` (gaps in a stream's
device stamps, in samples; an out-of-order sample that fills a gap takes one back), ``late``,
``rejected`` (non-finite, malformed, unknown location, clock jump, implausible, ahead),
``implausible`` (outside the sensor ranges of ``core.plausibility``), ``ahead`` (host time of
the sample more than ``max_ahead_ns`` after its receive time: a stamp from the future),
``duplicates``, ``reordered``, ``overflow``, ``held``, ``frames``, ``invalid_frames``,
``skipped_frames`` (backlog beyond ``max_backlog_ns`` skipped), ``clock_resets``. No method
raises on bad samples; the constructor raises ``ConfigError`` on bad parameters.

Bounded work. One ``poll`` emits at most ``(max_backlog_ns + latency_ns + max_ahead_ns) x rate``
frames: older grid time is skipped (``skipped_frames``), and no frame is emitted early beyond
the polled host time plus ``max_ahead_ns``. Together with the ``ahead`` rejection, no stamp (a
+1 h jump, a device clock seconds ahead) can make a callback build a backlog of frames or keep
a dead sensor's frames valid.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from gait_estimator.core.plausibility import DEFAULT_LIMITS, PlausibilityLimits, why_implausible
from gait_estimator.core.samples import ImuSample, SyncFrame
from gait_estimator.errors import ConfigError

__all__ = ["COUNTER_NAMES", "ImuSynchronizer", "SyncConfig", "slerp"]

COUNTER_NAMES = (
    "received",
    "dropped",
    "late",
    "rejected",
    "duplicates",
    "reordered",
    "overflow",
    "held",
    "frames",
    "invalid_frames",
    "skipped_frames",
    "clock_resets",
    "implausible",
    "ahead",
)


@dataclass(frozen=True)
class SyncConfig:
    """Synchronizer parameters (``locations``/``rate_hz`` default to the model's in the pipeline)."""

    locations: tuple[str, ...] | None = None
    rate_hz: float | None = None
    latency_ns: int = 30_000_000
    max_gap_ns: int = 100_000_000
    estimate_clock_offset: bool = True
    emit_early: bool = True
    max_drift_ppm: float = 500.0
    clock_jump_ns: int = 1_000_000_000
    max_backlog_ns: int = 2_000_000_000
    max_buffer: int = 4096


def slerp(qa: np.ndarray, qb: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions ``[L, 4]`` at fractions ``w [L]``; unit output."""
    d = np.einsum("ij,ij->i", qa, qb)
    qb = np.where(d[:, None] < 0.0, -qb, qb)
    d = np.abs(d)
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    s = np.sin(theta)
    near = s < 1e-6
    safe = np.where(near, 1.0, s)
    wa = np.where(near, 1.0 - w, np.sin((1.0 - w) * theta) / safe)
    wb = np.where(near, w, np.sin(w * theta) / safe)
    q = wa[:, None] * qa + wb[:, None] * qb
    return q / np.linalg.norm(q, axis=1, keepdims=True)


# An invalid stream's row in a frame: zeros, identity orientation (SyncFrame's convention).
_INVALID_ROW = [0.0] * 9 + [1.0]


class _Stream:
    __slots__ = ("dev", "vals", "offset", "last_recv", "period", "jumps", "counters", "bad_from", "bad_to")

    def __init__(self) -> None:
        self.dev: list[int] = []  # device stamps, sorted, unique
        self.vals: list[list[float]] = []  # [10]: acc, gyro, quat (unit, xyzw)
        self.offset: int | None = None
        self.last_recv: int | None = None
        self.period: float | None = None
        self.jumps = 0
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        # Device-time interval [bad_from, bad_to) in which the sensor sent implausible values:
        # frames there are invalid, never bridged (bad_to None: still bad).
        self.bad_from: int | None = None
        self.bad_to: int | None = None

    def clear(self) -> None:
        self.dev.clear()
        self.vals.clear()
        self.offset = None
        self.last_recv = None
        self.period = None
        self.jumps = 0
        self.bad_from = self.bad_to = None


class ImuSynchronizer:
    """See the module docstring. ``push`` then ``poll``; both O(1) amortised per sample/frame."""

    def __init__(
        self,
        locations: Sequence[str],
        rate_hz: float,
        latency_ns: int = 30_000_000,
        max_gap_ns: int = 100_000_000,
        estimate_clock_offset: bool = True,
        *,
        emit_early: bool = True,
        max_drift_ppm: float = 500.0,
        clock_jump_ns: int = 1_000_000_000,
        max_backlog_ns: int = 2_000_000_000,
        max_buffer: int = 4096,
        max_ahead_ns: int = 100_000_000,
        limits: PlausibilityLimits = DEFAULT_LIMITS,
    ) -> None:
        locations = tuple(locations)
        if not locations or len(set(locations)) != len(locations):
            raise ConfigError("locations", locations, "must be a non-empty list of unique IMU locations")
        if not (isinstance(rate_hz, int | float) and math.isfinite(rate_hz) and 0 < rate_hz <= 10_000):
            raise ConfigError("rate_hz", rate_hz, "must be a finite rate in (0, 10000] Hz")
        for name, value in (
            ("latency_ns", latency_ns),
            ("max_gap_ns", max_gap_ns),
            ("clock_jump_ns", clock_jump_ns),
            ("max_backlog_ns", max_backlog_ns),
            ("max_ahead_ns", max_ahead_ns),
        ):
            if not isinstance(value, int | np.integer) or value < 0:
                raise ConfigError(name, value, "must be an integer number of nanoseconds >= 0")
        if max_gap_ns <= 0:
            raise ConfigError("max_gap_ns", max_gap_ns, "must be > 0 ns")
        if not (math.isfinite(max_drift_ppm) and 0 <= max_drift_ppm <= 1e5):
            raise ConfigError("max_drift_ppm", max_drift_ppm, "must be in [0, 1e5] ppm")
        if max_buffer < 4:
            raise ConfigError("max_buffer", max_buffer, "must be >= 4 samples")
        self.locations = locations
        self.rate_hz = float(rate_hz)
        self.latency_ns = int(latency_ns)
        self.max_gap_ns = int(max_gap_ns)
        self.estimate_clock_offset = bool(estimate_clock_offset)
        self.emit_early = bool(emit_early)
        self.slew = float(max_drift_ppm) * 1e-6
        self.clock_jump_ns = int(clock_jump_ns)
        self.max_backlog_ns = int(max_backlog_ns)
        self.max_buffer = int(max_buffer)
        self.max_ahead_ns = int(max_ahead_ns)
        self.limits = limits
        frac = Fraction(self.rate_hz).limit_denominator(1_000_000)
        self._num, self._den = frac.numerator, frac.denominator  # rate = num / den
        self._index = {loc: i for i, loc in enumerate(locations)}
        self._streams = [_Stream() for _ in locations]
        self._extra = dict.fromkeys(("frames", "invalid_frames", "skipped_frames"), 0)
        self._t0: int | None = None
        self._k = 0
        self._last_t: int | None = None
        self._first_recv: int | None = None

    @classmethod
    def from_config(cls, cfg: SyncConfig, locations: Sequence[str], rate_hz: float) -> ImuSynchronizer:
        return cls(
            cfg.locations or locations,
            cfg.rate_hz or rate_hz,
            cfg.latency_ns,
            cfg.max_gap_ns,
            cfg.estimate_clock_offset,
            emit_early=cfg.emit_early,
            max_drift_ppm=cfg.max_drift_ppm,
            clock_jump_ns=cfg.clock_jump_ns,
            max_backlog_ns=cfg.max_backlog_ns,
            max_buffer=cfg.max_buffer,
        )

    # -- bookkeeping -----------------------------------------------------------------------
    @property
    def counters(self) -> dict[str, int]:
        total = dict.fromkeys(COUNTER_NAMES, 0)
        for s in self._streams:
            for k, v in s.counters.items():
                total[k] += v
        total.update(self._extra)
        return total

    def stream_counters(self, location: str) -> dict[str, int]:
        return dict(self._streams[self._index[location]].counters)

    def clock_offset_ns(self, location: str) -> int | None:
        """Current estimate of host time minus device time for one stream (None before data)."""
        return self._streams[self._index[location]].offset

    @property
    def period_ns(self) -> float:
        return 1e9 / self.rate_hz

    def stamp(self, k: int) -> int:
        assert self._t0 is not None
        return self._t0 + (k * 1_000_000_000 * self._den) // self._num

    @property
    def next_stamp_ns(self) -> int | None:
        return None if self._t0 is None else self.stamp(self._k)

    def reset(self) -> None:
        for s in self._streams:
            s.clear()
        self._t0 = None
        self._k = 0
        self._last_t = None
        self._first_recv = None

    # -- input --------------------------------------------------------------------------------
    def push(self, sample: ImuSample, receive_ns: int) -> bool:
        """Add one sample; False (and a counter) when it is rejected, late or a duplicate."""
        try:
            values = [*sample.acc.tolist(), *sample.gyro.tolist(), *sample.quat_xyzw.tolist()]
        except (TypeError, ValueError, AttributeError):
            self._streams[0].counters["rejected"] += 1
            return False
        return self.push_values(sample.location, sample.stamp_ns, values, receive_ns)

    def push_values(self, location: str, stamp_ns: int, values: list, receive_ns: int) -> bool:
        """``push`` without the ``ImuSample``: ``values`` = 10 floats, acc(3), gyro(3), quat_xyzw(4).

        The hot path of drivers and bundled inputs. Per sample everything is plain float
        arithmetic: numpy calls on 10 values cost more than the work (measured in bench_core)."""
        i = self._index.get(location)
        if i is None:
            self._streams[0].counters["rejected"] += 1  # counted somewhere; location unknown
            return False
        s = self._streams[i]
        c = s.counters
        c["received"] += 1
        try:
            v = list(values)  # a copy: stored, and its quaternion normalised in place below
            if len(v) != 10:
                raise ValueError(values)
            if why_implausible(v, self.limits) is not None:  # TypeError for a non-number
                c["rejected"] += 1
                c["implausible"] += 1
                # A sensor that sends garbage is faulty, not merely late: its frames turn invalid
                # from this sample on (zero command within latency_s), instead of being bridged
                # from the last good sample for up to max_gap_s as a lost packet would be.
                d_bad = int(stamp_ns)
                if s.bad_from is None or (s.bad_to is not None and d_bad >= s.bad_to):
                    s.bad_from, s.bad_to = d_bad, None
                return False
            qx, qy, qz, qw = v[6:10]
            n = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
            v[6:10] = qx / n, qy / n, qz / n, qw / n
            d, r = int(stamp_ns), int(receive_ns)
        except (TypeError, ValueError, AttributeError, OverflowError):
            c["rejected"] += 1
            return False
        if not self._update_offset(s, d, r):
            c["rejected"] += 1
            return False
        assert s.offset is not None
        if d + s.offset > r + self.max_ahead_ns:
            # A stamp from the future (device clock ahead, trusted stamps): it would hold frames
            # valid past the sensor's death and make the grid run ahead of the host clock.
            c["rejected"] += 1
            c["ahead"] += 1
            return False
        dev = s.dev
        j = bisect.bisect_left(dev, d)
        if j < len(dev) and dev[j] == d:
            c["duplicates"] += 1
            return False
        if self._last_t is not None and d + s.offset <= self._last_t and (not dev or d < dev[0]):
            # Older than the sample that bracketed the last frame: it can no longer be used.
            # (An out-of-order sample between that one and the next is still kept.)
            c["late"] += 1
            return False
        if s.bad_from is not None and s.bad_to is None and d > s.bad_from:
            s.bad_to = d  # the first plausible sample after the garbage ends the bad interval
        if j == len(dev):
            if dev:
                self._count_gap(s, d - dev[-1])
            dev.append(d)
            s.vals.append(v)
        else:
            c["reordered"] += 1
            if c["dropped"] > 0:
                c["dropped"] -= 1
            dev.insert(j, d)
            s.vals.insert(j, v)
        if self._first_recv is None:
            self._first_recv = r
        if len(dev) > self.max_buffer:
            del dev[0], s.vals[0]
            c["overflow"] += 1
        return True

    def _update_offset(self, s: _Stream, d: int, r: int) -> bool:
        if not self.estimate_clock_offset:
            s.offset = 0
            return True
        delta = r - d
        if s.offset is None:
            s.offset, s.last_recv = delta, r
            return True
        if abs(delta - s.offset) > self.clock_jump_ns:
            s.jumps += 1
            if s.jumps >= 5:
                s.counters["clock_resets"] += 1
                s.clear()
                s.offset, s.last_recv = delta, r
                return True
            return False
        s.jumps = 0
        assert s.last_recv is not None
        grown = s.offset + int(self.slew * max(0, r - s.last_recv))
        s.offset = min(delta, grown)
        s.last_recv = max(s.last_recv, r)
        return True

    def _count_gap(self, s: _Stream, dt: int) -> None:
        p = s.period
        if p is None:
            s.period = float(dt)
        elif dt >= 1.5 * p:
            s.counters["dropped"] += round(dt / p) - 1
        elif dt < 0.67 * p:
            s.period = float(dt)
        else:
            s.period = 0.9 * p + 0.1 * dt

    # -- output -------------------------------------------------------------------------------
    def poll(self, now_ns: int) -> list[SyncFrame]:
        """All frames due at host time ``now_ns`` (possibly none), oldest first."""
        if self._t0 is None:
            # The grid starts at the earliest sample seen one latency after the first arrival,
            # so samples that merely arrive out of order at start-up are not counted late.
            if self._first_recv is None or now_ns < self._first_recv + self.latency_ns:
                return []
            starts = [s.dev[0] + s.offset for s in self._streams if s.dev and s.offset is not None]
            if not starts:
                return []
            self._t0 = min(starts)
            self._k = 0
        frames: list[SyncFrame] = []
        horizon = int(now_ns) - self.latency_ns
        t = self.stamp(self._k)
        if horizon - t > self.max_backlog_ns:  # e.g. nothing polled for long: jump, don't flood
            k_new = ((horizon - self.max_backlog_ns - self._t0) * self._num) // (1_000_000_000 * self._den)
            if k_new > self._k:
                self._extra["skipped_frames"] += k_new - self._k
                self._k = k_new
                t = self.stamp(self._k)
        # Early emission stops at the polled host time plus the tolerated lead: no stamp can make
        # one call build an unbounded run of frames (bounded work and memory per callback).
        early_limit = int(now_ns) + self.max_ahead_ns
        while t <= horizon or (self.emit_early and t <= early_limit and self._all_reached(t)):
            frames.append(self._frame(t))
            self._last_t = t
            self._k += 1
            t = self.stamp(self._k)
        return frames

    def _all_reached(self, t: int) -> bool:
        for s in self._streams:
            if not s.dev or s.offset is None or s.dev[-1] + s.offset < t:
                return False
        return True

    def _frame(self, t: int) -> SyncFrame:
        # Per stream in plain floats (7 streams: numpy calls per frame would cost more than the
        # arithmetic), one array per frame; the same formulas as ``slerp`` and the batch replay.
        n = len(self._streams)
        rows: list = [_INVALID_ROW] * n
        valid = [False] * n
        implausible = [False] * n
        gap = self.max_gap_ns
        for i, s in enumerate(self._streams):
            if not s.dev or s.offset is None:
                continue
            td = t - s.offset
            if s.bad_from is not None and td >= s.bad_from:
                if s.bad_to is None or td < s.bad_to:
                    implausible[i] = True
                    continue  # inside a stretch of implausible values: invalid, never bridged
                s.bad_from = s.bad_to = None
            dev = s.dev
            j = bisect.bisect_right(dev, td)
            a = j - 1
            if a < 0:
                continue
            if td - dev[a] <= gap:
                valid[i] = True
                va = s.vals[a]
                if j < len(dev) and dev[j] - dev[a] <= gap and td != dev[a]:
                    rows[i] = _interpolate(va, s.vals[j], (td - dev[a]) / (dev[j] - dev[a]))
                else:
                    rows[i] = va
                    if td != dev[a]:
                        s.counters["held"] += 1
            if a > 0:  # keep a: it may bracket the next frame
                del dev[:a], s.vals[:a]
        out = np.array(rows)
        ok = np.array(valid)
        self._extra["frames"] += 1
        if not all(valid):
            self._extra["invalid_frames"] += 1
        bad = np.array(implausible) if any(implausible) else None
        return SyncFrame(t, self.locations, out[:, 0:3], out[:, 3:6], out[:, 6:10], ok, bad)


def _interpolate(a: list, b: list, w: float) -> list:
    """One stream's row at fraction ``w`` between samples ``a`` and ``b`` (10 floats each): linear
    acc and gyro, ``slerp`` of the unit quaternion (scalar form of the vectorised function)."""
    row = [a[k] + (b[k] - a[k]) * w for k in range(6)]
    ax, ay, az, aw = a[6:10]
    bx, by, bz, bw = b[6:10]
    d = ax * bx + ay * by + az * bz + aw * bw
    if d < 0.0:
        bx, by, bz, bw, d = -bx, -by, -bz, -bw, -d
    theta = math.acos(min(d, 1.0))
    s = math.sin(theta)
    if s < 1e-6:
        wa, wb = 1.0 - w, w
    else:
        wa, wb = math.sin((1.0 - w) * theta) / s, math.sin(w * theta) / s
    qx, qy, qz, qw = wa * ax + wb * bx, wa * ay + wb * by, wa * az + wb * bz, wa * aw + wb * bw
    norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
    row += (qx / norm, qy / norm, qz / norm, qw / norm)
    return row
