"""Fault injection through the bundled input (issue 16's ``ImuBundle``): the same wire contract as
``test_safety_faults.py`` for a fused ``gait_pipeline`` with ``imu_source: bundle``, fed one
hostile ``ImuBundle`` per instant over DDS. The bundle path pushes samples through
``ImuSynchronizer.push_values`` (plain floats, not ``ImuSample``), so the plausibility gate and the
malformed-message rule are checked on it over real processes:

- 1e9 m/s^2 on one IMU inside otherwise good bundles: zero within ``latency_s`` + slack, never a
  valid saturated command (as on per-IMU topics);
- malformed bundles (an orientation array one value short: the pairing of values to sensors is
  unknown) carry nothing: the streams go silent, so zero within ``max_gap_s + latency_s`` + slack.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from _node_harness import Listener, Procs
from test_safety_faults import (
    IMPLAUSIBLE_BOUND_S,
    LATENCY,
    LIMIT,
    MAX_GAP,
    NODE,
    RATE,
    RATE_LIMIT,
    WATCHDOG,
    ZERO_BOUND_S,
    HostileDriver,
    _first_zero_after,
    _recent_valid,
    _transition,
    check_wire,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

CONFIGURE, ACTIVATE = 1, 3


def _zero_within(listener, inject, bound_s: float, what: str):
    """Inject a fault, record 1 s of commands: wire contract, and all zero within ``bound_s``."""
    from gait_estimator.nodes import topics

    t0 = time.time_ns()
    inject()
    time.sleep(1.0)
    cmds = listener.take(topics.TOPIC_COMMAND)
    check_wire(cmds)
    t_zero = _first_zero_after(cmds, t0)
    print(f"bundle, {what}: zero {t_zero * 1e3:.0f} ms after onset (bound {bound_s * 1e3:.0f} ms)")
    assert t_zero <= bound_s, what
    return t0, cmds


def test_hostile_bundles_bring_the_command_to_zero(tmp_path):
    from gait_estimator_msgs.msg import JointTorque
    from std_msgs.msg import Empty

    from gait_estimator.nodes import model_files, topics
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.sim.generate import sample_subject, simulate_trial

    md = load_model(model_files.default_model_path()).metadata
    trial = simulate_trial(sample_subject(np.random.default_rng(5)), 20.0, 1.3, RATE, seed=5)
    procs = Procs(tmp_path / "logs")
    listener = Listener("safety_bundle_test")
    driver = None
    try:
        procs.start(
            NODE,
            params={
                "imu_source": "bundle",
                "inference_mode": "window",
                "estimate_clock_offset": False,
                "latency_s": LATENCY,
                "max_gap_s": MAX_GAP,
                "gains": [0.3],
                "limit_nm": [LIMIT],
                "rate_limit_nm_s": RATE_LIMIT,
                "watchdog_s": WATCHDOG,
                "ramp_s": 0.1,
                "control_rate_hz": RATE,
            },
        )
        listener.subscribe(JointTorque, topics.TOPIC_COMMAND, topics.command_qos())
        driver = HostileDriver(listener, trial, md.locations, bundle=True)
        _transition(listener, CONFIGURE, "inactive")
        _transition(listener, ACTIVATE, "active")
        reset_pub = listener.publisher(Empty, topics.TOPIC_RESET, topics.command_qos())
        listener.wait_for(lambda: _recent_valid(listener, 50), 90, "50 valid non-zero commands from bundles")

        # 1) 200 ms of 1e9 m/s^2 on thigh_r, inside well-formed bundles
        listener.clear()
        k0: dict = {}

        def implausible(k, loc, t, acc, gyro, quat):
            k0.setdefault("k", k)
            if k - k0["k"] < 20 and loc == "thigh_r":
                return t, np.array([1e9, 0.0, 0.0]), gyro, quat
            return t, acc, gyro, quat

        _zero_within(
            listener, lambda: setattr(driver, "fault", implausible), IMPLAUSIBLE_BOUND_S, "1e9 m/s^2"
        )

        # back to walking: clear the fault, reset the latched command
        driver.fault = None
        deadline = time.monotonic() + 30
        while not _recent_valid(listener, 10) and time.monotonic() < deadline:
            reset_pub.publish(Empty())
            time.sleep(1.0)
        assert _recent_valid(listener, 10), "no valid commands after the implausible burst"

        # 2) malformed bundles for 1 s: nothing in them may be used
        listener.clear()

        def short_orientation(m):
            m.orientation = list(m.orientation)[:-1]
            return m

        t0, cmds = _zero_within(
            listener, lambda: setattr(driver, "mangle", short_orientation), ZERO_BOUND_S, "malformed"
        )
        late = [m for t, m in cmds if t > t0 + ZERO_BOUND_S * 1e9]
        assert late and not any(m.valid for m in late), "valid commands from malformed bundles"
    finally:
        if driver is not None:
            driver.stop()
        listener.close()
        procs.stop()
