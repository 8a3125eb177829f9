"""The batched offline path equals the per-sample (online) path.

- ``simulate_synchronizer`` gives frame for frame what ``ImuSynchronizer`` emits when fed the same
  samples one by one (emission instant, stamps, validity, values, clock offsets, counters), on
  streams with jitter, transport bursts, drops, clock offsets and drift, a late start and a lost
  stream; and it declines (None) where its preconditions fail;
- ``EstimatorPipeline.push_rows`` gives the estimates of ``push_frame`` frame by frame (window
  mode batched, streaming per frame) and leaves the pipeline in the same state;
- ``replay_bag`` batched vs ``batch=False`` on the committed regression bags: identical stamps,
  validity, statuses, faults and counters; torques within TOL_NM (float32 batched inference);
- the direct JointTorque reader equals rosbags' generic deserialiser.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gait_estimator.conventions import IMU_LOCATIONS
from gait_estimator.core.pipeline import EstimatorPipeline
from gait_estimator.core.samples import ImuSample
from gait_estimator.core.synchronizer import ImuSynchronizer
from gait_estimator.replay.bag import BagReader, read_joint_torques
from gait_estimator.replay.batch import (
    ImuArrays,
    decode_joint_torque_cdr,
    read_reference,
    simulate_synchronizer,
)
from gait_estimator.replay.offline import ReplayOptions, evaluate, replay_bag

DATA = Path(__file__).parents[1] / "data" / "regression"
BAGS = ("walk_mcap", "walk_sqlite3")
# Batched vs single-window float32 inference, times the subject mass: measured <= 1e-5 N·m on the
# regression bags with the reference LSTM; the bound leaves room for other BLAS kernels.
TOL_NM = 1e-4


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    path = make_tiny_lstm_model(tmp_path_factory.mktemp("m") / "tiny.pt", window=20, hidden=8, seed=3)
    return load_model(path)


# --------------------------------------------------------------------------------------------
# synchronizer
# --------------------------------------------------------------------------------------------
def streams(seed: int, seconds: float = 3.0, **kw: float) -> ImuArrays:
    """7 IMUs at ~100 Hz with per-device clock offsets/drift, transport delays and their options."""
    rng = np.random.default_rng(seed)
    locs = tuple(IMU_LOCATIONS)
    logs, loc_i, stamps, vals = [], [], [], []
    for i, _ in enumerate(locs):
        n = int(seconds * kw.get("rate", 100.0))
        period = 1e9 / kw.get("rate", 100.0) * (1 + kw.get("drift_ppm", 0.0) * 1e-6 * (i - 3))
        dev = (np.arange(n) * period).astype(np.int64) + int(rng.integers(0, 5e6))
        dev += int(kw.get("device_offset_s", 0.0) * 1e9 * (i + 1))
        delay = rng.integers(0, int(kw.get("jitter_ms", 2.0) * 1e6) + 1, n)
        if kw.get("burst"):  # USB buffering: samples arrive in groups of 4, in order
            g = np.arange(n) // 4 * 4
            delay = delay[g] + (3 - np.arange(n) % 4) * int(period)
        host = (np.arange(n) * period).astype(np.int64) + 1_000_000_000 + delay
        keep = rng.random(n) >= kw.get("drop", 0.0)
        if i == 2 and kw.get("late_start_s"):
            keep &= host >= 1_000_000_000 + kw["late_start_s"] * 1e9
        if i == 4 and kw.get("lost_after_s"):
            keep &= host < 1_000_000_000 + kw["lost_after_s"] * 1e9
        if i == 5 and kw.get("pause"):  # the stream stops for 0.4 s and comes back
            keep &= (host < 1.8e9) | (host > 2.2e9)
        w = 2 * np.pi * np.arange(n) / 100.0 + i
        ang = 0.5 * np.sin(w)
        v = np.stack(
            [np.sin(w), np.cos(w), 9.8 + np.sin(2 * w), np.cos(w), 0.5 * np.sin(w), 0.1 * w % 1]
            + [0 * w, np.sin(ang / 2), 0 * w, np.cos(ang / 2)],
            axis=1,
        )
        logs.append(host[keep])
        loc_i.append(np.full(keep.sum(), i))
        stamps.append(dev[keep] if kw.get("device_clock", True) else host[keep] - delay[keep])
        vals.append(v[keep])
    log = np.concatenate(logs)
    order = np.argsort(log, kind="stable")
    return ImuArrays(
        locs,
        log[order],
        np.concatenate(loc_i)[order],
        np.concatenate(stamps)[order],
        np.concatenate(vals)[order],
    )


def per_sample_frames(sync: ImuSynchronizer, imu: ImuArrays, final: int) -> list[tuple]:
    """The object driven as the nodes drive it: ``core.clock.DataClock`` (polls at data time),
    then the timer's poll at host time ``final``."""
    from gait_estimator.core.clock import DataClock

    clock = DataClock(sync)
    out = []
    for i in range(len(imu)):
        v = imu.values[i]
        sample = ImuSample(imu.locations[imu.loc[i]], int(imu.stamp_ns[i]), v[0:3], v[3:6], v[6:10])
        frames = clock.push(sample, int(imu.log_ns[i]))
        out += [(i, f, sync.clock_offset_ns(imu.locations[0]) or 0) for f in frames]
    out += [(len(imu), f, sync.clock_offset_ns(imu.locations[0]) or 0) for f in sync.poll(final)]
    return out


CASES = {
    "clean": {},
    "jitter_drops": {"jitter_ms": 8.0, "drop": 0.05},
    "bursts_offsets_drift": {"burst": True, "jitter_ms": 1.0, "device_offset_s": 3.0, "drift_ppm": 200.0},
    "late_start_and_loss": {"late_start_s": 0.7, "lost_after_s": 1.5},
    "pause": {"pause": True, "jitter_ms": 4.0},
    "host_clock": {"device_clock": False, "jitter_ms": 6.0},
    "fast_imus": {"rate": 250.0, "jitter_ms": 3.0},
}


@pytest.mark.parametrize("offset", [True, False], ids=["clock_offset", "stamps_as_host"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_synchronizer_closed_form_equals_the_object(case: str, offset: bool) -> None:
    imu = streams(7, **{"device_clock": offset, **CASES[case]})
    make = lambda: ImuSynchronizer(IMU_LOCATIONS, 100.0, 30_000_000, 100_000_000, offset)  # noqa: E731
    final = int(imu.log_ns[-1]) + 200_000_000
    fast = simulate_synchronizer(make(), imu, final)
    ref_sync = make()
    ref = per_sample_frames(ref_sync, imu, final)
    odd = {k: ref_sync.counters[k] for k in ("late", "reordered", "duplicates", "rejected", "overflow")}
    assert not any(odd.values()), (case, odd)  # in-order streams: the closed form must apply
    assert fast is not None, case
    assert len(fast) == len(ref) > 100
    assert fast.poll_index.tolist() == [i for i, _, _ in ref]
    assert fast.stamp_ns.tolist() == [f.stamp_ns for _, f, _ in ref]
    assert fast.sensor_offset_ns.tolist() == [o for _, _, o in ref]
    assert np.array_equal(fast.valid, np.stack([f.valid for _, f in [(0, f) for _, f, _ in ref]]))
    for name, attr in (("acc", "acc"), ("gyro", "gyro"), ("quat", "quat_xyzw")):
        want = np.stack([getattr(f, attr) for _, f, _ in ref])
        assert np.abs(getattr(fast, attr) - want).max() <= 1e-12, name
    assert fast.counters == ref_sync.counters
    if case in ("late_start_and_loss", "pause"):
        assert fast.counters["invalid_frames"] > 0
    if case == "jitter_drops":
        assert fast.counters["dropped"] > 0 and fast.counters["held"] >= 0


def test_synchronizer_closed_form_declines_outside_its_preconditions() -> None:
    imu = streams(3)
    sync = ImuSynchronizer(IMU_LOCATIONS, 100.0)
    dup = ImuArrays(imu.locations, imu.log_ns.copy(), imu.loc, imu.stamp_ns.copy(), imu.values)
    first = np.flatnonzero(dup.loc == 1)[:2]
    dup.stamp_ns[first[1]] = dup.stamp_ns[first[0]]  # a duplicated stamp
    assert simulate_synchronizer(sync, dup, None) is None
    bad = ImuArrays(imu.locations, imu.log_ns, imu.loc, imu.stamp_ns, imu.values.copy())
    bad.values[10, 6:10] = 0.0  # not a quaternion: the object rejects it
    assert simulate_synchronizer(sync, bad, None) is None
    late = streams(3, late_start_s=0.5, jitter_ms=2.0)
    i2 = np.flatnonzero(late.loc == 2)
    late.log_ns[i2] += 100_000_000  # stream 2's first sample arrives after its frames went out
    order = np.argsort(late.log_ns, kind="stable")
    late = ImuArrays(
        late.locations, late.log_ns[order], late.loc[order], late.stamp_ns[order], late.values[order]
    )
    # Polled at data time, a stream that starts late is no late sample (its first stamp is
    # behind the others' by less than the latency): the closed form may apply, and then it must
    # be exactly the object's answer.
    make = lambda: ImuSynchronizer(IMU_LOCATIONS, 100.0, estimate_clock_offset=False)  # noqa: E731
    final = int(late.log_ns[-1]) + 200_000_000
    fast = simulate_synchronizer(make(), late, final)
    ref = per_sample_frames(make(), late, final)
    if fast is not None:
        assert fast.stamp_ns.tolist() == [f.stamp_ns for _, f, _ in ref]
        assert fast.poll_index.tolist() == [i for i, _, _ in ref]
        assert np.array_equal(fast.valid, np.stack([f.valid for _, f, _ in ref]))


# --------------------------------------------------------------------------------------------
# pipeline
# --------------------------------------------------------------------------------------------
def frame_rows(pipe: EstimatorPipeline, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = len(pipe.metadata.input_channels)
    stamps = 5_000_000_000 + np.arange(n, dtype=np.int64) * 10_000_000
    rows = np.asarray(pipe.metadata.input_mean) + rng.standard_normal((n, c)) * np.asarray(
        pipe.metadata.input_std
    )
    valid = np.ones(n, dtype=bool)
    valid[[5, 60, 61, 140]] = False  # before start-up, then inside
    rows[100, 3] = np.nan  # a non-finite row with valid IMUs: its windows are invalid
    return stamps, rows, valid


def one_by_one(pipe: EstimatorPipeline, stamps, rows, valid) -> list:
    out = []
    for i in range(len(stamps)):
        pipe.counters["frames"] += 1
        step = pipe._window if pipe.mode == "window" else pipe._streaming
        out += [(i, e) for e in step(int(stamps[i]), rows[i], bool(valid[i]))]
    return out


@pytest.mark.parametrize("mode", ["window", "streaming"])
@pytest.mark.parametrize("stride", [1, 3])
def test_push_rows_equals_frame_by_frame(tmp_path: Path, mode: str, stride: int) -> None:
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    path = make_tiny_lstm_model(tmp_path / "m.pt", window=20, hidden=8, seed=4, stride=stride)
    # one runtime each: the streaming state lives in the runtime
    a = EstimatorPipeline(load_model(path), subject_mass_kg=70.0, mode=mode)
    b = EstimatorPipeline(load_model(path), subject_mass_kg=70.0, mode=mode)
    stamps, rows, valid = frame_rows(a, 300, 1)
    got = a.push_rows(stamps[:250], rows[:250], valid[:250], batch_size=16)
    want = one_by_one(b, stamps[:250], rows[:250], valid[:250])
    assert got.frame_index.tolist() == [i for i, _ in want]
    assert got.stamp_ns.tolist() == [e.stamp_ns for _, e in want]
    assert got.valid.tolist() == [e.valid for _, e in want]
    assert 0 < got.valid.sum() < len(got)
    assert np.abs(got.torque_nm - np.stack([e.torque_nm for _, e in want])).max() <= TOL_NM
    assert a.counters == b.counters
    # The pipeline is left as frame by frame: the next frames give the same estimates.
    tail_a = one_by_one(a, stamps[250:], rows[250:], valid[250:])
    tail_b = one_by_one(b, stamps[250:], rows[250:], valid[250:])
    assert [(i, e.stamp_ns, e.valid) for i, e in tail_a] == [(i, e.stamp_ns, e.valid) for i, e in tail_b]
    assert len(tail_a) > 0
    for (_, ea), (_, eb) in zip(tail_a, tail_b, strict=True):
        assert np.abs(ea.torque_nm - eb.torque_nm).max() <= TOL_NM


def test_frame_rows_equal_the_feature_extractor(model) -> None:
    imu = streams(5, jitter_ms=3.0, lost_after_s=2.0)
    frames = simulate_synchronizer(ImuSynchronizer(IMU_LOCATIONS, 100.0), imu, None)
    assert frames is not None
    pipe = EstimatorPipeline(model, subject_mass_kg=70.0)
    rows, valid = pipe.frame_rows(frames.locations, frames.acc, frames.gyro, frames.quat_xyzw, frames.valid)
    from gait_estimator.core.samples import SyncFrame

    for k in range(0, len(frames), 7):
        f = SyncFrame(
            int(frames.stamp_ns[k]),
            frames.locations,
            frames.acc[k],
            frames.gyro[k],
            frames.quat_xyzw[k],
            frames.valid[k],
        )
        row, ok = pipe.features.row(f)
        assert ok == valid[k]
        assert np.abs(row - rows[k]).max() <= 1e-12
    assert valid.any() and not valid.all()


# --------------------------------------------------------------------------------------------
# bags
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bag", BAGS)
def test_batched_replay_equals_per_sample_replay(bag: str, model) -> None:
    fast = replay_bag(DATA / bag, model)
    slow = replay_bag(DATA / bag, model, ReplayOptions(batch=False))
    assert fast.path == "batched" and fast.path_reason == ""
    assert slow.path == "per-sample"
    for name in ("est_stamp_ns", "est_sensor_ns", "est_log_ns", "est_valid", "cmd_valid", "cmd_status"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert len(fast.est_stamp_ns) > 400 and fast.est_valid.sum() > 400
    est_diff = np.abs(fast.est_nm - slow.est_nm).max()
    cmd_diff = np.abs(fast.cmd_nm - slow.cmd_nm).max()
    assert est_diff <= TOL_NM and cmd_diff <= TOL_NM, (est_diff, cmd_diff)
    assert fast.counters == slow.counters
    assert fast.cmd_faults == slow.cmd_faults
    a, b = evaluate(fast), evaluate(slow)
    for joint, m in a["metrics"].items():
        for metric, v in m.items():
            assert v == pytest.approx(b["metrics"][joint][metric], abs=1e-6)
    assert fast.reference is not None and slow.reference is not None
    assert np.array_equal(fast.reference.torque_nm, slow.reference.torque_nm)
    assert np.array_equal(fast.reference.stamp_ns, slow.reference.stamp_ns)
    assert fast.reference.subject_mass_kg == slow.reference.subject_mass_kg


def test_odd_bag_timing_takes_the_per_sample_path(tmp_path: Path, model) -> None:
    from test_replay_bag import synthetic_trial

    from gait_estimator.replay.trial_bag import write_trial_bag

    trial = synthetic_trial(seconds=2.0)
    t = trial.time_ns.copy()
    t[50] = t[49]  # a duplicated stamp on every IMU
    trial.time_ns = t
    bag = write_trial_bag(tmp_path / "dup", trial, "mcap")
    result = replay_bag(bag, model)
    assert result.path == "per-sample" and "imu" in result.path_reason
    assert result.counters["duplicates"] == len(IMU_LOCATIONS)


@pytest.mark.parametrize("bag", BAGS)
def test_direct_joint_torque_reader_equals_rosbags(bag: str) -> None:
    from gait_estimator.conventions import JOINTS

    with BagReader(DATA / bag) as reader:
        n = 0
        for topic, msgtype, _, data in reader.raw_messages(["gait/torque_reference"]):
            got = decode_joint_torque_cdr(data)
            msg = reader.decode(data, msgtype, topic)
            assert got is not None
            stamp, _, torque, valid, mass, phase = got
            assert stamp == msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            assert torque == list(msg.torque) and valid == msg.valid and mass == msg.subject_mass
            assert phase == msg.gait_phase or (np.isnan(phase) and np.isnan(msg.gait_phase))
            n += 1
        assert n > 100
        order = tuple(reversed(JOINTS))
        fast = read_reference(reader, "gait/torque_reference", order)
        slow = read_joint_torques(reader, "gait/torque_reference", order)
    assert fast.joints == slow.joints == order
    for name in ("log_ns", "stamp_ns", "torque_nm", "valid"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert np.array_equal(fast.gait_phase, slow.gait_phase, equal_nan=True)
    assert fast.subject_mass_kg == slow.subject_mass_kg > 0
    assert decode_joint_torque_cdr(b"\x00\x01\x00\x00" + bytes(8)) is None


@pytest.mark.parametrize("bag", BAGS)
def test_imu_arrays_equal_iter_imu(bag: str) -> None:
    from gait_estimator.replay.bag import imu_source, iter_imu
    from gait_estimator.replay.batch import read_imu_arrays

    with BagReader(DATA / bag) as reader:
        source = imu_source(reader)
        records = list(iter_imu(reader, source))
        ref: dict[str, list] = {"/gait/torque_reference": []}
        imu = read_imu_arrays(reader, source, IMU_LOCATIONS, also=ref)
    assert len(imu) == len(records) > 1000
    assert imu.log_ns.tolist() == [r.log_ns for r in records]
    assert imu.stamp_ns.tolist() == [r.stamp_ns for r in records]
    assert [IMU_LOCATIONS[i] for i in imu.loc] == [r.location for r in records]
    want = np.stack([np.concatenate([r.acc, r.gyro, r.quat_xyzw]) for r in records])
    assert np.array_equal(imu.values, want)
    assert len(ref["/gait/torque_reference"]) > 100  # collected in the same pass
