"""Property tests of the NCA engine against independent methods.

- A dense sample of a known bi-exponential curve: AUC0-28d within 1% of the closed-form integral.
- Linear trapezoid AUClast = ``numpy.trapezoid`` on random positive profiles, many at once.
- AUCINT with the interval end between samples = a scalar, loop-based re-implementation of
  PKNCA's ``aucint`` algorithm (insert the interpolated point, re-choose each segment's rule).
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

from cdisc_pipe.nca import NcaSettings, calc_parameters, prepare_profiles
from cdisc_pipe.nca.core import auc_between

LULD = NcaSettings()
LINEAR = NcaSettings(auc_method="linear")


def log_trapezoid(dt: float, c1: float, c2: float) -> float:
    """``dt * (c1 - c2) / ln(c1 / c2)`` in 40-digit decimal arithmetic, rounded once to a float.

    In binary floating point ``ln(c1 / c2)`` loses about half its digits when c1 and c2 agree to
    many places (c1 / c2 = 1 + 1e-12 carries ~1e-4 relative error); the reference must not share
    that error with the engine it checks.
    """
    with localcontext() as ctx:
        ctx.prec = 40
        a, b = Decimal(c1), Decimal(c2)
        return float(Decimal(dt) * (a - b) / (a / b).ln())


def run(frames: list[tuple[np.ndarray, np.ndarray]], settings: NcaSettings) -> pd.DataFrame:
    """NCA of several profiles (time, conc arrays; conc > 0 quantifiable, time 0 = time zero)."""
    ids = np.concatenate([np.full(len(t), i) for i, (t, _) in enumerate(frames)])
    t = np.concatenate([t for t, _ in frames])
    c = np.concatenate([c for _, c in frames])
    df = pd.DataFrame({"ID": ids, "TIME": t, "CONC": c, "BLQ": c <= 0, "LLOQ": 1e-9, "RECID": np.arange(len(t))})
    prof = prepare_profiles(df, ["ID"], settings)
    return calc_parameters(prof, settings).set_index(prof.profiles["ID"])


def biexp_integral(a: float, ka: float, ke: float, t_end: float) -> float:
    """Closed form of the integral from 0 to t_end of A (e^{-ke t} - e^{-ka t})."""
    return a * ((1 - math.exp(-ke * t_end)) / ke - (1 - math.exp(-ka * t_end)) / ka)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=st.floats(10.0, 1e6),
    ka=st.floats(0.3, 4.0),
    ke=st.floats(0.01, 0.25),
    n=st.integers(150, 400),
    t_max=st.floats(28.5, 40.0),
    seed=st.integers(0, 2**31 - 1),
    method=st.sampled_from(["lin up/log down", "linear"]),
)
def test_auc0_28_matches_biexponential_closed_form(a, ka, ke, n, t_max, seed, method):
    if ka < ke * 1.5:
        ka = ke * 1.5 + 0.1  # a rising then falling curve
    rng = np.random.default_rng(seed)
    # dense, irregular sampling from 0 to beyond day 28: a regular grid jittered by up to 40% of
    # its step (day 28 itself is usually not sampled, so the end of the interval is interpolated).
    # Dense means at least 4 samples per absorption time constant 1/ka: the trapezoids' error on
    # the rise is about (h ka)^2 / 12 of its area, under 1% then even with the jitter (h ka <=
    # 0.25 x 1.8); fewer samples (e.g. 150 over 39 days with ka = 4: h ka = 1.05) miss the 1%.
    n = max(n, math.ceil(t_max * ka / 0.25) + 1)
    grid = np.linspace(0.0, t_max, n)
    step = grid[1] - grid[0]
    jitter = rng.uniform(-0.4 * step, 0.4 * step, n)
    jitter[[0, -1]] = 0.0
    t = np.unique(grid + jitter)
    c = a * (np.exp(-ke * t) - np.exp(-ka * t))
    s = NcaSettings(auc_method=method)
    res = run([(t, c)], s).iloc[0]
    exact = biexp_integral(a, ka, ke, 28.0)
    assert res["AUCINT"] == pytest.approx(exact, rel=0.01)
    assert res["AUCLAST"] == pytest.approx(biexp_integral(a, ka, ke, t[-1]), rel=0.01)


@hsettings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.floats(0.01, 60.0), st.floats(0.001, 1e5)), min_size=1, max_size=25),
                min_size=1, max_size=8))
def test_linear_auclast_equals_numpy_trapezoid(profiles):
    frames = []
    for pts in profiles:
        t = np.array(sorted({round(x, 6) for x, _ in pts}))
        c = np.array([v for _, v in pts][: len(t)])
        frames.append((np.r_[0.0, t], np.r_[0.0, c]))  # time zero, then positive concentrations
    res = run(frames, LINEAR)
    for i, (t, c) in enumerate(frames):
        assert res.loc[i, "AUCLAST"] == pytest.approx(np.trapezoid(c, t), rel=1e-9, abs=1e-9)


def reference_aucint(t: np.ndarray, c: np.ndarray, end: float, method: str) -> float:
    """Scalar re-implementation of PKNCA aucint.last for a profile starting at time 0.

    Zero after tlast; the end point is interpolated (linear, or log when the segment falls and
    both ends are > 0 under lin up/log down); then each segment is integrated with its own rule.
    """
    pos = np.flatnonzero(c > 0)
    tlast = t[pos[-1]]
    b = min(end, tlast)
    tt, cc = [], []
    for i in range(len(t)):
        if t[i] <= b:
            tt.append(t[i])
            cc.append(c[i])
    if tt[-1] < b:
        j = len(tt)  # first sample after b
        t1, t2, c1, c2 = t[j - 1], t[j], c[j - 1], c[j]
        f = (b - t1) / (t2 - t1)
        if method == "lin up/log down" and c2 < c1 and c2 > 0:
            cb = math.exp(math.log(c1) + f * (math.log(c2) - math.log(c1)))
        else:
            cb = c1 + f * (c2 - c1)
        tt.append(b)
        cc.append(cb)
    total = 0.0
    for i in range(len(tt) - 1):
        dt = tt[i + 1] - tt[i]
        c1, c2 = cc[i], cc[i + 1]
        if method == "lin up/log down" and c2 < c1 and c2 > 0:
            total += log_trapezoid(dt, c1, c2)
        else:
            total += dt * (c1 + c2) / 2
    return total


@hsettings(max_examples=80, deadline=None)
@given(
    pts=st.lists(st.tuples(st.floats(0.05, 45.0), st.one_of(st.just(0.0), st.floats(0.01, 1e4))),
                 min_size=2, max_size=20),
    end=st.floats(1.0, 40.0),
    method=st.sampled_from(["lin up/log down", "linear"]),
)
def test_aucint_matches_scalar_pknca_reference(pts, end, method):
    t = np.array(sorted({round(x, 4) for x, _ in pts}))
    c = np.array([v for _, v in pts][: len(t)])
    if not (c > 0).any():
        return
    # middle zeros would be dropped by the BLQ rules; keep this test on the integration rules
    first, last = np.flatnonzero(c > 0)[[0, -1]]
    c[first:last + 1] = np.where(c[first:last + 1] > 0, c[first:last + 1], 1.0)
    t, c = np.r_[0.0, t], np.r_[0.0, c]
    s = NcaSettings(auc_method=method, interval={"end_days": end})
    res = run([(t, c)], s).iloc[0]
    assert res["AUCINT"] == pytest.approx(reference_aucint(t, c, end, method), rel=1e-9, abs=1e-9)


def reference_profile(t: np.ndarray, c: np.ndarray, blq: np.ndarray) -> dict[str, float]:
    """Scalar, loop-based PKNCA defaults for one profile whose first sample is at time 0.

    conc.blq: BLQ before the first quantifiable value -> 0, between -> dropped, after the last
    -> 0; then Cmax/Tmax over t > 0 (first on ties), Tlast, AUClast by lin up/log down.
    """
    q = [i for i in range(len(t)) if not blq[i]]
    if not q or all(t[i] == 0 for i in q):
        return {"CMAX": math.nan, "TMAX": math.nan, "TLAST": math.nan, "AUCLAST": math.nan}
    first, last = t[q[0]], t[q[-1]]
    tt, cc = [], []
    for i in range(len(t)):
        if not blq[i]:
            tt.append(t[i]); cc.append(c[i])
        elif t[i] == 0 or t[i] < first or t[i] > last:
            tt.append(t[i]); cc.append(0.0)
        # else: BLQ between quantifiable values, dropped
    cmax, tmax = -1.0, math.nan
    for ti, ci in zip(tt, cc):
        if ti > 0 and ci > cmax:
            cmax, tmax = ci, ti
    tlast = max(ti for ti, ci in zip(tt, cc) if ci > 0)
    auc = 0.0
    for i in range(len(tt) - 1):
        if tt[i + 1] > tlast:
            break
        c1, c2, dt = cc[i], cc[i + 1], tt[i + 1] - tt[i]
        auc += log_trapezoid(dt, c1, c2) if (c2 < c1 and c2 > 0) else dt * (c1 + c2) / 2
    return {"CMAX": cmax, "TMAX": tmax, "TLAST": tlast, "AUCLAST": auc}


@hsettings(max_examples=40, deadline=None)
@given(st.lists(
    st.lists(st.tuples(st.integers(1, 400), st.floats(1.0, 1e4), st.booleans()), min_size=1, max_size=15),
    min_size=1, max_size=10))
@example([[(1, 10000.0, False), (2, 9999.999988585942, False)]])  # found by hypothesis: c1/c2 = 1 + 1.1e-12
def test_grouped_blq_rules_match_scalar_reference(profiles):
    frames, refs = [], []
    for i, pts in enumerate(profiles):
        # integer times in 1/4 days; the time-zero sample is BLQ
        by_time = {k / 4.0: (v, b) for k, v, b in pts}
        t = np.r_[0.0, sorted(by_time)]
        c = np.r_[np.nan, [by_time[x][0] for x in t[1:]]]
        blq = np.r_[True, [by_time[x][1] for x in t[1:]]]
        c = np.where(blq, np.nan, c)
        frames.append(pd.DataFrame({"ID": i, "TIME": t, "CONC": c, "BLQ": blq, "LLOQ": 1.0}))
        refs.append(reference_profile(t, np.nan_to_num(c), blq))
    df = pd.concat(frames[::-1], ignore_index=True)
    df["RECID"] = np.arange(len(df))
    prof = prepare_profiles(df, ["ID"], LULD)
    res = calc_parameters(prof, LULD).set_index(prof.profiles["ID"])
    for i, ref in enumerate(refs):
        for col, val in ref.items():
            assert res.loc[i, col] == pytest.approx(val, rel=1e-9, nan_ok=True), (i, col)


@pytest.mark.parametrize("c1, c2", [
    (10000.0, 9999.999988585942),  # ratio 1 + 1.1e-12: ln(c1 / c2) in binary has ~1e-4 relative error
    (1.0, 1.0 - 2.0**-52),  # adjacent doubles
    (5.0, 4.999),  # ordinary data: 4 significant digits
    (1e4, 1e-3),  # steep fall
])
def test_log_trapezoid_is_accurate_for_nearly_equal_concentrations(c1: float, c2: float) -> None:
    """One falling segment, lin up/log down: the area equals the 40-digit decimal value to 1e-13."""
    area = auc_between(np.array([0, 0]), np.array([1.0, 3.0]), np.array([c1, c2]), np.array([0.0]),
                       np.array([3.0]), 1, "lin up/log down")
    assert area[0] == pytest.approx(log_trapezoid(2.0, c1, c2), rel=1e-13)
