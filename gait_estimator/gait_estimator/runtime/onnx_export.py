"""Writing ONNX model files: ``torch.onnx`` (dynamo exporter) with the metadata in ``metadata_props``.

Kept apart from ``runtime/onnx_file.py`` (loading and running) so the ONNX deployment path never
imports torch; the file layout is described there and in ``runtime/explicit_state.py``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from gait_estimator.runtime.explicit_state import (
    STEP_INPUT,
    STEP_OUTPUT,
    WINDOW_INPUT,
    WINDOW_OUTPUT,
    WindowAndStepGraph,
    export_failure,
    state_batch_dims,
    state_input,
    state_output,
)
from gait_estimator.runtime.metadata import METADATA_FILE, ModelMetadata

__all__ = ["OPSET", "onnx_bytes"]

OPSET = 18  # torch's ONNX exporter's own opset (lower ones are converted); TensorRT 10 parses it


def onnx_bytes(module: torch.nn.Module, metadata: ModelMetadata, path: Path) -> bytes:
    """Export ``module`` (eval, CPU) to ONNX with ``metadata`` in ``metadata_props``."""
    import onnx
    from torch.export import Dim

    t, c = metadata.window, len(metadata.input_channels)
    batch = Dim("batch", min=1)
    if metadata.streaming:
        dims = state_batch_dims(module, metadata, path)
        n = len(dims)
        step_batch = Dim("step_batch", min=1)
        graph: torch.nn.Module = WindowAndStepGraph(module)
        args: tuple = (torch.zeros(2, t, c), torch.zeros(2, c), module.init_state(2))
        shapes: tuple = ({0: batch}, {0: step_batch}, [{d: step_batch} for d in dims])
        inputs = [WINDOW_INPUT, STEP_INPUT] + [state_input(i) for i in range(n)]
        outputs = [WINDOW_OUTPUT, STEP_OUTPUT] + [state_output(i) for i in range(n)]
    else:
        graph, args, shapes = module, (torch.zeros(2, t, c),), ({0: batch},)
        inputs, outputs = [WINDOW_INPUT], [WINDOW_OUTPUT]
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed" and similar notes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph,
                args,
                dynamic_shapes=shapes,
                input_names=inputs,
                output_names=outputs,
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
    except Exception as exc:
        raise export_failure(path, "ONNX", metadata, exc) from exc
    finally:
        exporter_log.setLevel(level)
    model = program.model_proto
    onnx.helper.set_model_props(model, {METADATA_FILE: metadata.to_json()})
    return model.SerializeToString()

