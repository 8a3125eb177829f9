"""CommandShaper: property-based safety guarantees and unit checks of each stage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gait_estimator.core.command import (
    STATUS_INVALID,
    STATUS_LIMITED,
    STATUS_OK,
    STATUS_RAMPING,
    CommandConfig,
    CommandShaper,
)
from gait_estimator.errors import ConfigError

MS = 1_000_000
JOINTS = ("hip_flexion_r", "knee_angle_r", "ankle_angle_r")


@st.composite
def configs(draw):
    watchdog = draw(st.floats(0.02, 0.5))
    limit = draw(st.floats(1.0, 80.0))
    rate = draw(st.floats(limit / watchdog, 20 * limit / watchdog))
    return CommandConfig(
        joints=JOINTS,
        subject_mass_kg=draw(st.floats(30.0, 150.0)),
        gains=tuple(draw(st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3))),
        phase_shift_s=draw(st.sampled_from([0.0, -0.05, 0.03, -0.2])),
        lowpass_hz=draw(st.sampled_from([0.0, 5.0, 20.0])),
        limit_nm=limit,
        rate_limit_nm_s=rate,
        ramp_s=draw(st.sampled_from([0.0, 0.05, 0.5])),
        watchdog_s=watchdog,
        control_rate_hz=200.0,
    )


value = st.one_of(
    st.floats(-5.0, 5.0),  # N·m/kg, realistic
    st.floats(-1e6, 1e6),  # bursts
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
event = st.one_of(
    st.tuples(
        st.just("estimate"),
        st.lists(value, min_size=3, max_size=3),
        st.booleans(),
        st.integers(-30 * MS, 60 * MS),
    ),  # stamp lag (negative: stamp ahead of the clock)
    st.tuples(
        st.just("estimate_ok"),
        st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3),
        st.just(True),
        st.integers(0, 40 * MS),
    ),
    st.sampled_from([("enable",), ("disable",), ("estop",), ("reset",), ("idle",), ("gap",)]),
    st.tuples(st.just("reconfigure"), configs()),  # a runtime parameter set, applied at once
    st.tuples(st.just("confidence"), st.floats(0.0, 1.0)),  # confidence of later estimates
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), events=st.lists(event, min_size=20, max_size=200), dt_ms=st.sampled_from([1, 5, 10]))
def test_command_is_bounded_rate_limited_watchdogged_and_estop_latched(cfg, events, dt_ms):
    check_sequence(cfg, events, dt_ms)


def check_sequence(cfg: CommandConfig, events: list, dt_ms: int) -> int:
    """Run events through a shaper, asserting every guarantee at every update; returns #nonzero."""
    nonzero = 0
    cfg = CommandConfig(**{**cfg.__dict__, "min_confidence": 0.5})
    shaper = CommandShaper(cfg)
    shaper.enable()
    limit = np.asarray(cfg.limit_nm)
    bound = limit.copy()  # |u| may exceed a freshly lowered limit only while slewing down to it
    rate = rate_hi = np.asarray(cfg.rate_limit_nm_s)
    watchdog_ns = wd_at_submit = int(round(cfg.watchdog_s * 1e9))
    now = 10**9
    prev = np.zeros(3)
    prev_now = None
    last_valid_stamp = None  # newest valid estimate the shaper accepted
    last_valid_recv = None  # host time it was received (the second watchdog clock)
    estopped = faulted = False
    confidence = 1.0
    for ev in events:
        kind = ev[0]
        if kind in ("estimate", "estimate_ok"):
            vals, valid, lag = np.asarray(ev[1]), ev[2], ev[3]
            stamp = now - lag
            shaper.submit(vals, stamp, valid, unit="N.m/kg", received_ns=now, confidence=confidence)
            if not valid or not np.isfinite(vals).all():
                faulted = True
            elif not faulted and not estopped and (last_valid_stamp is None or stamp > last_valid_stamp):
                last_valid_stamp, last_valid_recv, wd_at_submit = stamp, now, watchdog_ns
        elif kind == "reconfigure":
            new = CommandConfig(**{**ev[1].__dict__, "min_confidence": 0.5})
            shaper.reconfigure(new)
            limit = np.asarray(new.limit_nm)
            rate = np.asarray(new.rate_limit_nm_s)
            rate_hi = np.maximum(rate_hi, rate)
            watchdog_ns = int(round(new.watchdog_s * 1e9))
        elif kind == "confidence":
            confidence = ev[1]
        elif kind == "enable":
            shaper.enable()
        elif kind == "disable":
            shaper.disable()
        elif kind == "estop":
            shaper.emergency_stop()
            estopped = True
        elif kind == "reset":
            shaper.reset()
            estopped = faulted = False
        elif kind == "gap":
            now += int(watchdog_ns * 0.7)
        out = shaper.update(now)
        u = out.torque
        if prev_now is not None:
            bound = np.maximum(limit, bound - rate * (now - prev_now) * 1e-9)
        assert u.shape == (3,) and np.isfinite(u).all()
        assert np.all(np.abs(u) <= bound * (1 + 1e-12) + 1e-12), "saturation (a lowered limit slews down)"
        assert out.valid or np.all(u == 0.0), "valid == false => torque == 0.0"
        if estopped or faulted:
            assert np.all(u == 0.0) and not out.valid and out.fault is not None, "latched e-stop / fault"
            assert np.all(out.status == STATUS_INVALID)
        cut = out.fault is not None and np.all(u == 0.0)
        if prev_now is not None and not cut:
            dt = (now - prev_now) * 1e-9
            # A lowered rate limit may be exceeded only to meet the watchdog deadline, never beyond
            # the highest rate in force so far (core.command); without reconfiguration: exact.
            assert np.all(np.abs(u - prev) <= rate_hi * dt * (1 + 1e-9) + 1e-9), "rate limit"
        if last_valid_stamp is None or now >= min(last_valid_stamp, last_valid_recv) + wd_at_submit:
            assert np.all(u == 0.0), "zero within the watchdog time (stamp or receive time)"
        prev, prev_now = u, now
        nonzero += int(np.any(u != 0.0))
        now += dt_ms * MS
    return nonzero


def test_long_random_sequences_keep_every_guarantee():
    """Long sequences (hypothesis keeps them short): mostly good estimates, rare faults and gaps."""
    rng = np.random.default_rng(0)
    total = 0
    for _ in range(15):
        wd = float(rng.uniform(0.05, 0.3))
        limit = float(rng.uniform(5, 50))
        cfg = CommandConfig(
            JOINTS,
            70.0,
            gains=tuple(rng.uniform(-1, 1, 3)),
            phase_shift_s=float(rng.choice([0, -0.03, 0.02])),
            lowpass_hz=float(rng.choice([0, 10])),
            limit_nm=limit,
            rate_limit_nm_s=limit / wd * float(rng.uniform(1, 5)),
            ramp_s=float(rng.choice([0, 0.1])),
            watchdog_s=wd,
        )
        events = []
        for _ in range(1500):
            x = rng.random()
            if x < 0.8:
                events.append(
                    ("estimate_ok", list(rng.normal(0, 1.5, 3)), True, int(rng.integers(0, 30 * MS)))
                )
            elif x < 0.9:
                events.append(("idle",))
            elif x < 0.93:
                events.append(("gap",))
            elif x < 0.95:
                events.append(("estimate", [float("nan"), 0.0, 0.0], True, 0))
            elif x < 0.96:
                events.append(("estop",))
            elif x < 0.98:
                events.append(("reset",))
            else:
                events.append(("enable",))
        total += check_sequence(cfg, events, 5)
    assert total > 1000  # the guarantees were checked while assisting, not only at zero


def make(**kw) -> CommandShaper:
    base = dict(
        joints=("a",), subject_mass_kg=80.0, limit_nm=40.0, rate_limit_nm_s=400.0, watchdog_s=0.2, ramp_s=0.0
    )
    return CommandShaper(CommandConfig(**(base | kw)))


def run_constant(shaper: CommandShaper, value: float, steps: int, dt: int = 5 * MS, t0: int = 0) -> list:
    outs = []
    for k in range(steps):
        t = t0 + k * dt
        shaper.submit(np.array([value]), t, True)
        outs.append(shaper.update(t))
    return outs


def test_mass_scaling_gain_and_saturation():
    s = make(gains=0.5)
    s.enable()
    out = run_constant(s, 0.25, 100)[-1]  # 0.25 N·m/kg would be 20 N·m: unit says N·m here
    assert out.torque[0] == pytest.approx(0.125) and out.status[0] == STATUS_OK and out.valid
    s2 = make(gains=0.5)
    s2.enable()
    for k in range(100):
        s2.submit(np.array([0.25]), k * 5 * MS, True, unit="N.m/kg")
        out = s2.update(k * 5 * MS)
    assert out.torque[0] == pytest.approx(0.25 * 80 * 0.5)
    s3 = make()
    s3.enable()
    out = run_constant(s3, 100.0, 100)[-1]
    assert out.torque[0] == pytest.approx(40.0) and out.status[0] == STATUS_LIMITED


def test_ramp_in_and_ramp_out():
    s = make(ramp_s=0.1, rate_limit_nm_s=1e4)
    s.enable()
    outs = run_constant(s, 10.0, 40)
    torques = [o.torque[0] for o in outs]
    assert torques[10] == pytest.approx(5.0)  # half way through the 100 ms ramp
    assert outs[10].status[0] == STATUS_RAMPING and outs[10].valid
    assert torques[-1] == pytest.approx(10.0)
    s.disable()
    outs = run_constant(s, 10.0, 40, t0=40 * 5 * MS)
    assert outs[9].torque[0] == pytest.approx(5.0) and outs[-1].torque[0] == 0.0  # 50 ms into 100 ms
    assert not outs[-1].valid


def test_watchdog_ramps_to_zero_inside_the_watchdog_time():
    s = make(limit_nm=40.0, rate_limit_nm_s=400.0, watchdog_s=0.2)  # 40 N·m -> 0 takes 0.1 s
    s.enable()
    run_constant(s, 40.0, 60)
    last = 59 * 5 * MS
    outs = [s.update(last + k * MS) for k in range(1, 260)]
    torques = np.asarray([o.torque[0] for o in outs])
    assert torques[0] == pytest.approx(40.0)
    deadline = 200  # ms after the last estimate's stamp
    assert np.all(torques[deadline - 1 :] == 0.0) and torques[deadline - 102] > 0
    assert np.all(np.abs(np.diff(torques)) <= 0.4 + 1e-9)  # 400 N·m/s at 1 ms
    assert s.counters["watchdog_trips"] == 1 and outs[-1].fault is None  # not latched
    # Estimates return: assistance comes back, rate-limited from zero.
    back = run_constant(s, 40.0, 60, t0=last + 300 * MS)
    assert back[-1].torque[0] == pytest.approx(40.0)


def test_nan_and_invalid_latch_until_reset_then_need_enable():
    for bad, valid in ((math.nan, True), (math.inf, True), (1.0, False)):
        s = make()
        s.enable()
        run_constant(s, 10.0, 50)
        s.submit(np.array([bad]), 50 * 5 * MS, valid)
        out = s.update(50 * 5 * MS)
        assert out.torque[0] == 0.0 and out.fault and not out.valid
        outs = run_constant(s, 10.0, 20, t0=51 * 5 * MS)
        assert all(o.torque[0] == 0.0 and o.fault for o in outs)
        assert not s.enable()
        s.reset()
        outs = run_constant(s, 10.0, 20, t0=80 * 5 * MS)
        assert all(o.torque[0] == 0.0 for o in outs) and outs[-1].fault is None  # disabled after reset
        assert s.enable()
        outs = run_constant(s, 10.0, 50, t0=100 * 5 * MS)
        assert outs[-1].torque[0] == pytest.approx(10.0)


def test_emergency_stop_latches():
    s = make()
    s.enable()
    run_constant(s, 10.0, 50)
    s.emergency_stop()
    outs = run_constant(s, 10.0, 50, t0=50 * 5 * MS)
    assert all(o.torque[0] == 0.0 and o.fault == "emergency stop" for o in outs)
    s.enable()
    assert run_constant(s, 10.0, 5, t0=100 * 5 * MS)[-1].torque[0] == 0.0
    s.reset()
    s.enable()
    assert run_constant(s, 10.0, 100, t0=110 * 5 * MS)[-1].torque[0] == pytest.approx(10.0)


def test_lowpass_and_phase_shift():
    s = make(lowpass_hz=2.0, rate_limit_nm_s=1e5, limit_nm=100.0, watchdog_s=0.2)
    s.enable()
    outs = run_constant(s, 0.0, 2) + run_constant(s, 10.0, 200, dt=MS, t0=10 * MS)
    tau = 1 / (2 * math.pi * 2.0)
    k = int(tau * 1000)
    elapsed = (5 + k) * 1e-3  # the step enters at the update 5 ms after the last zero
    assert outs[2 + k].torque[0] == pytest.approx(10 * (1 - math.exp(-elapsed / tau)), rel=1e-9)
    # Delay: a ramp estimate delayed by 50 ms; advance: extrapolated 20 ms ahead.
    for shift, expect in ((-0.05, -0.05), (0.02, 0.02)):
        s = make(phase_shift_s=shift, rate_limit_nm_s=1e5, limit_nm=100.0)
        s.enable()
        for k in range(100):
            t = k * 10 * MS
            s.submit(np.array([t * 1e-9 * 10.0]), t, True)  # 10 N·m/s ramp
            out = s.update(t)
        assert out.torque[0] == pytest.approx((0.99 + expect) * 10.0, abs=1e-9)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"joints": ()}, "joints"),
        ({"subject_mass_kg": 0.0}, "subject_mass_kg"),
        ({"limit_nm": -1.0}, "limit_nm"),
        ({"limit_nm": (1.0, 2.0)}, "limit_nm"),
        ({"rate_limit_nm_s": math.nan}, "rate_limit_nm_s"),
        ({"gains": 10.0}, "gains"),
        ({"lowpass_hz": 150.0}, "lowpass_hz"),
        ({"watchdog_s": 0.05}, "watchdog_s"),  # 40 N·m at 400 N·m/s needs 0.1 s
        ({"phase_shift_s": 1.0}, "phase_shift_s"),
    ],
)
def test_bad_config_names_the_parameter(kw, name):
    base = dict(joints=("a",), subject_mass_kg=80.0, limit_nm=40.0, rate_limit_nm_s=400.0, watchdog_s=0.2)
    with pytest.raises(ConfigError, match=f"'{name}'"):
        CommandConfig(**(base | kw))


def test_status_codes_match_the_message_definition():
    assert (STATUS_OK, STATUS_LIMITED, STATUS_RAMPING, STATUS_INVALID) == (0, 1, 2, 3)


def _walking_shaper(**kw) -> CommandShaper:
    cfg = dict(joints=JOINTS, subject_mass_kg=70.0, gains=1.0, limit_nm=30.0, rate_limit_nm_s=1000.0,
               ramp_s=0.0, watchdog_s=0.1, control_rate_hz=1000.0)
    cfg.update(kw)
    shaper = CommandShaper(CommandConfig(**cfg))
    shaper.enable()
    return shaper


def test_stamps_ahead_of_the_host_clock_cannot_keep_a_command_alive():
    """Issue 13 item 4: stamps 3 s ahead; the estimates stop; zero within watchdog_s of the last
    *receive*, not 3.1 s later."""
    shaper = _walking_shaper()
    now = 10**12
    for _ in range(200):
        shaper.submit(np.full(3, 20.0), now + 3 * 10**9, True, received_ns=now)
        out = shaper.update(now)
        now += MS
    last_recv = now - MS
    assert out.valid and np.all(out.torque == 20.0)
    while now < last_recv + 100 * MS:
        out = shaper.update(now)
        now += MS
    out = shaper.update(last_recv + 100 * MS)
    assert np.all(out.torque == 0.0) and not out.valid


def test_low_confidence_ramps_to_zero_within_the_rate_limit_and_says_why():
    shaper = _walking_shaper(min_confidence=0.5)
    now = 10**12
    outs = []
    for k in range(200):
        conf = 1.0 if k < 100 else 0.1
        shaper.submit(np.full(3, 25.0), now, True, received_ns=now, confidence=conf)
        outs.append(shaper.update(now))
        now += MS
    u = np.array([o.torque[0] for o in outs])
    assert u[99] == 25.0 and u[-1] == 0.0
    assert np.all(np.abs(np.diff(u)) <= 1000.0 * 1e-3 + 1e-9)  # ramps, never jumps
    assert all(o.valid for o in outs)  # a deliberate zero: valid, status RAMPING
    assert np.all(outs[-1].status == STATUS_RAMPING)
    assert "low confidence 0.1" in shaper.reason and shaper.counters["low_confidence"] == 100


def test_a_lowered_limit_applies_at_once_and_ramps_down():
    """Issue 13 item 1: limit_nm 30 -> 5 at run time is applied (it was accepted and ignored)."""
    shaper = _walking_shaper()
    now = 10**12
    for _ in range(50):
        shaper.submit(np.full(3, 25.0), now, True, received_ns=now)
        out = shaper.update(now)
        now += MS
    assert np.all(out.torque == 25.0)
    shaper.reconfigure(CommandConfig(**{**shaper.config.__dict__, "limit_nm": 5.0}))
    u = []
    for _ in range(50):
        shaper.submit(np.full(3, 25.0), now, True, received_ns=now)
        u.append(shaper.update(now).torque[0])
        now += MS
    u = np.array(u)
    assert np.all(np.diff(np.r_[25.0, u]) >= -1.0 - 1e-9)  # 1000 N.m/s x 1 ms per step
    assert u[0] == 24.0 and u[-1] == 5.0 and np.all(u[20:] == 5.0)
    with pytest.raises(ConfigError, match="joints"):
        shaper.reconfigure(
            CommandConfig(joints=JOINTS[:2], subject_mass_kg=70.0, limit_nm=5.0, rate_limit_nm_s=1000.0)
        )


# -- the rate limit on the wire (issue 23) -----------------------------------------------------
wire_event = st.one_of(
    st.tuples(st.just("estimate"), st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3)),
    st.tuples(st.just("limit"), st.floats(1.0, 40.0)),  # a runtime limit_nm change (up or down)
    st.tuples(st.just("skip"), st.just(0.0)),  # an update whose output is not published
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(
        st.tuples(wire_event, st.integers(0, 12 * MS), st.integers(1 * MS, 10 * MS)),
        min_size=20,
        max_size=150,
    ),
    rate=st.floats(200.0, 5000.0),
)
def test_the_step_between_published_commands_is_bounded_by_the_time_between_publications(events, rate):
    """Each update is published after a random delay; the shaper is told when publish returned
    (mark_published). The source timestamp of a message lies between its update and that mark, so
    the worst case on the wire is: previous message stamped at its mark, this one at its update.
    Under that worst case every step obeys rate x (stamp difference), including limit raises such
    as the 5 -> 30 N·m that stepped 12 N·m in 9 ms on the wire before."""
    cfg = CommandConfig(
        JOINTS, 70.0, gains=1.0, limit_nm=5.0, rate_limit_nm_s=rate, ramp_s=0.0, watchdog_s=1.0
    )
    shaper = CommandShaper(cfg)
    shaper.enable()
    now = 10**9
    last = None  # (torque, latest possible source stamp) of the previous published message
    for (kind, arg), delay, gap in events:
        if kind == "estimate":
            shaper.submit(np.asarray(arg), now, True, unit="N.m/kg", received_ns=now)
        elif kind == "limit":
            shaper.reconfigure(CommandConfig(**{**cfg.__dict__, "limit_nm": arg}))
        out = shaper.update(now)
        if kind != "skip":
            mark = now + delay  # publish returned
            if last is not None:
                step = np.abs(out.torque - last[0])
                bound = rate * (now - last[1]) * 1e-9
                assert np.all(step <= bound * (1 + 1e-9) + 1e-9), (step, bound)
            shaper.mark_published(mark)
            last = (out.torque, mark)
            now = mark
        now += gap


def test_a_limit_raise_ramps_on_the_wire_despite_a_slow_publish():
    """The issue's case: limit 5 -> 30 N·m at 1000 N·m/s, publication 8 ms after the update."""
    cfg = CommandConfig(("a",), 70.0, limit_nm=5.0, rate_limit_nm_s=1000.0, ramp_s=0.0, watchdog_s=0.5)
    wired, unwired = CommandShaper(cfg), CommandShaper(cfg)
    steps = {id(wired): [], id(unwired): []}
    for s in (wired, unwired):
        s.enable()
        now, last = 0, None
        for k in range(60):
            if k == 30:
                s.reconfigure(CommandConfig(**{**cfg.__dict__, "limit_nm": 30.0}))
            s.submit(np.array([1.0]), now, True, unit="N.m/kg", received_ns=now)  # 70 N·m wanted
            out = s.update(now)
            mark = now + 8 * MS  # publish returns 8 ms after the update
            if last is not None:  # worst case on the wire: stamps at the mark, then at the update
                steps[id(s)].append(abs(out.torque[0] - last[0]) / ((now - last[1]) * 1e-9))
            if s is wired:
                s.mark_published(mark)
            last = (out.torque[0], mark)
            now = mark + 1 * MS  # the next update right after
    assert max(steps[id(wired)]) <= 1000.0 * (1 + 1e-9)
    assert max(steps[id(unwired)]) > 8000.0  # 9 ms of slew in the 1 ms the wire sees: the old failure
    assert wired.update(now).torque[0] > 5.0  # and it still ramps up
