"""Diagnostics of the nodes: a hand-rolled diagnostic_updater, status messages, latency statistics.

The conventions of diagnostic_updater (ros/diagnostics), which is C++/rclpy-from-source only:
status name "<node>: <task>", a hardware_id, levels OK/WARN/ERROR/STALE, and per output topic
a "<topic> topic status" merging a FrequencyStatus and a TimeStampStatus (diagnostic_updater's
TopicDiagnostic) with its key names, so diagnostic_aggregator and rqt_robot_monitor read them.
"""

from __future__ import annotations

import threading
import time
import weakref

import numpy as np

from gait_estimator.core.latency import LatencyStats  # noqa: F401 (ROS-free; re-exported)
from gait_estimator.nodes.conversion import stamp_to_ns

OK, WARN, ERROR, STALE = 0, 1, 2, 3


class FrequencyStatus:
    """diagnostic_updater.FrequencyStatus: events counted by ``tick``; every ``run`` compares the
    rate over the last ``window_size`` runs with [min_hz, max_hz] widened by ``tolerance``."""

    def __init__(self, min_hz: float, max_hz: float, tolerance: float = 0.1, window_size: int = 5) -> None:
        self.min_hz, self.max_hz, self.tolerance = float(min_hz), float(max_hz), float(tolerance)
        self.count = 0
        now = time.monotonic_ns()
        self._hist = [(0, now)] * int(window_size)
        self._i = 0

    def tick(self) -> None:
        self.count += 1

    def run(self, now_ns: int | None = None) -> tuple[int, str, dict]:
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        seq, t0 = self._hist[self._i]
        events, window = self.count - seq, max((now_ns - t0) / 1e9, 1e-9)
        self._hist[self._i] = (self.count, now_ns)
        self._i = (self._i + 1) % len(self._hist)
        freq = events / window
        if events == 0:
            level, msg = ERROR, "No events recorded."
        elif freq < self.min_hz * (1 - self.tolerance):
            level, msg = WARN, "Frequency too low."
        elif freq > self.max_hz * (1 + self.tolerance):
            level, msg = WARN, "Frequency too high."
        else:
            level, msg = OK, "Desired frequency met"
        values = {
            "Events in window": events,
            "Events since startup": self.count,
            "Duration of window (s)": window,
            "Actual frequency (Hz)": freq,
        }
        if self.min_hz == self.max_hz:
            values["Target frequency (Hz)"] = self.min_hz
        if self.min_hz > 0:
            values["Minimum acceptable frequency (Hz)"] = self.min_hz * (1 - self.tolerance)
        if np.isfinite(self.max_hz):
            values["Maximum acceptable frequency (Hz)"] = self.max_hz * (1 + self.tolerance)
        return level, msg, values


class TimeStampStatus:
    """diagnostic_updater.TimeStampStatus: the delay ``receive - header.stamp`` (s) of the stamps
    ``tick``ed since the last ``run``, against [min_acceptable, max_acceptable]."""

    def __init__(self, min_acceptable: float = -1.0, max_acceptable: float = 5.0) -> None:
        self.min_acceptable, self.max_acceptable = float(min_acceptable), float(max_acceptable)
        self.early = self.late = self.zero = 0
        self._reset()

    def _reset(self) -> None:
        self._min = self._max = 0.0
        self._valid = self._zero_seen = False

    def tick(self, stamp_ns: int, now_ns: int | None = None) -> None:
        if stamp_ns == 0:
            self._zero_seen = True
            return
        d = ((time.time_ns() if now_ns is None else now_ns) - stamp_ns) / 1e9
        if not self._valid:
            self._min = self._max = d
            self._valid = True
        self._min, self._max = min(self._min, d), max(self._max, d)

    def run(self) -> tuple[int, str, dict]:
        level, msg = OK, "Timestamps are reasonable."
        if not self._valid:
            level, msg = WARN, "No data since last update."
        else:
            if self._min < self.min_acceptable:
                level, msg = ERROR, "Timestamps too far in future seen."
                self.early += 1
            if self._max > self.max_acceptable:
                level, msg = ERROR, "Timestamps too far in past seen."
                self.late += 1
        if self._zero_seen:
            level, msg = ERROR, "Zero timestamp seen."
            self.zero += 1
        values = {
            "Earliest timestamp delay:": self._min,
            "Latest timestamp delay:": self._max,
            "Earliest acceptable timestamp delay:": self.min_acceptable,
            "Latest acceptable timestamp delay:": self.max_acceptable,
            "Late diagnostic update count:": self.late,
            "Early diagnostic update count:": self.early,
            "Zero seen diagnostic update count:": self.zero,
        }
        self._reset()
        return level, msg, values


def merge_summary(level: int, message: str, other_level: int, other_message: str) -> tuple[int, str]:
    """diagnostic_updater's mergeSummary: the worse level wins; equal non-OK levels join messages."""
    if other_level > level:
        return other_level, other_message
    if other_level == level and level != OK and other_message and other_message != message:
        return level, f"{message}; {other_message}" if message else other_message
    return level, message


class TopicStatus:
    """diagnostic_updater's TopicDiagnostic for one published topic: frequency and stamp delay in
    one status "<node>: <topic> topic status". ``active()`` false (e.g. a deactivated node) and
    no events in the window report STALE: nothing is expected, so silence is no error."""

    def __init__(self, topic: str, min_hz: float, max_hz: float, active=None, **stamp_limits) -> None:
        self.topic = topic
        self.freq = FrequencyStatus(min_hz, max_hz)
        self.stamp = TimeStampStatus(**stamp_limits)
        self.active = active
        self._lock = threading.Lock()  # publishes may come from another thread than the timer's

    def tick(self, msg) -> None:
        with self._lock:
            self.freq.tick()
            self.stamp.tick(stamp_to_ns(msg.header.stamp))

    def run(self) -> tuple[int, str, dict]:
        with self._lock:
            level, msg, values = self.freq.run()
            s_level, s_msg, s_values = self.stamp.run()
        values.update(s_values)
        if self.active is not None and not self.active() and values["Events in window"] == 0:
            return STALE, "not active: no output expected", values
        return (*merge_summary(level, msg, s_level, s_msg), values)


def estimate_rate_hz(metadata, mode: str, fused: bool = False) -> float:
    """Expected rate of ``gait/torque_estimate``: one estimate per window (every ``stride`` frames);
    the fused node in streaming mode steps and publishes every frame."""
    per_frame = fused and mode == "streaming"
    return float(metadata.sample_rate_hz) / (1 if per_frame else max(1, int(metadata.stride)))


_TOPIC_STATUSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # node -> {topic: TopicStatus}


def monitor_output(node, publisher, min_hz: float, max_hz: float, active=None, **stamp_limits):
    """Count every ``publisher.publish`` of ``node`` for a ``TopicStatus`` that
    ``diagnostic_array(node, ...)`` appends to the node's diagnostics; returns ``publisher``.

    The publisher keeps its type (its owner destroys it as before); only this instance's
    ``publish`` is wrapped, so no publish path can forget the count."""
    status = TopicStatus(publisher.topic_name, min_hz, max_hz, active, **stamp_limits)
    _TOPIC_STATUSES.setdefault(node, {})[publisher.topic_name] = status
    publish = publisher.publish

    def counted(msg) -> None:
        publish(msg)
        status.tick(msg)

    publisher.publish = counted
    return publisher


def diagnostic_status(node, task: str, level: int, message: str, values: dict, hardware_id: str = ""):
    """One ``DiagnosticStatus`` named "<node>: <task>" (diagnostic_updater's naming); hardware_id
    defaults to the node's fully qualified name (diagnostic_updater warns on an empty one)."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    st = DiagnosticStatus(
        level=bytes([level]),
        name=f"{node.get_name()}: {task}",
        message=message,
        hardware_id=hardware_id or node.get_fully_qualified_name(),
    )
    st.values = [
        KeyValue(key=str(k), value=(f"{v:.6g}" if isinstance(v, float) else str(v)))
        for k, v in values.items()
    ]
    return st


def diagnostic_array(node, name: str, level: int, message: str, values: dict, hardware_id: str = ""):
    """The node's ``/diagnostics`` message: its own status (``name`` "<node>: <task>") followed by
    one topic status per output registered with ``monitor_output``."""
    from diagnostic_msgs.msg import DiagnosticArray

    prefix = f"{node.get_name()}: "
    task = name[len(prefix):] if name.startswith(prefix) else name
    arr = DiagnosticArray()
    arr.header.stamp = node.get_clock().now().to_msg()
    arr.status = [diagnostic_status(node, task, level, message, values, hardware_id)] + [
        diagnostic_status(node, f"{topic} topic status", *ts.run(), hardware_id)
        for topic, ts in _TOPIC_STATUSES.get(node, {}).items()
    ]
    return arr


def shaper_status(shaper, active: bool, values: dict) -> tuple[int, str]:
    """Diagnostic level and message of a command node from its shaper (adds the shaper's counters
    and confidence to ``values``): ERROR on a latched fault or e-stop, WARN while low confidence
    holds the command at zero (the reason is the message), else OK."""
    if shaper is None:
        return 0, "unconfigured"
    values.update({f"shaper_{k}": v for k, v in shaper.counters.items()})
    values["confidence"] = float(shaper.confidence)
    if shaper.fault:
        return 2, str(shaper.fault)
    if shaper.reason:
        return 1, shaper.reason
    return 0, "active" if active else "inactive"


def log_estop(node, callback_ns: int, published_ns: int) -> None:
    """Log an e-stop with its timing (host ns): the e-stop callback ran at ``callback_ns``, the zero
    command was published at ``published_ns`` (tests measure the e-stop path from these)."""
    node.get_logger().warning(
        f"emergency stop: zero command published {(published_ns - callback_ns) / 1e6:.3f} ms after the "
        f"e-stop callback started (callback_ns={callback_ns} published_ns={published_ns}); "
        "latched until exo/reset"
    )
