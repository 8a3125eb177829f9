"""The command stage keeps the rate limit between *published* commands (issue 23): every command
is published after a random delay and booked with ``published(..., host time after publish)``;
``limit_nm`` toggles 5 <-> 30 N·m meanwhile. Judged at the worst case the wire allows: the
previous message stamped when its publish returned, this one when it was computed."""

from __future__ import annotations

import numpy as np

from gait_estimator.core.command_stage import CommandStage
from gait_estimator.core.params import validate_node_params

MS = 1_000_000
JOINTS = ["hip_flexion_r", "knee_angle_r", "ankle_angle_r"]


def _params(limit: float) -> dict:
    return validate_node_params(
        "torque_command",
        {
            "joints": JOINTS,
            "gains": [1.0],
            "limit_nm": [limit],
            "rate_limit_nm_s": 1000.0,
            "ramp_s": 0.0,
            "min_confidence": 0.0,
            "watchdog_s": 0.1,
        },
    )


def test_the_rate_limit_holds_between_published_commands_under_publish_delays_and_a_limit_storm():
    rng = np.random.default_rng(5)
    stage = CommandStage(_params(30.0))
    stage.activate()
    now, last, worst, pairs = 10**12, None, 0.0, 0
    for k in range(3000):
        if k % 40 == 0:
            stage.reconfigure(_params(5.0 if (k // 40) % 2 else 30.0))
        torque = rng.uniform(-3.0, 3.0, 3) * 70.0  # far beyond every limit: the output always slews
        stage.submit(JOINTS, torque, now, True, received_ns=now)
        out = stage.command(now)
        mark = now + int(rng.integers(0, 10 * MS))  # publish returns after up to 10 ms
        if last is not None:
            step = np.abs(out.torque - last[0]).max()
            worst = max(worst, step / ((now - last[1]) * 1e-9 * 1000.0))
            pairs += 1
        stage.published(now, out.valid, mark)
        last = (out.torque, mark)
        now = mark + int(rng.integers(0, 2 * MS))
    assert pairs == 2999 and worst <= 1.0 + 1e-9, worst
    assert stage.counts["commands"] == 3000
