"""``imu_synchronizer``: ``imu/<location>`` streams -> ``gait/imu_frame`` at a fixed rate.

Executable: ``imu_synchronizer`` (``python -m gait_estimator.nodes.imu_synchronizer``), node
name ``imu_synchronizer``. A thin adapter over ``core.synchronizer.ImuSynchronizer``: every
received ``sensor_msgs/Imu`` is pushed with its host receive time, then due frames are
published (``gait_estimator_msgs/ImuFrame``, SensorDataQoS). Parameters (``params.SYNCHRONIZER``):
``locations``, ``rate_hz`` (must equal the model's ``sample_rate_hz``), ``latency_s``,
``max_gap_s``, ``estimate_clock_offset``, ``poll_period_s`` (timer that keeps emitting -
invalid - frames when a sensor stalls), ``imu_input`` (``topics``: one subscription per
``imu/<location>``; ``bundle``: one ``ImuBundle`` per sampling instant on ``bundle_topic`` from
``imu_driver`` with ``imu_output`` bundle, every sample pushed and frames polled once: one wake-up
per instant instead of one per IMU). Counters on ``/diagnostics`` every second.

Data time, not host time: ``core.clock.DataClock`` (the clock and the synchronizer factory the
fused node and offline replay use too; its docstring says why).
"""

from __future__ import annotations

import time

from rclpy.node import Node

from gait_estimator.core.clock import DataClock, make_synchronizer
from gait_estimator.nodes import conversion, diagnostics, runner, topics
from gait_estimator.nodes.params import declare_params


class ImuSynchronizerNode(Node):
    def __init__(self, name: str = "imu_synchronizer") -> None:
        super().__init__(name)
        from diagnostic_msgs.msg import DiagnosticArray
        from gait_estimator_msgs.msg import ImuBundle, ImuFrame
        from sensor_msgs.msg import Imu

        p = self.params = declare_params(self, "imu_synchronizer")
        self.sync = make_synchronizer(p)
        self.clock = DataClock(self.sync)
        qos = topics.sensor_qos()
        self.pub = self.create_publisher(ImuFrame, topics.TOPIC_FRAME, qos)
        self._frame_msg = ImuFrame()  # refilled per frame
        self.locations = frozenset(p.locations)
        if p.imu_input == "bundle":
            self.create_subscription(
                ImuBundle, p.bundle_topic, self._on_bundle, topics.sensor_qos(topics.SENSOR_SUB_DEPTH)
            )
        for loc in p.locations if p.imu_input == "topics" else ():
            self.create_subscription(
                Imu,
                topics.TOPIC_IMU.format(location=loc),
                lambda msg, loc=loc: self._on_imu(loc, msg),
                topics.sensor_qos(topics.SENSOR_SUB_DEPTH),
            )
        if p.poll_period_s > 0:
            self.create_timer(p.poll_period_s, self._poll)
        self.diag_pub = self.create_publisher(DiagnosticArray, topics.TOPIC_DIAGNOSTICS, 10)
        self.create_timer(1.0, self._diagnostics)
        self.published = 0

    def _on_imu(self, location: str, msg) -> None:
        self._publish(self.clock.push_values(location, *conversion.imu_values(msg), time.time_ns()))

    def _on_bundle(self, msg) -> None:
        self._publish(self.clock.push_many(conversion.bundle_values(msg, self.locations), time.time_ns()))

    def _poll(self) -> None:  # the optional timer: host time (all IMUs stalled -> invalid frames)
        self._publish(self.sync.poll(time.time_ns()))

    def _publish(self, frames) -> None:
        for frame in frames:
            self.pub.publish(conversion.frame_to_msg(frame, self.sync.rate_hz, self._frame_msg))
            self.published += 1

    def _diagnostics(self) -> None:
        c = self.sync.counters
        level = 0 if c["frames"] and not c["invalid_frames"] else 1
        self.diag_pub.publish(
            diagnostics.diagnostic_array(
                self,
                f"{self.get_name()}: synchronizer",
                level,
                "ok" if level == 0 else "invalid frames seen",
                dict(c, published=self.published),
            )
        )


def main(args=None) -> int:
    return runner.run_node(ImuSynchronizerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
