"""Validity masks (``Recording.valid``, the importer's ``extra/moment_valid``): masked samples are
left out of the training loss and of every metric; the committed mocap walkers carry them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gait_estimator.data.dataset import Recording
from gait_estimator.train.evaluate import evaluate_runtime, masked_joint_metrics
from gait_estimator.train.real_mix import MOCAP_DIR, load_mocap_walkers, person_folds
from gait_estimator.train.trainer import TrainConfig, WindowSet, train_model

CH = ("pelvis/acc_x", "pelvis/gyro_y")
JOINTS = ("hip_flexion_r", "knee_angle_r")


def _rec(name: str, n: int, valid: np.ndarray | None, garbage: float = 0.0) -> Recording:
    rng = np.random.default_rng(len(name))
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = np.stack([np.convolve(x[:, 0], np.ones(5) / 5, "same"), 0.5 * x[:, 1]], axis=1)
    if valid is not None:
        y = np.where(valid, y, garbage)  # what a masked moment holds must not matter
    return Recording(name, "S1", 70.0, 100.0, CH, x, JOINTS, y, valid=valid)


def test_windows_with_only_masked_targets_are_left_out() -> None:
    valid = np.ones((100, 2), dtype=bool)
    valid[40:80] = False
    ws = WindowSet([_rec("a", 100, valid)], np.zeros(2), np.ones(2), window=8, span=4, step=1)
    # window ends e with rows e-3..e all masked: e in 43..79 are dropped
    assert set(ws.ends.tolist()) == set(range(10, 43)) | set(range(80, 100))
    _, yb, wb = ws.batch_weighted(np.array([42]))
    assert wb[0, :, 0].tolist() == [1.0, 0.0, 0.0, 0.0]  # rows 39-42: only 39 is valid


def test_masked_targets_do_not_change_training() -> None:
    valid = np.ones((300, 2), dtype=bool)
    valid[100:200, 1] = False
    cfg = TrainConfig(architecture="tcn", arch_options={"channels": 8, "dilations": (1, 2)}, window=16,
                      channels=CH, joints=JOINTS, epochs=2, batch_size=16, seq_rows=4, threads=1,
                      progress=False, seed=3)
    models = []
    for garbage in (0.0, 1e6):
        rec = _rec("train", 300, valid, garbage)
        res = train_model([rec], [_rec("val", 120, None)], cfg, None, export=False, quiet=True)
        models.append(res.model.state_dict())
        assert all(np.isfinite(h["train_loss"]) and h["train_loss"] < 100 for h in res.history)
    for k in models[0]:  # incl. the output scaling, from the valid targets' statistics
        assert torch.allclose(models[0][k], models[1][k], atol=1e-5), k


class _Echo:
    """A runtime whose estimate is the newest row of input 0 (so errors are known exactly)."""

    class metadata:  # mimics ModelMetadata's attributes
        input_channels, output_joints, window, sample_rate_hz = CH, JOINTS, 4, 100.0
        input_mean, input_std, output_unit = (0.0, 0.0), (1.0, 1.0), "N.m/kg"

    def predict_batch(self, x: np.ndarray) -> np.ndarray:
        return np.repeat(x[:, -1, :1], 2, axis=1)


def test_masked_samples_are_left_out_of_the_metrics() -> None:
    n = 60
    x = np.zeros((n, 2), dtype=np.float32)
    y = np.zeros((n, 2), dtype=np.float32)
    y[30:, 0] = 5.0  # a 5 N·m/kg error, but masked
    valid = np.ones((n, 2), dtype=bool)
    valid[30:, 0] = False
    rec = Recording("m", "S1", 70.0, 100.0, CH, x, JOINTS, y, valid=valid)
    res = evaluate_runtime(_Echo(), [rec])
    assert res.metrics["hip_flexion_r"]["rmse"] == 0.0
    unmasked = evaluate_runtime(_Echo(), [Recording("u", "S1", 70.0, 100.0, CH, x, JOINTS, y)])
    assert abs(unmasked.metrics["hip_flexion_r"]["rmse"] - 5.0 * np.sqrt(30 / 57)) < 1e-6
    ref = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, 1.0]])
    m = masked_joint_metrics(ref, ref, JOINTS)
    assert m["hip_flexion_r"]["rmse"] == 0.0 and np.isnan(m["knee_angle_r"]["rmse"])


def test_committed_mocap_walkers_two_people_never_split() -> None:
    assert (MOCAP_DIR / "manifest.json").is_file() and (Path(MOCAP_DIR) / "LICENSES").is_dir()
    recs = load_mocap_walkers()
    people = {r.subject_id for r in recs}
    assert people == {"falisse", "opencap_s4"}
    assert {r.name[:2] for r in recs if r.subject_id == "falisse"} == {"f1", "f2"}  # one person
    assert all(r.valid is not None and 0.5 < r.valid.mean() < 1.0 for r in recs)  # masks read
    for test_person, train, test in person_folds(recs):
        assert {r.subject_id for r in test} == {test_person}
        assert test_person not in {r.subject_id for r in train}
        assert len(train) + len(test) == len(recs)


def test_finetune_mix_replicates_the_real_trials_and_keeps_the_last_epoch() -> None:
    from dataclasses import replace

    from gait_estimator import conventions
    from gait_estimator.data.dataset import select_channels
    from gait_estimator.train.models import build_model
    from gait_estimator.train.real_mix import finetune_mixed
    from gait_estimator.train.trainer import make_metadata

    real = select_channels(load_mocap_walkers(), conventions.IMU_LOCATIONS, ("sagittal",), conventions.JOINTS)
    people = person_folds(real)[0]
    train_real = people[1]
    sim = [replace(r, name=f"sim{i}", subject_id="S0", valid=None) for i, r in enumerate(people[2][:2])]
    cfg = TrainConfig(architecture="tcn", arch_options={"channels": 8, "dilations": (1, 2)}, window=16,
                      channels=real[0].channels, joints=conventions.JOINTS, threads=1, progress=False)
    model = build_model("tcn", len(cfg.channels), 6, 16, channels=8, dilations=(1, 2))
    md = make_metadata(cfg, np.zeros(len(cfg.channels)), np.ones(len(cfg.channels)), True, {})
    res = finetune_mixed(model, md, sim, train_real, sim, cfg, None, {"protocol": "test"})
    assert res.metadata.training["real_copies"] >= 1
    assert res.metadata.training["real_trials"] == [r.name for r in train_real]
    assert len(res.history) == 6 and res.best_epoch == 6  # fixed length: the last epoch is kept
