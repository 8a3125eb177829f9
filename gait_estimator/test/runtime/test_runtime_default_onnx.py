"""The shipped default model for ONNX Runtime (``models/default.onnx``, issue 23): exported from
``models/default.pt`` with the project's own export (``gait-estimator export``), the same metadata,
and the same outputs within 1e-5 N·m/kg on windows and on a stream; ``model_path: default.onnx``
picks it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gait_estimator.nodes.model_files import default_model_path
from gait_estimator.nodes.params import resolve_model_path
from gait_estimator.runtime.model_file import load_model, read_metadata
from gait_estimator.runtime.onnx_file import OnnxRuntime

PARITY = 1e-5  # N·m/kg


def test_default_onnx_matches_the_default_torchscript_model():
    pt = default_model_path()
    onnx_path = pt.with_suffix(".onnx")
    assert read_metadata(onnx_path) == read_metadata(pt)
    ref, rt = load_model(pt), load_model(onnx_path)
    assert isinstance(rt, OnnxRuntime)
    md = ref.metadata
    rng = np.random.default_rng(23)
    # rows of realistic scale: the model's own input statistics
    stream = np.asarray(md.input_mean) + np.asarray(md.input_std) * rng.normal(
        size=(3 * md.window, len(md.input_mean))
    )
    windows = np.stack([stream[k - md.window + 1 : k + 1] for k in range(md.window - 1, len(stream), 7)])
    ref_w = ref.predict_batch(windows)
    assert np.abs(ref_w).max() > 0.05  # outputs of a realistic size
    assert np.abs(rt.predict_batch(windows) - ref_w).max() <= PARITY
    if md.streaming:
        ref_s = np.asarray([ref.step(r) for r in stream])
        assert np.abs(np.asarray([rt.step(r) for r in stream]) - ref_s).max() <= PARITY


def test_model_path_default_onnx_picks_the_shipped_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no default.onnx here
    assert resolve_model_path("default.onnx") == default_model_path().with_suffix(".onnx")
    assert resolve_model_path("") == default_model_path()
    (tmp_path / "default.onnx").write_bytes(b"")  # a file of that name here is taken as given
    assert resolve_model_path("default.onnx").resolve() == tmp_path / "default.onnx"
    assert resolve_model_path("nothing.onnx") == Path("nothing.onnx")  # the loader names it
