"""The synchronizer and the clock that drives it: one factory, used by the distributed
synchronizer node, the fused node and offline replay alike.

Data time, not host time (:class:`DataClock`). Frames are polled at the newest host time that
any received sample describes (its stamp mapped to host time), never later than the host clock
when the sample was received. When a process is starved (CPU load, a GC pause, a VM hiccup),
samples sit in a queue while the host clock runs on; polling at host time would emit grid frames
the queued samples belong to, hold stale values for them and mark them invalid past
``max_gap_s``: a latched fault caused by our own scheduling, not by a sensor. At data time a
frame goes out when every IMU has reached its stamp (at once when all IMUs share the stamp), or
when some IMU is ``latency_s`` ahead of it: a stream that lags the others by that much is
stalled, and its frames are invalid after ``max_gap_s`` as the safety rule wants. If every IMU
stops, frames stop and the command watchdog (the newest estimate's stamp against host time)
ramps the command to zero. Offline replay feeds the same clock with the recording's receive
(log) times, so it emits the frames the nodes emitted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gait_estimator.core.samples import ImuSample, SyncFrame
from gait_estimator.core.synchronizer import ImuSynchronizer

__all__ = ["DataClock", "make_synchronizer", "sample_values"]


def make_synchronizer(p: Mapping[str, Any], rate_hz: float | None = None) -> ImuSynchronizer:
    """The synchronizer of the parameters ``p`` (``locations``, ``latency_s``, ``max_gap_s``,
    ``estimate_clock_offset``, and ``rate_hz`` unless given: the model's sample rate)."""
    return ImuSynchronizer(
        tuple(p["locations"]),
        float(p["rate_hz"] if rate_hz is None else rate_hz),
        latency_ns=int(p["latency_s"] * 1e9),
        max_gap_ns=int(p["max_gap_s"] * 1e9),
        estimate_clock_offset=bool(p["estimate_clock_offset"]),
    )


def _floats(x: Any) -> list[float]:
    return x.tolist() if hasattr(x, "tolist") else [float(v) for v in x]


def sample_values(acc: Any, gyro: Any, quat_xyzw: Any) -> list[float]:
    """A sample (arrays or sequences) -> ``[acc(3), gyro(3), quat_xyzw(4)]`` plain floats, the
    form ``ImuSynchronizer.push_values`` takes (numpy calls on 10 values cost more than the work)."""
    return [*_floats(acc), *_floats(gyro), *_floats(quat_xyzw)]


class DataClock:
    """``ImuSynchronizer`` driven at data time (see the module docstring).

    ``push(sample, receive_ns)`` adds the sample and returns the frames due at the newest host
    time described by a sample of any stream (``lead_ns``, never later than ``receive_ns``).
    """

    def __init__(self, sync: ImuSynchronizer) -> None:
        self.sync = sync
        self._newest: dict[str, int] = {}  # location -> device stamp of its last accepted sample

    def reset(self) -> None:
        self.sync.reset()
        self._newest.clear()

    def lead_ns(self) -> int | None:
        lead = None
        for loc, d in self._newest.items():
            off = self.sync.clock_offset_ns(loc)
            if off is not None and (lead is None or d + off > lead):
                lead = d + off
        return lead

    def push(self, sample: ImuSample, receive_ns: int) -> list[SyncFrame]:
        """One ``core.samples.ImuSample``."""
        values = sample_values(sample.acc, sample.gyro, sample.quat_xyzw)
        return self.push_values(sample.location, sample.stamp_ns, values, receive_ns)

    def push_values(
        self, location: str, stamp_ns: int, values: Sequence[float], receive_ns: int
    ) -> list[SyncFrame]:
        """``push`` of one sample given as ``ImuSynchronizer.push_values`` takes it."""
        return self.push_many(((location, stamp_ns, values),), receive_ns)

    def push_many(
        self, samples: Iterable[tuple[str, int, Sequence[float]]], receive_ns: int
    ) -> list[SyncFrame]:
        """Every sample of one sampling instant (a bundled input: ``(location, stamp_ns, values)``),
        then one poll."""
        for location, stamp_ns, values in samples:
            if self.sync.push_values(location, stamp_ns, values, receive_ns):
                self._newest[location] = int(stamp_ns)
        return self._poll(receive_ns)

    def _poll(self, receive_ns: int) -> list[SyncFrame]:
        lead = self.lead_ns()
        if lead is None:
            return []
        return self.sync.poll(min(lead, int(receive_ns)))
