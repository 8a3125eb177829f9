"""``gait-estimator calibrate BAG --out wearer.yaml`` on real rosbag2 files: the simulator's test bag
(aligned sensors, walking only) and a bag of the real Dorschky P01 cycle with sensors strapped on
at random angles after a standing period."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from gait_estimator.cli.main import main
from gait_estimator.conventions import GRAVITY
from gait_estimator.core import calibration as cal
from gait_estimator.replay.trial_bag import write_trial_bag
from gait_estimator.sim.dataset import Trial
from gait_estimator.train.sim2real import dorschky_recording

SIM_BAG = Path(__file__).parents[1] / "data" / "sim_bag" / "sim_walk_6s"


def test_sim_bag_walking_alone(tmp_path, capsys):
    out = tmp_path / "wearer.yaml"
    assert main(["calibrate", str(SIM_BAG), "--out", str(out)]) == 0
    wearer = cal.read_calibration(out)
    assert len(wearer.sensors) == 7 and wearer.flagged() == []
    for s in wearer.sensors.values():  # simulated sensors sit on their segments (2 deg jitter)
        assert s.method == "walking" and cal.rotation_angle_deg(s.rotation) < 15
    assert "pelvis" in capsys.readouterr().out


def _rotated_bag(path: Path, root: Path, rots: dict) -> Path:
    rec = dorschky_recording("P01_walking", 100.0, root)
    ch = rec["channels"]
    n_stand = 300
    imu = {}
    for loc in dict.fromkeys(c.split("/")[0] for c in ch):
        sig = {}
        for k in ("acc", "gyro"):
            walk = np.stack([ch[f"{loc}/{k}_{a}"] for a in "xyz"], 1)
            still = np.tile([0.0, 0.0, GRAVITY if k == "acc" else 0.0], (n_stand, 1))
            sig[k] = (np.concatenate([still, walk]) @ rots[loc]).astype(np.float32)
        n = len(sig["acc"])
        sig["quat"] = np.tile(np.array([0.0, 0.0, 0.0, 1.0], np.float32), (n, 1))
        imu[loc] = sig
    t = np.arange(n, dtype=np.int64) * 10_000_000
    trial = Trial(
        "p01",
        {"id": "P01", "mass_kg": 73.0},
        1.29,
        100.0,
        t,
        imu,
        ("hip_flexion_r",),
        np.zeros((n, 1), np.float32),
        np.zeros(n, np.float32),
        {},
    )
    return write_trial_bag(path, trial, reference=False)  # IMU topics are all calibrate reads


def test_rotated_sensors_with_standing(tmp_path, shared_data):
    rng = np.random.default_rng(7)
    rots = {
        loc: Rotation.random(random_state=rng).as_matrix()
        for loc in ("pelvis", "thigh_r", "thigh_l", "shank_r", "shank_l", "foot_r", "foot_l")
    }
    bag = _rotated_bag(tmp_path / "bag", shared_data, rots)
    out = tmp_path / "w.yaml"
    assert main(["calibrate", str(bag), "--out", str(out), "--wearer", "P01"]) == 0
    wearer = cal.read_calibration(out)
    assert wearer.wearer == "P01"
    for loc, s in wearer.sensors.items():
        assert s.method == "standing+walking" and s.details["standing_s"] == pytest.approx(3.0, abs=0.05)
        assert cal.rotation_angle_deg(s.rotation @ rots[loc].T) < 20, loc  # mounting found


def test_cli_errors(tmp_path, capsys):
    assert main(["calibrate", str(tmp_path / "nope"), "--out", str(tmp_path / "w.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["calibrate", str(SIM_BAG), "--out", str(tmp_path / "w.yaml"), "--standing", "x"]) == 2
    assert "'standing'" in capsys.readouterr().err
    assert main(["calibrate", str(SIM_BAG), "--out", str(tmp_path / "w.yaml"), "--imus", "wrist"]) == 2
    assert "unknown location" in capsys.readouterr().err


def test_evaluate_applies_the_wearer_file(tmp_path):
    """Sensors mounted at known angles + their calibration file = the aligned evaluation exactly."""
    import json

    from gait_estimator.sim.dataset import write_dataset
    from gait_estimator.sim.generate import sample_subject, simulate_trial

    trial = simulate_trial(sample_subject(np.random.default_rng(3), "S01"), 4.0, 1.3, seed=3)
    write_dataset(tmp_path / "aligned", [trial])
    rng = np.random.default_rng(5)
    rots = {loc: Rotation.random(random_state=rng).as_matrix() for loc in trial.imu}
    for loc, sig in trial.imu.items():  # v_sensor = R^T v_segment; sensor -> world = q_seg * R
        sig["acc"], sig["gyro"] = sig["acc"] @ rots[loc], sig["gyro"] @ rots[loc]
        sig["quat"] = (Rotation.from_quat(sig["quat"]) * Rotation.from_matrix(rots[loc])).as_quat()
    write_dataset(tmp_path / "mounted", [trial])
    sensors = {loc: cal.SensorCalibration(loc, r, 1.0, "given") for loc, r in rots.items()}
    wearer = cal.write_calibration(cal.WearerCalibration(sensors, "S01"), tmp_path / "w.yaml")
    model = str(Path(__file__).parents[2] / "models" / "default.pt")
    runs = {
        "aligned": ["--data", str(tmp_path / "aligned")],
        "mounted": ["--data", str(tmp_path / "mounted")],
        "calibrated": ["--data", str(tmp_path / "mounted"), "--calibration-file", str(wearer)],
    }
    rmse = {}
    for name, extra in runs.items():
        assert main(["evaluate", model, *extra, "--out", str(tmp_path / name)]) == 0
        m = json.loads((tmp_path / name / "metrics.json").read_text())
        rmse[name] = np.array([v["rmse"] for v in m["metrics"].values()])
    np.testing.assert_allclose(rmse["calibrated"], rmse["aligned"], rtol=1e-3)
    assert rmse["mounted"].mean() > 1.5 * rmse["aligned"].mean()
