"""``import-opensim`` on real lab files (test/data/opensim, see its README) with the real OpenSim tools.

The reference moments and virtual IMUs were made by mocap_walkers' ``make_derived.py`` (opensim
4.6); the importer must reproduce them, read the published ID and the lab's ExternalLoads,
and refuse bad input with a message naming what is wrong.
"""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from gait_estimator.cli.main import main
from gait_estimator.data.opensim_import import TrialSpec, import_trial
from gait_estimator.data.opensim_kinematics import OSIM_TO_SENSOR, ImuSite, load_sites
from gait_estimator.errors import DatasetError
from gait_estimator.sim.dataset import load_dataset, load_manifest
from gait_estimator.train.experiment import load_recordings

DATA = Path(__file__).parents[1] / "data" / "opensim"
F1 = DATA / "falisse_subject1"
S4 = DATA / "opencap_subject4"


def falisse(**kw) -> TrialSpec:
    return TrialSpec(
        "f1_gait_14",
        F1 / "subject1_mtp_markers.osim.gz",
        F1 / "IK_gait_14_mtp.mot.gz",
        kw.pop("grf", F1 / "GRF_gait_14.mot.gz"),
        **kw,
    )


def reference(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return np.genfromtxt(io.StringIO(fh.read()), delimiter=",", names=True, deletechars="")


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """Both trials through the CLI in batch mode (trials.yaml, absolute paths)."""
    folder = tmp_path_factory.mktemp("lab")
    trials = [
        {
            "trial": "f1_gait_14",
            "subject": "falisse",
            "model": str(F1 / "subject1_mtp_markers.osim.gz"),
            "ik": str(F1 / "IK_gait_14_mtp.mot.gz"),
            "grf": str(F1 / "GRF_gait_14.mot.gz"),
        },
        {
            "trial": "s4_walking4",
            "subject": "s4",
            "model": str(S4 / "optimized_scale_and_markers.osim.gz"),
            "ik": str(S4 / "walking4_ik.mot.gz"),
            "grf": str(S4 / "walking4_grf.mot.gz"),
        },
    ]
    (folder / "trials.yaml").write_text(yaml.safe_dump({"trials": trials}))
    out = folder / "dataset"
    assert main(["import-opensim", "--batch", str(folder), "--out", str(out)]) == 0
    return out


def test_moments_reproduce_the_reference_at_r_099(batch):
    trials = {t.trial_id: t for t in load_dataset(batch)}
    reports = {r["trial"]: r for r in load_manifest(batch)["opensim_import"]}
    for name, ref_path, mass, knee_sign in (
        ("f1_gait_14", F1 / "f1_gait_14_moments.csv", 62.0, 1.0),
        ("s4_walking4", S4 / "s4_walking4_moments.csv", 62.6, -1.0),  # Rajagopal knee: flexion positive
    ):
        tr, ref = trials[name], reference(ref_path)
        assert tr.subject["mass_kg"] == pytest.approx(mass, abs=0.05)
        assert len(tr.time_ns) == len(ref)
        for k, joint in enumerate(tr.joint_names):
            r = np.corrcoef(tr.moment_nm[:, k], ref[joint])[0, 1]
            assert r >= 0.99, (name, joint, r)
            assert np.sqrt(np.mean((tr.moment_nm[:, k] - ref[joint]) ** 2)) < 0.01  # N·m
        valid = tr.extras["moment_valid"].astype(bool)
        np.testing.assert_array_equal(valid[:, 0], ref["valid_r"] == 1)
        np.testing.assert_array_equal(valid[:, 3], ref["valid_l"] == 1)
        assert (~valid).any()  # both trials have a foot on the ground off the plates
        np.testing.assert_allclose(tr.extras["grf_vy_r"], ref["grf_vy_r"], atol=0.05)
        assert reports[name]["knee_sign_applied"] == knee_sign


def test_virtual_imus_match_the_reference_in_our_sensor_frame(batch):
    tr = next(t for t in load_dataset(batch) if t.trial_id == "f1_gait_14")
    ref = reference(F1 / "f1_gait_14_imu.csv.gz")
    assert list(tr.imu) == ["pelvis", "thigh_r", "thigh_l", "shank_r", "shank_l", "foot_r", "foot_l"]
    for loc, sig in tr.imu.items():
        for kind in ("acc", "gyro"):
            want = np.column_stack([ref[f"{loc}/{kind}_{a}"] for a in "xyz"]) @ OSIM_TO_SENSOR.T
            assert np.abs(sig[kind] - want).max() < 1e-3, (loc, kind)
    # the quaternion (sensor -> world) turns the specific force into world axes: mean ~ +g on z
    from scipy.spatial.transform import Rotation

    f_world = Rotation.from_quat(tr.imu["pelvis"]["quat"]).apply(tr.imu["pelvis"]["acc"])
    assert f_world[:, 2].mean() == pytest.approx(9.81, abs=0.5)


def test_dataset_is_read_by_the_training_loader(batch):
    recs = load_recordings(batch, 100.0, signals=("acc", "gyro"))
    rec = next(r for r in recs if r.name == "f1_gait_14")
    assert rec.subject_id == "falisse" and rec.mass_kg == pytest.approx(62.0, abs=0.05)
    assert "thigh_r/gyro_y" in rec.channels and rec.moments.shape[1] == 6
    assert np.abs(rec.moments).max() < 3.0  # N·m/kg, normalised by the model's mass


def test_published_id_and_lab_external_loads(batch):
    """Given ID .sto is taken as is; the lab's own ExternalLoads XML gives the same moments."""
    ref = reference(F1 / "f1_gait_14_moments.csv")
    given = import_trial(falisse(id_sto=F1 / "ID_gait_14_mtp.sto.gz")).trial
    lab_xml = import_trial(falisse(external_loads=F1 / "External_Loads_gait_14_mtp.xml")).trial
    valid = given.extras["moment_valid"].astype(bool)
    only_id = import_trial(falisse(grf=None, id_sto=F1 / "ID_gait_14_mtp.sto.gz")).trial  # no plates known
    np.testing.assert_array_equal(only_id.moment_nm, given.moment_nm)
    assert only_id.extras["moment_valid"].all() and np.isnan(only_id.extras["grf_vy_r"]).all()
    for k, joint in enumerate(given.joint_names):
        v = valid[:, k]
        assert np.corrcoef(given.moment_nm[v, k], ref[joint][v])[0, 1] >= 0.998, joint
        np.testing.assert_allclose(lab_xml.moment_nm[v, k], given.moment_nm[v, k], atol=0.5)


def test_site_rotation_and_yaml(tmp_path, batch):
    default = next(t for t in load_dataset(batch) if t.trial_id == "f1_gait_14").imu["thigh_r"]
    path = tmp_path / "sites.yaml"
    path.write_text("sites:\n  thigh_r: {rotation_deg: [0, 0, 90]}\n")
    sites = load_sites(path)
    assert sites == [ImuSite("thigh_r", "femur_r", None, (0.0, 0.0, 90.0))]
    rotated = import_trial(falisse(), sites).trial.imu["thigh_r"]
    # sensor turned +90 deg about z: its x axis is the segment's y axis
    np.testing.assert_allclose(rotated["acc"][:, 0], default["acc"][:, 1], atol=1e-4)
    np.testing.assert_allclose(rotated["gyro"][:, 1], -default["gyro"][:, 0], atol=1e-4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("sites: {thigh_r: {body: femur_x}}", "unknown body 'femur_x'"),
        ("sites: {wrist: {body: hand_r}}", "give 'position'"),
        ("sites: {thigh_r: {position: [1, 2]}}", "list of 3 numbers"),
        ("sites: []", "non-empty mapping"),
    ],
)
def test_bad_site_yaml(tmp_path, text, message):
    path = tmp_path / "sites.yaml"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        import_trial(falisse(), load_sites(path))


def _edited_mot(src: Path, dst: Path, edit) -> Path:
    with gzip.open(src, "rt") as fh:
        lines = fh.read().splitlines()
    dst.write_text("\n".join(edit(lines)) + "\n")
    return dst


def test_missing_column_mismatched_times_unknown_body(tmp_path):
    def drop_knee(lines):
        end = next(i for i, line in enumerate(lines) if line.strip().lower() == "endheader")
        names = lines[end + 1].split("\t")
        k = [n.strip() for n in names].index("knee_angle_r")
        return lines[: end + 1] + [
            "\t".join(c for i, c in enumerate(row.split("\t")) if i != k) for row in lines[end + 1 :]
        ]

    ik = _edited_mot(F1 / "IK_gait_14_mtp.mot.gz", tmp_path / "ik.mot", drop_knee)
    with pytest.raises(DatasetError, match="lacks coordinate column.*knee_angle_r"):
        import_trial(TrialSpec("x", F1 / "subject1_mtp_markers.osim.gz", ik, F1 / "GRF_gait_14.mot.gz"))

    def shift(lines):  # GRF moved 10 s later: no common time with the IK
        end = next(i for i, line in enumerate(lines) if line.strip().lower() == "endheader")
        body = [line for line in lines[end + 1 :] if line.strip()]
        rows = [f"{float(r.split()[0]) + 10:.6f}\t" + "\t".join(r.split()[1:]) for r in body[1:]]
        return lines[: end + 1] + [body[0]] + rows

    grf = _edited_mot(F1 / "GRF_gait_14.mot.gz", tmp_path / "grf.mot", shift)
    with pytest.raises(DatasetError, match="overlap for 0.000 s"):
        import_trial(falisse(grf=grf))

    xml = tmp_path / "loads.xml"
    xml.write_text((F1 / "External_Loads_gait_14_mtp.xml").read_text().replace("calcn_r", "foot_right"))
    with pytest.raises(DatasetError, match="unknown body 'foot_right'"):
        import_trial(falisse(external_loads=xml))
    bad_grf = tmp_path / "nogrf.mot"
    shutil.copy(ik, bad_grf)  # a motion file with no plate columns
    with pytest.raises(DatasetError, match="no force-plate columns"):
        import_trial(falisse(grf=bad_grf))


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert (
        main(
            [
                "import-opensim",
                "--out",
                str(tmp_path / "o"),
                "--model",
                str(F1 / "nope.osim"),
                "--ik",
                str(F1 / "IK_gait_14_mtp.mot.gz"),
                "--grf",
                str(F1 / "GRF_gait_14.mot.gz"),
            ]
        )
        == 2
    )
    assert "nope.osim: file not found" in capsys.readouterr().err
    assert main(["import-opensim", "--out", str(tmp_path / "o"), "--model", "m.osim", "--ik", "ik.mot"]) == 2
    assert "give --grf" in capsys.readouterr().err


def test_discover_trials_by_name(tmp_path):
    from gait_estimator.data.opensim_batch import discover_trials

    for src, dst in (
        ("optimized_scale_and_markers.osim.gz", "Models/model.osim.gz"),
        ("walking4_ik.mot.gz", "IK/walking4_ik.mot.gz"),
        ("walking4_grf.mot.gz", "ID/walking4_grf.mot.gz"),
    ):
        (tmp_path / dst).parent.mkdir(exist_ok=True)
        shutil.copy(S4 / src, tmp_path / dst)
    (spec,) = discover_trials(tmp_path)
    assert (spec.name, spec.ik.name, spec.grf.name, spec.model.name) == (
        "walking4",
        "walking4_ik.mot.gz",
        "walking4_grf.mot.gz",
        "model.osim.gz",
    )
    shutil.copy(S4 / "walking4_ik.mot.gz", tmp_path / "IK" / "walking9_ik.mot.gz")
    with pytest.raises(DatasetError, match="no GRF file .* for walking9_ik.mot.gz"):
        discover_trials(tmp_path)
    shutil.copy(S4 / "optimized_scale_and_markers.osim.gz", tmp_path / "other.osim.gz")
    with pytest.raises(DatasetError, match="found 2 .osim models"):
        discover_trials(tmp_path)


def test_importing_opensim_leaves_the_process_environment_for_ros_children():
    """opensim's __init__ overwrites LD_LIBRARY_PATH; a node started afterwards by the same
    process (tests, `gait-estimator run`) then failed to import rclpy. The import restores it."""
    import os
    import subprocess
    import sys

    from gait_estimator.data.opensim_kinematics import osim_module

    before = {k: os.environ.get(k) for k in ("PATH", "LD_LIBRARY_PATH")}
    osim_module()
    assert {k: os.environ.get(k) for k in before} == before
    child = subprocess.run(
        [sys.executable, "-c", "import rclpy; rclpy.init(); rclpy.shutdown(); print('ok')"],
        capture_output=True, text=True, timeout=60,
    )
    assert child.stdout.strip() == "ok", child.stderr[-2000:]
