"""Simulator cost: one hour of 7-IMU data at 100 Hz for one subject (target < 30 s, one core)."""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402

from gait_estimator.sim.generate import sample_subject, simulate_trial  # noqa: E402


def main() -> None:
    subject = sample_subject(np.random.default_rng(0))
    simulate_trial(subject, 10.0, 1.3, 100.0, seed=1)  # warm-up (template loading)
    t0 = time.perf_counter()
    trial = simulate_trial(subject, 3600.0, 1.3, 100.0, seed=1)
    dt = time.perf_counter() - t0
    n = trial.time_ns.size
    print(f"sim 1 h, 7 IMUs, 100 Hz, 1 subject: {dt:.1f} s ({n} samples, {3600.0 / dt:.0f}x real time); "
          f"target < 30 s: {'PASS' if dt < 30 else 'FAIL'}")


if __name__ == "__main__":
    main()
