"""``gait-estimator demo``: simulated IMUs -> default model -> torque commands, live.

Starts the real distributed pipeline (``imu_driver`` with the simulator, ``imu_synchronizer``,
``windowing``, ``torque_estimator``, ``torque_command``, ``lifecycle_manager``: the processes of
``gait-estimator run``), waits for the first valid torque command (start-up: at most
``STARTUP_TIMEOUT_S``), runs ``--seconds`` from then on, listens over DDS, and prints every two seconds a
per-joint table (estimate, reference from the simulator, command, running RMSE) with the
IMU-stamp -> command latency percentiles. It leaves in ``runs/demo-<time>/`` (or ``--out``):
``bag/`` (rosbag2, mcap: ``imu/*``, ``gait/torque_reference``, ``gait/torque_estimate``,
``exo/torque_command``), ``demo.png`` (the last 10 s per joint), ``summary.json``,
``params.yaml`` and each node's log. Exit 0 when commands flowed; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

STARTUP_TIMEOUT_S = 90.0  # nodes start, the model loads, the manager activates the chain


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="simulated IMUs -> default model -> torque commands (live table, bag, plot)",
        description=__doc__,
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="how long the pipeline runs once commands flow (default 30; start-up adds ~5-15 s)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="model file (default: the installed default model, gait_estimator/models/default.pt)",
    )
    p.add_argument("--out", default=None, help="run directory (default runs/demo-<time>)")
    p.add_argument("--seed", type=int, default=7, help="simulated subject/trial seed")
    p.set_defaults(handler=run)


def _config(model: Path, md, mass: float, seed: int, seconds: float) -> dict:
    import yaml

    from gait_estimator.core.params import load_config

    base = Path(__file__).resolve().parents[2] / "config" / "pipeline.yaml"
    cfg = {node: dict(values) for node, values in load_config(base).items()}
    locs = list(md.locations)
    cfg["imu_driver"].update(
        rate_hz=float(md.sample_rate_hz),
        locations=locs,
        sim_seed=seed,
        sim_loop_s=float(max(20.0, seconds + 5.0)),
    )
    cfg["imu_synchronizer"].update(rate_hz=float(md.sample_rate_hz), locations=locs)
    for node in ("windowing", "torque_estimator"):
        cfg[node]["model_path"] = str(model)
    cfg["torque_estimator"]["subject_mass_kg"] = mass
    cfg["torque_command"]["subject_mass_kg"] = mass
    return {node: {"ros__parameters": values} for node, values in cfg.items()}, yaml


class _Recorder:
    """Subscriptions (raw CDR, for the bag) + decoded torques for the live table."""

    def __init__(self, locations) -> None:
        import rclpy
        from gait_estimator_msgs.msg import JointTorque
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Imu

        from gait_estimator.nodes import topics

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("gait_estimator_demo", context=self.context)
        self.lock = threading.Lock()
        self.raw: list[tuple[str, int, bytes, str]] = []
        self.torques: dict[str, list] = {
            topics.TOPIC_REFERENCE: [],
            topics.TOPIC_ESTIMATE: [],
            topics.TOPIC_COMMAND: [],
        }
        sensor = topics.sensor_qos()
        for loc in locations:
            topic = topics.TOPIC_IMU.format(location=loc)
            self.node.create_subscription(
                Imu, topic, self._raw_cb(topic, "sensor_msgs/msg/Imu"), sensor, raw=True
            )
        for topic, qos in (
            (topics.TOPIC_REFERENCE, sensor),
            (topics.TOPIC_ESTIMATE, sensor),
            (topics.TOPIC_COMMAND, topics.command_qos()),
        ):
            self.node.create_subscription(
                JointTorque,
                topic,
                self._raw_cb(topic, "gait_estimator_msgs/msg/JointTorque", decode=True),
                qos,
                raw=True,
            )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _raw_cb(self, topic, msgtype, decode=False):
        from gait_estimator_msgs.msg import JointTorque
        from rclpy.serialization import deserialize_message

        from gait_estimator.nodes import conversion

        def cb(data):
            t = time.time_ns()
            rec = None
            if decode:
                m = deserialize_message(data, JointTorque)
                stamp, torque, _st, valid = conversion.joint_torque_arrays(m)
                rec = (t, stamp, torque, valid, tuple(m.joint_names), float(m.gait_phase))
            with self.lock:
                self.raw.append((topic, t, bytes(data), msgtype))
                if rec is not None:
                    self.torques[topic].append(rec)

        return cb

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def valid_commands(self) -> bool:
        from gait_estimator.nodes import topics

        with self.lock:
            return any(r[3] for r in self.torques[topics.TOPIC_COMMAND][-20:])

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)


def _series(recs):
    import numpy as np

    if not recs:
        return None
    return {
        "recv": np.array([r[0] for r in recs]),
        "stamp": np.array([r[1] for r in recs]),
        "torque": np.vstack([r[2] for r in recs]),
        "valid": np.array([r[3] for r in recs]),
        "joints": recs[-1][4],
        "phase": np.array([r[5] for r in recs]),
    }


def _stats(rec):
    """Per-joint running RMSE of valid estimates vs the reference, latency percentiles."""
    import numpy as np

    from gait_estimator.nodes import topics

    with rec.lock:
        ref = _series(list(rec.torques[topics.TOPIC_REFERENCE]))
        est = _series(list(rec.torques[topics.TOPIC_ESTIMATE]))
        cmd = _series(list(rec.torques[topics.TOPIC_COMMAND]))
    out = {"ref": ref, "est": est, "cmd": cmd, "rmse": None, "latency_ms": None, "phase_rmse_pct": None}
    if ref is not None and est is not None and est["valid"].any():
        joints = est["joints"]
        ridx = [ref["joints"].index(j) for j in joints]
        v = est["valid"] & (est["stamp"] >= ref["stamp"][0]) & (est["stamp"] <= ref["stamp"][-1])
        if v.any():
            r = np.stack([np.interp(est["stamp"][v], ref["stamp"], ref["torque"][:, k]) for k in ridx], 1)
            out["rmse"] = dict(
                zip(joints, np.sqrt(np.mean((est["torque"][v] - r) ** 2, axis=0)).tolist(), strict=True)
            )
    if ref is not None and est is not None:  # gait phase vs the simulator's (same frame stamps)
        from gait_estimator.core.gait_metrics import phase_rmse_pct

        at = {int(s): p for s, p in zip(ref["stamp"], ref["phase"], strict=True)}
        pairs = [(p, at[int(s)]) for s, p in zip(est["stamp"], est["phase"], strict=True) if int(s) in at]
        pairs = [(a, b) for a, b in pairs if np.isfinite(a) and np.isfinite(b)]
        if pairs:
            a, b = np.array(pairs).T
            out["phase_rmse_pct"] = float(phase_rmse_pct(a, b))
    if cmd is not None and cmd["valid"].any():
        first = {}
        for t, s, ok in zip(cmd["recv"], cmd["stamp"], cmd["valid"], strict=True):
            if ok and s not in first:
                first[s] = t
        lat = (np.array(list(first.values())) - np.array(list(first.keys()))) / 1e6
        out["latency_ms"] = {
            "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()),
            "n": int(lat.size),
        }
    return out


def _table(st, elapsed: float) -> str:
    lines = [f"t = {elapsed:5.1f} s"]
    est, ref, cmd = st["est"], st["ref"], st["cmd"]
    if est is None or not est["valid"].any():
        return lines[0] + "  (waiting for estimates: the nodes are starting)"
    lines.append(f"{'joint':15s} {'estimate':>10s} {'reference':>10s} {'command':>10s} {'RMSE':>8s}  (N.m)")
    for k, j in enumerate(est["joints"]):
        e = est["torque"][-1, k]
        r = (
            ref["torque"][-1, ref["joints"].index(j)]
            if ref is not None and j in ref["joints"]
            else float("nan")
        )
        c = (
            cmd["torque"][-1, cmd["joints"].index(j)]
            if cmd is not None and j in cmd["joints"]
            else float("nan")
        )
        rm = st["rmse"].get(j, float("nan")) if st["rmse"] else float("nan")
        lines.append(f"{j:15s} {e:10.2f} {r:10.2f} {c:10.2f} {rm:8.2f}")
    ph = est["phase"][-1]
    ph_ref = ref["phase"][-1] if ref is not None else float("nan")
    rmse = st["phase_rmse_pct"]
    lines.append(
        f"gait phase (right leg): estimate {ph:.2f}, simulator {ph_ref:.2f}"
        + (f", RMSE so far {rmse:.1f} % of the stride" if rmse is not None else " (locking on: 1-2 strides)")
    )
    if st["latency_ms"]:
        lat = st["latency_ms"]
        lines.append(
            f"IMU stamp -> command latency: p50 {lat['p50']:.2f} ms  p99 {lat['p99']:.2f} ms  "
            f"max {lat['max']:.2f} ms  ({lat['n']} commands)"
        )
    return "\n".join(lines)


def _plot(st, path: Path, mass: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    est, ref, cmd = st["est"], st["ref"], st["cmd"]
    joints = est["joints"]
    t_end = est["stamp"][-1]
    t0 = t_end - 10e9
    fig, axes = plt.subplots(len(joints), 1, figsize=(10, 2.0 * len(joints)), sharex=True)
    for ax, j in zip(np.atleast_1d(axes), joints, strict=False):
        for series, label, style in (
            (ref, "reference (sim)", "k-"),
            (est, "estimate", "C0-"),
            (cmd, "command", "C3-"),
        ):
            if series is None or j not in series["joints"]:
                continue
            m = series["stamp"] >= t0
            ax.plot(
                (series["stamp"][m] - t0) / 1e9,
                series["torque"][m, series["joints"].index(j)],
                style,
                lw=1.0,
                label=label,
            )
        rm = st["rmse"].get(j) if st["rmse"] else None
        ax.set_ylabel(f"{j}\nN.m")
        if rm is not None:
            ax.set_title(f"{j}: RMSE {rm:.2f} N.m ({rm / mass:.3f} N.m/kg)", fontsize=9)
    np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=8)
    np.atleast_1d(axes)[-1].set_xlabel("time, last 10 s (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def model_path(arg: str | None) -> Path:
    """``--model`` or, without it, the installed default model (``nodes.model_files.default_model_path``:
    the package's ``models/default.pt``, else ``share/gait_estimator/models/default.pt``)."""
    from gait_estimator.nodes.model_files import default_model_path

    return Path(arg).expanduser() if arg else default_model_path()


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import yaml

    from gait_estimator.cli.run import Launcher, plan
    from gait_estimator.nodes.model_files import read_model_metadata

    model = model_path(args.model)
    if not model.is_file():
        print(
            f"gait-estimator demo: error: no model at {model}. The default model is shipped in "
            "gait_estimator/models/default.pt and reproduced by `make model` (or pass --model FILE).",
            file=sys.stderr,
        )
        return 1
    md = read_model_metadata(model)
    from gait_estimator.sim.generate import sample_subject

    mass = float(sample_subject(np.random.default_rng(args.seed))["mass_kg"])
    out = Path(args.out) if args.out else Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    cfg, _ = _config(model, md, mass, args.seed, args.seconds)
    params = out / "params.yaml"

    class _NoAliases(yaml.SafeDumper):  # rcl's YAML parser rejects anchors/aliases
        def ignore_aliases(self, data):
            return True

    params.write_text(yaml.dump(cfg, Dumper=_NoAliases, sort_keys=False))
    print(
        f"gait-estimator demo: model {model} ({md.architecture}, {len(md.input_channels)} channels, "
        f"{md.sample_rate_hz:g} Hz), simulated subject {mass:.1f} kg, {args.seconds:g} s -> {out}",
        flush=True,
    )
    from gait_estimator.core.params import load_config

    launcher = Launcher(params, out / "logs")
    rec = None
    t_start = time.monotonic()
    t_flow = None  # when the first valid command arrived
    try:
        launcher.start(plan(load_config(params)))
        rec = _Recorder(md.locations)
        next_print = t_start + 2.0
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            if t_flow is None and rec.valid_commands():
                t_flow = now
            if t_flow is not None and now - t_flow >= args.seconds:
                break
            if t_flow is None and now - t_start > STARTUP_TIMEOUT_S:
                print(
                    f"gait-estimator demo: no valid command within {STARTUP_TIMEOUT_S:g} s of start-up "
                    f"(logs in {out / 'logs'})",
                    file=sys.stderr,
                )
                break
            if launcher.dead():
                print(
                    f"gait-estimator demo: node(s) exited early: {launcher.dead()} (logs in {out / 'logs'})",
                    file=sys.stderr,
                )
                break
            if time.monotonic() >= next_print:
                next_print += 2.0
                print(_table(_stats(rec), time.monotonic() - t_start) + "\n", flush=True)
    except KeyboardInterrupt:  # Ctrl-C ends the run early; what was recorded is still written
        print("gait-estimator demo: interrupted; stopping the nodes and writing the run", file=sys.stderr)
    finally:
        launcher.stop()
        if rec is not None:
            rec.close()
    st = _stats(rec)
    from gait_estimator.replay.bag import BagWriter

    with BagWriter(out / "bag", "mcap", overwrite=True) as bag:
        for topic, t, data, msgtype in rec.raw:
            bag.write_raw(topic, t, data, msgtype)
    n_cmd = 0 if st["cmd"] is None else int(st["cmd"]["valid"].sum())
    summary = {
        "model": str(model),
        "seconds": args.seconds,
        "subject_mass_kg": mass,
        "rmse_nm": st["rmse"],
        "gait_phase_rmse_pct": st["phase_rmse_pct"],
        "rmse_nm_per_kg": {j: v / mass for j, v in (st["rmse"] or {}).items()},
        "latency_ms": st["latency_ms"],
        "valid_commands": n_cmd,
        "messages_in_bag": len(rec.raw),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if st["est"] is not None and st["est"]["valid"].any():
        _plot(st, out / "demo.png", mass)
    print(_table(st, time.monotonic() - t_start))
    print(
        f"\nrun directory: {out}\n  bag: {out / 'bag'} ({len(rec.raw)} messages)\n"
        f"  plot: {out / 'demo.png'}\n  summary: {out / 'summary.json'}"
    )
    if n_cmd == 0:
        print("gait-estimator demo: error: no valid torque command was received", file=sys.stderr)
        return 1
    return 0
