"""What a running pipeline must show from outside, over DDS: the manager's state, every lifecycle
node's state and valid commands on ``exo/torque_command`` (all under the pipeline's namespace).
Shared by the signal tests (processes started directly) and the launch tests (``ros2 launch``)."""

from __future__ import annotations

import math

COMMAND_TOPIC = "exo/torque_command"
MANAGER_STATE = "lifecycle_manager/state"


def topic(namespace: str, name: str) -> str:
    return f"/{namespace.strip('/')}/{name}" if namespace.strip("/") else f"/{name}"


def watch(listener, namespace: str = "") -> None:
    """Subscribe the listener to the command and the manager's latched state."""
    from gait_estimator_msgs.msg import JointTorque
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from gait_estimator.nodes import topics

    listener.subscribe(JointTorque, topic(namespace, COMMAND_TOPIC), topics.command_qos())
    latched = QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    listener.subscribe(String, topic(namespace, MANAGER_STATE), latched)


def manager_state(listener, namespace: str = "") -> str:
    states = listener.take(topic(namespace, MANAGER_STATE))
    return states[-1][1].data if states else ""


def valid_commands(listener, namespace: str = "") -> list:
    """Commands that are valid, finite and not all zero (the ramp-in has begun)."""
    out = []
    for _, m in listener.take(topic(namespace, COMMAND_TOPIC)):
        if m.valid and all(math.isfinite(x) for x in m.torque) and any(m.torque):
            out.append(m)
    return out


def wait_running(listener, namespace: str, lifecycle_nodes, timeout_s: float, details=None) -> int:
    """Manager 'active', every lifecycle node 'active' (asked over its get_state service), and at
    least 20 valid commands. Returns how many ``exo/reset`` it had to send: a scheduling stall on
    an overloaded machine (seen at load 12 on 2 cores) can latch a command fault before the first
    valid command; the fault holds (safety) until ``exo/reset``, which an operator sends. After
    10 s of commands without a valid one, a reset goes out every 10 s."""
    import time

    from lifecycle_msgs.srv import GetState
    from std_msgs.msg import Empty

    from gait_estimator.nodes import topics

    def active() -> bool:
        state = manager_state(listener, namespace)
        if state.startswith("failed"):
            raise AssertionError(f"lifecycle_manager: {state}; " + (details() if details else ""))
        return state == "active"

    def commands() -> bool:
        return len(valid_commands(listener, namespace)) >= 20

    listener.wait_for(active, timeout_s, "manager active", details)
    for node in lifecycle_nodes:
        name = topic(namespace, f"{node}/get_state")
        label = listener.call(GetState, name, GetState.Request(), 20.0).current_state.label
        assert label == "active", f"{name}: {label}"
    reset = listener.publisher(Empty, topic(namespace, "exo/reset"), topics.command_qos())
    resets = [0]
    next_reset = [time.monotonic() + 10.0]

    def commands_or_reset() -> bool:
        if commands():
            return True
        if time.monotonic() > next_reset[0] and listener.take(topic(namespace, COMMAND_TOPIC)):
            reset.publish(Empty())
            resets[0] += 1
            next_reset[0] = time.monotonic() + 10.0
        return False

    def seen() -> str:
        cmds = [m for _, m in listener.take(topic(namespace, COMMAND_TOPIC))]
        last = f", last {list(cmds[-1].torque)} valid={cmds[-1].valid}" if cmds else ""
        return f"{len(cmds)} commands, {len(valid_commands(listener, namespace))} valid{last}, " + (
            f"{resets[0]} resets; " + (details() if details else "")
        )

    listener.wait_for(commands_or_reset, 60, "20 valid commands", seen)
    return resets[0]
