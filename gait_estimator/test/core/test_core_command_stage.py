"""The command stage's fault policy (core.command_stage, core.faults): a transient cause (stale
input) ramps the command to zero and recovers on its own after ``recovery_estimates`` valid
estimates with a ramp-in; a true fault latches until reset; each is one log event."""

from __future__ import annotations

import numpy as np

from gait_estimator.conventions import JOINTS
from gait_estimator.core.command_stage import CommandStage
from gait_estimator.core.faults import FAULT_INPUT_IMPLAUSIBLE, FAULT_INPUT_STALE, FAULT_MODEL
from gait_estimator.core.params import validate_node_params

PERIOD = 10_000_000  # 100 Hz


def _stage(**over) -> CommandStage:
    p = validate_node_params("torque_command", {"ramp_s": 0.05, "gains": [1.0], "lowpass_hz": 0.0, **over})
    stage = CommandStage(p)
    stage.activate()
    return stage


def _run(stage, plan, t0=1_000_000_000):
    """``plan``: per step, None (valid estimate) or a fault code; returns (valid, |torque|) per step."""
    torque = np.full(len(JOINTS), 5.0)
    out = []
    for k, fault in enumerate(plan):
        t = t0 + k * PERIOD
        stage.submit(JOINTS, torque, t, fault is None, 1.0, t, fault=fault or 0)
        c = stage.command(t)
        out.append((bool(c.valid), float(np.abs(c.torque).max())))
    return out


def test_stale_input_is_transient_and_recovers_without_reset():
    stage = _stage(recovery_estimates=10)
    plan = [None] * 30 + [FAULT_INPUT_STALE] * 30 + [None] * 60
    out = _run(stage, plan)
    assert out[29] == (True, 5.0)  # assisting before
    assert not any(v for v, _ in out[45:60])  # the watchdog (0.1 s) took it to zero: not valid
    assert all(tau == 0.0 for _, tau in out[45:69])  # still zero for the 10 clean estimates
    assert out[-1] == (True, 5.0)  # back on its own, no reset
    ramp = [tau for _, tau in out[69:80]]
    assert ramp[0] < 5.0 and ramp == sorted(ramp)  # with a ramp-in, not a jump
    assert stage.shaper.fault is None
    assert stage.counts["transient_episodes"] == 1 and stage.counts["recoveries"] == 1
    assert stage.counts["latches"] == 0
    levels = [(lvl, line.split(":")[0]) for lvl, line in stage.events]
    stale = "a sensor stream late or missing (max_gap_s)"
    assert levels == [("warn", "transient"), ("info", f"recovered from {stale}")]


def test_true_faults_latch_until_reset():
    for fault in (FAULT_INPUT_IMPLAUSIBLE, FAULT_MODEL, 99):
        stage = _stage()
        out = _run(stage, [None] * 30 + [fault] * 3 + [None] * 100)
        assert out[32] == (False, 0.0)  # cut at once
        assert all(v is False and tau == 0.0 for v, tau in out[33:])  # valid input: still latched
        assert stage.counts["latches"] == 1 and stage.events[0][0] == "error", fault
        assert "zero command until exo/reset" in stage.events[0][1]
        stage.reset()
        again = _run(stage, [None] * 100, t0=3_000_000_000)
        assert again[-1] == (True, 5.0)


def test_a_missing_joint_latches_and_a_repeated_transient_is_one_episode():
    stage = _stage(recovery_estimates=5)
    plan = [None] * 20 + [FAULT_INPUT_STALE, None, None, FAULT_INPUT_STALE] + [None] * 40
    _run(stage, plan)
    assert stage.counts["transient_episodes"] == 1 and stage.counts["recoveries"] == 1
    stage.submit(JOINTS[:2], np.ones(2), 5_000_000_000, True, 1.0, 5_000_000_000)
    assert stage.shaper.fault and "lacks a command joint" in stage.events[-1][1]
