"""``bag_player``: publish a rosbag2 bag (mcap or sqlite3) over DDS with its original timing.

    bag_player BAG [--rate 1.0] [--loop [--loops N]] [--start-offset S] [--clock-hz 100]
               [--topics T ...] [--loop-stamps shift|keep] [--delay S] [--wait-for-subscribers S]
               [--wait-for-manager S] [--restamp] [--topics-relative]

- Timing: a message logged at bag time ``t`` is published ``(t - t0) / rate`` after the start,
  from one thread in log-time order (no reordering at any rate: every message is published
  after the one logged before it).
- ``/clock`` (rosgraph_msgs/Clock) carries the bag time, published before every message whose
  log time is new and at ``--clock-hz`` in between, so nodes with ``use_sim_time:=true`` see the
  recording's time. ``--clock-hz 0`` disables it. A ``/clock`` topic inside the bag is not replayed.
- Loop restarts: with ``--loop-stamps shift`` (default) each pass is moved forward by the bag's
  span (log times, ``/clock`` and every header stamp), so downstream nodes never see time go
  backwards; ``keep`` replays the bag unchanged (time jumps back at each restart).
- ``--restamp``: header stamps (and ``/clock``) are mapped onto this host's clock at the playback
  rate, for nodes that stamp receipt with the system clock (the pipeline nodes): a message logged
  at ``t`` gets stamp + (host time at start + (t - first log time) / rate - t), i.e. the host
  time it is published at (at rate 1 a constant shift; relative timing unchanged). At another
  rate the stamps follow the playback, so the pipeline accepts them (it checks stamps against
  host time), and sees the gait sped up or slowed down by the rate.
- ``--wait-for-manager S``: play only once ``lifecycle_manager/state`` (relative: the player's
  namespace) reads ``active``, so no part of the bag is lost while the pipeline starts; an error
  (exit 2) when it reads ``failed: ...`` or not ``active`` within S seconds.
- ``--topics-relative``: publish the bag's topics without their leading ``/`` (``imu/pelvis``), so
  they resolve under the player's namespace like the pipeline's own relative topics.
- QoS: ``sensor_msgs/Imu`` topics SensorDataQoS (best effort, depth 5), everything else reliable,
  depth 10, volatile; ``/clock`` reliable, depth 1.
- A bad bag is one error line (the path and what is wrong) and exit status 2, no traceback.

The playback logic (ordering, offsets, loops, stamp shifting) is the ROS-free
:class:`gait_estimator.replay.playback.Playback`; this node only sleeps and publishes.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from gait_estimator.errors import BagError, GaitEstimatorError
from gait_estimator.replay.playback import shift_stamps

IMU_TYPE = "sensor_msgs/msg/Imu"


def message_class(msgtype: str) -> Any:
    """The rosidl Python class of ``pkg/msg/Name``; None when it is not installed."""
    pkg, _, name = msgtype.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError):
        return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bag_player", description=__doc__.split("\n\n")[0])
    p.add_argument("bag", help="rosbag2 directory (mcap or sqlite3) or a single .mcap/.db3 file")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (> 0), default 1.0")
    p.add_argument("--loop", action="store_true", help="restart at the end")
    p.add_argument("--loops", type=int, default=0, help="with --loop: number of passes (0 = endless)")
    p.add_argument(
        "--start-offset", type=float, default=0.0, metavar="S", help="skip the first S seconds of the bag"
    )
    p.add_argument(
        "--clock-hz", type=float, default=100.0, help="/clock publish rate between messages (0 = no /clock)"
    )
    p.add_argument("--topics", nargs="+", default=None, help="topics to play (default: all)")
    p.add_argument(
        "--loop-stamps",
        choices=("shift", "keep"),
        default="shift",
        help="shift: time keeps increasing across loop restarts (default); keep: unchanged",
    )
    p.add_argument("--delay", type=float, default=0.0, metavar="S", help="wait S seconds before playing")
    p.add_argument(
        "--wait-for-subscribers",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds until every played topic has a subscriber",
    )
    p.add_argument(
        "--restamp",
        action="store_true",
        help="map every header stamp (and /clock) onto this host's clock at the playback rate (the host"
        " time each message is published at); for nodes that timestamp receipt with the system clock",
    )
    p.add_argument(
        "--wait-for-manager",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds until lifecycle_manager/state is 'active' (error otherwise)",
    )
    p.add_argument(
        "--topics-relative",
        action="store_true",
        help="publish the bag's topics relative to the node namespace (leading '/' dropped)",
    )
    p.add_argument(
        "--linger",
        type=float,
        default=0.5,
        metavar="S",
        help="keep the publishers alive S seconds after the last message",
    )
    return p


class BagPlayer:
    """Publishes a :class:`Playback` on an rclpy node; ``play()`` blocks until done or stopped."""

    def __init__(self, node: Any, args: argparse.Namespace, stop_event: threading.Event | None = None):
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from rosgraph_msgs.msg import Clock

        from gait_estimator.replay.bag import BagReader
        from gait_estimator.replay.playback import Playback

        if not args.rate > 0:
            raise BagError(f"--rate {args.rate}: must be > 0")
        if args.clock_hz < 0:
            raise BagError(f"--clock-hz {args.clock_hz}: must be >= 0")
        self.node, self.args = node, args
        self.stop_event = stop_event or threading.Event()
        self.reader = BagReader(args.bag).open()
        self.playback = Playback(
            self.reader,
            args.topics,
            start_offset_s=args.start_offset,
            loop=args.loop,
            loops=args.loops,
            loop_stamps=args.loop_stamps,
        )
        self.publishers: dict[str, Any] = {}
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        for topic in self.playback.topics:
            msgtype = self.playback.msgtypes[topic]
            cls = message_class(msgtype)
            if cls is None:
                node.get_logger().warning(
                    f"topic {topic}: message type {msgtype} is not installed"
                    " (no Python message package); not played"
                )
                continue
            qos = qos_profile_sensor_data if msgtype == IMU_TYPE else reliable
            name = topic.lstrip("/") if args.topics_relative else topic
            self.publishers[topic] = node.create_publisher(cls, name, qos)
        if not self.publishers:
            raise BagError(f"bag {args.bag}: none of its topics has an installed message type")
        self.clock_cls = Clock
        self.clock_pub = (
            node.create_publisher(
                Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            )
            if args.clock_hz > 0
            else None
        )
        self.published = 0
        self.clock_published = 0
        self.stamp_offset_ns = 0  # --restamp: host time at start - first log time (logged)
        self._restamp_anchor: tuple[int, int] | None = None  # (host ns, log ns) of the first message

    def close(self) -> None:
        self.reader.close()

    def _restamp_ns(self, bag_ns: int) -> int:
        """What ``--restamp`` adds to a stamp of a message logged at ``bag_ns`` (0 without it)."""
        if self._restamp_anchor is None:
            return 0
        host0, log0 = self._restamp_anchor
        return host0 + round((bag_ns - log0) / float(self.args.rate)) - bag_ns

    def _publish_clock(self, bag_ns: int) -> None:
        if self.clock_pub is None:
            return
        from builtin_interfaces.msg import Time

        sec, nanosec = divmod(int(bag_ns), 1_000_000_000)
        self.clock_pub.publish(self.clock_cls(clock=Time(sec=sec, nanosec=nanosec)))
        self.clock_published += 1

    def _sleep_until(self, deadline: float) -> bool:
        """Sleep until monotonic ``deadline``; False when stopped."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return not self.stop_event.is_set()
            if self.stop_event.wait(min(remaining, 0.05)):
                return False

    def wait_for_subscribers(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stop_event.is_set():
            if all(p.get_subscription_count() > 0 for p in self.publishers.values()):
                return
            time.sleep(0.05)
        lonely = [t for t, p in self.publishers.items() if p.get_subscription_count() == 0]
        if lonely:
            self.node.get_logger().warning(f"no subscriber after {timeout_s} s on {', '.join(lonely)}")

    def wait_for_manager(self, timeout_s: float) -> bool:
        """Spin until ``lifecycle_manager/state`` is ``active``; False when stopped first."""
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        state: list[str] = []
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        topic = "lifecycle_manager/state"
        sub = self.node.create_subscription(String, topic, lambda m: state.append(m.data), latched)
        deadline = time.monotonic() + timeout_s
        try:
            while not self.stop_event.is_set():
                if state and state[-1] == "active":
                    self.node.get_logger().info("lifecycle_manager is active: playing")
                    return True
                if state and state[-1].startswith("failed"):
                    raise BagError(f"lifecycle_manager reports '{state[-1]}': not playing")
                if time.monotonic() > deadline:
                    last = state[-1] if state else "nothing"
                    raise BagError(
                        f"--wait-for-manager {timeout_s}: lifecycle_manager/state read {last!r}, "
                        "not 'active' (is the pipeline running in this namespace?)"
                    )
                rclpy.spin_once(self.node, timeout_sec=0.05)
            return False
        finally:
            self.node.destroy_subscription(sub)

    def play(self) -> int:
        args = self.args
        if args.wait_for_manager > 0 and not self.wait_for_manager(args.wait_for_manager):
            return self.published
        if args.wait_for_subscribers > 0:
            self.wait_for_subscribers(args.wait_for_subscribers)
        if args.delay > 0 and not self._sleep_until(time.monotonic() + args.delay):
            return self.published
        rate = float(args.rate)
        clock_period = 1.0 / args.clock_hz if args.clock_hz > 0 else None
        wall0 = bag0 = None
        last_clock_ns = -1
        next_clock_wall = 0.0
        loop, last_bag_ns, last_due = 0, -1, 0.0
        t_start = time.monotonic()
        for ev in self.playback.events():
            if wall0 is None:
                wall0, bag0 = time.monotonic(), ev.bag_ns
                next_clock_wall = wall0
                if args.restamp:
                    self._restamp_anchor = (time.time_ns(), ev.bag_ns)
                    self.stamp_offset_ns = self._restamp_ns(ev.bag_ns)
                    self.node.get_logger().info(f"restamp offset: {self.stamp_offset_ns} ns (rate {rate})")
            assert bag0 is not None
            if ev.loop != loop and ev.bag_ns <= last_bag_ns:
                # a loop restart that keeps the bag's times: re-anchor the schedule one sample
                # period after the last message, and let /clock jump back with the data
                wall0, bag0 = last_due + 0.01 / rate, ev.bag_ns
                next_clock_wall = wall0
                last_clock_ns = -1
            loop, last_bag_ns = ev.loop, ev.bag_ns
            due = wall0 + (ev.bag_ns - bag0) / 1e9 / rate
            last_due = due
            # /clock at clock_hz while waiting for the next message
            while clock_period is not None and next_clock_wall < due:
                if not self._sleep_until(next_clock_wall):
                    return self.published
                clock_ns = bag0 + int((next_clock_wall - wall0) * rate * 1e9)
                if clock_ns > last_clock_ns:
                    self._publish_clock(clock_ns + self._restamp_ns(clock_ns))
                    last_clock_ns = clock_ns
                next_clock_wall += clock_period
            if not self._sleep_until(due):
                return self.published
            if ev.bag_ns > last_clock_ns and clock_period is not None:
                self._publish_clock(ev.bag_ns + self._restamp_ns(ev.bag_ns))
                last_clock_ns = ev.bag_ns
            pub = self.publishers.get(ev.topic)
            if pub is not None:
                data = ev.data
                if self._restamp_anchor is not None:
                    data = shift_stamps(data, ev.msgtype, self._restamp_ns(ev.bag_ns), self.reader.store)
                pub.publish(bytes(data))
                self.published += 1
        elapsed = time.monotonic() - t_start
        self.node.get_logger().info(
            f"played {self.published} messages on {len(self.publishers)} topics, "
            f"{self.playback.passes_done} pass(es), {self.clock_published} /clock, {elapsed:.2f} s"
        )
        if args.linger > 0:
            self._sleep_until(time.monotonic() + args.linger)
        return self.published


def main(argv: Sequence[str] | None = None) -> int:
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from rclpy.utilities import remove_ros_args

    raw = list(sys.argv if argv is None else ["bag_player", *argv])
    args = build_parser().parse_args(remove_ros_args(raw)[1:])
    # Handlers first and kept to the end: Ctrl-C under ros2 launch arrives twice (the terminal's
    # SIGINT to the process group, then launch's own); each only sets the stop flag (exit 0).
    stop_event = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_event.set())
    rclpy.init(args=raw, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("bag_player")
    player = None
    code = 0
    try:
        player = BagPlayer(node, args, stop_event)
        player.play()
    except GaitEstimatorError as exc:
        print(f"bag_player: error: {exc}", file=sys.stderr)
        code = 2
    finally:
        if player is not None:
            player.close()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a late second Ctrl-C: see runner.run_node
    return code


if __name__ == "__main__":
    sys.exit(main())
