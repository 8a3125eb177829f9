"""Input and output names of the window and step graphs in ONNX and .pt2 model files.

They are part of the file contract (described in ``runtime/explicit_state.py``, which builds the
graphs with torch); the ONNX loader reads them without torch, hence this separate module.
"""

from __future__ import annotations

__all__ = ["STEP_INPUT", "STEP_OUTPUT", "WINDOW_INPUT", "WINDOW_OUTPUT", "state_input", "state_output"]

WINDOW_INPUT, WINDOW_OUTPUT = "window", "torque"
STEP_INPUT, STEP_OUTPUT = "row", "step_torque"


def state_input(i: int) -> str:
    return f"state_in_{i}"


def state_output(i: int) -> str:
    return f"state_out_{i}"
