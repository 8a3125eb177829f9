"""Make the small committed simulated bag: python gait_estimator/test/data/make_sim_bag.py

Subject S000 of seed 20240601, 6 s at 1.3 m/s, 100 Hz, 7 IMUs with the default error model,
mcap storage. Output: gait_estimator/test/data/sim_bag/sim_walk_6s/ (re-created).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from gait_estimator.replay.trial_bag import write_trial_bag
from gait_estimator.sim.generate import sample_subject, simulate_trial

SEED = 20240601
DURATION_S = 6.0
SPEED_MPS = 1.3


def main() -> Path:
    out = Path(__file__).resolve().parent / "sim_bag" / "sim_walk_6s"
    if out.exists():
        shutil.rmtree(out)
    subject = sample_subject(np.random.default_rng(SEED), "S000")
    trial = simulate_trial(subject, DURATION_S, SPEED_MPS, 100.0, seed=SEED, trial_id="sim_walk_6s")
    return write_trial_bag(out, trial, "mcap")


if __name__ == "__main__":
    print(main())
