"""The batched offline path of :mod:`gait_estimator.replay.offline`: whole bags as arrays.

Offline validation must give exactly what the online path gives, but a Python call per IMU sample
through :class:`~gait_estimator.core.synchronizer.ImuSynchronizer` and one model call per
window cost ~300 us per estimate (~30x real time). This module keeps the semantics and moves the
work into numpy:

- :func:`read_imu_arrays` / :func:`read_reference`: bag -> arrays with direct CDR reads (a
  layout the fast readers do not recognise goes through rosbags' generic deserialiser, or the
  committed ``bag.read_joint_torques``, which also produce the errors);
- :func:`simulate_synchronizer`: the frames ``ImuSynchronizer`` emits when it is fed the samples
  one by one with ``push(sample, log_ns)`` then ``poll(log_ns)`` (and one final ``poll``), computed
  from the arrays: the emission instant of every frame, its interpolation brackets, the clock
  offsets (the lower-envelope recurrence in closed form), the counters. It covers the common case
  and says so: it returns ``None`` unless every precondition under which the closed form equals
  the per-sample object holds (log times non-decreasing; every sample finite with a plausible
  quaternion; per stream strictly increasing stamps, no clock jump, no buffer overflow; no late
  first sample; no backlog skip; brackets that only move forward). The caller then runs the
  per-sample path. ``test_replay_batch.py`` checks frame-for-frame equality with the object on
  perturbed streams (jitter, bursts, drops, clock offsets and drift, late starts, stream loss).

Features, windowing and batched inference are in
:meth:`~gait_estimator.core.pipeline.EstimatorPipeline.frame_rows` and
:meth:`~gait_estimator.core.pipeline.EstimatorPipeline.push_rows`.
"""

from __future__ import annotations

import array
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from gait_estimator.core.plausibility import implausible_rows
from gait_estimator.core.synchronizer import COUNTER_NAMES, ImuSynchronizer, slerp
from gait_estimator.errors import BagError
from gait_estimator.replay.bag import BagReader, ImuSource, TorqueSeries, iter_imu, normalise_topic

__all__ = [
    "FrameArrays",
    "ImuArrays",
    "decode_joint_torque_cdr",
    "read_imu_arrays",
    "read_reference",
    "simulate_synchronizer",
]

_HEAD = struct.Struct("<iII")
_BODY = struct.Struct("<37d")
# The same body, covariances skipped: orientation xyzw, angular velocity, linear acceleration.
_BODY_10 = struct.Struct("<4d72x3d72x3d")
_U32 = struct.Struct("<I")
_DD = struct.Struct("<2d")


@dataclass
class ImuArrays:
    """IMU samples of a bag in log-time order (the order the nodes receive them)."""

    locations: tuple[str, ...]  # index -> location
    log_ns: np.ndarray  # int64 [N] receive (log) time
    loc: np.ndarray  # intp [N] index into locations
    stamp_ns: np.ndarray  # int64 [N] header stamp
    values: np.ndarray  # float64 [N, 10]: acc xyz, gyro xyz, quat xyzw (as recorded)

    def __len__(self) -> int:
        return int(self.log_ns.shape[0])


@dataclass
class FrameArrays:
    """Frames of the synchronizer, oldest first (``K`` frames over ``L`` locations)."""

    locations: tuple[str, ...]
    stamp_ns: np.ndarray  # int64 [K] grid time
    poll_index: np.ndarray  # intp [K] sample after whose push the frame was emitted (N: final poll)
    acc: np.ndarray  # [K, L, 3]
    gyro: np.ndarray  # [K, L, 3]
    quat_xyzw: np.ndarray  # [K, L, 4]
    valid: np.ndarray  # bool [K, L]
    sensor_offset_ns: np.ndarray  # int64 [K] clock offset of locations[0] at emission (0 before data)
    counters: dict[str, int]

    def __len__(self) -> int:
        return int(self.stamp_ns.shape[0])


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def read_imu_arrays(
    reader: BagReader,
    source: ImuSource,
    locations: Sequence[str],
    start_ns: int | None = None,
    stop_ns: int | None = None,
    also: dict[str, list[tuple[int, bytes]]] | None = None,
) -> ImuArrays:
    """The IMU samples of ``source`` as arrays; same records, order and errors as ``iter_imu``.

    ``also``: ``{topic: []}`` of other topics to collect as raw ``(log_ns, CDR)`` in the same
    pass over the bag (one pass reads each chunk once; a topic read separately costs a full
    scan). Only with an ImuSource of kind "topics".
    """
    locations = tuple(locations)
    also = also or {}
    index = {loc: i for i, loc in enumerate(locations)}
    logs = array.array("q")
    stamps = array.array("q")
    locs = array.array("q")
    vals = array.array("d")
    if source.kind == "topics":
        topic_loc = {t: index[loc] for t, loc in source.topics.items()}
        head, body, body10 = _HEAD, _BODY, _BODY_10
        other = {normalise_topic(t): also[t] for t in also}
        topics = list(source.topics) + [t for t in other if t not in source.topics]
        for topic, msgtype, log_ns, data in reader.raw_messages(topics, start_ns, stop_ns):
            if topic not in topic_loc:
                other[topic].append((log_ns, data))
                continue
            # sensor_msgs/Imu, little-endian CDR: header, then 37 float64 (see bag.decode_imu_cdr)
            ok = len(data) >= 16 and data[0] == 0 and data[1] == 1
            if ok:
                sec, nanosec, strlen = head.unpack_from(data, 4)
                pos = ((12 + strlen + 7) & ~7) + 4
                ok = strlen > 0 and pos + body.size <= len(data) and nanosec < 1_000_000_000
            if ok:
                vals.extend(body10.unpack_from(data, pos))
                stamp = sec * 1_000_000_000 + nanosec
            else:  # other layout, big-endian or corrupt: the generic path decodes or explains
                from gait_estimator.replay.convert import imu_arrays

                stamp, acc, gyro, quat = imu_arrays(reader.decode(data, msgtype, topic, log_ns))
                vals.extend(np.concatenate([quat, gyro, acc]).tolist())
            logs.append(log_ns)
            stamps.append(stamp)
            locs.append(topic_loc[topic])
    else:
        if also:
            raise ValueError("read_imu_arrays: 'also' needs IMU topics (source kind 'topics')")
        for rec in iter_imu(reader, source, start_ns, stop_ns):
            logs.append(rec.log_ns)
            stamps.append(rec.stamp_ns)
            locs.append(index[rec.location])
            vals.extend(np.concatenate([rec.quat_xyzw, rec.gyro, rec.acc]).tolist())
    raw = np.frombuffer(vals, dtype=np.float64).reshape(-1, 10)  # quat xyzw, gyro, acc (message order)
    return ImuArrays(
        locations,
        np.frombuffer(logs, dtype=np.int64).copy(),
        np.frombuffer(locs, dtype=np.int64).astype(np.intp),
        np.frombuffer(stamps, dtype=np.int64).copy(),
        np.concatenate([raw[:, 7:10], raw[:, 4:7], raw[:, 0:4]], axis=1),
    )


def decode_joint_torque_cdr(
    data: bytes | memoryview,
) -> tuple[int, bytes, list[float], bool, float, float] | None:
    """(stamp_ns, raw joint-name block, torques, valid, subject_mass, gait_phase) of a
    little-endian CDR ``gait_estimator_msgs/JointTorque``; None when the bytes do not have that
    layout."""
    n = len(data)
    if n < 16 or data[0] != 0 or data[1] != 1:
        return None
    u32 = _U32.unpack_from
    sec, nanosec, strlen = _HEAD.unpack_from(data, 4)
    if nanosec >= 1_000_000_000:
        return None
    pos = 12 + strlen + 1  # body offset after frame_id and the uint8 source
    pos = (pos + 3) & ~3
    if pos + 4 > n - 4:
        return None
    names_start = pos
    (count,) = u32(data, pos + 4)
    pos += 4
    for _ in range(count):
        pos = (pos + 3) & ~3
        if pos + 4 > n - 4:
            return None
        (length,) = u32(data, pos + 4)
        pos += 4 + length
    names = bytes(data[names_start + 8 : pos + 4])  # the strings, after their count
    pos = (pos + 3) & ~3
    if pos + 4 > n - 4:
        return None
    (nt,) = u32(data, pos + 4)
    pos += 4
    if nt:
        pos = (pos + 7) & ~7
    if pos + 8 * nt > n - 4:
        return None
    torque = list(struct.unpack_from(f"<{nt}d", data, pos + 4))
    pos += 8 * nt
    pos = (pos + 3) & ~3
    if pos + 4 > n - 4:
        return None
    (ns,) = u32(data, pos + 4)
    pos += 4 + ns
    valid = pos
    pos = ((pos + 1) + 7) & ~7
    if pos + 16 > n - 4:
        return None
    mass, phase = _DD.unpack_from(data, pos + 4)
    return sec * 1_000_000_000 + nanosec, names, torque, bool(data[valid + 4]), mass, phase


def read_reference(
    reader: BagReader,
    topic: str,
    joints: Sequence[str],
    raw: Sequence[tuple[int, bytes]] | None = None,
) -> TorqueSeries:
    """``bag.read_joint_torques(reader, topic, joints)`` with a direct CDR read of the messages
    (``raw``: the topic's ``(log_ns, CDR)`` already read, see :func:`read_imu_arrays`).

    Any message the fast reader does not recognise (layout, names lacking a joint) sends the
    whole topic through ``read_joint_torques``, which decodes generically and raises the errors.
    """
    from gait_estimator.replay.bag import JOINT_TORQUE, read_joint_torques

    joints = tuple(joints)
    reader.require_topic(topic, JOINT_TORQUE)
    if raw is None:
        raw = [(log_ns, data) for _, _, log_ns, data in reader.raw_messages([topic])]
    logs = array.array("q")
    stamps = array.array("q")
    rows = array.array("d")
    valid = array.array("b")
    masses = array.array("d")
    phases = array.array("d")
    last_block: bytes | None = None
    index: list[int] = []
    for log_ns, data in raw:
        msg = decode_joint_torque_cdr(data)
        if msg is None:
            return read_joint_torques(reader, topic, joints)
        stamp, block, torque, ok, mass, phase = msg
        if block != last_block:
            names = _names(block)
            if names is None or len(torque) != len(names) or not set(joints) <= set(names):
                return read_joint_torques(reader, topic, joints)
            index = [names.index(j) for j in joints]
            last_block = block
        logs.append(log_ns)
        stamps.append(stamp)
        rows.extend([torque[i] for i in index])
        valid.append(ok)
        masses.append(mass)
        phases.append(phase)
    if not logs:
        raise BagError(f"bag {reader.path}: topic '{topic}' has no messages")
    m = np.frombuffer(masses, dtype=np.float64)
    positive = m[m > 0]
    return TorqueSeries(
        normalise_topic(topic),
        joints,
        np.frombuffer(logs, dtype=np.int64).copy(),
        np.frombuffer(stamps, dtype=np.int64).copy(),
        np.frombuffer(rows, dtype=np.float64).reshape(-1, len(joints)).copy(),
        np.frombuffer(valid, dtype=np.int8).astype(bool),
        float(np.median(positive)) if positive.size else 0.0,
        np.frombuffer(phases, dtype=np.float64).copy(),
    )


def _names(block: bytes) -> list[str] | None:
    """The strings of a CDR ``string[]`` body (without its count), aligned from offset 4."""
    out = []
    pos = 0
    try:
        while pos < len(block):
            pos = (pos + 3) & ~3
            (length,) = _U32.unpack_from(block, pos)
            out.append(block[pos + 4 : pos + 4 + length - 1].decode("utf-8"))
            pos += 4 + length
    except (struct.error, UnicodeDecodeError):
        return None
    return out


# --------------------------------------------------------------------------------------------
# synchronizer, in closed form
# --------------------------------------------------------------------------------------------
def _grid(t0: int, num: int, den: int, k: np.ndarray) -> np.ndarray:
    """``t0 + floor(k * 1e9 * den / num)`` exactly (ImuSynchronizer.stamp) for k >= 0."""
    if k.size == 0:
        return np.zeros(0, dtype=np.int64)
    if int(k.max()) * 1_000_000_000 * den < 2**62:
        return t0 + (k.astype(np.int64) * (1_000_000_000 * den)) // num
    return np.array([t0 + (int(x) * 1_000_000_000 * den) // num for x in k], dtype=np.int64)


def simulate_synchronizer(
    sync: ImuSynchronizer, imu: ImuArrays, final_poll_ns: int | None
) -> FrameArrays | None:
    """What a freshly reset ``sync`` emits when fed ``imu`` sample by sample through
    ``core.clock.DataClock`` (``push``, then ``poll`` at data time: the newest host time a
    sample describes, at most its log time), plus ``poll(final_poll_ns)`` when it is not None. None when a
    precondition of the closed form fails (see the module docstring): use the object then."""
    n = len(imu)
    locs = sync.locations
    if n == 0 or tuple(imu.locations) != tuple(locs):
        return None
    L = len(locs)
    r = imu.log_ns
    d = imu.stamp_ns
    if np.any(np.diff(r) < 0):
        return None
    v = imu.values.astype(np.float64, copy=True)
    q = v[:, 6:10]
    if implausible_rows(v, sync.limits).any():
        return None  # a rejected sample: the object's bookkeeping decides
    if not sync.estimate_clock_offset and np.any(d > r + sync.max_ahead_ns):
        return None  # a stamp from the future is rejected by the object
    norm = np.sqrt(np.einsum("ij,ij->i", q, q))
    v[:, 6:10] = q / norm[:, None]

    latency, gap = sync.latency_ns, sync.max_gap_ns
    frac = Fraction(sync.rate_hz).limit_denominator(1_000_000)
    num, den = frac.numerator, frac.denominator
    counters = dict.fromkeys(COUNTER_NAMES, 0)
    counters["received"] = n

    # -- per stream: stamps, clock offsets, host time of the newest sample ------------------
    idx: list[np.ndarray] = []
    dev: list[np.ndarray] = []
    off: list[np.ndarray] = []
    for s in range(L):
        ii = np.flatnonzero(imu.loc == s)
        ds = d[ii]
        if ds.size > 1 and np.any(np.diff(ds) <= 0):
            return None  # duplicate or out-of-order stamp: the object's bookkeeping decides
        if sync.estimate_clock_offset and ii.size:
            rs = r[ii]
            delta = rs - ds
            dr = np.diff(rs)
            g = np.concatenate([[0], (sync.slew * dr.astype(np.float64)).astype(np.int64)])
            big_g = np.cumsum(g)
            o = big_g + np.minimum.accumulate(delta - big_g)
            if ii.size > 1 and np.any(np.abs(delta[1:] - o[:-1]) > sync.clock_jump_ns):
                return None
        else:
            o = np.zeros(ii.size, dtype=np.int64)
        idx.append(ii)
        dev.append(ds)
        off.append(o)
        counters["dropped"] += _dropped(ds)

    # -- polls: horizon and "every stream reached" per poll; t0 ------------------------------
    # Each sample's poll runs at data time (core.clock.DataClock, as the nodes): the newest host
    # time any stream's sample describes, never later than its receive (log) time; the final
    # poll is the nodes' timer, at host time.
    polls = n + (1 if final_poll_ns is not None else 0)
    p = np.arange(polls)
    reached = np.full(polls, np.iinfo(np.int64).max, dtype=np.int64)
    lead = np.full(polls, np.iinfo(np.int64).min, dtype=np.int64)
    last_of: list[np.ndarray] = []  # per stream: its newest sample (position) at each poll, -1 none
    for s in range(L):
        pos = np.searchsorted(idx[s], np.minimum(p, n - 1), side="right") - 1
        last_of.append(pos)
        pc = np.maximum(pos, 0)
        host = np.where(pos >= 0, dev[s][pc] + off[s][pc], np.iinfo(np.int64).min)
        reached = np.minimum(reached, host)
        lead = np.maximum(lead, host)
    now = np.minimum(r, lead[:n])
    if final_poll_ns is not None:
        now = np.concatenate([now, [final_poll_ns]])
    started = np.flatnonzero(now >= r[0] + latency)
    if started.size == 0:
        return _empty(locs, counters)
    istar = int(started[0])
    if not sync.emit_early:
        reached[:] = np.iinfo(np.int64).min
    starts = [int(dev[s][0] + off[s][last_of[s][istar]]) for s in range(L) if last_of[s][istar] >= 0]
    t0 = min(starts)
    reach = np.maximum(now - latency, reached)[istar:]
    cummax = np.maximum.accumulate(reach)
    top = int(cummax[-1])
    if top < t0:
        return _empty(locs, counters)
    k_max = ((top - t0) * num) // (1_000_000_000 * den) + 2
    t = _grid(t0, num, den, np.arange(k_max))
    t = t[t <= top]
    k = t.size
    emit = istar + np.searchsorted(cummax, t, side="left")
    # backlog skip: at every poll the next frame due must be within max_backlog of the horizon
    done_before = np.searchsorted(emit, p[istar:], side="left")  # frames emitted at earlier polls
    nxt = _grid(t0, num, den, done_before)
    if np.any((now[istar:] - latency) - nxt > sync.max_backlog_ns):
        return None

    # -- frame content per stream --------------------------------------------------------------
    acc_gyro = np.zeros((k, L, 6))
    quat_a = np.zeros((k, L, 4))
    quat_b = np.zeros((k, L, 4))
    quat_a[..., 3] = quat_b[..., 3] = 1.0
    weight = np.zeros((k, L))
    valid = np.zeros((k, L), dtype=bool)
    held = 0
    emit_c = np.minimum(emit, n - 1)
    for s in range(L):
        ii, ds, os_ = idx[s], dev[s], off[s]
        if ii.size == 0:
            continue
        narr = last_of[s][emit_c] + 1  # samples of s pushed by the frame's poll
        if final_poll_ns is not None:
            narr = np.where(emit >= n, ii.size, narr)
        has = narr > 0
        o = np.where(has, os_[np.maximum(narr - 1, 0)], 0)
        td = t - o
        j = np.minimum(np.searchsorted(ds, td, side="right"), narr)
        a = j - 1
        if np.any(np.diff(a) < 0):
            return None  # a bracket would move back into samples the object already dropped
        # late first sample: pushed when an earlier frame already covered its host time
        first_poll = ii[0]
        before = np.flatnonzero(emit < first_poll)
        if before.size and ds[0] + os_[0] <= t[before[-1]]:
            return None
        # buffer overflow: samples kept at each push (from the newest frame's bracket on)
        kept_frame = np.searchsorted(emit, ii, side="left") - 1
        kept = np.where(kept_frame >= 0, np.maximum(a[np.maximum(kept_frame, 0)], 0), 0)
        if np.any(np.arange(1, ii.size + 1) - kept > sync.max_buffer):
            return None
        ok = has & (a >= 0)
        ac = np.maximum(a, 0)
        ok &= (td - ds[ac]) <= gap
        jc = np.minimum(j, ii.size - 1)
        interp = ok & (j < narr) & ((ds[jc] - ds[ac]) <= gap)
        vals = v[ii]
        rows_a = np.where(ok[:, None], vals[ac], 0.0)
        rows_b = np.where(interp[:, None], vals[jc], rows_a)
        w = np.zeros(k)
        w[interp] = (td[interp] - ds[ac][interp]) / (ds[jc][interp] - ds[ac][interp])
        held += int(np.count_nonzero(ok & ~interp & (td != ds[ac])))
        acc_gyro[:, s] = rows_a[:, :6] + (rows_b[:, :6] - rows_a[:, :6]) * w[:, None]
        quat_a[ok, s] = rows_a[ok, 6:]
        quat_b[ok, s] = rows_b[ok, 6:]
        weight[:, s] = w
        valid[:, s] = ok
    quat = slerp(quat_a.reshape(-1, 4), quat_b.reshape(-1, 4), weight.reshape(-1)).reshape(k, L, 4)
    acc_gyro[~valid] = 0.0
    quat[~valid] = (0.0, 0.0, 0.0, 1.0)
    counters["held"] = held
    counters["frames"] = k
    counters["invalid_frames"] = int(np.count_nonzero(~valid.all(axis=1)))
    pos0 = last_of[0][emit_c]
    if final_poll_ns is not None:
        pos0 = np.where(emit >= n, idx[0].size - 1, pos0)
    sensor = np.where(pos0 >= 0, off[0][np.maximum(pos0, 0)], 0) if idx[0].size else np.zeros(k, np.int64)
    return FrameArrays(
        locs,
        t,
        emit,
        acc_gyro[:, :, :3],
        acc_gyro[:, :, 3:6],
        quat,
        valid,
        sensor.astype(np.int64),
        counters,
    )


def _dropped(ds: np.ndarray) -> int:
    """``ImuSynchronizer._count_gap`` over a stream's increasing stamps: the ``dropped`` count."""
    if ds.size < 2:
        return 0
    dropped = 0
    period: float | None = None
    for dt in np.diff(ds).tolist():
        if period is None:
            period = float(dt)
        elif dt >= 1.5 * period:
            dropped += round(dt / period) - 1
        elif dt < 0.67 * period:
            period = float(dt)
        else:
            period = 0.9 * period + 0.1 * dt
    return dropped


def _empty(locs: tuple[str, ...], counters: dict[str, int]) -> FrameArrays:
    L = len(locs)
    return FrameArrays(
        locs,
        np.zeros(0, np.int64),
        np.zeros(0, np.intp),
        np.zeros((0, L, 3)),
        np.zeros((0, L, 3)),
        np.zeros((0, L, 4)),
        np.zeros((0, L), bool),
        np.zeros(0, np.int64),
        counters,
    )
