"""Helpers for the multi-process node tests: start executables, listen over DDS, bounded waits.

Every process started here is stopped by ``Procs.stop`` (SIGINT, then SIGKILL after a grace
time); tests register it as a finalizer. ROS_DOMAIN_ID and localhost discovery come from the
conftest (inherited by the children).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def param_args(params: dict | None) -> list[str]:
    out: list[str] = []
    for k, v in (params or {}).items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            v = "[" + ",".join(str(x) for x in v) + "]"
        out += ["-p", f"{k}:={v}"]
    return out


class Procs:
    """A set of node processes with their logs; ``stop()`` ends all of them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(
        self,
        executable: str,
        name: str | None = None,
        params: dict | None = None,
        params_file: str | Path | None = None,
        namespace: str = "",
    ) -> subprocess.Popen:
        name = name or executable
        args = [str(BIN / executable), "--ros-args", "-r", f"__node:={name}"]
        if namespace:  # its relative topics and services move under it: isolation between tests
            args += ["-r", f"__ns:=/{namespace.strip('/')}"]
        if params_file:
            args += ["--params-file", str(params_file)]
        args += param_args(params)
        log = open(self.log_dir / f"{name}.log", "w")
        p = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True
        )
        p._log = log  # type: ignore[attr-defined]
        self.procs[name] = p
        return p

    def log(self, name: str) -> str:
        f = self.log_dir / f"{name}.log"
        return f.read_text() if f.exists() else ""

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs[name]
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 8.0
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
            p._log.close()  # type: ignore[attr-defined]


class Listener:
    """An rclpy node in the test process, spun on a background thread, recording messages."""

    def __init__(self, name: str = "test_listener") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.msgs: dict[str, list] = defaultdict(list)  # topic -> [(receive_ns, msg)]
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def subscribe(self, msg_type, topic: str, qos) -> None:
        def cb(msg, topic=topic):
            t = time.time_ns()
            with self.lock:
                self.msgs[topic].append((t, msg))

        self.node.create_subscription(msg_type, topic, cb, qos)

    def take(self, topic: str) -> list:
        with self.lock:
            return list(self.msgs[topic])

    def clear(self, topic: str | None = None) -> None:
        with self.lock:
            if topic is None:
                self.msgs.clear()
            else:
                self.msgs[topic] = []

    def wait_for(self, predicate, timeout: float, what: str = "condition", details=None) -> None:
        """Poll ``predicate`` until true; on timeout fail naming ``what`` (+ ``details()``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        extra = f" ({details()})" if details is not None else ""
        raise AssertionError(f"timed out after {timeout} s waiting for {what}{extra}")

    def wait_count(self, topic: str, n: int, timeout: float, after_ns: int = 0, what: str = "") -> list:
        """Wait (event-based, instead of a fixed sleep) until ``n`` messages of ``topic`` arrived
        after host time ``after_ns``; returns them (all that arrived after it)."""

        def got():
            return [(t, m) for t, m in self.take(topic) if t > after_ns]

        self.wait_for(lambda: len(got()) >= n, timeout, what or f"{n} messages on {topic}")
        return got()

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        """Call a service; bounded by ``timeout`` in all. A fresh client can lose its first answer
        (the server may not have matched the client's response reader yet when
        ``wait_for_service`` returns: slow discovery on a loaded machine), so the request is sent
        again on the same, by then matched, client after a third of the time."""
        client = self.node.create_client(srv_type, name)
        deadline = time.monotonic() + timeout
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f"service {name} not available within {timeout} s")
            while True:
                done = threading.Event()
                fut = client.call_async(request)
                fut.add_done_callback(lambda _f, d=done: d.set())
                left = deadline - time.monotonic()
                if done.wait(max(0.5, min(left, timeout / 3))):
                    return fut.result()
                client.remove_pending_request(fut)
                if time.monotonic() >= deadline:
                    raise AssertionError(f"service {name}: no answer within {timeout} s")
        finally:
            self.node.destroy_client(client)

    def publisher(self, msg_type, topic: str, qos):
        return self.node.create_publisher(msg_type, topic, qos)

    def close(self) -> None:
        import rclpy

        self._stop.set()
        self.thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


# -- lifecycle helpers ---------------------------------------------------------------------


def get_state(listener: Listener, node: str, timeout: float = 10.0) -> str:
    from lifecycle_msgs.srv import GetState

    return listener.call(GetState, f"/{node}/get_state", GetState.Request(), timeout).current_state.label


def change_state(listener: Listener, node: str, transition_id: int, timeout: float = 20.0) -> bool:
    from lifecycle_msgs.srv import ChangeState

    req = ChangeState.Request()
    req.transition.id = transition_id
    if listener.call(ChangeState, f"/{node}/change_state", req, timeout).success:
        return True
    # On a loaded machine a slow transition (configure loads a model) can outlast the first
    # wait, and ``call`` sends the request again: the node then rightly rejects the repeat
    # because it already made the transition. The node's state says which happened.
    goal = _TRANSITION_GOAL.get(transition_id)
    return goal is not None and get_state(listener, node, timeout) == goal


# lifecycle_msgs/Transition ids -> the primary state they end in
_TRANSITION_GOAL = {1: "inactive", 2: "unconfigured", 3: "active", 4: "inactive"}


def set_string_param(listener: Listener, node: str, name: str, value: str, timeout: float = 20.0):
    """Set a string parameter of ``node`` over its ``set_parameters`` service; the SetParametersResult."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    req = SetParameters.Request()
    req.parameters = [
        Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
    ]
    return listener.call(SetParameters, f"/{node}/set_parameters", req, timeout).results[0]


# -- input data ------------------------------------------------------------------------------


def write_gait_csv(
    path: Path,
    seconds: float = 120.0,
    rate: float = 100.0,
    locations=("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r", "foot_l", "foot_r"),
) -> Path:
    """A deterministic, gait-like CSV for the ``file`` backend (periodic signals, unit quats)."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    head = ["time_s"]
    cols = [t]
    for k, loc in enumerate(locations):
        w = 2 * np.pi * 1.0 * t + 0.4 * k
        acc = np.stack([1.5 * np.sin(w), 0.3 * np.cos(2 * w), 9.81 + 2.0 * np.sin(w + 0.5)], 1)
        gyro = np.stack([0.2 * np.cos(w), 0.1 * np.sin(w), 2.0 * np.sin(w + 1.0)], 1)
        ang = 0.4 * np.sin(w)
        quat = np.stack([np.zeros(n), np.sin(ang / 2), np.zeros(n), np.cos(ang / 2)], 1)
        for name, arr in (("acc", acc), ("gyro", gyro)):
            for i, ax in enumerate("xyz"):
                head.append(f"{loc}/{name}_{ax}")
                cols.append(arr[:, i])
        for i, ax in enumerate("xyzw"):
            head.append(f"{loc}/quat_{ax}")
            cols.append(quat[:, i])
    data = np.stack(cols, 1)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerows(np.round(data, 6).tolist())
    return path


def feed_estimates(
    listener: Listener, stop: threading.Event, rate_hz: float = 100.0, namespace: str = ""
) -> None:
    """Publish ``gait/torque_estimate`` for every joint at ``rate_hz`` until ``stop`` (run it on a
    thread): torques differ per joint and per message, stamped with the host time, so a command
    node downstream has a live, valid input without a model."""
    from gait_estimator_msgs.msg import JointTorque

    from gait_estimator.conventions import JOINTS
    from gait_estimator.nodes import conversion, topics

    topic = f"/{namespace}/{topics.TOPIC_ESTIMATE}" if namespace else topics.TOPIC_ESTIMATE
    pub = listener.publisher(JointTorque, topic, topics.sensor_qos())
    k = 0
    while not stop.is_set():
        torque = [10.0 * (j + 1) * np.sin(0.05 * k + j) for j in range(len(JOINTS))]
        pub.publish(conversion.joint_torque_msg(time.time_ns(), JointTorque.SOURCE_ESTIMATE, JOINTS, torque))
        k += 1
        time.sleep(1.0 / rate_hz)
