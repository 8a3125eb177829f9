"""Why an estimate is not valid, and which causes pass on their own.

A busy computer is the normal case: a starved process or a lost packet leaves a sensor stream
late (beyond ``max_gap_s``), which is **transient**: the command ramps to zero and comes back on
its own after ``recovery_estimates`` clean estimates, with a ramp-in (``core.command_stage``).
A sensor that sends implausible values, a model that outputs NaN/Inf or a window of an unknown
normalisation are **true faults**: the command latches at zero until ``exo/reset`` (as do the
e-stop and, in the shaper, a malformed estimate). Carried on the wire in ``ImuFrame.implausible``,
``FeatureWindow.fault`` and ``JointTorque.fault`` (same codes)."""

from __future__ import annotations

import numpy as np

from gait_estimator.core.samples import SyncFrame

__all__ = [
    "FAULT_INPUT_IMPLAUSIBLE",
    "FAULT_INPUT_STALE",
    "FAULT_MODEL",
    "FAULT_NAMES",
    "FAULT_NONE",
    "TRANSIENT_FAULTS",
    "WindowFault",
    "frame_fault",
]

FAULT_NONE = 0
FAULT_INPUT_STALE = 1  # a sensor stream late or missing beyond max_gap_s
FAULT_INPUT_IMPLAUSIBLE = 2  # a sensor sent implausible values (core/plausibility.py)
FAULT_MODEL = 3  # non-finite model output, or a window of an unknown normalisation
FAULT_NAMES = {
    FAULT_NONE: "none",
    FAULT_INPUT_STALE: "a sensor stream late or missing (max_gap_s)",
    FAULT_INPUT_IMPLAUSIBLE: "implausible sensor values",
    FAULT_MODEL: "model output not finite, or input of another model",
}
TRANSIENT_FAULTS = frozenset({FAULT_INPUT_STALE})


def frame_fault(frame: SyncFrame, locations: tuple[str, ...] | None = None) -> int:
    """Why ``frame`` is invalid for the IMUs ``locations`` (the model's; all when None):
    implausible beats stale; FAULT_NONE when those sensors are valid. Called for invalid rows
    only (rare), so the lookup is not cached."""
    rows = None if locations is None else np.array(
        [i for i, loc in enumerate(frame.locations) if loc in locations], dtype=np.intp
    )
    valid = frame.valid if rows is None else frame.valid[rows]
    if bool(np.all(valid)):
        return FAULT_NONE
    bad = frame.implausible
    if bad is not None and bool(np.any(bad if rows is None else bad[rows])):
        return FAULT_INPUT_IMPLAUSIBLE
    return FAULT_INPUT_STALE


class WindowFault:
    """The cause of a window's invalidity: an invalid row stays in a window for ``window`` rows,
    and so does its cause (the worst one seen in the window wins)."""

    def __init__(self, window: int) -> None:
        self.window = int(window)
        self.reset()

    def reset(self) -> None:
        self._left = {FAULT_INPUT_IMPLAUSIBLE: 0, FAULT_INPUT_STALE: 0}

    def push(self, fault: int) -> int:
        """The row's cause; returns the window's (newest row included)."""
        for k in self._left:
            self._left[k] = max(0, self._left[k] - 1)
        if fault in self._left:
            self._left[fault] = self.window
        if self._left[FAULT_INPUT_IMPLAUSIBLE]:
            return FAULT_INPUT_IMPLAUSIBLE
        return FAULT_INPUT_STALE if self._left[FAULT_INPUT_STALE] else FAULT_NONE
