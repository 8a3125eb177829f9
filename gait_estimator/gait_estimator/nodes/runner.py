"""The process runner of every node executable (``run_node``): init, build, spin, shut down, with
signal handling that lets a lifecycle node publish its last zero command; the executor choice
and the heap freeze that keeps the cyclic GC off the real-time path."""

from __future__ import annotations

import sys

from gait_estimator.errors import ConfigError, GaitEstimatorError


def exit_with_parent(sig: int) -> bool:
    """Ask the kernel for ``sig`` when the process that started this one dies (Linux
    ``PR_SET_PDEATHSIG``): a node never outlives its launcher (``ros2 launch`` stopped early,
    ``gait-estimator run`` killed) as an orphan that keeps publishing. False where the system
    offers no such call (the node then runs as before)."""
    import ctypes
    import os

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(sig), 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
    return True


def run_node(factory, args: list[str] | None = None, executor_factory=None) -> int:
    """``main`` of every executable: init, build, spin, shut down; ConfigError -> exit 2.

    SIGINT/SIGTERM are handled here rather than by rclpy's handler, which shuts the context down
    at once: a lifecycle node first goes through its ``shutdown`` transition while it can still
    publish (the command nodes send a last zero command), then the node is destroyed.

    Ctrl-C in a terminal running ``ros2 launch`` reaches every process twice: the terminal sends
    SIGINT to the whole process group, then launch sends its own ~80 ms later. The handlers only set
    a flag, and once the node is down SIGINT is ignored: Python's exit restores the default action of
    every signal it handles (not of ignored ones), and a second SIGINT landing while DDS tears down
    would kill the process (exit -2) or, with the default handler back, print a traceback."""
    import signal
    import threading

    import rclpy
    from rclpy.clock import Clock, ClockType
    from rclpy.executors import Executor, ExternalShutdownException
    from rclpy.lifecycle import LifecycleNode
    from rclpy.signals import SignalHandlerOptions

    args = sys.argv if args is None else args
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    exit_with_parent(signal.SIGTERM)  # handled like Ctrl-C: the last zero, then exit
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    code = 0
    try:
        node = factory()
        executor = (executor_factory or make_executor(node))()
        executor.add_node(node)
        apply_node_realtime(node)
        freeze_heap()
        # A signal only sets the flag; this timer guarantees a wake-up to see it. (spin_once with a
        # timeout would instead build a timer per wait: measured p99 latency x10 in the chain.) On the
        # steady clock: with use_sim_time a ROS-time timer stops with /clock and shutdown would hang.
        wake = node.create_timer(0.1, lambda: None, clock=Clock(clock_type=ClockType.STEADY_TIME))
        try:
            # rclpy 7.1.6's EventsExecutor never returns from spin_once() without a timeout, not even
            # after a callback ran (measured); with one it returns after each callback, and its C++
            # wait builds nothing per call. SingleThreadedExecutor: no timeout (see above).
            timeout = None if isinstance(executor, Executor) else 1.0
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=timeout)
            node.destroy_timer(wake)
            if isinstance(node, LifecycleNode) and rclpy.ok():
                state = node._state_machine.current_state[1]
                if state in ("unconfigured", "inactive", "active"):
                    node.trigger_shutdown()  # on_shutdown releases (last zero command)
        finally:
            executor.shutdown(timeout_sec=1.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ConfigError, GaitEstimatorError) as exc:
        print(f"[FATAL] {exc}", file=sys.stderr, flush=True)
        code = 2
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    print(f"[WARN] close failed: {exc!r}", file=sys.stderr)
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


def apply_node_realtime(node, period_s: float = 1.0):
    """The node's real-time parameters (``param_schema.REALTIME``: ``thread_priority``,
    ``realtime_policy``, ``cpu_affinity``, ``lock_memory``), applied once before the spin loop to
    every thread the process has (the executor thread and DDS's; later threads inherit). When
    anything is requested, the result is logged in one line (a warning naming what was refused and
    how to allow it) and published on ``/diagnostics`` as "<node>: real-time scheduling" every
    ``period_s``. Returns the ``core.realtime.RealtimeResult`` (None for a node without them)."""
    params = getattr(node, "params", None)
    if params is None or getattr(params, "thread_priority", None) is None:
        return None
    from diagnostic_msgs.msg import DiagnosticArray

    from gait_estimator.core.realtime import apply_realtime, settings_from_params
    from gait_estimator.nodes.diagnostics import OK, WARN, diagnostic_status
    from gait_estimator.nodes.topics import TOPIC_DIAGNOSTICS

    result = apply_realtime(settings_from_params(params), whole_process=True)
    node.realtime = result
    if result.settings.requested:  # (off: nothing to say, behaviour as before)
        (node.get_logger().warning if result.warnings else node.get_logger().info)(result.line())
        level = OK if result.ok else WARN
        message = "applied" if result.ok else "refused (normal scheduling): " + " | ".join(result.warnings)
        pub = node.create_publisher(DiagnosticArray, TOPIC_DIAGNOSTICS, 10)

        def report() -> None:
            arr = DiagnosticArray()
            arr.header.stamp = node.get_clock().now().to_msg()
            arr.status = [diagnostic_status(node, "real-time scheduling", level, message, result.values())]
            pub.publish(arr)

        node.create_timer(period_s, report)
    return result


def make_executor(node):
    """The executor class the node's ``executor`` parameter names (``params.EXECUTOR``; read once, at
    start). ``events``: rclpy's EventsExecutor, a C++ event queue with no Python wait-set rebuilt per
    wake-up (bench_latency compares the two); a node without the parameter gets SingleThreadedExecutor."""
    from rclpy.executors import SingleThreadedExecutor

    name = node.get_parameter("executor").value if node.has_parameter("executor") else "single_threaded"
    if name == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor
    return SingleThreadedExecutor


def freeze_heap() -> None:
    """Collect once, then move every live object (torch, rclpy, the model) out of the cyclic GC's
    reach: a full collection over the ~220k objects of a loaded node takes ~45 ms (measured), a
    pause the real-time path must not take. Called at start-up and after a model is loaded."""
    import gc

    gc.collect()
    gc.freeze()
