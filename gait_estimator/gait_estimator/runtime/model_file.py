"""Model files: TorchScript, ONNX and torch.export archives with the metadata inside, and the runtimes.

A model file is written by :func:`save_model` and read by :func:`load_model`; its type picks the
backend (:func:`model_format`): ``.onnx`` -> ONNX Runtime (``runtime/onnx_file.py``), ``.pt2``
-> torch.export programs (``runtime/pt2_file.py``), anything else (``.pt``, the default) ->
TorchScript. The metadata (``ModelMetadata``, see ``runtime/metadata.py`` for the contract)
travels inside every file (TorchScript ``_extra_files`` / .pt2 extra file ``METADATA_FILE``,
ONNX ``metadata_props``), so a model can never be fed with channels, rate, window or
normalisation other than those it was trained with.

Loading refuses, in every format, each with its own exception and a message naming the file:

- ``ModelFileCorruptError``: the path is missing, a directory, empty, truncated or not a file
  of the type its name says;
- ``ModelMetadataError``: the file has no metadata, the metadata is malformed, or the model
  does not behave as the metadata says (input shape, output width, missing streaming graph);
- ``ModelMismatchError``: the model is valid but expects other channels (or produces other
  joints) than the caller provides.

:class:`ModelRuntime` is the small interface every runtime implements (window and streaming
inference on normalised numpy rows); :class:`ArrayRuntime` holds what the three backends share
(shape checks, state hand-over, the window-only ring buffer). Both live in ``runtime/base.py``
(no torch), re-exported here; this module imports a backend only when a file of its type is
loaded or saved, so loading and running an ``.onnx`` file never imports torch. The backends
agree within 1e-5 N·m/kg on every architecture (``test/test_runtime_backends.py``).

Streaming vs window mode. ``predict_window`` is stateless: every call sees a whole window and a
recurrent model starts from zero state. ``step`` carries state from row to row:

- streaming models (metadata ``streaming``: ``init_state``/``forward_step``): O(1) per row.
  After ``reset_stream()``, feeding the same T rows through ``step`` reproduces
  ``predict_window`` of those T rows (float32 rounding only, checked by :func:`save_model` and
  the tests). After that the two differ by design: streaming keeps memory older than the window,
  window mode forgets it; for a trained LSTM the difference after warm-up is small but not zero
  (measured in ``test_runtime_model_file.py`` and ``benchmarks/bench_core.py``).
- window-only models (CNN, CNN-GRU-attention): ``step`` keeps a ring buffer of the last T rows
  (zeros before the first T) and runs the window forward: exact, but O(T) per row.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gait_estimator.errors import ModelError
from gait_estimator.runtime.base import (
    FORMAT_SUFFIXES,
    MODEL_FORMATS,
    ArrayRuntime,
    ModelRuntime,
    check_expected,
    model_format,
    probe_runtime,
    read_metadata,
    require_file,
    stream_window_difference,
    warm_up,
)
from gait_estimator.runtime.metadata import ModelMetadata

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "FORMAT_SUFFIXES",
    "MODEL_FORMATS",
    "ArrayRuntime",
    "ModelRuntime",
    "check_expected",
    "load_model",
    "model_format",
    "read_metadata",
    "save_model",
    "stream_window_difference",
]

_VERIFY_ATOL = 1e-4  # float32 reload / streaming-vs-window check, relative to output scale


def load_model(
    path: str | os.PathLike[str],
    expected_channels: Sequence[str] | None = None,
    expected_joints: Sequence[str] | None = None,
    threads: int = 1,
) -> ModelRuntime:
    """Load, validate and warm up a model file of any format (by file type; see the module docstring).

    ``threads`` >= 1 sets the backend's intra-op threads (``torch.set_num_threads``, process-wide,
    for TorchScript and .pt2; the session's for ONNX Runtime). 1 is the real-time choice: no
    thread-pool wake-ups, predictable latency. 0 leaves the backend's default alone.
    """
    if threads < 0:
        raise ValueError(f"threads = {threads}: must be >= 0 (0 keeps the backend's default)")
    p = require_file(path)
    fmt = model_format(p)
    if fmt == "onnx":
        from gait_estimator.runtime.onnx_file import load_onnx

        runtime = load_onnx(p, threads)
    elif fmt == "pt2":
        from gait_estimator.runtime.pt2_file import load_pt2_model

        runtime = load_pt2_model(p, threads)
    else:
        from gait_estimator.runtime.torchscript_file import load_torchscript

        runtime = load_torchscript(p, threads)
    check_expected(runtime.metadata, expected_channels, expected_joints, source=runtime.source)
    probe_runtime(runtime, runtime.source)
    warm_up(runtime)
    return runtime


def save_model(
    module: nn.Module,
    metadata: ModelMetadata,
    path: str | os.PathLike[str],
    check_streaming: bool = True,
) -> Path:
    """Write ``module`` with ``metadata`` embedded in the format of ``path``'s type, then verify it.

    ``.pt`` (or any other suffix): TorchScript (scripted; window-only models fall back to
    tracing). ``.onnx``: ONNX with the window and streaming graphs (``runtime/onnx_file.py``).
    ``.pt2``: torch.export programs (``runtime/pt2_file.py``).

    Verification reloads the file with :func:`load_model` and checks that it reproduces the
    original's output on a random window and, for streaming models, that ``step`` over the same
    T rows from reset reproduces the window output. Raises ``ModelError`` on failure.
    """
    p = Path(path)
    module = module.cpu().eval()
    fmt = model_format(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        from gait_estimator.runtime.onnx_export import onnx_bytes

        write_atomically(p, onnx_bytes(module, metadata, p))
    elif fmt == "pt2":
        from gait_estimator.runtime.pt2_file import pt2_bytes

        write_atomically(p, pt2_bytes(module, metadata, p))
    else:
        from gait_estimator.runtime.torchscript_file import torchscript_bytes

        write_atomically(p, torchscript_bytes(module, metadata, p))
    _verify_saved(module, metadata, p, check_streaming)
    return p


def write_atomically(p: Path, data: bytes) -> None:
    """Readers never see a half-written model file (a running node may reload it)."""
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, p)


def _verify_saved(module: nn.Module, metadata: ModelMetadata, p: Path, check_streaming: bool) -> None:
    import torch

    runtime = load_model(p, threads=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, metadata.window, len(metadata.input_channels), generator=gen)
    with torch.inference_mode():
        ref = module(x).numpy()
    got = runtime.predict_batch(x.numpy())
    scale = max(1.0, float(np.abs(ref).max()))
    diff = float(np.abs(got - ref).max())
    if not math.isfinite(diff) or diff > _VERIFY_ATOL * scale:
        raise ModelError(f"save_model {p}: reloaded model differs from the original by {diff:.3g}")
    if metadata.streaming and check_streaming:
        diff = stream_window_difference(runtime, x[0].numpy())
        if not math.isfinite(diff) or diff > _VERIFY_ATOL * scale:
            raise ModelError(
                f"save_model {p}: streaming (forward_step from init_state over the window) differs from "
                f"window mode (forward) by {diff:.3g}; a streaming model must reproduce its window output"
            )
