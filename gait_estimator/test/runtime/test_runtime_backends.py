"""ONNX Runtime and torch.export (.pt2) backends: parity with TorchScript, and the same refusals.

Parity: for every architecture of ``train/models.py`` (small, seeded random weights, realistic
output scale), the ONNX and .pt2 files give the TorchScript file's outputs within
``PARITY`` = 1e-5 N·m/kg on the same windows (window mode, batched) and on the same stream of
rows (streaming mode, 2.5 windows long so state older than a window is carried).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from gait_estimator.cli.main import main as cli_main
from gait_estimator.errors import ModelError, ModelFileCorruptError, ModelMetadataError, ModelMismatchError
from gait_estimator.runtime.metadata import METADATA_FILE, ModelMetadata
from gait_estimator.runtime.model_file import load_model, read_metadata, save_model
from gait_estimator.runtime.onnx_file import OnnxRuntime
from gait_estimator.runtime.pt2_file import Pt2Runtime
from gait_estimator.runtime.reference_models import LstmRegressor
from gait_estimator.train.models import ARCHITECTURE_DEFAULTS, build_model

PARITY = 1e-5  # N·m/kg
WINDOW = 20
CHANNELS = ("thigh_r/acc_x", "thigh_r/gyro_z", "shank_r/acc_x", "shank_r/gyro_z", "shank_r/acc_y")
JOINTS = ("hip_flexion_r", "knee_angle_r", "ankle_angle_r")
SMALL = {
    "lstm": {"hidden": 12, "layers": 2},
    "gru": {"hidden": 12, "layers": 1},
    "cnn": {"channels": (6, 4), "kernel": 5},
    "cnn_lstm": {"conv_channels": 6, "hidden": 12},
    "cnn_gru_attention": {"conv_channels": 6, "hidden": 12, "attention": 6},
    "tcn": {"channels": 6, "dilations": (1, 2, 4)},
}
BACKENDS = {".onnx": OnnxRuntime, ".pt2": Pt2Runtime}


def _metadata(arch: str, streaming: bool, **over) -> ModelMetadata:
    fields = dict(
        architecture=arch,
        input_channels=CHANNELS,
        sample_rate_hz=100.0,
        window=WINDOW,
        stride=1,
        input_mean=(0.0,) * len(CHANNELS),
        input_std=(1.0,) * len(CHANNELS),
        output_joints=JOINTS,
        output_unit="N.m/kg",
        streaming=streaming,
    )
    fields.update(over)
    return ModelMetadata(**fields)


def _model(arch: str) -> torch.nn.Module:
    torch.manual_seed(7)
    model = build_model(arch, len(CHANNELS), len(JOINTS), WINDOW, **SMALL[arch])
    model.set_output_scale([0.4, 0.6, 0.8], [0.1, -0.2, 0.3])  # trained models output ~N·m/kg
    return model.eval()


@pytest.fixture(scope="module", params=sorted(ARCHITECTURE_DEFAULTS))
def exported(request, tmp_path_factory) -> tuple[str, dict[str, Path]]:
    """One architecture written in all three formats (exports take seconds: once per module)."""
    arch = request.param
    model = _model(arch)
    md = _metadata(arch, bool(model.STREAMING))
    root = tmp_path_factory.mktemp(arch)
    return arch, {ext: save_model(model, md, root / f"{arch}{ext}") for ext in (".pt", ".onnx", ".pt2")}


def test_every_architecture_matches_torchscript_on_windows_and_streams(exported) -> None:
    arch, files = exported
    rng = np.random.default_rng(11)
    stream = rng.normal(size=(int(2.5 * WINDOW), len(CHANNELS)))
    windows = np.stack([stream[k - WINDOW + 1 : k + 1] for k in range(WINDOW - 1, len(stream))])
    reference = load_model(files[".pt"])
    ref_windows = reference.predict_batch(windows)
    ref_stream = np.asarray([reference.step(r) for r in stream])
    assert np.abs(ref_windows).max() > 0.05  # outputs of a realistic size, not all ~0
    for ext, kind in BACKENDS.items():
        rt = load_model(files[ext], expected_channels=CHANNELS, expected_joints=JOINTS)
        assert isinstance(rt, kind) and rt.metadata == reference.metadata
        assert read_metadata(files[ext]) == reference.metadata
        win_diff = np.abs(rt.predict_batch(windows) - ref_windows).max()
        assert win_diff <= PARITY, f"{arch}{ext} window mode differs by {win_diff:.2e}"
        np.testing.assert_allclose(rt.predict_window(windows[3]), ref_windows[3], atol=PARITY)
        rt.reset_stream()
        steps = np.asarray([rt.step(r) for r in stream])
        step_diff = np.abs(steps - ref_stream).max()
        assert step_diff <= PARITY, f"{arch}{ext} streaming differs by {step_diff:.2e}"
        rt.reset_stream()  # reset really restarts from the initial state
        np.testing.assert_allclose(rt.step(stream[0]), ref_stream[0], atol=PARITY)


# -- refusals -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lstm_files(tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("lstm")
    md = _metadata("lstm", True)
    return {
        ext: save_model(LstmRegressor(len(CHANNELS), len(JOINTS), hidden=8), md, root / f"m{ext}")
        for ext in BACKENDS
    }


@pytest.mark.parametrize("ext", sorted(BACKENDS))
def test_corrupt_empty_truncated_or_directory_is_refused(ext: str, lstm_files, tmp_path: Path) -> None:
    junk = tmp_path / f"junk{ext}"
    junk.write_bytes(b"\x00not a model at all" * 100)
    empty = tmp_path / f"empty{ext}"
    empty.write_bytes(b"")
    truncated = tmp_path / f"truncated{ext}"
    truncated.write_bytes(lstm_files[ext].read_bytes()[: lstm_files[ext].stat().st_size // 2])
    kind = "ONNX model" if ext == ".onnx" else "torch.export .pt2 archive"
    for bad in (junk, empty, truncated):
        with pytest.raises(ModelFileCorruptError, match=rf"{bad.name}.*not a readable {kind}"):
            load_model(bad)
    folder = tmp_path / f"folder{ext}"
    folder.mkdir()
    with pytest.raises(ModelFileCorruptError, match=rf"{folder.name}: not found \(or not a regular file\)"):
        load_model(folder)


def test_file_type_picks_the_backend(lstm_files, tmp_path: Path) -> None:
    misnamed = tmp_path / "really_onnx.pt"
    misnamed.write_bytes(lstm_files[".onnx"].read_bytes())
    with pytest.raises(ModelFileCorruptError, match="really_onnx.pt: not a readable TorchScript archive"):
        load_model(misnamed)


def _onnx_with(path: Path, out: Path, metadata: str | None) -> Path:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    if metadata is not None:
        onnx.helper.set_model_props(model, {METADATA_FILE: metadata})
    onnx.save(model, str(out))
    return out


def _pt2_with(model: torch.nn.Module, out: Path, metadata: str | None) -> Path:
    """A plain ``torch.export.save`` of the window program (no step program), given metadata."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nn.LSTM's flat-weights note during export
        program = torch.export.export(model, (torch.zeros(2, WINDOW, len(CHANNELS)),))
    torch.export.save(program, out, extra_files={} if metadata is None else {METADATA_FILE: metadata})
    return out


def test_missing_or_malformed_metadata_is_refused(lstm_files, tmp_path: Path) -> None:
    lstm = LstmRegressor(len(CHANNELS), len(JOINTS), hidden=8).eval()
    cases = [
        (None, "no embedded metadata 'gait_estimator/metadata.json'"),
        ("{not json", "not valid JSON"),
        ('{"architecture": "lstm"}', "lacks required field"),
    ]
    for i, (text, message) in enumerate(cases):
        bad_onnx = _onnx_with(lstm_files[".onnx"], tmp_path / f"bad{i}.onnx", text)
        bad_pt2 = _pt2_with(lstm, tmp_path / f"bad{i}.pt2", text)
        for bad in (bad_onnx, bad_pt2):
            with pytest.raises(ModelMetadataError, match=message):
                load_model(bad)
            with pytest.raises(ModelMetadataError, match=message):
                read_metadata(bad)


def test_metadata_that_does_not_match_the_graph_is_refused(lstm_files, tmp_path: Path) -> None:
    lstm = LstmRegressor(len(CHANNELS), len(JOINTS), hidden=8).eval()
    more_joints = _metadata("lstm", False, output_joints=JOINTS + ("hip_flexion_l",)).to_json()
    other_window = _metadata("lstm", False, window=WINDOW + 4).to_json()
    streaming = _metadata("lstm", True).to_json()
    for ext in BACKENDS:
        if ext == ".onnx":

            def write(text: str, name: str) -> Path:
                return _onnx_with(lstm_files[".onnx"], tmp_path / f"{name}.onnx", text)
        else:

            def write(text: str, name: str) -> Path:
                return _pt2_with(lstm, tmp_path / f"{name}.pt2", text)

        with pytest.raises(ModelMetadataError, match=r"metadata lists 4 output joints \(expected \(2, 4\)\)"):
            load_model(write(more_joints, "joints"))
    # A graph exported for window 20 refuses metadata that says 24 (both backends check shapes).
    with pytest.raises(
        ModelMetadataError, match=r"other_window.onnx: forward\(\) fails on input \[B=2, window=24"
    ):
        load_model(_onnx_with(lstm_files[".onnx"], tmp_path / "other_window.onnx", other_window))
    with pytest.raises(
        ModelMetadataError,
        match=r"other_window.pt2: the window program takes \[2, 20, 5\] but the metadata says \[B, window=24",
    ):
        load_model(_pt2_with(lstm, tmp_path / "other_window.pt2", other_window))
    # streaming=true but only a window graph / program in the file.
    window_only_onnx = tmp_path / "window_only.onnx"
    save_model(lstm, _metadata("lstm", False), window_only_onnx)
    with pytest.raises(ModelMetadataError, match="streaming=true but the step graph is missing"):
        load_model(_onnx_with(window_only_onnx, tmp_path / "no_step.onnx", streaming))
    with pytest.raises(ModelMetadataError, match=r"lacks program\(s\) \['forward_step'\]"):
        load_model(_pt2_with(lstm, tmp_path / "no_step.pt2", streaming))


@pytest.mark.parametrize("ext", sorted(BACKENDS))
def test_model_expecting_other_channels_is_refused(ext: str, lstm_files) -> None:
    other = ("thigh_l/acc_x",) + CHANNELS[1:]
    with pytest.raises(ModelMismatchError, match=r"input channels differ.*needs \['thigh_r/acc_x'\]"):
        load_model(lstm_files[ext], expected_channels=other)
    with pytest.raises(ModelMismatchError, match="output joints differ"):
        load_model(lstm_files[ext], expected_joints=JOINTS[::-1])


class DataDependent(torch.nn.Module):
    """Python control flow on tensor values: TorchScript scripts it, torch.export cannot."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(len(CHANNELS), len(JOINTS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.sum() > 0):
            return self.head(x[:, -1])
        return -self.head(x[:, -1])


class LearntInitialState(LstmRegressor):
    def init_state(self, batch: int) -> list[torch.Tensor]:
        return [torch.ones(self.layers, batch, self.hidden), torch.zeros(self.layers, batch, self.hidden)]


@pytest.mark.parametrize("ext", sorted(BACKENDS))
def test_a_model_that_cannot_export_says_so(ext: str, tmp_path: Path) -> None:
    fmt = "ONNX" if ext == ".onnx" else r"\.pt2 \(torch\.export\)"
    with pytest.raises(ModelError, match=rf"'cnn' model cannot be exported to {fmt}.*TorchScript \(\.pt\)"):
        save_model(DataDependent(), _metadata("cnn", False), tmp_path / f"dd{ext}")
    assert not (tmp_path / f"dd{ext}").exists()
    assert load_model(save_model(DataDependent(), _metadata("cnn", False), tmp_path / "dd.pt"))
    with pytest.raises(ModelError, match=r"init_state\(\)\[0\] is not zero"):
        save_model(
            LearntInitialState(len(CHANNELS), len(JOINTS), hidden=4),
            _metadata("lstm", True),
            tmp_path / f"init{ext}",
        )


def test_cli_exports_each_format_and_the_step_graph_for_tensorrt(lstm_files, tmp_path: Path, capsys) -> None:
    import onnxruntime as ort

    torch.manual_seed(3)
    md = _metadata("tcn", True, training={"arch_options": {"channels": 4, "dilations": [1, 2]}})
    source = save_model(
        build_model("tcn", len(CHANNELS), len(JOINTS), WINDOW, channels=4, dilations=[1, 2]),
        md,
        tmp_path / "tcn.pt",
    )
    reference = load_model(source).predict_window(np.ones((WINDOW, len(CHANNELS))))
    for fmt, ext in (("onnx", ".onnx"), ("pt2", ".pt2")):
        out = tmp_path / f"tcn{ext}"
        assert cli_main(["export", str(source), "--format", fmt, "--out", str(out)]) == 0
        assert f"({fmt}," in capsys.readouterr().out
        got = load_model(out).predict_window(np.ones((WINDOW, len(CHANNELS))))
        np.testing.assert_allclose(got, reference, atol=PARITY)
    assert cli_main(["export", str(source), "--format", "onnx", "--out", str(tmp_path / "x.pt")]) == 2
    assert "--format onnx needs a file ending in .onnx" in capsys.readouterr().err
    # The step graph alone: the inputs trtexec needs shapes for, from the file itself.
    step = tmp_path / "tcn_step.onnx"
    assert cli_main(["export", str(tmp_path / "tcn.onnx"), "--graph", "step", "--out", str(step)]) == 0
    shapes = "row:1x5,state_in_0:1x5x2,state_in_1:1x4x2,state_in_2:1x4x4,state_in_3:1x4x4"
    assert f"trtexec --onnx={step} --shapes={shapes} --saveEngine=tcn_step.plan" in capsys.readouterr().out
    session = ort.InferenceSession(str(step), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == ["row"] + [f"state_in_{i}" for i in range(4)]
    assert [i.shape[1:] for i in session.get_inputs()] == [[5], [5, 2], [4, 2], [4, 4], [4, 4]]
    assert read_metadata(step) == md
    assert cli_main(["export", str(tmp_path / "tcn.onnx"), "--info"]) == 0
    assert '"architecture": "tcn"' in capsys.readouterr().out


def test_offline_pipeline_takes_every_format_by_file_type(tmp_path: Path) -> None:
    """What `validate` and the nodes run (``load_model`` + ``EstimatorPipeline``) on a real bag:
    the same estimates from each file type, in streaming (per sample) and batched window mode."""
    from test_replay_bag import synthetic_trial

    from gait_estimator.replay.offline import ReplayOptions, replay_bag
    from gait_estimator.replay.trial_bag import write_trial_bag
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    bag = write_trial_bag(tmp_path / "bag", synthetic_trial(seconds=4.0, seed=5, mass=72.5), "mcap")
    runs = {}
    for ext in (".pt", *BACKENDS):
        model = load_model(make_tiny_lstm_model(tmp_path / f"tiny{ext}", window=20, hidden=8, seed=3))
        runs[ext] = [
            replay_bag(bag, model, ReplayOptions(mode="streaming", batch=False)),
            replay_bag(bag, model, ReplayOptions(mode="window", batch=True)),
        ]
    for ext in BACKENDS:
        for ref, got in zip(runs[".pt"], runs[ext], strict=True):
            assert ref.est_nm.shape[0] > 200 and ref.est_valid.mean() > 0.8
            assert np.array_equal(ref.est_valid, got.est_valid)
            np.testing.assert_array_equal(ref.est_stamp_ns, got.est_stamp_ns)
            np.testing.assert_allclose(got.est_nm, ref.est_nm, atol=PARITY * 72.5, err_msg=ext)  # N·m


def test_nodes_read_every_file_types_metadata_without_torch(exported):
    """The windowing node reads only the layout (``model_files.read_model_metadata``): an ONNX or .pt2
    file must give it the same metadata as the TorchScript file, and neither torch nor ONNX Runtime
    may be imported for it (checked in a fresh interpreter)."""
    import json
    import subprocess
    import sys

    from gait_estimator.nodes.model_files import read_model_metadata

    _, files = exported
    want = read_metadata(files[".pt"])
    for ext in (".onnx", ".pt2"):
        assert read_model_metadata(files[ext]) == want, ext
    code = (
        "import json, sys\n"
        "from gait_estimator.runtime.metadata import read_file_metadata\n"
        "mds = [read_file_metadata(p).to_json() for p in sys.argv[1:]]\n"
        "print(json.dumps({'heavy': sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules),"
        " 'same': len(set(mds)) == 1}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *(str(files[e]) for e in (".pt", ".onnx", ".pt2"))],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert json.loads(out.stdout) == {"heavy": [], "same": True}
