"""ros2_control interop: the command also as ``std_msgs/Float64MultiArray`` and ``sensor_msgs/JointState``.

``exo/torque_command`` (``JointTorque``) stays the primary output: it carries the stamp of the
IMU frame it came from (latency and staleness are measurable downstream), a per-joint status and
the ``valid`` flag. ros2_control's ``forward_command_controller`` / ``JointGroupEffortController``
take a bare ``Float64MultiArray`` (no stamp, no names: the order is the controller's ``joints``
parameter), and plotting tools want ``JointState``. Both are derived here from each command, in
the command's own publish call (hence at the control rate), so they never disagree with it:

- ``effort_topic`` (``""`` = off): ``data`` = the command's torques in ``effort_joints`` order
  (empty = ``joints``), all 0.0 when the command is not valid (the contract is already
  ``valid == false => torque == 0.0``; repeated here because the array has no flag);
- ``joint_state_topic`` (``""`` = off): ``name`` = the command's joints, ``effort`` = its torques
  (0.0 when not valid), ``header.stamp`` = its stamp, ``position``/``velocity`` empty (not
  measured here).

Both use the command's reliable QoS. A controller reading the array must still time out on its
own (the array has no stamp): see README "Command sentinel and controller-side timeout".
"""

from __future__ import annotations

import array

import numpy as np


class CommandOutputs:
    """The optional ros2_control / tool outputs of a command node; ``publish(JointTorque)``.

    Created in ``on_configure`` with the node's validated parameters; its publishers are appended
    to ``entities`` so the node's release destroys them with its own."""

    def __init__(self, node, params, entities: list) -> None:
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray

        from gait_estimator.nodes import topics

        joints = list(params.joints)
        self.effort_joints = list(params.effort_joints) or joints
        # index of each effort joint in the command (params validated effort_joints within joints)
        self._index = np.array([joints.index(j) for j in self.effort_joints], dtype=np.intp)
        qos = topics.command_qos()
        self._effort_pub = self._state_pub = None
        if params.effort_topic:
            self._effort_pub = node.create_publisher(Float64MultiArray, params.effort_topic, qos)
            self._effort = Float64MultiArray()
            entities.append(self._effort_pub)
        if params.joint_state_topic:
            self._state_pub = node.create_publisher(JointState, params.joint_state_topic, qos)
            self._state = JointState()
            entities.append(self._state_pub)

    def publish(self, command) -> None:
        """Derive and publish both outputs from one ``JointTorque`` command (before ``publish``
        returns, so they leave in the command's own callback)."""
        if self._effort_pub is None and self._state_pub is None:
            return
        torque = np.asarray(command.torque, dtype=np.float64)
        if self._effort_pub is not None:
            effort = torque[self._index] if command.valid else np.zeros(len(self._index))
            self._effort.data = array.array("d", effort.tobytes())
            self._effort_pub.publish(self._effort)
        if self._state_pub is not None:
            s = self._state
            s.header.stamp = command.header.stamp
            s.name = list(command.joint_names)
            s.effort = array.array("d", (torque if command.valid else np.zeros(len(torque))).tobytes())
            self._state_pub.publish(s)
