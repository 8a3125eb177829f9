"""Every architecture trains, exports, reloads through the core runtime, and gives the same outputs.

Tolerance: the exported TorchScript file must reproduce the eager model to ``MAX_ABS_DIFF``
(1e-5 N·m/kg) on random windows, and streaming models must reproduce their window output
row by row from ``init_state`` to the same tolerance.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gait_estimator.data.synthetic import make_synthetic_recordings
from gait_estimator.errors import ConfigError
from gait_estimator.runtime.model_file import load_model
from gait_estimator.train.models import ARCHITECTURE_DEFAULTS, build_model
from gait_estimator.train.protocols import split_ua, split_ug, split_ui
from gait_estimator.train.trainer import TrainConfig, train_model

MAX_ABS_DIFF = 1e-5  # N·m/kg, eager vs exported-and-reloaded
WINDOW = 24
SMALL = {
    "lstm": {"hidden": 16, "layers": 2},
    "gru": {"hidden": 16, "layers": 1},
    "cnn": {},
    "cnn_lstm": {"conv_channels": 8, "hidden": 16},
    "cnn_gru_attention": {"conv_channels": 8, "hidden": 16, "attention": 8},
    "tcn": {"channels": 8, "dilations": [1, 2, 4]},
}
STREAMING = {"lstm", "gru", "cnn_lstm", "tcn"}


@pytest.fixture(scope="module")
def recordings():
    return make_synthetic_recordings(n_subjects=3, seconds=12.0, seed=1)


def _cfg(arch: str, **over) -> TrainConfig:
    base = TrainConfig(
        architecture=arch,
        arch_options=SMALL[arch],
        window=WINDOW,
        epochs=2,
        batch_size=64,
        train_stride=3,
        progress=False,
        seq_rows=4,
        threads=1,
    )
    return replace(base, **over)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURE_DEFAULTS))
def test_architecture_trains_exports_reloads_identically(arch: str, recordings, tmp_path: Path) -> None:
    split = split_ui(recordings, "S00")
    res = train_model(split.train, split.val, _cfg(arch), tmp_path / arch, quiet=True)
    assert res.model_path is not None and res.model_path.is_file()
    assert (tmp_path / arch / "config.json").is_file() and (tmp_path / arch / "log.csv").is_file()
    assert (tmp_path / arch / "checkpoints" / "best.pt").is_file()
    assert all(np.isfinite(h["train_loss"]) for h in res.history)
    rt = load_model(res.model_path, threads=0)
    md = rt.metadata
    assert md.architecture == arch and md.output_unit == "N.m/kg" and md.streaming == (arch in STREAMING)
    assert md.input_channels == split.train[0].channels and md.window == WINDOW
    x = np.random.default_rng(0).normal(size=(5, WINDOW, len(md.input_channels))).astype(np.float32)
    with torch.no_grad():
        eager = res.model(torch.from_numpy(x)).numpy()
    assert np.abs(rt.predict_batch(x) - eager).max() <= MAX_ABS_DIFF
    if md.streaming:
        rt.reset_stream()
        for row in x[0]:
            y = rt.step(row)
        assert np.abs(y - eager[0]).max() <= MAX_ABS_DIFF


def test_paper_sized_architectures_build() -> None:
    # Hur 2025 sizes: LSTM 3 x 128, CNN 24/8/10 kernel 5.
    lstm = build_model("lstm", 42, 3, 50)
    assert lstm.rnn.num_layers == 3 and lstm.rnn.hidden_size == 128
    cnn = build_model("cnn", 42, 3, 50)
    assert [m.out_channels for m in cnn.features if isinstance(m, torch.nn.Conv1d)] == [24, 8, 10]
    with pytest.raises(ConfigError, match="architecture"):
        build_model("transformer", 4, 3, 50)
    with pytest.raises(ConfigError, match="accepts"):
        build_model("tcn", 4, 3, 50, hidden=3)


def test_tcn_sequence_training_is_exact_for_window_mode() -> None:
    torch.manual_seed(0)
    tcn = build_model("tcn", 6, 3, 64, channels=8, dilations=(1, 2, 4)).eval()
    x = torch.randn(2, 100, 6)
    rf = tcn.receptive_field
    with torch.no_grad():
        seq = tcn.forward_seq(x)
        for end in (rf - 1, 70, 99):
            win = tcn(x[:, end - rf + 1 : end + 1])
            assert torch.allclose(seq[:, end], win, atol=1e-6)


def test_training_learns_and_is_reproducible(recordings, tmp_path: Path) -> None:
    split = split_ui(recordings, "S01")
    cfg = _cfg("tcn", epochs=8, patience=8, lr=3e-3, train_stride=1)
    a = train_model(split.train, split.val, cfg, None, quiet=True)
    b = train_model(split.train, split.val, replace(cfg), None, quiet=True)
    assert a.history[-1]["val_loss"] < 0.5 * a.history[0]["val_loss"]
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_early_stopping_and_freeze(recordings) -> None:
    split = split_ui(recordings, "S02")
    res = train_model(split.train, split.val, _cfg("gru", epochs=40, patience=1, lr=0.5), None, quiet=True)
    assert len(res.history) < 40 and res.best_epoch <= len(res.history)
    # UA from a model trained on other subjects (UG-like base, one short epoch).
    res = train_model(recordings[:1], recordings[1:2], _cfg("gru", epochs=1), None, quiet=True)
    base = res.model
    ua = split_ua(recordings, "S02", 0.2)
    tuned = train_model(
        ua.train,
        ua.val,
        _cfg("gru", epochs=3, freeze=("backbone",), lr=3e-3, train_stride=1),
        None,
        init=base,
        init_metadata=res.metadata,
        quiet=True,
    )
    assert tuned.best_epoch >= 1
    for (name, p0), p1 in zip(base.named_parameters(), tuned.model.parameters(), strict=True):
        assert torch.equal(p0, p1) == (not name.startswith("head."))
    assert tuned.metadata.input_mean == res.metadata.input_mean  # fine-tuning keeps normalisation
    # A fine-tuning that only makes things worse returns the starting model (epoch 0).
    ruined = train_model(
        ua.train,
        ua.val,
        _cfg("gru", epochs=2, lr=50.0),
        None,
        init=base,
        init_metadata=res.metadata,
        quiet=True,
    )
    assert ruined.best_epoch == 0
    assert all(torch.equal(a, b) for a, b in zip(base.parameters(), ruined.model.parameters(), strict=True))
    with pytest.raises(ConfigError, match="freeze"):
        train_model(
            ua.train,
            ua.val,
            _cfg("gru", freeze=("nothing_here",)),
            None,
            init=base,
            init_metadata=res.metadata,
            quiet=True,
        )


def test_protocol_splits_are_disjoint_in_time_and_subjects(recordings) -> None:
    ui = split_ui(recordings, "S00")
    n = len(recordings[0])
    assert [len(ui.train[0]), len(ui.val[0]), len(ui.test[0])] == [
        round(0.64 * n),
        round(0.8 * n) - round(0.64 * n),
        n - round(0.8 * n),
    ]
    ug = split_ug(recordings, ["S02"], "S01")
    assert {r.subject_id for r in ug.train} == {"S00"} and {r.subject_id for r in ug.test} == {"S02"}
    ua = split_ua(recordings, "S02", 0.2)
    assert len(ua.train[0]) + len(ua.val[0]) == round(0.2 * n)
    np.testing.assert_array_equal(ua.test[0].inputs, recordings[2].inputs[-len(ua.test[0]) :])
    with pytest.raises(ConfigError, match="fraction"):
        split_ua(recordings, "S02", 0.9)
    with pytest.raises(ConfigError, match="subject"):
        split_ui(recordings, "S99")
