"""Model load and run-time swap, one mechanism for ``torque_estimator`` and ``gait_pipeline``.

A model is put in charge only after it (1) loads and validates (``runtime.model_file.load_model``:
metadata, shapes), (2) reads the input layout the running pipeline produces (channels, window,
rate) and supports the node's ``inference_mode``, and (3) answers realistic input with finite
values (``runtime.probe.check_finite_outputs``). A ``model_path`` set at run time is checked for
(2) from the metadata alone inside the parameter callback (refused at once, with the reason);
(1) and (3) run on a worker thread while the running model keeps estimating, and the new model
is installed with one assignment under the node's lock. If they fail, the old model keeps
running, the failure is logged and counted for ``/diagnostics`` (``rejected_swaps``,
``last_rejection``), and ``model_path`` is set back to the running model's file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from gait_estimator.nodes.params import check_inference_mode, resolve_model_path


def load_checked_runtime(path, threads: int, node_name: str = "", inference_mode: str = "window"):
    """Load, validate and probe a model for a node; raises the package error naming the file."""
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.runtime.probe import check_finite_outputs

    runtime = load_model(path, threads=threads)
    check_inference_mode(node_name, inference_mode, runtime.metadata, path)
    check_finite_outputs(runtime, f"model file {path}")
    return runtime


class ModelSwapper:
    """Run-time ``model_path`` changes of a node (see the module docstring).

    ``install(runtime, path)`` is called on the worker thread to put the new model in charge (the
    node takes its own lock there); ``running()`` returns the runtime now in charge."""

    def __init__(
        self,
        node,
        running: Callable[[], object],
        install: Callable[[object, Path], None],
        threads: int,
        inference_mode: str,
    ) -> None:
        self.node = node
        self.running = running
        self.install = install
        self.threads = threads
        self.inference_mode = inference_mode
        self.model_file = ""
        self.counts = {"swaps": 0, "rejected_swaps": 0}
        self.last_rejection = ""
        self._lock = threading.Lock()

    def _reject(self, reason: str) -> str:
        self.counts["rejected_swaps"] += 1
        self.last_rejection = reason
        self.node.get_logger().error(reason)
        return reason

    def request(self, value: str) -> str:
        """From the parameter callback: '' when accepted (the load runs in the background)."""
        path = resolve_model_path(value)
        if str(path) == self.model_file:
            return ""  # e.g. the revert after a failed background load
        from gait_estimator.runtime.model_file import read_metadata

        runtime = self.running()
        if runtime is None:
            return ""  # unconfigured: configure loads it
        keep = f"model swap rejected, keeping {self.model_file}"
        try:
            md = read_metadata(path)  # every model format; no load yet
        except Exception as exc:
            return self._reject(f"{keep}: {exc}")
        a = runtime.metadata
        layout = (md.input_channels, md.window, md.sample_rate_hz)
        if (a.input_channels, a.window, a.sample_rate_hz) != layout:
            return self._reject(
                f"{keep}: {path} needs another input layout (channels/window/rate) than the running "
                "pipeline produces"
            )
        try:
            check_inference_mode(self.node.get_name(), self.inference_mode, md, path)
        except Exception as exc:
            return self._reject(f"{keep}: {exc}")
        threading.Thread(target=self._load, args=(path,), daemon=True).start()
        return ""

    def _load(self, path: Path) -> None:
        import os

        from rclpy.parameter import Parameter

        try:  # the load must not starve the estimating thread: lowest CPU priority for this one
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (OSError, AttributeError):
            pass

        with self._lock:
            old = self.model_file
            try:
                new = load_checked_runtime(path, self.threads, self.node.get_name(), self.inference_mode)
            except Exception as exc:
                self._reject(f"model swap rejected, keeping {old}: {exc}")
                self.node.set_parameters([Parameter("model_path", value=old)])
                return
            self.install(new, path)
            self.model_file = str(path)
            self.counts["swaps"] += 1
            self.last_rejection = ""
        self.node.get_logger().info(f"model swapped to {path}")
