"""rosbag2 I/O (mcap and sqlite3) on ``rosbags``: no ROS install, no generated message code.

Reading: :class:`BagReader` opens a bag directory (or a bare ``.mcap``/``.db3`` file), lists
its topics and yields raw or decoded messages in bag log-time order. :func:`imu_source` picks
how the IMUs are stored (one ``sensor_msgs/Imu`` topic per location, or an ``ImuFrame`` topic)
and :func:`iter_imu` yields :class:`ImuRecord` tuples; :func:`read_joint_torques` loads a
``JointTorque`` topic (the reference torques) into arrays.

Writing: :class:`BagWriter` creates a new bag in either storage format and serialises rosbags
message objects (see :mod:`gait_estimator.replay.convert`) or raw CDR.

Every failure of the underlying library or file system (missing or corrupt file, truncated
storage, unknown message type, missing topic, wrong type) is raised as
:class:`~gait_estimator.errors.BagError` with the bag path in the message, never as a bare
library exception.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np

from gait_estimator.conventions import IMU_LOCATIONS
from gait_estimator.errors import BagError
from gait_estimator.replay.typestore import IMU, IMU_FRAME, JOINT_TORQUE, make_typestore

__all__ = [
    "DEFAULT_FRAME_TOPIC",
    "DEFAULT_IMU_PREFIX",
    "DEFAULT_REFERENCE_TOPIC",
    "STORAGES",
    "BagInfo",
    "BagReader",
    "BagWriter",
    "ImuRecord",
    "ImuSource",
    "TopicSummary",
    "TorqueSeries",
    "bag_info",
    "decode_imu_cdr",
    "imu_source",
    "imu_topic",
    "iter_imu",
    "normalise_topic",
    "read_joint_torques",
]

STORAGES = ("mcap", "sqlite3")
DEFAULT_IMU_PREFIX = "imu/"
DEFAULT_FRAME_TOPIC = "gait/imu_frame"
DEFAULT_REFERENCE_TOPIC = "gait/torque_reference"
DEFAULT_ESTIMATE_TOPIC = "gait/torque_estimate"
DEFAULT_COMMAND_TOPIC = "exo/torque_command"
DIAGNOSTICS_TOPIC = "/diagnostics"

# Everything rosbags, sqlite, the mcap parser or the OS raise on bad input. The reader wraps
# these into BagError (with the path) at every boundary where bag bytes are touched.
_LIB_ERRORS: tuple[type[BaseException], ...]


def _lib_errors() -> tuple[type[BaseException], ...]:
    from rosbags.rosbag2 import ReaderError, WriterError

    errors: list[type[BaseException]] = [
        ReaderError,
        WriterError,
        OSError,
        EOFError,
        struct.error,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        AssertionError,
        sqlite3.Error,
        UnicodeDecodeError,
        OverflowError,  # a garbage length field in a damaged mcap chunk
        MemoryError,  # ... or one that asks for gigabytes
    ]
    try:
        import apsw

        errors.append(apsw.Error)
    except ImportError:  # pragma: no cover - rosbags' sqlite3 backend depends on apsw
        pass
    try:
        from rosbags.serde import SerdeError

        errors.append(SerdeError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


_LIB_ERRORS = _lib_errors()


def normalise_topic(name: str) -> str:
    """Topic name with exactly one leading slash (rosbag2 records absolute names)."""
    return "/" + name.strip().lstrip("/")


def imu_topic(location: str, prefix: str = DEFAULT_IMU_PREFIX) -> str:
    """``imu/<location>`` (or ``<prefix><location>``)."""
    return f"{prefix}{location}"


class TopicSummary(NamedTuple):
    name: str  # as stored in the bag
    msgtype: str
    count: int


@dataclass(frozen=True)
class BagInfo:
    path: Path
    storage: str  # "mcap" | "sqlite3"
    topics: dict[str, TopicSummary]  # keyed by normalised name ("/imu/pelvis")
    start_ns: int
    end_ns: int  # log time of the last message
    message_count: int
    custom_data: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) / 1e9


class ImuRecord(NamedTuple):
    """One IMU sample as read from a bag (SI units, quaternion x, y, z, w)."""

    log_ns: int  # bag log (receive) time
    location: str
    stamp_ns: int  # header.stamp
    acc: np.ndarray  # [3] m/s^2, specific force incl. gravity
    gyro: np.ndarray  # [3] rad/s
    quat_xyzw: np.ndarray  # [4]


@dataclass(frozen=True)
class TorqueSeries:
    """A JointTorque topic as arrays, in log-time order."""

    topic: str
    joints: tuple[str, ...]
    log_ns: np.ndarray  # int64 [N]
    stamp_ns: np.ndarray  # int64 [N]
    torque_nm: np.ndarray  # [N, J] N·m
    valid: np.ndarray  # bool [N]
    subject_mass_kg: float  # from the messages (0.0 if absent)

    def __len__(self) -> int:
        return int(self.stamp_ns.shape[0])


@dataclass(frozen=True)
class ImuSource:
    """How the IMUs are stored in a bag."""

    kind: str  # "topics" (one sensor_msgs/Imu per location) or "frame" (ImuFrame)
    locations: tuple[str, ...]
    topics: dict[str, str]  # bag topic name -> location ("frame": the one frame topic -> "")


# --------------------------------------------------------------------------------------------
# Fast sensor_msgs/Imu decoder (checked against rosbags' generic deserialiser in the tests)
# --------------------------------------------------------------------------------------------
_IMU_DOUBLES = 37  # orientation 4 + cov 9 + angular_velocity 3 + cov 9 + linear_acceleration 3 + cov 9
_LE_HEAD, _BE_HEAD = struct.Struct("<iII"), struct.Struct(">iII")
_LE_BODY, _BE_BODY = struct.Struct(f"<{_IMU_DOUBLES}d"), struct.Struct(f">{_IMU_DOUBLES}d")


def decode_imu_cdr(data: bytes | memoryview) -> tuple[int, str, np.ndarray, np.ndarray, np.ndarray] | None:
    """(stamp_ns, frame_id, acc[3], gyro[3], quat_xyzw[4]) of a CDR ``sensor_msgs/Imu``.

    A direct ``struct`` read of the fixed layout (header, then 37 float64), ~4x faster than the
    generic deserialiser. Returns None when the bytes do not have that layout, so the caller
    can fall back to the generic (and error-reporting) path.
    """
    if len(data) < 16 or data[0] != 0:
        return None
    little = data[1] == 1
    head, body = (_LE_HEAD, _LE_BODY) if little else (_BE_HEAD, _BE_BODY)
    sec, nanosec, strlen = head.unpack_from(data, 4)
    pos = 12 + strlen  # relative to the body start (offset 4)
    pos = (pos + 7) & ~7
    if strlen == 0 or pos + 4 + body.size > len(data) or nanosec >= 1_000_000_000:
        return None
    v = body.unpack_from(data, pos + 4)
    frame_id = bytes(data[16 : 16 + strlen - 1]).decode("utf-8", "replace")
    return (
        sec * 1_000_000_000 + nanosec,
        frame_id,
        np.array(v[25:28]),
        np.array(v[13:16]),
        np.array(v[0:4]),
    )


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------
class BagReader:
    """A rosbag2 bag opened for reading; use as a context manager.

    ``path`` is the bag directory (with ``metadata.yaml``) or a single ``.mcap``/``.db3`` file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader: Any = None
        self.store = make_typestore()
        self._conns: dict[str, list[Any]] = {}
        self._recorded: dict[str, Any] = {}  # msgtype -> typestore of the bag's own definition

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> BagReader:
        from rosbags.rosbag2 import Reader

        if not self.path.exists():
            raise BagError(f"bag {self.path}: no such file or directory")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            raise BagError(f"bag {self.path}: not a rosbag2 directory (no metadata.yaml)")
        try:
            reader = Reader(self.path)
            reader.open()
        except BagError:
            raise
        except _LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: cannot open: {_describe(exc)}") from None
        self._reader = reader
        self._conns = {}
        for conn in reader.connections:
            self._conns.setdefault(normalise_topic(conn.topic), []).append(conn)
        return self

    def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            try:
                reader.close()
            except _LIB_ERRORS:  # closing a broken bag must not mask the first error
                pass

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- metadata ----------------------------------------------------------------------------
    @property
    def reader(self) -> Any:
        if self._reader is None:
            raise BagError(f"bag {self.path}: reader is not open")
        return self._reader

    @property
    def storage(self) -> str:
        if self.path.is_dir():
            if any(self.path.glob("*.mcap")):
                return "mcap"
            return "sqlite3"
        return "mcap" if self.path.suffix == ".mcap" else "sqlite3"

    def info(self) -> BagInfo:
        r = self.reader
        topics = {}
        for name, conns in self._conns.items():
            types = {c.msgtype for c in conns}
            topics[name] = TopicSummary(
                conns[0].topic, types.pop() if len(types) == 1 else "<mixed>", sum(c.msgcount for c in conns)
            )
        custom = {}
        storage = getattr(r, "storage", None)
        meta = getattr(storage, "metadata", None)
        if meta is not None and getattr(meta, "custom", None):
            custom = dict(meta.custom)
        count = r.message_count
        return BagInfo(
            self.path,
            self.storage,
            topics,
            r.start_time if count else 0,
            (r.end_time - 1) if count else 0,
            count,
            custom,
        )

    def topics(self) -> dict[str, str]:
        """normalised topic name -> message type."""
        return {name: s.msgtype for name, s in self.info().topics.items()}

    def has_topic(self, topic: str) -> bool:
        return normalise_topic(topic) in self._conns

    def msgtype(self, topic: str) -> str:
        return self.require_topic(topic)[0].msgtype

    def require_topic(self, topic: str, msgtype: str | None = None) -> list[Any]:
        """Connections of ``topic``; BagError naming the topic (and what exists) otherwise."""
        conns = self._conns.get(normalise_topic(topic))
        if not conns:
            available = ", ".join(sorted(self._conns)) or "none"
            raise BagError(f"bag {self.path}: no topic '{topic}' (topics in the bag: {available})")
        if msgtype is not None:
            wrong = sorted({c.msgtype for c in conns if c.msgtype != msgtype})
            if wrong:
                raise BagError(
                    f"bag {self.path}: topic '{topic}' has message type {', '.join(wrong)};"
                    f" expected {msgtype}"
                )
        return conns

    # -- messages ----------------------------------------------------------------------------
    def ensure_type(self, msgtype: str) -> None:
        """Make ``msgtype`` decodable: known to the typestore, or registered from the bag's own
        message definition. BagError ("unknown message type") otherwise."""
        if msgtype in self.store.types:
            return
        from rosbags.interfaces import MessageDefinitionFormat
        from rosbags.typesys import get_types_from_idl

        for conns in self._conns.values():
            for conn in conns:
                # An empty definition is what bags recorded without definitions hold: none.
                if (
                    conn.msgtype != msgtype
                    or conn.msgdef.format == MessageDefinitionFormat.NONE
                    or not conn.msgdef.data.strip()
                ):
                    continue
                try:
                    if conn.msgdef.format == MessageDefinitionFormat.IDL:
                        types = get_types_from_idl(conn.msgdef.data)
                    else:
                        types = _types_from_concatenated_msgdef(conn.msgdef.data, msgtype)
                    self.store.register(types)
                except Exception as exc:
                    raise BagError(
                        f"bag {self.path}: unknown message type {msgtype}: the definition"
                        f" stored in the bag cannot be parsed ({_describe(exc)})"
                    ) from None
                if msgtype in self.store.types:
                    return
        raise BagError(
            f"bag {self.path}: unknown message type {msgtype} (not in the ROS 2 Jazzy"
            " typestore, not a gait_estimator_msgs type, and the bag holds no definition)"
        )

    def raw_messages(
        self, topics: Iterable[str] | None = None, start_ns: int | None = None, stop_ns: int | None = None
    ) -> Iterator[tuple[str, str, int, bytes]]:
        """(normalised topic, msgtype, log_ns, raw CDR) in log-time order."""
        if topics is None:
            conns = [c for cs in self._conns.values() for c in cs]
        else:
            conns = [c for t in topics for c in self.require_topic(t)]
        it = self.reader.messages(conns, start=start_ns, stop=stop_ns)
        counts: dict[str, int] = {}
        while True:
            try:
                conn, log_ns, data = next(it)
            except StopIteration:
                break
            except BagError:
                raise
            except _LIB_ERRORS as exc:
                raise BagError(f"bag {self.path}: corrupt or truncated storage: {_describe(exc)}") from None
            topic = normalise_topic(conn.topic)
            counts[topic] = counts.get(topic, 0) + 1
            yield topic, conn.msgtype, log_ns, data
        if start_ns is None and stop_ns is None:
            # Integrity: a damaged record can make a storage reader skip the rest of a chunk
            # silently; the per-topic counts of the bag's metadata catch that.
            for topic in {normalise_topic(c.topic) for c in conns}:
                expected = sum(c.msgcount for c in self._conns[topic])
                if expected and counts.get(topic, 0) != expected:
                    raise BagError(
                        f"bag {self.path}: corrupt storage: topic '{topic}' has {expected} messages"
                        f" in the bag's metadata but {counts.get(topic, 0)} could be read"
                    )

    def _recorded_store(self, msgtype: str) -> Any:
        """A typestore holding ``msgtype`` as the bag's own stored definition says (a bag recorded
        before a field was added to one of our messages), or None when the bag has none."""
        if msgtype in self._recorded:
            return self._recorded[msgtype]
        from rosbags.interfaces import MessageDefinitionFormat
        from rosbags.typesys import Stores, get_typestore

        found = None
        conns = [c for cs in self._conns.values() for c in cs if c.msgtype == msgtype]
        for conn in conns:
            if conn.msgdef.format != MessageDefinitionFormat.MSG or not conn.msgdef.data.strip():
                continue
            try:
                store = get_typestore(Stores.ROS2_JAZZY)
                store.register(_types_from_concatenated_msgdef(conn.msgdef.data, msgtype))
            except Exception:  # an unparsable definition: the caller reports the decode error
                continue
            found = store
            break
        self._recorded[msgtype] = found
        return found

    def decode(self, data: bytes | memoryview, msgtype: str, topic: str = "?", log_ns: int = 0) -> Any:
        self.ensure_type(msgtype)
        store = self._recorded.get(msgtype) or self.store
        try:
            return store.deserialize_cdr(data, msgtype)
        except _LIB_ERRORS as exc:
            recorded = self._recorded_store(msgtype) if store is self.store else None
            if recorded is not None:
                try:  # the bag was recorded with an older definition of the type
                    return recorded.deserialize_cdr(data, msgtype)
                except _LIB_ERRORS:
                    self._recorded[msgtype] = None
            raise BagError(
                f"bag {self.path}: topic '{topic}' message at log time {log_ns} ns is not a"
                f" valid {msgtype}: {_describe(exc)}"
            ) from None

    def messages(
        self, topics: Iterable[str] | None = None, start_ns: int | None = None, stop_ns: int | None = None
    ) -> Iterator[tuple[str, int, Any]]:
        """(normalised topic, log_ns, decoded message) in log-time order."""
        for topic, msgtype, log_ns, data in self.raw_messages(topics, start_ns, stop_ns):
            yield topic, log_ns, self.decode(data, msgtype, topic, log_ns)


def _types_from_concatenated_msgdef(text: str, msgtype: str) -> dict[str, Any]:
    """Parse a rosbag2 ``ros2msg`` definition: the type's text, then '====' separated
    ``MSG: pkg/Name`` sections of its dependencies."""
    from rosbags.typesys import get_types_from_msg

    types: dict[str, Any] = {}
    sections = text.split("=" * 80 + "\n")
    types.update(get_types_from_msg(sections[0], msgtype))
    for section in sections[1:]:
        first, _, body = section.partition("\n")
        if not first.startswith("MSG: "):
            continue
        name = first[5:].strip()
        if "/msg/" not in name:
            pkg, _, short = name.partition("/")
            name = f"{pkg}/msg/{short}"
        types.update(get_types_from_msg(body, name))
    return types


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or "no details"
    return f"{type(exc).__name__}: {text}"


def bag_info(path: str | Path) -> BagInfo:
    with BagReader(path) as reader:
        return reader.info()


# --------------------------------------------------------------------------------------------
# IMU and torque topics
# --------------------------------------------------------------------------------------------
def imu_source(
    reader: BagReader,
    locations: Sequence[str] = IMU_LOCATIONS,
    kind: str = "auto",
    prefix: str = DEFAULT_IMU_PREFIX,
    frame_topic: str = DEFAULT_FRAME_TOPIC,
) -> ImuSource:
    """Decide where the IMUs of ``locations`` are in the bag.

    ``kind``: "topics" (``<prefix><location>``, sensor_msgs/Imu), "frame" (``frame_topic``,
    ImuFrame) or "auto" (topics when all are present, else the frame topic). BagError naming
    every missing topic when neither is there.
    """
    if kind not in ("auto", "topics", "frame"):
        raise BagError(f"IMU source kind {kind!r}: must be auto, topics or frame")
    locations = tuple(locations)
    wanted = {imu_topic(loc, prefix): loc for loc in locations}
    missing = [t for t in wanted if not reader.has_topic(t)]
    if kind == "topics" or (kind == "auto" and (not missing or not reader.has_topic(frame_topic))):
        if missing:
            available = ", ".join(sorted(reader.topics())) or "none"
            alt = "" if kind == "topics" else f", and no ImuFrame topic '{frame_topic}'"
            raise BagError(
                f"bag {reader.path}: missing IMU topic(s) {', '.join(missing)}{alt}"
                f" (topics in the bag: {available})"
            )
        for t in wanted:
            reader.require_topic(t, IMU)
        return ImuSource("topics", locations, {normalise_topic(t): loc for t, loc in wanted.items()})
    reader.require_topic(frame_topic, IMU_FRAME)
    return ImuSource("frame", locations, {normalise_topic(frame_topic): ""})


def iter_imu(
    reader: BagReader, source: ImuSource, start_ns: int | None = None, stop_ns: int | None = None
) -> Iterator[ImuRecord]:
    """IMU samples of ``source`` in bag log-time order.

    For an ImuFrame topic every valid location of a frame becomes one record (stamp = the
    frame stamp); invalid entries are skipped; locations not in the frame are an error.
    """
    if source.kind == "topics":
        for topic, msgtype, log_ns, data in reader.raw_messages(source.topics, start_ns, stop_ns):
            fast = decode_imu_cdr(data)
            if fast is None:  # unusual layout or corrupt: the generic path decodes or explains
                msg = reader.decode(data, msgtype, topic, log_ns)
                from gait_estimator.replay.convert import imu_arrays

                stamp, acc, gyro, quat = imu_arrays(msg)
            else:
                stamp, _, acc, gyro, quat = fast
            yield ImuRecord(log_ns, source.topics[topic], stamp, acc, gyro, quat)
        return
    from gait_estimator.replay.convert import imu_arrays, stamp_to_ns

    wanted = set(source.locations)
    for topic, msgtype, log_ns, data in reader.raw_messages(source.topics, start_ns, stop_ns):
        frame = reader.decode(data, msgtype, topic, log_ns)
        locs = list(frame.locations)
        if len(frame.imus) != len(locs) or len(frame.valid) != len(locs):
            raise BagError(
                f"bag {reader.path}: topic '{topic}' frame at log time {log_ns} ns has"
                f" {len(locs)} locations, {len(frame.imus)} imus, {len(frame.valid)} valid flags"
            )
        if not wanted.issubset(locs):
            raise BagError(
                f"bag {reader.path}: topic '{topic}' frames lack location(s)"
                f" {sorted(wanted - set(locs))} (frame has {locs})"
            )
        frame_stamp = stamp_to_ns(frame.header.stamp)
        for loc, imu, valid in zip(locs, frame.imus, frame.valid, strict=True):
            if loc in wanted and valid:
                _, acc, gyro, quat = imu_arrays(imu)
                yield ImuRecord(log_ns, loc, frame_stamp, acc, gyro, quat)


def read_joint_torques(
    reader: BagReader, topic: str = DEFAULT_REFERENCE_TOPIC, joints: Sequence[str] | None = None
) -> TorqueSeries:
    """A JointTorque topic as arrays. ``joints``: the order wanted (default: the first
    message's); every message must name them all, else BagError naming the topic."""
    reader.require_topic(topic, JOINT_TORQUE)
    logs, stamps, rows, valid, masses = [], [], [], [], []
    order: tuple[str, ...] | None = tuple(joints) if joints is not None else None
    index: list[int] | None = None
    last_names: tuple[str, ...] | None = None
    for t, log_ns, msg in reader.messages([topic]):
        names = tuple(msg.joint_names)
        if order is None:
            order = names
        if names != last_names:
            missing = [j for j in order if j not in names]
            if missing or len(msg.torque) != len(names):
                raise BagError(
                    f"bag {reader.path}: topic '{t}' message at log time {log_ns} ns lacks"
                    f" joint(s) {missing} or has {len(msg.torque)} torques for {len(names)} names"
                )
            index = [names.index(j) for j in order]
            last_names = names
        assert index is not None
        logs.append(log_ns)
        stamps.append(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
        rows.append(np.asarray(msg.torque, dtype=np.float64)[index])
        valid.append(bool(msg.valid))
        masses.append(float(msg.subject_mass))
    if not rows:
        raise BagError(f"bag {reader.path}: topic '{topic}' has no messages")
    assert order is not None
    positive = [m for m in masses if m > 0]
    return TorqueSeries(
        normalise_topic(topic),
        order,
        np.asarray(logs, dtype=np.int64),
        np.asarray(stamps, dtype=np.int64),
        np.vstack(rows),
        np.asarray(valid, dtype=bool),
        float(np.median(positive)) if positive else 0.0,
    )


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------
class BagWriter:
    """A new rosbag2 bag (directory) in ``storage`` "mcap" or "sqlite3"; a context manager.

    ``write(topic, log_ns, msg)`` serialises a rosbags message object of the topic's type;
    ``write_raw`` stores CDR bytes as they are. Topics are added on first use (type taken from
    the message) or explicitly with ``add_topic``. ``compress``: zstd storage compression. On
    an exception inside the ``with`` block the bag is still closed, so what was written stays
    readable.
    """

    def __init__(
        self,
        path: str | Path,
        storage: str = "mcap",
        *,
        overwrite: bool = False,
        version: int = 9,
        compress: bool = False,
    ) -> None:
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

        self.path = Path(path)
        if storage not in STORAGES:
            raise BagError(f"bag {self.path}: storage {storage!r} unknown; use one of {STORAGES}")
        if self.path.exists():
            if not overwrite:
                raise BagError(f"bag {self.path}: exists already (choose a new path or overwrite)")
            _remove_bag(self.path)
        self.storage = storage
        self.store = make_typestore()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        try:
            self._writer = Writer(self.path, version=version, storage_plugin=plugin)
            if compress:  # zstd: mcap chunks, sqlite3 per message (both readable by rosbag2)
                mode = CompressionMode.STORAGE if storage == "mcap" else CompressionMode.MESSAGE
                self._writer.set_compression(mode, CompressionFormat.ZSTD)
        except _LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: cannot create: {_describe(exc)}") from None
        self._connections: dict[str, tuple[Any, str]] = {}
        self._open = False
        self.counts: dict[str, int] = {}

    def open(self) -> BagWriter:
        try:
            self._writer.open()
        except _LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: cannot create: {_describe(exc)}") from None
        self._open = True
        return self

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._writer.close()
            except _LIB_ERRORS as exc:
                raise BagError(f"bag {self.path}: cannot finish writing: {_describe(exc)}") from None

    def set_custom_data(self, key: str, value: str) -> None:
        try:
            self._writer.set_custom_data(key, str(value))
        except _LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: custom data {key!r}: {_describe(exc)}") from None

    def add_topic(self, topic: str, msgtype: str) -> None:
        name = normalise_topic(topic)
        if name in self._connections:
            if self._connections[name][1] != msgtype:
                raise BagError(
                    f"bag {self.path}: topic '{topic}' already has type "
                    f"{self._connections[name][1]}, not {msgtype}"
                )
            return
        if msgtype not in self.store.types:
            raise BagError(f"bag {self.path}: unknown message type {msgtype} for topic '{topic}'")
        try:
            conn = self._writer.add_connection(name, msgtype, typestore=self.store)
        except _LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: cannot add topic '{topic}': {_describe(exc)}") from None
        self._connections[name] = (conn, msgtype)
        self.counts[name] = 0

    def write(self, topic: str, log_ns: int, msg: Any, msgtype: str | None = None) -> None:
        msgtype = msgtype or msg.__msgtype__
        self.add_topic(topic, msgtype)
        try:
            data = self.store.serialize_cdr(msg, msgtype, little_endian=True)
        except _LIB_ERRORS as exc:
            raise BagError(
                f"bag {self.path}: topic '{topic}': cannot serialise {msgtype}: {_describe(exc)}"
            ) from None
        self.write_raw(topic, log_ns, data, msgtype)

    def write_raw(self, topic: str, log_ns: int, data: bytes | memoryview, msgtype: str) -> None:
        self.add_topic(topic, msgtype)
        name = normalise_topic(topic)
        try:
            self._writer.write(self._connections[name][0], int(log_ns), data)
        except _LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: topic '{topic}': cannot write: {_describe(exc)}") from None
        self.counts[name] += 1


def _remove_bag(path: Path) -> None:
    import shutil

    if path.is_dir():
        if any(
            p.suffix not in {".mcap", ".db3", ".yaml", ".zstd", ".db3-shm", ".db3-wal"}
            for p in path.iterdir()
        ):
            raise BagError(f"bag {path}: exists and holds files that are not a bag's; not overwriting")
        shutil.rmtree(path)
    else:
        path.unlink()
