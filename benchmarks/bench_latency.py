"""IMU-stamp -> command latency and loss, distributed vs fused, over real DDS.

    .venv/bin/python benchmarks/bench_latency.py [--seconds 60] [--rates 100 200 500 1000]
        [--modes fused distributed] [--variants old new] [--inference-mode streaming|window]
        [--load N] [--realtime 0 50]

Issue 23: ``--load N`` runs N busy processes (normal scheduling, bounded in time, killed by PID at
the end) for the whole run; ``--realtime P ...`` runs every configuration once per priority
(``thread_priority`` of the data-path nodes, the floor's processes and this listener; 0 = off;
the lifecycle manager stays normal). Each rate and priority starts with a ``floor`` row: a bare
rclpy timer publishing a stamped message, one DDS hop to a subscriber in another process, both
on the EventsExecutor, measured under the same load; every row prints its p99 over the floor's.

Variants, side by side in one run (each rate: old, then new, then the new/old ratios): ``old`` =
every node on SingleThreadedExecutor, per-IMU ``sensor_msgs/Imu`` topics; ``new`` = every node on
the EventsExecutor (``executor`` events) and, distributed, the bundled input (``imu_driver``
``imu_output`` bundle -> ``imu_synchronizer`` ``imu_input`` bundle). The fused node's input is
in-process either way, so there only the executor differs.

For each mode and IMU rate, 7 simulated IMUs stream in real time (``imu_driver`` sim backend,
or the same backend inside ``gait_pipeline`` for the fused mode); the synchronizer resamples to
the model's rate; the model is ``models/default.pt`` (a seeded tiny LSTM, 100 Hz, window 50,
when the default model is not there yet: said in the output). This process subscribes to
``exo/torque_command`` only and measures, for the first command of every IMU-frame stamp,
receive time - ``header.stamp`` (so the figure includes the last DDS hop to a consumer). The
synchronizer's clock-offset estimation is off (the sim device clock is the host clock), so the
stamp is the sample's real time and a frame goes out as soon as the last IMU of its stamp is in.
Loss = frame stamps on the model's grid between the first and last command without any command;
stale = stamps whose commands all came out invalid (the watchdog blanked them: the estimate was
older than ``watchdog_s`` when the command went out, i.e. the process was starved).

Where the time goes (columns): ``node p50/p99`` is stamp -> command publish inside the command
node (its ``/diagnostics``: the first command of each estimate stamp, over the last 2000 stamps of
the run), the IMU-stamp -> command-publish latency the targets name; ``p99 - node p99`` is the
last DDS hop plus this listener's wake-up; ``frame p50`` (distributed) is stamp ->
``gait/imu_frame`` received here (driver and synchronizer hops). The 1-minute load average
before/after each configuration is printed: on a shared machine it, not the code, dominates the
tail. Targets on this machine: fused p99 <= 2 ms, distributed p99 <= 8 ms, no loss at 200 Hz.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gait_estimator" / "test"))


def _model(tmp: Path) -> tuple[Path, str]:
    from gait_estimator.nodes.model_files import default_model_path

    p = default_model_path()
    if p.is_file():
        return p, f"default model {p}"
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    return make_tiny_lstm_model(
        tmp / "tiny.pt", window=50, rate=100.0, stride=1
    ), "tiny LSTM (models/default.pt not present yet)"


# old: the nodes as before issue 16; events: only the executor changed; new: EventsExecutor everywhere
# and, distributed, the bundled input
VARIANTS = ("old", "events", "new")


def variant_params(variant: str) -> tuple[dict, dict, dict]:
    """(every node's, the driver's, the synchronizer's) extra parameters of a variant."""
    if variant == "old":
        return {"executor": "single_threaded"}, {"imu_output": "topics"}, {"imu_input": "topics"}
    if variant == "events":
        return {"executor": "events"}, {"imu_output": "topics"}, {"imu_input": "topics"}
    return {"executor": "events"}, {"imu_output": "bundle"}, {"imu_input": "bundle"}


def run_one(
    mode: str,
    rate: float,
    seconds: float,
    model: Path,
    logdir: Path,
    inference: str = "streaming",
    variant: str = "old",
    realtime: int = 0,
) -> dict:
    from _node_harness import Listener, Procs
    from diagnostic_msgs.msg import DiagnosticArray
    from gait_estimator_msgs.msg import ImuFrame, JointTorque
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from gait_estimator.nodes.conversion import stamp_to_ns
    from gait_estimator.nodes.model_files import read_model_metadata
    from gait_estimator.nodes.topics import TOPIC_COMMAND, TOPIC_FRAME

    md = read_model_metadata(model)
    procs = Procs(logdir / f"{mode}-{int(rate)}-{variant}-rt{realtime}")
    listener = Listener(f"bench_{mode}_{int(rate)}_{variant}_rt{realtime}")
    every, driver, sync = variant_params(variant)
    manager = dict(every)  # the lifecycle manager (and its sentinel) keeps normal scheduling
    if realtime:
        every = {**every, "thread_priority": realtime}
    listener.subscribe(
        JointTorque, TOPIC_COMMAND, QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    )
    listener.subscribe(
        DiagnosticArray, "/diagnostics", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    )
    if mode == "distributed":
        listener.subscribe(
            ImuFrame, TOPIC_FRAME, QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
        )
    _listener_realtime(realtime)  # now that the listener's threads exist (new threads start normal)
    common_cmd = {"control_rate_hz": md.sample_rate_hz / md.stride, "subject_mass_kg": 70.0, **every}
    load0 = os.getloadavg()[0]
    loop = float(min(300.0, seconds + 30.0))
    try:
        if mode == "fused":
            procs.start(
                "gait_pipeline",
                params={
                    "imu_source": "sim",
                    "driver_rate_hz": rate,
                    "sim_loop_s": loop,
                    "model_path": str(model),
                    "inference_mode": inference,
                    "estimate_clock_offset": False,
                    "publish_reference": False,  # as the distributed driver below
                    **common_cmd,
                },
            )
            procs.start(
                "lifecycle_manager",
                params={"node_names": ["gait_pipeline"], "command_node": "gait_pipeline", **manager},
            )
        else:
            procs.start(
                "imu_driver",
                params={
                    "source": "sim",
                    "rate_hz": rate,
                    "sim_loop_s": loop,
                    "publish_reference": False,
                    **every,
                    **driver,
                },
            )
            procs.start(
                "imu_synchronizer",
                params={"rate_hz": md.sample_rate_hz, "estimate_clock_offset": False, **every, **sync},
            )
            procs.start("windowing", params={"model_path": str(model), **every})
            procs.start(
                "torque_estimator", params={"model_path": str(model), "inference_mode": inference, **every}
            )
            procs.start("torque_command", params=common_cmd)
            procs.start("lifecycle_manager", params=manager)
        listener.wait_for(
            lambda: sum(m.valid for _, m in listener.take(TOPIC_COMMAND)) > 100,
            120,
            "valid commands",
            lambda: " | ".join(f"{n}: {procs.log(n)[-400:]}" for n in procs.procs),
        )
        time.sleep(1.0)
        listener.clear()
        # This listener keeps every message (ImuFrames hold ~60 Python objects each): the cyclic
        # GC's full passes over them stall its receive thread for 0.1-0.6 s in long runs, a
        # latency of the measuring process, not of the pipeline. Off while measuring.
        gc.collect()
        gc.disable()
        try:
            time.sleep(seconds)
            cmds = listener.take(TOPIC_COMMAND)
            frames = listener.take(TOPIC_FRAME)
            diags = listener.take("/diagnostics")
        finally:
            gc.enable()
    finally:
        listener.close()
        procs.stop()
    first: dict[int, int] = {}
    seen: set[int] = set()
    for t, m in cmds:
        s = stamp_to_ns(m.header.stamp)
        seen.add(s)
        if m.valid:
            first.setdefault(s, t)
    stamps = np.array(sorted(first))
    lat = np.array([first[s] - s for s in stamps]) / 1e6
    period = 1e9 * md.stride / md.sample_rate_hz
    expected = int(round((stamps[-1] - stamps[0]) / period)) + 1
    in_range = {s for s in seen if stamps[0] <= s <= stamps[-1]}
    frame_lat = np.array([t - stamp_to_ns(m.header.stamp) for t, m in frames]) / 1e6
    # Is the lifecycle manager (normal scheduling; the sentinel lives there) starved by a data path
    # at real-time priority? Its /diagnostics come every 1 s: the longest gap between two, and
    # the zeros its sentinel sent (none while the command node lives).
    mgr = [t for t, d in diags if any(st.name.startswith("lifecycle_manager: ") for st in d.status)]
    mgr_gap = float(np.diff(mgr).max()) / 1e6 if len(mgr) > 1 else float("nan")
    sentinel = sum(m.header.frame_id == "command_sentinel" for _, m in cmds)
    node = {}
    want = "fused pipeline" if mode == "fused" else "torque command"
    for _, d in diags:
        for st in d.status:
            if want in st.name:
                node = {kv.key: kv.value for kv in st.values}
    return {
        "mode": mode,
        "variant": variant,
        "rt": realtime,
        "imu_hz": rate,
        "commands": len(cmds),
        "estimates": len(stamps),
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "max": float(lat.max()),
        "loss": 1.0 - len(in_range) / expected,
        "stale": (len(in_range) - len(stamps)) / expected,
        "invalid": sum(not m.valid for _, m in cmds),
        "node_p50": float(node.get("latency_p50_ms", "nan")),
        "node_p99": float(node.get("latency_p99_ms", "nan")),
        "frame_p50": float(np.percentile(frame_lat, 50)) if frame_lat.size else float("nan"),
        "load": (load0, os.getloadavg()[0]),
        "mgr_gap": mgr_gap,
        "sentinel": sentinel,
    }


# -- the floor: what rclpy itself gives, measured beside the pipeline under the same load -----------
def floor_role(role: str, rate: float, out: str, priority: int) -> int:
    """One process of the floor: ``pub`` = an rclpy timer at ``rate`` publishing a JointTorque stamped
    with the host time right before ``publish`` (its sequence number in ``torque[0]``); ``sub`` =
    the subscriber in another process, recording receive time - stamp until SIGINT/SIGTERM, then
    writing [sequence, latency ns] to ``out``. Both on the EventsExecutor, the command QoS, and at
    ``priority`` (the nodes' own real-time path, ``core.realtime``) when > 0."""
    import rclpy
    from gait_estimator_msgs.msg import JointTorque
    from rclpy.experimental import EventsExecutor
    from rclpy.signals import SignalHandlerOptions

    from gait_estimator.core.realtime import RealtimeSettings, apply_realtime
    from gait_estimator.nodes import conversion, topics

    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(f"floor_{role}")
    rec: list[tuple[int, int]] = []
    if role == "pub":
        pub = node.create_publisher(JointTorque, "bench/floor", topics.command_qos())
        msg = conversion.joint_torque_msg(0, JointTorque.SOURCE_COMMAND, ["hip_flexion_r"], [0.0])
        seq = [0]

        def tick() -> None:
            seq[0] += 1
            msg.torque[0] = float(seq[0])
            conversion.set_stamp(msg.header.stamp, time.time_ns())
            pub.publish(msg)

        node.create_timer(1.0 / rate, tick)
    else:

        def on_msg(m) -> None:
            rec.append((int(m.torque[0]), time.time_ns() - conversion.stamp_to_ns(m.header.stamp)))

        node.create_subscription(JointTorque, "bench/floor", on_msg, topics.command_qos())
    if priority:
        print(apply_realtime(RealtimeSettings(priority), whole_process=True).line(), flush=True)
    executor = EventsExecutor()
    executor.add_node(node)
    gc.collect()
    gc.freeze()
    print("ready", flush=True)
    while not stop:
        executor.spin_once(timeout_sec=0.1)
    if role == "sub":
        np.save(out, np.array(rec, dtype=np.int64).reshape(-1, 2))
    executor.shutdown(timeout_sec=1.0)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def run_floor(rate: float, seconds: float, realtime: int, tmp: Path) -> dict:
    """The floor row: pub -> one DDS hop -> sub, two processes, for ``seconds``."""
    import subprocess

    out = tmp / f"floor-{int(rate)}-{realtime}.npy"
    me = [sys.executable, str(Path(__file__).resolve()), "--floor-role"]
    load0 = os.getloadavg()[0]
    sub = subprocess.Popen(
        [*me, "sub", str(rate), str(out), str(realtime)], stdout=subprocess.PIPE, text=True
    )
    pub = subprocess.Popen([*me, "pub", str(rate), "", str(realtime)], stdout=subprocess.PIPE, text=True)
    try:
        for p in (sub, pub):
            while (line := p.stdout.readline()) and line.strip() != "ready":
                pass
        time.sleep(1.0 + seconds)
    finally:
        for p in (pub, sub):
            p.send_signal(signal.SIGINT)
        for p in (pub, sub):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
    rec = np.load(out)
    rec = rec[rec[:, 0] > rec[0, 0] + int(rate)]  # the first second is start-up
    lat = rec[:, 1] / 1e6
    expected = int(rec[-1, 0] - rec[0, 0]) + 1
    nan = float("nan")
    return {
        "mode": "floor",
        "variant": "rclpy",
        "rt": realtime,
        "imu_hz": rate,
        "commands": len(rec),
        "estimates": len(rec),
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "max": float(lat.max()),
        "loss": 1.0 - len(np.unique(rec[:, 0])) / expected,
        "stale": 0.0,
        "invalid": 0,
        "node_p50": nan,
        "node_p99": nan,
        "frame_p50": nan,
        "load": (load0, os.getloadavg()[0]),
    }


class BusyLoad:
    """``n`` busy processes (normal scheduling), each bounded to ``seconds`` by itself, started and
    stopped (SIGKILL by PID) by the bench: a computer whose other work keeps every core busy."""

    def __init__(self, n: int, seconds: float) -> None:
        import subprocess

        code = (
            "import os, time; os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0)); "
            f"end = time.monotonic() + {seconds:.0f}\nwhile time.monotonic() < end: pass"
        )
        self.procs = [subprocess.Popen(["python3", "-c", code]) for _ in range(n)]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
            p.wait()


def _row(r: dict, floor: dict | None = None) -> str:
    ratio = r["p99"] / floor["p99"] if floor and floor["p99"] > 0 else float("nan")
    return (
        f"{r['mode']:12s} {r['variant']:>7s} {r['rt']:3d} {r['imu_hz']:7.0f} {r['p50']:8.2f} {r['p99']:8.2f} "
        f"{ratio:7.2f} {r['max']:8.2f} {100 * r['loss']:7.2f} {100 * r['stale']:7.2f} {r['estimates']:9d} "
        f"{r['commands']:9d} {r['node_p50']:8.2f} {r['node_p99']:8.2f} {r['frame_p50']:9.2f} "
        f"{r['load'][0]:4.1f}/{r['load'][1]:4.1f}"
        + (f" {r['mgr_gap']:8.0f} {r['sentinel']:5d}" if "mgr_gap" in r else "")
    )


def _ratio_row(old: dict, new: dict) -> str:  # new: any variant measured beside old
    def q(key: str) -> str:
        a, b = old[key], new[key]
        return f"{b / a:8.2f}" if a > 0 and np.isfinite(a) and np.isfinite(b) else f"{'-':>8s}"

    return (
        f"{old['mode']:12s} {new['variant'][:3] + '/old':>7s} {old['rt']:3d} {old['imu_hz']:7.0f} "
        f"{q('p50')} {q('p99')} {'':7s} {q('max')} "
        f"{'':7s} {'':7s} {'':9s} {'':9s} {q('node_p50')} {q('node_p99')} {'':>9s}"
    )


def _listener_realtime(priority: int) -> str:
    """This process (the listener of every row) at ``priority`` like the rows' processes, with
    SCHED_RESET_ON_FORK: the processes it starts (nodes, load) begin with normal scheduling."""
    policy = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK if priority else os.SCHED_OTHER
    try:
        for tid in os.listdir("/proc/self/task"):
            os.sched_setscheduler(int(tid), policy, os.sched_param(priority))
    except OSError as exc:
        return f"listener priority {priority} refused ({exc.strerror})"
    return f"listener {'fifo ' + str(priority) if priority else 'normal scheduling'}"


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--floor-role":
        role, rate, out, prio = sys.argv[2:6]
        return floor_role(role, float(rate), out, int(prio))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rates", type=float, nargs="+", default=[100.0, 200.0, 500.0, 1000.0])
    ap.add_argument("--modes", nargs="+", default=["fused", "distributed"], choices=["fused", "distributed"])
    ap.add_argument(
        "--variants",
        nargs="+",
        default=["old", "new"],
        choices=VARIANTS,
        help="old: SingleThreadedExecutor, per-IMU topics; events: EventsExecutor, per-IMU topics; new: "
        "EventsExecutor, bundled input (distributed); default old new: side by side, each rate in this "
        "order, with the ratio of each to old",
    )
    ap.add_argument(
        "--inference-mode",
        default="streaming",
        choices=["streaming", "window"],
        help="the estimators' inference_mode parameter (default streaming, as config/*.yaml)",
    )
    ap.add_argument(
        "--model",
        default="",
        help="model file for every variant (default: models/default.pt); e.g. the default exported "
        "with `gait-estimator export --format onnx` to compare backends in the nodes",
    )
    ap.add_argument(
        "--load",
        type=int,
        default=0,
        help="N busy processes (normal scheduling) for the whole run, started and stopped by the bench",
    )
    ap.add_argument(
        "--realtime",
        type=int,
        nargs="+",
        default=[0],
        help="thread_priority of the data-path nodes, the floor and this listener, one pass per value "
        "(0 = normal scheduling; e.g. --realtime 0 50: without and with); the manager stays normal",
    )
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))  # children stopped
    if "ROS_DOMAIN_ID" not in os.environ:  # a free domain, locked like the test sessions' ones
        from conftest import _claim_domain_id

        os.environ["ROS_DOMAIN_ID"] = str(_claim_domain_id())
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    configs = len(args.rates) * len(args.realtime) * (1 + len(args.modes) * len(args.variants))
    load = BusyLoad(args.load, configs * (args.seconds + 40.0) + 60.0)
    try:
        with tempfile.TemporaryDirectory(prefix="bench_latency_") as tmp:
            model, what = (Path(args.model), f"{args.model}") if args.model else _model(Path(tmp))
            print(
                f"bench_latency: 7 simulated IMUs, {args.seconds:g} s per configuration, model: {what}; "
                f"{os.cpu_count()} CPUs; inference_mode {args.inference_mode}; --load {args.load} busy "
                "processes; load average " + "/".join(f"{x:.1f}" for x in os.getloadavg())
            )
            print(
                f"{'mode':12s} {'variant':>7s} {'rt':>3s} {'IMU Hz':>7s} {'p50 ms':>8s} {'p99 ms':>8s} "
                f"{'/floor':>7s} {'max ms':>8s} {'loss %':>7s} {'stale %':>7s} {'estimates':>9s} "
                f"{'commands':>9s} {'node p50':>8s} {'node p99':>8s} {'frame p50':>9s} {'load':>9s} "
                f"{'mgr gap':>8s} {'zeros':>5s}"
            )
            for rate in args.rates:
                for prio in args.realtime:
                    note = _listener_realtime(prio)  # (the floor's listener is its sub process)
                    floor = run_floor(rate, args.seconds, prio, Path(tmp))
                    print(_row(floor, floor) + f"  ({note})", flush=True)
                    for mode in args.modes:
                        res = {}
                        for variant in args.variants:
                            try:
                                r = run_one(
                                    mode,
                                    rate,
                                    args.seconds,
                                    model,
                                    Path(tmp) / "logs",
                                    args.inference_mode,
                                    variant,
                                    prio,
                                )
                            except AssertionError as exc:  # no valid commands: say why, go on
                                print(
                                    f"{mode:12s} {variant:>7s} {prio:3d} {rate:7.0f} FAILED: {exc}",
                                    flush=True,
                                )
                                continue
                            res[variant] = r
                            print(_row(r, floor), flush=True)
                        for variant in res:
                            if variant != "old" and "old" in res:
                                print(_ratio_row(res["old"], res[variant]), flush=True)
                    _listener_realtime(0)
            print(
                "/floor = p99 / the floor's p99 (bare rclpy timer -> publish -> one DDS hop, "
                "EventsExecutor, same rate, same rt, same load); mgr gap = longest gap (ms) between the "
                "lifecycle manager's 1 s /diagnostics, zeros = its sentinel's zero commands. Targets "
                "(issue 23, --load 2, rt on): fused <= 2x, distributed <= 4x with 0 % stale and 0 % loss "
                "(load = 1-min load average before/after; "
                f"the machine has {os.cpu_count()} CPUs)"
            )
    finally:
        load.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
