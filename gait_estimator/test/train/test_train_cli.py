"""``gait-estimator train / evaluate / export / sweep`` end to end on small CSV data written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gait_estimator.cli.main import main
from gait_estimator.data.synthetic import make_synthetic_recordings
from gait_estimator.runtime.model_file import load_model


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """Three subjects as one CSV + one mapping YAML each, recorded at 60 Hz."""
    root = tmp_path_factory.mktemp("lab")
    recs = make_synthetic_recordings(n_subjects=3, seconds=15.0, rate_hz=60.0, seed=3)
    trials = []
    for r in recs:
        header = ["time_s"] + [c.replace("/", "_") for c in r.channels] + [f"{j}_Nm" for j in r.joints]
        t = np.arange(len(r)) / r.sample_rate_hz
        rows = np.column_stack([t, r.inputs, r.moments * r.mass_kg])
        (root / f"{r.subject_id}.csv").write_text(
            ",".join(header) + "\n" + "\n".join(",".join(f"{v:.7g}" for v in row) for row in rows) + "\n"
        )
        trials.append((r, {"csv": f"{r.subject_id}.csv"}))
    # One mapping per subject (mass differs); a dataset YAML per subject, combined below.
    combined = root / "all"
    combined.mkdir()
    for r, trial in trials:
        mapping = {
            "time_column": "time_s",
            "subject": {"id": r.subject_id, "mass_kg": float(r.mass_kg)},
            "moment_unit": "N.m",
            "target_rate_hz": 100,
            "imu": {c: c.replace("/", "_") for c in r.channels},
            "moments": {j: f"{j}_Nm" for j in r.joints},
            "trials": [{"csv": f"../{trial['csv']}"}],
        }
        (combined / f"{r.subject_id}.yaml").write_text(yaml.safe_dump(mapping))
    # One YAML for the whole multi-subject data set: per-trial subject and mass.
    mapping.pop("subject")
    mapping["trials"] = [
        {"csv": f"../{t['csv']}", "subject": {"id": r.subject_id, "mass_kg": float(r.mass_kg)}}
        for r, t in trials
    ]
    (combined / "dataset.yaml").write_text(yaml.safe_dump(mapping))
    return root


def test_train_ui_exports_evaluates_and_reexports(lab: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(lab / "all" / "S00.yaml"),
            "--protocol",
            "UI",
            "--arch",
            "tcn",
            "--arch-opt",
            "channels=8",
            "--arch-opt",
            "dilations=[1, 2, 4]",
            "--window",
            "32",
            "--epochs",
            "2",
            "--seq-rows",
            "8",
            "--imus",
            "pelvis,thigh_r",
            "--run-dir",
            str(run),
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "hip_flexion_r" in out and "RMSE" in out
    model = run / "UI_S00" / "model.pt"
    md = load_model(model, threads=0).metadata
    assert md.input_channels[0] == "pelvis/acc_x" and len(md.input_channels) == 12 and md.window == 32
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"hip_flexion_r", "knee_angle_r", "ankle_angle_r"}
    assert (run / "estimate_time.png").is_file() and (run / "estimate_cycle.png").is_file()

    assert (
        main(["evaluate", str(model), "--data", str(lab / "all" / "S00.yaml"), "--out", str(tmp_path / "ev")])
        == 0
    )
    assert "mean" in capsys.readouterr().out and (tmp_path / "ev" / "metrics.json").is_file()

    out_model = tmp_path / "exported.pt"
    assert (
        main(
            ["export", str(run / "UI_S00"), "--checkpoint", "best", "--stride", "2", "--out", str(out_model)]
        )
        == 0
    )
    assert load_model(out_model, threads=0).metadata.stride == 2


def test_train_bad_mapping_is_one_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "m.yaml").write_text(
        yaml.safe_dump(
            {
                "sample_rate_hz": 100,
                "subject": {"mass_kg": 70},
                "imu": {"pelvis/acc_x": "AX"},
                "moments": {"hip_flexion_r": "H"},
                "trials": [{"csv": "d.csv"}],
            }
        )
    )
    (tmp_path / "d.csv").write_text("AX,Hip\n1,2\n3,4\n")
    assert main(["train", "--data", str(tmp_path / "m.yaml"), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "d.csv" in err and "'H'" in err and "Traceback" not in err


def test_train_rejects_unknown_imu_and_joint(lab: Path, tmp_path: Path, capsys) -> None:
    data = str(lab / "all" / "S00.yaml")
    assert main(["train", "--data", data, "--imus", "pelvis,wrist"]) == 2
    assert "wrist" in capsys.readouterr().err
    assert main(["train", "--data", data, "--joints", "elbow_flexion_r"]) == 2
    assert "elbow_flexion_r" in capsys.readouterr().err


def test_train_ug_then_ua_then_sweep(lab: Path, tmp_path: Path, capsys) -> None:
    data = str(lab / "all" / "dataset.yaml")
    common = ["--data", data, "--arch", "gru", "--arch-opt", "hidden=8", "--arch-opt", "layers=1"]
    common += ["--window", "16", "--no-progress", "--threads", "1"]
    assert (
        main(
            [
                "train",
                *common,
                "--protocol",
                "UG",
                "--test-subjects",
                "S02",
                "--val-subject",
                "S01",
                "--epochs",
                "2",
                "--run-dir",
                str(tmp_path / "ug"),
            ]
        )
        == 0
    )
    cfg = json.loads((tmp_path / "ug" / "config.json").read_text())
    assert cfg["train"] == ["S00"] and cfg["val"] == ["S01"]
    assert (
        main(
            [
                "train",
                *common,
                "--protocol",
                "UA",
                "--init",
                str(tmp_path / "ug" / "model.pt"),
                "--test-subjects",
                "S02",
                "--freeze",
                "backbone",
                "--epochs",
                "2",
                "--run-dir",
                str(tmp_path / "ua"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "UG model (no adaptation) on the same test set" in out
    assert json.loads((tmp_path / "ua" / "UA_S02" / "config.json").read_text())["frozen"] == [
        "rnn.bias_hh_l0",
        "rnn.bias_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.weight_ih_l0",
    ]
    assert (
        main(
            [
                "train",
                *common,
                "--protocol",
                "UA",
                "--init",
                str(tmp_path / "ug" / "model.pt"),
                "--test-subjects",
                "S02",
                "--epochs",
                "20",
            ]
        )
        == 2
    )
    assert "1-15 epochs" in capsys.readouterr().err

    assert (
        main(
            [
                "sweep",
                "--data",
                data,
                "--candidates",
                "pelvis,thigh_r,shank_r",
                "--sizes",
                "1,3",
                "--window",
                "16",
                "--epochs",
                "1",
                "--seq-rows",
                "4",
                "--test-subjects",
                "S02",
                "--run-dir",
                str(tmp_path / "sweep"),
            ]
        )
        == 0
    )
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and {r["n_imus"] for r in rows} == {1, 3}
    assert rows[0]["mean_rmse"] <= rows[-1]["mean_rmse"]


def test_evaluate_reports_the_gait_phase_of_simulated_recordings(tmp_path: Path, capsys) -> None:
    """``evaluate`` on recordings with a phase column (the simulator's) scores the streaming gait
    phase of their own shank gyros: RMSE in % of the stride, heel strikes matched, in the JSON."""
    import json

    from gait_estimator.cli.main import main
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    data = tmp_path / "sim"
    assert main(["simulate", "--subjects", "1", "--minutes", "0.5", "--seed", "11", "--out", str(data)]) == 0
    model = make_tiny_lstm_model(tmp_path / "m.pt", window=50, seed=1)
    capsys.readouterr()
    assert main(["evaluate", str(model), "--data", str(data), "--out", str(tmp_path / "ev")]) == 0
    assert "gait phase (right leg, 1 recordings with a phase)" in capsys.readouterr().out
    gait = json.loads((tmp_path / "ev" / "metrics.json").read_text())["gait_phase"]
    assert gait["phase_rmse_pct"] < 3.0 and gait["heel_strike"]["reference"] >= 15
    assert gait["heel_strike"]["missed"] == 0 and gait["heel_strike"]["extra"] == 0
