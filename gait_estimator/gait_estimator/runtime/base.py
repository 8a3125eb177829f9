"""The model runtime interface, free of torch and onnxruntime: what core and every backend share.

:class:`ModelRuntime` is the small interface core depends on (window and streaming inference on
normalised numpy rows; see ``runtime/model_file.py`` for streaming vs window mode);
:class:`ArrayRuntime` holds what the backends (``torchscript_file``, ``onnx_file``,
``pt2_file``) share: shape checks, state hand-over, the window-only ring buffer. The file-level
helpers here (format by suffix, metadata reading, expected channels, the load-time probe) need
numpy only, so importing this module, or core, loads neither torch nor onnxruntime.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator.errors import ModelFileCorruptError, ModelMetadataError, ModelMismatchError
from gait_estimator.runtime.metadata import ModelMetadata, first_line, read_file_metadata

__all__ = [
    "FORMAT_SUFFIXES",
    "MODEL_FORMATS",
    "ArrayRuntime",
    "ModelRuntime",
    "check_expected",
    "model_format",
    "probe_runtime",
    "read_metadata",
    "require_file",
    "stream_window_difference",
    "warm_up",
]

_WARMUP_CALLS = 5


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


def warm_up(runtime: ModelRuntime) -> None:
    """Run the profiling executor's first (slow) calls now rather than on the first estimate."""
    md = runtime.metadata
    window = np.zeros((md.window, len(md.input_channels)), dtype=np.float32)
    for _ in range(_WARMUP_CALLS):
        runtime.predict_window(window)
    if md.streaming:
        for _ in range(_WARMUP_CALLS):
            runtime.step(window[0])
    runtime.reset_stream()


def stream_window_difference(runtime: ModelRuntime, window: np.ndarray) -> float:
    """Max abs difference between ``step`` over ``window``'s rows from reset and ``predict_window``."""
    runtime.reset_stream()
    y = None
    for row in np.asarray(window):
        y = runtime.step(row)
    runtime.reset_stream()
    assert y is not None
    return float(np.abs(y - runtime.predict_window(window)).max())
