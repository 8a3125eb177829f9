"""The diagnostic_updater-style status helpers of ``nodes.diagnostics``, without spinning a node.

Levels and keys as diagnostic_updater's FrequencyStatus, TimeStampStatus and TopicDiagnostic
give them (the DDS tests check what goes out on ``/diagnostics``).
"""

from __future__ import annotations

import pytest

from gait_estimator.nodes.diagnostics import (
    ERROR,
    OK,
    STALE,
    WARN,
    FrequencyStatus,
    TimeStampStatus,
    TopicStatus,
    merge_summary,
)

S = 1_000_000_000


def _run_at(freq: FrequencyStatus, events: int, now_ns: int):
    for _ in range(events):
        freq.tick()
    return freq.run(now_ns)


def test_frequency_status_levels_and_keys():
    f = FrequencyStatus(100.0, 100.0, tolerance=0.1, window_size=1)
    t0 = f._hist[0][1]
    level, msg, values = _run_at(f, 100, t0 + S)
    assert (level, msg) == (OK, "Desired frequency met")
    assert values["Actual frequency (Hz)"] == pytest.approx(100.0)
    assert values["Target frequency (Hz)"] == 100.0
    assert values["Minimum acceptable frequency (Hz)"] == pytest.approx(90.0)
    assert values["Maximum acceptable frequency (Hz)"] == pytest.approx(110.0)
    assert values["Events in window"] == 100 and values["Events since startup"] == 100
    assert values["Duration of window (s)"] == pytest.approx(1.0)
    assert _run_at(f, 80, t0 + 2 * S)[:2] == (WARN, "Frequency too low.")
    assert _run_at(f, 120, t0 + 3 * S)[:2] == (WARN, "Frequency too high.")
    assert _run_at(f, 0, t0 + 4 * S)[:2] == (ERROR, "No events recorded.")


def test_frequency_status_without_upper_bound_has_no_target():
    f = FrequencyStatus(100.0, float("inf"), window_size=1)
    level, _, values = _run_at(f, 1000, f._hist[0][1] + S)
    assert level == OK
    assert "Target frequency (Hz)" not in values and "Maximum acceptable frequency (Hz)" not in values


def test_timestamp_status_levels():
    ts = TimeStampStatus(min_acceptable=-1.0, max_acceptable=5.0)
    assert ts.run()[:2] == (WARN, "No data since last update.")
    ts.tick(10 * S, now_ns=10 * S + S // 100)
    level, msg, values = ts.run()
    assert (level, msg) == (OK, "Timestamps are reasonable.")
    assert values["Earliest timestamp delay:"] == pytest.approx(0.01)
    ts.tick(10 * S, now_ns=16 * S)
    assert ts.run()[:2] == (ERROR, "Timestamps too far in past seen.")
    ts.tick(10 * S, now_ns=8 * S)
    level, msg, values = ts.run()
    assert (level, msg) == (ERROR, "Timestamps too far in future seen.")
    assert values["Late diagnostic update count:"] == 1 and values["Early diagnostic update count:"] == 1
    ts.tick(0)
    assert ts.run()[:2] == (ERROR, "Zero timestamp seen.")


def test_merge_summary_keeps_the_worse_level():
    assert merge_summary(OK, "a", WARN, "b") == (WARN, "b")
    assert merge_summary(ERROR, "a", WARN, "b") == (ERROR, "a")
    assert merge_summary(WARN, "a", WARN, "b") == (WARN, "a; b")
    assert merge_summary(OK, "a", OK, "b") == (OK, "a")


def test_topic_status_is_stale_when_nothing_is_expected():
    active = [False]
    ts = TopicStatus("/gait/torque_estimate", 100.0, 100.0, active=lambda: active[0])
    level, msg, values = ts.run()
    assert level == STALE and "not active" in msg
    assert "Events in window" in values and "Latest timestamp delay:" in values
    active[0] = True
    assert ts.run()[0] == ERROR  # active and silent: no events recorded


@pytest.mark.ros
def test_imu_driver_diagnostics_name_the_device_over_dds(tmp_path):
    """The driver's status on /diagnostics: "<node>: <task>", the device as hardware_id, OK."""
    from _node_harness import Listener, Procs
    from diagnostic_msgs.msg import DiagnosticArray

    procs = Procs(tmp_path / "logs")
    listener = Listener("diagnostics_test")
    try:
        listener.subscribe(DiagnosticArray, "/diagnostics", 50)
        procs.start("imu_driver", params={"source": "sim"})

        def driver_status():
            for _, arr in reversed(listener.take("/diagnostics")):
                for st in arr.status:
                    if st.name == "imu_driver: imu driver":
                        return st
            return None

        listener.wait_for(lambda: driver_status() is not None, 30, "imu_driver diagnostics")
        st = driver_status()
        assert st.hardware_id == "imu sim: simulator" and st.level == b"\x00" and st.message == "streaming"
        assert int({kv.key: kv.value for kv in st.values}["samples"]) > 0
    finally:
        listener.close()
        procs.stop()
