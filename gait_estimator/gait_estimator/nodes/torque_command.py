"""``torque_command``: lifecycle node, ``gait/torque_estimate`` -> ``exo/torque_command``.

Executable: ``torque_command`` (``python -m gait_estimator.nodes.torque_command``), node name
``torque_command`` (``rclpy.lifecycle.LifecycleNode``). A thin adapter over
``core.command.CommandShaper`` (gains, predictive shift, low-pass, saturation, rate limit,
ramps, watchdog). Parameters (``params.COMMAND``): ``joints``, ``subject_mass_kg``, ``gains``,
``phase_shift_s``, ``lowpass_hz``, ``limit_nm``, ``rate_limit_nm_s``, ``ramp_s``,
``watchdog_s``, ``control_rate_hz``, ``publish_on_estimate``, ``diagnostics_period_s``.

Output: ``JointTorque`` SOURCE_COMMAND in N.m on ``exo/torque_command``, reliable QoS depth 10,
stamped with the stamp of the estimate (hence of the IMU frame) it was computed from.
A command is published on every estimate (``publish_on_estimate``, the lowest latency) and by
a timer at ``control_rate_hz`` whenever no command went out since its previous tick, so the
controller sees at
least ``control_rate_hz``.

Safety:
- unconfigured: nothing is published; *inactive* (configured): zero torque with
  ``valid = false`` at the control rate; activating ramps in, deactivating ramps out over
  ``ramp_s`` (then zero);
- watchdog: no valid estimate for ``watchdog_s`` (estimator or driver dead, invalid data)
  ramps the command to zero; NaN/inf never reaches the wire (``common.joint_torque_msg``);
- ``exo/emergency_stop`` (``std_msgs/Bool``, reliable): ``true`` latches zero output
  immediately (the next publish, at the latest one control period later; also published at
  once); ``false`` does not clear it;
- an invalid or non-finite estimate latches a fault (``core.command``): zero until reset;
- ``exo/reset`` (``std_msgs/Empty``, reliable): clears a latched e-stop or fault; the command
  ramps in again if the node is active. (std_srvs is not available in this ROS install, so the
  reset is a topic; a lifecycle deactivate/activate cycle resets as well.)

Diagnostics on ``/diagnostics``: state, fault, latency (frame stamp -> command publish)
percentiles, counts.
"""

from __future__ import annotations

import time

import numpy as np
from rclpy.lifecycle import TransitionCallbackReturn

from gait_estimator.nodes import common
from gait_estimator.nodes.interop import CommandOutputs
from gait_estimator.nodes.lifecycle_base import ReleasingLifecycleNode
from gait_estimator.nodes.params import command_config, declare_params, make_shaper

# Parameters a runtime set puts into effect at once (the shaper reconfigures atomically, a lowered
# limit ramps down); the rest are read at configure (params.RuntimeParameters).
COMMAND_LIVE = (
    "subject_mass_kg",
    "gains",
    "phase_shift_s",
    "lowpass_hz",
    "limit_nm",
    "rate_limit_nm_s",
    "ramp_s",
    "watchdog_s",
    "publish_on_estimate",
    "min_confidence",
)


class JointMap:
    """Reorder estimate joints into the command's joint order (cached per name list)."""

    def __init__(self, joints) -> None:
        self.joints = tuple(joints)
        self._names: tuple | None = None
        self._idx: np.ndarray | None = None

    def __call__(self, names, values: np.ndarray) -> np.ndarray | None:
        names = tuple(names)
        if names != self._names:
            self._names = names
            try:
                self._idx = np.array([names.index(j) for j in self.joints], dtype=np.intp)
            except ValueError:
                self._idx = None
        return None if self._idx is None else values[self._idx]


class TorqueCommand(ReleasingLifecycleNode):
    def __init__(self, name: str = "torque_command") -> None:
        super().__init__(name)
        common.guard_change_state(self)
        self.params = declare_params(self, "torque_command", live=COMMAND_LIVE, apply=self._apply_params)
        self.shaper = None
        self._active = False
        self._entities: list = []
        self._pub = None
        self._last_pub_ns = 0
        self._published_since_tick = False
        self._last_stamp_ns = 0
        self.latency = common.LatencyStats()
        self.counts = {
            "estimates": 0,
            "invalid_estimates": 0,
            "commands": 0,
            "estops": 0,
            "resets": 0,
            "unknown_joints": 0,
        }

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        from diagnostic_msgs.msg import DiagnosticArray
        from gait_estimator_msgs.msg import JointTorque
        from std_msgs.msg import Bool, Empty

        p = self.params
        try:
            self.shaper = make_shaper(p)
        except Exception as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.map = JointMap(p["joints"])
        self._msg = JointTorque()
        rel = common.command_qos()
        # A plain publisher (not a lifecycle one): zeros must go out while inactive too.
        self._pub = common.monitor_output(  # liveliness lease for the sentinel; rate/stamp diagnostics
            self, self.create_publisher(JointTorque, common.TOPIC_COMMAND, common.command_publisher_qos()),
            p["control_rate_hz"], float("inf"))
        self._diag_pub = self.create_publisher(DiagnosticArray, common.TOPIC_DIAGNOSTICS, 10)
        self._entities = [
            self._pub,
            self._diag_pub,
            self.create_subscription(
                JointTorque,
                common.TOPIC_ESTIMATE,
                self._on_estimate,
                common.sensor_qos(common.SENSOR_SUB_DEPTH),
            ),
            self.create_subscription(Bool, common.TOPIC_ESTOP, self._on_estop, rel),
            self.create_subscription(Empty, common.TOPIC_RESET, self._on_reset, rel),
            self.create_timer(1.0 / p["control_rate_hz"], self._on_timer),
            self.create_timer(p["diagnostics_period_s"], self._diagnostics),
        ]
        self._interop = CommandOutputs(self, p, self._entities)  # ros2_control / JointState outputs
        self._period_ns = int(1e9 / p["control_rate_hz"])
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.shaper.reset()  # activation is a fresh start: clears a latched fault / e-stop
        self.shaper.enable()
        self._active = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self.shaper.disable()
        self._active = False
        self._publish(time.time_ns(), self._last_stamp_ns or time.time_ns())
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self.shaper is not None and self._pub is not None:
            self.shaper.disable()
            self.shaper.emergency_stop()
            self._publish(time.time_ns(), self._last_stamp_ns or time.time_ns())  # a last zero
            common.deliver_last(self._pub)
        self.destroy_entities(self._entities)
        self._entities = []
        self._pub = None
        self.shaper = None
        self._active = False

    def _apply_params(self, new, changed) -> str:
        """A validated runtime set of shaper parameters: applied to the running shaper at once."""
        if self.shaper is not None:
            self.shaper.reconfigure(command_config(new))
        self.get_logger().info(f"parameters applied: {sorted(changed)}")
        return ""

    # -- data -----------------------------------------------------------------------------
    def _on_estimate(self, msg) -> None:
        if self.shaper is None:
            return
        stamp, torque, _status, valid = common.joint_torque_arrays(msg)
        self.counts["estimates"] += 1
        est = self.map(msg.joint_names, torque)
        if est is None:
            self.counts["unknown_joints"] += 1
            self.get_logger().error(
                f"estimate joints {list(msg.joint_names)} lack some of {list(self.map.joints)}",
                throttle_duration_sec=5.0,
            )
            valid = False
        if not valid or est is None or not np.isfinite(est).all():
            self.counts["invalid_estimates"] += 1
            self.shaper.submit(None, stamp, False, "N.m")
        else:  # the watchdog runs on the stamp and on this receive time (no stamp keeps it alive)
            self.shaper.submit(est, stamp, True, "N.m", time.time_ns(), float(msg.confidence))
        self._last_stamp_ns = stamp
        if self.params["publish_on_estimate"]:
            self._publish(time.time_ns(), stamp)

    def _on_timer(self) -> None:
        now = time.time_ns()
        if not self._published_since_tick:
            self._publish(now, self._last_stamp_ns or now)
        self._published_since_tick = False

    def _on_estop(self, msg) -> None:
        if self.shaper is not None and msg.data:
            t_cb = time.time_ns()
            self.shaper.emergency_stop()
            self._publish(t_cb, self._last_stamp_ns or t_cb)  # the zero goes out first, in this callback
            self.counts["estops"] += 1
            common.log_estop(self, t_cb, self._last_pub_ns)

    def _on_reset(self, msg) -> None:
        if self.shaper is not None:
            self.counts["resets"] += 1
            self.shaper.reset()
            if self._active:
                self.shaper.enable()
            self.get_logger().info("reset: fault/e-stop cleared")

    def _publish(self, now_ns: int, stamp_ns: int) -> None:

        if self._pub is None or self.shaper is None:
            return
        m, valid = common.command_msg(
            self.shaper.update(now_ns), stamp_ns, self.map.joints, self._active,
            self.params["subject_mass_kg"], msg=self._msg, confidence=self.shaper.confidence,
        )
        self._pub.publish(m)
        self._interop.publish(m)
        self._last_pub_ns = time.time_ns()
        self._published_since_tick = True
        self.counts["commands"] += 1
        if stamp_ns and valid:
            self.latency.add_stamp(stamp_ns, self._last_pub_ns)

    def _diagnostics(self) -> None:
        values = dict(self.counts)
        values.update({f"latency_{k}": v for k, v in self.latency.summary_ms().items()})
        values["active"] = self._active
        values["rejected_parameter_sets"] = self.runtime_params.rejected
        level, message = common.shaper_status(self.shaper, self._active, values)
        self._diag_pub.publish(
            common.diagnostic_array(self, f"{self.get_name()}: torque command", level, message, values)
        )


def main(args=None) -> int:
    return common.run_node(TorqueCommand, args)


if __name__ == "__main__":
    raise SystemExit(main())
