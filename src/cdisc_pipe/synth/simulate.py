"""Subject-level simulation of the bundled study (vectorised numpy; one row per subject).

Everything here is a number: dates are day numbers since 1970-01-01 (float, NaN = none), study
times are days relative to the CAR-T infusion (protocol Day 0 = infusion).  The form builders in
:mod:`cdisc_pipe.synth.forms` turn these into eCRF records.

Headline outcomes follow the published phase 1 of a fully human BCMA CAR-T in 18 RRMM patients
(ORR ~100%, CR/sCR ~72%, grade 1-2 CRS ~70%, ICANS rare, 1-year PFS ~58%).  Where a proportion is
a study characteristic, the subjects are *allocated* to categories by largest-remainder quotas so
that a small study (n=18) reproduces the proportion closely; who gets which category is random
(or ranked on a related latent variable, e.g. later progression -> deeper response).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: First informed consent of the study and the enrolment period (days).
STUDY_START = np.datetime64("2022-03-07", "D").astype("int64")
ENROL_SPAN = 540
#: Data cut: this many days after the end of the enrolment period.
CUT_AFTER_ENROL = 560
DOSE_PER_LEVEL = {1: 1.0, 2: 3.0, 3: 6.0}
DLT_PROB = {1: 0.02, 2: 0.05, 3: 0.12}
RESPONSE_QUOTA = (("SCR", 0.40), ("CR", 0.32), ("VGPR", 0.17), ("PR", 0.11))
CRS_QUOTA = ((0, 0.22), (1, 0.40), (2, 0.30), (3, 0.06), (4, 0.02))
BM_DAYS = np.array([28.0, 90.0, 180.0, 365.0, 730.0])


def data_cut_day() -> float:
    """Day number of the data cut."""
    return float(STUDY_START + ENROL_SPAN + CUT_AFTER_ENROL)


def quota_counts(n: int, probs: np.ndarray) -> np.ndarray:
    """Largest-remainder allocation of ``n`` items to categories with proportions ``probs``."""
    raw = np.asarray(probs, dtype=float) * n
    counts = np.floor(raw).astype(int)
    short = n - counts.sum()
    if short > 0:
        order = np.argsort(-(raw - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def allocate_ranked(score: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Category index per item: the highest ``score`` gets category 0, by quota."""
    n = len(score)
    counts = quota_counts(n, probs)
    cats = np.repeat(np.arange(len(probs)), counts)
    out = np.empty(n, dtype=int)
    out[np.argsort(-score, kind="stable")] = cats
    return out


def _escalation(n_inf: int, dlt_latent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3+3 escalation over DL1..DL3 then expansion, in infusion order.

    Returns (dose level, cohort code ESC/EXP, DLT flag) for the ``n_inf`` infused subjects.  The loop
    runs over cohorts (at most a handful), never over subjects.
    """
    level = np.zeros(n_inf, dtype=int)
    dlt = np.zeros(n_inf, dtype=bool)
    part = np.full(n_inf, "EXP", dtype=object)
    pos, cur, cleared = 0, 1, 0
    while pos < n_inf and cur <= 3:
        take = min(3, n_inf - pos)
        sl = slice(pos, pos + take)
        level[sl], part[sl] = cur, "ESC"
        dlt[sl] = dlt_latent[sl] < DLT_PROB[cur]
        n_dlt = int(dlt[sl].sum())
        pos += take
        if n_dlt == 1 and pos < n_inf:
            take2 = min(3, n_inf - pos)
            sl2 = slice(pos, pos + take2)
            level[sl2], part[sl2] = cur, "ESC"
            dlt[sl2] = dlt_latent[sl2] < DLT_PROB[cur]
            n_dlt += int(dlt[sl2].sum())
            pos += take2
        if n_dlt >= 2:
            break
        cleared = cur
        cur += 1
    rp2d = max(cleared, 1)
    if pos < n_inf:
        level[pos:] = rp2d
        dlt[pos:] = dlt_latent[pos:] < DLT_PROB[rp2d]
    return level, part, dlt


def simulate_subjects(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """One row per subject with every subject-level latent and outcome the forms need."""
    if n < 1:
        raise ValueError("n must be >= 1")
    sid = np.arange(n)
    s = pd.DataFrame({"sid": sid})
    s["SUBJID"] = (1001 + sid).astype(str)
    consent = STUDY_START + np.sort(rng.integers(0, ENROL_SPAN + 1, n))
    s["consent"] = consent.astype(float)
    s["scr"] = s["consent"] + rng.integers(0, 3, n)
    s["enrl"] = s["scr"] + rng.integers(3, 8, n)
    s["aph"] = s["enrl"] + rng.integers(1, 6, n)
    s["aph_min"] = rng.integers(8 * 60, 10 * 60, n).astype(float)

    # demography
    age = np.clip(np.round(rng.normal(57, 9, n)), 33, 75)
    s["birth"] = s["consent"] - np.floor(age * 365.25) - rng.integers(1, 365, n)
    s["sex"] = np.where(rng.random(n) < 0.56, "M", "F")
    s["race"] = np.where(rng.random(n) < 0.985, "1", "99")
    s["height"] = np.round(np.where(s["sex"] == "M", rng.normal(169, 6, n), rng.normal(158, 5.5, n)), 1)
    s["weight"] = np.round(np.clip(rng.normal(22.5, 3.0, n) * (s["height"] / 100) ** 2, 38, 110), 1)
    s["bsa"] = np.round(np.sqrt(s["height"] * s["weight"] / 3600), 2)

    # disease at entry
    s["mmtype"] = rng.choice(["IGG", "IGA", "IGD", "LC"], n, p=[0.50, 0.20, 0.05, 0.25])
    s["mmlc"] = np.where(rng.random(n) < 0.6, "K", "L")
    lc = s["mmtype"].eq("LC").to_numpy()
    s["m0"] = np.where(lc, 0.0, np.round(np.clip(rng.lognormal(np.log(2.8), 0.5, n), 0.6, 7.5), 2))
    urine_meas = lc | (rng.random(n) < 0.35)
    s["u0"] = np.where(
        urine_meas, np.clip(rng.lognormal(np.log(np.where(lc, 900, 300)), 0.7), 220, 6000), rng.uniform(0, 60, n)
    ).round(0)
    s["iflc0"] = np.where(lc, rng.lognormal(np.log(1200), 0.8, n), rng.lognormal(np.log(250), 0.9, n)).round(1)
    s["uflc0"] = rng.lognormal(np.log(7.5), 0.35, n).round(1)
    s["bmpc0"] = rng.uniform(10, 80, n).round(1)
    s["iss"] = rng.choice(["1", "2", "3"], n, p=[0.30, 0.40, 0.30])
    hr = rng.random(n) < 0.35
    s["hrcyto"] = np.where(hr, "Y", "N")
    # which high-risk lesion(s); at least one when high risk
    which = rng.integers(0, 3, n)
    for k, col in enumerate(("del17p", "t414", "t1416")):
        extra = rng.random(n) < 0.15
        s[col] = np.where(hr & ((which == k) | extra), "Y", "N")
    s["gain1q"] = np.where(rng.random(n) < 0.45, "Y", "N")
    untested = rng.random(n) < 0.05
    s.loc[untested & ~hr, "gain1q"] = "U"
    ldh_high = rng.random(n) < 0.25
    s["ldh_high"] = ldh_high
    s["riss"] = np.where((s["iss"] == "1") & ~hr & ~ldh_high, "1",
                         np.where((s["iss"] == "3") & (hr | ldh_high), "3", "2"))
    s["prlines"] = np.clip(3 + rng.poisson(1.5, n), 3, 10)
    s["piref"] = np.where(rng.random(n) < 0.85, "Y", "N")
    s["imidref"] = np.where(rng.random(n) < 0.80, "Y", "N")
    s["cd38ref"] = np.where(rng.random(n) < 0.30, "Y", "N")
    s["prasct"] = rng.random(n) < 0.30
    s["emd"] = rng.random(n) < 0.25
    s["diag"] = s["consent"] - rng.integers(2 * 365, 8 * 365, n)
    s["ecog0"] = rng.choice([0, 1, 2], n, p=[0.4, 0.55, 0.05])
    s["creat_red"] = rng.random(n) < 0.12
    s["b2m0"] = np.select([s["iss"] == "1", s["iss"] == "2"], [rng.uniform(1.8, 3.4, n), rng.uniform(3.5, 5.4, n)],
                          rng.uniform(5.6, 12.0, n))
    s["alb0"] = np.where(s["iss"] == "1", rng.uniform(36, 45, n), rng.uniform(29, 42, n))

    # never infused: ~5% (at least one in a study of 6 or more)
    k_ni = max(1, int(round(0.05 * n))) if n >= 6 else 0
    ni = np.zeros(n, dtype=bool)
    if k_ni:
        ni[rng.choice(np.arange(3, n) if n > 3 else sid, k_ni, replace=False)] = True
    s["infused"] = ~ni
    reason = rng.choice(["FAIL", "PD", "DEATH"], n, p=[0.5, 0.3, 0.2])
    s["ni_reason"] = np.where(ni, reason, "")
    s["ni_day"] = np.where(ni, s["aph"] + rng.integers(15, 40, n), np.nan)
    s["manuf"] = np.where(ni & (reason == "FAIL"), "FAIL", "REL")

    # bridging and infusion timing
    s["bridging"] = rng.random(n) < 0.55
    s["inf"] = np.where(ni, np.nan, s["aph"] + rng.integers(21, 36, n))
    s["inf_min"] = rng.integers(9 * 60, 16 * 60, n).astype(float)

    # dose escalation (3+3) then expansion, in enrolment order of infused subjects
    inf_idx = np.flatnonzero(~ni)
    # the DLT latent variable has its own stream so that other draws do not shift it
    esc_rng = np.random.default_rng(rng.integers(0, 2**63))
    lvl_i, part_i, dlt_i = _escalation(len(inf_idx), esc_rng.random(len(inf_idx)))
    level = np.full(n, np.nan)
    part = np.full(n, None, dtype=object)
    level[inf_idx], part[inf_idx] = lvl_i, part_i
    lv = pd.Series(level).ffill().bfill().fillna(1).astype(int)
    s["level"] = lv.to_numpy()
    s["cohort"] = pd.Series(part).ffill().bfill().fillna("ESC").to_numpy()
    dlt = np.zeros(n, dtype=bool)
    dlt[inf_idx] = dlt_i
    s["dlt"] = dlt
    s["dose"] = s["level"].map(DOSE_PER_LEVEL)
    s["cellskg"] = np.where(ni, np.nan, np.round(s["dose"] * np.clip(rng.normal(1.0, 0.04, n), 0.9, 1.1), 2))
    s["totcart"] = np.round(s["cellskg"] * s["weight"], 1)
    s["bagvol"] = np.where(ni, np.nan, rng.choice([20.0, 30.0, 40.0, 50.0], n))

    # ---- outcomes among infused subjects (days since infusion) ----
    m = len(inf_idx)
    pd_lat = np.full(n, np.inf)
    death = np.full(n, np.inf)
    death_cause = np.full(n, "", dtype=object)
    if m:
        k_ed = int(round(0.06 * m))
        k_ev1 = int(round(0.42 * m))
        perm = rng.permutation(inf_idx)
        early = perm[:k_ed]
        pd1 = perm[k_ed:k_ev1]
        rest = perm[k_ev1:]
        death[early] = rng.integers(40, 121, len(early))
        death_cause[early] = "AE"
        pd_lat[pd1] = rng.integers(75, 366, len(pd1))
        late = rest[: int(round(0.3 * len(rest)))]
        pd_lat[late] = rng.integers(380, 760, len(late))
        with_pd = np.isfinite(pd_lat)
        dies = with_pd & (rng.random(n) < 0.45)
        death[dies] = pd_lat[dies] + rng.integers(60, 500, n)[dies]
        death_cause[dies] = "PD"
        other = (~with_pd) & ~np.isfinite(death) & (rng.random(n) < 0.02) & ~ni
        death[other] = rng.integers(200, 700, n)[other]
        death_cause[other] = "OTHER"
    s["pd_lat"] = pd_lat
    s["death_t"] = death
    s["death_cause"] = death_cause
    drop = rng.random(n)
    s["drop_t"] = np.where(drop < 0.03, rng.integers(60, 700, n), np.inf)
    s["drop_reason"] = np.where(drop < 0.015, "WITHDRAW", np.where(drop < 0.03, "LOST", ""))
    s.loc[~s["infused"], ["pd_lat", "death_t", "drop_t"]] = np.inf

    # best response by quota, ranked on time to first event (later event -> deeper response)
    resp = np.full(n, "", dtype=object)
    if m:
        ev = np.minimum(pd_lat, death)[inf_idx]
        score = np.where(np.isfinite(ev), ev, 2000.0) + rng.normal(0, 40, m)
        cat = allocate_ranked(score, np.array([p for _, p in RESPONSE_QUOTA]))
        resp[inf_idx] = np.array([c for c, _ in RESPONSE_QUOTA], dtype=object)[cat]
    s["best"] = resp
    crgrp = np.isin(resp, ["SCR", "CR"])
    s["floor_f"] = np.where(resp == "PR", rng.uniform(0.22, 0.40, n),
                            np.where(resp == "VGPR", rng.uniform(0.015, 0.08, n), 0.0))
    s["k_resp"] = np.where(resp == "PR", rng.uniform(0.07, 0.11, n), rng.uniform(0.05, 0.09, n))
    first_ev = np.minimum(pd_lat, death)
    upper = np.clip(first_ev - 60, 22, 150)
    t_ife = np.where(crgrp, 20 + rng.random(n) ** 1.5 * (np.minimum(upper, 130) - 20), np.inf)
    t_ife = np.where(crgrp & (first_ev < 100), rng.uniform(18, 27, n), t_ife)
    s["t_ifeneg"] = t_ife
    idx = np.searchsorted(BM_DAYS, np.where(np.isfinite(t_ife), t_ife, 1e9))
    s["t_creff"] = np.where(crgrp, BM_DAYS[np.minimum(idx, len(BM_DAYS) - 1)], np.inf)
    # MRD negativity (NGS, bone marrow): mostly in CR/sCR, some VGPR, rarely PR
    p_neg = np.select([crgrp, resp == "VGPR", resp == "PR"], [0.85, 0.3, 0.05], 0.0)
    s["mrdneg"] = rng.random(n) < p_neg
    s["t_mrdneg"] = np.where(crgrp, t_ife, 50.0)
    s["mrd_sens"] = np.where(rng.random(n) < 0.85, 1e-5, 1e-6)

    # CRS grade by quota ranked on dose (+ noise); onset and duration
    crs = np.zeros(n, dtype=int)
    if m:
        score = s["level"].to_numpy()[inf_idx] + rng.normal(0, 1.2, m)
        cat = allocate_ranked(-score, np.array([p for _, p in CRS_QUOTA]))
        crs[inf_idx] = np.array([g for g, _ in CRS_QUOTA])[cat]
    s["crs"] = crs
    s["crs_on"] = np.clip(np.round(rng.gamma(4.0, 1.4, n)), 1, 12)
    s["crs_dur"] = np.clip(np.round(rng.gamma(2.5, 1.6, n)) + crs, 1, 14)
    icans = np.zeros(n, dtype=int)
    if m:
        k_ic = quota_counts(m, np.array([0.97, 0.03]))[1]
        pick = rng.choice(inf_idx[crs[inf_idx] > 0] if (crs[inf_idx] > 0).sum() >= k_ic else inf_idx, k_ic, replace=False)
        icans[pick] = np.where(rng.random(k_ic) < 0.8, 1, 2)
    s["icans"] = icans
    s["icans_on"] = s["crs_on"] + rng.integers(1, 4, n)
    s["icans_dur"] = rng.integers(1, 5, n).astype(float)
    s["toci"] = (crs >= 3) | ((crs == 2) & (rng.random(n) < 0.7))
    s["steroid"] = (crs >= 3) | (icans >= 2) | ((crs == 2) & (rng.random(n) < 0.15))

    # cellular kinetics
    s["cmax"] = rng.lognormal(np.log(6.0e4), 0.9, n) * (s["dose"] / 3.0) ** 0.3
    s["tmax"] = np.clip(rng.lognormal(np.log(10.0), 0.25, n), 6.0, 17.0)
    s["k1"] = rng.uniform(0.08, 0.2, n)
    loses = rng.random(n) < 0.3
    s["k2"] = np.where(loses, rng.uniform(0.02, 0.04, n), rng.uniform(0.002, 0.008, n))

    # haematology dynamics (lymphodepletion and CAR-T)
    s["anc0"] = rng.lognormal(np.log(2.6), 0.35, n)
    s["alc0"] = rng.lognormal(np.log(1.0), 0.4, n)
    s["mono0"] = rng.lognormal(np.log(0.4), 0.3, n)
    s["plt0"] = np.clip(rng.lognormal(np.log(140), 0.45, n), 30, 450)
    s["hgb0"] = np.clip(rng.normal(102, 14, n), 65, 150)
    s["anc_nadir"] = rng.uniform(0.02, 0.25, n)
    s["plt_nadir"] = rng.uniform(0.15, 0.7, n)
    prolonged = rng.random(n) < 0.2
    s["prolonged"] = prolonged
    s["cyto_sr"] = np.where(prolonged, rng.uniform(18, 30, n), rng.uniform(4, 8, n))

    # a DLT without severe CRS is a prolonged grade 4 thrombocytopenia (investigator-adjudicated)
    dlt_plt = dlt & (crs < 3)
    s.loc[dlt_plt, "plt_nadir"] = np.minimum(s.loc[dlt_plt, "plt_nadir"], 18.0 / s.loc[dlt_plt, "plt0"])
    s.loc[dlt_plt, "prolonged"] = True
    s.loc[dlt_plt, "cyto_sr"] = rng.uniform(26, 32, int(dlt_plt.sum()))

    cut = data_cut_day()
    inf = s["inf"].to_numpy()
    end_abs = np.fmin(np.fmin(inf + s["death_t"], inf + s["drop_t"]), np.fmin(cut, inf + 751))
    s["obs_end"] = np.where(ni, np.nan, end_abs)
    s["cut"] = cut
    return s
