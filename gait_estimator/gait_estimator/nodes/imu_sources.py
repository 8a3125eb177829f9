"""IMU sample sources behind ``imu_driver`` (and the fused node's in-process input).

ROS-free: a source is started with a ``sink(location, stamp_ns, acc, gyro, quat_xyzw)``
callback (plus ``reference(stamp_ns, torque_nm, joints, phase)`` for sources that know the
ground truth) and runs its own thread, so the same code feeds DDS publishers (distributed) or
the core pipeline directly (fused).

- ``SimSource``: the gait simulator (``gait_estimator.sim.generate.simulate_trial``), streamed
  in real time; device stamps are host time + ``clock_offset_s``; looped.
- ``FileSource``: a simulator dataset directory (``manifest.json``), one trial ``.npz``, or a
  CSV file (header ``time_s`` + ``<location>/acc_x`` ... ``<location>/quat_w`` columns, optional
  ``moment/<joint>`` columns in N.m); replayed at its own rate; device stamps = host start +
  recording time.
- ``SerialSource``: pyserial port carrying the frame protocol of ``serial_protocol``.

Fault injection (for tests and demos of the safety layer): ``nan_location`` /
``nan_start_s`` / ``nan_duration_s`` replace that IMU's samples by NaN for that period.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gait_estimator.errors import ConfigError, DatasetError

Sink = Callable[[str, int, np.ndarray, np.ndarray, np.ndarray], None]
RefSink = Callable[[int, np.ndarray, tuple, float], None]


@dataclass
class Recorded:
    """A recording to stream: per-location arrays on one time base."""

    rate_hz: float
    t_ns: np.ndarray  # [N] int64, from 0
    acc: dict[str, np.ndarray]  # loc -> [N, 3]
    gyro: dict[str, np.ndarray]
    quat: dict[str, np.ndarray]  # loc -> [N, 4] xyzw
    joints: tuple[str, ...] = ()
    moment_nm: np.ndarray | None = None  # [N, J]
    phase: np.ndarray | None = None  # [N]
    subject_mass_kg: float = 0.0
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t_ns)


def from_trial(trial) -> Recorded:
    """``sim.dataset.Trial`` -> ``Recorded``."""
    t = np.asarray(trial.time_ns, dtype=np.int64)
    t = t - t[0]
    return Recorded(
        rate_hz=float(trial.sample_rate_hz),
        t_ns=t,
        acc={k: np.asarray(v["acc"], float) for k, v in trial.imu.items()},
        gyro={k: np.asarray(v["gyro"], float) for k, v in trial.imu.items()},
        quat={k: np.asarray(v["quat"], float) for k, v in trial.imu.items()},
        joints=tuple(trial.joint_names),
        moment_nm=np.asarray(trial.moment_nm, float),
        phase=np.asarray(trial.phase_r, float),
        subject_mass_kg=float(trial.subject.get("mass_kg", 0.0)),
        info={"trial_id": trial.trial_id, "speed_mps": trial.speed_mps},
    )


def simulate(rate_hz: float, loop_s: float, speed_mps: float, seed: int) -> Recorded:
    from gait_estimator.sim.generate import sample_subject, simulate_trial

    rng = np.random.default_rng(seed)
    subject = sample_subject(rng)
    trial = simulate_trial(subject, loop_s, speed_mps, rate_hz, seed, None)
    return from_trial(trial)


def read_csv(path: Path) -> Recorded:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 3:
        raise DatasetError(f"{path}: a CSV needs a header and at least 2 rows")
    head = rows[0]
    try:
        data = np.array([[float(x) for x in r] for r in rows[1:] if r], dtype=float)
    except ValueError as exc:
        raise DatasetError(f"{path}: non-numeric value ({exc})") from exc
    col = {h: i for i, h in enumerate(head)}
    if "time_s" not in col:
        raise DatasetError(f"{path}: no 'time_s' column")
    t = data[:, col["time_s"]]
    dt = np.diff(t)
    if (dt <= 0).any():
        raise DatasetError(f"{path}: time_s must increase")
    locs = sorted({h.split("/")[0] for h in head if h.endswith("/acc_x")})
    acc, gyro, quat = {}, {}, {}
    for loc in locs:
        try:
            acc[loc] = data[:, [col[f"{loc}/acc_{a}"] for a in "xyz"]]
            gyro[loc] = data[:, [col[f"{loc}/gyro_{a}"] for a in "xyz"]]
            quat[loc] = data[:, [col[f"{loc}/quat_{a}"] for a in "xyzw"]]
        except KeyError as exc:
            raise DatasetError(f"{path}: location {loc} lacks column {exc}") from exc
    joints = tuple(h.split("/", 1)[1] for h in head if h.startswith("moment/"))
    moment = data[:, [col[f"moment/{j}"] for j in joints]] if joints else None
    return Recorded(
        rate_hz=float(1.0 / np.median(dt)),
        t_ns=np.round((t - t[0]) * 1e9).astype(np.int64),
        acc=acc,
        gyro=gyro,
        quat=quat,
        joints=joints,
        moment_nm=moment,
        info={"path": str(path)},
    )


def load_file(path: str, trial_index: int = 0) -> Recorded:
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError("file_path", path, "does not exist")
    if p.suffix.lower() == ".csv":
        return read_csv(p)
    from gait_estimator.sim.dataset import load_dataset, load_trial

    if p.is_dir():
        trials = load_dataset(p)
        if not 0 <= trial_index < len(trials):
            raise ConfigError("file_trial", trial_index, f"the dataset {p} has {len(trials)} trials")
        return from_trial(trials[trial_index])
    return from_trial(load_trial(p))


class _ThreadedSource:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0
        self.error: str | None = None

    def start(self, sink: Sink, reference: RefSink | None = None) -> None:
        self._sink, self._ref = sink, reference
        self._stop.clear()
        self._thread = threading.Thread(target=self._guarded, name=type(self).__name__, daemon=True)
        self._thread.start()

    def _guarded(self) -> None:
        try:
            self._run()
        except Exception as exc:
            self.error = repr(exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:  # pragma: no cover - abstract
        # Abstract: the serial and recorded sources override it with their read loop.
        raise TypeError(f"{type(self).__name__} must define _run")


class RecordedSource(_ThreadedSource):
    """Stream a ``Recorded`` in real time (sim and file backends)."""

    def __init__(
        self,
        rec: Recorded,
        locations: Sequence[str],
        *,
        loop: bool = True,
        duration_s: float = 0.0,
        clock_offset_s: float = 0.0,
        nan_location: str = "",
        nan_start_s: float = -1.0,
        nan_duration_s: float = 0.0,
    ) -> None:
        super().__init__()
        missing = [loc for loc in locations if loc not in rec.acc]
        if missing:
            raise ConfigError(
                "locations",
                list(locations),
                f"the recording has no IMU at {missing}; it has {sorted(rec.acc)}",
            )
        self.rec, self.locations = rec, tuple(locations)
        self.loop, self.duration_s, self.offset_ns = loop, duration_s, int(clock_offset_s * 1e9)
        self.nan = (nan_location, int(nan_start_s * 1e9), int((nan_start_s + nan_duration_s) * 1e9))
        # Pack per-sample arrays once: [N, L, 3|4] for speed.
        self._acc = np.stack([rec.acc[loc] for loc in self.locations], axis=1)
        self._gyro = np.stack([rec.gyro[loc] for loc in self.locations], axis=1)
        self._quat = np.stack([rec.quat[loc] for loc in self.locations], axis=1)
        self.period_ns = int(round(1e9 / rec.rate_hz))

    def _run(self) -> None:
        rec, n = self.rec, len(self.rec)
        start = time.time_ns() + 20_000_000  # first sample 20 ms from now
        end = start + int(self.duration_s * 1e9) if self.duration_s > 0 else None
        nan_loc, nan_a, nan_b = self.nan
        nan_idx = self.locations.index(nan_loc) if nan_loc in self.locations else -1
        k = 0  # sample counter since start (host-time grid)
        nanv = np.full(3, np.nan)
        while not self._stop.is_set():
            i = k % n
            if k >= n and not self.loop:
                break
            due = start + k * self.period_ns
            if end is not None and due >= end:
                break
            delay = (due - time.time_ns()) / 1e9
            if delay > 0:
                if self._stop.wait(delay):
                    break
            else:  # behind schedule (catching up after a stall): let the executor thread in
                time.sleep(0)
            stamp = due + self.offset_ns
            since = due - start
            for j, loc in enumerate(self.locations):
                if j == nan_idx and nan_a <= since < nan_b:
                    self._sink(loc, stamp, nanv, nanv, np.array([np.nan] * 4))
                else:
                    self._sink(loc, stamp, self._acc[i, j], self._gyro[i, j], self._quat[i, j])
            if self._ref is not None and rec.moment_nm is not None:
                self._ref(
                    due,
                    rec.moment_nm[i],
                    rec.joints,
                    float(rec.phase[i]) if rec.phase is not None else float("nan"),
                )
            self.published += 1
            k += 1


class SerialSource(_ThreadedSource):
    """Read ``serial_protocol`` frames from a serial port; stamps are the device's."""

    def __init__(self, port: str, baudrate: int, locations: Sequence[str]) -> None:
        super().__init__()
        import serial  # pyserial

        from gait_estimator.nodes.serial_protocol import FrameDecoder

        try:
            self.port = serial.Serial(port, baudrate, timeout=0.02)
        except (serial.SerialException, OSError) as exc:
            raise ConfigError("serial_port", port, f"cannot open: {exc}") from exc
        self.locations = tuple(locations)
        self.decoder = FrameDecoder()
        self.unknown_sensor = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.port.read(max(1, self.port.in_waiting or 1))
            except Exception as exc:
                self.error = f"serial read failed: {exc!r}"
                break
            if not data:
                continue
            for f in self.decoder.feed(data):
                if f.sensor_id >= len(self.locations):
                    self.unknown_sensor += 1
                    continue
                self._sink(self.locations[f.sensor_id], f.device_ns, f.acc, f.gyro, f.quat_xyzw)
                self.published += 1

    def stop(self) -> None:
        super().stop()
        try:
            self.port.close()
        except Exception:
            pass


def make_source(params, locations: Sequence[str], rate_hz: float, source: str):
    """Build the backend named ``source`` from validated driver parameters."""
    fault = {
        "nan_location": params.get("fault_nan_location", ""),
        "nan_start_s": params.get("fault_nan_start_s", -1.0),
        "nan_duration_s": params.get("fault_nan_duration_s", 0.0),
    }
    if source == "sim":
        rec = simulate(rate_hz, params.sim_loop_s, params.sim_speed_mps, params.sim_seed)
        return RecordedSource(
            rec,
            locations,
            loop=True,
            duration_s=params.duration_s,
            clock_offset_s=params.sim_clock_offset_s,
            **fault,
        )
    if source == "file":
        rec = load_file(params.file_path, params.file_trial)
        return RecordedSource(
            rec, locations, loop=params.file_loop, duration_s=params.duration_s, **fault
        )
    if source == "serial":
        return SerialSource(params.serial_port, params.serial_baudrate, locations)
    raise ConfigError("source", source, "must be one of ['sim', 'file', 'serial']")
