"""The command stage on the wire: one adapter for ``torque_command`` and ``gait_pipeline``.

``core.command_stage.CommandStage`` decides; this class only wires it to ROS: the
``exo/torque_command`` publisher (reliable, with the liveliness lease the sentinel watches) and
its ros2_control outputs (``interop.CommandOutputs``), the ``exo/emergency_stop`` and
``exo/reset`` subscriptions, and the control-rate timer that fills gaps between estimates.
Everything runs under the node's one lock (samples may arrive on a source thread).
"""

from __future__ import annotations

import math
import threading
import time

from gait_estimator.core.command_stage import CommandStage
from gait_estimator.nodes import conversion, diagnostics, topics
from gait_estimator.nodes.interop import CommandOutputs


class CommandPort:
    """Created in ``on_configure`` (raises the package's ConfigError on bad parameters); its
    entities are appended to ``entities`` so the node's release destroys them with its own."""

    def __init__(self, node, params, entities: list, lock: threading.Lock | None = None) -> None:
        from gait_estimator_msgs.msg import JointTorque
        from std_msgs.msg import Bool, Empty

        self.node = node
        self.stage = CommandStage(params)
        self.lock = lock or threading.Lock()
        self._msg = JointTorque()
        # A plain publisher (not a lifecycle one): the zeros must go out while inactive too.
        self.pub = diagnostics.monitor_output(  # liveliness lease for the sentinel; rate/stamp diagnostics
            node, node.create_publisher(JointTorque, topics.TOPIC_COMMAND, topics.command_publisher_qos()),
            params.control_rate_hz, float("inf"))
        rel = topics.command_qos()
        entities += [
            self.pub,
            node.create_subscription(Bool, topics.TOPIC_ESTOP, self._on_estop, rel),
            node.create_subscription(Empty, topics.TOPIC_RESET, self._on_reset, rel),
            node.create_timer(1.0 / params.control_rate_hz, self._on_tick),
        ]
        self._interop = CommandOutputs(node, params, entities)

    # -- called by the node, under its lock --------------------------------------------------------
    def submit(
        self, names, torque, stamp_ns: int, valid: bool, confidence: float = 1.0,
        gait_phase: float = math.nan, fault: int = 0,
    ) -> None:
        """An estimate (``fault``: why it is not valid, ``core.faults``): shaped, and published at
        once when the stage says so; every latch, transient episode and recovery is logged."""
        stage = self.stage
        if stage.submit(names, torque, stamp_ns, valid, confidence, time.time_ns(), gait_phase, fault):
            self.publish(time.time_ns(), stamp_ns)
        if stage.events:
            log = self.node.get_logger()
            for level, line in stage.events:  # one call site per severity (rclpy requires it)
                if level == "info":
                    log.info(line)
                elif level == "warn":
                    log.warning(line)
                else:
                    log.error(line)
            stage.events.clear()

    def publish(self, now_ns: int, stamp_ns: int | None = None, out=None) -> None:
        stage = self.stage
        out = stage.command(now_ns) if out is None else out
        stamp = stage.stamp_for(now_ns) if stamp_ns is None else stamp_ns
        m, valid = conversion.command_msg(
            out, stamp, stage.joints, stage.active, stage.subject_mass_kg, msg=self._msg,
            confidence=stage.shaper.confidence, gait_phase=stage.gait_phase,
        )
        self.pub.publish(m)
        self._interop.publish(m)
        stage.published(stamp, valid, time.time_ns())

    def activate(self) -> None:
        with self.lock:
            self.stage.activate()

    def deactivate(self) -> None:
        """Zero at once (valid false), then invalid zeros at the control rate while inactive."""
        with self.lock:
            now = time.time_ns()
            self.publish(now, out=self.stage.deactivate(now))

    def release(self) -> None:
        """The last zero, delivered (bounded wait) before the publisher is destroyed."""
        with self.lock:
            now = time.time_ns()
            self.publish(now, out=self.stage.release(now))
        topics.deliver_last(self.pub)

    # -- callbacks ---------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        with self.lock:
            if self.stage.tick_due():
                self.publish(time.time_ns())
            self.stage.end_tick()

    def _on_estop(self, msg) -> None:
        if not msg.data:
            return
        t_cb = time.time_ns()
        with self.lock:
            self.stage.estop()
            self.publish(t_cb)  # the zero goes out first, in this callback
            t_pub = self.stage.last_publish_ns
        diagnostics.log_estop(self.node, t_cb, t_pub)

    def _on_reset(self, msg) -> None:
        with self.lock:
            self.stage.reset()
        self.node.get_logger().info("reset: fault/e-stop cleared")
