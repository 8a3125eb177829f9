"""The shipped default model: loads through the core runtime, small, and accurate on a new subject.

The accuracy check simulates one subject the model never saw (another seed than the training
set) and runs the model file on it exactly as the pipeline does. The bounds are looser than
the held-out numbers in ``models/default_report.md`` (one subject, 40 s, is a noisy sample).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gait_estimator import conventions
from gait_estimator.data.dataset import select_channels
from gait_estimator.runtime.model_file import load_model
from gait_estimator.train.evaluate import evaluate_runtime

MODELS = Path(__file__).resolve().parents[2] / "models"
DEFAULT = MODELS / "default.pt"
NEW_SUBJECT_MAX_RMSE = 0.15  # N·m/kg per joint, one unseen simulated subject (measured 0.05-0.11)
NEW_SUBJECT_MIN_R = 0.95  # measured >= 0.99


@pytest.fixture(scope="module")
def runtime():
    return load_model(DEFAULT, expected_joints=conventions.JOINTS, threads=0)


def test_default_model_contract(runtime) -> None:
    md = runtime.metadata
    assert DEFAULT.stat().st_size < 1_000_000  # a few hundred kB at most
    assert md.output_unit == "N.m/kg" and md.sample_rate_hz == 100.0 and md.stride == 1
    assert set(md.locations) == set(conventions.IMU_LOCATIONS)
    assert md.training["seed"] == json.loads((MODELS / "default_report.json").read_text())["seed"]
    # Streaming (forward_step) reproduces the window output row by row.
    x = np.random.default_rng(0).normal(size=(md.window, len(md.input_channels))).astype(np.float32)
    runtime.reset_stream()
    for row in x:
        y = runtime.step(row)
    assert np.abs(y - runtime.predict_window(x)).max() < 1e-5


def test_default_model_on_an_unseen_simulated_subject(runtime, tmp_path: Path) -> None:
    from gait_estimator.data.loaders import load_sim_dataset
    from gait_estimator.sim.generate import generate_dataset

    generate_dataset(1, 40 / 60, 424242, tmp_path / "new", trial_s=40.0)
    recs = select_channels(load_sim_dataset(tmp_path / "new", ("acc", "gyro")), conventions.IMU_LOCATIONS,
                           ("sagittal",), conventions.JOINTS)
    res = evaluate_runtime(runtime, recs)
    for joint in conventions.JOINTS:
        m = res.metrics[joint]
        assert m["rmse"] <= NEW_SUBJECT_MAX_RMSE, (joint, m)
        assert m["pearson_r"] >= NEW_SUBJECT_MIN_R, (joint, m)
