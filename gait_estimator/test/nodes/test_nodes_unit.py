"""Node layer without spinning: parameter schema and YAML validation, serial frame protocol and
the serial backend through a pseudo-terminal, message conversion helpers
(launch files: test_launch_files.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gait_estimator.core.params import SCHEMAS, load_config, validate_node_params
from gait_estimator.errors import ConfigError
from gait_estimator.nodes import conversion, model_files, params, serial_protocol

PKG = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parents[1] / "data"


# -- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pipeline.yaml", "fused.yaml"])
def test_shipped_configs_are_valid(name):
    cfg = load_config(PKG / "config" / name)
    assert cfg
    for node, values in cfg.items():
        assert set(values) == {s.name for s in SCHEMAS[node]}


def test_invalid_config_is_rejected_naming_parameter_and_rule():
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "invalid_config.yaml")
    msg = str(info.value)
    assert "torque_estimator.subject_mass_kg" in msg and "double" in msg and "invalid_config.yaml" in msg


@pytest.mark.parametrize(
    ("node", "values", "fragment"),
    [
        ("torque_command", {"watchdog_s": 0.001}, "torque_command.watchdog_s"),
        ("torque_command", {"gains": [0.1, 0.2]}, "1 or len(joints)"),
        ("imu_driver", {"source": "usb"}, "one of ['sim', 'file', 'serial']"),
        ("imu_driver", {"source": "serial"}, "serial_port"),
        ("imu_synchronizer", {"locations": ["pelvis", "pelvis"]}, "repeat"),
        ("torque_estimator", {"bogus": 1}, "unknown parameter"),
        ("lifecycle_manager", {"autostart": "yes"}, "bool"),
    ],
)
def test_rules(node, values, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        validate_node_params(node, values)
    assert fragment in str(info.value)


def test_every_parameter_has_a_description_and_a_valid_default():
    for node, schema in SCHEMAS.items():
        for spec in schema:
            assert spec.description, (node, spec.name)
            if spec.name in (
                "file_path",
                "serial_port",
                "model_path",
                "frame_prefix",
                "fault_nan_location",
                "command_node",
            ):
                continue
            spec.check(spec.default, node)


def test_descriptor_carries_type_range_and_rule():
    spec = next(s for s in params.COMMAND if s.name == "watchdog_s")
    d = params._descriptor(spec)
    assert d.floating_point_range[0].from_value == spec.min
    assert "in [" in d.additional_constraints and d.description


# -- serial protocol ----------------------------------------------------------------------------


def test_crc_check_value():
    assert serial_protocol.crc16_ccitt(b"123456789") == 0x29B1


def test_frame_roundtrip_resync_and_checksum():
    f1 = serial_protocol.encode_frame(2, 7, 123456789, (1, 2, 3), (0.1, 0.2, 0.3), (0, 0, 0, 1))
    f2 = serial_protocol.encode_frame(2, 9, 123466789, (1, 2, 4), (0.1, 0.2, 0.3), (0, 0, 0, 1))
    bad = bytearray(f1)
    bad[20] ^= 0xFF
    assert len(f1) == serial_protocol.FRAME_SIZE == 58
    dec = serial_protocol.FrameDecoder()
    stream = b"\x00\xa5garbage" + bytes(bad) + f1 + f2
    out = []
    for i in range(0, len(stream), 5):  # byte-wise delivery in chunks
        out += dec.feed(stream[i : i + 5])
    assert [f.seq for f in out] == [7, 9]
    assert out[0].device_ns == 123456789 and np.allclose(out[1].acc, (1, 2, 4))
    assert dec.bad_checksum == 1 and dec.lost == 1 and dec.skipped_bytes > 0


def test_serial_backend_through_a_pty():
    from gait_estimator.nodes.imu_sources import SerialSource

    master, slave = os.openpty()
    try:
        src = SerialSource(os.ttyname(slave), 115200, ("pelvis", "thigh_l"))
        got = []
        src.start(lambda loc, stamp, acc, gyro, quat: got.append((loc, stamp, acc.copy())))
        for k in range(20):
            os.write(
                master,
                serial_protocol.encode_frame(k % 2, k // 2, 1000 + k, (k, 0, 9.8), (0, 0, 0), (0, 0, 0, 1)),
            )
        os.write(master, serial_protocol.encode_frame(5, 0, 1, (0, 0, 0), (0, 0, 0), (0, 0, 0, 1)))
        deadline = time.monotonic() + 5
        # The unknown-sensor frame is written last: wait for it to be read too, not just the 20.
        while (len(got) < 20 or src.unknown_sensor < 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        src.stop()
    finally:
        os.close(master)
        os.close(slave)
    assert len(got) == 20
    assert got[3][0] == "thigh_l" and got[3][1] == 1003 and got[3][2][0] == 3
    assert src.unknown_sensor == 1


# -- conversion helpers -------------------------------------------------------------------------


def test_imu_and_frame_conversion_roundtrip():
    from sensor_msgs.msg import Imu

    from gait_estimator.core.samples import SyncFrame

    m = conversion.fill_imu(
        Imu(), 1_500_000_123, "imu_pelvis", (1, 2, 3), (4, 5, 6), (0, 0, 0.6, 0.8), (0.1, 0.2, 0.3)
    )
    stamp, values = conversion.imu_values(m)
    assert stamp == 1_500_000_123 and values == [1, 2, 3, 4, 5, 6, 0, 0, 0.6, 0.8]
    assert m.linear_acceleration_covariance[0] == 0.3 and m.orientation_covariance[8] == 0.1
    frame = SyncFrame(
        42,
        ("a", "b"),
        np.arange(6.0).reshape(2, 3),
        np.ones((2, 3)),
        np.tile([0, 0, 0, 1.0], (2, 1)),
        np.array([True, False]),
    )
    back = conversion.msg_to_frame(conversion.frame_to_msg(frame, 100.0))
    assert back.stamp_ns == 42 and back.locations == ("a", "b")
    assert np.array_equal(back.acc, frame.acc) and list(back.valid) == [True, False]
    assert np.array_equal(back.gyro, frame.gyro) and np.array_equal(back.quat_xyzw, frame.quat_xyzw)
    bad = conversion.frame_to_msg(frame, 100.0)
    bad.imus = bad.imus[:1]  # one Imu for two locations: the pairing is unknown
    with pytest.raises(ValueError, match="1 imus for 2 locations"):
        conversion.msg_to_frame(bad)


def test_window_and_torque_conversion():
    w = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    msg = conversion.window_to_msg(w, 7, ["a/x", "a/y", "a/z"], 100.0, True)
    back, stamp, valid = conversion.msg_to_window(msg)
    assert np.array_equal(back, w) and stamp == 7 and valid
    m = conversion.joint_torque_msg(9, 1, ["j1", "j2"], [1.0, np.nan])
    stamp, torque, status, valid = conversion.joint_torque_arrays(m)
    # one non-finite joint makes the message invalid, and an invalid message carries 0.0 everywhere
    assert torque.tolist() == [0.0, 0.0] and status.tolist() == [3, 3] and not valid


# -- launch files: test_launch_files.py ----------------------------------------------------------


def test_run_rejects_an_invalid_config():
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "gait-estimator"),
            "run",
            "--config",
            str(DATA / "invalid_config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "subject_mass_kg" in r.stderr and "double" in r.stderr


# -- synchronizer at data time (imu_synchronizer.DataClock) -------------------------------------

LOCS7 = ("pelvis", "thigh_l", "thigh_r", "shank_l", "shank_r", "foot_l", "foot_r")


def _sample(loc, stamp, k):
    from gait_estimator.core.samples import ImuSample

    w = 0.1 * k
    return ImuSample(
        loc,
        stamp,
        np.array([np.sin(w), 0.0, 9.81]),
        np.array([0.0, np.cos(w), 0.0]),
        np.array([0.0, 0.0, 0.0, 1.0]),
    )


def _sync(offset: bool):
    from gait_estimator.core.synchronizer import ImuSynchronizer

    return ImuSynchronizer(
        LOCS7, 100.0, latency_ns=30_000_000, max_gap_ns=100_000_000, estimate_clock_offset=offset
    )


def _starved_run(clock_push, period=10_000_000, n=300, stall_at=100, stall_ns=400_000_000):
    """7 IMUs at 100 Hz, delivered on time except one 400 ms stall of the consumer, after which the
    queued samples arrive in a burst (1 ms apart per tick): what a starved process sees."""
    frames = []
    t_start = 1_000_000_000_000
    lag = 0
    for k in range(n):
        stamp = t_start + k * period
        if k == stall_at:
            lag = stall_ns
        lag = max(100_000, lag - period + 1_000_000) if lag > 100_000 else 100_000
        for j, loc in enumerate(LOCS7):
            frames += clock_push(_sample(loc, stamp, k), stamp + lag + 10_000 * j)
    return frames


@pytest.mark.parametrize("offset", [False, True])
def test_data_clock_a_starved_consumer_makes_no_invalid_frame(offset):
    from gait_estimator.core.clock import DataClock

    clock = DataClock(_sync(offset))
    frames = _starved_run(clock.push)
    assert len(frames) >= 290
    # (with estimated offsets the grid starts at the earliest stream's first sample, so the very
    # first frame may lack the others: before the first valid estimate, which the pipeline drops)
    first = next(i for i, f in enumerate(frames) if f.valid.all())
    assert first <= 1
    assert all(f.valid.all() for f in frames[first:]), "a scheduling stall produced invalid frames"
    stamps = np.array([f.stamp_ns for f in frames])
    assert np.all(np.diff(stamps) == 10_000_000)
    # the root cause it removes: polling at host time emits frames for samples still queued
    host = _sync(offset)

    def host_push(sample, recv):
        host.push(sample, recv)
        return host.poll(recv)

    bad = [f for f in _starved_run(host_push)[first + 1 :] if not f.valid.all()]
    assert len(bad) >= 10, "host-time polling marks frames invalid during the stall"


def test_data_clock_emits_a_frame_when_the_last_imu_of_its_stamp_arrives():
    from gait_estimator.core.clock import DataClock

    clock = DataClock(_sync(False))
    t0 = 5_000_000_000
    emitted_at = {}
    for k in range(20):
        stamp = t0 + k * 10_000_000
        for j, loc in enumerate(LOCS7):
            for f in clock.push(_sample(loc, stamp, k), stamp + 50_000 + 1_000 * j):
                emitted_at[f.stamp_ns] = (k, j)
    # after start-up (grid chosen one latency after the first sample) every frame goes out with
    # the 7th IMU sample of its own stamp: no waiting for the next sample or the latency
    steady = {s: kj for s, kj in emitted_at.items() if s >= t0 + 50_000_000}
    assert len(steady) >= 14
    for s, (k, j) in steady.items():
        assert s == t0 + k * 10_000_000 and j == len(LOCS7) - 1


def test_data_clock_a_stalled_imu_yields_invalid_frames_within_latency_plus_max_gap():
    from gait_estimator.core.clock import DataClock

    clock = DataClock(_sync(True))
    t0 = 5_000_000_000
    frames = []
    for k in range(60):
        stamp = t0 + k * 10_000_000
        for loc in LOCS7:
            if loc == "shank_r" and k >= 30:
                continue  # this IMU died at k = 30
            frames += clock.push(_sample(loc, stamp, k), stamp + 200_000)
    last_good = t0 + 29 * 10_000_000
    invalid = [f for f in frames if not f.valid.all()]
    assert invalid, "a dead IMU must produce invalid frames (-> latched fault downstream)"
    assert invalid[0].stamp_ns - (last_good + 200_000) <= 100_000_000 + 10_000_000  # host time: + offset
    assert not invalid[0].valid[LOCS7.index("shank_r")] and invalid[0].valid.sum() == 6
    # frames kept flowing on the other IMUs' data (bounded latency: 30 ms behind the newest)
    assert frames[-1].stamp_ns >= t0 + 59 * 10_000_000 - 30_000_000 - 10_000_000


# -- inference_mode: streaming == window for the default TCN ------------------------------------

STREAM_TOL_NM_KG = 1e-4  # streaming vs window estimates of the default TCN (float32 rounding)


@pytest.fixture(scope="module")
def default_tcn_trial():
    """The shipped default model (a streaming-capable TCN) and 6 s of simulated walking."""
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.sim.generate import sample_subject, simulate_trial

    model = load_model(model_files.default_model_path())
    assert model.metadata.streaming and model.metadata.stride == 1
    subject = sample_subject(np.random.default_rng(4))
    trial = simulate_trial(subject, 6.0, 1.3, model.metadata.sample_rate_hz, seed=4)
    return model, trial


def _trial_samples(trial, locations, drop=None):
    """(ImuSample, receive_ns) in stamp order; ``drop`` = (location, first, last) index range
    of one IMU's samples left out (a dropout the synchronizer marks invalid)."""
    from gait_estimator.core.samples import ImuSample

    out = []
    for i, t in enumerate(trial.time_ns):
        for loc in locations:
            if drop and loc == drop[0] and drop[1] <= i < drop[2]:
                continue
            d = trial.imu[loc]
            out.append((ImuSample(loc, int(t), d["acc"][i], d["gyro"][i], d["quat"][i]), int(t)))
    return out


def test_streaming_pipeline_equals_window_mode_for_the_default_tcn(default_tcn_trial):
    """EstimatorPipeline in streaming mode (the nodes' ``inference_mode: streaming``) gives the
    window-mode estimates of the default TCN at every stamp where both are valid, also after a
    sensor dropout (the stream restarts); measured max abs diff ~1e-6 N·m/kg."""
    from gait_estimator.core.pipeline import EstimatorPipeline
    from gait_estimator.core.synchronizer import SyncConfig

    model, trial = default_tcn_trial
    md = model.metadata
    mass = 70.0
    results = {}
    for mode in ("window", "streaming"):
        pipe = EstimatorPipeline(model, SyncConfig(estimate_clock_offset=False), mass, mode)
        est = {}
        for sample, rx in _trial_samples(trial, md.locations, drop=(md.locations[0], 250, 280)):
            for e in pipe.push_sample(sample, rx):
                est[e.stamp_ns] = (e.valid, e.torque_nm)
        results[mode] = est
    win = {s: y for s, (v, y) in results["window"].items() if v}
    stream = {s: y for s, (v, y) in results["streaming"].items() if v}
    both = sorted(set(win) & set(stream))
    assert len(both) > 400, (len(win), len(stream))
    # The dropout: both modes are invalid there; streaming needs a whole window of valid frames
    # after it (the stream restarts), window mode too (windows holding invalid rows are invalid).
    assert set(stream) == set(win)
    assert any(not v for v, _ in results["streaming"].values())
    diff = max(float(np.max(np.abs(win[s] - stream[s]))) for s in both) / mass
    print(f"default TCN: streaming vs window max abs diff {diff:.2e} N·m/kg over {len(both)} estimates")
    assert diff <= STREAM_TOL_NM_KG
    scale = max(float(np.max(np.abs(win[s]))) for s in both) / mass
    assert scale > 0.3  # real torques (N·m/kg), not a trivially equal zero output


def test_streaming_is_refused_for_a_window_only_model(tmp_path):
    from gait_estimator.runtime.model_file import read_metadata
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    md = read_metadata(make_tiny_lstm_model(tmp_path / "w.pt", window=20, hidden=8, seed=3, streaming=False))
    assert params.check_inference_mode("gait_pipeline", "window", md) == "window"
    with pytest.raises(ConfigError) as e:
        params.check_inference_mode("torque_estimator", "streaming", md, tmp_path / "w.pt")
    msg = str(e.value)
    assert "torque_estimator.inference_mode" in msg and "streaming" in msg and "w.pt" in msg
    with pytest.raises(ConfigError, match="gait_pipeline.inference_mode"):
        validate_node_params("gait_pipeline", {"inference_mode": "batch"})
    for name in ("pipeline.yaml", "fused.yaml"):
        cfg = load_config(PKG / "config" / name)
        node = "gait_pipeline" if name == "fused.yaml" else "torque_estimator"
        assert cfg[node]["inference_mode"] == "streaming"


def test_model_stage_streaming_on_feature_windows_equals_window_mode(default_tcn_trial):
    """The distributed estimator's model stage (``core.model_stage.ModelStage.push_window``, the
    object the fused pipeline runs per row) steps only the new rows of each FeatureWindow: every
    estimate equals ``predict_window`` of that window, across dropped windows (caught up from the
    rows the next window holds), an invalid stretch and a stamp jump (both restart the stream)."""
    from gait_estimator.core.features import FeatureExtractor
    from gait_estimator.core.model_stage import ModelStage
    from gait_estimator.core.samples import SyncFrame
    from gait_estimator.core.windowing import WindowBuffer

    model, trial = default_tcn_trial
    md = model.metadata
    locs = md.locations
    extractor, buf = FeatureExtractor(md), WindowBuffer(md)
    windows = []  # (stamp, window float32, valid) as the windowing node publishes them
    n = len(trial.time_ns)
    for i in range(n):
        stamp = int(trial.time_ns[i]) + (10**9 if i >= 450 else 0)  # a 1 s stamp jump at 450
        ok = not 300 <= i < 305  # an invalid stretch (sensor stale)
        frame = SyncFrame(
            stamp,
            locs,
            np.stack([trial.imu[loc]["acc"][i] for loc in locs]),
            np.stack([trial.imu[loc]["gyro"][i] for loc in locs]),
            np.stack([trial.imu[loc]["quat"][i] for loc in locs]),
            np.full(len(locs), ok),
        )
        row, valid = extractor.row(frame)
        if buf.push(row, stamp, valid) or not valid:
            windows.append((stamp, buf.window().copy(), valid and buf.valid))
    dropped = {100, 101, 102, 200, 350}  # messages lost on the way (windows, not frames)
    stage = ModelStage(model, "streaming", scale=1.0)
    diffs, invalid = [], 0
    for k, (stamp, w, valid) in enumerate(windows):
        if k in dropped:
            continue
        (est,) = stage.push_window(stamp, w, valid)
        assert est.stamp_ns == stamp
        if not valid:
            invalid += 1
            assert not est.valid and not est.torque_nm.any()
            continue
        assert est.valid
        diffs.append(float(np.max(np.abs(est.torque_nm - model.predict_window(w)))))
    # restarts: after the invalid stretch and after the stamp jump (the first window starts it)
    assert stage.counters["stream_resets"] == 2, stage.counters
    assert invalid >= 5 and len(diffs) > 400  # the invalid rows stay in the window for T frames
    print(f"model stage streaming vs window: max abs diff {max(diffs):.2e} N·m/kg over {len(diffs)} windows")
    assert max(diffs) <= STREAM_TOL_NM_KG
