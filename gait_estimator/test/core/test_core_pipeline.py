"""EstimatorPipeline: online == offline, determinism, modes, invalid streams, and the shaper."""

from __future__ import annotations

import numpy as np
import pytest

from gait_estimator.core.command import CommandConfig, CommandShaper
from gait_estimator.core.features import channel_matrix, make_channels
from gait_estimator.core.normalization import normalise
from gait_estimator.core.pipeline import EstimatorPipeline
from gait_estimator.core.samples import ImuSample
from gait_estimator.core.synchronizer import SyncConfig
from gait_estimator.errors import ConfigError, ModelMismatchError
from gait_estimator.runtime.model_file import load_model
from gait_estimator.runtime.reference_models import make_tiny_lstm_model

MS = 1_000_000
LOCS = ("pelvis", "thigh_r", "shank_r")
JOINTS = ("hip_flexion_r", "knee_angle_r", "ankle_angle_r")
T = 20


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = make_tiny_lstm_model(
        tmp_path_factory.mktemp("m") / "m.pt", make_channels(LOCS, "gravity"), JOINTS, window=T, rate=100
    )
    return load_model(path)


def recording(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None] / 100.0
    out = {}
    for i, loc in enumerate(LOCS):
        ang = 0.5 * np.sin(2 * np.pi * t[:, 0] + i)
        quat = np.stack([np.sin(ang / 2), np.zeros(n), np.zeros(n), np.cos(ang / 2)], axis=1)
        out[loc] = {
            "acc": np.sin(2 * np.pi * t + rng.uniform(0, 6, 3)) * 3 + [0, 0, 9.81],
            "gyro": np.cos(2 * np.pi * t + rng.uniform(0, 6, 3)) * 2,
            "quat": quat,
        }
    return out


def samples(rec: dict, n: int, jitter_seed: int | None = None):
    rng = np.random.default_rng(jitter_seed)
    items = []
    for k in range(n):
        for loc in LOCS:
            d = 5_000_000_000 + k * 10 * MS
            r = d + (0 if jitter_seed is None else int(rng.integers(0, 8 * MS)))
            items.append((r, ImuSample(loc, d, rec[loc]["acc"][k], rec[loc]["gyro"][k], rec[loc]["quat"][k])))
    items.sort(key=lambda a: a[0])
    return items


def run(pipe: EstimatorPipeline, items, flush: bool = False) -> list:
    out = []
    for r, s in items:
        out += pipe.push_sample(s, r)
    # Flushing emits the frames after the last sample too (held for max_gap, then invalid).
    return out + pipe.poll(items[-1][0] + 10**9) if flush else out


def test_online_equals_offline(model):
    """Samples on the model's grid: every estimate equals the model on the offline feature matrix."""
    n = 120
    rec = recording(n)
    pipe = EstimatorPipeline(model, SyncConfig(estimate_clock_offset=False), subject_mass_kg=70.0)
    est = [e for e in run(pipe, samples(rec, n)) if e.valid]
    md = model.metadata
    z = normalise(channel_matrix(md.input_channels, rec), md.input_mean, md.input_std)
    ref = model.predict_batch(np.stack([z[k - T + 1 : k + 1] for k in range(T - 1, n)])) * 70.0
    assert len(est) == n - T + 1
    assert [e.stamp_ns for e in est] == [5_000_000_000 + k * 10 * MS for k in range(T - 1, n)]
    np.testing.assert_allclose(np.stack([e.torque_nm for e in est]), ref, atol=1e-5)


def test_same_input_sequence_gives_identical_output(model):
    n = 150
    items = samples(recording(n, 1), n, jitter_seed=7)
    cfg = SyncConfig(latency_ns=20 * MS)
    a = run(EstimatorPipeline(model, cfg, 70.0, "streaming"), items, flush=True)
    b = run(EstimatorPipeline(model, cfg, 70.0, "streaming"), items, flush=True)
    assert len(a) == len(b) > 50
    for x, y in zip(a, b, strict=True):
        assert x.stamp_ns == y.stamp_ns and x.valid == y.valid and np.array_equal(x.torque_nm, y.torque_nm)


def test_streaming_matches_window_on_the_first_window_and_stays_close(model):
    n = 200
    items = samples(recording(n, 2), n)
    cfg = SyncConfig(estimate_clock_offset=False)
    w = {
        e.stamp_ns: e.torque_nm for e in run(EstimatorPipeline(model, cfg, 70.0, "window"), items) if e.valid
    }
    s = {
        e.stamp_ns: e.torque_nm
        for e in run(EstimatorPipeline(model, cfg, 70.0, "streaming"), items)
        if e.valid
    }
    assert w.keys() == s.keys() and len(w) == n - T + 1
    stamps = sorted(w)
    assert np.abs(w[stamps[0]] - s[stamps[0]]).max() < 1e-5  # identical input, zero state
    diff = max(np.abs(w[k] - s[k]).max() for k in stamps)
    scale = max(np.abs(w[k]).max() for k in stamps)
    assert diff < 0.05 * scale


@pytest.mark.parametrize("mode", ["window", "streaming"])
def test_dead_stream_gives_invalid_estimates_and_the_shaper_goes_to_zero(model, mode):
    n = 150
    rec = recording(n, 3)
    items = [
        (r, s) for r, s in samples(rec, n) if not (s.location == "shank_r" and s.stamp_ns >= 5_800_000_000)
    ]
    cfg = SyncConfig(estimate_clock_offset=False, latency_ns=20 * MS, max_gap_ns=50 * MS)
    pipe = EstimatorPipeline(model, cfg, 70.0, mode)
    shaper = CommandShaper(CommandConfig(JOINTS, 70.0, limit_nm=30.0, rate_limit_nm_s=1000.0, ramp_s=0.0))
    shaper.enable()
    first_invalid = None
    for r, s in items:
        for e in pipe.push_sample(s, r):
            shaper.submit(e.torque_nm, e.stamp_ns, e.valid)
            if not e.valid and first_invalid is None:
                first_invalid = e.stamp_ns
        out = shaper.update(r)
    assert first_invalid is not None and first_invalid - 5_790_000_000 <= 50 * MS + 10 * MS
    assert np.all(out.torque == 0.0) and out.fault is not None
    assert pipe.counters["invalid_estimates"] > 0


def test_pipeline_refuses_mismatched_rate_locations_and_missing_mass(model):
    with pytest.raises(ModelMismatchError, match="rate"):
        EstimatorPipeline(model, SyncConfig(rate_hz=200.0), 70.0)
    with pytest.raises(ModelMismatchError, match="shank_r"):
        EstimatorPipeline(model, SyncConfig(locations=("pelvis", "thigh_r")), 70.0)
    with pytest.raises(ConfigError, match="subject_mass_kg"):
        EstimatorPipeline(model, None, None)
    with pytest.raises(ConfigError, match="mode"):
        EstimatorPipeline(model, None, 70.0, "batch")
