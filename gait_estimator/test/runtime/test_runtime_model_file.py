"""Model files: save/load round trip, the three refusals, streaming vs window equivalence."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from gait_estimator.errors import ModelError, ModelFileCorruptError, ModelMetadataError, ModelMismatchError
from gait_estimator.runtime.metadata import METADATA_FILE, ModelMetadata
from gait_estimator.runtime.model_file import load_model, read_metadata, save_model, stream_window_difference
from gait_estimator.runtime.reference_models import DEFAULT_CHANNELS, LstmRegressor, make_tiny_lstm_model

CHANNELS = ("thigh_r/acc_x", "thigh_r/gyro_z", "shank_r/acc_x", "shank_r/gyro_z")
JOINTS = ("hip_flexion_r", "knee_angle_r")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_lstm_model(
        tmp_path_factory.mktemp("m") / "tiny.pt", CHANNELS, JOINTS, window=20, rate=100
    )


def test_round_trip_metadata_and_prediction(tiny):
    rt = load_model(tiny, expected_channels=CHANNELS, expected_joints=JOINTS)
    md = rt.metadata
    assert md == read_metadata(tiny)
    assert (md.input_channels, md.output_joints, md.window, md.sample_rate_hz) == (
        CHANNELS,
        JOINTS,
        20,
        100.0,
    )
    assert md.streaming and md.architecture == "lstm" and md.training["seed"] == 0
    x = np.random.default_rng(0).normal(size=(20, 4))
    y = rt.predict_window(x)
    assert y.shape == (2,) and np.isfinite(y).all()
    np.testing.assert_allclose(rt.predict_batch(np.stack([x, x]))[1], y, atol=1e-6)
    assert torch.get_num_threads() == 1


def test_seeded_reference_model_is_deterministic(tmp_path):
    a = load_model(make_tiny_lstm_model(tmp_path / "a.pt", CHANNELS, JOINTS, window=10))
    b = load_model(make_tiny_lstm_model(tmp_path / "b.pt", CHANNELS, JOINTS, window=10))
    x = np.ones((10, 4))
    assert np.array_equal(a.predict_window(x), b.predict_window(x))


def test_corrupt_file_is_refused(tiny, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a zip at all" * 100)
    with pytest.raises(ModelFileCorruptError, match="not a readable TorchScript archive"):
        load_model(junk)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny.read_bytes()[: tiny.stat().st_size // 2])
    with pytest.raises(ModelFileCorruptError, match="truncated.pt"):
        load_model(truncated)
    with pytest.raises(ModelFileCorruptError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_missing_metadata_is_refused(tmp_path):
    bare = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.script(LstmRegressor(4, 2)), str(bare))
    with pytest.raises(ModelMetadataError, match=f"no embedded metadata '{METADATA_FILE}'"):
        load_model(bare)
    with pytest.raises(ModelMetadataError, match="no embedded metadata"):
        read_metadata(bare)


def test_malformed_or_inconsistent_metadata_is_refused(tmp_path):
    module = torch.jit.script(LstmRegressor(4, 2))
    bad_json = tmp_path / "bad_json.pt"
    torch.jit.save(module, str(bad_json), _extra_files={METADATA_FILE: "{not json"})
    with pytest.raises(ModelMetadataError, match="not valid JSON"):
        load_model(bad_json)
    lacking = tmp_path / "lacking.pt"
    torch.jit.save(module, str(lacking), _extra_files={METADATA_FILE: '{"architecture": "lstm"}'})
    with pytest.raises(ModelMetadataError, match="lacks required field"):
        load_model(lacking)
    md = ModelMetadata(
        "lstm",
        CHANNELS,
        100.0,
        20,
        1,
        (0.0,) * 4,
        (1.0,) * 4,
        JOINTS + ("ankle_angle_r",),
        "N.m/kg",
        streaming=True,
    )
    wrong_width = tmp_path / "wrong_width.pt"
    torch.jit.save(module, str(wrong_width), _extra_files={METADATA_FILE: md.to_json()})
    with pytest.raises(ModelMetadataError, match="3 output joints"):
        load_model(wrong_width)


def test_model_expecting_other_channels_is_refused(tiny):
    other = ("thigh_l/acc_x",) + CHANNELS[1:]
    with pytest.raises(ModelMismatchError, match=r"input channels differ.*needs \['thigh_r/acc_x'\]"):
        load_model(tiny, expected_channels=other)
    with pytest.raises(ModelMismatchError, match="another order"):
        load_model(tiny, expected_channels=CHANNELS[::-1])
    with pytest.raises(ModelMismatchError, match="output joints differ"):
        load_model(tiny, expected_joints=("ankle_angle_r", "knee_angle_r"))


def test_the_three_refusals_are_distinct_types():
    kinds = (ModelFileCorruptError, ModelMetadataError, ModelMismatchError)
    for a in kinds:
        for b in kinds:
            assert (a is b) == issubclass(a, b)


def test_streaming_from_reset_reproduces_window_output_and_long_run_difference(tmp_path):
    """The documented equivalence: T steps from reset == window of those T rows (float32 only).

    After that, streaming keeps memory older than the window: the difference on a long smooth
    run is measured and bounded here (and printed by benchmarks/bench_core.py).
    """
    path = make_tiny_lstm_model(tmp_path / "m.pt", DEFAULT_CHANNELS, window=50, rate=100, hidden=64, layers=2)
    rt = load_model(path)
    rng = np.random.default_rng(3)
    t = np.arange(1000)[:, None] / 100.0
    phase = rng.uniform(0, 2 * np.pi, size=(1, 63))
    x = np.sin(2 * np.pi * 1.0 * t + phase) + 0.1 * rng.normal(size=(1000, 63))
    assert stream_window_difference(rt, x[:50]) < 1e-5
    rt.reset_stream()
    stream = np.asarray([rt.step(row) for row in x])
    window = rt.predict_batch(np.stack([x[k - 49 : k + 1] for k in range(49, 1000)]))
    diff = np.abs(stream[49:] - window)
    assert diff[0].max() < 1e-5  # the first full window: identical
    scale = np.abs(window).max()
    assert diff[100:].max() < 0.05 * scale  # untrained LSTM: memory beyond 50 samples is small
    print(
        f"streaming vs window: first window {diff[0].max():.2e}, after warm-up max {diff[100:].max():.2e} "
        f"mean {diff[100:].mean():.2e} (output scale {scale:.2f})"
    )


class TinyCnn(torch.nn.Module):
    """A window-only model: steps run through the runtime's ring buffer (exact, O(T))."""

    def __init__(self, c: int, j: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(c, 8, 5)
        self.head = torch.nn.Linear(8, j)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x.transpose(1, 2))).mean(dim=2))


def test_window_only_model_streams_exactly_through_a_ring_buffer(tmp_path):
    torch.manual_seed(0)
    md = ModelMetadata("cnn", CHANNELS, 100.0, 12, 1, (0.0,) * 4, (1.0,) * 4, JOINTS, "N.m")
    rt = load_model(save_model(TinyCnn(4, 2), md, tmp_path / "cnn.pt"))
    assert rt.exact_streaming
    x = np.random.default_rng(0).normal(size=(40, 4))
    steps = np.asarray([rt.step(r) for r in x])
    for k in range(11, 40):
        np.testing.assert_allclose(steps[k], rt.predict_window(x[k - 11 : k + 1]), atol=1e-6)


def test_save_model_refuses_a_streaming_model_whose_step_differs(tmp_path):
    class Liar(LstmRegressor):
        @torch.jit.export
        def forward_step(
            self, x: torch.Tensor, state: list[torch.Tensor]
        ) -> tuple[torch.Tensor, list[torch.Tensor]]:
            y, (h, c) = self.lstm(x.unsqueeze(1), (state[0], state[1]))
            return self.head(y[:, 0]) + 1.0, [h, c]

    md = ModelMetadata("lstm", CHANNELS, 100.0, 10, 1, (0.0,) * 4, (1.0,) * 4, JOINTS, "N.m", streaming=True)
    with pytest.raises(ModelError, match="streaming .* differs from window mode"):
        save_model(Liar(4, 2), md, tmp_path / "liar.pt")


def test_metadata_is_plain_json_inside_the_zip(tiny):
    with zipfile.ZipFile(tiny) as zf:
        names = [n for n in zf.namelist() if n.endswith(METADATA_FILE)]
    assert len(names) == 1
