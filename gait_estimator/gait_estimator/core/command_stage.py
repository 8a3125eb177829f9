"""The command stage: torque estimates in, the exoskeleton command out. One implementation for
the distributed ``torque_command`` node, the fused ``gait_pipeline`` node and offline replay.

It owns the safety shaper (``core.command.CommandShaper``: gains, phase shift, low-pass,
saturation, rate limit, ramps, watchdog, latches) and the policies around it that used to be
written once per node:

- **estimates**: reordered into the command's joint order (:class:`JointMap`); estimates are
  ignored while the stage is inactive.
- **transient or true fault** (``core.faults``): an invalid estimate whose cause is transient
  (a sensor stream late or lost: a starved process, a dropped packet) is not passed on: the
  shaper's watchdog ramps the command to zero, and after ``recovery_estimates`` consecutive
  valid estimates the command comes back with its ramp-in, without ``exo/reset``. Any other
  invalid estimate (implausible input, non-finite model output, a joint missing, an unknown
  cause) latches the command at zero until reset. Every latch, transient episode and recovery
  is one line in :attr:`events` (the node logs them) and counted for ``/diagnostics``.
- **when to publish**: on every estimate (``publish_on_estimate``, the lowest latency) and on a
  control-rate tick whenever nothing went out since the previous tick (:meth:`tick_due`).
- **lifecycle**: :meth:`activate` is a fresh start (clears latches, ramps in);
  :meth:`deactivate` cuts the command to zero at once (``valid`` false) and it stays an invalid
  zero until the next activation: a deactivated node commands no torque (the one place besides
  a fault or an e-stop where the rate limit yields to safety); :meth:`release` gives the last
  zero before the publisher goes.
- **e-stop / reset**: :meth:`estop` latches zero until :meth:`reset`; a reset ramps in again when
  active.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gait_estimator.core.command import CommandOutput
from gait_estimator.core.faults import FAULT_MODEL, FAULT_NAMES, TRANSIENT_FAULTS
from gait_estimator.core.latency import LatencyStats
from gait_estimator.core.params import command_config, make_shaper

__all__ = ["COMMAND_LIVE", "CommandStage", "JointMap", "make_shaper"]

# Parameters a runtime set puts into effect at once (the shaper reconfigures atomically, a lowered
# limit ramps down); the rest are read at configure.
COMMAND_LIVE = (
    "subject_mass_kg",
    "gains",
    "phase_shift_s",
    "lowpass_hz",
    "limit_nm",
    "rate_limit_nm_s",
    "ramp_s",
    "watchdog_s",
    "publish_on_estimate",
    "min_confidence",
    "recovery_estimates",
)


class JointMap:
    """Reorder estimate joints into the command's joint order (cached per name list)."""

    def __init__(self, joints: Sequence[str]) -> None:
        self.joints = tuple(joints)
        self._names: tuple[str, ...] | None = None
        self._idx: np.ndarray | None = None

    def __call__(self, names: Sequence[str], values: np.ndarray) -> np.ndarray | None:
        names = tuple(names)
        if names != self._names:
            self._names = names
            try:
                self._idx = np.array([names.index(j) for j in self.joints], dtype=np.intp)
            except ValueError:
                self._idx = None
        return None if self._idx is None else values[self._idx]


class CommandStage:
    """See the module docstring. Not thread-safe: the node serialises calls (one lock)."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.shaper = make_shaper(params)  # ConfigError naming the parameter
        self.map = JointMap(params["joints"])
        self.joints = self.map.joints
        self.subject_mass_kg = float(params["subject_mass_kg"])
        self.publish_on_estimate = bool(params["publish_on_estimate"])
        self.recovery_estimates = int(params["recovery_estimates"])
        self._transient: int | None = None  # the transient cause of the episode in progress
        self._clean = 0  # valid estimates since it
        self.events: list[tuple[str, str]] = []  # (level, line) for the node's log; drained by it
        self.active = False
        self.last_stamp_ns = 0
        self.last_publish_ns = 0
        self.gait_phase = math.nan  # of the newest estimate (JointTorque.gait_phase of commands)
        self._published_since_tick = False
        self.latency = LatencyStats()  # frame stamp -> command publish
        self.counts = {
            "estimates": 0,
            "invalid_estimates": 0,
            "unknown_joints": 0,
            "commands": 0,
            "estops": 0,
            "resets": 0,
            "latches": 0,
            "transient_episodes": 0,
            "recoveries": 0,
        }

    # -- lifecycle -------------------------------------------------------------------------------
    def activate(self) -> None:
        self.shaper.reset()  # a fresh start: clears a latched fault / e-stop
        self.shaper.enable()
        self._transient, self._clean = None, 0
        self.active = True

    def deactivate(self, now_ns: int) -> CommandOutput:
        """The zero to publish at once; the shaper is left clean and disabled."""
        self.active = False
        return self._cut(now_ns)

    def release(self, now_ns: int) -> CommandOutput:
        """The last zero before the publisher is destroyed."""
        self.active = False
        return self._cut(now_ns)

    def _cut(self, now_ns: int) -> CommandOutput:
        self.gait_phase = math.nan
        self.shaper.emergency_stop()  # the cut to zero (the shaper's one exception to its rate limit)
        out = self.shaper.update(now_ns)
        self.shaper.reset()  # ... without leaving an e-stop latched: disabled until activate()
        return out

    def reconfigure(self, params: Mapping[str, Any]) -> None:
        """A validated runtime parameter set (``COMMAND_LIVE``), applied at once."""
        self.shaper.reconfigure(command_config(params))
        self.subject_mass_kg = float(params["subject_mass_kg"])
        self.publish_on_estimate = bool(params["publish_on_estimate"])
        self.recovery_estimates = int(params["recovery_estimates"])

    # -- inputs ----------------------------------------------------------------------------------
    def submit(
        self,
        names: Sequence[str],
        torque: np.ndarray,
        stamp_ns: int,
        valid: bool,
        confidence: float = 1.0,
        received_ns: int | None = None,
        gait_phase: float = math.nan,
        fault: int = FAULT_MODEL,
    ) -> bool:
        """An estimate (N·m, in ``names`` order) of the frame ``stamp_ns``, received at host time
        ``received_ns`` (default now), with its gait phase (carried on to the commands) and, when
        not ``valid``, its cause (``core.faults``; unknown causes latch). Returns whether a command
        should be published now."""
        if not self.active:
            return False
        self.gait_phase = float(gait_phase)
        self.counts["estimates"] += 1
        y = self.map(names, torque)
        if y is None:
            self.counts["unknown_joints"] += 1
        self.last_stamp_ns = int(stamp_ns)
        if not valid or y is None or not np.isfinite(y).all():
            self.counts["invalid_estimates"] += 1
            why = fault if not valid else FAULT_MODEL
            if not valid and why in TRANSIENT_FAULTS:
                self._transient_input(why)
            else:
                self._latch(why if y is not None else FAULT_MODEL, y is None)
            return self.publish_on_estimate
        if self._transient is not None:
            self._clean += 1
            if self._clean < self.recovery_estimates:
                return self.publish_on_estimate  # not yet: the command stays at zero meanwhile
            self.events.append(("info", f"recovered from {FAULT_NAMES[self._transient]}: "
                                        f"{self._clean} valid estimates in a row, ramping in"))
            self.counts["recoveries"] += 1
            self._transient, self._clean = None, 0
        # the watchdog runs on the stamp and on the receive time (no stamp keeps it alive)
        recv = time.time_ns() if received_ns is None else int(received_ns)
        self.shaper.submit(y, stamp_ns, True, "N.m", recv, confidence)
        return self.publish_on_estimate

    def _transient_input(self, why: int) -> None:
        """A transient cause: the shaper gets nothing (its watchdog ramps the command to zero)."""
        self._clean = 0
        if self._transient is None and self.shaper.fault is None:
            self._transient = why
            self.counts["transient_episodes"] += 1
            self.events.append(("warn", f"transient: {FAULT_NAMES[why]}: the command ramps to zero "
                                        f"and returns after {self.recovery_estimates} valid estimates"))

    def _latch(self, why: int, unknown_joints: bool) -> None:
        cause = FAULT_NAMES.get(why, f"fault {why}")
        if unknown_joints:
            cause = "the estimate lacks a command joint"
        if self.shaper.fault is None:
            self.counts["latches"] += 1
            self.events.append(("error", f"latched: {cause}: zero command until exo/reset"))
        self._transient, self._clean = None, 0
        self.shaper.submit(None, self.last_stamp_ns, False, "N.m")

    def estop(self) -> None:
        self.shaper.emergency_stop()
        self.counts["estops"] += 1

    def reset(self) -> None:
        self.counts["resets"] += 1
        self._transient, self._clean = None, 0
        self.shaper.reset()
        if self.active:
            self.shaper.enable()

    # -- output ----------------------------------------------------------------------------------
    def command(self, now_ns: int) -> CommandOutput:
        """The command at host time ``now_ns`` (an invalid zero while inactive)."""
        return self.shaper.update(now_ns)

    def stamp_for(self, now_ns: int) -> int:
        """The stamp a command carries: the newest estimate's frame (host time before any)."""
        return self.last_stamp_ns or now_ns

    def published(self, stamp_ns: int, valid: bool, published_ns: int) -> None:
        """Book a command that went out; ``published_ns`` is host time right after the publish (the
        clock of ``command``'s ``now_ns``: ``time.time_ns()``, that of DDS source timestamps). The
        shaper limits the next step against it: the rate limit holds between published messages."""
        self.shaper.mark_published(published_ns)
        self.last_publish_ns = published_ns
        self._published_since_tick = True
        self.counts["commands"] += 1
        if valid and stamp_ns:
            self.latency.add_stamp(stamp_ns, published_ns)

    def tick_due(self) -> bool:
        """At the control-rate tick: whether to publish (nothing went out since the last tick)."""
        return not self._published_since_tick

    def end_tick(self) -> None:
        """After the tick (and its publish, if any): the next tick looks at what follows."""
        self._published_since_tick = False

    def status(self, values: dict[str, Any]) -> tuple[int, str]:
        """Diagnostic level and message (adds the stage's and shaper's counters to ``values``):
        ERROR on a latched fault or e-stop, WARN while low confidence holds the command at zero,
        else OK."""
        values.update(self.counts)
        values.update({f"shaper_{k}": v for k, v in self.shaper.counters.items()})
        values.update({f"latency_{k}": v for k, v in self.latency.summary_ms().items()})
        values["confidence"] = float(self.shaper.confidence)
        values["active"] = self.active
        if self.shaper.fault:
            return 2, str(self.shaper.fault)
        if self._transient is not None:
            progress = f"{self._clean}/{self.recovery_estimates} valid"
            return 1, f"transient: {FAULT_NAMES[self._transient]} ({progress})"
        if self.shaper.reason:
            return 1, self.shaper.reason
        return 0, "active" if self.active else "inactive"
