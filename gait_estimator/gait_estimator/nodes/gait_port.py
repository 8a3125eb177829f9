"""Gait phase and events on the wire: one adapter for the fused node and the windowing node
(the two places where the IMU frames are). ``gait/state`` (``GaitState``, SensorDataQoS) once
per frame; ``gait/events`` (``GaitEvent``, reliable depth 50) as each event is detected. The
phase itself comes from ``core.gait_phase`` (inside ``core.pipeline.EstimatorPipeline`` in the
fused node)."""

from __future__ import annotations

from gait_estimator.nodes import conversion, topics


class GaitPort:
    """Created in ``on_configure`` / ``__init__``; its publishers are appended to ``entities``."""

    def __init__(self, node, entities: list) -> None:
        from gait_estimator_msgs.msg import GaitEvent, GaitState

        self._state_pub = node.create_publisher(GaitState, topics.TOPIC_GAIT_STATE, topics.sensor_qos())
        self._event_pub = node.create_publisher(GaitEvent, topics.TOPIC_GAIT_EVENTS, topics.events_qos())
        self._msg = GaitState()
        self.counts = {"heel_strikes": 0, "toe_offs": 0}
        entities += [self._state_pub, self._event_pub]

    def publish(self, state) -> None:
        """One frame's ``core.gait_phase.GaitPhaseState`` (None: no phase source, nothing sent)."""
        if state is None:
            return
        for event in state.events:  # events first: a controller switching on them gets them early
            self._event_pub.publish(conversion.gait_event_msg(event))
            self.counts["toe_offs" if event.event else "heel_strikes"] += 1
        self._state_pub.publish(conversion.gait_state_msg(state, self._msg))
