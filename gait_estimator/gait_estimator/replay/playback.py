"""The ROS-free half of the bag player: which messages, in which order, with which stamps.

:class:`Playback` turns a bag into a stream of :class:`PlayEvent` (bag time, topic, CDR bytes)
in log-time order, from a start offset, optionally looped. The rclpy node
(:mod:`gait_estimator.nodes.bag_player`) only sleeps until each event is due and publishes it.

Loop restarts ("time jumps"): with ``loop_stamps="shift"`` (default) every loop after the first
is moved forward in time by the bag's span plus one sample period: the log times (and so
``/clock``) and every ``header.stamp`` (and every nested ``builtin_interfaces/Time``) keep
increasing, so downstream nodes (synchronizer, watchdogs, ``use_sim_time`` clocks) never see
time go backwards. With ``"keep"`` the bag is replayed unchanged and time jumps back at each
restart, as a real looped recording would; downstream nodes must then cope with the jump.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, NamedTuple

import numpy as np

from gait_estimator.errors import BagError
from gait_estimator.replay.bag import BagReader, normalise_topic

__all__ = ["LOOP_STAMP_MODES", "PlayEvent", "Playback", "shift_stamps"]

LOOP_STAMP_MODES = ("shift", "keep")
_TIME = "builtin_interfaces/msg/Time"
_HEADER = "std_msgs/msg/Header"
CLOCK_TOPIC = "/clock"


class PlayEvent(NamedTuple):
    bag_ns: int  # log time, shifted by the loop offset
    topic: str  # normalised ("/imu/pelvis")
    msgtype: str
    data: bytes | memoryview
    loop: int  # 0 for the first pass


@dataclass(frozen=True)
class _StampLayout:
    header_first: bool  # the first field is a std_msgs/Header (stamp at CDR offset 4)
    nested: bool  # other Time fields anywhere else (needs a full decode to shift)


def _layout(store: Any, msgtype: str) -> _StampLayout:
    def contains_time(typename: str, seen: frozenset[str]) -> bool:
        if typename == _TIME:
            return True
        if typename in seen or typename not in store.fielddefs:
            return False
        return any(
            _field_contains(f, lambda t: contains_time(t, seen | {typename}))
            for _, f in store.fielddefs[typename][1]
        )

    if msgtype not in store.fielddefs:
        return _StampLayout(False, False)
    fdefs = store.fielddefs[msgtype][1]
    header_first = bool(fdefs) and _field_type_name(fdefs[0][1]) == _HEADER
    rest = fdefs[1:] if header_first else fdefs
    nested = any(_field_contains(f, lambda t: contains_time(t, frozenset())) for _, f in rest)
    return _StampLayout(header_first, nested)


def _field_type_name(fdef: Any) -> str | None:
    kind, detail = fdef
    return detail if getattr(kind, "name", "") == "NAME" else None


def _field_contains(fdef: Any, pred: Any) -> bool:
    kind, detail = fdef
    name = getattr(kind, "name", "")
    if name == "NAME":
        return bool(pred(detail))
    if name in ("ARRAY", "SEQUENCE"):
        return _field_contains(detail[0], pred)
    return False


_LAYOUT_CACHE: dict[str, _StampLayout] = {}


def shift_stamps(data: bytes | memoryview, msgtype: str, shift_ns: int, store: Any) -> bytes | memoryview:
    """CDR ``data`` with every ``builtin_interfaces/Time`` moved by ``shift_ns`` (>= 0).

    A leading ``header.stamp`` is patched in place in the bytes (no decode); messages with
    stamps elsewhere (e.g. ImuFrame's per-IMU headers) are decoded, shifted and re-encoded.
    """
    if shift_ns == 0:
        return data
    layout = _LAYOUT_CACHE.get(msgtype)
    if layout is None:
        layout = _LAYOUT_CACHE[msgtype] = _layout(store, msgtype)
    if layout.nested:
        msg = store.deserialize_cdr(data, msgtype)
        _shift_object(msg, shift_ns)
        return store.serialize_cdr(msg, msgtype, little_endian=data[1] == 1)
    if not layout.header_first or len(data) < 12:
        return data
    fmt = "<iI" if data[1] == 1 else ">iI"
    sec, nanosec = struct.unpack_from(fmt, data, 4)
    total = sec * 1_000_000_000 + nanosec + shift_ns
    out = bytearray(data)
    struct.pack_into(fmt, out, 4, *divmod(total, 1_000_000_000))
    return bytes(out)


def _shift_object(obj: Any, shift_ns: int) -> None:
    if getattr(obj, "__msgtype__", None) == _TIME:
        sec, nanosec = divmod(obj.sec * 1_000_000_000 + obj.nanosec + shift_ns, 1_000_000_000)
        obj.sec, obj.nanosec = sec, nanosec
        return
    if not is_dataclass(obj):
        return
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, list):
            for item in value:
                _shift_object(item, shift_ns)
        elif is_dataclass(value):
            _shift_object(value, shift_ns)


class Playback:
    """Events of a bag for playing: log-time order, ``start_offset_s`` skipped, looped.

    ``topics``: bag topics to play (None = all except ``/clock``); ``loops``: passes when
    ``loop`` is on (0 = endless). Reads the bag again on every pass (constant memory).
    """

    def __init__(
        self,
        reader: BagReader,
        topics: Sequence[str] | None = None,
        *,
        start_offset_s: float = 0.0,
        loop: bool = False,
        loops: int = 0,
        loop_stamps: str = "shift",
    ) -> None:
        if loop_stamps not in LOOP_STAMP_MODES:
            raise BagError(f"loop_stamps {loop_stamps!r}: must be one of {LOOP_STAMP_MODES}")
        if not (start_offset_s >= 0.0 and np.isfinite(start_offset_s)):
            raise BagError(f"start offset {start_offset_s!r} s: must be a finite value >= 0")
        self.reader = reader
        info = reader.info()
        if info.message_count == 0:
            raise BagError(f"bag {reader.path}: has no messages")
        if topics is None:
            self.topics = sorted(t for t in info.topics if t != CLOCK_TOPIC)
        else:
            self.topics = [normalise_topic(t) for t in topics]
            for t in self.topics:
                reader.require_topic(t)
        if not self.topics:
            raise BagError(f"bag {reader.path}: no topics to play")
        self.msgtypes = {t: reader.msgtype(t) for t in self.topics}
        self.start_ns = info.start_ns + int(round(start_offset_s * 1e9))
        if self.start_ns > info.end_ns:
            raise BagError(
                f"bag {reader.path}: start offset {start_offset_s} s is past the end of the"
                f" bag ({info.duration_s:.3f} s)"
            )
        self.loop, self.loops, self.loop_stamps = loop, loops, loop_stamps
        self.passes_done = 0

    def events(self) -> Iterator[PlayEvent]:
        shift = 0
        n = 0
        while True:
            first = last = None
            min_period: int | None = None
            last_by_topic: dict[str, int] = {}
            for topic, msgtype, log_ns, data in self.reader.raw_messages(self.topics, start_ns=self.start_ns):
                if first is None:
                    first = log_ns
                prev = last_by_topic.get(topic)
                if prev is not None and log_ns > prev:
                    d = log_ns - prev
                    min_period = d if min_period is None else min(min_period, d)
                last_by_topic[topic] = log_ns
                last = log_ns
                if shift:
                    data = shift_stamps(data, msgtype, shift, self.reader.store)
                yield PlayEvent(log_ns + shift, topic, msgtype, data, n)
            self.passes_done = n + 1
            if first is None or last is None:
                return
            n += 1
            if not self.loop or (self.loops and n >= self.loops):
                return
            if self.loop_stamps == "shift":
                shift += (last - first) + (min_period or 10_000_000)
