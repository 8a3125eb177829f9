"""The graphs that ONNX and .pt2 model files carry: window mode, and a step with explicit state.

A TorchScript file keeps ``forward``, ``init_state`` and ``forward_step`` as methods of one
module. An ONNX graph or a torch.export program has a single entry point and only tensor
inputs, so those formats carry (names are part of the file contract):

- the window graph, ``forward``: input ``window`` ``[B, T, C]`` -> output ``torque`` ``[B, J]``;
- for streaming models, the step graph, ``forward_step`` with its state list flattened into
  tensors: inputs ``row`` ``[B, C]`` and ``state_in_0 .. state_in_{N-1}``, outputs
  ``step_torque`` ``[B, J]`` and ``state_out_0 .. state_out_{N-1}``. The state is the TCN's and
  CNN-LSTM's causal-convolution input buffers (``[B, C_layer, (k - 1) * dilation]``) and the
  recurrent h (and c) (``[layers, B, hidden]``). The caller feeds every ``state_out_i`` back as
  ``state_in_i``; the first row starts from zeros of the state inputs' shapes, which is what
  ``init_state`` returns for every model here (checked on export).

``B`` is a dynamic dimension of both graphs (a TensorRT engine fixes it by its profile).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from gait_estimator.errors import ModelError
from gait_estimator.runtime.graph_names import (
    STEP_INPUT,
    STEP_OUTPUT,
    WINDOW_INPUT,
    WINDOW_OUTPUT,
    state_input,
    state_output,
)
from gait_estimator.runtime.metadata import ModelMetadata

__all__ = [
    "STEP_INPUT",
    "STEP_OUTPUT",
    "WINDOW_INPUT",
    "WINDOW_OUTPUT",
    "StepGraph",
    "WindowAndStepGraph",
    "export_failure",
    "state_batch_dims",
    "state_input",
    "state_output",
]

class StepGraph(nn.Module):
    """``forward_step`` as a ``forward`` whose outputs are flat: ``(torque, *state)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, row: Tensor, state: list[Tensor]) -> tuple[Tensor, ...]:
        y, new_state = self.model.forward_step(row, state)
        return (y, *new_state)


class WindowAndStepGraph(nn.Module):
    """Both graphs side by side in one export (ONNX: one file; the loader splits them again)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, window: Tensor, row: Tensor, state: list[Tensor]) -> tuple[Tensor, ...]:
        y, new_state = self.model.forward_step(row, state)
        return (self.model(window), y, *new_state)


def state_batch_dims(model: nn.Module, metadata: ModelMetadata, path: Path) -> list[int]:
    """The batch dimension of every state tensor; refuses a non-zero initial state.

    The explicit-state graphs start from zeros (there is no ``init_state`` entry point in an
    ONNX or .pt2 file), so a model whose ``init_state`` is not all zeros cannot be exported.
    """
    with torch.no_grad():
        one, two = model.init_state(1), model.init_state(2)
    dims = []
    for i, (a, b) in enumerate(zip(one, two, strict=True)):
        if bool(a.any()):
            raise ModelError(
                f"save_model {path}: '{metadata.architecture}' init_state()[{i}] is not zero; ONNX and .pt2 "
                "step graphs start from a zero state (keep such a model in TorchScript)"
            )
        diff = [d for d in range(a.dim()) if a.shape[d] != b.shape[d]]
        if len(diff) != 1:
            raise ModelError(
                f"save_model {path}: cannot tell the batch dimension of state {i} "
                f"(shape {tuple(a.shape)} at batch 1, {tuple(b.shape)} at batch 2)"
            )
        dims.append(diff[0])
    return dims


def export_failure(path: Path, fmt: str, metadata: ModelMetadata, exc: BaseException) -> ModelError:
    """A clear refusal for a model that ``torch.export`` (hence ONNX / .pt2) cannot capture."""
    root = exc
    while root.__cause__ is not None:  # the ONNX exporter wraps torch.export's error
        root = root.__cause__
    lines = [ln.strip() for ln in str(root).splitlines() if ln.strip()] or [""]
    return ModelError(
        f"save_model {path}: the '{metadata.architecture}' model cannot be exported to {fmt} "
        f"({type(root).__name__}: {lines[0][:300]}); TorchScript (.pt) remains available"
    )
