"""``gait-estimator record``: record topics of a running pipeline into a rosbag2 bag.

    gait-estimator record -o BAG [--storage mcap|sqlite3] [--topics T ...] [--all]
                          [--duration S] [--use-sim-time]

Default topics: the IMU inputs (``imu/<location>``), ``gait/imu_frame``, the estimates
``gait/torque_estimate``, the commands ``exo/torque_command``, the reference
``gait/torque_reference`` and ``/diagnostics``. Topics are subscribed as they appear (the graph
is polled every 0.5 s), with the publishers' reliability (reliable when every publisher is,
else best effort). Messages are stored as received (serialized CDR, no decoding); the log time
is the node's clock at receipt (ROS time from ``/clock`` with ``--use-sim-time``). The bag is
closed cleanly on ``--duration``, SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from gait_estimator.conventions import IMU_LOCATIONS

DEFAULT_TOPICS = (
    *(f"/imu/{loc}" for loc in IMU_LOCATIONS),
    "/gait/imu_frame",
    "/gait/torque_estimate",
    "/exo/torque_command",
    "/gait/torque_reference",
    "/diagnostics",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "record",
        help="record pipeline topics into a rosbag2 bag (mcap/sqlite3)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("-o", "--output", required=True, help="new bag directory")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    p.add_argument("--topics", nargs="+", default=None, help=f"topics (default: {' '.join(DEFAULT_TOPICS)})")
    p.add_argument("--all", action="store_true", help="every topic that appears (except /rosout)")
    p.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (0 = until Ctrl-C)"
    )
    p.add_argument("--use-sim-time", action="store_true", help="log times from /clock")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bag at --output")
    p.set_defaults(handler=run)


class Recorder:
    """Subscribes (raw) to wanted topics as they appear and writes every message to ``writer``."""

    def __init__(self, node: Any, writer: Any, topics: list[str] | None) -> None:
        from gait_estimator.replay.bag import normalise_topic

        self.node, self.writer = node, writer
        self.wanted = None if topics is None else {normalise_topic(t) for t in topics}
        self.subscriptions: dict[str, Any] = {}
        self.skipped: set[str] = set()
        self.counts: dict[str, int] = {}

    def discover(self) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from gait_estimator.nodes.bag_player import message_class

        for name, types in self.node.get_topic_names_and_types():
            if name in self.subscriptions or name in self.skipped:
                continue
            if self.wanted is not None and name not in self.wanted:
                continue
            if self.wanted is None and name in ("/rosout", "/parameter_events"):
                continue
            infos = self.node.get_publishers_info_by_topic(name)
            if not infos:
                continue
            msgtype = types[0]
            cls = message_class(msgtype)
            if len(types) != 1 or cls is None or msgtype not in self.writer.store.types:
                self.node.get_logger().warning(f"topic {name}: type {types} cannot be recorded; skipped")
                self.skipped.add(name)
                continue
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
            qos = QoSProfile(
                depth=100,
                durability=DurabilityPolicy.VOLATILE,
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            )
            self.writer.add_topic(name, msgtype)
            self.counts[name] = 0
            self.subscriptions[name] = self.node.create_subscription(
                cls, name, lambda data, n=name, t=msgtype: self._on_message(n, t, data), qos, raw=True
            )
            self.node.get_logger().info(
                f"recording {name} ({msgtype}, {'reliable' if reliable else 'best effort'})"
            )

    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        self.writer.write_raw(topic, self.node.get_clock().now().nanoseconds, data, msgtype)
        self.counts[topic] += 1


def run(args: argparse.Namespace) -> int:
    import signal

    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from gait_estimator.replay.bag import BagWriter

    topics = None if args.all else list(args.topics or DEFAULT_TOPICS)
    writer = BagWriter(args.output, args.storage, overwrite=args.overwrite).open()
    stop = {"flag": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["flag"] = True

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    node = rclpy.create_node(
        "gait_estimator_recorder",
        parameter_overrides=[Parameter("use_sim_time", Parameter.Type.BOOL, bool(args.use_sim_time))],
    )
    recorder = Recorder(node, writer, topics)
    t0 = time.monotonic()
    next_discovery = t0
    try:
        while not stop["flag"] and (args.duration <= 0 or time.monotonic() - t0 < args.duration):
            if time.monotonic() >= next_discovery:
                recorder.discover()
                next_discovery = time.monotonic() + 0.5
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for s, h in old.items():
            signal.signal(s, h)
        writer.close()
    total = sum(recorder.counts.values())
    print(f"recorded {total} messages on {len(recorder.counts)} topics into {args.output} ({args.storage})")
    for name, count in sorted(recorder.counts.items()):
        print(f"  {name}: {count}")
    if topics is not None:
        from gait_estimator.replay.bag import normalise_topic

        missing = sorted({normalise_topic(t) for t in topics} - set(recorder.counts))
        if missing:
            print(f"never published: {', '.join(missing)}", file=sys.stderr)
    return 0
