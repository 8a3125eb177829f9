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
(shape checks, state hand-over, the window-only ring buffer). The backends agree within 1e-5
N·m/kg on every architecture (``test/test_runtime_backends.py``).

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

import io
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gait_estimator.errors import ModelError, ModelFileCorruptError, ModelMetadataError, ModelMismatchError
from gait_estimator.runtime.metadata import (
    METADATA_FILE,
    ModelMetadata,
    first_line,
    no_metadata_error,
    read_file_metadata,
)

__all__ = [
    "MODEL_FORMATS",
    "ArrayRuntime",
    "ModelRuntime",
    "TorchScriptRuntime",
    "check_expected",
    "load_model",
    "model_format",
    "read_metadata",
    "save_model",
    "stream_window_difference",
]

_WARMUP_CALLS = 5
_VERIFY_ATOL = 1e-4  # float32 reload / streaming-vs-window check, relative to output scale


class ModelRuntime(ABC):
    """Window and streaming inference on normalised inputs (see the module docstring)."""

    metadata: ModelMetadata

    @abstractmethod
    def predict_window(self, window: np.ndarray) -> np.ndarray:
        """``[T, C]`` normalised rows, oldest first -> ``[J]`` torque at the newest row."""

    @abstractmethod
    def predict_batch(self, windows: np.ndarray) -> np.ndarray:
        """``[B, T, C]`` -> ``[B, J]``."""

    @abstractmethod
    def reset_stream(self) -> None:
        """Forget the streaming state (zero state, empty ring buffer)."""

    @abstractmethod
    def step(self, row: np.ndarray) -> np.ndarray:
        """``[C]`` normalised row -> ``[J]`` torque at that row, state carried to the next call."""

    @property
    def exact_streaming(self) -> bool:
        """True when ``step`` equals ``predict_window`` of the last T rows at every row."""
        return not self.metadata.streaming


class ArrayRuntime(ModelRuntime):
    """Shape checks, the window-only ring buffer and the state hand-over shared by every backend.

    A backend implements three hooks on float32 arrays: ``_run_window([B, T, C]) -> [B, J]``,
    ``_initial_state()`` and ``_run_step([1, C], state) -> ([1, J], state)``.
    """

    def __init__(self, metadata: ModelMetadata, source: str) -> None:
        self.metadata = metadata
        self.source = source
        self._c = len(metadata.input_channels)
        self._t = metadata.window
        self._j = len(metadata.output_joints)
        self._state: Any = None
        self._ring = np.zeros((2 * self._t, self._c), dtype=np.float32)
        self._ring_pos = 0
        self.reset_stream()

    @abstractmethod
    def _run_window(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _initial_state(self) -> Any: ...

    @abstractmethod
    def _run_step(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]: ...

    # -- window mode -------------------------------------------------------------------------
    def predict_window(self, window: np.ndarray) -> np.ndarray:
        window = np.asarray(window)
        if window.shape != (self._t, self._c):
            raise ValueError(
                f"{self.source}: window shape {window.shape} != (window={self._t}, channels={self._c})"
            )
        return self.predict_batch(window[None])[0]

    def predict_batch(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows)
        if windows.ndim != 3 or windows.shape[1:] != (self._t, self._c):
            raise ValueError(
                f"{self.source}: batch shape {windows.shape} != (B, window={self._t}, channels={self._c})"
            )
        y = self._run_window(np.ascontiguousarray(windows, dtype=np.float32))
        return np.asarray(y).astype(np.float64)

    # -- streaming mode ----------------------------------------------------------------------
    def reset_stream(self) -> None:
        if self.metadata.streaming:
            self._state = self._initial_state()
        self._ring[:] = 0.0
        self._ring_pos = 0

    def step(self, row: np.ndarray) -> np.ndarray:
        row = np.asarray(row)
        if row.shape != (self._c,):
            raise ValueError(f"{self.source}: row shape {row.shape} != (channels={self._c},)")
        if self.metadata.streaming:
            y, self._state = self._run_step(row.astype(np.float32).reshape(1, self._c), self._state)
            return np.asarray(y)[0].astype(np.float64)
        # Window-only model: O(T) exact streaming through a double-written ring buffer.
        t, i = self._t, self._ring_pos
        self._ring[i] = row
        self._ring[i + t] = row
        self._ring_pos = (i + 1) % t
        return self.predict_window(self._ring[self._ring_pos : self._ring_pos + t])


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


# -- files ------------------------------------------------------------------------------------
MODEL_FORMATS = ("torchscript", "onnx", "pt2")
_SUFFIX_FORMATS = {".onnx": "onnx", ".pt2": "pt2"}  # any other suffix: TorchScript (.pt)
FORMAT_SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx", "pt2": ".pt2"}


def model_format(path: str | os.PathLike[str]) -> str:
    """The file type decides the backend: ``.onnx`` ONNX Runtime, ``.pt2`` torch.export, else TorchScript."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower(), "torchscript")


def require_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, or ``ModelFileCorruptError`` when it is missing or not a regular file."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileCorruptError(f"model file {p}: not found (or not a regular file)")
    return p


def read_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """The metadata of a model file without building a runtime (any format, by file type)."""
    return read_file_metadata(require_file(path))


def check_expected(
    metadata: ModelMetadata,
    expected_channels: Sequence[str] | None = None,
    expected_joints: Sequence[str] | None = None,
    source: str = "model",
) -> None:
    """Raise ``ModelMismatchError`` naming missing, extra and reordered channels / joints."""
    for what, have, want in (
        ("input channels", metadata.input_channels, expected_channels),
        ("output joints", metadata.output_joints, expected_joints),
    ):
        if want is None:
            continue
        want = tuple(want)
        if have == want:
            continue
        missing = [c for c in have if c not in want]
        extra = [c for c in want if c not in have]
        parts = []
        if missing:
            parts.append(f"the model needs {missing} which the pipeline does not provide")
        if extra:
            parts.append(f"the pipeline provides {extra} which the model does not use")
        if not parts:
            first = next(i for i, (a, b) in enumerate(zip(have, want, strict=True)) if a != b)
            parts.append(
                f"same names in another order (first difference at index {first}: "
                f"model {have[first]!r}, pipeline {want[first]!r})"
            )
        raise ModelMismatchError(f"{source}: {what} differ: " + "; ".join(parts))


def probe_runtime(runtime: ArrayRuntime, source: str) -> None:
    """Check that a runtime behaves as its metadata says (shapes of both modes); refuse if not."""
    md = runtime.metadata
    c, t, j = len(md.input_channels), md.window, len(md.output_joints)
    try:
        y = runtime.predict_batch(np.zeros((2, t, c), dtype=np.float32))
    except Exception as exc:
        raise ModelMetadataError(
            f"{source}: forward() fails on input [B=2, window={t}, channels={c}] from the metadata: "
            f"{first_line(exc)}"
        ) from exc
    if y.shape != (2, j):
        raise ModelMetadataError(
            f"{source}: forward() returns shape {y.shape} but the metadata lists {j} output joints "
            f"(expected (2, {j}))"
        )
    if not md.streaming:
        return
    try:
        runtime.reset_stream()
        ys, _ = runtime._run_step(np.zeros((1, c), dtype=np.float32), runtime._state)
    except Exception as exc:
        raise ModelMetadataError(f"{source}: forward_step() fails on one row of {c} channels: {exc}") from exc
    if np.shape(ys) != (1, j):
        raise ModelMetadataError(f"{source}: forward_step() returns shape {np.shape(ys)}, expected (1, {j})")


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
        runtime = _load_torchscript(p, threads)
    check_expected(runtime.metadata, expected_channels, expected_joints, source=runtime.source)
    probe_runtime(runtime, runtime.source)
    _warm_up(runtime)
    return runtime


def _load_torchscript(p: Path, threads: int) -> TorchScriptRuntime:
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


def _warm_up(runtime: ModelRuntime) -> None:
    """Run the profiling executor's first (slow) calls now rather than on the first estimate."""
    md = runtime.metadata
    window = np.zeros((md.window, len(md.input_channels)), dtype=np.float32)
    for _ in range(_WARMUP_CALLS):
        runtime.predict_window(window)
    if md.streaming:
        for _ in range(_WARMUP_CALLS):
            runtime.step(window[0])
    runtime.reset_stream()


def save_model(
    module: torch.nn.Module,
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
        from gait_estimator.runtime.onnx_file import onnx_bytes

        write_atomically(p, onnx_bytes(module, metadata, p))
    elif fmt == "pt2":
        from gait_estimator.runtime.pt2_file import pt2_bytes

        write_atomically(p, pt2_bytes(module, metadata, p))
    else:
        write_atomically(p, _torchscript_bytes(module, metadata, p))
    _verify_saved(module, metadata, p, check_streaming)
    return p


def write_atomically(p: Path, data: bytes) -> None:
    """Readers never see a half-written model file (a running node may reload it)."""
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, p)


def _torchscript_bytes(module: torch.nn.Module, metadata: ModelMetadata, p: Path) -> bytes:
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


def _verify_saved(module: torch.nn.Module, metadata: ModelMetadata, p: Path, check_streaming: bool) -> None:
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


def stream_window_difference(runtime: ModelRuntime, window: np.ndarray) -> float:
    """Max abs difference between ``step`` over ``window``'s rows from reset and ``predict_window``."""
    runtime.reset_stream()
    y = None
    for row in np.asarray(window):
        y = runtime.step(row)
    runtime.reset_stream()
    assert y is not None
    return float(np.abs(y - runtime.predict_window(window)).max())
