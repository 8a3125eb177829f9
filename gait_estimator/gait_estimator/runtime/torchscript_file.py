"""TorchScript model files (``*.pt``, the default): ``torch.jit`` archives with the metadata in
``_extra_files`` (``runtime/metadata.py``); streaming models keep ``init_state``/``forward_step``
as scripted methods. Loading unpickles: load only files you trust.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from gait_estimator.errors import ModelError, ModelFileCorruptError, ModelMetadataError
from gait_estimator.runtime.base import ArrayRuntime
from gait_estimator.runtime.metadata import METADATA_FILE, ModelMetadata, first_line, no_metadata_error

__all__ = ["TorchScriptRuntime", "load_torchscript", "torchscript_bytes"]


class TorchScriptRuntime(ArrayRuntime):
    """Runs a loaded TorchScript module; build it with :func:`load_model`."""

    def __init__(
        self, module: torch.jit.ScriptModule, metadata: ModelMetadata, source: str = "<module>"
    ) -> None:
        self.module = module
        super().__init__(metadata, source)

    def _run_window(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(x)).numpy()

    def _initial_state(self) -> list[torch.Tensor]:
        with torch.inference_mode():
            return list(self.module.init_state(1))

    def _run_step(self, x: np.ndarray, state: list[torch.Tensor]) -> tuple[np.ndarray, list[torch.Tensor]]:
        with torch.inference_mode():
            y, state = self.module.forward_step(torch.from_numpy(x), state)
        return y.numpy(), state



def load_torchscript(p: Path, threads: int) -> TorchScriptRuntime:
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(p), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise ModelFileCorruptError(
            f"model file {p}: not a readable TorchScript archive ({first_line(exc)})"
        ) from exc
    if not extra[METADATA_FILE]:
        raise no_metadata_error(p)
    source = f"model file {p}"
    md = ModelMetadata.from_json(extra[METADATA_FILE], source=source)
    if md.streaming:
        for name in ("init_state", "forward_step"):
            if not hasattr(module, name):
                raise ModelMetadataError(
                    f"{source}: metadata says streaming=true but the module has no '{name}' method"
                )
    if threads >= 1:
        torch.set_num_threads(threads)
    module.eval()
    try:
        return TorchScriptRuntime(module, md, source=source)
    except Exception as exc:  # init_state() is the first call into the module
        raise ModelMetadataError(f"{source}: init_state(1) fails: {first_line(exc)}") from exc


def torchscript_bytes(module: torch.nn.Module, metadata: ModelMetadata, p: Path) -> bytes:
    """Script ``module`` (tracing keeps only ``forward``, so streaming models must script)."""
    try:
        scripted = torch.jit.script(module)
    except Exception as script_exc:
        if metadata.streaming:
            raise ModelError(
                f"save_model {p}: streaming model must be scriptable (init_state/forward_step are "
                f"lost by tracing): {script_exc}"
            ) from script_exc
        example = torch.zeros(1, metadata.window, len(metadata.input_channels))
        try:
            scripted = torch.jit.trace(module, example, check_trace=False)
        except Exception as trace_exc:
            raise ModelError(
                f"save_model {p}: neither torch.jit.script ({script_exc}) nor trace ({trace_exc}) works"
            ) from trace_exc
    buf = io.BytesIO()
    torch.jit.save(scripted, buf, _extra_files={METADATA_FILE: metadata.to_json()})
    return buf.getvalue()
