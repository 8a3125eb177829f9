"""Segment kinematics, ground reactions and inverse dynamics of the planar gait model.

Step 5 of the pipeline in ``sim/model.py``: :func:`build_body` turns the joint and pelvis
trajectories of :func:`~gait_estimator.sim.model.simulate_kinematics` into per-segment positions,
velocities and accelerations; the total ground reaction force is sum m_i (a_i - g), split between
the feet and given a COP (see ``sim/model.py``'s docstring for the rules); bottom-up
Newton-Euler gives ankle, knee and hip moments (:func:`inverse_dynamics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gait_estimator.sim import normative as nv
from gait_estimator.sim.model import COP_MAX_SHIFT, G_VEC, LOAD_BAND, SIDES, Kinematics, cross2, perp, rot


# --------------------------------------------------------------------------------------
# Segment kinematics, ground reactions and inverse dynamics
# --------------------------------------------------------------------------------------
@dataclass
class Body:
    """Per-segment planar kinematics: origin/COM positions, velocities, accelerations."""

    seg: dict
    origin: dict  # name -> (p, v, a) of the segment origin (joint)
    theta: dict
    omega: dict
    alpha: dict
    com: dict  # name -> (p, v, a) of the COM
    com_local: dict  # name -> local COM (2,)


def _point(origin, th, om, al, local):
    """p, v, a of a point fixed at ``local`` [2] or [N, 2] in a segment frame."""
    p0, v0, a0 = origin
    r = rot(th, np.broadcast_to(local, p0.shape))
    p = p0 + r
    v = v0 + om[:, None] * perp(r)
    a = a0 + al[:, None] * perp(r) - (om**2)[:, None] * r
    return p, v, a


def build_body(kin: Kinematics, seg: dict) -> Body:
    hip = (kin.hip, kin.hip_v, kin.hip_a)
    origin, com, com_local = {}, {}, {}
    th, om, al = {}, {}, {}
    for name, key in (("pelvis", "pelvis"), ("hat", "hat")):
        th[name], om[name], al[name] = kin.angles[key], kin.omega[key], kin.alpha[key]
        origin[name] = hip
        com_local[name] = np.array([0.0, seg[name]["com_height"]])
    if "arm" in seg:
        shoulder = _point(hip, th["hat"], om["hat"], al["hat"],
                          np.array([0.0, seg["arm"]["shoulder_height"]]))
        for side in SIDES:
            k = f"arm_{side}"
            th[k], om[k], al[k] = kin.angles[k], kin.omega[k], kin.alpha[k]
            origin[k] = shoulder
            com_local[k] = np.array([0.0, -seg["arm"]["com"] * seg["arm"]["length"]])
    foot = seg["foot"]
    for side in SIDES:
        for part in ("thigh", "shank", "foot"):
            k = f"{part}_{side}"
            th[k], om[k], al[k] = kin.angles[k], kin.omega[k], kin.alpha[k]
        origin[f"thigh_{side}"] = hip
        lt, ls = seg["thigh"]["length"], seg["shank"]["length"]
        origin[f"shank_{side}"] = _point(hip, th[f"thigh_{side}"], om[f"thigh_{side}"],
                                         al[f"thigh_{side}"], np.array([0.0, -lt]))
        origin[f"foot_{side}"] = _point(origin[f"shank_{side}"], th[f"shank_{side}"],
                                        om[f"shank_{side}"], al[f"shank_{side}"], np.array([0.0, -ls]))
        com_local[f"thigh_{side}"] = np.array([0.0, -seg["thigh"]["com"] * lt])
        com_local[f"shank_{side}"] = np.array([0.0, -seg["shank"]["com"] * ls])
        com_local[f"foot_{side}"] = np.array([
            -foot["heel_back"] + foot["com"] * foot["length"], -0.5 * foot["ankle_height"]])
    for k in th:
        com[k] = _point(origin[k], th[k], om[k], al[k], com_local[k])
    return Body(seg=seg, origin=origin, theta=th, omega=om, alpha=al, com=com, com_local=com_local)


def _mass(seg, name):
    return seg[name.split("_")[0]]["mass"]


def _inertia(seg, name):
    return seg[name.split("_")[0]]["inertia"]


def template_cop(body: Body, kin: Kinematics) -> dict:
    """COP per foot (z = 0): the real P01 path ahead of the ankle over stance (from its ankle
    moment and GRF, :func:`normative.fit_cop_template`), scaled by body height, clipped to the
    foot's heel..toe footprint. Its late-stance position (0.14 m ahead of the ankle at 1.73 m)
    puts the GRF line in front of the knee, where Winter's knee flexor moment comes from."""
    tpl = nv.load_cop_template()
    cop = {}
    for side, phase in (("r", kin.phase_r), ("l", kin.phase_l)):
        prog = np.clip(np.mod(phase, 1.0) / kin.toe_off, 0.0, 1.0)
        x = body.origin[f"foot_{side}"][0][:, 0] + kin.height * np.interp(prog, tpl.progress, tpl.ahead)
        heel, toe = foot_extent(body, side)
        x = np.clip(x, np.minimum(heel, toe), np.maximum(heel, toe))
        cop[side] = np.stack([x, np.zeros_like(x)], axis=-1)
    return cop


def split_grf(body: Body, total: np.ndarray, lam: np.ndarray, cop: dict) -> dict:
    """Per-foot GRF: vertical by load share; horizontal so that each foot's force points roughly
    at the whole-body CoM (leading foot brakes, trailing foot pushes), summing to the total."""
    seg = body.seg
    mass = sum(_mass(seg, k) for k in body.com)
    com = sum(_mass(seg, k) * body.com[k][0] for k in body.com) / mass
    fz = {"r": lam * total[:, 1], "l": (1.0 - lam) * total[:, 1]}
    fx0 = {s: fz[s] * (com[:, 0] - cop[s][:, 0]) / np.maximum(com[:, 1], 0.3) for s in SIDES}
    rest = total[:, 0] - fx0["r"] - fx0["l"]
    fx = {"r": fx0["r"] + lam * rest, "l": fx0["l"] + (1.0 - lam) * rest}
    return {s: np.stack([fx[s], fz[s]], axis=-1) for s in SIDES}


def ground_reactions(body: Body, kin: Kinematics) -> tuple[np.ndarray, dict, dict]:
    """Total GRF [N, 2] = sum m (a - g), split per foot by the default load share; template COP."""
    seg = body.seg
    total = sum(_mass(seg, k) * (body.com[k][2] - G_VEC) for k in body.com)
    cop = template_cop(body, kin)
    return total, split_grf(body, total, kin.load_r, cop), cop


def newton_euler(body: Body, grf: dict, cop: dict) -> dict:
    """Bottom-up inverse dynamics per leg; returns joint moments (N m) and hip forces."""
    seg = body.seg
    out = {}
    for side in SIDES:
        f_dist = grf[side]  # force acting on the current segment at its distal end
        p_dist = cop[side]
        m_dist = np.zeros(f_dist.shape[0])
        for part, joint in (("foot", "ankle"), ("shank", "knee"), ("thigh", "hip")):
            k = f"{part}_{side}"
            m, inertia = _mass(seg, k), _inertia(seg, k)
            pc, _, ac = body.com[k]
            p_prox = body.origin[k][0]
            f_prox = m * (ac - G_VEC) - f_dist
            m_prox = (inertia * body.alpha[k] - m_dist - cross2(p_dist - pc, f_dist)
                      - cross2(p_prox - pc, f_prox))
            out[f"{joint}_{side}"] = m_prox
            out[f"force_{joint}_{side}"] = f_prox
            # next segment up: reaction at its distal end
            f_dist, p_dist, m_dist = -f_prox, p_prox, -m_prox
    return out


def pelvis_residual(body: Body, nm: dict) -> tuple[np.ndarray, np.ndarray]:
    """Top-down vs bottom-up mismatch on pelvis + HAT: force [N, 2] (N), moment [N] (N m)."""
    seg = body.seg
    hip_p = body.origin["pelvis"][0]
    res_f = nm["force_hip_r"] + nm["force_hip_l"]
    res_m = nm["hip_r"] + nm["hip_l"]
    for k in ("pelvis", "hat", "arm_r", "arm_l"):
        if k not in body.com:
            continue
        m = _mass(seg, k)
        pc, _, ac = body.com[k]
        res_f = res_f + m * (ac - G_VEC)
        res_m = res_m + _inertia(seg, k) * body.alpha[k] + cross2(pc - hip_p, m * (ac - G_VEC))
    return res_f, res_m


def foot_extent(body: Body, side: str) -> tuple[np.ndarray, np.ndarray]:
    """World x of the heel and of the toe tip of one foot (its sole's ground footprint)."""
    foot = body.seg["foot"]
    ft = body.theta[f"foot_{side}"]
    ank = body.origin[f"foot_{side}"][0]
    heel = ank + rot(ft, np.broadcast_to(np.array([-foot["heel_back"], -foot["ankle_height"]]), ank.shape))
    toe = ank + rot(ft, np.broadcast_to(np.array([foot["ball_front"] + 0.2 * foot["length"],
                                                  -foot["ankle_height"]]), ank.shape))
    return heel[:, 0], toe[:, 0]


def required_ground_moment(body: Body) -> np.ndarray:
    """Moment about the world origin that the ground must apply, sum x_cop * Fz (N m) [N].

    Whole-body angular momentum balance about the origin: sum (I a + r x m a) = M_ground +
    sum r x m g, and a ground force at (x, 0) has the moment x * Fz.
    """
    seg = body.seg
    out = 0.0
    for k, (pc, _, ac) in body.com.items():
        m = _mass(seg, k)
        out = out + _inertia(seg, k) * body.alpha[k] + cross2(pc, m * (ac - G_VEC))
    return out


def inverse_dynamics(body: Body, kin: Kinematics, balance_cop: bool = True,
                     max_shift: float | None = COP_MAX_SHIFT) -> dict:
    """GRF, COP, joint moments (N m, OpenSim signs) and pelvis residuals.

    With ``balance_cop`` the template COPs of both feet are shifted by a common dx so that the
    whole-body angular momentum balance holds (then the top-down and bottom-up pelvis moments
    agree), clipped to each foot's heel..toe footprint (and to ``max_shift`` if given); the
    pelvis residual is non-zero only where a clip was active.
    """
    total, grf, cop = ground_reactions(body, kin)
    lam = kin.load_r
    if balance_cop:
        m_req = required_ground_moment(body)
        fz = total[:, 1]
        if kin.ds_envelope is not None and LOAD_BAND > 0:
            # Double support: the load share that balances the moment with the template COPs,
            # kept within a band around the normative share that closes at both ends.
            x_req = m_req / np.maximum(fz, 1e-6 * np.abs(fz).max())
            gap = cop["r"][:, 0] - cop["l"][:, 0]
            safe = np.where(np.abs(gap) > 1e-3, gap, 1e-3)
            lam_bal = (x_req - cop["l"][:, 0]) / safe
            band = LOAD_BAND * kin.ds_envelope
            lam = np.clip(np.clip(lam_bal, lam - band, lam + band), 0.0, 1.0)
            lam = np.where(kin.ds_envelope > 0, lam, kin.load_r)
            grf = split_grf(body, total, lam, cop)
        m_now = sum(cop[s][:, 0] * grf[s][:, 1] for s in SIDES)
        dx = (m_req - m_now) / np.maximum(fz, 1e-6 * np.abs(fz).max())
        if max_shift is not None:
            dx = np.clip(dx, -max_shift, max_shift)
        for s in SIDES:
            heel, toe = foot_extent(body, s)
            x = np.clip(cop[s][:, 0] + dx, np.minimum(heel, toe), np.maximum(heel, toe))
            cop[s] = np.stack([x, cop[s][:, 1]], axis=-1)
    nm = newton_euler(body, grf, cop)
    res_f, res_m = pelvis_residual(body, nm)
    return {"grf_total": total, "grf": grf, "cop": cop, "moments": nm, "load_r": lam,
            "residual_force": res_f, "residual_moment": res_m}
