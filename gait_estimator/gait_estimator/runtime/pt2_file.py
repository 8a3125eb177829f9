"""torch.export model files (``*.pt2``): TorchScript's successor upstream.

A .pt2 package (``torch.export.pt2_archive``) holds named ``ExportedProgram``s and extra files:

- ``model``: the window graph (``forward``); ``torch.export.load(path)`` returns this one;
- ``forward_step`` (streaming models): the step graph with explicit state
  (``runtime/explicit_state.py``: ``row`` and the flattened state in, torque and state out);
- extra file ``METADATA_FILE``: the metadata contract (``runtime/metadata.py``).

The programs run eagerly through ``ExportedProgram.module()``; the same file is the input of
AOTInductor (``torch._inductor.aoti_compile_and_package``) for a compiled deployment. Like
TorchScript, loading unpickles: load only files you trust.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from gait_estimator.errors import ModelError, ModelFileCorruptError, ModelMetadataError
from gait_estimator.runtime.base import ArrayRuntime
from gait_estimator.runtime.explicit_state import StepGraph, export_failure, state_batch_dims
from gait_estimator.runtime.metadata import METADATA_FILE, ModelMetadata, first_line, no_metadata_error

__all__ = ["Pt2Runtime", "load_pt2_model", "pt2_bytes"]

WINDOW_PROGRAM, STEP_PROGRAM = "model", "forward_step"


class Pt2Runtime(ArrayRuntime):
    """Runs the window and step programs of a .pt2 file; build it with ``load_model``.

    The programs' graph modules are called directly with their lifted weights: half the cost of
    ``ExportedProgram.module()`` per step (measured: 257 -> 139 us for a 2 x 64 LSTM), whose
    per-call input guards are replaced by the shape checks at load (:func:`load_pt2_model`) and
    in every ``predict_*``/``step`` call.
    """

    def __init__(self, programs: dict, metadata: ModelMetadata, source: str) -> None:
        window = programs[WINDOW_PROGRAM]
        self.module = window.module()  # the eager view, with the trained model's parameter names
        self._window = _direct_call(window)
        self._step = None
        self._zero_state: list[torch.Tensor] = []
        if metadata.streaming:
            step = programs[STEP_PROGRAM]
            self._step = _direct_call(step)
            self._zero_state = [torch.zeros(shape) for shape in _user_input_shapes(step)[1:]]
        super().__init__(metadata, source)

    def _run_window(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self._window(torch.from_numpy(x))[0].numpy()

    def _initial_state(self) -> list[torch.Tensor]:
        return [s.clone() for s in self._zero_state]

    def _run_step(self, x: np.ndarray, state: list[torch.Tensor]) -> tuple[np.ndarray, list[torch.Tensor]]:
        with torch.inference_mode():
            out = self._step(torch.from_numpy(x), *state)
        return out[0].numpy(), list(out[1:])


def _direct_call(program):
    """``f(*user_inputs) -> outputs`` calling the graph module with the lifted weights first."""
    from torch.export.graph_signature import InputKind, OutputKind

    sig = program.graph_signature
    kinds = [spec.kind for spec in sig.input_specs]
    n_lifted = kinds.index(InputKind.USER_INPUT) if InputKind.USER_INPUT in kinds else len(kinds)
    if InputKind.USER_INPUT in kinds[n_lifted:] and any(k != InputKind.USER_INPUT for k in kinds[n_lifted:]):
        raise ModelMetadataError("unexpected .pt2 program signature (weights after inputs)")
    if any(o.kind != OutputKind.USER_OUTPUT for o in sig.output_specs):
        raise ModelMetadataError("a .pt2 program that mutates its buffers cannot run as a model")
    tables = (program.state_dict, program.constants)
    lifted = [next(t[s.target] for t in tables if s.target in t) for s in sig.input_specs[:n_lifted]]
    graph_module = program.graph_module

    def call(*inputs: torch.Tensor):
        return graph_module(*lifted, *inputs)

    return call


def _user_input_shapes(program, symbolic: int | str = 1) -> list[tuple]:
    """Shapes of a program's user inputs, symbolic (batch) dimensions set to ``symbolic``."""
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    shapes = []
    for name in program.graph_signature.user_inputs:
        shape = placeholders[name].meta["val"].shape
        shapes.append(tuple(d if isinstance(d, int) else symbolic for d in shape))
    return shapes


def _check_inputs(programs: dict, md: ModelMetadata, source: str) -> None:
    """The programs take the rows the metadata describes (the direct calls skip torch's guards)."""
    t, c = md.window, len(md.input_channels)
    window = _user_input_shapes(programs[WINDOW_PROGRAM], "B")
    if len(window) != 1 or window[0][1:] != (t, c):
        shapes = ", ".join(f"[{', '.join(map(str, s))}]" for s in window)
        raise ModelMetadataError(
            f"{source}: the window program takes {shapes} but the metadata says [B, window={t}, channels={c}]"
        )
    if md.streaming:
        step = _user_input_shapes(programs[STEP_PROGRAM], "B")
        if step[0][1:] != (c,):
            raise ModelMetadataError(
                f"{source}: the forward_step program takes rows [{', '.join(map(str, step[0]))}] but the "
                f"metadata lists {c} channels"
            )


def pt2_bytes(module: torch.nn.Module, metadata: ModelMetadata, path: Path) -> bytes:
    """Export the window (and step) programs of ``module`` with ``metadata`` as a .pt2 package."""
    from torch.export import Dim
    from torch.export.pt2_archive._package import package_pt2

    t, c = metadata.window, len(metadata.input_channels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            programs = {
                WINDOW_PROGRAM: torch.export.export(
                    module, (torch.zeros(2, t, c),), dynamic_shapes=({0: Dim("batch", min=1)},)
                )
            }
            if metadata.streaming:
                dims = state_batch_dims(module, metadata, path)
                sb = Dim("step_batch", min=1)
                programs[STEP_PROGRAM] = torch.export.export(
                    StepGraph(module),
                    (torch.zeros(2, c), module.init_state(2)),
                    dynamic_shapes=({0: sb}, [{d: sb} for d in dims]),
                )
    except ModelError:
        raise
    except Exception as exc:
        raise export_failure(path, ".pt2 (torch.export)", metadata, exc) from exc
    buf = io.BytesIO()
    package_pt2(buf, exported_programs=programs, extra_files={METADATA_FILE: metadata.to_json()})
    return buf.getvalue()


def load_pt2_model(p: Path, threads: int) -> Pt2Runtime:
    from torch.export.pt2_archive._package import load_pt2

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            contents = load_pt2(str(p))
    except Exception as exc:
        raise ModelFileCorruptError(
            f"model file {p}: not a readable torch.export .pt2 archive ({first_line(exc)})"
        ) from exc
    raw = contents.extra_files.get(METADATA_FILE)
    if not raw:
        raise no_metadata_error(p)
    source = f"model file {p}"
    md = ModelMetadata.from_json(raw, source=source)
    programs = contents.exported_programs
    needed = [WINDOW_PROGRAM] + ([STEP_PROGRAM] if md.streaming else [])
    missing = [n for n in needed if n not in programs]
    if missing:
        raise ModelMetadataError(
            f"{source}: the .pt2 package lacks program(s) {missing} (has {sorted(programs)}); "
            + ("metadata says streaming=true; " if STEP_PROGRAM in missing else "")
            + "export it with `gait-estimator export --format pt2`"
        )
    _check_inputs(programs, md, source)
    if threads >= 1:
        torch.set_num_threads(threads)
    try:
        return Pt2Runtime(programs, md, source)
    except ModelMetadataError as exc:
        raise ModelMetadataError(f"{source}: {exc}") from exc
