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

Data time, not host time (:class:`DataClock`). Frames are polled at the newest host time that
any received sample describes (its stamp mapped to host time), not at the host clock when the
callback runs. When this process is starved (CPU load, a GC pause, a VM hiccup), samples sit in
the DDS queue (or in the in-process source) while the host clock runs on; polling at host time
would emit grid frames the queued samples belong to, hold stale values for them and mark them
invalid past ``max_gap_s``: a latched fault caused by our own scheduling, not by a sensor.
At data time a frame goes out when every IMU has reached its stamp (``emit_early``: at once
when all IMUs share the stamp), or when some IMU is ``latency_s`` ahead of it: a stream that
lags the others by that much is stalled, and its frames are invalid after ``max_gap_s`` as the
safety rule wants. If every IMU stops, frames stop and the command watchdog (which measures the
newest estimate's stamp against host time) ramps the command to zero.
"""

from __future__ import annotations

import time

from rclpy.node import Node

from gait_estimator.nodes import common
from gait_estimator.nodes.params import declare_params


class DataClock:
    """``ImuSynchronizer`` driven at data time (see the module docstring); ROS-free.

    ``push(sample, receive_ns)`` adds the sample and returns the frames due at the newest host
    time described by a sample of any stream (``lead_ns``, never later than ``receive_ns``).
    """

    def __init__(self, sync) -> None:
        self.sync = sync
        self._newest: dict[str, int] = {}  # location -> device stamp of its last accepted sample

    def reset(self) -> None:
        self.sync.reset()
        self._newest.clear()

    def lead_ns(self) -> int | None:
        lead = None
        for loc, d in self._newest.items():
            off = self.sync.clock_offset_ns(loc)
            if off is not None and (lead is None or d + off > lead):
                lead = d + off
        return lead

    def push(self, sample, receive_ns: int) -> list:
        """One ``core.samples.ImuSample``."""
        values = common.sample_values(sample.acc, sample.gyro, sample.quat_xyzw)
        return self.push_values(sample.location, sample.stamp_ns, values, receive_ns)

    def push_values(self, location: str, stamp_ns: int, values, receive_ns: int) -> list:
        """``push`` of one sample given as ``ImuSynchronizer.push_values`` takes it."""
        return self.push_many(((location, stamp_ns, values),), receive_ns)

    def push_many(self, samples, receive_ns: int) -> list:
        """Every sample of one sampling instant (a bundled input: ``(location, stamp_ns, values)``
        as ``common.bundle_values`` gives them), then one poll."""
        for location, stamp_ns, values in samples:
            if self.sync.push_values(location, stamp_ns, values, receive_ns):
                self._newest[location] = int(stamp_ns)
        return self._poll(receive_ns)

    def _poll(self, receive_ns: int) -> list:
        lead = self.lead_ns()
        if lead is None:
            return []
        return self.sync.poll(min(lead, int(receive_ns)))


def make_synchronizer(p: dict):
    from gait_estimator.core.synchronizer import ImuSynchronizer

    return ImuSynchronizer(
        tuple(p["locations"]),
        p["rate_hz"],
        latency_ns=int(p["latency_s"] * 1e9),
        max_gap_ns=int(p["max_gap_s"] * 1e9),
        estimate_clock_offset=p["estimate_clock_offset"],
    )


class ImuSynchronizerNode(Node):
    def __init__(self, name: str = "imu_synchronizer") -> None:
        super().__init__(name)
        from diagnostic_msgs.msg import DiagnosticArray
        from gait_estimator_msgs.msg import ImuBundle, ImuFrame
        from sensor_msgs.msg import Imu

        p = self.params = declare_params(self, "imu_synchronizer")
        self.sync = make_synchronizer(p)
        self.clock = DataClock(self.sync)
        qos = common.sensor_qos()
        self.pub = self.create_publisher(ImuFrame, common.TOPIC_FRAME, qos)
        self._frame_msg = ImuFrame()  # refilled per frame
        self.locations = frozenset(p["locations"])
        if p["imu_input"] == "bundle":
            self.create_subscription(
                ImuBundle, p["bundle_topic"], self._on_bundle, common.sensor_qos(common.SENSOR_SUB_DEPTH)
            )
        for loc in p["locations"] if p["imu_input"] == "topics" else ():
            self.create_subscription(
                Imu,
                common.TOPIC_IMU.format(location=loc),
                lambda msg, loc=loc: self._on_imu(loc, msg),
                common.sensor_qos(common.SENSOR_SUB_DEPTH),
            )
        if p["poll_period_s"] > 0:
            self.create_timer(p["poll_period_s"], self._poll)
        self.diag_pub = self.create_publisher(DiagnosticArray, common.TOPIC_DIAGNOSTICS, 10)
        self.create_timer(1.0, self._diagnostics)
        self.published = 0

    def _on_imu(self, location: str, msg) -> None:
        self._publish(self.clock.push_values(location, *common.imu_values(msg), time.time_ns()))

    def _on_bundle(self, msg) -> None:
        self._publish(self.clock.push_many(common.bundle_values(msg, self.locations), time.time_ns()))

    def _poll(self) -> None:  # the optional timer: host time (all IMUs stalled -> invalid frames)
        self._publish(self.sync.poll(time.time_ns()))

    def _publish(self, frames) -> None:
        for frame in frames:
            self.pub.publish(common.frame_to_msg(frame, self.sync.rate_hz, self._frame_msg))
            self.published += 1

    def _diagnostics(self) -> None:
        c = self.sync.counters
        level = 0 if c["frames"] and not c["invalid_frames"] else 1
        self.diag_pub.publish(
            common.diagnostic_array(
                self,
                f"{self.get_name()}: synchronizer",
                level,
                "ok" if level == 0 else "invalid frames seen",
                dict(c, published=self.published),
            )
        )


def main(args=None) -> int:
    return common.run_node(ImuSynchronizerNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
