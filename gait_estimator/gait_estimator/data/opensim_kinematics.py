"""OpenSim model side of the importer: files, filtered kinematics, virtual IMU sites and signals.

Kinematics are the IK coordinates low-passed and splined exactly as ``InverseDynamicsTool``
does (IIR filter + GCV quintic spline), so IMUs and moments see the same motion. Sensor frame:
the segment frame the simulator and models use (x forward, y left, z up = OpenSim body x, -z, y),
rotated by the site's mounting rotation (:class:`ImuSite`).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gait_estimator.errors import DatasetError

__all__ = [
    "DEFAULT_BODIES",
    "OSIM_TO_SENSOR",
    "ImuSite",
    "Kinematics",
    "body_mass",
    "default_sites",
    "load_sites",
    "read_table",
    "virtual_imus",
]

LEGS = ("r", "l")

DEFAULT_BODIES = {
    "pelvis": "pelvis",
    "thigh_r": "femur_r",
    "thigh_l": "femur_l",
    "shank_r": "tibia_r",
    "shank_l": "tibia_l",
    "foot_r": "calcn_r",
    "foot_l": "calcn_l",
}
# OpenSim body frame (x fwd, y up, z right) -> segment-aligned sensor frame (x fwd, y left, z up)
OSIM_TO_SENSOR = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

@dataclass
class ImuSite:
    """A virtual sensor: body, position in the body frame (m; None = standard rule for the
    location), mounting rotation vector (deg) of the sensor relative to the segment-aligned
    frame, as ``sim.imu.ImuConfig.misalignment_deg``."""

    location: str
    body: str
    position: tuple[float, float, float] | None = None
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def mount(self) -> np.ndarray:
        from scipy.spatial.transform import Rotation

        return Rotation.from_rotvec(np.radians(self.rotation_deg)).as_matrix()



def default_sites() -> list[ImuSite]:
    return [ImuSite(loc, body) for loc, body in DEFAULT_BODIES.items()]


def load_sites(path: str | Path) -> list[ImuSite]:
    """Sites from YAML, e.g. ``sites: {thigh_r: {body: femur_r, position: [0, -0.2, 0.07],
    rotation_deg: [0, 0, 10]}}``; position omitted = the standard rule for that location."""
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetError(f"{p}: cannot read IMU site YAML: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("sites"), dict) or not raw["sites"]:
        raise DatasetError(
            f"{p}: needs a non-empty mapping 'sites: {{location: {{body, position, rotation_deg}}}}'"
        )
    out = []
    for loc, spec in raw["sites"].items():
        spec = spec or {}
        if not isinstance(spec, dict) or set(spec) - {"body", "position", "rotation_deg"}:
            raise DatasetError(f"{p}: sites.{loc} must be a mapping with body, position, rotation_deg")
        body = spec.get("body", DEFAULT_BODIES.get(str(loc)))
        if body is None:
            raise DatasetError(f"{p}: sites.{loc}: give 'body' (no default body for this location)")
        vals = {}
        for key in ("position", "rotation_deg"):
            v = spec.get(key)
            if v is not None and (
                not isinstance(v, list) or len(v) != 3 or not all(isinstance(x, int | float) for x in v)
            ):
                raise DatasetError(f"{p}: sites.{loc}.{key} = {v!r} must be a list of 3 numbers")
            vals[key] = None if v is None else tuple(float(x) for x in v)
        if vals["position"] is None and str(loc) not in DEFAULT_BODIES:
            raise DatasetError(f"{p}: sites.{loc}: give 'position' (no standard rule for this location)")
        out.append(ImuSite(str(loc), str(body), vals["position"], vals["rotation_deg"] or (0.0, 0.0, 0.0)))
    return out



# -- files ------------------------------------------------------------------------------------
def plain_file(path: Path, tmp: Path) -> Path:
    """OpenSim cannot read ``.gz``: decompress into ``tmp``. Returned paths are absolute: OpenSim's
    tools resolve relative paths against their setup file's folder (a temporary one), not the cwd."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if path.suffix != ".gz":
        return path.resolve()
    out = tmp / path.name[:-3]
    try:
        with gzip.open(path, "rb") as fi, open(out, "wb") as fo:
            shutil.copyfileobj(fi, fo)
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot decompress: {exc}") from exc
    return out


def read_storage(path: Path, source: Path) -> dict[str, np.ndarray]:
    """Columns of a ``.sto``/``.mot`` (any header flavour; tolerates trailing tabs, as lab exports have)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise DatasetError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    end = next((i for i, line in enumerate(lines) if line.strip().lower() == "endheader"), None)
    if end is None:
        raise DatasetError(f"{source}: not an OpenSim storage file (no 'endheader' line)")
    rest = [line for line in lines[end + 1 :] if line.strip()]
    if len(rest) < 2:
        raise DatasetError(f"{source}: no column names or no data after 'endheader'")
    names = [n.strip() for n in (rest[0].split("\t") if "\t" in rest[0] else rest[0].split()) if n.strip()]
    try:
        rows = [[float(v) for v in r.split()] for r in rest[1:]]
    except ValueError as exc:
        raise DatasetError(f"{source}: non-numeric value in data rows: {exc}") from exc
    bad = next((i for i, r in enumerate(rows) if len(r) != len(names)), None)
    if bad is not None:
        raise DatasetError(
            f"{source}: data row {bad + 1} has {len(rows[bad])} values, the header names {len(names)} columns"
        )
    data = np.array(rows, dtype=float)
    return {n: data[:, j] for j, n in enumerate(names)}


def read_table(path: Path, source: Path) -> dict[str, np.ndarray]:
    cols = read_storage(path, source)
    if "time" not in cols:
        raise DatasetError(f"{source}: no 'time' column; columns: {sorted(cols)[:12]}")
    t = cols["time"]
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise DatasetError(f"{source}: 'time' must be finite and strictly increasing")
    return cols


def vec(v: Any) -> np.ndarray:
    return np.array([v.get(0), v.get(1), v.get(2)])



# -- model and kinematics ----------------------------------------------------------------------
_CLOBBERED = ("PATH", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH")


def osim_module():
    # opensim's __init__ sets LD_LIBRARY_PATH (and PATH) of this process to its own folder,
    # dropping the ROS 2 libraries: every process started afterwards (a node, a test's child)
    # could no longer import rclpy. Its libraries are loaded by then, so restore the environment.
    saved = {k: os.environ.get(k) for k in _CLOBBERED}
    try:
        import opensim
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    opensim.Logger.setLevelString("error")
    opensim.Logger.removeFileSink()  # no opensim.log in the working directory
    return opensim


def id_model(osim: Any, model_path: Path, tmp: Path) -> Path:
    """Model copy without forces (muscles, actuators, contacts), every coordinate free."""
    try:
        m = osim.Model(str(model_path))
    except RuntimeError as exc:
        raise DatasetError(f"{model_path}: OpenSim cannot load the model: {str(exc).strip()[:300]}") from exc
    m.updForceSet().clearAndDestroy()
    cs = m.updCoordinateSet()
    for i in range(cs.getSize()):
        cs.get(i).set_locked(False)
        cs.get(i).set_clamped(False)
    out = tmp / "id_model.osim"
    m.printToXML(str(out))
    return out


class Kinematics:
    """IK coordinates filtered and splined exactly as InverseDynamicsTool does."""

    def __init__(self, osim: Any, model: Any, ik_path: Path, cutoff_hz: float) -> None:
        self.osim, self.model = osim, model
        self.state = model.initSystem()
        sto = osim.Storage(str(ik_path))
        if sto.isInDegrees():
            model.getSimbodyEngine().convertDegreesToRadians(sto)
        sto.pad(int(sto.getSize() / 2))
        sto.lowpassIIR(cutoff_hz)
        self.splines = osim.GCVSplineSet(5, sto)
        names = [self.splines.get(i).getName() for i in range(self.splines.getSize())]
        cs = model.getCoordinateSet()
        self.coords = [
            (cs.get(i), names.index(cs.get(i).getName()))
            for i in range(cs.getSize())
            if cs.get(i).getName() in names
        ]
        self.missing = [cs.get(i).getName() for i in range(cs.getSize()) if cs.get(i).getName() not in names]

    def set(self, t: float, velocity: bool = True) -> Any:
        s = self.state
        for c, k in self.coords:
            c.setValue(s, self.splines.evaluate(k, 0, t), False)
        self.model.realizePosition(s)
        if velocity:
            for c, k in self.coords:
                c.setSpeedValue(s, self.splines.evaluate(k, 1, t))
            self.model.realizeVelocity(s)
        return s


def body_mass(model: Any) -> float:
    bs = model.getBodySet()
    return float(sum(bs.get(i).getMass() for i in range(bs.getSize())))


def bodies_of(model: Any) -> set[str]:
    bs = model.getBodySet()
    return {bs.get(i).getName() for i in range(bs.getSize())}


def _station(osim: Any, model: Any, s: Any, body_from: str, body_to: str) -> np.ndarray:
    b1, b2 = model.getBodySet().get(body_from), model.getBodySet().get(body_to)
    return vec(b1.findStationLocationInAnotherFrame(s, osim.Vec3(0, 0, 0), b2))


def _standard_position(osim: Any, model: Any, s: Any, loc: str) -> tuple[np.ndarray, str]:
    """Standard skin sites (Dorschky 2019 set-up), in the body frame (m)."""
    if loc == "pelvis":
        ms = model.getMarkerSet()
        names = [ms.get(i).getName() for i in range(ms.getSize())]
        psis = [n for n in names if n.lower().replace("_", ".") in ("r.psis", "l.psis", "rpsi", "lpsi")]
        if len(psis) == 2:
            pel = model.getBodySet().get("pelvis")
            p = np.mean([vec(ms.get(n).findLocationInFrame(s, pel)) for n in psis], axis=0)
            p[0] -= 0.01  # on the skin, 1 cm behind the marker line
            return p, f"midpoint of markers {psis[0]} and {psis[1]}, 1 cm posterior"
        hip = _station(osim, model, s, "femur_r", "pelvis")
        return np.array([hip[0] - 0.10, hip[1] + 0.08, 0.0]), "10 cm behind, 8 cm above the hip centres"
    part, side = loc.split("_")
    sgn = 1.0 if side == "r" else -1.0
    if part == "thigh":
        knee = _station(osim, model, s, "tibia_" + side, "femur_" + side)
        return np.array([0.5 * knee[0], 0.5 * knee[1], sgn * 0.07]), "half way hip->knee centre, 7 cm lateral"
    if part == "shank":
        ank = _station(osim, model, s, "talus_" + side, "tibia_" + side)
        return np.array(
            [0.5 * ank[0] + 0.035, 0.5 * ank[1], 0.5 * ank[2]]
        ), "half way knee->ankle, 3.5 cm anterior"
    mtp = _station(osim, model, s, "toes_" + side, "calcn_" + side)
    return np.array([0.55 * mtp[0], 0.05, 0.55 * mtp[2]]), "55 % heel->MTP, 5 cm above calcn origin"


def resolve_sites(osim: Any, model: Any, s: Any, sites: Sequence[ImuSite], source: Path) -> list[dict]:
    bodies = bodies_of(model)
    out = []
    for site in sites:
        if site.body not in bodies:
            raise DatasetError(
                f"{source}: IMU site '{site.location}' is on unknown body '{site.body}'; "
                f"the model has {sorted(bodies)}"
            )
        if site.position is None:
            pos, rule = _standard_position(osim, model, s, site.location)
        else:
            pos, rule = np.asarray(site.position, float), "given"
        out.append(
            {
                "site": site,
                "body": model.getBodySet().get(site.body),
                "pos": pos,
                "rule": rule,
                "to_sensor": site.mount().T @ OSIM_TO_SENSOR,
            }
        )
    return out


def virtual_imus(kin: Kinematics, times: np.ndarray, sites: list[dict], h: float = 1e-3) -> dict:
    """``{location: {acc, gyro, quat}}`` in each sensor frame on ``times``."""
    osim, m = kin.osim, kin.model
    g = vec(m.getGravity())
    n = len(times)
    out = {
        d["site"].location: {"acc": np.zeros((n, 3)), "gyro": np.zeros((n, 3)), "quat": np.zeros((n, 4))}
        for d in sites
    }
    from scipy.spatial.transform import Rotation

    for i, t in enumerate(times):
        v = []
        for tt in (t - h, t + h):
            s = kin.set(tt)
            v.append([vec(d["body"].findStationVelocityInGround(s, osim.Vec3(*d["pos"]))) for d in sites])
        s = kin.set(t)
        for k, d in enumerate(sites):
            b = d["body"]
            r_gb = np.column_stack([vec(b.expressVectorInGround(s, osim.Vec3(*e))) for e in np.eye(3)])
            a = (v[1][k] - v[0][k]) / (2 * h)
            w = vec(b.getAngularVelocityInGround(s))
            o = out[d["site"].location]
            o["acc"][i] = d["to_sensor"] @ (r_gb.T @ (a - g))
            o["gyro"][i] = d["to_sensor"] @ (r_gb.T @ w)
            # sensor -> world (REP 103): world = M ground, ground = R_gb body, body = to_sensor^T sensor
            r_ws = OSIM_TO_SENSOR @ r_gb @ d["to_sensor"].T
            o["quat"][i] = Rotation.from_matrix(r_ws).as_quat()
    for o in out.values():
        o["quat"] = np.where(o["quat"][:, 3:4] < 0, -o["quat"], o["quat"])
    return out


def foot_points(kin: Kinematics, times: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Heel (calcn origin) and MTP (toes origin) positions and speeds in ground."""
    bs = kin.model.getBodySet()
    out = {sd: {"heel": [], "toe": [], "v_heel": [], "v_toe": []} for sd in LEGS}
    for t in times:
        s = kin.set(t)
        for sd in LEGS:
            for key, body in (("heel", "calcn_" + sd), ("toe", "toes_" + sd)):
                b = bs.get(body)
                out[sd][key].append(vec(b.getPositionInGround(s)))
                out[sd]["v_" + key].append(float(np.linalg.norm(vec(b.getLinearVelocityInGround(s)))))
    return {sd: {k: np.array(v) for k, v in d.items()} for sd, d in out.items()}



@contextlib.contextmanager
def quiet_stdout():
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


