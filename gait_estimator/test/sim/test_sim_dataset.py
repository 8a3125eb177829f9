"""Dataset files, determinism, loader, CLI and the committed bag (issue 3)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from gait_estimator.conventions import IMU_LOCATIONS, JOINTS
from gait_estimator.sim.dataset import load_dataset
from gait_estimator.sim.generate import generate_dataset

BAG = Path(__file__).resolve().parents[1] / "data" / "sim_bag" / "sim_walk_6s"


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_same_seed_same_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate_dataset(2, 0.25, 42, a)
    generate_dataset(2, 0.25, 42, b)
    assert _digest(a) == _digest(b)
    c = tmp_path / "c"
    generate_dataset(2, 0.25, 43, c)
    assert _digest(a) != _digest(c)


def test_loader_roundtrip(tmp_path):
    generate_dataset(1, 0.5, 1, tmp_path)
    trials = load_dataset(tmp_path)
    assert len(trials) == 1
    t = trials[0]
    n = t.time_ns.size
    assert n == 3000 and t.sample_rate_hz == 100.0
    assert tuple(t.imu) == IMU_LOCATIONS
    assert t.joint_names == JOINTS and t.moment_nm.shape == (n, 6)
    for sig in t.imu.values():
        assert sig["acc"].shape == (n, 3) and sig["gyro"].shape == (n, 3) and sig["quat"].shape == (n, 4)
        assert np.allclose(np.linalg.norm(sig["quat"], axis=1), 1.0, atol=1e-4)
    # gravity on the pelvis z axis on average, plausible moments
    assert 8.5 < float(np.mean(t.imu["pelvis"]["acc"][:, 2])) < 11.0
    assert 0.5 < float(np.abs(t.moment_nm_per_kg[:, 2]).max()) < 2.5
    assert set(t.events) == {"heel_strike_r", "heel_strike_l", "toe_off_r", "toe_off_l"}
    assert np.all((t.phase_r >= 0) & (t.phase_r < 1))


def test_cli_simulate(tmp_path):
    from gait_estimator.cli.main import main

    assert main(["simulate", "--subjects", "1", "--minutes", "0.1", "--seed", "3", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    assert (tmp_path / "manifest.json").is_file()


def test_committed_bag_small_and_readable():
    size = sum(p.stat().st_size for p in BAG.iterdir())
    assert size < 2_000_000
    from rosbags.highlevel import AnyReader

    from gait_estimator.replay.typestore import make_typestore

    with AnyReader([BAG], default_typestore=make_typestore()) as reader:
        topics = {c.topic for c in reader.connections}
        assert {f"imu/{loc}" for loc in IMU_LOCATIONS} <= {t.lstrip("/") for t in topics}
        assert reader.message_count == 600 * 8
