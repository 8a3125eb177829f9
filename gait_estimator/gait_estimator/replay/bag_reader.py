"""Reading rosbag2 bags (mcap, sqlite3): :class:`BagReader` lists topics and yields raw or decoded
messages in log-time order, decoding with the bag's own recorded definitions where they differ
from the package's typestore; :func:`bag_info` summarises a bag."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from gait_estimator.errors import BagError
from gait_estimator.replay.bag_base import LIB_ERRORS, describe, normalise_topic
from gait_estimator.replay.typestore import make_typestore

__all__ = ["BagInfo", "BagReader", "TopicSummary", "bag_info"]


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
        except LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: cannot open: {describe(exc)}") from None
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
            except LIB_ERRORS:  # closing a broken bag must not mask the first error
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
                        f" stored in the bag cannot be parsed ({describe(exc)})"
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
            except LIB_ERRORS as exc:
                raise BagError(f"bag {self.path}: corrupt or truncated storage: {describe(exc)}") from None
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
        except LIB_ERRORS as exc:
            recorded = self._recorded_store(msgtype) if store is self.store else None
            if recorded is not None:
                try:  # the bag was recorded with an older definition of the type
                    return recorded.deserialize_cdr(data, msgtype)
                except LIB_ERRORS:
                    self._recorded[msgtype] = None
            raise BagError(
                f"bag {self.path}: topic '{topic}' message at log time {log_ns} ns is not a"
                f" valid {msgtype}: {describe(exc)}"
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


def bag_info(path: str | Path) -> BagInfo:
    with BagReader(path) as reader:
        return reader.info()
