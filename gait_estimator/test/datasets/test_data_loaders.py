"""Loaders for generic CSV + mapping YAML and OpenSim .sto + IMU CSV, on small files written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from gait_estimator.data.dataset import Recording, channels_for, parse_imus, select_channels
from gait_estimator.data.loaders import (
    load_csv,
    load_mapped_dataset,
    load_mapping,
    load_opensim,
    read_csv_columns,
    read_sto,
)
from gait_estimator.errors import ConfigError, DatasetError

MASS = 80.0


def _write_csv(path: Path, header: list[str], rows: np.ndarray) -> Path:
    lines = [",".join(header)] + [",".join(f"{v:.9g}" for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _mapping(tmp_path: Path, **over) -> Path:
    raw = {
        "time_column": "t_ms",
        "time_unit": "ms",
        "subject": {"id": "S07", "mass_kg": MASS},
        "moment_unit": "N.m",
        "imu": {
            "pelvis/acc_x": {"column": "PelvisAccX", "scale": 9.80665},  # g -> m/s^2
            "pelvis/gyro_z": "PelvisGyrZ",
            "thigh_r/gyro_z": "ThighGyrZ",
        },
        "moments": {"hip_flexion_r": {"column": "HipMom", "scale": -1.0}},
    }
    raw.update(over)
    p = tmp_path / "mapping.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def _lab_csv(tmp_path: Path, rate: float = 60.0, seconds: float = 2.0, name: str = "walk.csv") -> Path:
    t = np.arange(0, seconds, 1 / rate)
    rows = np.stack([1000 * t, 0.5 * t, np.sin(t), 2 * t, 40 * t], axis=1)
    return _write_csv(tmp_path / name, ["t_ms", "PelvisAccX", "PelvisGyrZ", "ThighGyrZ", "HipMom"], rows)


def test_csv_resampled_scaled_and_mass_normalised(tmp_path: Path) -> None:
    rec = load_csv(_lab_csv(tmp_path), _mapping(tmp_path), target_rate_hz=100.0)
    assert rec.sample_rate_hz == 100.0
    assert rec.channels == ("pelvis/acc_x", "pelvis/gyro_z", "thigh_r/gyro_z")
    assert rec.joints == ("hip_flexion_r",)
    assert rec.subject_id == "S07" and rec.mass_kg == MASS
    t = np.arange(len(rec)) / 100.0
    assert t[-1] <= 2.0 - 1 / 60 + 1e-9  # never extrapolates past the last sample
    # 60 -> 100 Hz linear interpolation of linear signals is exact.
    np.testing.assert_allclose(rec.inputs[:, 0], 0.5 * t * 9.80665, atol=1e-4)
    np.testing.assert_allclose(rec.inputs[:, 2], 2 * t, atol=1e-5)
    np.testing.assert_allclose(rec.moments[:, 0], -40 * t / MASS, atol=1e-5)  # sign flip, N·m -> N·m/kg


def test_csv_downsampling_low_passes(tmp_path: Path) -> None:
    rate = 200.0
    t = np.arange(0, 3, 1 / rate)
    fast = np.sin(2 * np.pi * 45 * t)  # above the new Nyquist (25 Hz at 50 Hz)
    rows = np.stack([1000 * t, fast, fast, fast, np.sin(2 * np.pi * t)], axis=1)
    path = _write_csv(
        tmp_path / "fast.csv", ["t_ms", "PelvisAccX", "PelvisGyrZ", "ThighGyrZ", "HipMom"], rows
    )
    rec = load_csv(path, _mapping(tmp_path), target_rate_hz=50.0)
    assert np.abs(rec.inputs[20:-20, 1]).max() < 0.1  # removed, not aliased
    np.testing.assert_allclose(
        rec.moments[20:-20, 0], -np.sin(2 * np.pi * np.arange(len(rec))[20:-20] / 50) / MASS, atol=2e-3
    )


def test_csv_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "bad.csv", ["t_ms", "PelvisAccX", "PelvisGyrZ", "HipMom"], np.ones((5, 4)).cumsum(0)
    )
    with pytest.raises(DatasetError, match=r"bad\.csv.*ThighGyrZ"):
        load_csv(path, _mapping(tmp_path))


def test_csv_non_numeric_cell(tmp_path: Path) -> None:
    p = tmp_path / "text.csv"
    p.write_text("t_ms,PelvisAccX,PelvisGyrZ,ThighGyrZ,HipMom\n0,1,2,3,4\n10,1,oops,3,4\n")
    with pytest.raises(DatasetError, match=r"text\.csv: column 'PelvisGyrZ' row 3"):
        read_csv_columns(p)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"subject": {"id": "S1"}}, "mass_kg"),
        ({"imu": {"pelvis_acc_x": "A"}}, "'<location>/<signal>'"),
        ({"imu": {}}, "non-empty"),
        ({"moment_unit": "Nm"}, "moment_unit"),
        ({"time_unit": "min"}, "time_unit"),
        ({"colour": "red"}, "unknown key"),
        ({"moments": {"hip_flexion_r": {"column": "HipMom", "scale": "big"}}}, "scale"),
    ],
)
def test_mapping_errors_name_the_file_and_key(tmp_path: Path, override: dict, message: str) -> None:
    with pytest.raises(DatasetError, match=message) as info:
        load_mapping(_mapping(tmp_path, **override))
    assert "mapping.yaml" in str(info.value)


def test_mapping_invalid_yaml(tmp_path: Path) -> None:
    p = tmp_path / "broken.yaml"
    p.write_text("imu: [unclosed\n")
    with pytest.raises(DatasetError, match=r"broken\.yaml: mapping is not valid YAML"):
        load_mapping(p)


STO = """inverse_dynamics
version=1
nRows={n}
nColumns=4
inDegrees=no
endheader
time\thip_flexion_r_moment\tknee_angle_r_moment\tankle_angle_r_moment
{rows}
"""


def _sto(tmp_path: Path, rate: float = 100.0, seconds: float = 2.0, t0: float = 0.5) -> Path:
    t = t0 + np.arange(0, seconds, 1 / rate)
    rows = "\n".join(f"{a:.6f}\t{10 * a:.6f}\t{-5 * a:.6f}\t{np.cos(a):.6f}" for a in t)
    p = tmp_path / "walk_id.sto"
    p.write_text(STO.format(n=len(t), rows=rows))
    return p


def test_read_sto(tmp_path: Path) -> None:
    header, cols = read_sto(_sto(tmp_path))
    assert header["inDegrees"] == "no" and header["nColumns"] == "4"
    assert set(cols) == {"time", "hip_flexion_r_moment", "knee_angle_r_moment", "ankle_angle_r_moment"}
    assert cols["time"][0] == pytest.approx(0.5)


def test_read_sto_without_endheader(tmp_path: Path) -> None:
    p = tmp_path / "x.mot"
    p.write_text("time\thip_flexion_r_moment\n0\t1\n")
    with pytest.raises(DatasetError, match=r"x\.mot.*endheader"):
        read_sto(p)


def test_opensim_moments_paired_with_40hz_imu(tmp_path: Path) -> None:
    sto = _sto(tmp_path, rate=100.0, seconds=2.0, t0=0.5)
    t = np.arange(0.3, 2.8, 1 / 40)  # the IMU starts earlier and ends later: overlap only
    imu = _write_csv(
        tmp_path / "walk_imu.csv",
        ["time", "PelvisAccX", "PelvisGyrZ", "ThighGyrZ"],
        np.stack([t, t, 2 * t, 3 * t], axis=1),
    )
    mapping = _mapping(tmp_path, time_column="time", time_unit="s", moments={})
    rec = load_opensim(sto, imu, mapping, target_rate_hz=100.0)
    assert rec.joints == ("hip_flexion_r", "knee_angle_r", "ankle_angle_r")  # found by name
    tt = 0.5 + np.arange(len(rec)) / 100.0
    np.testing.assert_allclose(rec.inputs[:, 1], 2 * tt, atol=1e-4)
    np.testing.assert_allclose(rec.moments[:, 0], 10 * tt / MASS, atol=1e-4)
    np.testing.assert_allclose(rec.moments[:, 2], np.cos(tt) / MASS, atol=1e-4)
    assert tt[-1] <= 0.5 + 1.99 + 1e-6


def test_opensim_without_moment_columns(tmp_path: Path) -> None:
    p = tmp_path / "angles.sto"
    p.write_text("endheader\ntime\thip_flexion_r\n0\t1\n0.01\t2\n")
    imu = _write_csv(
        tmp_path / "imu.csv", ["time", "PelvisAccX", "PelvisGyrZ", "ThighGyrZ"], np.ones((3, 4)).cumsum(0)
    )
    with pytest.raises(DatasetError, match=r"angles\.sto: no moment columns"):
        load_opensim(p, imu, _mapping(tmp_path, time_column="time", time_unit="s", moments={}))


def test_mapped_dataset_lists_csv_and_opensim_trials(tmp_path: Path) -> None:
    _lab_csv(tmp_path, name="a.csv")
    _sto(tmp_path)
    t = np.arange(0.5, 2.5, 1 / 60)
    _write_csv(
        tmp_path / "b_imu.csv",
        ["t_ms", "PelvisAccX", "PelvisGyrZ", "ThighGyrZ"],
        np.stack([1000 * t, t, t, t], axis=1),
    )
    mapping = _mapping(
        tmp_path,
        target_rate_hz=100,
        trials=[{"csv": "a.csv"}, {"imu_csv": "b_imu.csv", "sto": "walk_id.sto"}],
    )
    raw = yaml.safe_load(mapping.read_text())
    raw["moments"] = {"hip_flexion_r": "HipMom"}
    mapping.write_text(yaml.safe_dump(raw))
    with pytest.raises(DatasetError, match=r"walk_id\.sto.*HipMom"):  # the .sto has no 'HipMom' column
        load_mapped_dataset(mapping)
    raw["trials"] = [{"csv": "a.csv"}]
    mapping.write_text(yaml.safe_dump(raw))
    recs = load_mapped_dataset(mapping)
    assert len(recs) == 1 and recs[0].sample_rate_hz == 100.0


def _rec(channels: tuple[str, ...], n: int = 50) -> Recording:
    return Recording(
        "r",
        "S1",
        70.0,
        100.0,
        channels,
        np.arange(n * len(channels)).reshape(n, -1),
        ("hip_flexion_r", "knee_angle_r"),
        np.zeros((n, 2)),
        phase=np.mod(np.arange(n) / 20, 1),
    )


def test_imu_subset_selection_and_errors() -> None:
    rec = _rec(channels_for(("pelvis", "thigh_r", "shank_r"), ("acc", "gyro")))
    (sub,) = select_channels([rec], parse_imus("pelvis,shank_r"), ("gyro",), ("knee_angle_r",))
    assert sub.channels == (
        "pelvis/gyro_x",
        "pelvis/gyro_y",
        "pelvis/gyro_z",
        "shank_r/gyro_x",
        "shank_r/gyro_y",
        "shank_r/gyro_z",
    )
    np.testing.assert_array_equal(sub.inputs[:, 0], rec.inputs[:, 3])
    assert sub.joints == ("knee_angle_r",)
    with pytest.raises(ConfigError, match="imus"):
        parse_imus("pelvis,elbow")
    with pytest.raises(DatasetError, match="foot_r/gyro_x"):
        select_channels([rec], ("foot_r",), ("gyro",))


def test_recording_resample_and_fraction() -> None:
    rec = _rec(channels_for(("pelvis",), ("acc",)), n=60)
    up = rec.resample(250.0)
    assert up.sample_rate_hz == 250.0 and len(up) == 148  # 0 .. 0.59 s
    assert up.phase is not None and np.all((up.phase >= 0) & (up.phase < 1))
    assert len(rec.fraction(0.8, 1.0)) == 12 and rec.fraction(0, 0.8).inputs[-1, 0] == rec.inputs[47, 0]
