"""Model identity on the wire (``FeatureWindow.normalization_id``) across a distributed swap.

The windowing node normalises with the statistics of the model it started with; after
``torque_estimator`` swaps to a retrained model with other statistics, the windows it receives
still carry the old normalisation. Over real DDS: the estimator renormalises them to the new
model's statistics, so its estimates equal a fresh start with the new model on the same raw
input (windowing and estimator both on the new model); a window normalised for a model the
estimator never loaded is refused (an invalid estimate, never read with the wrong statistics).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from _node_harness import Listener, Procs, change_state, set_string_param

pytestmark = pytest.mark.ros

CONFIGURE, ACTIVATE = 1, 3
MASS = 70.0


def _z(raw: np.ndarray, md) -> np.ndarray:
    """What the windowing node of model ``md`` publishes for raw SI rows (float32 on the wire)."""
    return ((raw - np.asarray(md.input_mean)) / np.asarray(md.input_std)).astype(np.float32)


def test_swap_to_other_statistics_renormalises_and_foreign_windows_are_refused(tmp_path):
    from gait_estimator_msgs.msg import JointTorque

    from gait_estimator.nodes import conversion, topics
    from gait_estimator.runtime.model_file import load_model
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    path_a = make_tiny_lstm_model(tmp_path / "a.pt", window=30, seed=1)
    path_c = make_tiny_lstm_model(tmp_path / "c.pt", window=30, seed=2, stats_shift=0.5)  # retrained
    a, c = load_model(path_a), load_model(path_c)
    md_a, md_c = a.metadata, c.metadata
    assert md_a.normalization_id != md_c.normalization_id and md_a.input_channels == md_c.input_channels

    procs = Procs(tmp_path / "logs")
    listener = Listener("identity_test")
    try:
        procs.start("torque_estimator", params={"model_path": str(path_a), "inference_mode": "window",
                                                "subject_mass_kg": MASS})
        listener.subscribe(JointTorque, topics.TOPIC_ESTIMATE, topics.sensor_qos(topics.SENSOR_SUB_DEPTH))
        from gait_estimator_msgs.msg import FeatureWindow

        pub = listener.publisher(FeatureWindow, topics.TOPIC_FEATURES, topics.sensor_qos())
        assert change_state(listener, "torque_estimator", CONFIGURE), procs.log("torque_estimator")
        assert change_state(listener, "torque_estimator", ACTIVATE)
        listener.wait_for(lambda: pub.get_subscription_count() > 0, 10, "the estimator's subscription")
        rng = np.random.default_rng(7)
        sent: dict[int, np.ndarray] = {}  # stamp -> raw window

        def send(raw, norm_md, stamp, ident=None):
            sent[stamp] = raw
            pub.publish(conversion.window_to_msg(
                _z(raw, norm_md), stamp, norm_md.input_channels, norm_md.sample_rate_hz, True,
                normalization_id=norm_md.normalization_id if ident is None else ident,
            ))
            time.sleep(0.02)

        def raw_window():
            return np.asarray(md_a.input_mean) + rng.normal(0, 1, (md_a.window, len(md_a.input_channels))) * \
                np.asarray(md_a.input_std)

        def estimates(stamps):
            got = {conversion.stamp_to_ns(m.header.stamp): m for _, m in listener.take(topics.TOPIC_ESTIMATE)}
            return {s: got[s] for s in stamps if s in got}

        before = [10**9 + k * 10**7 for k in range(10)]
        for s in before:
            send(raw_window(), md_a, s)
        listener.wait_for(lambda: len(estimates(before)) == len(before), 10, "estimates before the swap")
        for s, m in estimates(before).items():
            assert m.valid
            expected = a.predict_window(_z(sent[s], md_a))
            np.testing.assert_allclose(np.asarray(m.torque) / MASS, expected, atol=1e-5)

        assert set_string_param(listener, "torque_estimator", "model_path", str(path_c)).successful
        listener.wait_for(lambda: "model swapped to" in procs.log("torque_estimator"), 20, "the swap")
        after = [2 * 10**9 + k * 10**7 for k in range(10)]
        for s in after:  # the windowing node still runs model A's statistics
            send(raw_window(), md_a, s)
        listener.wait_for(lambda: len(estimates(after)) == len(after), 10, "estimates after the swap")
        worst = 0.0
        for s, m in estimates(after).items():
            assert m.valid
            fresh = c.predict_window(_z(sent[s], md_c))  # a fresh start: windowing + estimator on C
            stale = c.predict_window(_z(sent[s], md_a))  # what reading A's rows with C would give
            worst = max(worst, float(np.max(np.abs(np.asarray(m.torque) / MASS - fresh))))
            assert np.max(np.abs(fresh - stale)) > 1e-3  # the statistics really differ
        print(f"swap to other statistics: max |estimate - fresh start| = {worst:.2e} N·m/kg")
        assert worst < 1e-4  # float32 rounding of the renormalised window

        foreign = [3 * 10**9 + k * 10**7 for k in range(5)]
        for s in foreign:
            send(raw_window(), md_a, s, ident="0123456789abcdef")
        listener.wait_for(lambda: len(estimates(foreign)) == len(foreign), 10, "answers to foreign windows")
        assert all(not m.valid and not any(m.torque) for m in estimates(foreign).values())
        assert "refused" in procs.log("torque_estimator")
    finally:
        listener.close()
        procs.stop()
