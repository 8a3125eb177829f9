"""Shared lifecycle behaviour of the package's lifecycle nodes."""

from __future__ import annotations

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn


class ReleasingLifecycleNode(LifecycleNode):
    """Cleanup, shutdown and error all release what ``on_configure`` created (``_release``),
    so a node never keeps publishers, timers or a model after leaving the configured states."""

    def _release(self) -> None:
        raise TypeError(f"{type(self).__name__} must define _release")

    def destroy_entities(self, entities) -> None:
        """Destroy the timers, subscriptions and publishers in ``entities``."""
        from rclpy.publisher import Publisher
        from rclpy.subscription import Subscription
        from rclpy.timer import Timer

        for e in entities:
            if isinstance(e, Timer):
                self.destroy_timer(e)
            elif isinstance(e, Subscription):
                self.destroy_subscription(e)
            elif isinstance(e, Publisher):
                self.destroy_publisher(e)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS
