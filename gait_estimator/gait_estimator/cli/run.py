"""``gait-estimator run --config FILE``: the pipeline's nodes from one YAML, without ``ros2 launch``.

Starts the same executables as ``launch/pipeline.launch.py`` with ``--params-file FILE``: the
nodes that have a section in the file (distributed: ``imu_driver``, ``imu_synchronizer``,
``windowing``, ``torque_estimator``, ``torque_command``; fused: ``gait_pipeline``) plus the
``lifecycle_manager``, which configures and activates the lifecycle nodes in order. The file is
validated first (``core.params.load_config``): an invalid file is rejected with the node,
parameter, value and rule, and nothing starts. Runs until Ctrl-C or ``--duration``; then every
child gets SIGINT (the command node publishes a last zero) and is waited for.

The manager's state (``lifecycle_manager/state``) is followed: when it reports ``failed: <why>``
(a node could not be configured or activated, or died later) every node is stopped.

Exit status: 0 stopped by Ctrl-C/SIGTERM or ``--duration`` with the pipeline up; 1 the pipeline
failed (the manager reported a failure, e.g. configure failed, or a node process exited);
2 invalid configuration (nothing started).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gait_estimator.core import topology


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="start the pipeline nodes from a YAML file and drive their lifecycle", description=__doc__
    )
    p.add_argument(
        "--config", required=True, help="parameter file (ROS 2 params format), e.g. config/pipeline.yaml"
    )
    p.add_argument(
        "--model", default=None, help="model file for every node that reads one (overrides the file)"
    )
    p.add_argument("--namespace", default="", help="namespace of every node and topic")
    p.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl-C)"
    )
    p.add_argument("--log-dir", default=None, help="write each node's output to <log-dir>/<node>.log")
    p.set_defaults(handler=run)


def plan(config: dict, model: str | None = None, namespace: str = "") -> list[tuple[str, list[str]]]:
    """(node, extra ros-args) for every process to start, in start order (manager last)."""
    fused = any(s.executable in config for s in topology.FUSED)
    # the stages with a section in the file (no imu_driver section: the IMUs come from elsewhere)
    nodes = [s.executable for s in topology.stages(fused) if s.executable in config]
    out = []
    for n in [*nodes, topology.MANAGER]:
        extra: list[str] = []
        if namespace:
            extra += ["-r", f"__ns:=/{namespace.strip('/')}"]
        if model and n in topology.model_nodes():
            extra += ["-p", f"model_path:={model}"]
        if n == topology.MANAGER and topology.MANAGER not in config:
            extra += [
                "-p",
                f"node_names:=[{','.join(topology.managed(fused))}]",
                "-p",
                f"command_node:={topology.command_node(fused)}",
            ]
        out.append((n, extra))
    return out


class ManagerWatch:
    """Follows ``lifecycle_manager/state`` (latched) from this process, in its own rclpy context."""

    def __init__(self, namespace: str = "") -> None:
        import threading

        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        self.state = ""
        from rclpy.signals import SignalHandlerOptions

        self._context = rclpy.Context()
        # no rclpy signal handlers: run's own SIGINT/SIGTERM handling stops the nodes in order
        rclpy.init(args=[], context=self._context, signal_handler_options=SignalHandlerOptions.NO)
        ns = "/" + namespace.strip("/") if namespace.strip("/") else "/"
        self._node = rclpy.create_node(
            f"gait_estimator_run_{os.getpid()}", namespace=ns, context=self._context
        )
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self._node.create_subscription(String, "lifecycle_manager/state", self._on_state, latched)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, name="manager_watch", daemon=True)
        self._thread.start()

    def _on_state(self, msg) -> None:
        self.state = msg.data

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self._executor.spin()
        except ExternalShutdownException:
            pass

    @property
    def failure(self) -> str | None:
        return self.state if self.state.startswith("failed") else None

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=1.0)
        self._node.destroy_node()
        self._context.try_shutdown()
        self._thread.join(timeout=2.0)


class Launcher:
    """Start/stop a set of node processes (used by ``run`` and ``demo``)."""

    def __init__(self, config_path: Path, log_dir: Path | None = None) -> None:
        self.config_path = Path(config_path)
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list = []

    def start(self, steps: list[tuple[str, list[str]]]) -> None:
        bindir = Path(sys.executable).parent
        for name, extra in steps:
            exe = bindir / name
            cmd = [
                str(exe) if exe.exists() else name,
                "--ros-args",
                "--params-file",
                str(self.config_path),
                *extra,
            ]
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                fh = open(self.log_dir / f"{name}.log", "w")  # closed in stop()
                self._logs.append(fh)
                out = {"stdout": fh, "stderr": subprocess.STDOUT}
            else:
                out = {}
            self.procs[name] = subprocess.Popen(cmd, start_new_session=True, env=dict(os.environ), **out)

    def dead(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def stop(self, grace_s: float = 8.0) -> None:
        order = topology.stop_order()  # manager first, command nodes before their inputs
        for n in sorted(self.procs, key=lambda k: order.index(k) if k in order else 99):
            p = self.procs[n]
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for fh in self._logs:
            fh.close()


def run(args: argparse.Namespace) -> int:
    from gait_estimator.core.params import load_config

    config = load_config(args.config)  # ConfigError -> main prints it, exit 2
    steps = plan(config, args.model, args.namespace)
    launcher = Launcher(Path(args.config), Path(args.log_dir) if args.log_dir else None)
    print(f"gait-estimator run: starting {[n for n, _ in steps]} from {args.config}", flush=True)
    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    # Both signals explicitly: a process started in the background of a non-interactive shell
    # inherits SIGINT ignored, and a launcher must still stop its nodes on Ctrl-C / SIGINT.
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    watch = ManagerWatch(args.namespace)
    try:
        launcher.start(steps)
        t_end = time.monotonic() + args.duration if args.duration > 0 else None
        while not stop["flag"] and (t_end is None or time.monotonic() < t_end):
            dead = launcher.dead()
            if dead:
                print(f"gait-estimator run: node(s) exited: {dead}; stopping", file=sys.stderr, flush=True)
                code = 1
                break
            if watch.failure:
                print(
                    f"gait-estimator run: lifecycle manager {watch.failure}; stopping",
                    file=sys.stderr,
                    flush=True,
                )
                code = 1
                break
            time.sleep(0.2)
    finally:
        launcher.stop()
        watch.close()
        for s, h in old.items():
            signal.signal(s, h)
    return code
