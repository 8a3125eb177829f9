"""Writing rosbag2 bags: :class:`BagWriter` creates a bag in either storage format and serialises
rosbags message objects (see :mod:`gait_estimator.replay.convert`) or raw CDR."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from gait_estimator.errors import BagError
from gait_estimator.replay.bag_base import LIB_ERRORS, STORAGES, describe, normalise_topic
from gait_estimator.replay.typestore import make_typestore

__all__ = ["BagWriter"]


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
        except LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: cannot create: {describe(exc)}") from None
        self._connections: dict[str, tuple[Any, str]] = {}
        self._open = False
        self.counts: dict[str, int] = {}

    def open(self) -> BagWriter:
        try:
            self._writer.open()
        except LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: cannot create: {describe(exc)}") from None
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
            except LIB_ERRORS as exc:
                raise BagError(f"bag {self.path}: cannot finish writing: {describe(exc)}") from None

    def set_custom_data(self, key: str, value: str) -> None:
        try:
            self._writer.set_custom_data(key, str(value))
        except LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: custom data {key!r}: {describe(exc)}") from None

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
        except LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: cannot add topic '{topic}': {describe(exc)}") from None
        self._connections[name] = (conn, msgtype)
        self.counts[name] = 0

    def write(self, topic: str, log_ns: int, msg: Any, msgtype: str | None = None) -> None:
        msgtype = msgtype or msg.__msgtype__
        self.add_topic(topic, msgtype)
        try:
            data = self.store.serialize_cdr(msg, msgtype, little_endian=True)
        except LIB_ERRORS as exc:
            raise BagError(
                f"bag {self.path}: topic '{topic}': cannot serialise {msgtype}: {describe(exc)}"
            ) from None
        self.write_raw(topic, log_ns, data, msgtype)

    def write_raw(self, topic: str, log_ns: int, data: bytes | memoryview, msgtype: str) -> None:
        self.add_topic(topic, msgtype)
        name = normalise_topic(topic)
        try:
            self._writer.write(self._connections[name][0], int(log_ns), data)
        except LIB_ERRORS as exc:
            raise BagError(f"bag {self.path}: topic '{topic}': cannot write: {describe(exc)}") from None
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
