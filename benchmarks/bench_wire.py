"""The rate limit on the wire (issue 23): consecutive published commands, judged on their DDS
source timestamps, during a parameter storm.

    .venv/bin/python benchmarks/bench_wire.py [--seconds 20] [--rate-hz 1000] [--load N] [--realtime P]

The fused ``gait_pipeline`` (in-process sim IMUs at ``--rate-hz``, the default model, gains 1.0 so
the estimate exceeds every limit and the output slews at the rate limit all the time) publishes
``exo/torque_command``; this process subscribes with the message info and, for every two
consecutive commands of the pipeline, checks ``|u_k - u_k-1| <= rate_limit_nm_s x (source
timestamp k - source timestamp k-1)``. During the run ``limit_nm`` toggles 5 <-> 30 N·m 100 times
in 4 s (``ros2 param set``'s service), the storm of the issue. Prints the violations (count, the
worst step and its time, the worst step / allowed ratio) beside the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gait_estimator" / "test"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RATE_LIMIT = 1000.0  # N·m/s


def storm(node, name: str, n: int = 100, seconds: float = 4.0) -> int:
    """Toggle ``limit_nm`` 30 <-> 5 ``n`` times in ``seconds`` (requests not awaited: a storm)."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = node.create_client(SetParameters, f"/{name}/set_parameters")
    if not client.wait_for_service(timeout_sec=20.0):
        raise RuntimeError(f"/{name}/set_parameters not available")
    futures = []
    t0 = time.monotonic()
    for k in range(n):
        value = ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[30.0 if k % 2 == 0 else 5.0]
        )
        futures.append(
            client.call_async(SetParameters.Request(parameters=[Parameter(name="limit_nm", value=value)]))
        )
        time.sleep(max(0.0, t0 + (k + 1) * seconds / n - time.monotonic()))
    time.sleep(1.0)
    return sum(f.done() and all(r.successful for r in f.result().results) for f in futures)


def main() -> int:
    from _node_harness import Listener, Procs
    from bench_latency import BusyLoad, _listener_realtime
    from gait_estimator_msgs.msg import JointTorque

    from gait_estimator.nodes import topics
    from gait_estimator.nodes.command_sentinel import SENTINEL_FRAME_ID

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate-hz", type=float, default=1000.0, help="IMU rate of the in-process sim driver")
    ap.add_argument("--load", type=int, default=0, help="N busy processes (bench_latency's)")
    ap.add_argument(
        "--realtime", type=int, default=0, help="thread_priority of the pipeline and this listener"
    )
    args = ap.parse_args()
    if "ROS_DOMAIN_ID" not in os.environ:
        from conftest import _claim_domain_id

        os.environ["ROS_DOMAIN_ID"] = str(_claim_domain_id())
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    load = BusyLoad(args.load, args.seconds + 120.0)
    rx: list[tuple[int, int, np.ndarray, bool]] = []  # (source ts, receive ts, torque, valid)

    def on_cmd(msg, info) -> None:
        if msg.header.frame_id != SENTINEL_FRAME_ID:
            rx.append((int(info["source_timestamp"]), time.time_ns(), np.array(msg.torque), bool(msg.valid)))

    tmp = tempfile.TemporaryDirectory(prefix="bench_wire_")
    procs = Procs(Path(tmp.name) / "logs")
    listener = Listener("bench_wire")
    try:
        listener.node.create_subscription(JointTorque, topics.TOPIC_COMMAND, on_cmd, topics.command_qos())
        _listener_realtime(args.realtime)
        params = {
            "imu_source": "sim",
            "driver_rate_hz": args.rate_hz,
            "sim_loop_s": args.seconds + 60.0,
            "publish_reference": False,
            "gains": [1.0],
            "limit_nm": [30.0],
            "rate_limit_nm_s": RATE_LIMIT,
            "ramp_s": 0.0,
            "min_confidence": 0.0,
            "control_rate_hz": 100.0,
            **({"thread_priority": args.realtime} if args.realtime else {}),
        }
        procs.start("gait_pipeline", params=params)
        procs.start(
            "lifecycle_manager", params={"node_names": ["gait_pipeline"], "command_node": "gait_pipeline"}
        )
        deadline = time.monotonic() + 120
        while sum(v for *_, v in rx[-200:]) < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
        rx.clear()
        load0 = os.getloadavg()[0]
        t0 = time.monotonic()
        time.sleep(min(5.0, args.seconds / 4))
        accepted = storm(listener.node, "gait_pipeline")
        time.sleep(max(0.0, args.seconds - (time.monotonic() - t0)))
        got = list(rx)
    finally:
        listener.close()
        procs.stop()
        load.stop()
        tmp.cleanup()
    got.sort(key=lambda r: r[0])
    src = np.array([r[0] for r in got], dtype=np.int64)
    u = np.stack([r[2] for r in got])
    valid = np.array([r[3] for r in got])
    dt = np.diff(src) * 1e-9
    step = np.abs(np.diff(u, axis=0)).max(axis=1)
    allowed = RATE_LIMIT * dt
    cut = ~valid[1:] & np.all(u[1:] == 0.0, axis=1)  # a cut to zero (fault, e-stop, watchdog): allowed
    bad = (step > allowed * (1 + 1e-6) + 1e-6) & ~cut
    ratio = np.where(allowed > 0, step / np.maximum(allowed, 1e-12), np.inf)
    worst = int(np.argmax(np.where(bad, ratio, 0.0))) if bad.any() else None
    print(
        f"bench_wire: fused, {args.rate_hz:g} Hz IMUs, {len(got)} commands in {args.seconds:g} s, "
        f"limit_nm 5<->30 x100 in 4 s ({accepted} accepted), rate limit {RATE_LIMIT:g} N·m/s, "
        f"--load {args.load}, rt {args.realtime}, load average {load0:.1f}/{os.getloadavg()[0]:.1f}"
    )
    print(
        f"wire violations: {int(bad.sum())} of {len(step)} consecutive pairs"
        + (
            f"; worst {step[worst]:.2f} N·m in {dt[worst] * 1e3:.2f} ms ({ratio[worst]:.1f}x the limit)"
            if worst is not None
            else ""
        )
        + f"; cuts to zero {int(cut.sum())}; largest step {step.max():.2f} N·m"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
