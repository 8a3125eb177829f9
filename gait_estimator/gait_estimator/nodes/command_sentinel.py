"""Command sentinel: zero commands on ``exo/torque_command`` while the command publisher is dead.

A command node that dies (``kill -9``, a segfault, the OOM killer) sends no last zero: the
controller keeps its last command unless it times out on ``header.stamp`` itself. The sentinel
runs in another process (the lifecycle manager) and, while the command publisher is dead,
publishes ``JointTorque`` SOURCE_COMMAND, every joint STATUS_INVALID, torque 0.0,
``valid = false``, stamped with the host time and ``header.frame_id = "command_sentinel"``,
every ``sentinel_period_s``, for the joints of the last command it saw (the ``joints``
parameter until one was seen). It stops at the first command from anyone else.

Death is judged on two signals (measured with Fast DDS here, see README):
- liveliness: the command nodes' publisher offers an AUTOMATIC liveliness lease
  (``topics.COMMAND_LIVELINESS_LEASE_S``); the sentinel requests ``liveliness_lease_s`` and gets
  a liveliness-changed event about one lease after the process died (38-45 ms at 50 ms). The
  lease is asserted by DDS threads, so a live process whose executor stalls (1.3 s measured)
  stays alive and the sentinel does not fight it;
- heartbeat: the command publisher sends at least ``control_rate_hz`` while configured, so no
  command for ``sentinel_timeout_s`` means silence.

- the process: a starved process sends nothing, DDS threads included, so under load (8 on 2
  cores) its lease lapses and it goes silent exactly as after a death; zeros then landed between
  its commands when it resumed (0 -> 14.8 N·m in 3.8 ms on the wire). Fast DDS names every
  endpoint by host and process (GUID prefix bytes 2-3: host id, 4-5: the low 16 bits of the pid),
  so for a publisher on this host the sentinel asks the kernel: a process that still exists
  (running, starved, sleeping or stopped; not a zombie) is alive and is not fought. A frozen
  process is then the controller's to time out on ``header.stamp``, as a stalled executor is.

Dead = silent for ``sentinel_timeout_s``, no lease-offering publisher alive and no publisher
process of this host alive. A publisher that
offers no lease is judged by the heartbeat alone (a stall longer than the timeout then brings
zeros until it speaks again). The publisher count is no signal: after a ``kill -9`` the DDS
participant stays in the graph for its lease (20 s). A command node cleaned up on purpose is
silent as well: the sentinel then sends zeros, which is what a controller should apply anyway.
If the sentinel's own process dies nothing changes on the wire: the command node is unaffected
and keeps its own watchdog and last zero.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from gait_estimator.nodes import conversion, diagnostics, topics

SENTINEL_FRAME_ID = "command_sentinel"


_FASTDDS_VENDOR = b"\x01\x0f"  # eProsima's DDS vendor id, the first two bytes of its GUIDs


def _ignore(_msg) -> None:
    pass


def _live_pids() -> list[int]:
    """Processes of this host that exist and are not zombies (a killed, unreaped process is dead)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:  # gone meanwhile
                continue
            if stat[stat.rindex(")") + 2] not in "ZX":
                pids.append(int(name))
    return pids


class CommandSentinel:
    """Attached to a node (``LifecycleManager``); everything runs on that node's executor."""

    def __init__(self, node, params) -> None:
        from gait_estimator_msgs.msg import JointTorque
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        from rclpy.duration import Duration
        from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
        from rclpy.qos import LivelinessPolicy

        self.node = node
        self.topic = params.command_topic
        self.joints = list(params.joints)
        self.timeout_ns = int(params.sentinel_timeout_s * 1e9)
        self._lock = threading.Lock()
        self.dead = False
        self.seen = False  # a command publisher spoke at least once
        self.lease_alive = 0  # publishers whose liveliness lease holds
        self.zeros_sent = 0
        self.deaths = 0
        self._last_rx = 0
        self._zero_for(self.joints)
        group = MutuallyExclusiveCallbackGroup()
        # The sentinel's own publisher offers no lease: it never counts as a live command publisher.
        quiet = PublisherEventCallbacks(incompatible_qos=lambda _e: None)  # our liveliness sub: expected
        self._pub = node.create_publisher(
            JointTorque, self.topic, topics.command_qos(), event_callbacks=quiet, callback_group=group
        )
        # Heartbeat: default (infinite) lease, so it matches every command publisher.
        node.create_subscription(
            JointTorque, self.topic, self._on_command, topics.command_qos(), callback_group=group
        )
        # Liveliness: matches only publishers whose lease is <= ours (incompatible ones, such as
        # our own publisher, are expected: the handler just keeps rclpy from warning about them).
        lq = topics.command_qos()
        lq.liveliness = LivelinessPolicy.AUTOMATIC
        lq.liveliness_lease_duration = Duration(nanoseconds=int(params.liveliness_lease_s * 1e9))
        events = SubscriptionEventCallbacks(liveliness=self._on_liveliness, incompatible_qos=lambda _e: None)
        # Only its events matter: raw (no deserialisation) with a no-op callback, since every
        # command also arrives on the heartbeat subscription (CPU: 200+ commands/s on 2 cores).
        node.create_subscription(
            JointTorque, self.topic, _ignore, lq, event_callbacks=events, callback_group=group, raw=True
        )
        node.create_timer(params.sentinel_period_s, self._check, callback_group=group)

    def _zero_for(self, joints) -> None:
        from gait_estimator_msgs.msg import JointTorque

        self.joints = list(joints)
        self._msg = conversion.joint_torque_msg(
            0, JointTorque.SOURCE_COMMAND, self.joints, [0.0] * len(self.joints), valid=False
        )
        self._msg.header.frame_id = SENTINEL_FRAME_ID

    # -- signals ---------------------------------------------------------------------------
    def _on_command(self, msg) -> None:
        if msg.header.frame_id == SENTINEL_FRAME_ID:
            return
        with self._lock:
            self._last_rx = time.monotonic_ns()
            self.seen = True
            if msg.joint_names != self.joints:  # zero the joints the controller was commanded
                self._zero_for(msg.joint_names)
            if self.dead:
                self.dead = False
                self.node.get_logger().warning(f"command sentinel: {self.topic} is back; sentinel stops")

    def _on_liveliness(self, info) -> None:
        with self._lock:
            self.lease_alive = int(info.alive_count)
        if info.alive_count == 0:
            self._check()  # don't wait for the next tick

    # -- behaviour -------------------------------------------------------------------------
    def _check(self) -> None:
        now = time.monotonic_ns()
        with self._lock:
            silent = self.seen and now - self._last_rx > self.timeout_ns
            if silent and self.lease_alive == 0 and not self.dead and not self._publisher_process_alive():
                self.dead = True
                self.deaths += 1
                self.node.get_logger().error(
                    f"command sentinel: no command on {self.topic} for {(now - self._last_rx) / 1e6:.0f} ms "
                    "and no live publisher: publishing zero valid=false commands"
                )
            if not self.dead:
                return
            conversion.set_stamp(self._msg.header.stamp, time.time_ns())
            self._pub.publish(self._msg)
            self.zeros_sent += 1

    def _publisher_process_alive(self) -> bool:
        """Whether a command publisher of this host (other than ours) still has a live process."""
        infos = self.node.get_publishers_info_by_topic(self.topic)
        me = (self.node.get_name(), self.node.get_namespace())
        own = [bytes(i.endpoint_gid) for i in infos if (i.node_name, i.node_namespace) == me]
        if not own or own[0][:2] != _FASTDDS_VENDOR:
            return False  # another DDS: lease and heartbeat only
        others = [bytes(i.endpoint_gid) for i in infos if (i.node_name, i.node_namespace) != me]
        pids = {g[4] | g[5] << 8 for g in others if g[:2] == _FASTDDS_VENDOR and g[2:4] == own[0][2:4]}
        return bool(pids) and any(pid & 0xFFFF in pids for pid in _live_pids())

    def diagnostic(self) -> tuple[int, str, dict]:
        """(level, message, values) for the manager's ``/diagnostics``."""
        with self._lock:
            values = {
                "topic": self.topic,
                "live lease publishers": self.lease_alive,
                "deaths detected": self.deaths,
                "zero commands sent": self.zeros_sent,
                "ms since last command": (time.monotonic_ns() - self._last_rx) / 1e6 if self.seen else -1.0,
            }
            if self.dead:
                return diagnostics.ERROR, "command publisher dead: publishing zero commands", values
            if not self.seen:
                return diagnostics.STALE, "no command publisher seen yet", values
            return diagnostics.OK, "command publisher alive", values
