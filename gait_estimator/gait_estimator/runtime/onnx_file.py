"""ONNX model files (``*.onnx``): run by ONNX Runtime, without torch (written by ``runtime/onnx_export.py``).

One file holds one graph with the window and, for streaming models, the step graph side by
side (names and state layout: ``runtime/explicit_state.py``); the metadata contract
(``runtime/metadata.py``) is the model's ``metadata_props`` entry ``METADATA_FILE``, so any
ONNX tool can read it. ONNX Runtime runs every node of a graph whatever outputs are asked for,
so the loader cuts the file into its two graphs (``onnx.utils.Extractor``) and opens one
session each: a streaming step never pays for the window graph.

For TensorRT, :func:`extract_graph` writes either graph as a plain ONNX file (``gait-estimator
export --format onnx --graph window|step``); see the README section on runtimes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gait_estimator.errors import ModelError, ModelFileCorruptError, ModelMetadataError
from gait_estimator.runtime.base import ArrayRuntime
from gait_estimator.runtime.graph_names import (
    STEP_INPUT,
    STEP_OUTPUT,
    WINDOW_INPUT,
    WINDOW_OUTPUT,
    state_input,
    state_output,
)
from gait_estimator.runtime.metadata import (
    METADATA_FILE,
    ModelMetadata,
    first_line,
    no_metadata_error,
    read_onnx_props,
)

__all__ = ["OnnxRuntime", "extract_graph", "load_onnx", "read_onnx_metadata", "trtexec_shapes"]


class OnnxRuntime(ArrayRuntime):
    """Runs the window and step sessions of an ONNX model file; build it with ``load_model``.

    Streaming runs without allocations: the row, torque and two sets of state buffers are
    bound to the step session once (IO binding), and the state ping-pongs between the sets
    (step k reads set k % 2 and writes the other), which saves a third of a step's cost.
    """

    def __init__(self, window_session, step_session, metadata: ModelMetadata, source: str) -> None:
        self.window_session = window_session
        self.step_session = step_session
        self._bindings: list = []
        if step_session is not None:
            self._bind_step(step_session, len(metadata.input_channels), len(metadata.output_joints))
        super().__init__(metadata, source)

    def _bind_step(self, session, c: int, j: int) -> None:
        by_name = {i.name: i for i in session.get_inputs()}
        n = sum(1 for name in by_name if name.startswith("state_in_"))
        # Symbolic (batch) dimensions become 1: the runtime streams one row at a time.
        shapes = [[d if isinstance(d, int) else 1 for d in by_name[state_input(i)].shape] for i in range(n)]
        self._row = np.zeros((1, c), dtype=np.float32)
        self._torque = np.zeros((1, j), dtype=np.float32)
        self._states = [[np.zeros(shape, dtype=np.float32) for shape in shapes] for _ in range(2)]
        for src, dst in ((0, 1), (1, 0)):
            binding = session.io_binding()
            binding.bind_cpu_input(STEP_INPUT, self._row)
            torque = self._torque
            binding.bind_output(STEP_OUTPUT, "cpu", 0, np.float32, torque.shape, torque.ctypes.data)
            for i in range(n):
                binding.bind_cpu_input(state_input(i), self._states[src][i])
                out = self._states[dst][i]
                binding.bind_output(state_output(i), "cpu", 0, np.float32, out.shape, out.ctypes.data)
            self._bindings.append(binding)

    def _run_window(self, x: np.ndarray) -> np.ndarray:
        return self.window_session.run([WINDOW_OUTPUT], {WINDOW_INPUT: x})[0]

    def _initial_state(self) -> int:
        for buffers in self._states:
            for b in buffers:
                b.fill(0.0)
        return 0  # the state is the index of the buffer set the next step reads

    def _run_step(self, x: np.ndarray, state: int) -> tuple[np.ndarray, int]:
        self._row[:] = x
        self.step_session.run_with_iobinding(self._bindings[state])
        return self._torque, 1 - state


# -- TensorRT helpers ------------------------------------------------------------------------
def extract_graph(path: str | Path, graph: str, out: str | Path) -> Path:
    """Write the ``window`` or ``step`` graph of an ONNX model file alone (metadata kept), e.g.
    for ``trtexec``, which builds an engine for the whole graph it is given."""
    import onnx.utils

    model, md, source = _read(Path(path))
    if graph not in ("window", "step"):
        raise ModelError(f"{source}: graph must be 'window' or 'step', not {graph!r}")
    if graph == "step" and not md.streaming:
        raise ModelMetadataError(f"{source}: a window-only '{md.architecture}' model has no step graph")
    names = _graph_names(model, md, source)
    part = onnx.utils.Extractor(model).extract_model(*names[graph])
    onnx.helper.set_model_props(part, {METADATA_FILE: md.to_json()})
    out = Path(out)
    onnx.save_model(part, str(out))
    return out


def trtexec_shapes(path: str | Path, batch: int = 1) -> str:
    """``--shapes`` for ``trtexec`` from a graph's inputs, the batch dimension set to ``batch``."""
    import onnx

    model = onnx.load_model(str(path), load_external_data=False)
    parts = []
    for value in model.graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in value.type.tensor_type.shape.dim]
        parts.append(f"{value.name}:{'x'.join(str(d) for d in dims)}")
    return ",".join(parts)


# -- reading ----------------------------------------------------------------------------------
def _read(p: Path):
    """The parsed ModelProto, its metadata and the source label; refuses non-ONNX files."""
    model, props = read_onnx_props(p)
    if METADATA_FILE not in props:
        raise no_metadata_error(p)
    source = f"model file {p}"
    return model, ModelMetadata.from_json(props[METADATA_FILE], source=source), source


def read_onnx_metadata(p: Path) -> ModelMetadata:
    return _read(p)[1]


def _graph_names(model, md: ModelMetadata, source: str) -> dict[str, tuple[list[str], list[str]]]:
    """Input and output names of the window and step graphs; refuses a graph that lacks one."""
    have_in = [i.name for i in model.graph.input]
    have_out = [o.name for o in model.graph.output]
    names = {"window": ([WINDOW_INPUT], [WINDOW_OUTPUT])}
    if md.streaming:
        n = sum(1 for name in have_in if name.startswith("state_in_"))
        names["step"] = (
            [STEP_INPUT] + [state_input(i) for i in range(n)],
            [STEP_OUTPUT] + [state_output(i) for i in range(n)],
        )
    for graph, (ins, outs) in names.items():
        missing = [x for x in ins if x not in have_in] + [x for x in outs if x not in have_out]
        if missing or (graph == "step" and len(ins) == 1):
            what = (
                "the window graph" if graph == "window" else "metadata says streaming=true but the step graph"
            )
            raise ModelMetadataError(
                f"{source}: {what} is missing from the ONNX graph (no {missing or ['state_in_0']}; "
                f"graph inputs {have_in}, outputs {have_out}); export it with `gait-estimator export`"
            )
    return names


def load_onnx(p: Path, threads: int) -> OnnxRuntime:
    """Parse, check names and metadata, split into the window and step graphs, open ORT sessions."""
    import onnx.utils
    import onnxruntime as ort

    model, md, source = _read(p)
    names = _graph_names(model, md, source)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # 0: ONNX Runtime's default (all cores)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only

    def session(part):
        try:
            return ort.InferenceSession(part.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelFileCorruptError(
                f"{source}: ONNX Runtime cannot load the graph ({first_line(exc)})"
            ) from exc

    if len(model.graph.input) == 1:  # a window-only graph: nothing to split
        return OnnxRuntime(session(model), None, md, source)
    extractor = onnx.utils.Extractor(model)
    window = session(extractor.extract_model(*names["window"]))
    step = session(extractor.extract_model(*names["step"])) if md.streaming else None
    return OnnxRuntime(window, step, md, source)
