"""Shared lifecycle behaviour of the package's lifecycle nodes."""

from __future__ import annotations

from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn


class ReleasingLifecycleNode(LifecycleNode):
    """Cleanup, shutdown and error all release what ``on_configure`` created (``_release``),
    so a node never keeps publishers, timers or a model after leaving the configured states."""

    def _release(self) -> None:
        raise TypeError(f"{type(self).__name__} must define _release")

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS
