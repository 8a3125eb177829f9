"""Binary IMU frame protocol of the ``serial`` backend of ``imu_driver``, and its reader.

One frame per sample of one IMU, little-endian, 58 bytes::

    offset size type        field
    0      2    u8[2]       sync bytes 0xA5 0x5A
    2      1    u8          protocol version (1)
    3      1    u8          sensor id: index into the driver's ``locations`` parameter
    4      4    u32         sequence number (per sensor, wraps; gaps are counted as lost)
    8      8    u64         device time stamp, ns (the device's own clock)
    16     12   f32[3]      specific force incl. gravity, m/s^2, sensor frame
    28     12   f32[3]      angular velocity, rad/s, sensor frame
    40     16   f32[4]      orientation quaternion x, y, z, w (sensor -> world)
    56     2    u16         CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of bytes 2..55

The reader resynchronises on the sync bytes after garbage or a bad checksum (the frame is
dropped and counted), so a byte lost on the line costs one frame, not the stream.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

SYNC = b"\xa5\x5a"
VERSION = 1
_BODY = struct.Struct("<BBIQ3f3f4f")  # version .. quaternion (54 bytes)
FRAME_SIZE = 2 + _BODY.size + 2  # 58


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc_table()


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (check value of b"123456789" is 0x29B1)."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


@dataclass(frozen=True)
class SerialFrame:
    sensor_id: int
    seq: int
    device_ns: int
    acc: np.ndarray
    gyro: np.ndarray
    quat_xyzw: np.ndarray


def encode_frame(sensor_id: int, seq: int, device_ns: int, acc, gyro, quat_xyzw) -> bytes:
    body = _BODY.pack(
        VERSION,
        sensor_id,
        seq & 0xFFFFFFFF,
        int(device_ns),
        *map(float, acc),
        *map(float, gyro),
        *map(float, quat_xyzw),
    )
    return SYNC + body + struct.pack("<H", crc16_ccitt(body))


@dataclass
class FrameDecoder:
    """Incremental decoder: ``feed(bytes) -> list[SerialFrame]``; counters for diagnostics."""

    buffer: bytearray = field(default_factory=bytearray)
    frames: int = 0
    bad_checksum: int = 0
    bad_version: int = 0
    skipped_bytes: int = 0
    lost: int = 0
    _last_seq: dict[int, int] = field(default_factory=dict)

    def feed(self, data: bytes) -> list[SerialFrame]:
        self.buffer += data
        out: list[SerialFrame] = []
        buf = self.buffer
        while True:
            start = buf.find(SYNC)
            if start < 0:
                keep = 1 if buf.endswith(SYNC[:1]) else 0
                self.skipped_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                break
            if start > 0:
                self.skipped_bytes += start
                del buf[:start]
            if len(buf) < FRAME_SIZE:
                break
            body = bytes(buf[2 : 2 + _BODY.size])
            (crc,) = struct.unpack_from("<H", buf, 2 + _BODY.size)
            if crc16_ccitt(body) != crc:
                self.bad_checksum += 1
                del buf[:2]  # resync after this sync pair
                continue
            fields = _BODY.unpack(body)
            if fields[0] != VERSION:
                self.bad_version += 1
                del buf[:FRAME_SIZE]
                continue
            del buf[:FRAME_SIZE]
            sid, seq, dev = fields[1], fields[2], fields[3]
            last = self._last_seq.get(sid)
            if last is not None:
                gap = (seq - last - 1) & 0xFFFFFFFF
                if gap < 1_000_000:
                    self.lost += gap
            self._last_seq[sid] = seq
            self.frames += 1
            out.append(
                SerialFrame(
                    sid, seq, dev, np.array(fields[4:7]), np.array(fields[7:10]), np.array(fields[10:14])
                )
            )
        return out

    def counters(self) -> dict[str, int]:
        return {
            "frames": self.frames,
            "bad_checksum": self.bad_checksum,
            "bad_version": self.bad_version,
            "skipped_bytes": self.skipped_bytes,
            "lost": self.lost,
        }
