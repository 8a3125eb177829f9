"""The wearer calibration in the core pipeline, before features: per-frame (the nodes) equals
batched (offline replay); mis-mounted sensors with their calibration give the estimates of aligned
sensors; a flagged sensor makes every estimate invalid (never used raw); validate applies the file."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gait_estimator.conventions import IMU_LOCATIONS
from gait_estimator.core import calibration as cal
from gait_estimator.core.pipeline import EstimatorPipeline
from gait_estimator.core.samples import SyncFrame

RATE = 100.0
K = 120


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory):
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    path = make_tiny_lstm_model(tmp_path_factory.mktemp("m") / "tiny.pt", window=20, hidden=8, seed=3)
    return load_model(path)


def aligned_frames(seed: int = 1):
    """K frames of 7 IMUs in their segment frames: gravity plus motion, orientations, 100 Hz."""
    rng = np.random.default_rng(seed)
    n = len(IMU_LOCATIONS)
    t = np.arange(K)[:, None, None] / RATE
    acc = np.array([0.0, 0.0, 9.81]) + 2.0 * np.sin(2 * np.pi * t + rng.normal(size=(1, n, 3)))
    gyro = 1.5 * np.sin(2 * np.pi * t + rng.normal(size=(1, n, 3)))
    quat = Rotation.from_rotvec(0.3 * np.sin(2 * np.pi * t + rng.normal(size=(1, n, 3))).reshape(-1, 3))
    quat = quat.as_quat().reshape(K, n, 4)
    stamps = (1_000_000_000 + np.arange(K) * 10_000_000).astype(np.int64)
    return stamps, acc, gyro, quat, np.ones((K, n), bool)


def mismount(rots, acc, gyro, quat):
    """What sensors turned by ``rots`` (sensor -> segment) measure: v_sensor = R^T v_segment."""
    acc, gyro, quat = acc.copy(), gyro.copy(), quat.copy()
    for i, r in enumerate(rots):
        acc[:, i], gyro[:, i] = acc[:, i] @ r, gyro[:, i] @ r
        quat[:, i] = (Rotation.from_quat(quat[:, i]) * Rotation.from_matrix(r)).as_quat()
    return acc, gyro, quat


def wearer(rots, flagged: tuple[str, ...] = ()) -> cal.WearerCalibration:
    return cal.WearerCalibration(
        {
            loc: cal.SensorCalibration(loc, r, 0.2 if loc in flagged else 0.9, "test")
            for loc, r in zip(IMU_LOCATIONS, rots, strict=True)
        }
    )


def per_frame(pipe, stamps, acc, gyro, quat, valid):
    out = []
    for k in range(K):
        frame = SyncFrame(int(stamps[k]), tuple(IMU_LOCATIONS), acc[k], gyro[k], quat[k], valid[k])
        out.extend(pipe.push_frame(frame))
    return out


def batched(pipe, stamps, acc, gyro, quat, valid):
    rows, ok = pipe.frame_rows(tuple(IMU_LOCATIONS), acc, gyro, quat, valid)
    return pipe.push_rows(stamps, rows, ok)


ROTS = [Rotation.from_rotvec(v).as_matrix() for v in np.random.default_rng(7).normal(size=(7, 3)) * 1.5]


def test_calibrated_mismount_equals_aligned_and_batched_equals_per_frame(model) -> None:
    stamps, acc, gyro, quat, valid = aligned_frames()
    ref = per_frame(EstimatorPipeline(model, subject_mass_kg=70.0), stamps, acc, gyro, quat, valid)
    assert len(ref) > 5 and all(e.valid for e in ref)
    m_acc, m_gyro, m_quat = mismount(ROTS, acc, gyro, quat)
    raw = per_frame(EstimatorPipeline(model, subject_mass_kg=70.0), stamps, m_acc, m_gyro, m_quat, valid)
    # uncalibrated mis-mount: other estimates (so the comparison below can fail)
    assert max(np.abs(a.torque_nm - b.torque_nm).max() for a, b in zip(ref, raw, strict=True)) > 1e-2
    calib = wearer(ROTS)
    one = per_frame(EstimatorPipeline(model, subject_mass_kg=70.0, calibration=calib), stamps, m_acc, m_gyro,
                    m_quat, valid)
    assert [e.stamp_ns for e in one] == [e.stamp_ns for e in ref]
    for a, b in zip(one, ref, strict=True):
        assert a.valid and np.allclose(a.torque_nm, b.torque_nm, atol=1e-5)
    many = batched(EstimatorPipeline(model, subject_mass_kg=70.0, calibration=calib), stamps, m_acc, m_gyro,
                   m_quat, valid)
    assert many.stamp_ns.tolist() == [e.stamp_ns for e in one]
    assert many.valid.all()
    assert np.abs(many.torque_nm - np.stack([e.torque_nm for e in one])).max() <= 1e-4  # float32 batches


def test_flagged_or_missing_sensor_gives_no_valid_estimate(model) -> None:
    stamps, acc, gyro, quat, valid = aligned_frames()
    eye = [np.eye(3)] * 7
    for calib in (wearer(eye, flagged=("shank_r",)),
                  cal.WearerCalibration({k: v for k, v in wearer(eye).sensors.items() if k != "foot_l"})):
        one = per_frame(EstimatorPipeline(model, subject_mass_kg=70.0, calibration=calib), stamps, acc, gyro,
                        quat, valid)
        many = batched(EstimatorPipeline(model, subject_mass_kg=70.0, calibration=calib), stamps, acc, gyro,
                       quat, valid)
        assert not any(e.valid for e in one) and not many.valid.any()
        rows, ok = EstimatorPipeline(model, subject_mass_kg=70.0, calibration=calib).frame_rows(
            tuple(IMU_LOCATIONS), acc, gyro, quat, valid)
        assert not ok.any()  # the sensor's rows are invalid
    # identity calibration, all usable: the same as none
    plain = per_frame(EstimatorPipeline(model, subject_mass_kg=70.0), stamps, acc, gyro, quat, valid)
    ident = per_frame(EstimatorPipeline(model, subject_mass_kg=70.0, calibration=wearer(eye)), stamps, acc,
                      gyro, quat, valid)
    assert len(plain) == len(ident) > 0
    assert all(np.allclose(a.torque_nm, b.torque_nm, atol=1e-9) for a, b in zip(plain, ident, strict=True))


# -- validate (offline replay of a real bag) ---------------------------------------------------
BAG = __import__("pathlib").Path(__file__).parents[1] / "data" / "regression" / "walk_mcap"


def test_replay_applies_the_calibration_file_batched_and_per_sample(model, tmp_path) -> None:
    from gait_estimator.replay.offline import ReplayOptions, replay_bag

    def run(calib: cal.WearerCalibration | None, batch: bool = True):
        params = {}
        if calib is not None:
            params["calibration_file"] = str(cal.write_calibration(calib, tmp_path / "w.yaml"))
        return replay_bag(BAG, model, ReplayOptions(reference_topic=None, params=params, batch=batch))

    plain = run(None)
    assert plain.est_valid.sum() > 50
    ident = run(wearer([np.eye(3)] * 7))
    assert np.array_equal(ident.est_valid, plain.est_valid)
    assert np.allclose(ident.est_nm, plain.est_nm, atol=1e-9)
    turned = run(wearer(ROTS))  # a calibration the aligned bag does not need: other estimates
    assert np.abs(turned.est_nm - plain.est_nm).max() > 1e-2
    per_sample = run(wearer(ROTS), batch=False)
    assert (turned.path, per_sample.path) == ("batched", "per-sample")
    assert np.array_equal(per_sample.est_valid, turned.est_valid)
    assert np.abs(per_sample.est_nm - turned.est_nm).max() <= 1e-4  # float32 batches
    flagged = run(wearer([np.eye(3)] * 7, flagged=("thigh_l",)))
    assert len(flagged.est_valid) == 0 or not flagged.est_valid.any()


def test_validate_rejects_a_bad_calibration_file_before_any_bag(tmp_path, capsys) -> None:
    from gait_estimator.cli.main import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("format: gait_estimator.calibration\nversion: 1\nsensors: {pelvis: {quality: 1.0}}\n")
    assert main(["validate", str(BAG), "--calibration-file", str(bad), "--reference-topic", ""]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "rotation_sensor_to_segment" in err


def test_train_data_in_the_segment_frames_with_the_wearer_file(tmp_path) -> None:
    """``train``/``sweep --calibration-file``: mounted sensors + their file load as the aligned data."""
    import argparse

    from gait_estimator.cli.train import add_data_args, load_selected
    from gait_estimator.sim.dataset import write_dataset
    from gait_estimator.sim.generate import sample_subject, simulate_trial

    trial = simulate_trial(sample_subject(np.random.default_rng(2), "S02"), 2.0, 1.1, seed=2, extras=False)
    write_dataset(tmp_path / "aligned", [trial])
    for loc, r in zip(IMU_LOCATIONS, ROTS, strict=True):
        sig = trial.imu[loc]
        sig["acc"], sig["gyro"] = sig["acc"] @ r, sig["gyro"] @ r
        sig["quat"] = (Rotation.from_quat(sig["quat"]) * Rotation.from_matrix(r)).as_quat()
    write_dataset(tmp_path / "mounted", [trial])
    wearer_file = cal.write_calibration(wearer(ROTS), tmp_path / "w.yaml")
    parser = argparse.ArgumentParser()
    add_data_args(parser)

    def inputs(*argv: str) -> np.ndarray:
        recs = load_selected(parser.parse_args(["--signals", "acc,gyro,euler", *argv]))
        return np.concatenate([r.inputs for r in recs])

    aligned = inputs("--data", str(tmp_path / "aligned"))
    mounted = inputs("--data", str(tmp_path / "mounted"))
    calibrated = inputs("--data", str(tmp_path / "mounted"), "--calibration-file", str(wearer_file))
    assert aligned.shape == calibrated.shape and np.abs(mounted - aligned).max() > 1.0
    np.testing.assert_allclose(calibrated, aligned, atol=1e-3)


def test_apply_to_frame_matches_scipy_and_keeps_unknown_orientations() -> None:
    """The per-frame hook (numpy Hamilton product) equals scipy's composition; an all-zero
    quaternion (orientation unknown) stays zero; an invalid sample keeps its own values' quat."""
    rng = np.random.default_rng(3)
    locs = tuple(IMU_LOCATIONS)
    quat = Rotation.random(7, random_state=rng).as_quat() * 1.7  # not unit: normalised
    quat[2] = 0.0
    valid = np.ones(7, bool)
    valid[5] = False
    frame = SyncFrame(0, locs, rng.normal(size=(7, 3)), rng.normal(size=(7, 3)), quat, valid)
    out = cal.apply_to_frame(wearer(ROTS), frame)
    for i, r in enumerate(ROTS):
        np.testing.assert_allclose(out.acc[i], r @ frame.acc[i], atol=1e-12)
        np.testing.assert_allclose(out.gyro[i], r @ frame.gyro[i], atol=1e-12)
        if i in (2, 5):
            continue
        ref = (Rotation.from_quat(quat[i]) * Rotation.from_matrix(r.T)).as_quat()
        np.testing.assert_allclose(out.quat_xyzw[i], ref if ref[3] >= 0 else -ref, atol=1e-12)
    assert np.all(out.quat_xyzw[2] == 0.0) and np.array_equal(out.quat_xyzw[5], quat[5])
    assert out.valid.tolist() == valid.tolist()
