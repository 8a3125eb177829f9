"""A patch of private rclpy: the lifecycle ``change_state`` service answers an invalid request
instead of killing the node (ros2/rclpy#1209, rclpy 7.1.x). It reaches into
``LifecycleNode._service_change_state`` and ``_state_machine``: re-check on every rclpy upgrade."""

from __future__ import annotations


def guard_change_state(node) -> None:
    """Protect a ``rclpy.lifecycle.LifecycleNode`` against invalid ``change_state`` requests.

    rclpy 7.1.x raises ``RCLError`` out of ``spin`` when a ``change_state`` request names a
    transition that is not available from the current state (ros2/rclpy#1209), which kills the
    node. We replace the service callback by one that checks the requested id/label against the
    available transitions first and answers ``success=False`` for an invalid one (logged), and
    that turns any other error of the transition machinery into ``success=False`` as well.
    """
    srv = getattr(node, "_service_change_state", None)
    if srv is None:
        return
    original = srv.callback
    sm = node._state_machine

    def guarded(req, resp):
        try:
            available = {t[0]: t[1] for t in sm.available_transitions}
            tid, label = req.transition.id, req.transition.label
            ok = (label in available.values()) if label else (tid in available)
            if not ok:
                node.get_logger().warning(
                    f"rejected change_state request (id={tid}, label={label!r}): not available from "
                    f"state '{sm.current_state[1]}'; available: {sorted(available.values())}"
                )
                resp.success = False
                return resp
            return original(req, resp)
        except Exception as exc:
            node.get_logger().error(f"change_state request failed: {exc!r}")
            resp.success = False
            return resp

    srv.callback = guarded
