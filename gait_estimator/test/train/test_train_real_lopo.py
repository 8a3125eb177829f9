"""Leave-persons-out folds over the real corpus, duplicate removal, augmentation and metrics.

Synthetic trials written as a small corpus (no ../shared): the fold logic must never put one
person on both sides, must drop the trials marked ``duplicate_of``, and the augmentation must
keep the physics it claims (mirroring is an involution, a rotation keeps vector norms, a lever
arm adds the centripetal term).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from gait_estimator import conventions
from gait_estimator.errors import DatasetError
from gait_estimator.sim.dataset import Trial, write_dataset
from gait_estimator.sim.imu import ImuErrorModel
from gait_estimator.sim.randomization import DomainRandomization
from gait_estimator.train.real_augment import mirror_trial, randomize_trial
from gait_estimator.train.real_lopo import (
    Prediction,
    dedupe_trials,
    gate,
    group_metrics,
    load_corpus,
    person_folds,
    split_trials,
    to_recordings,
)

N = 150


def _trial(trial_id: str, person: str, speed: float = 1.2, seed: int = 0) -> Trial:
    rng = np.random.default_rng(seed)
    imu = {}
    for loc in conventions.IMU_LOCATIONS:
        q = rng.normal(size=(N, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        imu[loc] = {
            "acc": rng.normal(0, 3, (N, 3)).astype(np.float32),
            "gyro": rng.normal(0, 1, (N, 3)).astype(np.float32),
            "quat": q.astype(np.float32),
        }
    valid = np.ones((N, 6), dtype=np.float32)
    valid[:20, 3:] = 0  # left leg masked at the start
    return Trial(
        trial_id,
        {"id": person, "mass_kg": 60.0},
        speed,
        100.0,
        np.arange(N, dtype=np.int64) * 10_000_000,
        imu,
        conventions.JOINTS,
        rng.normal(0, 30, (N, 6)),
        np.linspace(0, 0.99, N).astype(np.float32),
        {"heel_strike_r": np.array([10, 110]), "heel_strike_l": np.array([60])},
        {"moment_valid": valid},
    )


PEOPLE = (
    [f"schreiber2019/{i}" for i in range(14)]
    + [f"biomechzoo_children/C{i}" for i in range(12)]
    + ["mocap_walkers/falisse", "mocap_walkers/opencap_s4"]
)


def test_person_folds_cover_everyone_once_and_spread_each_set():
    folds = person_folds(PEOPLE, 4, seed=3)
    flat = [p for f in folds for p in f]
    assert sorted(flat) == sorted(PEOPLE) and len(flat) == len(set(flat))
    assert [len(f) for f in folds] == [7, 7, 7, 7]
    for f in folds:  # every fold holds adults and children
        assert sum(p.startswith("schreiber2019/") for p in f) in (3, 4)
        assert sum(p.startswith("biomechzoo_children/") for p in f) == 3
    mocap_folds = [i for i, f in enumerate(folds) for p in f if p.startswith("mocap_walkers/")]
    assert len(set(mocap_folds)) == 2  # the two walkers test in different folds
    assert person_folds(PEOPLE, 4, seed=3) == folds  # seeded
    assert person_folds(PEOPLE, 4, seed=4) != folds
    # duplicates in the input list are one person
    assert person_folds(PEOPLE + PEOPLE[:3], 4, seed=3) == folds


@pytest.mark.parametrize("k", [1, 29])
def test_person_folds_refuse_impossible_counts(k):
    with pytest.raises(DatasetError, match="folds need"):
        person_folds(PEOPLE, k)


def test_dedupe_drops_marked_copies_only_when_the_original_is_there():
    trials = [
        _trial("f1_gait_14", "mocap_walkers/falisse"),
        _trial("f2_gait_14", "mocap_walkers/falisse"),
        _trial("f2_gait_23", "mocap_walkers/falisse"),
    ]
    rows = [
        {"trial": "f1_gait_14"},
        {"trial": "f2_gait_14", "duplicate_of": "f1_gait_14"},
        {"trial": "f2_gait_23", "duplicate_of": "f1_gait_23"},
    ]  # its original is absent: kept
    assert [t.trial_id for t in dedupe_trials(trials, rows)] == ["f1_gait_14", "f2_gait_23"]


def _write_corpus(root):
    sets = {
        "schreiber2019": [
            ("2014001_C4_01", "2014001", 0.9),
            ("2014001_C5_01", "2014001", 1.6),
            ("2014002_C4_01", "2014002", 1.2),
        ],
        "biomechzoo_children": [("HC1_01", "HC1", 1.1), ("HC2_01", "HC2", 1.3)],
        "mocap_walkers": [
            ("f1_gait_14", "falisse", 1.3),
            ("f2_gait_14", "falisse", 1.3),
            ("s4_walking1", "opencap_s4", 1.25),
        ],
    }
    index = {"sets": {}}
    for k, (name, rows) in enumerate(sets.items()):
        trials = [_trial(t, f"{name}/{p}", v, seed=10 * k + i) for i, (t, p, v) in enumerate(rows)]
        if name == "mocap_walkers":  # f2 is the same recording as f1
            trials[1] = replace(trials[0], trial_id="f2_gait_14")
        write_dataset(root / name, trials)
        index["sets"][name] = {
            "trials": [
                {"trial": t, **({"duplicate_of": "f1_gait_14"} if t == "f2_gait_14" else {})}
                for t, _, _ in rows
            ]
        }
    (root / "corpus.json").write_text(json.dumps(index))


def test_corpus_folds_never_split_a_person_and_drop_duplicates(tmp_path):
    _write_corpus(tmp_path)
    trials = load_corpus(tmp_path)
    ids = [t.trial_id for t in trials]
    assert "f2_gait_14" not in ids and "f1_gait_14" in ids and len(ids) == 7
    people = sorted({t.subject["id"] for t in trials})
    assert len(people) == 6
    folds = person_folds(people, 3, seed=0)
    seen = []
    for test_people in folds:
        train, test = split_trials(trials, test_people)
        train_people = {t.subject["id"] for t in train}
        test_ids = {t.subject["id"] for t in test}
        assert not train_people & test_ids and test_ids == set(test_people)
        assert len(train) + len(test) == len(trials)
        seen += [t.trial_id for t in test]
    assert sorted(seen) == sorted(ids)  # every trial tested exactly once
    # both trials of 2014001 (two speeds) are always on the same side
    for test_people in folds:
        _, test = split_trials(trials, test_people)
        assert {t.trial_id for t in test} >= {"2014001_C4_01", "2014001_C5_01"} or not any(
            t.trial_id.startswith("2014001") for t in test
        )
    with pytest.raises(DatasetError, match="no trial of test people"):
        split_trials(trials, ["schreiber2019/nobody"])


def test_corpus_refuses_a_person_id_outside_its_set(tmp_path):
    _write_corpus(tmp_path)
    bad = _trial("X1", "schreiber2019/2014099")
    write_dataset(tmp_path / "biomechzoo_children", [bad])
    with pytest.raises(DatasetError, match="not 'biomechzoo_children/"):
        load_corpus(tmp_path)
    with pytest.raises(DatasetError, match="corpus.json"):
        load_corpus(tmp_path / "missing")


def test_mirror_swaps_legs_and_is_an_involution():
    t = _trial("a", "s/p")
    m = mirror_trial(t)
    np.testing.assert_allclose(m.moment_nm[:, :3], t.moment_nm[:, 3:])
    np.testing.assert_array_equal(m.extras["moment_valid"][:20, :3], 0)  # the mask moved with the leg
    np.testing.assert_array_equal(m.events["heel_strike_l"], t.events["heel_strike_r"])
    # sagittal channels: the right thigh's values now belong to the left thigh, unchanged
    rec_t, rec_m = to_recordings([t])[0], to_recordings([m])[0]
    for sig in ("acc_x", "acc_z", "gyro_y"):
        i_r, i_l = rec_t.channels.index(f"thigh_r/{sig}"), rec_m.channels.index(f"thigh_l/{sig}")
        np.testing.assert_allclose(rec_m.inputs[:, i_l], rec_t.inputs[:, i_r], atol=1e-6)
    np.testing.assert_allclose(m.imu["thigh_l"]["acc"][:, 1], -t.imu["thigh_r"]["acc"][:, 1])
    np.testing.assert_allclose(m.imu["thigh_l"]["gyro"][:, 0], -t.imu["thigh_r"]["gyro"][:, 0])
    back = mirror_trial(m)
    np.testing.assert_allclose(back.moment_nm, t.moment_nm)
    for loc in t.imu:
        for k in ("acc", "gyro"):
            np.testing.assert_allclose(back.imu[loc][k], t.imu[loc][k], atol=1e-6)
        q1, q2 = back.imu[loc]["quat"], t.imu[loc]["quat"]
        np.testing.assert_allclose(np.abs(np.sum(q1 * q2, axis=1)), 1.0, atol=1e-5)  # same rotation


def _quiet_dr(**kw):
    base = {"residual_rotation_deg": 0.0, "position_sd_m": 0.0, "soft_tissue_scale": 0.0, "grades": ()}
    return DomainRandomization(**{**base, **kw})


def test_randomize_without_any_error_source_keeps_the_signals():
    t = _trial("a", "s/p")
    out = randomize_trial(t, _quiet_dr(), np.random.default_rng(0), "#0", ImuErrorModel(enabled=False))
    assert out.trial_id == "a#0"
    for loc in t.imu:
        np.testing.assert_allclose(out.imu[loc]["acc"], t.imu[loc]["acc"], atol=1e-5)
        np.testing.assert_allclose(out.imu[loc]["gyro"], t.imu[loc]["gyro"], atol=1e-6)


def test_randomize_rotation_keeps_norms_and_lever_arm_adds_centripetal_acceleration():
    t = _trial("a", "s/p")
    off = ImuErrorModel(enabled=False)
    rot = randomize_trial(t, _quiet_dr(residual_rotation_deg=5.0), np.random.default_rng(1), "", off)
    for loc in t.imu:
        for k in ("acc", "gyro"):
            a, b = rot.imu[loc][k], t.imu[loc][k]
            assert not np.allclose(a, b, atol=1e-3)
            np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1), rtol=1e-5)
    # constant rotation rate about y: a position offset d adds w x (w x d), no tangential term
    w = np.zeros((N, 3), dtype=np.float32)
    w[:, 1] = 2.0
    const = replace(
        t, imu={loc: {**s, "gyro": w, "acc": np.zeros((N, 3), np.float32)} for loc, s in t.imu.items()}
    )
    pos = randomize_trial(const, _quiet_dr(position_sd_m=0.05), np.random.default_rng(2), "", off)
    acc = pos.imu["pelvis"]["acc"]
    d = np.random.default_rng(2).normal(0.0, 0.05, 3)  # the first draw of that generator
    expect = np.cross(w[0], np.cross(w[0], d))
    np.testing.assert_allclose(acc, np.tile(expect, (N, 1)), atol=1e-5)
    assert expect[0] != 0 and expect[2] != 0 and abs(expect[1]) < 1e-12


def test_randomize_soft_tissue_and_noise_change_the_signals_reproducibly():
    t = _trial("a", "s/p")
    dr = DomainRandomization()
    a = randomize_trial(t, dr, np.random.default_rng(5))
    b = randomize_trial(t, dr, np.random.default_rng(5))
    c = randomize_trial(t, dr, np.random.default_rng(6))
    np.testing.assert_array_equal(a.imu["shank_r"]["acc"], b.imu["shank_r"]["acc"])
    assert not np.allclose(a.imu["shank_r"]["acc"], c.imu["shank_r"]["acc"])
    np.testing.assert_array_equal(a.moment_nm, t.moment_nm)  # the targets are untouched


def _pred(name, person, speed, err):
    ref = np.sin(np.linspace(0, 6, 200))[:, None] * np.arange(1, 7)[None, :]
    ref[:10, 0] = np.nan  # masked samples are left out
    return Prediction(name, person, person.split("/")[0], speed, ref + err, ref)


def test_group_metrics_pool_by_set_and_speed_band():
    preds = [_pred("a", "s1/p1", 0.8, 0.1), _pred("b", "s1/p2", 1.2, 0.1), _pred("c", "s2/p3", 1.5, 0.3)]
    g = group_metrics(preds, conventions.JOINTS)
    assert set(g) == {"all", "set:s1", "set:s2", "speed:< 1.0 m/s", "speed:1.0-1.4 m/s", "speed:>= 1.4 m/s"}
    assert g["set:s1"]["_people"] == 2 and g["set:s1"]["_trials"] == 2
    assert g["set:s1"]["hip_flexion_r"]["rmse"] == pytest.approx(0.1)
    assert g["set:s2"]["knee_angle_l"]["rmse"] == pytest.approx(0.3)
    assert g["set:s2"]["knee_angle_l"]["peak_error"] == pytest.approx(0.3)
    assert g["all"]["hip_flexion_r"]["samples"] == 3 * 190
    assert g["all"]["ankle_angle_l"]["rmse"] == pytest.approx(np.sqrt((0.01 + 0.01 + 0.09) / 3))
    assert g["speed:>= 1.4 m/s"]["_trials"] == 1


def test_gate_names_every_failed_condition():
    j = conventions.JOINTS
    jr = conventions.JOINTS_R

    def entry(rmse, set_rmse, p01, r):
        m = {jj: {"rmse": rmse, "r": 0.9} for jj in j}
        s = {jj: {"rmse": set_rmse, "r": 0.9} for jj in j}
        d = {
            t: {"metrics": {jj: {"rmse": p01, "pearson_r": r} for jj in jr}}
            for t in ("P01_walking", "P03_walking")
        }
        return {"lopo": {"all": m, "set:a": s}, "dorschky": {"trials": d}}

    old = entry(0.2, 0.2, 0.25, 0.7)
    assert gate(entry(0.15, 0.19, 0.2, 0.8), old, j) == {"passed": True, "reasons": []}
    bad = gate(entry(0.21, 0.25, 0.3, 0.6), old, j)
    assert not bad["passed"]
    assert any("LOPO" in r for r in bad["reasons"]) and any(
        r.startswith("a: RMSE worse") for r in bad["reasons"]
    )
    assert any("P01 mean RMSE" in r for r in bad["reasons"]) and any("P03" in r for r in bad["reasons"])


def test_plot_sets_draws_one_figure_per_set(tmp_path):
    from gait_estimator.train.real_report import plot_sets

    a, b = _pred("a", "s1/p1", 0.8, 0.1), _pred("c", "s2/p3", 1.5, 0.3)
    for p in (a, b):
        p.phase = np.linspace(0, 0.99, len(p.reference))
    paths = plot_sets({"default": [a, b], "new": [a, b]}, tmp_path)
    assert [p.name for p in paths] == ["s1.png", "s2.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_update_section_replaces_only_its_own_block(tmp_path):
    from gait_estimator.train.real_report import BEGIN, END, update_section

    path = tmp_path / "default_report.md"
    path.write_text("# Default model\n\nsimulated figures\n")
    update_section(path, "## Real walkers\nfirst")
    update_section(path, "## Real walkers\nsecond")
    text = path.read_text()
    assert text.startswith("# Default model\n\nsimulated figures\n\n" + BEGIN)
    assert "second" in text and "first" not in text
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_real_candidate_file_is_a_drop_in_for_the_default():
    from pathlib import Path

    from gait_estimator.runtime.model_file import load_model

    models = Path(__file__).resolve().parents[2] / "models"
    default = load_model(models / "default.pt", threads=1)
    cand = load_model(models / "real_candidate.pt", threads=1)
    a, b = default.metadata, cand.metadata
    for key in ("input_channels", "window", "stride", "sample_rate_hz", "output_joints", "output_unit"):
        assert getattr(a, key) == getattr(b, key), key
    np.testing.assert_array_equal(a.input_mean, b.input_mean)
    np.testing.assert_array_equal(a.input_std, b.input_std)
    x = np.random.default_rng(0).normal(size=(4, a.window, len(a.input_channels))).astype(np.float32)
    ya, yb = default.predict_batch(x), cand.predict_batch(x)
    assert yb.shape == ya.shape == (4, 6) and np.isfinite(yb).all()
    assert not np.allclose(ya, yb, atol=1e-3)  # the fine-tune changed the weights
