"""Importing the ROS-free core, or loading and running an ONNX model file, must not load torch.

Each check runs in a fresh interpreter (``subprocess``): this test process has torch loaded
already, so ``sys.modules`` here says nothing. torch costs ~2.5 s to import and an ONNX
deployment does not ship it; onnxruntime is needed only to run an ONNX file.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import gait_estimator.core
from gait_estimator.runtime.metadata import ModelMetadata
from gait_estimator.runtime.model_file import load_model, save_model
from gait_estimator.runtime.reference_models import LstmRegressor

CHANNELS = ("thigh_r/acc_x", "thigh_r/gyro_z", "shank_r/gyro_z")
JOINTS = ("hip_flexion_r", "knee_angle_r")
HEAVY = ("torch", "onnxruntime")


def _fresh(code: str, *args: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON object, returned here."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_core_module_and_the_runtime_interface_import_without_torch_or_onnxruntime() -> None:
    core = sorted(m.name for m in pkgutil.iter_modules(gait_estimator.core.__path__, "gait_estimator.core."))
    assert "gait_estimator.core.pipeline" in core and len(core) >= 10
    modules = [*core, "gait_estimator.runtime.base", "gait_estimator.runtime.model_file"]
    code = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps({{'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules),"
        " 'loaded': sorted(n for n in sys.argv[1:] if n in sys.modules)}))\n"
    )
    got = _fresh(code, *modules)
    assert got == {"heavy": [], "loaded": sorted(modules)}


def test_loading_and_running_an_onnx_file_imports_no_torch(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = LstmRegressor(len(CHANNELS), len(JOINTS), hidden=8).eval()
    md = ModelMetadata(
        architecture="lstm",
        input_channels=CHANNELS,
        output_joints=JOINTS,
        sample_rate_hz=100.0,
        window=12,
        stride=1,
        input_mean=(0.0,) * len(CHANNELS),
        input_std=(1.0,) * len(CHANNELS),
        output_unit="N.m/kg",
        streaming=True,
    )
    path = save_model(model, md, tmp_path / "lstm.onnx")
    rows = np.random.default_rng(5).normal(size=(md.window, len(CHANNELS)))
    reference = load_model(tmp_path / "lstm.onnx")
    want_window = reference.predict_window(rows)
    want_step = [reference.step(r) for r in rows][-1]
    np.save(tmp_path / "rows.npy", rows)
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "from gait_estimator.runtime.model_file import load_model\n"
        "rt = load_model(sys.argv[1])\n"
        "rows = np.load(sys.argv[2])\n"
        "window = rt.predict_window(rows).tolist()\n"
        "step = [rt.step(r) for r in rows][-1].tolist()\n"
        "print(json.dumps({'kind': type(rt).__name__, 'window': window, 'step': step,"
        f" 'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules)}}))\n"
    )
    got = _fresh(code, str(path), str(tmp_path / "rows.npy"))
    assert got["kind"] == "OnnxRuntime"
    assert got["heavy"] == ["onnxruntime"]  # ONNX Runtime runs it; torch stays out
    np.testing.assert_allclose(got["window"], want_window, atol=1e-6)
    np.testing.assert_allclose(got["step"], want_step, atol=1e-6)
    assert np.abs(want_window).max() > 1e-3  # a real output, not zeros
