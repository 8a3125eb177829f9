"""``import-lab`` (markers -> OpenSim Scale/IK/ID -> virtual IMUs) and ``import-pig`` (Plug-in Gait c3d)
on real extracts (test/data/real_extracts, see its README), through the real OpenSim tools.

Schreiber 2014007 C5_04 (fast walking) is a hard case on purpose: its trunk markers SXS and SJN
are labelled the wrong way round, which IK alone cannot survive (19 cm marker error).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from gait_estimator import conventions
from gait_estimator.cli.main import main
from gait_estimator.data.opensim_lab import IK_MAX_M, IK_RMS_M, c3d_to_trc, fix_label_swaps, read_trc
from gait_estimator.data.pig_c3d import load_pig_c3d, read_pig_trial
from gait_estimator.errors import DatasetError
from gait_estimator.sim.dataset import load_dataset, load_manifest

HERE = Path(__file__).parents[1]
EXTRACTS = HERE / "data" / "real_extracts"
WINTER = HERE / "data" / "reference" / "normative" / "winter" / "joint_moment_natural_cadence.csv"
F1 = HERE / "data" / "opensim" / "falisse_subject1"
J = {j: k for k, j in enumerate(conventions.JOINTS)}


def lab_args(out: str, *extra: str) -> list[str]:
    """Relative paths on purpose (inputs and output, run from a scratch folder): OpenSim's tools
    change into their setup file's folder and must not resolve them there."""
    rel = os.path.relpath(EXTRACTS, Path.cwd())
    return [
        "import-lab",
        "--out",
        out,
        "--markers",
        f"{rel}/2014007_C5_04.trc.gz",
        "--static",
        f"{rel}/2014007_ST.c3d",  # the lab's c3d (Z up): converted to OpenSim axes on the way
        "--mass",
        "65",
        "--grf",
        f"{rel}/2014007_C5_04_grf.mot.gz",
        "--external-loads",
        f"{rel}/2014007_C5_04_grf.xml",
        "--subject",
        "2014007",
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("lab")
    out = work / "ds"
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    try:
        rc = main(lab_args("ds"))  # scaled models and IK files go to ds/opensim (relative too)
    finally:
        mp.undo()
    assert rc == 0
    assert (out / "opensim" / "2014007" / "2014007_scaled.osim").is_file()
    (trial,) = load_dataset(out)
    (report,) = load_manifest(out)["reports"]
    return {"out": out, "trial": trial, "report": report}


def stance(trial, side: str) -> slice:
    """The plate stance of one leg (vertical GRF above 20 N)."""
    on = np.flatnonzero(trial.extras[f"grf_vy_{side}"] > 20.0)
    return slice(int(on[0]), int(on[-1]) + 1)


def winter_r(trial, joint: str, column: str, sign: float) -> float:
    """Correlation of a plate stance with Winter's natural-cadence mean over 0-60 % of the stride."""
    w = np.genfromtxt(WINTER, delimiter=",", names=True)
    ref = sign * w[column][w["Percent_Stride"] <= 60.0]
    x = trial.moment_nm_per_kg[stance(trial, joint[-1]), J[joint]]
    x = np.interp(np.linspace(0, 1, len(ref)), np.linspace(0, 1, len(x)), x)
    return float(np.corrcoef(x, ref)[0, 1])


def test_label_swap_found_against_the_static_trial(tmp_path):
    from gait_estimator.data.opensim_lab import DEFAULT_MARKER_SET

    dyn = tmp_path / "dyn.trc"
    static = tmp_path / "st.trc"
    for src, dst in ((EXTRACTS / "2014007_C5_04.trc.gz", dyn), (EXTRACTS / "2014007_ST.trc.gz", static)):
        dst.write_bytes(gzip.decompress(src.read_bytes()))
    fixed, swaps = fix_label_swaps(dyn, static, DEFAULT_MARKER_SET, tmp_path)
    assert swaps == ["SXS<->SJN"]
    t0, n0, x0 = read_trc(dyn)
    t1, n1, x1 = read_trc(fixed)
    np.testing.assert_array_equal(x1[:, n1.index("SXS")], x0[:, n0.index("SJN")])
    # the static trial against itself: nothing to swap, the file is used as it is
    assert fix_label_swaps(static, static, DEFAULT_MARKER_SET, tmp_path) == (static, [])


def test_ik_within_opensim_best_practice_after_relabelling(lab):
    q = lab["report"]["ik_quality"]
    assert q["labels_swapped"] == ["SXS<->SJN"]
    assert q["rms_mean_m"] < IK_RMS_M and q["max_m"] < IK_MAX_M, q
    assert q["beyond_limits"] is None
    # medial knee/ankle markers serve the static trial only
    assert "R_FME" not in q["per_marker_rms_m"] and "L_TAM" not in q["per_marker_rms_m"]
    assert q["rms_mean_m"] > 0.002  # real markers on a rigid-segment model never fit exactly


def test_scaled_mass_and_moment_signs(lab):
    trial, report = lab["trial"], lab["report"]
    assert trial.subject == {"id": "2014007", "mass_kg": pytest.approx(65.0, abs=1e-3)}
    assert report["knee_sign_applied"] == 1.0  # gait2354: knee negative in flexion
    m = trial.moment_nm_per_kg
    for side in "rl":
        st = m[stance(trial, side)]
        # push-off: plantarflexor (negative) peak of a fast walk; knee extensor early stance (positive)
        assert -2.0 < st[:, J[f"ankle_angle_{side}"]].min() < -1.0
        assert st[: len(st) // 3, J[f"knee_angle_{side}"]].max() > 0.3
        # Winter's shapes, his signs mapped onto ours (ankle -, hip -)
        assert winter_r(trial, f"ankle_angle_{side}", "Ankle_Mean", -1.0) > 0.9
        assert winter_r(trial, f"hip_flexion_{side}", "Hip_Mean", -1.0) > 0.7


def test_pelvis_residuals_reported_in_usual_range(lab):
    res = lab["report"]["pelvis_residuals"]
    assert res["samples"] > 20
    assert 1.0 < res["pelvis_ty_rms_pct_bw"] < 15.0  # ID without residual reduction: a few % BW
    assert 0.0 < res["pelvis_tilt_rms_nm_per_kg"] < 0.6


def test_virtual_imus_still_foot_in_midstance(lab):
    trial = lab["trial"]
    for side in "rl":
        st = stance(trial, side)
        mid = slice(st.start + (st.stop - st.start) * 2 // 5, st.start + (st.stop - st.start) * 3 // 5)
        foot = trial.imu[f"foot_{side}"]
        assert np.linalg.norm(foot["acc"][mid], axis=1).mean() == pytest.approx(9.81, abs=1.5)
        assert np.abs(foot["gyro"][mid]).max() < 1.5
        assert foot["acc"][mid, 2].mean() > 8.0  # sensor z up while the foot is flat


def test_refused_when_ik_beyond_limits(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main(lab_args("ds", "--max-ik-error", "0.01", "--work", "w"))
    err = capsys.readouterr()
    assert rc == 2
    line = next(x for x in err.out.splitlines() if x.startswith("skipped:"))
    assert "IK refused" in line and "max marker error" in line and "> 1.0 cm" in line
    assert not (tmp_path / "ds" / "manifest.json").exists()


def test_relative_paths_reach_inverse_dynamics(tmp_path, monkeypatch):
    """Plain (not .gz) relative --ik/--grf/--external-loads once made the ID step fail."""
    for f in ("subject1_mtp_markers.osim.gz", "IK_gait_14_mtp.mot.gz", "GRF_gait_14.mot.gz"):
        (tmp_path / f[:-3]).write_bytes(gzip.decompress((F1 / f).read_bytes()))
    shutil.copy(F1 / "External_Loads_gait_14_mtp.xml", tmp_path)
    monkeypatch.chdir(tmp_path)
    rc = main(
        [
            "import-opensim",
            "--out",
            "ds",
            "--model",
            "subject1_mtp_markers.osim",
            "--ik",
            "IK_gait_14_mtp.mot",
            "--grf",
            "GRF_gait_14.mot",
            "--external-loads",
            "External_Loads_gait_14_mtp.xml",
            "--no-progress",
        ]
    )
    assert rc == 0
    (trial,) = load_dataset(tmp_path / "ds")
    ref = np.genfromtxt(F1 / "f1_gait_14_moments.csv", delimiter=",", names=True)
    v = trial.extras["moment_valid"][:, J["ankle_angle_r"]].astype(bool) & (ref["valid_r"] > 0)
    assert np.corrcoef(trial.moment_nm[v, J["ankle_angle_r"]], ref["ankle_angle_r"][v])[0, 1] > 0.99


# -- Plug-in Gait ----------------------------------------------------------------------------------
PIG = EXTRACTS / "HC002D06_pig.c3d"


@pytest.fixture(scope="module")
def pig():
    return read_pig_trial(PIG)


def test_pig_moments_converted_to_package_signs(pig):
    raw = load_pig_c3d(PIG).points
    trial = pig.trial
    mass = 32.1
    assert trial.subject == {"id": "HC002D", "mass_kg": pytest.approx(mass)}
    for joint, label, sign in (("hip_flexion_r", "RHipMoment", -1), ("knee_angle_l", "LKneeMoment", 1)):
        x = raw[label][:, 0]
        ok = np.isfinite(x)
        np.testing.assert_array_equal(trial.extras["moment_valid"][:, J[joint]].astype(bool), ok)
        np.testing.assert_allclose(trial.moment_nm[ok, J[joint]], sign * x[ok] / 1000 * mass, rtol=1e-5)
        assert np.all(trial.moment_nm[~ok, J[joint]] == 0)
    m = trial.moment_nm_per_kg
    for side in "rl":
        ankle = m[:, J[f"ankle_angle_{side}"]]
        assert -1.8 < ankle.min() < -1.0  # push-off plantarflexor moment, negative in our convention
        assert ankle.max() < 0.4
        hs = trial.events[f"heel_strike_{side}"]
        # PiG: hip extensor at heel strike -> our hip_flexion negative just after a measured strike
        after = [h + 3 for h in hs if trial.extras["moment_valid"][h + 3, J[f"hip_flexion_{side}"]]]
        assert after and all(m[a, J[f"hip_flexion_{side}"]] < 0 for a in after)


def test_pig_virtual_imus_follow_the_hip_angle(pig):
    raw = load_pig_c3d(PIG).points
    trial = pig.trial
    # thigh sagittal angular velocity (sensor y points left: flexion is negative) ~ hip flexion rate
    hip = np.radians(raw["RHipAngles"][:, 0])  # deg
    rate = np.gradient(hip, 0.01)
    gy = trial.imu["thigh_r"]["gyro"][:, 1]
    ok = np.isfinite(rate)
    assert np.corrcoef(gy[ok], -rate[ok])[0, 1] > 0.9
    assert np.abs(gy).max() == pytest.approx(np.abs(rate[ok]).max(), rel=0.35)
    for side in "rl":
        on = np.flatnonzero(trial.extras[f"grf_vy_{side}"] > 0.5 * 9.81 * 32.1)
        mid = on[len(on) // 3 : 2 * len(on) // 3]
        foot = trial.imu[f"foot_{side}"]
        assert np.linalg.norm(foot["acc"][mid], axis=1).mean() == pytest.approx(9.81, abs=1.5)
        assert np.abs(foot["gyro"][mid]).max() < 1.5


def test_pig_cli_batch_and_bad_file(tmp_path, capsys):
    bad = tmp_path / "in" / "broken.c3d"
    bad.parent.mkdir()
    bad.write_bytes(b"not a c3d file" * 10)
    shutil.copy(PIG, tmp_path / "in" / "HC002D06.c3d")
    rc = main(["import-pig", "--batch", str(tmp_path / "in"), "--out", str(tmp_path / "ds"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert sum(line.startswith("skipped: ") and "broken.c3d" in line for line in out.splitlines()) == 1
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert [r["trial"] for r in manifest["reports"]] == ["HC002D06"] and len(manifest["refused"]) == 1
    with pytest.raises(DatasetError, match="not a Plug-in Gait output"):
        read_pig_trial(write_points_only(tmp_path))


def write_points_only(tmp_path: Path) -> Path:
    """A valid c3d without the PiG outputs (markers only)."""
    import ezc3d

    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [100.0]
    c["parameters"]["POINT"]["LABELS"]["value"] = ["LASI", "RASI"]
    c["data"]["points"] = np.ones((4, 2, 10))
    c.add_parameter("PROCESSING", "Bodymass", [40.0])
    path = tmp_path / "markers_only.c3d"
    c.write(str(path))
    return path


@pytest.mark.parametrize(
    "c3d, trc",
    [
        ("2014007_ST.c3d", "2014007_ST.trc.gz"),  # standing, faces lab +X: no turn
        ("2014007_C5_04_first30.c3d", "2014007_C5_04.trc.gz"),  # walks along lab -X: turned 180 deg
    ],
)
def test_c3d_markers_in_opensim_axes_walking_x(tmp_path, c3d, trc):
    """Lab c3d (Z up) -> OpenSim axes equals the source's own conversion (y up, +x forward)."""
    _, n0, x0 = read_trc(
        _write(tmp_path / "ref.trc", gzip.decompress((EXTRACTS / trc).read_bytes()).decode())
    )
    _, n1, x1 = read_trc(c3d_to_trc(EXTRACTS / c3d, tmp_path))
    idx = [n1.index(n) for n in n0]
    k = min(len(x0), len(x1), 30)
    np.testing.assert_allclose(x1[:k, idx], x0[:k], atol=1e-5 + 1e-8)  # the .trc extract: 0.01 mm
    ias = np.mean([x1[0, n1.index(n)] for n in ("L_IAS", "R_IAS")], axis=0)
    ips = np.mean([x1[0, n1.index(n)] for n in ("L_IPS", "R_IPS")], axis=0)
    assert ias[0] > ips[0] + 0.1  # faces +x
    assert x1[0, n1.index("R_IAS"), 2] > x1[0, n1.index("L_IAS"), 2]  # z to the right


def test_gz_trc_reader_units(tmp_path):
    text = gzip.decompress((EXTRACTS / "2014007_ST.trc.gz").read_bytes()).decode()
    t, names, xyz = read_trc(_write(tmp_path / "st.trc", text))
    assert names[:2] == ["L_IAS", "L_IPS"] and len(names) == 30
    assert xyz.shape == (2, 30, 3)
    assert 0.7 < np.nanmax(xyz[:, :, 1]) < 1.6  # metres (file in mm), y up: pelvis/trunk heights


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
