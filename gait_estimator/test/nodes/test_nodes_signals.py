"""Ctrl-C as a terminal delivers it (issue 14): every node process in one process group gets SIGINT
twice, ~80 ms apart (the terminal's to the whole group, then ``ros2 launch``'s own), and must exit
with status 0 and no traceback; with ``use_sim_time`` and no ``/clock`` at all, too (the wake-up
timer runs on the steady clock, so a stopped ``/clock`` cannot hold a node)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from _node_harness import Listener

from support import pipeline_watch
from support.process_group import ProcessGroup

pytestmark = pytest.mark.ros

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).resolve().parents[2] / "config" / "pipeline.yaml"
CHAIN = (
    "imu_driver", "imu_synchronizer", "windowing", "torque_estimator", "torque_command", "lifecycle_manager"
)


def _start(group: ProcessGroup, names, sim_time: bool) -> None:
    for name in names:
        argv = [str(BIN / name), "--ros-args", "-r", f"__node:={name}", "--params-file", str(CONFIG)]
        group.start(name, argv + ["-p", f"use_sim_time:={'true' if sim_time else 'false'}"])


def _assert_clean_exit(group: ProcessGroup, timeout_s: float) -> None:
    t0 = time.monotonic()
    codes = group.wait(timeout_s)
    took = time.monotonic() - t0
    for name, code in codes.items():
        log = group.log(name)
        assert code == 0, f"{name}: exit {code} ({took:.1f} s after Ctrl-C)\n{log[-3000:]}"
        assert "Traceback" not in log, f"{name}:\n{log[-3000:]}"


@pytest.fixture
def group(tmp_path):
    g = ProcessGroup(tmp_path / "logs")
    yield g
    g.stop()


@pytest.fixture
def listener():
    lis = Listener("signals_listener")
    yield lis
    lis.close()


def test_double_sigint_to_the_group_exits_every_node_with_0(group, listener):
    pipeline_watch.watch(listener)
    _start(group, CHAIN, sim_time=False)

    def logs():
        return "\n".join(f"--- {n}\n{group.log(n)[-800:]}" for n in group.procs)

    pipeline_watch.wait_running(listener, "", ("torque_estimator", "torque_command"), 120, logs)
    group.interrupt(times=2, gap_s=0.08)
    _assert_clean_exit(group, 30)
    # The command node went through its lifecycle shutdown: the last command is a zero.
    last = listener.take(pipeline_watch.topic("", pipeline_watch.COMMAND_TOPIC))[-1][1]
    assert not last.valid and not any(last.torque)


def test_sim_time_without_clock_does_not_block_shutdown(group, listener):
    """No /clock is ever published: ROS time stands still at 0 in these nodes."""
    names = ("imu_synchronizer", "torque_command")
    _start(group, names, sim_time=True)
    listener.wait_for(
        lambda: {n for n, _ in listener.node.get_node_names_and_namespaces()} >= set(names),
        60,
        "the nodes on the graph",
    )
    from rcl_interfaces.srv import ListParameters

    for name in names:  # a service answer: the node is in its spin loop (where the old timer hung)
        listener.call(ListParameters, f"/{name}/list_parameters", ListParameters.Request(), 30.0)
    group.interrupt(times=2, gap_s=0.08)
    _assert_clean_exit(group, 20)  # without the steady wake timer: never (SIGKILL needed)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # ppid
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_nodes_do_not_outlive_a_killed_launcher(tmp_path):
    """``gait-estimator run`` killed with SIGKILL (no chance to stop its children): every node it
    started exits on its own within 5 s (``runner.exit_with_parent``), none stays an orphan."""
    import os
    import signal
    import subprocess

    fused = CONFIG.parent / "fused.yaml"
    run = subprocess.Popen(
        [str(BIN / "gait-estimator"), "run", "--config", str(fused), "--duration", "120",
         "--log-dir", str(tmp_path / "logs")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    nodes: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(nodes) < 2:  # gait_pipeline + lifecycle_manager
            time.sleep(0.5)
            nodes = _children(run.pid)
        assert len(nodes) == 2, f"the launcher started {nodes}"
        time.sleep(3.0)  # the nodes are up and spinning
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=10)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5.0 and any(_alive(p) for p in nodes):
            time.sleep(0.1)
        left = [p for p in nodes if _alive(p)]
        took = time.monotonic() - t0
        assert not left, f"orphans still running {took:.1f} s after the launcher died: {left}"
    finally:
        for p in nodes + [run.pid]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
