"""The regression gate cannot be defeated (issue 13 item 8), on real bag files through the CLI.

- a constant reference: ``validate --plots`` works, r is reported undefined with its reason,
  and no baseline can be written from it;
- an all-NaN reference: no baseline of nulls is written (exit 2, no file);
- a baseline holding a null, NaN, a missing metric or joint, or of schema 1 is refused when read;
- the baseline must belong to the bag (content SHA-256; a renamed copy is found by content),
  the settings and the model (another model: exit 2 unless --allow-model-change);
- a NaN-only model fails the gate;
- exit codes: 0 ok, 1 regression, 2 error, 3 internal error.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gait_estimator.cli.main import main as cli_main

DATA = Path(__file__).resolve().parents[1] / "data" / "regression"
BASELINE = DATA / "baseline.json"


@pytest.fixture(scope="module")
def trial():
    """4 s of simulated walking (the regression data's subject R001, seed 11)."""
    from gait_estimator.sim.generate import sample_subject, simulate_trial

    return simulate_trial(sample_subject(np.random.default_rng(11), "R001"), 4.0, 1.2, 100.0, seed=11)


@pytest.fixture(scope="module")
def model_file() -> Path:
    return Path(__file__).resolve().parents[2] / "models" / "default.pt"


def _bag(root: Path, name: str, trial, moment: np.ndarray | None = None) -> Path:
    from gait_estimator.replay.trial_bag import write_trial_bag

    t = trial if moment is None else dataclasses.replace(trial, moment_nm=moment)
    return write_trial_bag(root / name, t, "mcap")


@pytest.fixture(scope="module")
def bags(trial, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bags")
    m = np.array(trial.moment_nm, dtype=np.float64)
    const = m.copy()
    const[:, 1] = 5.0  # knee_angle_r reference constant: no range, r and R² undefined
    return {
        "walk": _bag(root, "walk", trial),
        "constant": _bag(root, "constant", trial, const),
        "nan": _bag(root, "nan", trial, np.full_like(m, np.nan)),
    }


def _validate(*args: str) -> int:
    return cli_main(["validate", *map(str, args)])


def test_constant_reference_plots_and_names_r_undefined(
    bags: dict[str, Path], model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report, plots = tmp_path / "r.json", tmp_path / "plots"
    code = _validate(bags["constant"], "--model", model_file, "--plots", plots, "--report", report)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Traceback" not in out.err
    assert (plots / "torque_estimate_vs_reference.png").stat().st_size > 10_000
    doc = json.loads(report.read_text())
    knee = doc["metrics"]["knee_angle_r"]
    assert knee["pearson_r"] is None and knee["r2"] is None and knee["nrmse"] is None
    assert knee["rmse"] > 0  # defined: the error against 5 N·m
    assert "reference is constant (5 N.m)" in doc["metrics_undefined"]["knee_angle_r"]["pearson_r"]
    assert doc["mean"]["pearson_r"] is None  # never a mean over the joints that have it
    assert doc["metrics"]["ankle_angle_r"]["pearson_r"] > 0.5
    row = next(ln for ln in out.out.splitlines() if ln.startswith("knee_angle_r"))
    assert row.split()[3:5] == ["n/a", "n/a"]  # NRMSE, r


def test_plot_title_says_undefined() -> None:
    from gait_estimator.replay.outputs import plot_title

    title = plot_title("knee_angle_r", {"rmse": 0.1234, "pearson_r": None}, "N·m/kg")
    assert title == "knee_angle_r: RMSE 0.123 N·m/kg, r undefined"


@pytest.mark.parametrize(
    ("bag", "named"),
    [
        ("constant", "knee_angle_r nrmse, knee_angle_r pearson_r, knee_angle_r r2"),
        ("nan", "hip_flexion_r rmse"),
    ],
)
def test_no_baseline_is_written_from_undefined_metrics(
    bag: str, named: str, bags: dict[str, Path], model_file: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "base.json"
    code = _validate(bags[bag], "--model", model_file, "--write-baseline", out, "--quiet")
    err = capsys.readouterr().err
    assert code == 2, err
    assert not out.exists()
    assert "no baseline written" in err and named in err, err
    if bag == "nan":
        assert "reference NaN?" in err


def _edited(tmp_path: Path, edit) -> Path:
    doc = json.loads(BASELINE.read_text())
    edit(doc)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["bags"]["walk_mcap"]["metrics"]["knee_angle_r"].update(r2=None), "knee_angle_r r2"),
        (lambda d: d["bags"]["walk_mcap"]["metrics"]["knee_angle_l"].pop("rmse"), "knee_angle_l rmse"),
        (lambda d: d["bags"]["walk_mcap"]["metrics"].pop("ankle_angle_l"), "ankle_angle_l pearson_r"),
        (lambda d: d["bags"]["walk_mcap"]["metrics"]["hip_flexion_r"].update(rmse="0.1"), "hip_flexion_r"),
        (lambda d: d["bags"]["walk_mcap"]["tolerances"].update(rmse=-1), "tolerance rmse = -1"),
        (lambda d: d.update(schema=1), "schema 1 is not 2"),
        (lambda d: d.pop("model"), "'model' must hold"),
        (lambda d: d.update(bags={}), "'bags' must be a non-empty object"),
    ],
)
def test_incomplete_baseline_is_refused_when_read(
    edit, message: str, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = _validate(DATA / "walk_mcap", "--model", model_file, "--baseline", _edited(tmp_path, edit))
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err, captured.err
    assert captured.out == ""  # refused before any replay


def test_nan_in_baseline_json_is_refused(model_file: Path, tmp_path: Path, capsys) -> None:
    text = BASELINE.read_text()
    value = json.loads(text)["bags"]["walk_mcap"]["metrics"]["hip_flexion_r"]["rmse"]
    bad = tmp_path / "nan.json"
    bad.write_text(text.replace(repr(value), "NaN", 1))
    assert "NaN" in bad.read_text()
    code = _validate(DATA / "walk_mcap", "--model", model_file, "--baseline", bad)
    err = capsys.readouterr().err
    assert code == 2 and "NaN is not a number a baseline may hold" in err, err


def test_baseline_of_another_bag_content_is_refused(
    bags: dict[str, Path], model_file: Path, tmp_path: Path, capsys
) -> None:
    impostor = tmp_path / "walk_mcap"  # the committed bag's name, other content
    shutil.copytree(bags["walk"], impostor)
    (impostor / "walk.mcap").rename(impostor / "walk_mcap.mcap")
    meta = impostor / "metadata.yaml"
    meta.write_text(meta.read_text().replace("walk.mcap", "walk_mcap.mcap"))
    code = _validate(impostor, "--model", model_file, "--baseline", BASELINE)
    err = capsys.readouterr().err
    assert code == 2 and "content differs from the bag the baseline was made on" in err, err
    code = _validate(bags["walk"], "--model", model_file, "--baseline", BASELINE)
    err = capsys.readouterr().err
    assert code == 2 and "the baseline has no entry for it" in err, err


def test_renamed_copy_of_the_bag_is_found_by_content(model_file: Path, tmp_path: Path, capsys) -> None:
    renamed = tmp_path / "renamed"
    shutil.copytree(DATA / "walk_sqlite3", renamed)
    code = _validate(renamed, "--model", model_file, "--baseline", BASELINE)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "every metric within tolerance" in out.out


def test_other_replay_settings_are_refused(model_file: Path, capsys) -> None:
    code = _validate(
        DATA / "walk_mcap", "--model", model_file, "--baseline", BASELINE, "--param", "latency_s=0.05"
    )
    err = capsys.readouterr().err
    assert code == 2 and "replay settings differ" in err and "params" in err, err
    code = _validate(DATA / "walk_mcap", "--model", model_file, "--baseline", BASELINE, "--duration", "3")
    err = capsys.readouterr().err
    assert code == 2 and "duration_s 3.0 (baseline 0.0)" in err, err


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid model file (loads, right channels and joints) whose every weight is NaN."""
    import torch

    from gait_estimator.runtime.metadata import METADATA_FILE
    from gait_estimator.runtime.model_file import read_metadata
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    d = tmp_path_factory.mktemp("nan_model")
    src = make_tiny_lstm_model(d / "tiny.pt", window=50, hidden=8, seed=0)
    module = torch.jit.load(str(src))
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(float("nan"))
    out = d / "nan.pt"
    torch.jit.save(module, str(out), _extra_files={METADATA_FILE: read_metadata(src).to_json()})
    return out


def test_nan_only_model_fails_the_gate(nan_model: Path, capsys: pytest.CaptureFixture) -> None:
    code = _validate(DATA / "walk_mcap", "--model", nan_model, "--baseline", BASELINE, "--quiet")
    err = capsys.readouterr().err
    assert code == 2 and "is not the baseline's model" in err and "--allow-model-change" in err, err
    code = _validate(
        DATA / "walk_mcap", "--model", nan_model, "--baseline", BASELINE, "--allow-model-change", "--quiet"
    )
    err = capsys.readouterr().err
    if code == 2:  # a model loader that probes for finite outputs refuses it even earlier
        assert "nan" in err.lower() or "finite" in err, err
        return
    assert code == 1, err
    lines = [ln.strip() for ln in err.splitlines()[1:] if ln.strip()]
    assert len(lines) == 6 * 4 + 4, err  # every metric of every joint, and the 4 gait figures
    assert all("undefined in this run" in ln for ln in lines), err


def test_candidate_model_with_other_outputs_is_not_comparable(tmp_path: Path, capsys) -> None:
    from gait_estimator.runtime.reference_models import make_tiny_lstm_model

    other = make_tiny_lstm_model(tmp_path / "two.pt", joints=("knee_angle_r", "ankle_angle_r"), window=20)
    code = _validate(DATA / "walk_mcap", "--model", other, "--baseline", BASELINE, "--allow-model-change")
    err = capsys.readouterr().err
    assert code == 2 and "output_joints differ" in err, err


def test_written_baseline_gates_its_own_bag_and_model(
    bags: dict[str, Path], model_file: Path, tmp_path: Path, capsys
) -> None:
    base = tmp_path / "walk.json"
    assert _validate(bags["walk"], "--model", model_file, "--write-baseline", base, "--quiet") == 0
    doc = json.loads(base.read_text())
    assert doc["schema"] == 2 and list(doc["bags"]) == ["walk"]
    assert len(doc["model"]["sha256"]) == 64 and len(doc["bags"]["walk"]["bag"]["sha256"]) == 64
    capsys.readouterr()
    assert _validate(bags["walk"], "--model", model_file, "--baseline", base) == 0
    assert "every metric within tolerance" in capsys.readouterr().out
    # tighten one metric beyond reach: the same run is now a regression (exit 1), named
    doc["bags"]["walk"]["metrics"]["ankle_angle_l"]["rmse"] = 0.0
    doc["bags"]["walk"]["tolerances"]["rmse"] = 0.0
    base.write_text(json.dumps(doc))
    assert _validate(bags["walk"], "--model", model_file, "--baseline", base, "--quiet") == 1
    err = capsys.readouterr().err
    assert "ankle_angle_l rmse =" in err and "> 0.0000" in err, err


def test_compare_counts_missing_and_nan_values_as_regressions() -> None:
    from gait_estimator.replay.baseline import DEFAULT_TOLERANCES, compare

    entry = {
        "tolerances": DEFAULT_TOLERANCES,
        "metrics": {"knee": dict(rmse=0.1, nrmse=0.1, pearson_r=0.9, r2=0.8)},
    }
    report = {"metrics": {"knee": dict(rmse=0.1, nrmse=float("nan"), pearson_r=0.95)}}
    regs = compare(report, entry)
    assert [(r.joint, r.metric, r.value) for r in regs] == [("knee", "nrmse", None), ("knee", "r2", None)]
    assert (
        compare({"metrics": {}, "metrics_skipped": "no valid estimate"}, entry)[0].why == "no valid estimate"
    )


def test_gait_phase_is_gated_when_the_baseline_has_it() -> None:
    """The committed baseline gates the gait phase and heel strikes of its bags; a run whose phase
    or heel strikes get worse (or that has none) is a regression naming the figure."""
    from gait_estimator.replay.baseline import compare, load_baseline

    entry = load_baseline(BASELINE)["bags"]["walk_mcap"]
    base = entry["gait"]["values"]
    assert base["heel_strikes_missed"] == 0 and base["heel_strikes_extra"] == 0
    assert base["phase_rmse_pct"] < 2.0 and base["heel_strike_mae_ms"] < 15.0

    def report(rmse: float, missed: int, extra: int, mae: float) -> dict:
        joints = {j: dict(v) for j, v in entry["metrics"].items()}
        hs = {"missed": missed, "extra": extra, "mae_ms": mae}
        return {"metrics": joints, "gait_phase": {"phase_rmse_pct": rmse, "heel_strike": hs}}

    same = report(base["phase_rmse_pct"], 0, 0, base["heel_strike_mae_ms"])
    assert compare(same, entry) == []
    worse = report(base["phase_rmse_pct"] + 1.0, 1, 2, base["heel_strike_mae_ms"] + 10.0)
    regs = {r.metric: r for r in compare(worse, entry)}
    assert set(regs) == {"phase_rmse_pct", "heel_strikes_missed", "heel_strikes_extra", "heel_strike_mae_ms"}
    assert all(r.joint == "gait" for r in regs.values()) and "heel_strikes_extra = 2.0000" in str(
        regs["heel_strikes_extra"]
    )
    gone = {"metrics": same["metrics"]}  # a run that scored no gait phase cannot pass
    assert {r.metric for r in compare(gone, entry)} == set(regs)


def test_internal_error_exits_3_not_1(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import gait_estimator.cli.validate as validate

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(validate, "run", broken)
    assert _validate(DATA / "walk_mcap") == 3
    err = capsys.readouterr().err
    assert "ZeroDivisionError: a bug" in err and "internal error" in err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        cli_main(["validate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in (
        "exit status: 0 ok",
        "1 regression",
        "2 error",
        "3 internal error",
        "--allow-model-change",
    ):
        assert phrase in text, phrase


def test_constant_signal_has_no_r_even_when_its_mean_rounds() -> None:
    """The mean of 1000 copies of 5/73.3 is off by an ulp: r and R² must still be undefined."""
    from gait_estimator.core import metrics

    ref = np.full(1000, 5.0 / 73.3)
    assert ref.mean() != ref[0]  # the rounding this guards against
    est = np.sin(np.arange(1000) / 10.0)
    assert np.isnan(metrics.pearson_r(est, ref)) and np.isnan(metrics.r2(est, ref))
    assert np.isnan(metrics.pearson_r(ref, est))  # a constant estimate too
    assert metrics.rmse(est, ref) > 0


def test_missing_bag_with_a_baseline_is_an_error_not_a_crash(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = _validate(tmp_path / "no_such_bag", "--model", model_file, "--baseline", BASELINE)
    err = capsys.readouterr().err
    assert code == 2 and "no such file or directory" in err and "Traceback" not in err, err
