"""Out-of-distribution monitor (issue 13): every estimate carries a confidence from the distance of
its input window to the model's training statistics; walking keeps full confidence, implausible
or out-of-distribution input drops it to zero."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gait_estimator.core.confidence import ConfidenceMonitor, confidence_from_distance
from gait_estimator.core.pipeline import EstimatorPipeline
from gait_estimator.core.synchronizer import SyncConfig
from gait_estimator.nodes import model_files
from gait_estimator.runtime.model_file import load_model
from gait_estimator.sim.generate import sample_subject, simulate_trial


@pytest.fixture(scope="module")
def model_and_rows():
    model = load_model(model_files.default_model_path())
    md = model.metadata
    subject = sample_subject(np.random.default_rng(11))
    trial = simulate_trial(subject, 6.0, 1.4, md.sample_rate_hz, seed=11)
    locs = tuple(trial.imu)
    acc = np.stack([trial.imu[loc]["acc"] for loc in locs], 1)
    gyro = np.stack([trial.imu[loc]["gyro"] for loc in locs], 1)
    quat = np.stack([trial.imu[loc]["quat"] for loc in locs], 1)
    pipe = EstimatorPipeline(model, SyncConfig(estimate_clock_offset=False), 70.0, "window")
    rows, valid = pipe.frame_rows(locs, acc, gyro, quat, np.ones(acc.shape[:2], bool))
    return model, np.asarray(trial.time_ns, dtype=np.int64), rows, valid


def test_distance_to_confidence():
    assert confidence_from_distance(1.0) == 1.0
    assert confidence_from_distance(2.5) == 1.0
    assert confidence_from_distance(3.25) == pytest.approx(0.5)
    assert confidence_from_distance(4.0) == 0.0
    assert confidence_from_distance(math.inf) == 0.0 and confidence_from_distance(math.nan) == 0.0


@pytest.mark.parametrize("mode", ["window", "streaming"])
def test_walking_keeps_full_confidence_and_ood_input_drops_to_zero(model_and_rows, mode):
    model, stamps, rows, valid = model_and_rows
    md = model.metadata
    pipe = EstimatorPipeline(model, SyncConfig(estimate_clock_offset=False), 70.0, mode)
    walk = pipe.push_rows(stamps, rows, valid)
    assert walk.valid.all() and len(walk) > 100
    assert walk.confidence.min() == 1.0, "walking data must keep full assistance"
    # 100 m/s^2 (inside the +-16 g plausibility range, far outside walking) on the thigh_r sensor
    bad = rows.copy()
    cols = [i for i, c in enumerate(md.input_channels) if c.startswith("thigh_r/acc")]
    bad[len(bad) // 2 :, cols] = 100.0
    pipe = EstimatorPipeline(model, SyncConfig(estimate_clock_offset=False), 70.0, mode)
    out = pipe.push_rows(stamps, bad, valid)
    late = out.stamp_ns >= stamps[len(bad) // 2 + md.window // 4]
    assert out.confidence[~late].max() == 1.0
    assert out.confidence[late].max() == 0.0
    assert np.isfinite(out.torque_nm).all()  # the model still answers: the confidence is what says no


def test_batched_confidence_equals_frame_by_frame(model_and_rows):
    model, stamps, rows, valid = model_and_rows
    bad = rows.copy()
    bad[200:260, 0] += 30.0
    v = valid.copy()
    v[300:305] = False
    batch = EstimatorPipeline(model, SyncConfig(estimate_clock_offset=False), 70.0, "window").push_rows(
        stamps, bad, v
    )
    pipe = EstimatorPipeline(model, SyncConfig(estimate_clock_offset=False), 70.0, "window")
    one = []
    for i in range(len(stamps)):
        one.append(pipe.push_rows(stamps[i : i + 1], bad[i : i + 1], v[i : i + 1]).confidence)
    one = np.concatenate(one)
    np.testing.assert_array_equal(batch.confidence, one)
    assert one.min() < 1.0 < 1.0 + one.max()


def test_window_confidence_matches_the_streaming_monitor(model_and_rows):
    model, _, rows, _ = model_and_rows
    md = model.metadata
    z = (rows - np.asarray(md.input_mean)) / np.asarray(md.input_std)
    mon = ConfidenceMonitor(md)
    for r in z[: md.window]:
        c = mon.push_row(r)
    d_stream = mon.distance
    assert ConfidenceMonitor(md).window_confidence(z[: md.window]) == c
    mon2 = ConfidenceMonitor(md)
    mon2.window_confidence(z[: md.window])
    assert mon2.distance == pytest.approx(d_stream, rel=1e-12)
