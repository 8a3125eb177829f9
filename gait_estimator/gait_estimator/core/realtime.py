"""Real-time scheduling of the data path: priority, CPU affinity, memory lock (ROS-free).

The settings follow ros2_control's controller_manager (``thread_priority``, ``cpu_affinity``,
``lock_memory``) and realtime_tools (``configure_sched_fifo``, ``lock_memory``,
``set_thread_affinity``): ``thread_priority`` 0 leaves scheduling alone, 1-99 asks for
SCHED_FIFO (or SCHED_RR) at that priority.

:func:`apply_realtime` acts on the calling thread (Linux: ``sched_setscheduler`` and
``sched_setaffinity`` with pid 0 address the calling thread, not the process), or on every
thread of the process that exists at the call. It never raises for a refusal: a user without an
rtprio limit (``EPERM``) keeps normal scheduling and gets one warning line per refused item that
says how to allow it. ``mlockall(MCL_CURRENT | MCL_FUTURE)`` keeps every page of the process
resident, so no page fault (a swapped-out page: milliseconds) lands in the data path.

A runaway thread at SCHED_FIFO (a loop that never blocks) cannot lock the machine as long as
the kernel's RT throttling is on: ``/proc/sys/kernel/sched_rt_runtime_us`` (default 950000 of
``sched_rt_period_us`` 1000000) leaves 5 % of every period to normal tasks, enough for a shell,
ssh and the lifecycle manager to kill the process. ``RealtimeResult.rt_throttle`` reports the
setting in force; -1 (throttling off) turns into a warning.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gait_estimator.errors import ConfigError

__all__ = [
    "POLICIES",
    "RealtimeResult",
    "RealtimeSettings",
    "apply_realtime",
    "process_threads",
    "read_rt_throttle",
    "settings_from_params",
]

POLICIES = ("fifo", "rr")
_POLICY_CODE = {"fifo": os.SCHED_FIFO, "rr": os.SCHED_RR}
_POLICY_NAME = {os.SCHED_OTHER: "other", os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr"}
# <sys/mman.h> on Linux (x86, arm, riscv; the generic values)
MCL_CURRENT = 1
MCL_FUTURE = 2

_HOW_TO_ALLOW = (
    "allow it with an rtprio limit: add '@realtime - rtprio 98' (and '@realtime - memlock unlimited') "
    "to /etc/security/limits.conf, add the user to the realtime group (sudo groupadd realtime; "
    "sudo usermod -aG realtime $USER) and log in again"
)


@dataclass(frozen=True)
class RealtimeSettings:
    """``thread_priority`` 0 = normal scheduling, 1-99 = ``policy`` (fifo|rr) at that priority;
    ``cpu_affinity`` the cores to run on (empty = any); ``lock_memory`` mlockall."""

    thread_priority: int = 0
    policy: str = "fifo"
    cpu_affinity: tuple[int, ...] = ()
    lock_memory: bool = False

    def __post_init__(self) -> None:
        p = self.thread_priority
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 99:
            raise ConfigError("thread_priority", p, "must be an integer in [0, 99] (0 = normal scheduling)")
        if self.policy not in POLICIES:
            raise ConfigError("realtime_policy", self.policy, f"must be one of {list(POLICIES)}")
        cores = tuple(self.cpu_affinity)
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in cores):
            raise ConfigError("cpu_affinity", list(cores), "must be a list of core numbers >= 0")
        if len(set(cores)) != len(cores):
            raise ConfigError("cpu_affinity", list(cores), "must not repeat a core")
        object.__setattr__(self, "cpu_affinity", cores)
        if not isinstance(self.lock_memory, bool):
            raise ConfigError("lock_memory", self.lock_memory, "must be a bool")

    @property
    def requested(self) -> bool:
        return self.thread_priority > 0 or bool(self.cpu_affinity) or self.lock_memory


@dataclass(frozen=True)
class RealtimeResult:
    """What :func:`apply_realtime` put into effect, read back from the kernel afterwards.

    ``policy``/``priority``/``affinity`` are those of the calling thread after the call;
    ``applied`` names what took effect, ``warnings`` has one line per refused item."""

    settings: RealtimeSettings
    policy: str
    priority: int
    affinity: tuple[int, ...]
    memory_locked: bool
    threads: int
    rt_throttle: tuple[int, int] | None  # (sched_rt_runtime_us, sched_rt_period_us); None: unknown
    applied: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.warnings

    def line(self) -> str:
        """One log line: what is in force, then the refusals."""
        if not self.settings.requested:
            return "real-time scheduling off (thread_priority 0, no cpu_affinity, no lock_memory)"
        done = ", ".join(self.applied) if self.applied else "nothing"
        memory = "locked" if self.memory_locked else "not locked"
        head = (
            f"real-time: applied {done} on {self.threads} thread(s); now {self.policy} priority "
            f"{self.priority}, cores {list(self.affinity)}, memory {memory}"
        )
        return head if self.ok else head + "; " + " ".join(f"WARNING: {w}" for w in self.warnings)

    def values(self) -> dict[str, Any]:
        """Key/values for a ``/diagnostics`` status."""
        runtime, period = self.rt_throttle if self.rt_throttle else (0, 0)
        return {
            "rt policy": self.policy,
            "rt priority": self.priority,
            "rt priority requested": self.settings.thread_priority,
            "cpu affinity": " ".join(map(str, self.affinity)),
            "cpu affinity requested": " ".join(map(str, self.settings.cpu_affinity)),
            "memory locked": self.memory_locked,
            "rt throttle": f"{runtime}/{period} us" if self.rt_throttle else "unknown",
            "rt warnings": " | ".join(self.warnings),
        }


def settings_from_params(p: Any) -> RealtimeSettings:
    """The settings of a node's validated parameters (``thread_priority``, ``realtime_policy``,
    ``cpu_affinity``, ``lock_memory``; a missing one is off): a mapping or a typed parameter object
    (``core.param_types``, which has ``get`` too)."""
    return RealtimeSettings(
        thread_priority=int(p.get("thread_priority", 0)),
        policy=str(p.get("realtime_policy", "fifo")),
        cpu_affinity=tuple(int(c) for c in p.get("cpu_affinity", ())),
        lock_memory=bool(p.get("lock_memory", False)),
    )


def process_threads() -> tuple[int, ...]:
    """Thread ids of this process now (``/proc/self/task``)."""
    return tuple(sorted(int(t) for t in os.listdir("/proc/self/task")))


def read_rt_throttle(proc: Path = Path("/proc/sys/kernel")) -> tuple[int, int] | None:
    """(sched_rt_runtime_us, sched_rt_period_us), or None where the kernel does not say."""
    try:
        return int((proc / "sched_rt_runtime_us").read_text()), int((proc / "sched_rt_period_us").read_text())
    except (OSError, ValueError):
        return None


def _memory_locked() -> bool:
    """Whether MCL_FUTURE is in force for this process (VmLck > 0 while pages are mapped)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmLck:"):
                return int(line.split()[1]) > 0
    except (OSError, ValueError, IndexError):
        pass
    return False


def _rtprio_limit() -> str:
    soft, _hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)


def _set_scheduler(s: RealtimeSettings, tids: Iterable[int]) -> str | None:
    param = os.sched_param(s.thread_priority)
    try:
        for tid in tids:
            os.sched_setscheduler(tid, _POLICY_CODE[s.policy], param)
    except OSError as exc:
        if exc.errno == errno.EPERM:
            return (
                f"thread_priority {s.thread_priority} ({s.policy}) refused (EPERM): this user's rtprio limit "
                f"is {_rtprio_limit()}; {_HOW_TO_ALLOW}. Running with normal scheduling"
            )
        return f"thread_priority {s.thread_priority} ({s.policy}) refused ({exc.strerror}); normal scheduling"
    return None


def _set_affinity(s: RealtimeSettings, tids: Iterable[int]) -> str | None:
    try:
        for tid in tids:
            os.sched_setaffinity(tid, s.cpu_affinity)
    except OSError as exc:
        return (
            f"cpu_affinity {list(s.cpu_affinity)} refused ({exc.strerror}): the cores this process may "
            f"use are {sorted(os.sched_getaffinity(0))}; running on those"
        )
    return None


def _lock_memory() -> str | None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0:
        return None
    err = ctypes.get_errno()
    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft // 1024} KiB"
    return (
        f"lock_memory refused ({errno.errorcode.get(err, err)}: {os.strerror(err)}): this user's memlock "
        f"limit is {limit}; add '@realtime - memlock unlimited' to /etc/security/limits.conf (realtime "
        "group). Memory stays pageable"
    )


def apply_realtime(settings: RealtimeSettings, *, whole_process: bool = False) -> RealtimeResult:
    """Apply ``settings`` to the calling thread (``whole_process``: to every thread the process
    has now; threads created later inherit from their creator). Never raises for a refusal:
    the result's ``warnings`` say what was refused and how to allow it."""
    tids: Sequence[int] = process_threads() if whole_process else (0,)
    applied: list[str] = []
    warnings: list[str] = []
    throttle = read_rt_throttle()
    if settings.cpu_affinity:
        w = _set_affinity(settings, tids)
        if w:
            warnings.append(w)
        else:
            applied.append(f"cpu_affinity {list(settings.cpu_affinity)}")
    if settings.thread_priority > 0:
        w = _set_scheduler(settings, tids)
        if w:
            warnings.append(w)
        else:
            applied.append(f"{settings.policy} priority {settings.thread_priority}")
            if throttle is not None and throttle[0] < 0:
                warnings.append(
                    "RT throttling is off (sched_rt_runtime_us = -1): a runaway real-time thread can "
                    "starve the machine; set it to 950000"
                )
    if settings.lock_memory:
        w = _lock_memory()
        if w:
            warnings.append(w)
        else:
            applied.append("lock_memory")
    return RealtimeResult(
        settings=settings,
        policy=_POLICY_NAME.get(os.sched_getscheduler(0), str(os.sched_getscheduler(0))),
        priority=os.sched_getparam(0).sched_priority,
        affinity=tuple(sorted(os.sched_getaffinity(0))),
        memory_locked=_memory_locked(),
        threads=len(tids),
        rt_throttle=throttle,
        applied=tuple(applied),
        warnings=tuple(warnings),
    )
