"""Embedded normative data (issue 3): the package file equals a fresh fit from the reference data
(the in-repository copy in test/data/reference), and the simulator runs without the reference
data directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gait_estimator.sim import make_normative_coefficients as mk
from gait_estimator.sim import normative as nv
from gait_estimator.sim import validation as va


def _close(a, b) -> bool:
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-10, atol=1e-10)


def test_embedded_equals_fresh_fit(shared_data):
    emb = nv.embedded()
    fresh = json.loads(mk.render(nv.build_payload(shared_data)))
    # Provenance: the embedded file was fitted from exactly the current reference files.
    hint = "re-run python -m gait_estimator.sim.make_normative_coefficients"
    assert emb["provenance"] == fresh["provenance"], hint
    assert [t["name"] for t in emb["templates"]] == [t["name"] for t in fresh["templates"]]
    for a, b in zip(emb["templates"], fresh["templates"], strict=True):
        assert a["family"] == b["family"] and _close(a["speed_norm"], b["speed_norm"])
        assert _close(a["coeffs"], b["coeffs"]), a["name"]
    for a, b in zip(emb["grf"], fresh["grf"], strict=True):
        for key in ("speed_norm", "progress", "vertical", "horizontal"):
            assert _close(a[key], b[key]), key
    assert emb["bovi_speed_norm"].keys() == fresh["bovi_speed_norm"].keys()
    assert _close(list(emb["bovi_speed_norm"].values()), list(fresh["bovi_speed_norm"].values()))
    assert _close(emb["pelvis_tilt"]["coeffs"], fresh["pelvis_tilt"]["coeffs"])
    assert _close(emb["pelvis_tilt"]["speed_norm"], fresh["pelvis_tilt"]["speed_norm"])
    assert _close(emb["cop"]["progress"], fresh["cop"]["progress"])
    assert _close(emb["cop"]["ahead"], fresh["cop"]["ahead"])
    # The loaders give the same objects either way.
    for a, b in zip(nv.load_templates(), nv.load_templates(str(shared_data)), strict=True):
        assert a.name == b.name and _close(a.coeffs, b.coeffs)


def test_pelvis_tilt_template_is_realistic(shared_data):
    """About +-1.5 deg, dominated by the real sacrum gyroscope pattern (r >= 0.7 against the
    P01 gyro it is partly fitted from; P03, the other source, r >= 0.5)."""
    pel = nv.load_pelvis_tilt()
    ph = np.arange(100) / 100
    tilt = nv.fourier_eval(pel.coeffs[None], ph)[:, 0]
    assert 2.0 < np.ptp(tilt) < 6.0
    rate = nv.fourier_eval(pel.coeffs[None], ph, 1)[:, 0]
    for name, r_min in (("P01_walking", 0.7), ("P03_walking", 0.5)):
        _, data = va.load_dorschky(name, shared_data)
        assert va.pearson(rate, data["pelvis_gyro_z"][:100]) >= r_min, name


def test_cop_template_is_realistic():
    """P01's COP (from its ankle moment and GRF), for a 1.73 m walker: behind the ankle at heel
    strike (the heel), advancing through stance without going back by more than 5 mm, and at the
    metatarsal heads (0.12-0.17 m ahead of the ankle) over the last third of stance."""
    cop = nv.load_cop_template()
    ahead = 1.73 * cop.ahead
    print(np.round(ahead[::5], 3))
    assert cop.progress[0] == 0.0 and cop.progress[-1] == 1.0
    assert -0.10 < ahead[0] < -0.03
    late = ahead[(cop.progress > 0.6) & (cop.progress < 0.9)]
    assert 0.12 < late.min() and late.max() < 0.17
    assert np.all(np.diff(ahead[cop.progress <= 0.9]) > -0.005)


def test_simulates_without_reference_data(monkeypatch, tmp_path):
    """The simulator reads only the package data: hide ../shared/data and simulate."""
    from gait_estimator.sim.generate import sample_subject, simulate_trial

    monkeypatch.setattr(nv, "default_data_root", lambda: tmp_path / "missing")
    for fn in (nv.load_templates, nv.load_grf_templates, nv.load_pelvis_tilt, nv.load_cop_template,
               nv.embedded):
        fn.cache_clear()
    s = sample_subject(np.random.default_rng(1))
    tr = simulate_trial(s, 3.0, 1.2, 100.0, seed=1)
    assert np.isfinite(tr.moment_nm).all() and tr.moment_nm.shape[0] == 300
    assert Path(mk.default_output()).name == nv.DATA_FILE
