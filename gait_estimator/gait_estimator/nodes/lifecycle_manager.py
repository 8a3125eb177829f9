"""``lifecycle_manager``: brings the lifecycle nodes up in order and the chain down on a failure.

Executable: ``lifecycle_manager`` (``python -m gait_estimator.nodes.lifecycle_manager``), node
name ``lifecycle_manager`` (nav2's manager is C++ and not available here). Parameters
(``params.MANAGER``): ``node_names`` (start-up order, default ``[torque_estimator,
torque_command]``; ``[gait_pipeline]`` for the fused mode), ``autostart``, ``check_period_s``,
``service_timeout_s``, ``missed_checks``, ``transition_timeout_s``, ``startup_timeout_s``,
``command_node``; the command sentinel's ``sentinel``, ``command_topic``, ``joints``,
``sentinel_period_s``, ``sentinel_timeout_s``, ``liveliness_lease_s``.

Start-up: waits for every node's ``change_state`` service, configures all in order, then
activates all in order (nav2's order). A failed transition aborts the start-up and brings the
chain down.

Supervision: every ``check_period_s`` the manager asks each node for its state
(``get_state``). A node that does not answer within ``service_timeout_s`` on ``missed_checks``
consecutive checks (process dead; one missed answer is a scheduling stall of a loaded machine), or
that left *active* for *unconfigured* / *finalized* (an error), is a failure: the command node
is deactivated first (its output ramps to zero), then every other node is deactivated and
cleaned up in reverse order. A node deactivated on purpose (*inactive*) is only logged.

The manager publishes its state on ``lifecycle_manager/state`` (``std_msgs/String``, reliable,
transient local): ``starting``, ``active``, ``failed: <why>``, ``down``. Requests on
``lifecycle_manager/command`` (``std_msgs/String``): ``startup``, ``shutdown`` (deactivate and
clean up everything in reverse order).

Command sentinel (``nodes.command_sentinel``, on unless ``sentinel`` is false): while the
command publisher is dead it publishes zero ``valid = false`` commands on ``command_topic``.

Diagnostics (``/diagnostics``, every second): "lifecycle_manager: <node>" per managed node (OK
active, WARN inactive, ERROR failed or not answering, STALE not checked yet) and
"lifecycle_manager: command sentinel".

All service calls run on a worker thread with bounded waits; the executor thread only
dispatches responses, so nothing here can block the node.
"""

from __future__ import annotations

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from gait_estimator.nodes import diagnostics, runner, topics
from gait_estimator.nodes.command_sentinel import CommandSentinel
from gait_estimator.nodes.params import declare_params

ACTIVE = State.PRIMARY_STATE_ACTIVE
INACTIVE = State.PRIMARY_STATE_INACTIVE
UNCONFIGURED = State.PRIMARY_STATE_UNCONFIGURED
FINALIZED = State.PRIMARY_STATE_FINALIZED


def _label(state: int) -> str:
    return {UNCONFIGURED: "unconfigured", FINALIZED: "finalized"}.get(state, f"state {state}")


class LifecycleManager(Node):
    def __init__(self, name: str = "lifecycle_manager") -> None:
        super().__init__(name)
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        p = self.params = declare_params(self, "lifecycle_manager")
        self.nodes = list(p.node_names)
        group = ReentrantCallbackGroup()
        self._change = {
            n: self.create_client(ChangeState, f"{n}/change_state", callback_group=group) for n in self.nodes
        }
        self._get = {
            n: self.create_client(GetState, f"{n}/get_state", callback_group=group) for n in self.nodes
        }
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self._state_pub = self.create_publisher(String, "lifecycle_manager/state", latched)
        self.create_subscription(String, "lifecycle_manager/command", self._on_command, 10)
        self.state = ""
        self._requests: list[str] = ["startup"] if p.autostart else []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._supervising = False
        self._missed = dict.fromkeys(self.nodes, 0)
        self._states: dict[str, int | None] = dict.fromkeys(self.nodes)  # last answer; None = none
        self.sentinel = CommandSentinel(self, p) if p.sentinel else None
        self._diag_pub = self.create_publisher(DiagnosticArray, topics.TOPIC_DIAGNOSTICS, 10)
        self.create_timer(1.0, self._diagnostics)
        if not p.autostart:
            self._set_state("down")
        self._thread = threading.Thread(target=self._worker, name="lifecycle_manager", daemon=True)
        self._thread.start()

    # -- plumbing -------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        from std_msgs.msg import String

        self.state = state
        self._state_pub.publish(String(data=state))
        if state.startswith("failed"):
            self.get_logger().error(f"state: {state}")
        else:
            self.get_logger().info(f"state: {state}")

    def _call(self, client, request, timeout: float):
        if not client.wait_for_service(timeout_sec=timeout):
            return None
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            client.remove_pending_request(future)
            return None
        return future.result()

    def get_state(self, node: str) -> int | None:
        r = self._call(self._get[node], GetState.Request(), self.params.service_timeout_s)
        self._states[node] = None if r is None else r.current_state.id
        return self._states[node]

    def transition(self, node: str, transition_id: int) -> bool:
        req = ChangeState.Request()
        req.transition.id = transition_id
        r = self._call(self._change[node], req, self.params.transition_timeout_s)
        return bool(r is not None and r.success)

    def _on_command(self, msg) -> None:
        if msg.data in ("startup", "shutdown"):
            self._requests.append(msg.data)
            self._wake.set()
        else:
            self.get_logger().warning(f"unknown command {msg.data!r}: use 'startup' or 'shutdown'")

    # -- behaviour ------------------------------------------------------------------------
    def startup(self) -> bool:
        self._set_state("starting")
        deadline = time.monotonic() + self.params.startup_timeout_s
        for n in self.nodes:
            while not self._change[n].wait_for_service(timeout_sec=0.5):
                if time.monotonic() > deadline or self._stop.is_set():
                    self._fail(f"node '{n}' did not appear within {self.params.startup_timeout_s} s")
                    return False
        for tid, goal, verb in (
            (Transition.TRANSITION_CONFIGURE, INACTIVE, "configure"),
            (Transition.TRANSITION_ACTIVATE, ACTIVE, "activate"),
        ):
            for n in self.nodes:
                state = self.get_state(n)
                if state == goal or (goal == INACTIVE and state == ACTIVE):
                    continue
                if not self.transition(n, tid):
                    self._fail(f"could not {verb} '{n}' (see its log)")
                    return False
                self.get_logger().info(f"{verb}d {n}")
        self._set_state("active")
        self._supervising = True
        return True

    def bring_down(self) -> None:
        """Command node first (its output goes to zero), then the rest in reverse order."""
        order = list(reversed(self.nodes))
        cmd = self.params.command_node
        if cmd in order:
            order.remove(cmd)
            order.insert(0, cmd)
        for n in order:
            if self.get_state(n) == ACTIVE:
                self.transition(n, Transition.TRANSITION_DEACTIVATE)
        for n in order:
            if self.get_state(n) == INACTIVE:
                self.transition(n, Transition.TRANSITION_CLEANUP)

    def _fail(self, why: str) -> None:
        self._supervising = False
        self._set_state(f"failed: {why}")
        self.bring_down()

    def supervise(self) -> None:
        for n in self.nodes:
            state = self.get_state(n)
            if state is None:
                self._missed[n] += 1
                if self._missed[n] >= self.params.missed_checks:
                    self._fail(f"node '{n}' does not answer (process dead?)")
                    return
                self.get_logger().warning(
                    f"node '{n}' did not answer get_state within {self.params.service_timeout_s} s "
                    f"({self._missed[n]}/{self.params.missed_checks})"
                )
                continue
            self._missed[n] = 0
            if state in (UNCONFIGURED, FINALIZED):
                label = "unconfigured" if state == UNCONFIGURED else "finalized"
                self._fail(f"node '{n}' left the active state (now {label})")
                return
            if state == INACTIVE:
                self.get_logger().warning(f"node '{n}' is inactive", throttle_duration_sec=10.0)

    def _worker(self) -> None:
        while not self._stop.is_set():
            try:
                while self._requests:
                    req = self._requests.pop(0)
                    if req == "startup":
                        self.startup()
                    else:
                        self._supervising = False
                        self.bring_down()
                        self._set_state("down")
                if self._supervising:
                    self.supervise()
            except Exception as exc:
                self.get_logger().error(f"manager error: {exc!r}")
            self._wake.wait(self.params.check_period_s)
            self._wake.clear()

    def _diagnostics(self) -> None:
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        failed = self.state.startswith("failed")
        for n in self.nodes:
            state = self._states[n]
            values = {"manager state": self.state, "missed checks": self._missed[n]}
            if state is None:
                level, msg = diagnostics.STALE, "not checked yet"
                if self._missed[n]:
                    level, msg = diagnostics.ERROR, "not answering"
            elif state == ACTIVE:
                level, msg = diagnostics.OK, "active"
            elif state == INACTIVE:
                level, msg = (diagnostics.ERROR if failed else diagnostics.WARN), "inactive"
            else:
                bad = failed or self._supervising
                level, msg = (diagnostics.ERROR if bad else diagnostics.WARN), _label(state)
            arr.status.append(diagnostics.diagnostic_status(self, n, level, msg, values, hardware_id=n))
        if self.sentinel is not None:
            sentinel = diagnostics.diagnostic_status(self, "command sentinel", *self.sentinel.diagnostic())
            arr.status.append(sentinel)
        self._diag_pub.publish(arr)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5.0)


def main(args=None) -> int:
    # Single-threaded: service calls wait on the worker thread, so the executor only dispatches
    # responses, the sentinel and timers. rclpy's MultiThreadedExecutor cost ~0.5 core here with
    # 200 commands/s on the sentinel's subscription (measured), on a 2-core machine.
    return runner.run_node(LifecycleManager, args)


if __name__ == "__main__":
    raise SystemExit(main())
