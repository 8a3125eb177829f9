"""Sensor-to-segment calibration on the real Dorschky P01 walking cycle (repository copy) and the
shipped default model: a 90 deg mis-mount is detected, calibration recovers the accuracy, a bad
calibration is flagged and never used silently, and the wearer YAML round-trips and is validated."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gait_estimator.conventions import GRAVITY
from gait_estimator.core import calibration as cal
from gait_estimator.core.features import channel_matrix
from gait_estimator.core.samples import SyncFrame
from gait_estimator.errors import CalibrationError
from gait_estimator.runtime.model_file import load_model
from gait_estimator.train.sim2real import dorschky_recording

RATE = 100.0
JOINTS = ("hip_flexion_r", "knee_angle_r", "ankle_angle_r")


@pytest.fixture(scope="module")
def p01(shared_data):
    """P01's cycle repeated six times, every IMU in the model's segment frame (the aligned case)."""
    rec = dorschky_recording("P01_walking", RATE, shared_data)
    ch = rec["channels"]
    locs = dict.fromkeys(c.split("/")[0] for c in ch)
    imu = {
        loc: {k: np.stack([ch[f"{loc}/{k}_{a}"] for a in "xyz"], 1) for k in ("acc", "gyro")} for loc in locs
    }
    last = np.arange(len(rec["phase"]) - int(round(rec["dur_s"] * RATE)), len(rec["phase"]))
    ref = np.stack([rec["moments_nm"][j][last] for j in JOINTS], 1) / rec["mass_kg"]
    return imu, last, ref


@pytest.fixture(scope="module")
def model():
    from pathlib import Path

    return load_model(Path(__file__).parents[2] / "models" / "default.pt", threads=0)


def rmse(rt, imu, idx, ref) -> np.ndarray:
    md = rt.metadata
    with_quat = {
        loc: {**s, "quat": np.tile([0.0, 0.0, 0.0, 1.0], (len(s["acc"]), 1))} for loc, s in imu.items()
    }
    x = (channel_matrix(md.input_channels, with_quat) - np.asarray(md.input_mean)) / np.asarray(md.input_std)
    win = x.astype(np.float32)[idx[:, None] + np.arange(-md.window + 1, 1)[None, :]]
    est = rt.predict_batch(win)[:, [md.output_joints.index(j) for j in JOINTS]]
    return np.sqrt(np.mean((est - ref) ** 2, axis=0))


def mount(imu: dict, rots: dict) -> dict:
    """Sensors turned by ``rots[loc]`` relative to their segment: v_sensor = R^T v_segment."""
    return {loc: {k: s[k] @ rots.get(loc, np.eye(3)) for k in ("acc", "gyro")} for loc, s in imu.items()}


def with_standing(imu: dict, rots: dict, seconds: float = 2.0, moving: tuple[str, ...] = ()) -> dict:
    """A standing period before the walk (gravity on the segment z); ``moving`` sensors sway."""
    n = int(seconds * RATE)
    rng = np.random.default_rng(0)
    out = {}
    for loc, s in imu.items():
        acc = np.tile([0.0, 0.0, GRAVITY], (n, 1)) + rng.normal(0, 0.02, (n, 3))
        gyro = rng.normal(0, 0.005, (n, 3))
        if loc in moving:  # not standing still: the leg swings 1 rad/s while "standing"
            gyro[:, 1] += np.sin(np.arange(n) / RATE * 2 * np.pi) * 1.0
            acc[:, 0] += 3.0 * np.cos(np.arange(n) / RATE * 2 * np.pi)
        r = rots.get(loc, np.eye(3))
        out[loc] = {"acc": np.concatenate([acc @ r, s["acc"]]), "gyro": np.concatenate([gyro @ r, s["gyro"]])}
    return out


# 90 deg mis-mounts: thigh sensor on the front instead of the side, shank sensor turned about x
MISMOUNT = {
    "thigh_r": Rotation.from_euler("z", 90, degrees=True).as_matrix(),
    "shank_r": Rotation.from_euler("x", 90, degrees=True).as_matrix(),
}


def test_mismount_is_detected_and_calibration_recovers_accuracy(p01, model):
    imu, idx, ref = p01
    aligned = rmse(model, imu, idx, ref)
    bad = mount(imu, MISMOUNT)
    scores = {loc: cal.check_alignment(loc, s["acc"], s["gyro"], RATE) for loc, s in bad.items()}
    for loc, (angle, score) in scores.items():
        if loc in MISMOUNT:
            assert angle > 70 and score < 0.5, (loc, angle, score)  # detected
        else:
            assert angle < 25 and score == 1.0, (loc, angle, score)  # aligned sensors pass
    uncalibrated = rmse(model, bad, idx, ref)
    assert uncalibrated[0] > 2 * aligned[0] and uncalibrated[2] > 2 * aligned[2]  # hip, ankle ruined

    wearer = cal.calibrate_wearer(with_standing(bad, MISMOUNT), RATE, standing_s=2.0)
    assert wearer.flagged() == []
    for loc, r in MISMOUNT.items():  # the mounting rotation is found to within a few degrees
        assert cal.rotation_angle_deg(wearer.sensors[loc].rotation @ r.T) < 15
    fixed = cal.apply_to_imu(wearer, bad)
    for loc, s in fixed.items():
        assert cal.check_alignment(loc, s["acc"], s["gyro"], RATE)[1] == 1.0
    calibrated = rmse(model, fixed, idx, ref)
    # Calibration is rotation-equivariant: the mis-mounted sensors end up exactly where the
    # aligned ones do after their own calibration.
    same = cal.apply_to_imu(cal.calibrate_wearer(with_standing(imu, {}), RATE, standing_s=2.0), imu)
    np.testing.assert_allclose(calibrated, rmse(model, same, idx, ref), rtol=1e-3)
    # ... and that is the aligned accuracy: mean over joints within 5 %, each within 15 %
    # (the pelvis heading found from the walk is ~6 deg off the stated axes; the ankle feels it)
    assert calibrated.mean() <= 1.05 * aligned.mean()
    assert np.all(calibrated <= 1.15 * aligned), (calibrated, aligned)


def test_bad_calibration_is_flagged_and_never_used(p01):
    imu, _, _ = p01
    # the right thigh moves during the "standing" period: its calibration is flagged
    wearer = cal.calibrate_wearer(with_standing(imu, {}, moving=("thigh_r",)), RATE, standing_s=2.0)
    assert wearer.flagged() == ["thigh_r"]
    assert wearer.sensors["thigh_r"].details["q_still"] < 0.5
    with pytest.raises(CalibrationError, match=r"calibration of \['thigh_r'\] is flagged"):
        cal.apply_to_imu(wearer, imu)
    frame = SyncFrame(
        0, tuple(imu), np.ones((7, 3)), np.zeros((7, 3)), np.tile([0, 0, 0, 1.0], (7, 1)), np.ones(7, bool)
    )
    out = cal.apply_to_frame(wearer, frame)
    assert not out.valid[out.index("thigh_r")] and out.valid.sum() == 6
    # walking too short to calibrate
    with pytest.raises(CalibrationError, match="need at least 1 s"):
        cal.calibrate_sensor("shank_r", imu["shank_r"]["acc"][:50], imu["shank_r"]["gyro"][:50], RATE)


def test_wrong_calibration_file_is_detected(p01, tmp_path):
    """A wearer file from another mounting (90 deg off) turns aligned signals away: detected."""
    imu, _, _ = p01
    wearer = cal.calibrate_wearer(with_standing(mount(imu, MISMOUNT), MISMOUNT), RATE, standing_s=2.0)
    path = cal.write_calibration(wearer, tmp_path / "wearer.yaml")
    applied = cal.apply_to_imu(cal.read_calibration(path), imu)  # sensors were in fact aligned
    for loc in MISMOUNT:
        angle, score = cal.check_alignment(loc, applied[loc]["acc"], applied[loc]["gyro"], RATE)
        assert angle > 70 and score < 0.5


def test_yaml_round_trip_and_validation(p01, tmp_path):
    imu, _, _ = p01
    wearer = cal.calibrate_wearer(with_standing(imu, {}), RATE, standing_s=2.0, wearer="P01")
    path = cal.write_calibration(wearer, tmp_path / "w.yaml")
    back = cal.read_calibration(path)
    assert back.wearer == "P01" and set(back.sensors) == set(imu)
    for loc, s in wearer.sensors.items():
        np.testing.assert_allclose(back.sensors[loc].rotation, s.rotation, atol=1e-5)
        assert back.sensors[loc].quality == s.quality and back.sensors[loc].method == "standing+walking"
    text = path.read_text()
    cases = [
        (text.replace("format: gait_estimator.calibration", "format: other"), "not a calibration file"),
        (text.replace("  thigh_r:", "  knee:"), "sensors.knee: unknown location"),
        (text.replace("version: 1", "version: 7"), "version 7 is not supported"),
        (text + "extra: 1\n", r"unknown key\(s\) \['extra'\]"),
        (
            "format: gait_estimator.calibration\nversion: 1\nsensors:\n  pelvis:\n"
            "    rotation_sensor_to_segment: [[1, 0, 0], [0, 1, 0], [0, 0, -1]]\n",
            "not a rotation",
        ),
        (
            "format: gait_estimator.calibration\nversion: 1\nsensors:\n  pelvis:\n"
            "    rotation_sensor_to_segment: [[1, 0, 0], [0, 1, 0]]\n",
            "3x3",
        ),
        (
            "format: gait_estimator.calibration\nversion: 1\nsensors:\n  pelvis:\n"
            "    rotation_sensor_to_segment: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]\n    quality: 2\n",
            "in \\[0, 1\\]",
        ),
        ("sensors: [", "not valid YAML"),
    ]
    for i, (content, message) in enumerate(cases):
        bad = tmp_path / f"bad{i}.yaml"
        bad.write_text(content)
        with pytest.raises(CalibrationError, match=message):
            cal.read_calibration(bad)
    with pytest.raises(CalibrationError, match="cannot read"):
        cal.read_calibration(tmp_path / "missing.yaml")
    with pytest.raises(CalibrationError, match=r"no calibration for IMU\(s\) \['trunk'\]"):
        cal.apply_to_imu(back, {"trunk": imu["pelvis"]})


def test_apply_to_channels_rotates_every_signal_kind(p01):
    """acc, gyro, grav, quat and Euler channels of mounted sensors come back as the aligned ones."""
    from gait_estimator.core.features import SIGNALS

    imu, _, _ = p01
    rng = np.random.default_rng(11)
    seg_q = Rotation.random(len(imu["pelvis"]["acc"]), random_state=rng)  # any segment orientation
    aligned = {loc: {**s, "quat": seg_q.as_quat()} for loc, s in imu.items()}
    rots = {loc: Rotation.random(random_state=rng).as_matrix() for loc in imu}
    mounted = {
        loc: {
            "acc": s["acc"] @ rots[loc],
            "gyro": s["gyro"] @ rots[loc],
            "quat": (seg_q * Rotation.from_matrix(rots[loc])).as_quat(),
        }
        for loc, s in aligned.items()
    }
    channels = tuple(f"{loc}/{s}" for loc in imu for s in SIGNALS)
    wearer = cal.WearerCalibration(
        {loc: cal.SensorCalibration(loc, r, 1.0, "given") for loc, r in rots.items()}
    )
    got = cal.apply_to_channels(wearer, channels, channel_matrix(channels, mounted))
    want = channel_matrix(channels, aligned)
    angles = [i for i, c in enumerate(channels) if c.endswith(("/yaw", "/roll"))]  # wrap at +-pi
    got[:, angles] = want[:, angles] + np.angle(np.exp(1j * (got[:, angles] - want[:, angles])))
    np.testing.assert_allclose(got, want, atol=1e-6)
    with pytest.raises(CalibrationError, match="without"):
        cal.apply_to_channels(wearer, ("pelvis/acc_x", "pelvis/acc_z"), np.zeros((3, 2)))
