"""Finite-output probe: a model is put in charge of a command only if it answers realistic input.

``load_model`` checks that a file is a model of the declared shapes (it probes with one window at
the training mean). A model can pass that and still output NaN or Inf on the signals it will
really see (a diverged training run, a broken export, a hostile file); in a node it would then
turn every estimate invalid and latch the command's fault: the safe outcome, but it would also
have replaced a good model. The nodes therefore run this probe before a model is used, at
configure and before a swap, and keep the running model when it fails.

The probe input is built from the statistics every model file carries (``input_mean`` /
``input_std``, the model's training inputs): in normalised units a window at the mean (zeros), a
slow sinusoidal gait-like pattern of +-1.5 standard deviations with a different phase per
channel, and seeded N(0, 1) windows (the spread of the training data). Window mode is probed
with all of them, streaming mode by stepping the rows of the sinusoidal window.
"""

from __future__ import annotations

import numpy as np

from gait_estimator.errors import ModelMismatchError
from gait_estimator.runtime.base import ModelRuntime

__all__ = ["check_finite_outputs", "probe_windows"]


def probe_windows(window: int, channels: int, seed: int = 0) -> np.ndarray:
    """``[4, window, channels]`` float32 normalised probe windows (see the module docstring)."""
    t = np.arange(window)[:, None]
    phase = np.linspace(0.0, 2.0 * np.pi, channels, endpoint=False)[None, :]
    gait = 1.5 * np.sin(2.0 * np.pi * t / max(window, 2) + phase)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((2, window, channels))
    return np.concatenate([np.zeros((1, window, channels)), gait[None], noise]).astype(np.float32)


def check_finite_outputs(runtime: ModelRuntime, source: str) -> None:
    """Raise ``ModelMismatchError`` naming ``source`` when the model outputs a non-finite value on
    the probe windows (window mode) or rows (streaming). Leaves the stream reset."""
    md = runtime.metadata
    windows = probe_windows(md.window, len(md.input_channels))
    names = ("the training mean", "a +-1.5 SD gait-like pattern", "N(0, 1) noise", "N(0, 1) noise")
    for name, w in zip(names, windows, strict=True):
        y = np.asarray(runtime.predict_window(w))
        if not np.isfinite(y).all():
            raise ModelMismatchError(
                f"{source}: outputs non-finite values ({y.ravel()[:3].tolist()}...) on realistic input "
                f"({name}, window mode): refused"
            )
    if md.streaming:
        runtime.reset_stream()
        try:
            for w in windows[1:2]:  # one window of rows: a recurrent NaN shows within it
                for row in w:
                    y = np.asarray(runtime.step(row))
                    if not np.isfinite(y).all():
                        raise ModelMismatchError(
                            f"{source}: outputs non-finite values on realistic input (streaming): refused"
                        )
        finally:
            runtime.reset_stream()
