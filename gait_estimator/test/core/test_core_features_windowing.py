"""Features (channels from metadata), the O(1) ring buffer, normalisation and metrics."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import transforms3d
from hypothesis import given, settings
from hypothesis import strategies as st

from gait_estimator.conventions import quat_xyzw_to_wxyz
from gait_estimator.core import metrics
from gait_estimator.core.features import FeatureExtractor, channel_matrix, location_signals, make_channels
from gait_estimator.core.normalization import denormalise, normalise
from gait_estimator.core.samples import SyncFrame
from gait_estimator.core.windowing import WindowBuffer
from gait_estimator.errors import ModelMismatchError
from gait_estimator.runtime.metadata import ModelMetadata


def meta(channels, window=8, stride=3, rate=100.0) -> ModelMetadata:
    n = len(channels)
    rng = np.random.default_rng(n)
    return ModelMetadata(
        "lstm",
        channels,
        rate,
        window,
        stride,
        tuple(rng.normal(size=n)),
        tuple(rng.uniform(0.5, 2, size=n)),
        ("hip_flexion_r",),
        "N.m/kg",
    )


def random_quats(rng, n):
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_orientation_features_match_transforms3d():
    rng = np.random.default_rng(0)
    q = random_quats(rng, 50)
    sig = location_signals(np.zeros((50, 3)), np.zeros((50, 3)), q)
    for i in range(50):
        wxyz = quat_xyzw_to_wxyz(q[i])
        np.testing.assert_allclose(sig[i, 10:13], transforms3d.euler.quat2euler(wxyz, "sxyz"), atol=1e-9)
        r = transforms3d.quaternions.quat2mat(wxyz)
        np.testing.assert_allclose(sig[i, 13:16], r.T @ [0.0, 0.0, -1.0], atol=1e-12)
        assert sig[i, 9] >= 0  # quaternion sign fixed to w >= 0
    flat = location_signals(np.zeros(3), np.zeros(3), [0, 0, 0, 1])
    np.testing.assert_allclose(flat[13:16], [0, 0, -1])  # level sensor: gravity along -z


def test_feature_row_follows_metadata_and_online_equals_offline():
    channels = make_channels(["shank_r", "thigh_r"], "euler") + ("thigh_r/grav_z", "shank_r/quat_w")
    md = meta(channels)
    rng = np.random.default_rng(1)
    n = 30
    imu = {
        loc: {"acc": rng.normal(size=(n, 3)), "gyro": rng.normal(size=(n, 3)), "quat": random_quats(rng, n)}
        for loc in ("thigh_r", "shank_r", "pelvis")
    }
    offline = channel_matrix(channels, imu)
    fx = FeatureExtractor(md)
    locs = ("pelvis", "thigh_r", "shank_r")  # frame order differs from the model's
    for k in range(n):
        frame = SyncFrame(
            k,
            locs,
            np.stack([imu[x]["acc"][k] for x in locs]),
            np.stack([imu[x]["gyro"][k] for x in locs]),
            np.stack([imu[x]["quat"][k] for x in locs]),
            np.array([False, True, True]),
        )
        row, valid = fx.row(frame)
        assert valid  # pelvis is invalid but unused
        np.testing.assert_array_equal(row, offline[k])
    assert offline[0, channels.index("shank_r/acc_y")] == imu["shank_r"]["acc"][0, 1]
    frame = SyncFrame(
        0,
        locs,
        np.zeros((3, 3)),
        np.zeros((3, 3)),
        np.tile([0, 0, 0, 1.0], (3, 1)),
        np.array([True, False, True]),
    )
    assert not fx.row(frame)[1]
    with pytest.raises(ModelMismatchError, match="shank_r"):
        fx.row(
            SyncFrame(
                0,
                ("thigh_r",),
                np.zeros((1, 3)),
                np.zeros((1, 3)),
                np.array([[0, 0, 0, 1.0]]),
                np.array([True]),
            )
        )


def test_make_channels_and_unknown_signal():
    assert make_channels(["foot_l"], "gravity")[-1] == "foot_l/grav_z"
    assert len(make_channels(["a", "b"], "none")) == 12
    with pytest.raises(ValueError, match="orientation"):
        make_channels(["a"], "matrix")
    with pytest.raises(ModelMismatchError, match="unknown signal"):
        channel_matrix(
            ("a/magnetometer_x",),
            {"a": {"acc": np.zeros((1, 3)), "gyro": np.zeros((1, 3)), "quat": np.array([[0, 0, 0, 1.0]])}},
        )


@settings(max_examples=40, deadline=None)
@given(
    window=st.integers(1, 12),
    stride_frac=st.floats(0, 1),
    n=st.integers(1, 60),
    seed=st.integers(0, 1000),
    invalid_p=st.floats(0, 0.2),
)
def test_ring_buffer_equals_a_naive_window(window, stride_frac, n, seed, invalid_p):
    stride = max(1, int(round(stride_frac * window)))
    md = meta(("a/acc_x", "a/acc_y"), window=window, stride=stride)
    buf = WindowBuffer(md)
    rng = np.random.default_rng(seed)
    naive: deque = deque(maxlen=window)
    since = 0
    for k in range(n):
        row = rng.normal(size=2)
        ok = rng.random() >= invalid_p
        ready = buf.push(row, k * 10_000_000, ok)
        naive.append((normalise(row, md.input_mean, md.input_std), ok))
        since += 1
        expect_ready = k + 1 >= window and since >= stride
        if expect_ready:
            since = 0
        assert ready == expect_ready
        if k + 1 >= window:
            np.testing.assert_allclose(buf.window(), np.stack([r for r, _ in naive]), rtol=1e-6, atol=1e-6)
            assert buf.valid == all(v for _, v in naive)
        else:
            assert not buf.valid


def test_ring_buffer_restarts_after_a_gap_in_stamps():
    buf = WindowBuffer(meta(("a/acc_x",), window=3, stride=1))
    for k in range(3):
        buf.push(np.array([1.0]), k * 10_000_000)
    assert buf.valid
    assert not buf.push(np.array([1.0]), 100_000_000)  # 70 ms gap at 100 Hz: not consecutive
    assert not buf.valid and buf.gaps == 1


def test_normalise_round_trip():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(denormalise(normalise(x, [1, 2, 3], [2, 2, 4]), [1, 2, 3], [2, 2, 4]), x)


def test_metrics_known_values():
    ref = np.array([0.0, 1.0, 2.0, 3.0])
    assert (
        metrics.rmse(ref, ref) == 0.0 and metrics.r2(ref, ref) == 1.0 and metrics.pearson_r(ref, ref) == 1.0
    )
    est = ref + 0.5
    assert metrics.rmse(est, ref) == pytest.approx(0.5)
    assert metrics.nrmse(est, ref) == pytest.approx(0.5 / 3)
    assert metrics.pearson_r(est, ref) == pytest.approx(1.0)
    assert metrics.r2(est, ref) == pytest.approx(1 - 4 * 0.25 / 5)
    assert metrics.pearson_r(-ref, ref) == pytest.approx(-1.0)
    with_nan = np.array([0.0, np.nan, 2.0, 3.0])
    assert metrics.rmse(with_nan, ref) == 0.0  # non-finite samples are ignored
    assert np.isnan(metrics.pearson_r(np.ones(4), ref))
    table = metrics.joint_metrics(np.stack([est, ref], 1), np.stack([ref, ref], 1), ["hip", "knee"])
    assert table["knee"]["rmse"] == 0.0 and table["hip"]["rmse"] == pytest.approx(0.5)


def test_per_cycle_metrics():
    t = np.linspace(0, 3, 301)
    ref = np.sin(2 * np.pi * t)[:, None]
    est = ref + 0.1
    cycles = metrics.cycle_metrics(est, ref, ["hip"], [0, 100, 200, 300])
    assert len(cycles) == 3 and all(c["hip"]["rmse"] == pytest.approx(0.1) for c in cycles)
    summary = metrics.summarise_cycles(cycles)
    assert summary["hip"]["rmse"]["mean"] == pytest.approx(0.1) and summary["hip"]["rmse"]["n"] == 3
