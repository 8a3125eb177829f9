"""``imu_driver``: IMU samples onto ``imu/<location>`` (``sensor_msgs/Imu``, SensorDataQoS).

Executable: ``imu_driver`` (``python -m gait_estimator.nodes.imu_driver``), node name
``imu_driver``. Parameters (schema ``params.DRIVER``; ``ros2 param describe`` lists them):

- ``source``: ``sim`` (default: the gait simulator streamed in real time), ``file`` (a
  dataset directory, a trial ``.npz`` or a CSV, at its own rate), ``serial`` (the binary frame
  protocol of ``nodes.serial_protocol`` through pyserial);
- ``locations`` (default the 7 lower-body IMUs), ``rate_hz`` (sim), ``frame_prefix``;
- ``imu_output``: ``topics`` (default, one ``sensor_msgs/Imu`` per IMU), ``bundle`` (one
  ``gait_estimator_msgs/ImuBundle`` per sampling instant on ``bundle_topic``, default
  ``imu/bundle``, the form IMU hubs deliver: consumers wake once per instant, not once per IMU) or
  ``both``. ``ImuBundle`` holds flat arrays (each sample's own stamp, acc, gyro, quaternion) rather
  than nested ``sensor_msgs/Imu``: rclpy deserialises it ~20x faster than an ``ImuFrame`` of 7 Imu
  messages (0.23 ms, measured), the cost that dominated the synchronizer at 1 kHz.
  ``header.stamp`` is the instant's first sample stamp, ``header.frame_id`` ``<frame_prefix>hub``,
  ``rate_hz`` the sampling rate. Unlike a synchronizer frame it is not resampled;
- ``acc_noise_std``/``gyro_noise_std``/``orientation_std``: diagonal covariances in each message;
- ``duration_s`` (0 = forever), ``publish_reference`` (sim/file: ground truth on
  ``gait/torque_reference``, ``JointTorque`` SOURCE_REFERENCE, N.m);
- ``sim_*``, ``file_*``, ``serial_*``: backend settings; ``fault_nan_*``: NaN injection.

``header.stamp`` is the device time of the sample (``sim_clock_offset_s`` shifts it from host
time); ``header.frame_id`` is ``<frame_prefix><location>``. Diagnostics on ``/diagnostics``.
"""

from __future__ import annotations

import threading

from rclpy.node import Node

from gait_estimator.nodes import conversion, diagnostics, runner, topics
from gait_estimator.nodes.imu_sources import make_source
from gait_estimator.nodes.params import declare_params


class ImuDriver(Node):
    def __init__(self, name: str = "imu_driver") -> None:
        super().__init__(name)
        from gait_estimator_msgs.msg import ImuBundle, JointTorque
        from sensor_msgs.msg import Imu

        p = self.params = declare_params(self, "imu_driver")
        self.locations = tuple(p.locations)
        cov = (p.orientation_std ** 2, p.gyro_noise_std ** 2, p.acc_noise_std ** 2)
        qos = topics.sensor_qos()
        per_imu_topics = p.imu_output in ("topics", "both")
        self._pubs = {
            loc: self.create_publisher(Imu, topics.TOPIC_IMU.format(location=loc), qos)
            for loc in (self.locations if per_imu_topics else ())
        }
        self._msgs = {}
        for loc in self._pubs:
            m = Imu()
            conversion.fill_imu(m, 0, p.frame_prefix + loc, (0, 0, 0), (0, 0, 0), (0, 0, 0, 1), cov)
            self._msgs[loc] = m
        self._bundle = (
            Bundler(self.create_publisher(ImuBundle, p.bundle_topic, qos), self.locations, p.frame_prefix)
            if p.imu_output in ("bundle", "both")
            else None
        )
        self._ref_pub = (
            self.create_publisher(JointTorque, topics.TOPIC_REFERENCE, qos)
            if p.publish_reference
            else None
        )
        self._ref_msg = JointTorque()
        self._lock = threading.Lock()
        self.source = make_source(p, self.locations, p.rate_hz, p.source)
        if self._bundle is not None:
            rec = getattr(self.source, "rec", None)  # file: the recording's own rate
            self._bundle.msg.rate_hz = float(rec.rate_hz if rec is not None else p.rate_hz)
        self.diag_pub = self.create_publisher(
            __import__("diagnostic_msgs.msg").msg.DiagnosticArray, topics.TOPIC_DIAGNOSTICS, 10
        )
        self.create_timer(1.0, self._diagnostics)
        self.source.start(self._publish, self._publish_reference if self._ref_pub else None)
        self.get_logger().info(
            f"streaming {len(self.locations)} IMUs from '{p.source}' "
            f"on {[topics.TOPIC_IMU.format(location=x) for x in self.locations]}"
        )

    def _publish(self, location, stamp_ns, acc, gyro, quat) -> None:
        m = self._msgs.get(location)
        if m is not None:
            conversion.fill_imu(m, stamp_ns, m.header.frame_id, acc, gyro, quat)
            self._pubs[location].publish(m)
        if self._bundle is not None:
            self._bundle.add(location, stamp_ns, acc, gyro, quat)

    def _publish_reference(self, stamp_ns, torque, joints, phase) -> None:
        from gait_estimator_msgs.msg import JointTorque

        conversion.joint_torque_msg(
            stamp_ns,
            JointTorque.SOURCE_REFERENCE,
            joints,
            torque,
            subject_mass=0.0,
            gait_phase=phase,
            msg=self._ref_msg,
        )
        self._ref_pub.publish(self._ref_msg)

    def _diagnostics(self) -> None:
        src = self.source
        values = {"source": self.params.source, "samples": src.published}
        dec = getattr(src, "decoder", None)
        if dec is not None:
            values.update(dec.counters())
        level, msg = (2, f"source failed: {src.error}") if src.error else (0, "streaming")
        self.diag_pub.publish(
            diagnostics.diagnostic_array(
                self, f"{self.get_name()}: imu driver", level, msg, values, hardware_id=self._hardware_id()
            )
        )

    def _hardware_id(self) -> str:
        """diagnostic_updater's hardware_id: the device the samples come from."""
        p = self.params
        device = {"serial": p.serial_port, "file": p.file_path}.get(p.source, "simulator")
        return f"imu {p.source}: {device}"

    def close(self) -> None:
        self.source.stop()


class Bundler:
    """Samples -> one ``ImuBundle`` per sampling instant (``imu_output`` bundle), reusing one message.

    A bundle goes out when every location has its sample; a location that repeats before that (a
    sensor that dropped a sample) first sends the partial bundle, with only the locations present.
    The source thread is the only caller."""

    def __init__(self, publisher, locations, frame_prefix: str) -> None:
        from gait_estimator_msgs.msg import ImuBundle

        self.pub, self.locations = publisher, tuple(locations)
        self.index = {loc: i for i, loc in enumerate(self.locations)}
        n = len(self.locations)
        self.msg = ImuBundle()
        self.msg.header.frame_id = frame_prefix + "hub"
        self.msg.locations = list(self.locations)
        # Filled in place per instant, assigned to the message once per bundle.
        self._stamps, self._acc, self._gyro, self._quat = [0] * n, [0.0] * 3 * n, [0.0] * 3 * n, [0.0] * 4 * n
        self._none = [False] * n
        self.filled = list(self._none)
        self.count = 0
        self.published = 0

    def add(self, location, stamp_ns, acc, gyro, quat) -> None:
        i = self.index[location]
        if self.filled[i]:
            self._flush_partial()
        self._stamps[i] = int(stamp_ns)
        self._acc[3 * i : 3 * i + 3] = conversion.float_list(acc)
        self._gyro[3 * i : 3 * i + 3] = conversion.float_list(gyro)
        self._quat[4 * i : 4 * i + 4] = conversion.float_list(quat)
        if self.count == 0:
            conversion.set_stamp(self.msg.header.stamp, stamp_ns)
        self.filled[i] = True
        self.count += 1
        if self.count == len(self.locations):
            m = self.msg
            m.stamp_ns, m.linear_acceleration, m.angular_velocity, m.orientation = (
                self._stamps, self._acc, self._gyro, self._quat
            )
            self.pub.publish(m)
            self._clear()

    def _flush_partial(self) -> None:
        from gait_estimator_msgs.msg import ImuBundle

        keep = [i for i, f in enumerate(self.filled) if f]
        part = ImuBundle(header=self.msg.header, rate_hz=self.msg.rate_hz)
        part.locations = [self.locations[i] for i in keep]
        part.stamp_ns = [self._stamps[i] for i in keep]
        part.linear_acceleration = [x for i in keep for x in self._acc[3 * i : 3 * i + 3]]
        part.angular_velocity = [x for i in keep for x in self._gyro[3 * i : 3 * i + 3]]
        part.orientation = [x for i in keep for x in self._quat[4 * i : 4 * i + 4]]
        self.pub.publish(part)
        self._clear()

    def _clear(self) -> None:
        self.filled[:] = self._none  # in place: no list per instant
        self.count = 0
        self.published += 1


def main(args=None) -> int:
    return runner.run_node(ImuDriver, args)


if __name__ == "__main__":
    raise SystemExit(main())
