"""Model files: TorchScript archives with the metadata inside, and the runtime that runs them.

A model file is written by :func:`save_model` and read by :func:`load_model`; the metadata
(``ModelMetadata``, see ``runtime/metadata.py`` for the module contract) travels in the
archive's ``_extra_files`` under ``METADATA_FILE``, so a model can never be fed with channels,
rate, window or normalisation other than those it was trained with.

Loading refuses, each with its own exception and a message that says what differs:

- ``ModelFileCorruptError``: the path is missing, unreadable or not a TorchScript archive;
- ``ModelMetadataError``: the archive has no metadata, the metadata is malformed, or the module
  does not behave as the metadata says (output width, missing streaming methods);
- ``ModelMismatchError``: the model is valid but expects other channels (or produces other
  joints) than the caller provides.

:class:`ModelRuntime` is the small interface every runtime implements (window and streaming
inference on normalised numpy rows). :class:`TorchScriptRuntime` is the one implementation today;
a ``torch.export`` (.pt2) runtime can implement the same four methods beside it.

Streaming vs window mode. ``predict_window`` is stateless: every call sees a whole window and a
recurrent model starts from zero state. ``step`` carries state from row to row:

- streaming models (metadata ``streaming``: ``init_state``/``forward_step``): O(1) per row.
  After ``reset_stream()``, feeding the same T rows through ``step`` reproduces
  ``predict_window`` of those T rows (float32 rounding only, checked by :func:`save_model` and
  the tests). After that the two differ by design: streaming keeps memory older than the window,
  window mode forgets it; for a trained LSTM the difference after warm-up is small but not zero
  (measured in ``test_runtime_model_file.py`` and ``benchmarks/bench_core.py``).
- window-only models (CNN, TCN, attention): ``step`` keeps a ring buffer of the last T rows
  (zeros before the first T) and runs the window forward: exact, but O(T) per row.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from gait_estimator.errors import ModelError, ModelFileCorruptError, ModelMetadataError, ModelMismatchError
from gait_estimator.runtime.metadata import METADATA_FILE, ModelMetadata

__all__ = [
    "ModelRuntime",
    "TorchScriptRuntime",
    "check_expected",
    "load_model",
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


class TorchScriptRuntime(ModelRuntime):
    """Runs a loaded TorchScript module; build it with :func:`load_model`."""

    def __init__(
        self, module: torch.jit.ScriptModule, metadata: ModelMetadata, source: str = "<module>"
    ) -> None:
        self.module = module
        self.metadata = metadata
        self.source = source
        self._c = len(metadata.input_channels)
        self._t = metadata.window
        self._j = len(metadata.output_joints)
        self._state: list[torch.Tensor] = []
        self._ring = np.zeros((2 * self._t, self._c), dtype=np.float32)
        self._ring_pos = 0
        self.reset_stream()

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
        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        with torch.inference_mode():
            y = self.module(x)
        return y.numpy().astype(np.float64)

    # -- streaming mode ----------------------------------------------------------------------
    def reset_stream(self) -> None:
        if self.metadata.streaming:
            with torch.inference_mode():
                self._state = list(self.module.init_state(1))
        self._ring[:] = 0.0
        self._ring_pos = 0

    def step(self, row: np.ndarray) -> np.ndarray:
        row = np.asarray(row)
        if row.shape != (self._c,):
            raise ValueError(f"{self.source}: row shape {row.shape} != (channels={self._c},)")
        if self.metadata.streaming:
            x = torch.from_numpy(row.astype(np.float32)).view(1, self._c)
            with torch.inference_mode():
                y, self._state = self.module.forward_step(x, self._state)
            return y.numpy()[0].astype(np.float64)
        # Window-only model: O(T) exact streaming through a double-written ring buffer.
        t, i = self._t, self._ring_pos
        self._ring[i] = row
        self._ring[i + t] = row
        self._ring_pos = (i + 1) % t
        return self.predict_window(self._ring[self._ring_pos : self._ring_pos + t])


# -- files ------------------------------------------------------------------------------------
def read_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """The metadata of a model file without loading the module (reads the zip directly)."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileCorruptError(f"model file {p}: not found (or not a regular file)")
    try:
        with zipfile.ZipFile(p) as zf:
            names = [n for n in zf.namelist() if n.endswith("extra/" + METADATA_FILE)]
            if not names:
                raise ModelMetadataError(
                    f"model file {p}: no embedded metadata '{METADATA_FILE}' (export it with "
                    "gait_estimator.runtime.model_file.save_model)"
                )
            text = zf.read(names[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileCorruptError(f"model file {p}: not a TorchScript archive ({exc})") from exc
    return ModelMetadata.from_json(text, source=f"model file {p}")


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


def _probe(module: torch.jit.ScriptModule, md: ModelMetadata, source: str) -> None:
    """Check that the module behaves as its metadata says (shapes, streaming methods)."""
    c, t, j = len(md.input_channels), md.window, len(md.output_joints)
    try:
        with torch.inference_mode():
            y = module(torch.zeros(2, t, c))
    except Exception as exc:
        raise ModelMetadataError(
            f"{source}: forward() fails on input [B=2, window={t}, channels={c}] from the metadata: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        ) from exc
    if tuple(y.shape) != (2, j):
        raise ModelMetadataError(
            f"{source}: forward() returns shape {tuple(y.shape)} but the metadata lists {j} output joints "
            f"(expected (2, {j}))"
        )
    if md.streaming:
        for name in ("init_state", "forward_step"):
            if not hasattr(module, name):
                raise ModelMetadataError(
                    f"{source}: metadata says streaming=true but the module has no '{name}' method"
                )
        try:
            with torch.inference_mode():
                ys, _ = module.forward_step(torch.zeros(1, c), module.init_state(1))
        except Exception as exc:
            raise ModelMetadataError(
                f"{source}: forward_step() fails on one row of {c} channels: {exc}"
            ) from exc
        if tuple(ys.shape) != (1, j):
            raise ModelMetadataError(
                f"{source}: forward_step() returns shape {tuple(ys.shape)}, expected (1, {j})"
            )


def load_model(
    path: str | os.PathLike[str],
    expected_channels: Sequence[str] | None = None,
    expected_joints: Sequence[str] | None = None,
    threads: int = 1,
) -> ModelRuntime:
    """Load, validate and warm up a model file; see the module docstring for the errors.

    ``threads`` >= 1 sets ``torch.set_num_threads`` (process-wide; 1 is the real-time choice:
    no thread-pool wake-ups, predictable latency). 0 leaves torch's setting alone.
    """
    p = Path(path)
    if threads < 0:
        raise ValueError(f"threads = {threads}: must be >= 0 (0 keeps torch's default)")
    if not p.is_file():
        raise ModelFileCorruptError(f"model file {p}: not found (or not a regular file)")
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(str(p), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileCorruptError(f"model file {p}: not a readable TorchScript archive ({msg})") from exc
    raw = extra[METADATA_FILE]
    if not raw:
        raise ModelMetadataError(
            f"model file {p}: no embedded metadata '{METADATA_FILE}' (export the model with "
            "gait_estimator.runtime.model_file.save_model)"
        )
    source = f"model file {p}"
    md = ModelMetadata.from_json(raw, source=source)
    check_expected(md, expected_channels, expected_joints, source=source)
    if threads >= 1:
        torch.set_num_threads(threads)
    module.eval()
    _probe(module, md, source)
    runtime = TorchScriptRuntime(module, md, source=source)
    _warm_up(runtime)
    return runtime


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
    """Script ``module`` (fall back to tracing), embed ``metadata``, write ``path``, verify it.

    Verification reloads the file with :func:`load_model` and checks that the reloaded module
    reproduces the original's output on a random window and, for streaming models, that
    ``step`` over the same T rows from reset reproduces the window output. Tracing keeps only
    ``forward``, so a streaming model must be scriptable. Raises ``ModelError`` on failure.
    """
    p = Path(path)
    module = module.cpu().eval()
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
    p.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf, _extra_files={METADATA_FILE: metadata.to_json()})
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, p)

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
    return p


def stream_window_difference(runtime: ModelRuntime, window: np.ndarray) -> float:
    """Max abs difference between ``step`` over ``window``'s rows from reset and ``predict_window``."""
    runtime.reset_stream()
    y = None
    for row in np.asarray(window):
        y = runtime.step(row)
    runtime.reset_stream()
    assert y is not None
    return float(np.abs(y - runtime.predict_window(window)).max())
