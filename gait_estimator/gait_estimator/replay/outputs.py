"""What ``validate`` writes besides its report: PNG plots and a bag of estimates and commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gait_estimator.core import topology


def plot_title(joint: str, m: dict[str, Any] | None, unit: str) -> str:
    """'<joint>: RMSE x unit, r y'; an undefined metric (constant or NaN reference) reads 'undefined'."""
    if not m:
        return f"{joint}: not scored"

    def f(key: str, fmt: str) -> str:
        return "undefined" if m.get(key) is None else format(m[key], fmt)

    return f"{joint}: RMSE {f('rmse', '.3f')} {unit}, r {f('pearson_r', '.2f')}"


def write_plots(result: Any, report: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from gait_estimator.replay.offline import match_reference

    directory.mkdir(parents=True, exist_ok=True)
    mass = result.subject_mass_kg if result.subject_mass_kg > 0 else 1.0
    unit = "N·m/kg" if result.subject_mass_kg > 0 else "N·m"
    t = (result.est_sensor_ns - result.est_sensor_ns[0]) / 1e9 if result.est_sensor_ns.size else np.zeros(0)
    ok, ref = match_reference(result)
    joints = result.joints
    fig, axes = plt.subplots(len(joints), 1, figsize=(11, 1.9 * len(joints)), sharex=True, squeeze=False)
    for i, joint in enumerate(joints):
        ax = axes[i, 0]
        ax.plot(t, np.where(result.est_valid, result.est_nm[:, i] / mass, np.nan), lw=0.8, label="estimate")
        if ok.any():
            ax.plot(t, np.where(ok, ref[:, i] / mass, np.nan), lw=0.8, label="reference")
        ax.set_title(
            plot_title(joint, (report.get("metrics") or {}).get(joint), unit), fontsize=8, loc="left"
        )
        ax.set_ylabel(unit, fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time since first estimate (s)")
    fig.tight_layout()
    paths = [directory / "torque_estimate_vs_reference.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    if result.cmd_nm.shape[0]:
        fig, ax = plt.subplots(figsize=(11, 3.2))
        for i, joint in enumerate(result.cmd_joints):
            ax.plot(t[: result.cmd_nm.shape[0]], result.cmd_nm[:, i], lw=0.8, label=joint)
        ax.set_xlabel("time since first estimate (s)")
        ax.set_ylabel("command (N·m)")
        ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        paths.append(directory / "torque_command.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def write_output_bag(result: Any, report: dict[str, Any], path: str, storage: str) -> None:
    """Estimates (gait/torque_estimate), commands (exo/torque_command), one /diagnostics summary per
    second of bag time, and the reference (gait/torque_reference) when the bag had one."""
    from gait_estimator.replay import convert
    from gait_estimator.replay.bag import BagWriter
    from gait_estimator.replay.typestore import make_typestore

    store = make_typestore()
    mass = float(result.subject_mass_kg)
    diag_t = store.types["diagnostic_msgs/msg/DiagnosticArray"]
    status_t = store.types["diagnostic_msgs/msg/DiagnosticStatus"]
    kv_t = store.types["diagnostic_msgs/msg/KeyValue"]
    with BagWriter(path, storage) as w:
        w.set_custom_data("gait_estimator.subject_mass_kg", str(mass))
        w.set_custom_data("gait_estimator.source_bag", str(result.bag))
        w.set_custom_data("gait_estimator.model", str(result.model_source))
        next_diag = None
        for k in range(result.est_nm.shape[0]):
            log = int(result.est_log_ns[k])
            stamp = int(result.est_stamp_ns[k])
            w.write(
                topology.TOPIC_ESTIMATE,
                log,
                convert.joint_torque_message(
                    stamp,
                    result.joints,
                    result.est_nm[k],
                    convert.SOURCE_ESTIMATE,
                    valid=bool(result.est_valid[k]),
                    subject_mass=mass,
                    store=store,
                ),
            )
            if k < result.cmd_nm.shape[0]:
                w.write(
                    topology.TOPIC_COMMAND,
                    log,
                    convert.joint_torque_message(
                        stamp,
                        result.cmd_joints,
                        result.cmd_nm[k],
                        convert.SOURCE_COMMAND,
                        valid=bool(result.cmd_valid[k]),
                        joint_status=result.cmd_status[k],
                        subject_mass=mass,
                        store=store,
                    ),
                )
            if next_diag is None or log >= next_diag:
                next_diag = log + 1_000_000_000
                values = [kv_t(key=f"{key}", value=str(v)) for key, v in report["counters"].items()]
                w.write(
                    "/diagnostics",
                    log,
                    diag_t(
                        header=convert.header(log, "", store),
                        status=[
                            status_t(
                                level=0,
                                name="gait_estimator validate",
                                message="offline replay",
                                hardware_id="",
                                values=values,
                            )
                        ],
                    ),
                )
        ref = result.reference
        if ref is not None:
            for k in range(len(ref)):
                w.write(
                    topology.TOPIC_REFERENCE,
                    int(ref.log_ns[k]),
                    convert.joint_torque_message(
                        int(ref.stamp_ns[k]),
                        ref.joints,
                        ref.torque_nm[k],
                        convert.SOURCE_REFERENCE,
                        valid=bool(ref.valid[k]),
                        subject_mass=ref.subject_mass_kg,
                        store=store,
                    ),
                )
