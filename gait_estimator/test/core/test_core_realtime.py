"""Real-time settings (issue 23): applied and read back where permitted, refused with a warning
and normal scheduling where not, on real processes (each case runs in a child process so the
test runner's own scheduling is untouched)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap

import pytest

from gait_estimator.core.realtime import RealtimeSettings, read_rt_throttle, settings_from_params
from gait_estimator.errors import ConfigError

# The child applies the settings, then does the same work either way and prints what it saw.
_CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, threading
    from gait_estimator.core.realtime import RealtimeSettings, apply_realtime
    drop = sys.argv[1] == "drop"
    if drop:  # no real-time privilege: no rtprio, no memlock, no capabilities (uid nobody if root)
        resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
    s = RealtimeSettings(**json.loads(sys.argv[2]))
    r = apply_realtime(s, whole_process=sys.argv[3] == "process")
    other = {}
    def peek():  # a thread created after the call inherits the creator's scheduling
        other["policy"] = os.sched_getscheduler(0)
        other["priority"] = os.sched_getparam(0).sched_priority
    t = threading.Thread(target=peek)
    t.start(); t.join()
    work = sum(i * i for i in range(100000))  # the data path carries on whatever was refused
    print(json.dumps({
        "uid": os.geteuid(), "policy": r.policy, "priority": r.priority, "affinity": list(r.affinity),
        "locked": r.memory_locked, "applied": list(r.applied), "warnings": list(r.warnings),
        "line": r.line(), "kernel_policy": os.sched_getscheduler(0),
        "kernel_affinity": sorted(os.sched_getaffinity(0)), "threads": r.threads,
        "child_thread": other, "work": work,
    }))
    """
)


def _run(settings: dict, drop: bool, scope: str = "thread") -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, "drop" if drop else "keep", json.dumps(settings), scope],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _may_use_rt(priority: int) -> bool:
    soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
    return os.geteuid() == 0 or soft == resource.RLIM_INFINITY or soft >= priority


WORK = sum(i * i for i in range(100000))


def test_permitted_settings_take_effect_and_read_back():
    settings = {"thread_priority": 20, "policy": "fifo", "cpu_affinity": [0], "lock_memory": False}
    r = _run(settings, drop=False)
    assert r["kernel_affinity"] == [0] and r["affinity"] == [0]
    assert r["work"] == WORK
    if _may_use_rt(20):
        assert r["warnings"] == []
        assert (r["policy"], r["priority"], r["kernel_policy"]) == ("fifo", 20, os.SCHED_FIFO)
        assert r["child_thread"] == {"policy": os.SCHED_FIFO, "priority": 20}
        assert r["applied"] == ["cpu_affinity [0]", "fifo priority 20"]
    else:  # a user without an rtprio limit: the refusal path (the other test) is what runs here
        assert r["policy"] == "other" and len(r["warnings"]) == 1


def test_round_robin_and_memory_lock_where_permitted():
    r = _run({"thread_priority": 5, "policy": "rr", "lock_memory": True}, drop=False)
    if os.geteuid() == 0:
        assert r["warnings"] == []
        assert (r["policy"], r["priority"], r["kernel_policy"]) == ("rr", 5, os.SCHED_RR)
        assert r["locked"] is True


def test_not_permitted_runs_as_before_with_one_warning_per_refused_item():
    settings = {"thread_priority": 50, "policy": "fifo", "cpu_affinity": [], "lock_memory": True}
    r = _run(settings, drop=True)
    base = _run({}, drop=True)  # nothing requested: today's behaviour
    assert r["policy"] == base["policy"] == "other" and r["priority"] == base["priority"] == 0
    assert r["kernel_policy"] == os.SCHED_OTHER
    assert r["child_thread"] == base["child_thread"] == {"policy": os.SCHED_OTHER, "priority": 0}
    assert r["work"] == base["work"] == WORK
    assert r["locked"] is False and r["applied"] == []
    assert len(r["warnings"]) == 2, r["warnings"]
    prio, mem = r["warnings"]
    assert "thread_priority 50 (fifo) refused (EPERM)" in prio and "rtprio limit is 0" in prio
    assert "limits.conf" in prio and "realtime group" in prio and "normal scheduling" in prio
    assert mem.startswith("lock_memory refused") and "memlock" in mem
    assert "WARNING: thread_priority 50" in r["line"]
    assert base["warnings"] == [] and base["line"].startswith("real-time scheduling off")
    if os.geteuid() == 0:
        assert r["uid"] == 65534


def test_cores_that_do_not_exist_are_refused_not_fatal():
    r = _run({"cpu_affinity": [4096]}, drop=False)
    assert r["kernel_affinity"] == sorted(os.sched_getaffinity(0))
    assert len(r["warnings"]) == 1 and r["warnings"][0].startswith("cpu_affinity [4096] refused")


def test_whole_process_reaches_threads_that_already_exist():
    child = textwrap.dedent(
        """
        import os, threading, time, json
        from gait_estimator.core.realtime import RealtimeSettings, apply_realtime
        seen = {}
        go = threading.Event()
        def worker():  # started before the call, like the DDS threads of a node
            go.wait()
            seen["policy"] = os.sched_getscheduler(0)
        t = threading.Thread(target=worker); t.start()
        r = apply_realtime(RealtimeSettings(thread_priority=3), whole_process=True)
        go.set(); t.join()
        print(json.dumps({"threads": r.threads, "worker": seen["policy"], "warnings": list(r.warnings)}))
        """
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["threads"] >= 2
    if _may_use_rt(3):
        assert r["worker"] == os.SCHED_FIFO and r["warnings"] == []


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"thread_priority": 100}, "thread_priority"),
        ({"thread_priority": -1}, "thread_priority"),
        ({"thread_priority": True}, "thread_priority"),
        ({"policy": "deadline"}, "realtime_policy"),
        ({"cpu_affinity": (0, 0)}, "cpu_affinity"),
        ({"cpu_affinity": (-1,)}, "cpu_affinity"),
    ],
)
def test_settings_are_validated(kwargs, name):
    with pytest.raises(ConfigError) as info:
        RealtimeSettings(**kwargs)
    assert info.value.name == name


def test_settings_from_params_and_the_off_default():
    s = settings_from_params({"thread_priority": 40, "cpu_affinity": [1], "lock_memory": True})
    assert s == RealtimeSettings(40, "fifo", (1,), True) and s.requested
    assert not settings_from_params({}).requested


def test_rt_throttle_is_read():
    t = read_rt_throttle()
    assert t is None or (t[1] > 0 and t[0] <= t[1])
