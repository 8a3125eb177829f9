"""The node contract: every lifecycle node of the package behaves the same way, whichever mode.

Over real DDS, each lifecycle node (``torque_command``, ``gait_pipeline``, ``torque_estimator``,
``calibrator``) is driven through its lifecycle from this process and held to one behaviour:

- **zero on deactivate**: a node that commands torque publishes, from the moment the deactivate
  transition returns, only zero commands with ``valid`` false, until activated again (no
  ramp-out with valid torque after the operator said stop); a node that estimates publishes
  nothing while inactive;
- **parameters honoured or refused**: a runtime set of a parameter the node does not apply at
  run time is refused with the reason (never accepted and silently ignored); one it applies is
  accepted and reads back;
- **diagnostics at the declared period** (``diagnostics_period_s``);
- **release on cleanup**: after cleanup the node has no publisher left on its output topics;
  configure brings them back.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from _node_harness import Listener, Procs, change_state, feed_estimates

pytestmark = pytest.mark.ros

CONFIGURE, CLEANUP, ACTIVATE, DEACTIVATE = 1, 2, 3, 4
RATE = 100.0
DIAG_PERIOD = 0.25
KINDS = ("torque_command", "gait_pipeline", "torque_estimator", "calibrator")
NS = "contract_"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    return make_tiny_lstm_model(tmp_path_factory.mktemp("m") / "tiny.pt", window=50, rate=RATE, seed=1)


@pytest.fixture(scope="module")
def listener(request):
    from diagnostic_msgs.msg import DiagnosticArray
    from gait_estimator_msgs.msg import JointTorque

    from gait_estimator.nodes import topics

    lis = Listener("contract_test")
    request.addfinalizer(lis.close)
    lis.subscribe(DiagnosticArray, topics.TOPIC_DIAGNOSTICS, 10)
    for kind in KINDS:  # each node under test runs in a namespace of its own (no cross-talk)
        lis.subscribe(JointTorque, f"/{NS}{kind}/{topics.TOPIC_COMMAND}", topics.command_qos())
        deep = topics.sensor_qos(topics.SENSOR_SUB_DEPTH)
        lis.subscribe(JointTorque, f"/{NS}{kind}/{topics.TOPIC_ESTIMATE}", deep)
    return lis


def _feed_windows(listener: Listener, model_path, stop: threading.Event, namespace: str) -> None:
    """FeatureWindows as the windowing node publishes them for ``model_path`` (20 Hz)."""
    from gait_estimator_msgs.msg import FeatureWindow

    from gait_estimator.nodes import conversion, topics
    from gait_estimator.runtime.metadata import read_file_metadata

    md = read_file_metadata(model_path)
    pub = listener.publisher(FeatureWindow, f"/{namespace}/{topics.TOPIC_FEATURES}", topics.sensor_qos())
    rng = np.random.default_rng(0)
    while not stop.is_set():
        w = rng.normal(0.0, 0.5, (md.window, len(md.input_channels)))
        pub.publish(conversion.window_to_msg(
            w, time.time_ns(), md.input_channels, md.sample_rate_hz, True,
            normalization_id=md.normalization_id,
        ))
        time.sleep(0.05)


def _spec(kind: str, model) -> dict:
    from gait_estimator.core.command_stage import COMMAND_LIVE
    from gait_estimator.nodes import topics

    diag = {"diagnostics_period_s": DIAG_PERIOD}
    return {
        "torque_command": {
            "params": {"control_rate_hz": RATE, "ramp_s": 1.0, **diag},
            "outputs": (topics.TOPIC_COMMAND,), "command": True, "live": COMMAND_LIVE,
            "diagnostics": "torque command",
        },
        "gait_pipeline": {
            "params": {"imu_source": "sim", "driver_rate_hz": RATE, "model_path": str(model),
                       "inference_mode": "window", "control_rate_hz": RATE, "ramp_s": 1.0, **diag},
            "outputs": (topics.TOPIC_COMMAND, topics.TOPIC_ESTIMATE), "command": True,
            "diagnostics": "fused pipeline",
            "live": (*COMMAND_LIVE, "model_path"),
        },
        "torque_estimator": {
            "params": {"model_path": str(model), "inference_mode": "window", **diag},
            "outputs": (topics.TOPIC_ESTIMATE,), "command": False,
            "diagnostics": "torque estimator",
            "live": ("model_path", "subject_mass_kg"),
        },
        "calibrator": {
            "params": {}, "outputs": ("gait/calibration/status",), "command": False, "live": (),
        },
    }[kind]


def _changed_value(spec, current):
    """A value of the parameter's type, different from ``current`` (None: not generated here)."""
    if spec.type == "bool":
        return not current
    if spec.type in ("int", "double"):
        lo = spec.min if spec.min is not None else current - 10
        hi = spec.max if spec.max is not None else current + 10
        for v in (current + (hi - lo) * 0.1, current - (hi - lo) * 0.1, (lo + hi) / 2):
            v = int(round(v)) if spec.type == "int" else float(v)
            if lo <= v <= hi and v != current:
                return v
    if spec.type == "string" and spec.choices:
        other = [c for c in spec.choices if c != current]
        return other[0] if other else None
    return None  # arrays, free strings (model_path has its own swap tests)


def _set(listener: Listener, node: str, name: str, value):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    req = SetParameters.Request()
    req.parameters = [Parameter(name, value=value).to_parameter_msg()]
    return listener.call(SetParameters, f"/{node}/set_parameters", req, timeout=20).results[0]


def _publishers_of(listener: Listener, node: str, names) -> int:
    n = 0
    for topic in names:
        n += sum(1 for i in listener.node.get_publishers_info_by_topic(topic) if i.node_name == node)
    return n


@pytest.mark.parametrize("kind", KINDS)
def test_lifecycle_node_contract(kind, tiny_model, listener, tmp_path):
    from gait_estimator.core.params import SCHEMAS, defaults
    from gait_estimator.nodes import conversion, topics

    spec = _spec(kind, tiny_model)
    ns = f"{NS}{kind}"
    spec["outputs"] = tuple(f"/{ns}/{t}" for t in spec["outputs"])
    command_topic, estimate_topic = f"/{ns}/{topics.TOPIC_COMMAND}", f"/{ns}/{topics.TOPIC_ESTIMATE}"
    name = f"contract_{kind}"
    node = f"{ns}/{name}"  # for the lifecycle and parameter services
    procs = Procs(tmp_path / "logs")
    stop = threading.Event()
    feeders = []
    try:
        procs.start(kind, name=name, params=spec["params"], namespace=ns)
        if kind == "torque_command":
            feeders.append(
                threading.Thread(target=feed_estimates, args=(listener, stop, RATE, ns), daemon=True)
            )
        if kind == "torque_estimator":
            feeders.append(
                threading.Thread(target=_feed_windows, args=(listener, tiny_model, stop, ns), daemon=True)
            )
        for f in feeders:
            f.start()
        assert change_state(listener, node, CONFIGURE), procs.log(name)
        assert change_state(listener, node, ACTIVATE), procs.log(name)
        listener.wait_for(lambda: _publishers_of(listener, name, spec["outputs"]) == len(spec["outputs"]),
                          15, f"{node}'s publishers on {spec['outputs']}")

        # -- diagnostics at the declared period ---------------------------------------------------
        if "diagnostics_period_s" in spec["params"]:
            main = f"{name}: {spec['diagnostics']}"  # the node's own status (topic monitors aside)

            def stamps():  # the node's own clock, not this process's receive times
                diags = listener.take(topics.TOPIC_DIAGNOSTICS)
                return [conversion.stamp_to_ns(m.header.stamp) for _, m in diags
                        if any(s.name == main for s in m.status)]
            listener.clear(topics.TOPIC_DIAGNOSTICS)
            listener.wait_for(lambda: len(stamps()) >= 9, 10, f"{node} diagnostics")
            period = float(np.median(np.diff(stamps()))) / 1e9
            # loaded machine: timers run late; a node on another period (1 s) is 4x off
            assert 0.6 * DIAG_PERIOD < period < 1.8 * DIAG_PERIOD, f"{node}: diagnostics every {period:.3f} s"

        # -- zero on deactivate ------------------------------------------------------------------
        if spec["command"]:
            listener.wait_for(lambda: sum(m.valid and any(m.torque) for _, m in
                                          listener.take(command_topic)[-20:]) >= 15,
                              20, f"{node}: valid non-zero commands")
        assert change_state(listener, node, DEACTIVATE)
        t_done = time.time_ns()
        time.sleep(1.0)
        if spec["command"]:
            after = [m for t, m in listener.take(command_topic) if t > t_done]
            assert len(after) > 50, f"{node}: {len(after)} commands in 1 s while inactive"
            bad = [(m.valid, list(m.torque)) for m in after if m.valid or any(m.torque)]
            assert not bad, f"{node}: after deactivate {len(bad)} commands were not invalid zeros: {bad[:3]}"
        if estimate_topic in spec["outputs"]:
            estimates = [t for t, m in listener.take(estimate_topic) if t > t_done + 100_000_000]
            assert not estimates, f"{node}: {len(estimates)} estimates while inactive"

        # -- parameters (while active again): applied at run time, or refused with the reason ----
        assert change_state(listener, node, ACTIVATE), procs.log(name)
        current = {**defaults(kind), **spec["params"]}
        checked = 0
        for p in SCHEMAS[kind]:
            value = _changed_value(p, current[p.name]) if p.name in current else None
            if value is None:
                continue
            res = _set(listener, node, p.name, value)
            checked += 1
            if p.name not in spec["live"]:
                assert not res.successful, f"{node}.{p.name} := {value} accepted but not applied at run time"
                assert res.reason, f"{node}.{p.name}: refused without a reason"
        assert checked >= 3, f"only {checked} parameters of {kind} could be exercised"

        assert change_state(listener, node, DEACTIVATE)

        # -- release on cleanup ------------------------------------------------------------------
        assert change_state(listener, node, CLEANUP)
        listener.wait_for(lambda: _publishers_of(listener, name, spec["outputs"]) == 0, 10,
                          f"{node} to release its publishers")
        assert change_state(listener, node, CONFIGURE), procs.log(name)
        listener.wait_for(lambda: _publishers_of(listener, name, spec["outputs"]) == len(spec["outputs"]),
                          10, f"{node}'s publishers after configure")
    finally:
        stop.set()
        for f in feeders:
            f.join(timeout=5)
        procs.stop()
        for topic in (command_topic, estimate_topic):
            listener.clear(topic)
