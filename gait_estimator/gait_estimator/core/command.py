"""Torque-command shaping: the safety layer between a torque estimate and the exoskeleton.

Signal chain, per joint, evaluated by :meth:`CommandShaper.update` at the control rate::

    estimate (N·m or N·m/kg x subject mass) x assistance gain
      -> phase shift (delay: interpolate the estimate history; advance: linear extrapolation
         from the last two estimates, noisy: combine with the low-pass)
      -> first-order low-pass (lowpass_hz, 0 = off)
      -> x enable envelope s in [0, 1] (ramp-in over ramp_s on enable(), ramp-out on disable())
      -> saturation |u| <= limit_nm
      -> watchdog envelope |u| <= rate_limit * (t_last_valid + watchdog_s - now)
      -> rate limit |u_k - u_{k-1}| <= rate_limit * (t_k - t_{k-1})

Guarantees (property-tested in ``test_core_command.py``), for any estimate stream:

- ``|u| <= limit_nm`` at every update;
- ``|u_k - u_{k-1}| <= rate_limit_nm_s * dt`` at every update, *except* the instantaneous cut to
  zero on a fault or an emergency stop (safety wins over smoothness only there);
- ``u == 0`` from ``t_last_valid + watchdog_s`` on: the watchdog envelope shrinks at exactly the
  rate limit and reaches zero at that deadline, so the ramp-down completes inside the watchdog
  time and never breaks the rate limit. ``t_last_valid`` is the *stamp* of the newest valid
  estimate (the IMU sample time), so pipeline latency counts against the watchdog; the deadline
  is also measured from the host time the estimate was *received* (``submit(received_ns=)``),
  so no stamp (a device clock ahead of the host, a +1 h jump) can keep a command alive. The
  configuration must satisfy ``limit_nm <= rate_limit_nm_s * watchdog_s`` (a fresh estimate can
  reach full torque); as an estimate ages its envelope caps the torque below the limit.
- a non-finite estimate, an estimate flagged invalid, a wrong-length estimate or an unknown unit
  latches a fault: output zero until :meth:`CommandShaper.reset`;
- :meth:`CommandShaper.emergency_stop` latches: output zero until :meth:`CommandShaper.reset`;
- :meth:`CommandShaper.reconfigure` applies new parameters at once and atomically; a lowered
  ``limit_nm`` (or a smaller gain) is reached through the rate limit, never by a jump: the
  saturation itself slews down at ``rate_limit_nm_s``. The watchdog deadline of an estimate is
  fixed when it is received (a new ``watchdog_s`` applies from the next estimate); a lowered
  rate limit that could not bring the output to zero by that deadline is exceeded just enough
  to meet it (never beyond the rate limit that was in force before);
- on the wire: when the caller reports each publication (:meth:`CommandShaper.mark_published`,
  host time read right *after* ``publish`` returned, on the clock of ``update``'s ``now``), the
  step between two consecutive *published* commands is bounded by the rate limit times the time
  between their publications: ``|u_k - u_pub| <= rate_limit_nm_s * (now_k - t_pub)``, and since
  the DDS source timestamp of message k is taken after ``update(now_k)`` and that of the previous
  message before ``t_pub``, the bound holds on the source timestamps a subscriber sees, whatever
  the delay between update and publish. Two things still win over it, as over the update-clock
  limit: the cut to zero on a fault or e-stop, and the watchdog envelope (zero by the deadline;
  it may exceed the wire bound by at most ``rate_limit_nm_s`` x the publication delay of the
  previous message);
- an estimate whose ``confidence`` (``core.confidence``: distance of the model input from the
  model's training distribution) is below ``min_confidence`` is replaced by zero: the command
  ramps to zero through the rate limit, ``valid`` stays True (a deliberate zero) and
  :attr:`CommandShaper.reason` says why.

``reset()`` clears the latches and leaves the shaper *disabled*: torque returns only after an
explicit ``enable()`` and its ramp-in. After a watchdog expiry the enable envelope restarts
from zero, so assistance ramps in again when estimates return.

Status codes mirror ``gait_estimator_msgs/msg/JointTorque``. ``CommandOutput.valid`` is True
while the torque is the shaped command a controller may apply (including ramps); False on a
fault, an e-stop, a stale or missing estimate, or when disabled (torque then exactly 0.0).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gait_estimator.errors import ConfigError

__all__ = [
    "STATUS_INVALID",
    "STATUS_LIMITED",
    "STATUS_OK",
    "STATUS_RAMPING",
    "CommandConfig",
    "CommandOutput",
    "CommandShaper",
]

STATUS_OK = 0
STATUS_LIMITED = 1
STATUS_RAMPING = 2
STATUS_INVALID = 3

_UNITS = ("N.m", "N.m/kg")


def _per_joint(name: str, value: float | Sequence[float], n: int) -> tuple[float, ...]:
    if isinstance(value, int | float):
        return (float(value),) * n
    vals = tuple(float(v) for v in value)
    if len(vals) != n:
        raise ConfigError(name, value, f"must be one number or {n} (one per joint)")
    return vals


@dataclass(frozen=True)
class CommandConfig:
    """Parameters of :class:`CommandShaper`; validated on construction (``ConfigError``).

    ``gains``, ``limit_nm`` and ``rate_limit_nm_s`` take one number or one per joint.
    ``phase_shift_s`` > 0 advances the command, < 0 delays it.
    """

    joints: tuple[str, ...]
    subject_mass_kg: float
    gains: float | tuple[float, ...] = 1.0
    phase_shift_s: float = 0.0
    lowpass_hz: float = 0.0
    limit_nm: float | tuple[float, ...] = 30.0
    rate_limit_nm_s: float | tuple[float, ...] = 300.0
    ramp_s: float = 1.0
    watchdog_s: float = 0.2
    control_rate_hz: float = 200.0
    min_confidence: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "joints", tuple(self.joints))
        n = len(self.joints)
        if n == 0 or len(set(self.joints)) != n:
            raise ConfigError("joints", self.joints, "must be a non-empty list of unique joint names")

        def finite(name: str, lo: float, hi: float, lo_open: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, int | float) and math.isfinite(v) and lo <= v <= hi
            if not ok or (lo_open and v == lo):
                raise ConfigError(name, v, f"must be a finite number in {'(' if lo_open else '['}{lo}, {hi}]")

        finite("subject_mass_kg", 0.0, 500.0, lo_open=True)
        finite("phase_shift_s", -0.5, 0.5)
        finite("control_rate_hz", 0.0, 100_000.0, lo_open=True)
        finite("lowpass_hz", 0.0, self.control_rate_hz / 2.0)
        finite("ramp_s", 0.0, 60.0)
        finite("watchdog_s", 0.0, 10.0, lo_open=True)
        finite("min_confidence", 0.0, 1.0)
        gains = _per_joint("gains", self.gains, n)
        limit = _per_joint("limit_nm", self.limit_nm, n)
        rate = _per_joint("rate_limit_nm_s", self.rate_limit_nm_s, n)
        if not all(math.isfinite(g) and abs(g) <= 5.0 for g in gains):
            raise ConfigError("gains", self.gains, "must be finite with |gain| <= 5")
        if not all(math.isfinite(v) and 0 < v <= 1000.0 for v in limit):
            raise ConfigError("limit_nm", self.limit_nm, "must be finite in (0, 1000] N·m")
        if not all(math.isfinite(v) and 0 < v <= 1e6 for v in rate):
            raise ConfigError("rate_limit_nm_s", self.rate_limit_nm_s, "must be finite in (0, 1e6] N·m/s")
        for j, (lim, r) in enumerate(zip(limit, rate, strict=True)):
            if lim > r * self.watchdog_s * (1 + 1e-12):
                raise ConfigError(
                    "watchdog_s",
                    self.watchdog_s,
                    f"too short for joint {self.joints[j]!r}: ramping {lim} N·m to zero at {r} N·m/s takes "
                    f"{lim / r} s, which must fit in the watchdog time (raise watchdog_s or rate_limit_nm_s, "
                    "or lower limit_nm)",
                )
        object.__setattr__(self, "gains", gains)
        object.__setattr__(self, "limit_nm", limit)
        object.__setattr__(self, "rate_limit_nm_s", rate)


@dataclass(frozen=True)
class CommandOutput:
    """One command: ``torque`` [J] N·m, ``status`` [J] uint8 (STATUS_*), ``stamp_ns`` of the
    newest estimate used (None before any), ``fault`` the latched fault text (None if none)."""

    torque: np.ndarray
    status: np.ndarray
    valid: bool
    fault: str | None
    stamp_ns: int | None = None


class CommandShaper:
    """See the module docstring. Never raises from ``submit``/``update``; faults latch instead."""

    def __init__(self, config: CommandConfig) -> None:
        self.config = config
        self.joints = config.joints
        n = len(config.joints)
        self._n = n
        self._gain = np.asarray(config.gains, dtype=np.float64)
        self._limit = np.asarray(config.limit_nm, dtype=np.float64)
        self._rate = np.asarray(config.rate_limit_nm_s, dtype=np.float64)
        self._watchdog_ns = int(round(config.watchdog_s * 1e9))
        self._shift_ns = int(round(config.phase_shift_s * 1e9))
        self._history_ns = max(abs(self._shift_ns), 1) + self._watchdog_ns
        self.counters = {
            "submitted": 0,
            "ignored_out_of_order": 0,
            "faults": 0,
            "watchdog_trips": 0,
            "low_confidence": 0,
            "reconfigured": 0,
        }
        self._lim_eff = self._limit.copy()  # the saturation in force: slews down to a lowered limit
        self._min_conf = float(config.min_confidence)
        self.confidence = 1.0  # of the newest estimate
        self.reason: str | None = None  # why the command is held at zero while valid (low confidence)
        self._enabled = False
        self._fault: str | None = None
        self._estop = False
        self._out = np.zeros(n)
        self._last_now: int | None = None
        self._pub_out: np.ndarray | None = None  # the newest output on the wire, and when it went out
        self._pub_ns = 0
        self._clear_signal()

    def _clear_signal(self) -> None:
        self._hist: deque[tuple[int, np.ndarray]] = deque()
        self._deadline: int | None = None  # watchdog deadline of the newest estimate (host ns)
        self._wd_sub = self._watchdog_ns  # the watchdog time in force when it was received
        self._lp: np.ndarray | None = None
        self._s = 0.0
        self._expired = True

    # -- commands ----------------------------------------------------------------------------
    def enable(self) -> bool:
        """Start assisting (ramp-in). False (ignored) while a fault or e-stop is latched."""
        if self._fault is not None or self._estop:
            return False
        self._enabled = True
        return True

    def disable(self) -> None:
        """Stop assisting (ramp-out over ramp_s, rate-limited)."""
        self._enabled = False

    def emergency_stop(self) -> None:
        """Zero torque at the next update, latched until :meth:`reset`."""
        self._estop = True
        self._enabled = False

    def reset(self) -> None:
        """Clear the fault and e-stop latches; the shaper stays disabled until ``enable()``."""
        if self._fault is not None or self._estop:
            self._clear_signal()
        self._fault = None
        self._estop = False
        self._enabled = False

    def reconfigure(self, config: CommandConfig) -> None:
        """Apply new parameters at once (atomically, between two updates).

        The output carries on from where it is: a lower ``limit_nm`` is reached by slewing the
        saturation down at the rate limit, a changed gain through the rate-limited output. The
        joints must stay the same (a different joint set is a new shaper)."""
        if config.joints != self.joints:
            raise ConfigError("joints", config.joints, f"cannot change at run time (now {self.joints})")
        self.config = config
        self._gain = np.asarray(config.gains, dtype=np.float64)
        self._limit = np.asarray(config.limit_nm, dtype=np.float64)
        # The saturation slews down from where the output is (|out| <= lim_eff always).
        self._lim_eff = np.minimum(self._lim_eff, np.maximum(self._limit, np.abs(self._out)))
        self._rate = np.asarray(config.rate_limit_nm_s, dtype=np.float64)
        self._watchdog_ns = int(round(config.watchdog_s * 1e9))
        self._shift_ns = int(round(config.phase_shift_s * 1e9))
        self._history_ns = max(abs(self._shift_ns), 1) + self._watchdog_ns
        self._min_conf = float(config.min_confidence)
        # The history holds unscaled estimates (the gain applies in update); the low-pass state
        # moves to the new gain at its own time constant, the output at the rate limit.
        self.counters["reconfigured"] += 1

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def fault(self) -> str | None:
        return "emergency stop" if self._estop else self._fault

    def _latch(self, why: str) -> None:
        if self._fault is None:
            self._fault = why
            self.counters["faults"] += 1
        self._enabled = False
        self._clear_signal()

    # -- inputs ------------------------------------------------------------------------------
    def submit(
        self,
        estimate: np.ndarray | None,
        stamp_ns: int,
        valid: bool = True,
        unit: str = "N.m",
        received_ns: int | None = None,
        confidence: float = 1.0,
    ) -> None:
        """A new estimate (joint order of ``config.joints``) describing the instant ``stamp_ns``,
        received at host time ``received_ns`` (default: the stamp, as in offline replay), with the
        model-input ``confidence`` in [0, 1] (``core.confidence``)."""
        self.counters["submitted"] += 1
        if not valid or estimate is None:
            self._latch("invalid estimate (a sensor stream or window was flagged invalid)")
            return
        try:
            y = np.asarray(estimate, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            self._latch("malformed estimate (not numeric)")
            return
        if y.shape != (self._n,):
            self._latch(f"estimate has {y.size} values, expected {self._n} ({self.joints})")
            return
        if not np.isfinite(y).all():
            self._latch("non-finite estimate (NaN or Inf)")
            return
        if unit not in _UNITS:
            self._latch(f"estimate unit {unit!r} is not one of {_UNITS}")
            return
        if unit == "N.m/kg":
            y = y * self.config.subject_mass_kg
        stamp_ns = int(stamp_ns)
        if self._hist and stamp_ns <= self._hist[-1][0]:
            self.counters["ignored_out_of_order"] += 1
            return
        conf = float(confidence) if math.isfinite(confidence) else 0.0
        self.confidence = conf
        if conf < self._min_conf:
            # Input far from what the model was trained on: its output is not to be trusted.
            self.counters["low_confidence"] += 1
            self.reason = f"low confidence {conf:.3g} < min_confidence {self._min_conf:.3g}"
            y = np.zeros_like(y)
        else:
            self.reason = None
        recv = stamp_ns if received_ns is None else int(received_ns)
        self._deadline = min(stamp_ns, recv) + self._watchdog_ns
        self._wd_sub = self._watchdog_ns
        self._hist.append((stamp_ns, y))
        while len(self._hist) > 2 and self._hist[1][0] < stamp_ns - self._history_ns:
            self._hist.popleft()

    def _shifted(self) -> np.ndarray:
        t_new, y_new = self._hist[-1]
        if self._shift_ns == 0 or len(self._hist) < 2:
            return y_new
        if self._shift_ns > 0:
            t_prev, y_prev = self._hist[-2]
            return y_new + (y_new - y_prev) * (self._shift_ns / (t_new - t_prev))
        tau = t_new + self._shift_ns
        for k in range(len(self._hist) - 1, 0, -1):
            t_a, y_a = self._hist[k - 1]
            if t_a <= tau:
                t_b, y_b = self._hist[k]
                return y_a + (y_b - y_a) * ((tau - t_a) / (t_b - t_a))
        return self._hist[0][1]

    def mark_published(self, t_ns: int) -> None:
        """The output of the latest :meth:`update` was published; ``t_ns`` is the host time read
        right after ``publish`` returned (the clock of ``update``'s ``now``: ``time.time_ns()``,
        the clock DDS source timestamps use). The next updates limit their step against it."""
        self._pub_out = self._out.copy()
        self._pub_ns = int(t_ns)

    # -- output ------------------------------------------------------------------------------
    def update(self, now_ns: int) -> CommandOutput:
        """The command at host time ``now_ns`` (call at ``control_rate_hz``)."""
        now_ns = int(now_ns)
        dt = 0.0 if self._last_now is None or now_ns <= self._last_now else (now_ns - self._last_now) * 1e-9
        self._last_now = now_ns if self._last_now is None else max(now_ns, self._last_now)
        n = self._n
        # A lowered limit is approached at the rate limit (|prev| <= lim_eff: no jump); it slews in
        # every update, whatever the branch below, so it never lags the limit in force.
        lim_before = self._lim_eff
        self._lim_eff = np.maximum(self._limit, self._lim_eff - self._rate * dt)
        if self._pub_out is not None:  # ... and, on the wire, from the published output down
            floor = np.abs(self._pub_out) - self._rate * (max(now_ns - self._pub_ns, 0) * 1e-9)
            self._lim_eff = np.maximum(self._lim_eff, np.minimum(lim_before, floor))
        stamp = self._hist[-1][0] if self._hist else None
        zero_status = np.full(n, STATUS_INVALID, dtype=np.uint8)
        if self._fault is not None or self._estop:
            self._out = np.zeros(n)  # the one place the rate limit yields: cut to zero
            return CommandOutput(self._out.copy(), zero_status, False, self.fault, stamp)

        # Watchdog on both clocks: the deadline counts from the older of the estimate's stamp and
        # its host receive time, with the watchdog time in force when it was received.
        remaining_ns = -1 if self._deadline is None else min(self._deadline - now_ns, self._wd_sub)
        prev = self._out
        # The rate in force: the configured one, or what still brings |prev| to zero by the
        # deadline when a lowered rate limit would not (|prev| <= rate_used * remaining held at the
        # previous update, so this never exceeds the rate used then).
        rate = np.maximum(self._rate, np.abs(prev) / max((remaining_ns * 1e-9) + dt, 1e-12))
        step = rate * dt
        if remaining_ns <= 0:  # no estimate yet, or the watchdog deadline has passed
            if not self._expired and stamp is not None:
                self.counters["watchdog_trips"] += 1
            self._expired = True
            self._lp = None
            self._s = 0.0
            # |prev| <= rate * (deadline - t_prev) <= step, so this is within the rate limit.
            self._out = np.zeros(n)
            return CommandOutput(self._out.copy(), zero_status, False, None, stamp)
        self._expired = False

        ramp = self.config.ramp_s
        if self._enabled:
            self._s = 1.0 if ramp == 0 else min(1.0, self._s + dt / ramp)
        else:
            self._s = 0.0 if ramp == 0 else max(0.0, self._s - dt / ramp)

        target = self._shifted() * self._gain
        fc = self.config.lowpass_hz
        if self.reason is not None:  # low confidence: exactly zero, reached at the rate limit
            self._lp = np.zeros(n)
        elif self._lp is None or fc == 0:
            self._lp = target.copy()
        else:
            self._lp = self._lp + (1.0 - math.exp(-2.0 * math.pi * fc * dt)) * (target - self._lp)
        wanted = self._s * self._lp
        cap_wd = rate * (remaining_ns * 1e-9)
        cap = np.minimum(self._lim_eff, cap_wd)
        desired = np.clip(wanted, -cap, cap)
        out = prev + np.clip(desired - prev, -step, step)
        if self._pub_out is not None:
            # On the wire: against the last published output, over the time since its publication.
            # prev lies in that band unless a cut to zero went unpublished; then the band is skipped.
            wire = rate * (max(now_ns - self._pub_ns, 0) * 1e-9)
            lo = np.maximum(prev - step, self._pub_out - wire)
            hi = np.minimum(prev + step, self._pub_out + wire)
            out = np.where(lo <= hi, np.clip(out, lo, hi), out)
        out = np.clip(out, -cap, cap)
        self._out = out

        status = np.full(n, STATUS_OK, dtype=np.uint8)
        tol = 1e-9 * (1.0 + np.abs(wanted))
        limited = np.abs(out - wanted) > tol
        status[limited] = STATUS_LIMITED
        watchdog_binding = (cap_wd < self._lim_eff) & (np.abs(wanted) > cap_wd)
        status[(self._s < 1.0) | (watchdog_binding & limited) | (self.reason is not None)] = STATUS_RAMPING
        active = self._enabled or self._s > 0.0 or bool(np.any(out != 0.0))
        if not active:
            status[:] = STATUS_INVALID
        return CommandOutput(out.copy(), status, active, None, stamp)
