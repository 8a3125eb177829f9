"""Real-time parameters of the data-path nodes (issue 23), over real processes: where permitted
every thread of the process runs SCHED_FIFO at ``thread_priority`` on ``cpu_affinity`` with its
memory locked, said in the log and on ``/diagnostics``; where not (no rtprio/memlock limit, no
CAP_SYS_NICE/CAP_IPC_LOCK) the node runs with normal scheduling and one warning."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from pathlib import Path

import pytest
from _node_harness import BIN, Listener, param_args

pytestmark = pytest.mark.ros

RT = {"thread_priority": 30, "cpu_affinity": [0], "lock_memory": True}
STATUS = "torque_command: real-time scheduling"


def _start(prefix: list[str], log: Path) -> subprocess.Popen:
    args = [*prefix, str(BIN / "torque_command"), "--ros-args", *param_args(RT)]
    with log.open("w") as out:  # the child has its own copy of the descriptor
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))


def _run(prefix: list[str], log: Path):
    """Start torque_command, wait for its real-time status; return (status, {tid: policy}, log)."""
    from diagnostic_msgs.msg import DiagnosticArray

    listener = Listener("rt_test")
    listener.subscribe(DiagnosticArray, "/diagnostics", 50)
    proc = _start(prefix, log)
    try:

        def status():
            for _, arr in listener.take("/diagnostics"):
                for st in arr.status:
                    if st.name == STATUS:
                        return st
            return None

        found = []
        listener.wait_for(lambda: bool(found.append(status()) or found[-1]), 60, STATUS, log.read_text)
        tids = [int(t) for t in os.listdir(f"/proc/{proc.pid}/task")]
        policies = {t: (os.sched_getscheduler(t), os.sched_getparam(t).sched_priority) for t in tids}
        affinity = {t: sorted(os.sched_getaffinity(t)) for t in tids}
        locked = next(
            int(line.split()[1]) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            if line.startswith("VmLck:")
        )
        return found[-1], policies, affinity, locked
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        listener.close()


def _permitted() -> bool:
    soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
    return os.geteuid() == 0 or soft == resource.RLIM_INFINITY or soft >= RT["thread_priority"]


def test_permitted_every_thread_runs_fifo_on_its_core_with_memory_locked(tmp_path):
    st, policies, affinity, locked = _run([], tmp_path / "rt.log")
    values = {kv.key: kv.value for kv in st.values}
    log = (tmp_path / "rt.log").read_text()
    if not _permitted():  # a user without an rtprio limit: the refusal (next test) is what runs
        assert st.level == b"\x01" and "refused" in st.message
        return
    assert st.level == b"\x00" and st.message == "applied", (st.message, log)
    assert len(policies) > 3  # the executor thread and DDS's
    assert all(p == (os.SCHED_FIFO, 30) for p in policies.values()), policies
    assert all(a == [0] for a in affinity.values()), affinity
    assert locked > 0
    assert (values["rt policy"], values["rt priority"], values["memory locked"]) == ("fifo", "30", "True")
    assert "real-time: applied cpu_affinity [0], fifo priority 30, lock_memory" in log


def test_not_permitted_runs_with_normal_scheduling_and_one_warning(tmp_path):
    # No rtprio or memlock limit; as root also no CAP_SYS_NICE / CAP_IPC_LOCK (what a normal user has).
    prefix = ["prlimit", "--rtprio=0", "--memlock=65536"]
    if os.geteuid() == 0:
        prefix += [shutil.which("setpriv") or "setpriv", "--bounding-set=-sys_nice,-ipc_lock"]
    st, policies, affinity, locked = _run(prefix, tmp_path / "rt.log")
    log = (tmp_path / "rt.log").read_text()
    assert st.level == b"\x01" and st.message.startswith("refused (normal scheduling)"), st.message
    assert all(p == (os.SCHED_OTHER, 0) for p in policies.values()), policies
    assert all(a == [0] for a in affinity.values())  # affinity needs no privilege: applied
    assert locked == 0
    warnings = [line for line in log.splitlines() if "WARN" in line and "real-time" in line]
    assert len(warnings) == 1, log
    assert "thread_priority 30 (fifo) refused (EPERM)" in warnings[0] and "limits.conf" in warnings[0]
    assert "lock_memory refused" in warnings[0]
