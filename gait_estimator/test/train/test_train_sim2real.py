"""Sim-to-real check on the real Dorschky 2019 cycles: axis mapping, units, and the report's shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gait_estimator import conventions
from gait_estimator.data.dataset import select_channels
from gait_estimator.data.synthetic import make_synthetic_recordings
from gait_estimator.train.sim2real import dorschky_recording, run_sim2real
from gait_estimator.train.trainer import TrainConfig, train_model


def test_dorschky_axes_mapped_into_the_sim_sensor_frame(shared_data: Path) -> None:
    rec = dorschky_recording("P01_walking", 100.0, shared_data)
    ch = rec["channels"]
    assert rec["mass_kg"] == 73.0
    n_cycle = int(round(rec["dur_s"] * 100))
    assert len(ch["pelvis/acc_x"]) == round(6 * rec["dur_s"] * 100)
    # Sim sensor frame: z up (reads about +g on average), y left, x forward.
    assert 8.5 < ch["pelvis/acc_z"].mean() < 11.0 and abs(ch["pelvis/acc_y"].mean()) < 3.0
    # Sagittal rotation is about +z_osim (right) = -y_sim: the thigh swings with gyro_y of both signs
    # and its mean over a cycle is ~0 (the thigh returns to its start).
    assert abs(ch["thigh_r/gyro_y"].mean()) < 0.1 and ch["thigh_r/gyro_y"].std() > 0.5
    # Periodic repetition: every cycle has the same extremes (up to the 100 -> 100 Hz resampling).
    g = ch["shank_r/gyro_y"]
    assert abs(g[:n_cycle].max() - g[-n_cycle:].max()) < 0.05 * np.ptp(g)
    # Moments stay in N·m here; OpenSim sign: the ankle plantarflexor moment of push-off is negative.
    assert rec["moments_nm"]["ankle_angle_r"].min() < -60


def test_run_sim2real_reports_rmse_for_p01_and_r_only_for_p03(shared_data: Path, tmp_path: Path) -> None:
    recs = make_synthetic_recordings(2, 10.0, locations=conventions.IMU_LOCATIONS, joints=conventions.JOINTS)
    recs = select_channels(recs, conventions.IMU_LOCATIONS, ("sagittal",), conventions.JOINTS)
    cfg = TrainConfig(
        architecture="tcn",
        arch_options={"channels": 8, "dilations": [1, 2]},
        window=16,
        epochs=1,
        seq_rows=8,
        progress=False,
        joints=conventions.JOINTS,
    )
    res = train_model(recs[:1], recs[1:], cfg, tmp_path / "run", quiet=True)
    out = run_sim2real(res.model_path, shared_data, plot_dir=tmp_path)
    p01, p03 = out["trials"]["P01_walking"], out["trials"]["P03_walking"]
    assert set(p01["metrics"]) == set(conventions.JOINTS_R)
    assert all(np.isfinite(m["rmse"]) and np.isfinite(m["pearson_r"]) for m in p01["metrics"].values())
    assert all(m["rmse"] is None and np.isfinite(m["pearson_r"]) for m in p03["metrics"].values())
    assert (tmp_path / "sim2real_P01_walking.png").is_file()
    assert "Limits" in out["limits"]
