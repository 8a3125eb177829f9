"""Bag I/O on rosbags: mcap and sqlite3 round trips, the fast Imu decoder, bad bags.

Every bad bag must end in a ``BagError`` naming the path (or, for timing problems, a counted
and reported event), never in a library exception or a traceback.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gait_estimator.conventions import IMU_LOCATIONS, JOINTS
from gait_estimator.errors import BagError
from gait_estimator.replay import bag as bagio
from gait_estimator.replay import convert
from gait_estimator.replay.offline import ReplayOptions, evaluate, replay_bag
from gait_estimator.replay.trial_bag import write_trial_bag
from gait_estimator.replay.typestore import IMU, JOINT_TORQUE, make_typestore

STORAGES = ("mcap", "sqlite3")
RATE = 100.0


def synthetic_trial(
    seconds: float = 4.0, rate: float = RATE, seed: int = 0, mass: float = 72.5
) -> SimpleNamespace:
    """A gait-like trial (periodic IMU signals, unit quaternions, torques) with the Trial fields."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    imu = {}
    for k, loc in enumerate(IMU_LOCATIONS):
        w = 2 * np.pi * t + 0.4 * k
        ang = 0.4 * np.sin(w)
        imu[loc] = {
            "acc": np.stack([1.5 * np.sin(w), 0.3 * np.cos(2 * w), 9.81 + 2 * np.sin(w + 0.5)], 1)
            + 0.01 * rng.standard_normal((n, 3)),
            "gyro": np.stack([0.2 * np.cos(w), 0.1 * np.sin(w), 2 * np.sin(w + 1)], 1),
            "quat": np.stack([np.zeros(n), np.sin(ang / 2), np.zeros(n), np.cos(ang / 2)], 1),
        }
    moment = np.stack([mass * 0.8 * np.sin(2 * np.pi * t + 0.3 * j) for j in range(len(JOINTS))], 1)
    return SimpleNamespace(
        trial_id=f"synthetic-{seed}",
        subject={"id": "S0", "mass_kg": mass},
        time_ns=(np.arange(n) * int(1e9 / rate)).astype(np.int64),
        imu=imu,
        joint_names=JOINTS,
        moment_nm=moment,
        phase_r=(t % 1.0),
    )


@pytest.fixture(scope="module")
def trial() -> SimpleNamespace:
    return synthetic_trial()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory):
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    path = make_tiny_lstm_model(tmp_path_factory.mktemp("model") / "tiny.pt", window=20, hidden=8, seed=3)
    return load_model(path)


@pytest.fixture(scope="module", params=STORAGES)
def trial_bag(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, trial) -> Path:
    return write_trial_bag(
        tmp_path_factory.mktemp("bags") / f"trial_{request.param}",
        trial,
        request.param,
        start_ns=1_700_000_000_000_000_000,
    )


# --- fast decoder --------------------------------------------------------------------------------
@pytest.mark.parametrize("frame_id", ["", "a", "abc", "abcd", "imu_pelvis", "imu_thigh_l_extra"])
@pytest.mark.parametrize("little_endian", [True, False])
def test_fast_imu_decoder_matches_rosbags(frame_id: str, little_endian: bool) -> None:
    store = make_typestore()
    rng = np.random.default_rng(len(frame_id))
    msg = convert.imu_message(
        int(rng.integers(0, 2**60)),
        frame_id,
        rng.normal(size=3),
        rng.normal(size=3),
        rng.normal(size=4),
        acc_covariance=rng.normal(size=9),
        store=store,
    )
    data = store.serialize_cdr(msg, IMU, little_endian=little_endian)
    fast = bagio.decode_imu_cdr(data)
    assert fast is not None
    stamp, acc, gyro, quat = convert.imu_arrays(store.deserialize_cdr(data, IMU))
    assert fast[0] == stamp and fast[1] == frame_id
    np.testing.assert_array_equal(fast[2], acc)
    np.testing.assert_array_equal(fast[3], gyro)
    np.testing.assert_array_equal(fast[4], quat)


def test_fast_imu_decoder_refuses_malformed_bytes() -> None:
    assert bagio.decode_imu_cdr(b"\x00\x01\x00\x00\x01") is None
    store = make_typestore()
    data = bytes(store.serialize_cdr(convert.imu_message(5, "x", [1, 2, 3], [4, 5, 6], [0, 0, 0, 1]), IMU))
    assert bagio.decode_imu_cdr(data[:-8]) is None  # truncated: the generic path reports it


# --- round trips ---------------------------------------------------------------------------------
def test_round_trip_imu_and_reference(trial_bag: Path, trial) -> None:
    with bagio.BagReader(trial_bag) as reader:
        info = reader.info()
        assert info.storage == trial_bag.name.split("_")[1]
        assert info.message_count == len(trial.time_ns) * (len(IMU_LOCATIONS) + 1)
        assert float(info.custom_data["gait_estimator.subject_mass_kg"]) == 72.5
        source = bagio.imu_source(reader, IMU_LOCATIONS)
        assert source.kind == "topics"
        records = list(bagio.iter_imu(reader, source))
        ref = bagio.read_joint_torques(reader)
    assert len(records) == len(trial.time_ns) * len(IMU_LOCATIONS)
    logs = [r.log_ns for r in records]
    assert logs == sorted(logs)
    start = 1_700_000_000_000_000_000
    for loc in IMU_LOCATIONS:
        recs = [r for r in records if r.location == loc]
        np.testing.assert_array_equal([r.stamp_ns for r in recs], trial.time_ns + start)
        np.testing.assert_array_equal(np.stack([r.acc for r in recs]), trial.imu[loc]["acc"])
        np.testing.assert_array_equal(np.stack([r.gyro for r in recs]), trial.imu[loc]["gyro"])
        np.testing.assert_array_equal(np.stack([r.quat_xyzw for r in recs]), trial.imu[loc]["quat"])
    assert ref.joints == JOINTS and ref.subject_mass_kg == 72.5
    np.testing.assert_array_equal(ref.torque_nm, trial.moment_nm)
    np.testing.assert_array_equal(ref.stamp_ns, trial.time_ns + start)


@pytest.mark.parametrize(
    ("src", "dst"), [("mcap", "sqlite3"), ("sqlite3", "mcap"), ("mcap", "mcap"), ("sqlite3", "sqlite3")]
)
def test_conversion_between_storages_is_lossless(tmp_path: Path, trial, src: str, dst: str) -> None:
    a = write_trial_bag(tmp_path / "a", trial, src)
    b = tmp_path / "b"
    with bagio.BagReader(a) as reader, bagio.BagWriter(b, dst) as writer:
        for topic, msgtype, log_ns, data in reader.raw_messages():
            writer.write_raw(topic, log_ns, data, msgtype)
    with bagio.BagReader(a) as ra, bagio.BagReader(b) as rb:
        assert rb.info().storage == dst
        assert ra.topics() == rb.topics()
        ma = [(t, log, bytes(d)) for t, _, log, d in ra.raw_messages()]
        mb = [(t, log, bytes(d)) for t, _, log, d in rb.raw_messages()]
    assert ma == mb


def test_validate_gives_identical_results_for_mcap_and_sqlite3(tmp_path: Path, trial, tiny_model) -> None:
    results = [replay_bag(write_trial_bag(tmp_path / s, trial, s), tiny_model) for s in STORAGES]
    assert results[0].est_nm.shape[0] > 300
    np.testing.assert_array_equal(results[0].est_nm, results[1].est_nm)
    np.testing.assert_array_equal(results[0].est_stamp_ns, results[1].est_stamp_ns)
    again = replay_bag(tmp_path / "mcap", tiny_model)
    np.testing.assert_array_equal(results[0].est_nm, again.est_nm)  # deterministic


def test_imu_frame_topic_source(tmp_path: Path, trial, tiny_model) -> None:
    store = make_typestore()
    frame_t = store.types["gait_estimator_msgs/msg/ImuFrame"]
    path = tmp_path / "frames"
    with bagio.BagWriter(path, "sqlite3") as w:
        w.set_custom_data("gait_estimator.subject_mass_kg", "72.5")
        for k, stamp in enumerate(trial.time_ns):
            imus = [
                convert.imu_message(
                    int(stamp),
                    f"imu_{loc}",
                    trial.imu[loc]["acc"][k],
                    trial.imu[loc]["gyro"][k],
                    trial.imu[loc]["quat"][k],
                    store=store,
                )
                for loc in IMU_LOCATIONS
            ]
            w.write(
                "gait/imu_frame",
                int(stamp),
                frame_t(
                    header=convert.header(int(stamp), "", store),
                    locations=list(IMU_LOCATIONS),
                    imus=imus,
                    valid=np.ones(len(IMU_LOCATIONS), dtype=bool),
                    rate_hz=RATE,
                ),
            )
    with bagio.BagReader(path) as reader:
        source = bagio.imu_source(reader, IMU_LOCATIONS)
        assert source.kind == "frame"
        records = list(bagio.iter_imu(reader, source))
    assert len(records) == len(trial.time_ns) * len(IMU_LOCATIONS)
    ref_bag = write_trial_bag(tmp_path / "topics", trial, "mcap")
    by_frames = replay_bag(path, tiny_model, ReplayOptions(reference_topic=None))
    by_topics = replay_bag(ref_bag, tiny_model)
    np.testing.assert_array_equal(by_frames.est_nm, by_topics.est_nm)


def test_writer_refuses_existing_path_and_unknown_storage(tmp_path: Path, trial) -> None:
    path = write_trial_bag(tmp_path / "x", trial, "mcap")
    with pytest.raises(BagError, match="exists already"):
        bagio.BagWriter(path, "mcap")
    with pytest.raises(BagError, match="storage 'zip' unknown"):
        bagio.BagWriter(tmp_path / "y", "zip")
    write_trial_bag(path, trial, "sqlite3", overwrite=True)
    assert bagio.bag_info(path).storage == "sqlite3"


# --- bad bags ------------------------------------------------------------------------------------
def test_missing_path_and_not_a_bag(tmp_path: Path) -> None:
    with pytest.raises(BagError, match=r"no such file or directory"):
        bagio.bag_info(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match=r"not a rosbag2 directory \(no metadata.yaml\)"):
        bagio.bag_info(tmp_path / "empty")


def test_missing_imu_topic_names_it(tmp_path: Path, trial) -> None:
    path = write_trial_bag(
        tmp_path / "b", trial, "mcap", locations=[loc for loc in IMU_LOCATIONS if loc != "shank_r"]
    )
    with bagio.BagReader(path) as reader, pytest.raises(BagError) as exc:
        bagio.imu_source(reader, IMU_LOCATIONS)
    assert "imu/shank_r" in str(exc.value) and str(path) in str(exc.value)


def test_missing_explicit_reference_topic_names_it(tmp_path: Path, trial, tiny_model) -> None:
    path = write_trial_bag(tmp_path / "b", trial, "mcap")
    with pytest.raises(BagError, match="no topic 'gait/other_reference'"):
        replay_bag(
            path, tiny_model, ReplayOptions(reference_topic="gait/other_reference", reference_required=True)
        )


def test_wrong_and_unknown_message_types(tmp_path: Path, trial) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    path = tmp_path / "odd"
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        store = make_typestore()
        conn = w.add_connection("/imu/pelvis", "std_msgs/msg/String", typestore=store)
        w.write(
            conn, 1, store.serialize_cdr(store.types["std_msgs/msg/String"](data="x"), "std_msgs/msg/String")
        )
        odd = w.add_connection("/odd", "acme_msgs/msg/Widget", msgdef="", rihs01="RIHS01_" + "0" * 64)
        w.write(odd, 2, b"\x00\x01\x00\x00\x01\x00\x00\x00")
    with bagio.BagReader(path) as reader:
        with pytest.raises(
            BagError, match=r"topic 'imu/pelvis' has message type std_msgs/msg/String; expected"
        ):
            bagio.imu_source(reader, ["pelvis"])
        with pytest.raises(BagError, match=r"unknown message type acme_msgs/msg/Widget"):
            list(reader.messages(["/odd"]))


def test_message_type_defined_only_in_the_bag_is_decoded(tmp_path: Path) -> None:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    other = get_typestore(Stores.ROS2_JAZZY)
    other.register(get_types_from_msg("float64 speed\nstring name", "acme_msgs/msg/Gizmo"))
    path = tmp_path / "gizmo"
    with bagio.BagWriter(path, "mcap") as w:
        from rosbags.rosbag2 import Writer  # noqa: F401 - the wrapped writer stores the definition

        conn = w._writer.add_connection("/gizmo", "acme_msgs/msg/Gizmo", typestore=other)
        msg = other.types["acme_msgs/msg/Gizmo"](speed=1.5, name="g")
        w._writer.write(conn, 10, other.serialize_cdr(msg, "acme_msgs/msg/Gizmo"))
    with bagio.BagReader(path) as reader:
        [(topic, log, decoded)] = list(reader.messages())
    assert topic == "/gizmo" and decoded.speed == 1.5 and decoded.name == "g"


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_truncated_or_corrupt_storage_is_a_bag_error(
    tmp_path: Path, trial, storage: str, damage: str
) -> None:
    path = write_trial_bag(tmp_path / "b", trial, storage)
    [data_file] = [p for p in path.iterdir() if p.suffix in (".mcap", ".db3")]
    raw = bytearray(data_file.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        rng = np.random.default_rng(1)
        mid = len(raw) // 3
        raw[mid : mid + 4096] = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    data_file.write_bytes(bytes(raw))
    with pytest.raises(BagError) as exc:
        with bagio.BagReader(path) as reader:
            src = bagio.imu_source(reader, IMU_LOCATIONS)
            for _ in bagio.iter_imu(reader, src):
                pass
            bagio.read_joint_torques(reader)
    assert str(path) in str(exc.value)


def test_corrupt_metadata_is_a_bag_error(tmp_path: Path, trial) -> None:
    path = write_trial_bag(tmp_path / "b", trial, "mcap")
    (path / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    with pytest.raises(BagError, match="cannot open"):
        bagio.bag_info(path)
    (path / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9}\n")
    with pytest.raises(BagError, match="cannot open"):
        bagio.bag_info(path)


def _write_imu_stream(path: Path, trial, stamps: np.ndarray, logs: np.ndarray) -> Path:
    """Every location gets the same (possibly odd) stamp sequence; messages at ``logs``."""
    store = make_typestore()
    with bagio.BagWriter(path, "mcap") as w:
        w.set_custom_data("gait_estimator.subject_mass_kg", "72.5")
        for k in range(stamps.size):
            for loc in IMU_LOCATIONS:
                j = k % len(trial.time_ns)
                w.write(
                    f"imu/{loc}",
                    int(logs[k]),
                    convert.imu_message(
                        int(stamps[k]),
                        loc,
                        trial.imu[loc]["acc"][j],
                        trial.imu[loc]["gyro"][j],
                        trial.imu[loc]["quat"][j],
                        store=store,
                    ),
                )
    return path


def test_duplicated_and_out_of_order_stamps_are_counted_not_fatal(
    tmp_path: Path, trial, tiny_model, caplog: pytest.LogCaptureFixture
) -> None:
    n = len(trial.time_ns)
    stamps = trial.time_ns.copy()
    stamps[100] = stamps[99]  # duplicate
    stamps[200], stamps[201] = stamps[201], stamps[200]  # out of order
    logs = np.arange(n, dtype=np.int64) * 10_000_000
    path = _write_imu_stream(tmp_path / "odd", trial, stamps, logs)
    with caplog.at_level(logging.WARNING, logger="gait_estimator.replay"):
        result = replay_bag(path, tiny_model, ReplayOptions(reference_topic=None))
    c = result.counters
    assert c["duplicates"] == len(IMU_LOCATIONS) and c["out_of_order"] == len(IMU_LOCATIONS)
    assert c["time_jumps"] == 0
    assert result.est_valid.sum() > 300
    text = caplog.text
    assert "duplicated stamp" in text and "out-of-order stamp" in text
    assert text.count("duplicated stamp") == 1  # one warning per kind, then counted


def test_time_jump_resets_the_pipeline_and_is_reported(tmp_path: Path, trial, tiny_model) -> None:
    n = len(trial.time_ns)
    # a looped recording: the stamps restart at 0 after n samples, log time keeps going
    stamps = np.concatenate([trial.time_ns, trial.time_ns])
    logs = np.arange(2 * n, dtype=np.int64) * 10_000_000
    path = _write_imu_stream(tmp_path / "looped", trial, stamps, logs)
    result = replay_bag(path, tiny_model, ReplayOptions(reference_topic=None))
    assert result.counters["time_jumps"] == 1 and result.counters["pipeline_resets"] == 1
    [event] = [e for e in result.events if e["kind"] == "time_jump"]
    assert "pipeline reset" in event["detail"] and event["log_ns"] == n * 10_000_000
    # estimates resume after the jump, with the restarted stamps
    after = result.est_sensor_ns[result.est_log_ns >= n * 10_000_000]
    assert after.size > 300 and after.min() < trial.time_ns[-1]
    # and they equal the first pass exactly (the pipeline restarted cleanly)
    first = result.est_nm[result.est_log_ns < n * 10_000_000]
    second = result.est_nm[result.est_log_ns >= n * 10_000_000]
    np.testing.assert_array_equal(first[: second.shape[0]], second[: first.shape[0]])


def test_report_is_json_ready(trial_bag: Path, tiny_model) -> None:
    import json

    report = evaluate(replay_bag(trial_bag, tiny_model))
    text = json.dumps(report, allow_nan=False)
    assert set(report["metrics"]) == set(JOINTS)
    assert report["commands"]["count"] == report["estimates"]
    assert "rmse" in json.loads(text)["metrics"]["knee_angle_r"]


def test_cli_bad_bag_is_one_line_no_traceback(tmp_path: Path, trial, tiny_model) -> None:
    path = write_trial_bag(tmp_path / "b", trial, "mcap")
    [data_file] = list(path.glob("*.mcap"))
    data_file.write_bytes(data_file.read_bytes()[:5000])
    model = tmp_path / "m.pt"
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    make_tiny_lstm_model(model, window=20, hidden=8)
    proc = subprocess.run(
        [sys.executable, "-m", "gait_estimator.cli.main", "validate", str(path), "--model", str(model)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("gait-estimator validate: error: bag ") and str(path) in proc.stderr


def test_typestore_knows_our_messages() -> None:
    store = make_typestore()
    assert JOINT_TORQUE in store.types and "gait_estimator_msgs/msg/ImuFrame" in store.types
    shutil.which("true")  # keep shutil import used on every platform


def test_offline_and_the_nodes_share_one_synchronizer_factory_and_shaper_builder() -> None:
    """One construction path: replay, the synchronizer node and the fused node build their
    synchronizer and command shaper with the same functions (no copies to drift apart)."""
    from gait_estimator.core import clock, command_stage, params
    from gait_estimator.nodes import imu_synchronizer
    from gait_estimator.replay import offline

    assert offline.make_synchronizer is clock.make_synchronizer is imu_synchronizer.make_synchronizer
    assert offline.make_shaper is params.make_shaper is command_stage.make_shaper
    p = offline.node_parameters({"latency_s": 0.05, "gains": [0.3]}, subject_mass_kg=80.0)
    sync = offline.make_synchronizer(p, 100.0)
    assert (sync.rate_hz, sync.latency_ns, sync.locations) == (100.0, 50_000_000, tuple(p["locations"]))
