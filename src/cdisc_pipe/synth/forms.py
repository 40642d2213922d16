"""Form builders: simulated subjects -> eCRF records, one DataFrame per form.

Every builder is vectorised over subjects/records; loops run over visits, tests or AE terms only.
A builder returns the form's fields (as text, ``None`` = blank) plus internal columns used by the
export layer: ``sid`` (subject index), ``FOLDER``, ``FOLDERNAME``, ``_order`` (visit order),
``_day`` (day number the record is about, drives the EDC audit timestamps), ``FORMINST``, ``RECPOS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from cdisc_pipe.synth import design
from cdisc_pipe.synth.text import fmt_date, fmt_num, fmt_result, fmt_sci, fmt_time, partial_date, pick

RS_FOLDERS = design.FORM_VISITS["rs"]


@dataclass
class Context:
    """Subjects, their visit schedule and the random generator for one chunk of subjects."""

    s: pd.DataFrame
    sched: pd.DataFrame
    rng: np.random.Generator


# --------------------------------------------------------------------------- schedule
def build_schedule(s: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """All visits of every subject (scheduled, missed and unscheduled) with actual day numbers.

    Also sets ``s["pd_t"]`` (study day of the progression assessment, inf when none observed).
    ``s`` is indexed by local position 0..n-1 (``sid`` minus the chunk offset).
    """
    n = len(s)
    parts = []
    for v in design.VISITS:
        anchor = s[v.anchor].to_numpy(dtype=float)
        jit = rng.integers(-v.window, v.window + 1, n) if v.window else np.zeros(n)
        parts.append(pd.DataFrame({
            "loc": np.arange(n), "FOLDER": v.folder, "FOLDERNAME": v.name, "_order": v.order,
            "_day": anchor + v.day + jit,
        }))
    sc = pd.concat(parts, ignore_index=True)
    sc = sc[np.isfinite(sc["_day"])]
    inf = s["inf"].to_numpy()[sc["loc"]]
    sc["t"] = sc["_day"].to_numpy() - inf
    obs_end = s["obs_end"].to_numpy()[sc["loc"]]
    cut = float(s["cut"].iloc[0])
    keep = (sc["_day"] <= cut) & ~(np.isfinite(inf) & (sc["_day"].to_numpy() > obs_end))
    sc = sc[keep.to_numpy()].copy()

    # progression: at the first scheduled assessment after the latent time, or at an unscheduled visit
    pd_lat = s["pd_lat"].to_numpy()
    rs_rows = sc[sc["FOLDER"].isin(RS_FOLDERS).to_numpy() & (sc["t"].to_numpy() >= pd_lat[sc["loc"]])]
    first = rs_rows.sort_values(["loc", "t"]).groupby("loc")["t"].first()
    cand = np.full(n, np.inf)
    cand[first.index.to_numpy()] = first.to_numpy()
    use_sched = (rng.random(n) < 0.6) & np.isfinite(cand)
    pd_t = np.where(use_sched, cand, pd_lat)
    seen = np.isfinite(pd_t) & (s["inf"].to_numpy() + pd_t <= s["obs_end"].to_numpy())
    pd_t = np.where(seen, pd_t, np.inf)
    s["pd_t"] = pd_t
    s["pd_unsch"] = seen & ~use_sched
    sc = sc[sc["t"].fillna(-1e9).to_numpy() <= pd_t[sc["loc"]]]
    sc["occur"] = True
    miss = sc["FOLDER"].isin(["D21", "M2", "M9", "M18"]).to_numpy() & (rng.random(len(sc)) < 0.04)
    miss &= sc["t"].to_numpy() != pd_t[sc["loc"]]
    sc.loc[miss, "occur"] = False
    sc["kind"] = "SCHED"
    # a few response assessments are not evaluable (disease samples not analysable)
    sc["ne"] = sc["FOLDER"].isin(["M9", "M18"]).to_numpy() & (rng.random(len(sc)) < 0.05)
    sc.loc[sc["t"].to_numpy() == pd_t[sc["loc"]], "ne"] = False

    # unscheduled visits: random extra visits before progression, plus the progression visit itself
    k = np.minimum(rng.poisson(0.5, n), 2)
    loc = np.repeat(np.arange(n), k)
    t = rng.uniform(35, 700, len(loc)).round()
    ok = (t < pd_t[loc]) & (s["inf"].to_numpy()[loc] + t <= np.fmin(s["obs_end"].to_numpy()[loc], cut))
    un = pd.DataFrame({"loc": loc[ok], "t": t[ok], "kind": "UNS"})
    pdv = np.flatnonzero(s["pd_unsch"].to_numpy())
    un = pd.concat([un, pd.DataFrame({"loc": pdv, "t": pd_t[pdv], "kind": "PDUNS"})], ignore_index=True)
    un = un.sort_values(["loc", "t"], kind="stable")
    num = un.groupby("loc").cumcount().to_numpy() + 1
    un["FOLDER"] = ("UNS" + pd.Series(num).astype(str).str.zfill(2)).to_numpy()
    un["FOLDERNAME"] = ("Unscheduled " + pd.Series(num).astype(str)).to_numpy()
    un["_order"] = 1000 + num
    un["_day"] = s["inf"].to_numpy()[un["loc"]] + un["t"].to_numpy()
    un["occur"] = True
    un["ne"] = False
    sc = pd.concat([sc, un], ignore_index=True)
    return sc.sort_values(["loc", "_day", "_order"], kind="stable").reset_index(drop=True)


def _visits(ctx: Context, key: str, unscheduled: bool = False, pd_visit: bool = False) -> pd.DataFrame:
    """Visits that took place where the form ``key`` is collected (optionally unscheduled ones)."""
    sc = ctx.sched
    m = sc["occur"].to_numpy() & sc["FOLDER"].isin(design.FORM_VISITS.get(key, ())).to_numpy()
    if unscheduled:
        m |= sc["kind"].eq("UNS").to_numpy()
    if pd_visit:
        m |= sc["kind"].eq("PDUNS").to_numpy()
    return sc[m].reset_index(drop=True)


def _base(v: pd.DataFrame, day: np.ndarray | None = None) -> pd.DataFrame:
    out = pd.DataFrame({
        "loc": v["loc"].to_numpy(), "FOLDER": v["FOLDER"].to_numpy(), "FOLDERNAME": v["FOLDERNAME"].to_numpy(),
        "_order": v["_order"].to_numpy(), "FORMINST": 1, "RECPOS": 0,
        "_day": v["_day"].to_numpy() if day is None else day,
    })
    return out


def _logbase(loc: np.ndarray, day: np.ndarray, folder: str) -> pd.DataFrame:
    """Log-form records: folder = the log folder, RECPOS = line number per subject (by date)."""
    df = pd.DataFrame({"loc": loc, "FOLDER": folder, "FOLDERNAME": design.LOG_FOLDERS[folder], "_order": 5000,
                       "FORMINST": 1, "_day": day})
    return df


def _number_lines(df: pd.DataFrame, extra_sort: list[str] | None = None) -> pd.DataFrame:
    df = df.sort_values(["loc", "_day"] + (extra_sort or []), kind="stable").reset_index(drop=True)
    df["RECPOS"] = df.groupby("loc").cumcount().to_numpy() + 1
    return df


def _yn(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, "Y", "N").astype(object)


def _at(ctx: Context, v: pd.DataFrame, name: str) -> np.ndarray:
    return ctx.s[name].to_numpy()[v["loc"].to_numpy()]


# --------------------------------------------------------------------------- disease model
def remaining_fraction(ctx: Context, loc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Fraction of the baseline tumour burden left at study day ``t`` (1 before infusion)."""
    fl = ctx.s["floor_f"].to_numpy()[loc]
    k = ctx.s["k_resp"].to_numpy()[loc]
    tt = np.clip(np.nan_to_num(t, nan=-1.0), 0, None)
    f = fl + (1 - fl) * np.exp(-k * tt)
    return np.where(np.nan_to_num(t, nan=-1.0) <= 0, 1.0, f)


def pd_ramp(ctx: Context, loc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """0 before the progression assessment, 1 at it (markers of earlier visits never show the relapse)."""
    pdt = ctx.s["pd_t"].to_numpy()[loc]
    return np.where(np.isfinite(pdt) & (t >= pdt), 1.0, 0.0)


def imwg_response(ctx: Context, loc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Investigator IMWG response at study day ``t``, consistent with the simulated markers."""
    s = ctx.s
    f = remaining_fraction(ctx, loc, t)
    best = s["best"].to_numpy()[loc]
    creff = s["t_creff"].to_numpy()[loc]
    ifeneg = t >= s["t_ifeneg"].to_numpy()[loc]
    pdt = s["pd_t"].to_numpy()[loc]
    return np.select(
        [t >= pdt, (t >= creff) & (best == "SCR"), (t >= creff) & (best == "CR"), (f <= 0.10) | ifeneg, f <= 0.5,
         f <= 0.75],
        ["PD", "SCR", "CR", "VGPR", "PR", "MR"], "SD").astype(object)


# --------------------------------------------------------------------------- forms
def form_enrol(ctx: Context) -> pd.DataFrame:
    """Form ``enrol``: Enrolment and informed consent (fields in docs/RAW.md)."""
    v = ctx.sched[ctx.sched["FOLDER"].eq("SCR").to_numpy()].reset_index(drop=True)
    df = _base(v, _at(ctx, v, "consent"))
    df["RFICDAT"] = fmt_date(_at(ctx, v, "consent"))
    df["PROTVER"] = np.where(_at(ctx, v, "consent") < np.datetime64("2022-09-01", "D").astype("int64"), "1.0", "2.0")
    df["ELIGYN"] = "Y"
    df["ENRLDAT"] = fmt_date(_at(ctx, v, "enrl"))
    df["COHORT"] = _at(ctx, v, "cohort")
    df["DOSELVL"] = "DL" + pd.Series(_at(ctx, v, "level")).astype(str).to_numpy()
    return df


def form_dm(ctx: Context) -> pd.DataFrame:
    """Form ``dm``: Demography (fields in docs/RAW.md)."""
    v = ctx.sched[ctx.sched["FOLDER"].eq("SCR").to_numpy()].reset_index(drop=True)
    df = _base(v)
    birth = _at(ctx, v, "birth")
    consent = _at(ctx, v, "consent")
    df["BRTHDAT"] = partial_date(birth, ctx.rng, 0.05, 0.0)
    b = pd.DatetimeIndex(birth.astype("int64").astype("datetime64[D]"))
    c = pd.DatetimeIndex(consent.astype("int64").astype("datetime64[D]"))
    age = c.year - b.year - ((c.month < b.month) | ((c.month == b.month) & (c.day < b.day))).astype(int)
    df["AGE"] = np.asarray(age).astype(str)
    df["AGEU"] = "YEARS"
    df["SEX"] = _at(ctx, v, "sex")
    df["ETHNIC"] = np.where(ctx.rng.random(len(v)) < 0.97, "1", "9")
    race = _at(ctx, v, "race")
    df["RACE"] = race
    df["RACEOTH"] = np.where(race == "99", pick(ctx.rng, ["Mixed Han/Uyghur", "Not stated (other)"], len(v)), None)
    return df


def form_mmhist(ctx: Context) -> pd.DataFrame:
    """Form ``mmhist``: Multiple myeloma history (fields in docs/RAW.md)."""
    v = ctx.sched[ctx.sched["FOLDER"].eq("SCR").to_numpy()].reset_index(drop=True)
    df = _base(v)
    n = len(v)
    df["MMDIAGDAT"] = partial_date(_at(ctx, v, "diag"), ctx.rng, 0.15, 0.03)
    df["MMTYPE"] = _at(ctx, v, "mmtype")
    df["MMLC"] = _at(ctx, v, "mmlc")
    df["ISS"] = _at(ctx, v, "iss")
    df["RISS"] = _at(ctx, v, "riss")
    df["HRCYTO"] = _at(ctx, v, "hrcyto")
    for col, name in (("del17p", "DEL17P"), ("t414", "T414"), ("t1416", "T1416"), ("gain1q", "GAIN1Q")):
        df[name] = _at(ctx, v, col)
    df["PRLINES"] = _at(ctx, v, "prlines").astype(str)
    df["PIREF"] = _at(ctx, v, "piref")
    df["IMIDREF"] = _at(ctx, v, "imidref")
    df["CD38REF"] = _at(ctx, v, "cd38ref")
    asct = _at(ctx, v, "prasct").astype(bool)
    df["PRASCT"] = _yn(asct)
    diag = _at(ctx, v, "diag")
    df["PRASCTDAT"] = np.where(asct, partial_date(diag + ctx.rng.integers(150, 300, n), ctx.rng, 0.2, 0.0), None)
    emd = _at(ctx, v, "emd").astype(bool)
    df["EMD"] = _yn(emd)
    df["EMDLOC"] = np.where(emd, pick(ctx.rng, ["Paraspinal soft tissue mass T8-T10", "Left chest wall", "Liver",
                                                "Subcutaneous nodule, right thigh", "Pleura"], n), None)
    return df


REGIMENS = (
    "Bortezomib + lenalidomide + dexamethasone (VRd)", "Bortezomib + cyclophosphamide + dexamethasone (VCd)",
    "Bortezomib + thalidomide + dexamethasone", "Lenalidomide maintenance", "Daratumumab + bortezomib + dexamethasone",
    "Pomalidomide + dexamethasone", "Ixazomib + lenalidomide + dexamethasone", "Carfilzomib + dexamethasone",
    "Daratumumab + pomalidomide + dexamethasone", "DECP (dexamethasone, etoposide, cyclophosphamide, cisplatin)",
)


def form_priortx(ctx: Context) -> pd.DataFrame:
    """Form ``priortx``: Prior anti-myeloma therapy (fields in docs/RAW.md)."""
    s = ctx.s
    loc = np.repeat(np.arange(len(s)), s["prlines"].to_numpy())
    line = pd.Series(loc).groupby(loc).cumcount().to_numpy() + 1
    nl = s["prlines"].to_numpy()[loc]
    diag = s["diag"].to_numpy()[loc]
    span = s["consent"].to_numpy()[loc] - 20 - diag
    st = diag + 15 + span * (line - 1) / nl
    en = diag + span * line / nl
    scr = s["scr"].to_numpy()[loc]
    df = _logbase(loc, scr, "PTXLOG")
    df["LINENUM"] = line.astype(str)
    df["CMTRT"] = np.asarray(REGIMENS, dtype=object)[np.minimum(line - 1 + ctx.rng.integers(0, 2, len(loc)), len(REGIMENS) - 1)]
    df["CMSTDAT"] = partial_date(st, ctx.rng, 0.12, 0.02)
    df["CMENDAT"] = partial_date(en, ctx.rng, 0.12, 0.02)
    df["BESTRESP"] = pick(ctx.rng, ["VGPR", "PR", "PR", "MR", "SD", "PD", "CR", "UNK"], len(loc))
    df["REFRACT"] = _yn((line == nl) | (ctx.rng.random(len(loc)) < 0.4))
    df["RECPOS"] = line
    return df


MH_TERMS = ("Hypertension", "Type 2 diabetes mellitus", "Chronic hepatitis B (inactive carrier)", "Osteoporosis",
            "Peripheral neuropathy", "Hyperlipidaemia", "Renal insufficiency", "Vertebral compression fracture",
            "Herpes zoster", "Gastritis")


def form_mh(ctx: Context) -> pd.DataFrame:
    """Form ``mh``: Medical history (fields in docs/RAW.md)."""
    s = ctx.s
    k = np.minimum(ctx.rng.poisson(1.6, len(s)), 5)
    loc = np.repeat(np.arange(len(s)), k)
    df = _logbase(loc, s["scr"].to_numpy()[loc], "MHLOG")
    n = len(loc)
    df["MHTERM"] = pick(ctx.rng, MH_TERMS, n)
    df["MHSTDAT"] = partial_date(s["consent"].to_numpy()[loc] - ctx.rng.integers(60, 4000, n), ctx.rng, 0.3, 0.15)
    df["MHONGO"] = _yn(ctx.rng.random(n) < 0.7)
    df = df.sort_values(["loc"], kind="stable").reset_index(drop=True)
    df["RECPOS"] = df.groupby("loc").cumcount().to_numpy() + 1
    return df


def form_visit(ctx: Context) -> pd.DataFrame:
    """Form ``visit``: Visit date (fields in docs/RAW.md)."""
    v = ctx.sched
    df = _base(v)
    occ = v["occur"].to_numpy()
    df["VISOCCUR"] = _yn(occ)
    df["VISDAT"] = np.where(occ, fmt_date(v["_day"].to_numpy()), None)
    df["VISREAS"] = np.where(occ, None, pick(ctx.rng, ["Subject unable to travel (COVID-19 restrictions)",
                                                       "Subject hospitalised at another hospital",
                                                       "Subject declined visit"], len(v)))
    return df


def form_ecog(ctx: Context) -> pd.DataFrame:
    """Form ``ecog``: ECOG performance status (fields in docs/RAW.md)."""
    v = _visits(ctx, "ecog")
    df = _base(v)
    e0 = _at(ctx, v, "ecog0")
    t = v["t"].to_numpy()
    drift = np.where(t > 0, ctx.rng.choice([-1, 0, 0, 0, 1], len(v)), 0)
    df["ECOGDAT"] = fmt_date(v["_day"].to_numpy())
    df["ECOG"] = np.clip(e0 + drift + (t >= _at(ctx, v, "pd_t")), 0, 4).astype(str)
    return df


def crs_window(ctx: Context, loc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """True while the subject has CRS on study day ``t``."""
    on = ctx.s["crs_on"].to_numpy()[loc]
    dur = ctx.s["crs_dur"].to_numpy()[loc]
    return (ctx.s["crs"].to_numpy()[loc] > 0) & (t >= on) & (t <= on + dur)


def form_vs(ctx: Context) -> pd.DataFrame:
    """Form ``vs``: Vital signs (wide: one column per measurement) (fields in docs/RAW.md)."""
    v = _visits(ctx, "vs", unscheduled=True)
    n = len(v)
    loc = v["loc"].to_numpy()
    t = v["t"].to_numpy()
    r = ctx.rng
    df = _base(v)
    df["VSDAT"] = fmt_date(v["_day"].to_numpy())
    # at the LD visit the vitals are taken before the first lymphodepletion dose (the safety baseline)
    df["VSTIM"] = fmt_time(np.where(v["FOLDER"].eq("LD").to_numpy(), r.integers(7 * 60, 8 * 60 + 45, n),
                                    r.integers(7 * 60, 11 * 60, n)))
    incrs = crs_window(ctx, loc, np.nan_to_num(t, nan=-99))
    grade = ctx.s["crs"].to_numpy()[loc]
    temp = r.normal(36.6, 0.25, n) + np.where(incrs, r.uniform(1.6, 2.8, n), 0)
    df["TEMP"] = fmt_num(temp, 1)
    hypo = incrs & (grade >= 2) & (r.random(n) < 0.5)
    sbp = np.where(hypo, r.normal(86, 5, n), r.normal(122, 12, n))
    df["SYSBP"] = fmt_num(sbp, 0)
    df["DIABP"] = fmt_num(sbp * r.uniform(0.58, 0.7, n), 0)
    df["PULSE"] = fmt_num(r.normal(78, 9, n) + np.where(incrs, 25, 0), 0)
    df["RESP"] = fmt_num(r.normal(17, 2, n) + np.where(incrs, 3, 0), 0)
    df["SPO2"] = fmt_num(np.clip(r.normal(97.5, 1.0, n) - np.where(incrs & (grade >= 2), 4, 0), 85, 100), 0)
    w = _at(ctx, v, "weight") * np.where(np.nan_to_num(t, nan=-99) > 60, r.normal(0.96, 0.02, n), r.normal(1, 0.01, n))
    df["WEIGHT"] = fmt_num(w, 1)
    df["HEIGHT"] = np.where(v["FOLDER"].eq("SCR").to_numpy(), fmt_num(_at(ctx, v, "height"), 1), None)
    return df


PE_ABN = ("Bone pain, lumbar spine", "Pallor", "Hepatomegaly (2 cm below costal margin)", "Peripheral oedema, both ankles",
          "Palpable soft-tissue mass, left chest wall", "Reduced breath sounds, right base")


def form_pe(ctx: Context) -> pd.DataFrame:
    """Form ``pe``: Physical examination (fields in docs/RAW.md)."""
    v = _visits(ctx, "pe")
    n = len(v)
    df = _base(v)
    done = ctx.rng.random(n) < 0.97
    abn = ctx.rng.random(n) < 0.2
    df["PEPERF"] = _yn(done)
    df["PEDAT"] = np.where(done, fmt_date(v["_day"].to_numpy()), None)
    df["PERES"] = np.where(done, np.where(abn, "A", "N"), None)
    df["PEABN"] = np.where(done & abn, pick(ctx.rng, PE_ABN, n), None)
    return df


def form_aph(ctx: Context) -> pd.DataFrame:
    """Form ``aph``: Leukapheresis (fields in docs/RAW.md)."""
    v = ctx.sched[ctx.sched["FOLDER"].eq("APH").to_numpy()].reset_index(drop=True)
    n = len(v)
    df = _base(v)
    st = _at(ctx, v, "aph_min")
    df["PRSTDAT"] = fmt_date(v["_day"].to_numpy())
    df["PRSTTIM"] = fmt_time(st)
    df["PRENTIM"] = fmt_time(st + ctx.rng.integers(150, 300, n))
    df["PRVOL"] = fmt_num(ctx.rng.uniform(8, 14, n), 1)
    man = _at(ctx, v, "manuf")
    df["MANUF"] = man
    df["MANUFRSN"] = np.where(man == "FAIL", pick(ctx.rng, ["Insufficient T-cell expansion",
                                                           "Product failed release testing (viability)"], n), None)
    return df


BRIDGE = (("Dexamethasone", 20.0, "mg", "PO"), ("Cyclophosphamide", 300.0, "mg/m2", "IV"),
          ("Bortezomib", 1.3, "mg/m2", "SC"), ("Pomalidomide", 4.0, "mg", "PO"), ("Selinexor", 80.0, "mg", "PO"))


def form_bridge(ctx: Context) -> pd.DataFrame:
    """Form ``bridge``: Bridging therapy (fields in docs/RAW.md)."""
    s = ctx.s
    gets = s["bridging"].to_numpy() & np.isfinite(s["inf"].to_numpy())
    k = np.where(gets, ctx.rng.integers(1, 3, len(s)), 0)
    loc = np.repeat(np.arange(len(s)), k)
    line = pd.Series(loc).groupby(loc).cumcount().to_numpy()
    first = ctx.rng.integers(0, len(BRIDGE), len(s))[loc]
    which = np.where(line == 0, 0, 1 + (first % (len(BRIDGE) - 1)))
    tbl = np.asarray(BRIDGE, dtype=object)
    aph = s["aph"].to_numpy()[loc]
    inf = s["inf"].to_numpy()[loc]
    st = aph + ctx.rng.integers(2, 6, len(loc))
    en = np.minimum(st + ctx.rng.integers(3, 10, len(loc)), inf - 8)
    df = _logbase(loc, st, "BRLOG")
    df["CMTRT"] = tbl[which, 0]
    df["CMDOSE"] = fmt_num(tbl[which, 1].astype(float), 1)
    df["CMDOSU"] = tbl[which, 2]
    df["CMROUTE"] = tbl[which, 3]
    df["CMSTDAT"] = fmt_date(st)
    df["CMENDAT"] = fmt_date(en)
    return _number_lines(df)


def form_ld(ctx: Context) -> pd.DataFrame:
    """Form ``ld``: Lymphodepleting chemotherapy (fields in docs/RAW.md)."""
    s = ctx.s
    loc0 = np.flatnonzero(np.isfinite(s["inf"].to_numpy()))
    parts = []
    for day in (-5, -4, -3):
        for drug, dose, rank in (("FLU", 30.0, 0), ("CY", 300.0, 1)):
            parts.append(pd.DataFrame({"loc": loc0, "LDDAY": day, "EXTRT": drug, "_dose": dose, "_rank": rank}))
    df0 = pd.concat(parts, ignore_index=True)
    loc = df0["loc"].to_numpy()
    n = len(df0)
    day = s["inf"].to_numpy()[loc] + df0["LDDAY"].to_numpy()
    df = pd.DataFrame({"loc": loc, "FOLDER": "LD", "FOLDERNAME": design.VISIT_BY_FOLDER["LD"].name, "_order": 30,
                       "FORMINST": 1, "_day": day})
    bsa = s["bsa"].to_numpy()[loc]
    # renal dose reduction of fludarabine for some subjects (creatinine clearance 30-70 mL/min)
    reduced = s["creat_red"].to_numpy()[loc] & (df0["EXTRT"].to_numpy() == "FLU")
    dose = np.where(reduced, 24.0, df0["_dose"].to_numpy())
    df["LDDAY"] = df0["LDDAY"].astype(str).to_numpy()
    df["EXTRT"] = df0["EXTRT"].to_numpy()
    df["EXSTDAT"] = fmt_date(day)
    df["EXSTTIM"] = fmt_time(np.where(df0["_rank"].to_numpy() == 0, 540, 600) + ctx.rng.integers(0, 40, n))
    df["BSA"] = fmt_num(bsa, 2)
    df["EXDOSE"] = fmt_num(dose, 0)
    df["EXDOSU"] = "mg/m2"
    df["EXDOSTOT"] = fmt_num(dose * bsa, 1)
    df["EXADJ"] = np.where(reduced, "Fludarabine reduced 20% for creatinine clearance <70 mL/min", None)
    df = df.assign(_rank=df0["_rank"].to_numpy(), _lday=df0["LDDAY"].to_numpy())
    df = df.sort_values(["loc", "_lday", "_rank"], kind="stable").reset_index(drop=True)
    df["RECPOS"] = df.groupby("loc").cumcount().to_numpy() + 1
    return df.drop(columns=["_rank", "_lday"])


def form_cart(ctx: Context) -> pd.DataFrame:
    """Form ``cart``: CAR-T cell infusion (fields in docs/RAW.md)."""
    s = ctx.s
    # infused subjects: Day 0 folder; never-infused subjects: the record is in the APH folder
    v_inf = ctx.sched[ctx.sched["FOLDER"].eq("D0").to_numpy()]
    ni = np.flatnonzero(~s["infused"].to_numpy())
    v_ni = ctx.sched[ctx.sched["FOLDER"].eq("APH").to_numpy() & np.isin(ctx.sched["loc"].to_numpy(), ni)]
    v = pd.concat([v_inf, v_ni], ignore_index=True)
    n = len(v)
    df = _base(v)
    infused = _at(ctx, v, "infused").astype(bool)
    st = _at(ctx, v, "inf_min")
    rsn = _at(ctx, v, "ni_reason")
    df["EXYN"] = _yn(infused)
    df["EXREASND"] = np.where(infused, None, np.select(
        [rsn == "FAIL", rsn == "PD", rsn == "DEATH"],
        ["Manufacturing failure", "Rapid disease progression before infusion", "Subject died before infusion"], "Other"))
    df["DOSELVL"] = "DL" + pd.Series(_at(ctx, v, "level")).astype(str).to_numpy()
    df["EXSTDAT"] = np.where(infused, fmt_date(_at(ctx, v, "inf")), None)
    df["EXSTTIM"] = np.where(infused, fmt_time(st), None)
    df["EXENTIM"] = np.where(infused, fmt_time(st + ctx.rng.integers(8, 25, n)), None)
    df["CELLSKG"] = fmt_num(_at(ctx, v, "cellskg"), 2)
    df["TOTCART"] = fmt_num(_at(ctx, v, "totcart"), 1)
    df["WEIGHT"] = np.where(infused, fmt_num(_at(ctx, v, "weight"), 1), None)
    df["BAGVOL"] = fmt_num(_at(ctx, v, "bagvol"), 0)
    yy = pd.DatetimeIndex(np.nan_to_num(_at(ctx, v, "aph")).astype("int64").astype("datetime64[D]")).year % 100
    df["EXLOT"] = np.where(infused, "BC" + pd.Series(yy).astype(str).str.zfill(2).to_numpy()
                           + pd.Series(_at(ctx, v, "sid") + 101).astype(str).str.zfill(5).to_numpy(), None)
    return df


# --------------------------------------------------------------------------- adverse events
SOC_BLOOD = "Blood and lymphatic system disorders"
SOC_INF = "Infections and infestations"
SOC_META = "Metabolism and nutrition disorders"
SOC_GEN = "General disorders and administration site conditions"
SOC_INV = "Investigations"
SOC_GI = "Gastrointestinal disorders"

class AeTerm(NamedTuple):
    """One non-syndrome AE the generator can draw: coding, verbatims, incidence, grade, timing, causality."""

    pt: str
    soc: str
    llt: str
    verbatims: tuple[str, ...]
    incidence: float
    grade_p: tuple[float, float, float, float]
    onset: tuple[int, int]
    duration: tuple[int, int]
    rel_cart: str
    rel_ld: str


#: Per infused subject; onset in days after infusion, duration in days, relationship codes 1..5.
AE_TERMS: tuple[AeTerm, ...] = (
    AeTerm("Fatigue", SOC_GEN, "Fatigue",
           ("Fatigue", "tiredness", "FATIGUE"),
           0.3, (0.6, 0.4, 0, 0), (1, 30), (5, 40), "3", "3"),
    AeTerm("Hypokalaemia", SOC_META, "Hypokalaemia",
           ("Hypokalemia", "Low potassium", "hypokalaemia"),
           0.25, (0.5, 0.3, 0.2, 0), (2, 20), (3, 15), "3", "2"),
    AeTerm("Hypoalbuminaemia", SOC_META, "Hypoalbuminaemia",
           ("Hypoalbuminemia", "Low albumin"),
           0.2, (0.5, 0.5, 0, 0), (5, 25), (10, 40), "3", "2"),
    AeTerm("Alanine aminotransferase increased", SOC_INV, "ALT increased",
           ("ALT increased", "Elevated ALT", "Raised transaminases"),
           0.15, (0.6, 0.25, 0.15, 0), (3, 20), (5, 25), "3", "2"),
    AeTerm("Hypogammaglobulinaemia", "Immune system disorders", "Hypogammaglobulinaemia",
           ("Hypogammaglobulinemia", "Low IgG"),
           0.3, (0.2, 0.8, 0, 0), (20, 120), (60, 400), "4", "1"),
    AeTerm("Upper respiratory tract infection", SOC_INF, "Upper respiratory tract infection",
           ("URTI", "Upper respiratory infection", "Common cold"),
           0.15, (0.5, 0.5, 0, 0), (20, 365), (5, 14), "2", "1"),
    AeTerm("Pneumonia", SOC_INF, "Pneumonia",
           ("Pneumonia", "Lung infection", "Pulmonary infection"),
           0.1, (0, 0.3, 0.7, 0), (15, 300), (7, 21), "3", "2"),
    AeTerm("COVID-19", SOC_INF, "COVID-19",
           ("COVID-19", "SARS-CoV-2 infection", "Covid 19 infection"),
           0.12, (0.5, 0.3, 0.2, 0), (30, 500), (7, 20), "2", "1"),
    AeTerm("Herpes zoster", SOC_INF, "Herpes zoster",
           ("Herpes zoster", "Shingles"),
           0.04, (0, 1, 0, 0), (60, 400), (10, 30), "2", "1"),
    AeTerm("Nausea", SOC_GI, "Nausea",
           ("Nausea", "nausea"),
           0.15, (0.8, 0.2, 0, 0), (-5, 5), (1, 5), "2", "4"),
    AeTerm("Diarrhoea", SOC_GI, "Diarrhoea",
           ("Diarrhea", "Loose stools"),
           0.1, (0.8, 0.2, 0, 0), (0, 20), (1, 5), "2", "2"),
    AeTerm("Decreased appetite", SOC_META, "Anorexia",
           ("Poor appetite", "Anorexia"),
           0.15, (0.7, 0.3, 0, 0), (0, 20), (3, 20), "3", "3"),
    AeTerm("Headache", "Nervous system disorders", "Headache",
           ("Headache",),
           0.1, (0.9, 0.1, 0, 0), (0, 14), (1, 4), "3", "1"),
    AeTerm("Cough", "Respiratory, thoracic and mediastinal disorders", "Cough",
           ("Cough", "Dry cough"),
           0.1, (0.8, 0.2, 0, 0), (5, 200), (5, 20), "1", "1"),
    AeTerm("Sinus tachycardia", "Cardiac disorders", "Sinus tachycardia",
           ("Sinus tachycardia", "Tachycardia"),
           0.1, (0.8, 0.2, 0, 0), (2, 10), (1, 5), "3", "1"),
    AeTerm("Insomnia", "Psychiatric disorders", "Insomnia",
           ("Insomnia", "Difficulty sleeping"),
           0.08, (0.9, 0.1, 0, 0), (0, 60), (5, 30), "1", "1"),
    AeTerm("Fibrinogen decreased", SOC_INV, "Fibrinogen decreased",
           ("Low fibrinogen", "Hypofibrinogenemia"),
           0.1, (0.5, 0.3, 0.2, 0), (5, 15), (3, 10), "3", "1"),
    AeTerm("Rash", "Skin and subcutaneous tissue disorders", "Rash",
           ("Rash", "Skin rash"),
           0.05, (0.8, 0.2, 0, 0), (0, 30), (3, 14), "2", "2"),
)


def asym_bump(t: np.ndarray, centre: float, left: float, right: np.ndarray) -> np.ndarray:
    """0..1 bump peaking at ``centre`` (day 7 after infusion for lymphodepletion cytopenias)."""
    tt = np.nan_to_num(np.asarray(t, dtype=float), nan=-1e6)
    sig = np.where(tt < centre, left, right)
    b = np.exp(-((tt - centre) ** 2) / (2 * sig**2))
    return np.where(tt < -4, 0.0, b)


def _cyto_events(ctx: Context) -> pd.DataFrame:
    """Cytopenia AEs consistent with the simulated blood counts (CTCAE v5.0 thresholds)."""
    s = ctx.s
    inf_ok = np.isfinite(s["inf"].to_numpy())
    sr = s["cyto_sr"].to_numpy()
    rows = []
    specs = (
        # PT, LLT, verbatims, baseline, nadir factor, right width scale, thresholds for grade 1..4 (value below)
        ("Neutropenia", "Neutropenia", ("Neutropenia", "Low neutrophil count", "Neutrophil count decreased"),
         s["anc0"].to_numpy(), s["anc_nadir"].to_numpy(), 1.0, (1.8, 1.5, 1.0, 0.5)),
        ("Thrombocytopenia", "Thrombocytopenia", ("Thrombocytopenia", "Low platelets", "Platelet count decreased"),
         s["plt0"].to_numpy(), s["plt_nadir"].to_numpy(), 1.2, (125.0, 75.0, 50.0, 25.0)),
        ("Lymphopenia", "Lymphopenia", ("Lymphopenia", "Lymphocyte count decreased"),
         s["alc0"].to_numpy(), np.full(len(s), 0.05), 0.8, (1.1, 0.8, 0.5, 0.2)),
        ("Anaemia", "Anaemia", ("Anemia", "Anaemia", "Low hemoglobin"),
         s["hgb0"].to_numpy(), np.full(len(s), 0.82), 1.5, (115.0, 100.0, 80.0, 0.0)),
    )
    for pt, llt, verb, base, nad, scale, thr in specs:
        nadir = base * nad
        grade = (nadir < thr[0]).astype(int) + (nadir < thr[1]) + (nadir < thr[2]) + (nadir < thr[3])
        bgrade = (base < thr[0]).astype(int) + (base < thr[1]) + (base < thr[2]) + (base < thr[3])
        has = inf_ok & (grade > bgrade) & (grade >= 1)
        loc = np.flatnonzero(has)
        # crossing of the grade-1 threshold: value = base * nad ** bump -> bump* = ln(thr/base) / ln(nad)
        with np.errstate(divide="ignore", invalid="ignore"):
            bstar = np.clip(np.log(np.minimum(thr[0], base[loc] * 0.999) / base[loc]) / np.log(nad[loc]), 1e-6, 0.999)
        half = np.sqrt(-2 * np.log(bstar))
        on = np.maximum(7 - 4 * half, -2).round()
        off = (7 + sr[loc] * scale * half).round()
        rows.append(pd.DataFrame({"loc": loc, "on": on, "off": off, "pt": pt, "soc": SOC_BLOOD, "llt": llt,
                                  "verb": pick(ctx.rng, verb, len(loc)), "grade": grade[loc], "scale": "CTCAE",
                                  "relcar": "3", "relld": "4", "kind": pt}))
    return pd.concat(rows, ignore_index=True)


def build_ae_table(ctx: Context) -> pd.DataFrame:
    """All AEs of the chunk (one row per event) with study-day onset/offset; AESPID per subject."""
    s = ctx.s
    r = ctx.rng
    n = len(s)
    infused = np.isfinite(s["inf"].to_numpy())
    parts = [_cyto_events(ctx)]
    for pt, soc, llt, verb, p, gp, on_rng, dur_rng, relcar, relld in AE_TERMS:
        loc = np.flatnonzero(infused & (r.random(n) < p))
        k = len(loc)
        on = r.integers(on_rng[0], on_rng[1] + 1, k).astype(float)
        grade = r.choice([1, 2, 3, 4], k, p=np.asarray(gp) / sum(gp))
        parts.append(pd.DataFrame({"loc": loc, "on": on, "off": on + r.integers(dur_rng[0], dur_rng[1] + 1, k),
                                   "pt": pt, "soc": soc, "llt": llt, "verb": pick(r, verb, k), "grade": grade,
                                   "scale": "CTCAE", "relcar": relcar, "relld": relld, "kind": "OTHER"}))
    crs = s["crs"].to_numpy()
    loc = np.flatnonzero(crs > 0)
    parts.append(pd.DataFrame({"loc": loc, "on": s["crs_on"].to_numpy()[loc],
                               "off": (s["crs_on"] + s["crs_dur"]).to_numpy()[loc], "pt": "Cytokine release syndrome",
                               "soc": "Immune system disorders", "llt": "Cytokine release syndrome",
                               "verb": pick(r, ["CRS", "Cytokine release syndrome", "cytokine release syndrome"], len(loc)),
                               "grade": crs[loc], "scale": "ASTCT", "relcar": "5", "relld": "1", "kind": "CRS"}))
    ic = s["icans"].to_numpy()
    loc = np.flatnonzero(ic > 0)
    parts.append(pd.DataFrame({"loc": loc, "on": s["icans_on"].to_numpy()[loc],
                               "off": (s["icans_on"] + s["icans_dur"]).to_numpy()[loc],
                               "pt": "Immune effector cell-associated neurotoxicity syndrome", "soc": "Nervous system disorders",
                               "llt": "Immune effector cell-associated neurotoxicity syndrome",
                               "verb": pick(r, ["ICANS", "Neurotoxicity (ICANS)"], len(loc)), "grade": ic[loc],
                               "scale": "ASTCT", "relcar": "5", "relld": "1", "kind": "ICANS"}))
    # fatal infection for the early deaths
    early = np.flatnonzero(s["death_cause"].to_numpy() == "AE")
    dt = s["death_t"].to_numpy()[early]
    parts.append(pd.DataFrame({"loc": early, "on": dt - r.integers(4, 15, len(early)), "off": dt,
                               "pt": "Pneumonia", "soc": SOC_INF, "llt": "Pneumonia",
                               "verb": pick(r, ["Severe pneumonia", "Pneumonia, fatal"], len(early)), "grade": 5,
                               "scale": "CTCAE", "relcar": "3", "relld": "2", "kind": "FATAL"}))
    ae = pd.concat(parts, ignore_index=True)
    inf = s["inf"].to_numpy()[ae["loc"]]
    end_obs = np.fmin(s["obs_end"].to_numpy()[ae["loc"]], s["cut"].to_numpy()[ae["loc"]])
    ae["st"] = inf + ae["on"].to_numpy()
    ae["en"] = inf + ae["off"].to_numpy()
    serious = ((ae["grade"] >= 3) & ae["pt"].isin(["Pneumonia", "Cytokine release syndrome", "COVID-19"])) | (ae["grade"] >= 4) & ~ae["soc"].eq(SOC_BLOOD)
    serious |= ae["kind"].eq("FATAL")
    ae["serious"] = serious.to_numpy()
    # reporting: all AEs to Day 90, afterwards serious or related events only; nothing after the observation end
    related = ae["relcar"].astype(int) >= 3
    keep = (ae["st"].to_numpy() <= end_obs) & ((ae["on"].to_numpy() <= 90) | serious.to_numpy() | related.to_numpy())
    ae = ae[keep].reset_index(drop=True)
    end_obs = np.fmin(s["obs_end"].to_numpy()[ae["loc"]], s["cut"].to_numpy()[ae["loc"]])
    ae["ongoing"] = (ae["en"].to_numpy() > end_obs) & ~ae["kind"].eq("FATAL").to_numpy()
    dlt = s["dlt"].to_numpy()[ae["loc"]]
    ae["dlt"] = dlt & (((ae["kind"] == "CRS") & (ae["grade"] >= 3)) |
                       ((ae["kind"] == "Thrombocytopenia") & (ae["grade"] >= 4) & (s["crs"].to_numpy()[ae["loc"]] < 3)))
    # the DLT window runs from the infusion to Day 28: an adjudicated DLT starts on or after Day 1
    early_dlt = ae["dlt"].to_numpy() & (ae["on"].to_numpy() < 1)
    ae.loc[early_dlt, "on"] = 1.0
    ae["st"] = s["inf"].to_numpy()[ae["loc"].to_numpy()] + ae["on"].to_numpy()
    ae = ae.sort_values(["loc", "st", "pt"], kind="stable").reset_index(drop=True)
    ae["aespid"] = ae.groupby("loc").cumcount().to_numpy() + 1
    return ae


def form_ae(ctx: Context, ae: pd.DataFrame) -> pd.DataFrame:
    """Form ``ae``: Adverse events (fields in docs/RAW.md)."""
    r = ctx.rng
    n = len(ae)
    df = _logbase(ae["loc"].to_numpy(), ae["st"].to_numpy(), "AELOG")
    df["RECPOS"] = ae["aespid"].to_numpy()
    df["AESPID"] = ae["aespid"].astype(str).to_numpy()
    df["AETERM"] = ae["verb"].to_numpy()
    df["AELLT"] = ae["llt"].to_numpy()
    df["AEDECOD"] = ae["pt"].to_numpy()
    df["AESOC"] = ae["soc"].to_numpy()
    df["AESTDAT"] = fmt_date(ae["st"].to_numpy())
    ongoing = ae["ongoing"].to_numpy()
    df["AEENDAT"] = np.where(ongoing, None, partial_date(ae["en"].to_numpy(), r, 0.03, 0.0))
    df["AEONGO"] = _yn(ongoing)
    grade = ae["grade"].to_numpy()
    df["AETOXGR"] = grade.astype(str)
    df["AEGRSCL"] = ae["scale"].to_numpy()
    ser = ae["serious"].to_numpy()
    fatal = grade == 5
    df["AESER"] = _yn(ser)
    df["AESDTH"] = np.where(ser, _yn(fatal), None)
    df["AESLIFE"] = np.where(ser, _yn(grade == 4), None)
    df["AESHOSP"] = np.where(ser, _yn(~fatal | (r.random(n) < 0.5)), None)
    df["AESDISAB"] = np.where(ser, "N", None)
    df["AESCONG"] = np.where(ser, "N", None)
    df["AESMIE"] = np.where(ser, "N", None)
    df["AERELCAR"] = ae["relcar"].to_numpy()
    df["AERELLD"] = ae["relld"].to_numpy()
    on = ae["on"].to_numpy()
    df["AEACN"] = np.where(on < 0, "NONE", "NA")
    kind = ae["kind"].to_numpy()
    toci = ctx.s["toci"].to_numpy()[ae["loc"]]
    df["AEACNOTH"] = np.select([(kind == "CRS") & toci, kind == "CRS", (kind == "Neutropenia") & (grade >= 3)],
                               ["Tocilizumab; supportive care", "Antipyretics; supportive care", "G-CSF"], None)
    df["AEOUT"] = np.select([fatal, ongoing, r.random(n) < 0.03], ["FATAL", "NOTREC", "RECSEQ"], "REC")
    df["AEDLT"] = _yn(ae["dlt"].to_numpy())
    return df


def form_crs(ctx: Context, ae: pd.DataFrame) -> pd.DataFrame:
    """Form ``crs``: Cytokine release syndrome detail (fields in docs/RAW.md)."""
    a = ae[ae["kind"].eq("CRS").to_numpy()].reset_index(drop=True)
    r = ctx.rng
    n = len(a)
    g = a["grade"].to_numpy()
    loc = a["loc"].to_numpy()
    df = _logbase(loc, a["st"].to_numpy(), "AELOG")
    df["RECPOS"] = 1
    df["AESPID"] = a["aespid"].astype(str).to_numpy()
    df["CRSSTDAT"] = fmt_date(a["st"].to_numpy())
    df["MAXTEMP"] = fmt_num(np.where(g == 1, r.uniform(38.0, 39.2, n), r.uniform(38.6, 40.5, n)), 1)
    hypo_g2 = (g == 2) & (r.random(n) < 0.5)
    df["HYPOTEN"] = _yn((g >= 3) | hypo_g2)
    vaso_g3 = (g == 3) & (r.random(n) < 0.6)
    df["VASOPRES"] = np.select([g >= 4, vaso_g3], ["2", "1"], "0")
    df["OXYSUPP"] = np.select([g >= 4, (g == 3) & ~vaso_g3, (g == 2) & ~hypo_g2, g == 3],
                              ["POSPRES", "HIGHFLOW", "LOWFLOW", "LOWFLOW"], "NONE")
    df["TOCI"] = _yn(ctx.s["toci"].to_numpy()[loc])
    df["STEROID"] = _yn(ctx.s["steroid"].to_numpy()[loc])
    return df


def form_icans(ctx: Context, ae: pd.DataFrame) -> pd.DataFrame:
    """Form ``icans``: ICANS detail (fields in docs/RAW.md)."""
    a = ae[ae["kind"].eq("ICANS").to_numpy()].reset_index(drop=True)
    r = ctx.rng
    n = len(a)
    g = a["grade"].to_numpy()
    df = _logbase(a["loc"].to_numpy(), a["st"].to_numpy(), "AELOG")
    df["RECPOS"] = 1
    df["AESPID"] = a["aespid"].astype(str).to_numpy()
    df["ICANSDAT"] = fmt_date(a["st"].to_numpy())
    df["ICESCORE"] = np.where(g == 1, r.integers(7, 10, n), np.where(g == 2, r.integers(3, 7, n), r.integers(0, 3, n))).astype(str)
    df["CONSC"] = np.select([g <= 1, g == 2, g == 3], ["AWAKE", "VOICE", "TOUCH"], "UNAROUS")
    df["SEIZURE"] = "N"
    df["MOTOR"] = "N"
    df["CEREDEMA"] = "N"
    return df


# --------------------------------------------------------------------------- concomitant medications
def form_cm(ctx: Context, ae: pd.DataFrame) -> pd.DataFrame:
    """Form ``cm``: Concomitant medications (fields in docs/RAW.md)."""
    s = ctx.s
    r = ctx.rng
    n = len(s)
    inf = s["inf"].to_numpy()
    infused = np.isfinite(inf)
    end_obs = np.fmin(s["obs_end"].to_numpy(), s["cut"].to_numpy())
    rows = []

    def add(loc, trt, decod, clas, indc, dose, unit, route, frq, st, en, aeno=None, unito=None, routeo=None, frqo=None):
        k = len(loc)
        rows.append(pd.DataFrame({
            "loc": loc, "CMTRT": trt if not isinstance(trt, str) else np.full(k, trt, dtype=object),
            "CMDECOD": decod, "CMCLAS": clas, "CMINDC": indc, "CMAENO": aeno, "CMDSTXT": dose, "CMDOSU": unit,
            "CMDOSUO": unito, "CMROUTE": route, "CMROUTEO": routeo, "CMFRQ": frq, "CMFRQO": frqo, "st": st, "en": en}))

    loc = np.flatnonzero(infused)
    add(loc, pick(r, ["Acyclovir", "Aciclovir tablets", "ACYCLOVIR"], len(loc)), "ACICLOVIR",
        "DIRECT ACTING ANTIVIRALS", "Antiviral prophylaxis", "400", "mg", "PO", "BID",
        inf[loc] - 5, inf[loc] + r.integers(180, 366, len(loc)))
    loc = np.flatnonzero(infused & (r.random(n) < 0.7))
    add(loc, pick(r, ["Compound sulfamethoxazole tablets", "SMZ-TMP", "Co-trimoxazole"], len(loc)),
        "SULFAMETHOXAZOLE;TRIMETHOPRIM", "COMBINATIONS OF SULFONAMIDES AND TRIMETHOPRIM",
        "Pneumocystis prophylaxis", "960", "mg", "PO", "OTHER", inf[loc] + 1, inf[loc] + r.integers(90, 200, len(loc)),
        frqo="Three times weekly")
    loc = np.flatnonzero(infused & (r.random(n) < 0.12))
    add(loc, "Entecavir", "ENTECAVIR", "NUCLEOSIDE AND NUCLEOTIDE REVERSE TRANSCRIPTASE INHIBITORS",
        "Hepatitis B prophylaxis", "0.5", "mg", "PO", "QD", s["consent"].to_numpy()[loc] - r.integers(100, 900, len(loc)),
        np.full(len(loc), np.nan))
    g = s["anc0"].to_numpy() * s["anc_nadir"].to_numpy() < 0.5
    loc = np.flatnonzero(infused & g)
    add(loc, pick(r, ["Levofloxacin", "levofloxacin tablets"], len(loc)), "LEVOFLOXACIN", "FLUOROQUINOLONES",
        "Neutropenia prophylaxis", "500", "mg", "PO", "QD", inf[loc] + 2, inf[loc] + r.integers(10, 20, len(loc)))
    loc = np.flatnonzero(infused & g & (r.random(n) < 0.6))
    st = inf[loc] + r.integers(8, 15, len(loc))
    add(loc, pick(r, ["rhG-CSF", "G-CSF", "Filgrastim"], len(loc)), "FILGRASTIM", "COLONY STIMULATING FACTORS",
        "Neutropenia", "300", "ug", "SC", "QD", st, st + r.integers(2, 7, len(loc)))
    loc = np.flatnonzero(infused)
    add(loc, "Promethazine", "PROMETHAZINE", "PHENOTHIAZINE DERIVATIVES", "Premedication before CAR-T infusion", "25",
        "mg", "IM", "ONCE", inf[loc], inf[loc])
    loc = np.flatnonzero(infused & (r.random(n) < 0.1))
    add(loc, "Chlorhexidine mouthwash", "CHLORHEXIDINE", "ANTIINFECTIVES AND ANTISEPTICS FOR LOCAL ORAL TREATMENT",
        "Oral mucositis prophylaxis", "15", "mL", "OTHER", "OTHER", inf[loc] - 5, inf[loc] + r.integers(14, 30, len(loc)),
        routeo="Oral rinse", frqo="Four times daily")
    loc = np.flatnonzero(infused & (r.random(n) < 0.25))
    st = inf[loc] + r.integers(40, 200, len(loc))
    add(loc, pick(r, ["IVIG", "Human immunoglobulin (pH4) for intravenous injection"], len(loc)),
        "IMMUNOGLOBULIN HUMAN NORMAL", "IMMUNOGLOBULINS, NORMAL HUMAN", "Hypogammaglobulinaemia", "20", "g", "IV",
        "OTHER", st, st + r.integers(0, 3, len(loc)), frqo="Once every 4 weeks")
    loc = np.flatnonzero(infused & (r.random(n) < 0.3))
    add(loc, pick(r, ["Omeprazole", "omeprazole capsule"], len(loc)), "OMEPRAZOLE", "PROTON PUMP INHIBITORS",
        "Gastric protection", "20", "mg", "PO", "QD", inf[loc] - 5, inf[loc] + r.integers(10, 60, len(loc)))
    # CRS / ICANS treatment, linked to the AE number
    crs = ae[ae["kind"].eq("CRS").to_numpy()]
    c = crs["loc"].to_numpy()
    add(c, pick(r, ["Paracetamol", "Acetaminophen"], len(c)), "PARACETAMOL", "ANILIDES", "Fever (CRS)", "500", "mg",
        "PO", "PRN", crs["st"].to_numpy(), crs["en"].to_numpy(), aeno=crs["aespid"].astype(str).to_numpy())
    tc = crs[s["toci"].to_numpy()[c]]
    add(tc["loc"].to_numpy(), pick(r, ["Tocilizumab", "TOCILIZUMAB"], len(tc)), "TOCILIZUMAB", "INTERLEUKIN INHIBITORS",
        "Cytokine release syndrome", "8", "mg/kg", "IV", "ONCE", tc["st"].to_numpy() + 1, tc["st"].to_numpy() + 1,
        aeno=tc["aespid"].astype(str).to_numpy())
    sd = crs[s["steroid"].to_numpy()[c]]
    add(sd["loc"].to_numpy(), "Dexamethasone", "DEXAMETHASONE", "GLUCOCORTICOIDS", "Cytokine release syndrome", "10", "mg",
        "IV", "Q6H", sd["st"].to_numpy() + 1, sd["st"].to_numpy() + r.integers(2, 5, len(sd)),
        aeno=sd["aespid"].astype(str).to_numpy())
    vp = crs[crs["grade"].to_numpy() >= 3]
    add(vp["loc"].to_numpy(), "Norepinephrine", "NOREPINEPHRINE", "ADRENERGIC AND DOPAMINERGIC AGENTS",
        "Hypotension (CRS)", "0.1", "OTHER", "IV", "OTHER", vp["st"].to_numpy() + 2, vp["st"].to_numpy() + 4,
        aeno=vp["aespid"].astype(str).to_numpy(), unito="ug/kg/min", frqo="Continuous infusion")
    ic = ae[ae["kind"].eq("ICANS").to_numpy()]
    add(ic["loc"].to_numpy(), "Dexamethasone", "DEXAMETHASONE", "GLUCOCORTICOIDS", "ICANS", "10", "mg", "IV", "Q6H",
        ic["st"].to_numpy(), ic["st"].to_numpy() + 2, aeno=ic["aespid"].astype(str).to_numpy())
    pn = ae[ae["pt"].eq("Pneumonia").to_numpy()]
    add(pn["loc"].to_numpy(), pick(r, ["Meropenem", "meropenem for injection"], len(pn)), "MEROPENEM", "CARBAPENEMS",
        "Pneumonia", "1", "g", "IV", "Q8H", pn["st"].to_numpy(), pn["en"].to_numpy(), aeno=pn["aespid"].astype(str).to_numpy())

    cm = pd.concat(rows, ignore_index=True)
    lo = cm["loc"].to_numpy()
    cm = cm[cm["st"].to_numpy() <= end_obs[lo]].reset_index(drop=True)
    lo = cm["loc"].to_numpy()
    ongoing = ~np.isfinite(cm["en"].to_numpy()) | (cm["en"].to_numpy() > end_obs[lo])
    df = _logbase(lo, cm["st"].to_numpy(), "CMLOG")
    for col in ("CMTRT", "CMDECOD", "CMCLAS", "CMINDC", "CMAENO", "CMDSTXT", "CMDOSU", "CMDOSUO", "CMROUTE", "CMROUTEO",
                "CMFRQ", "CMFRQO"):
        df[col] = cm[col].to_numpy()
    df["CMSTDAT"] = partial_date(cm["st"].to_numpy(), r, 0.04, 0.0)
    df["CMENDAT"] = np.where(ongoing, None, partial_date(cm["en"].to_numpy(), r, 0.04, 0.0))
    df["CMONGO"] = _yn(ongoing)
    return _number_lines(df, ["CMTRT"])


# --------------------------------------------------------------------------- laboratory
CBC_RANGES = {"WBC": (3.5, 9.5), "NEUT": (1.8, 6.3), "LYM": (1.1, 3.2), "MONO": (0.1, 0.6), "PLAT": (125.0, 350.0)}
HOSPITAL_LAB = "Changzheng Hospital Clinical Laboratory"
OUTSIDE_LAB = "Outside hospital laboratory"


def ck_conc(ctx: Context, loc: np.ndarray, t: np.ndarray) -> np.ndarray:
    """CAR transgene copies/ug gDNA at study day ``t`` (0 before infusion): expansion then biphasic decay."""
    s = ctx.s
    cmax = s["cmax"].to_numpy()[loc]
    tmax = s["tmax"].to_numpy()[loc]
    k1 = s["k1"].to_numpy()[loc]
    k2 = s["k2"].to_numpy()[loc]
    tt = np.nan_to_num(np.asarray(t, dtype=float), nan=-1.0)
    pos = np.maximum(tt, 1e-3)
    rise = cmax * np.exp(-((np.log(pos) - np.log(tmax)) ** 2) / (2 * 0.55**2))
    dt = np.maximum(tt - tmax, 0)
    decay = cmax * (0.9 * np.exp(-k1 * dt) + 0.1 * np.exp(-k2 * dt))
    return np.where(tt <= 0, 0.0, np.where(tt <= tmax, rise, decay))


def form_cbc(ctx: Context) -> pd.DataFrame:
    """Form ``cbc``: Local haematology (wide: one column group per test) (fields in docs/RAW.md)."""
    v = _visits(ctx, "cbc", unscheduled=True, pd_visit=True)
    r = ctx.rng
    n = len(v)
    loc = v["loc"].to_numpy()
    t = v["t"].to_numpy()
    s = ctx.s
    df = _base(v)
    outside = v["kind"].eq("UNS").to_numpy() & (r.random(n) < 0.5)
    df["LBDAT"] = fmt_date(v["_day"].to_numpy())
    df["LBTIM"] = fmt_time(r.integers(6 * 60 + 30, 9 * 60, n))
    df["LBNAM"] = np.where(outside, OUTSIDE_LAB, HOSPITAL_LAB)
    sr = s["cyto_sr"].to_numpy()[loc]
    b = asym_bump(t, 7.0, 4.0, sr)
    bp = asym_bump(t, 7.0, 4.0, sr * 1.2)
    noise = lambda sd: r.lognormal(0, sd, n)  # noqa: E731
    anc = s["anc0"].to_numpy()[loc] * s["anc_nadir"].to_numpy()[loc] ** b * noise(0.1)
    alc = s["alc0"].to_numpy()[loc] * 0.05 ** asym_bump(t, 7.0, 4.0, sr * 0.8) * noise(0.1) + ck_conc(ctx, loc, t) * 1.5e-5
    mono = s["mono0"].to_numpy()[loc] * 0.1 ** b * noise(0.15)
    wbc = anc + alc + mono + 0.05
    hgb = s["hgb0"].to_numpy()[loc] * (1 - 0.18 * asym_bump(t, 12.0, 6.0, sr * 1.5)) * noise(0.03)
    plt = s["plt0"].to_numpy()[loc] * s["plt_nadir"].to_numpy()[loc] ** bp * noise(0.08)
    male = s["sex"].to_numpy()[loc] == "M"
    values = {"WBC": wbc, "NEUT": anc, "LYM": alc, "MONO": mono, "HGB": hgb, "PLAT": plt}
    notdone = r.random(n) < 0.01
    for code, _label, unit, dec in design.CBC_TESTS:
        x = values[code]
        if code == "HGB":
            lo, hi = np.where(male, 130.0, 115.0), np.where(male, 175.0, 150.0)
            u = np.where(outside, "g/dL", unit)
            x = np.where(outside, x / 10, x)
            lo, hi = np.where(outside, lo / 10, lo), np.where(outside, hi / 10, hi)
            res = np.where(outside, fmt_num(x, 1), fmt_num(x, 0))
            lo_t = np.where(outside, fmt_num(lo, 1), fmt_num(lo, 0))
            hi_t = np.where(outside, fmt_num(hi, 1), fmt_num(hi, 0))
        else:
            lo_v, hi_v = CBC_RANGES[code]
            u = np.full(n, unit, dtype=object)
            res = fmt_num(x, dec)
            lo_t = np.full(n, fmt_num(np.array([lo_v]), dec)[0], dtype=object)
            hi_t = np.full(n, fmt_num(np.array([hi_v]), dec)[0], dtype=object)
        df[f"{code}_ORRES"] = np.where(notdone, None, res)
        df[f"{code}_ORRESU"] = np.where(notdone, None, u)
        df[f"{code}_ORNRLO"] = np.where(notdone, None, lo_t)
        df[f"{code}_ORNRHI"] = np.where(notdone, None, hi_t)
    return df


def form_chem(ctx: Context) -> pd.DataFrame:
    """Form ``chem``: Local chemistry and coagulation (long) (fields in docs/RAW.md)."""
    v = _visits(ctx, "chem", unscheduled=True, pd_visit=True)
    r = ctx.rng
    s = ctx.s
    loc0 = v["loc"].to_numpy()
    t0 = v["t"].to_numpy()
    incrs = crs_window(ctx, loc0, np.nan_to_num(t0, nan=-99)).astype(float)
    gr = s["crs"].to_numpy()[loc0] * incrs
    f = remaining_fraction(ctx, loc0, t0)
    outside = v["kind"].eq("UNS").to_numpy() & (r.random(len(v)) < 0.5)
    tim = fmt_time(r.integers(6 * 60 + 30, 9 * 60, len(v)))
    creat0 = np.where(s["creat_red"].to_numpy()[loc0], 110.0, 68.0)
    base = {
        "ALT": 20 * (1 + 1.2 * gr), "AST": 22 * (1 + 1.0 * gr), "TBIL": 10 * (1 + 0.3 * gr),
        "CREAT": creat0 * (1 + 0.15 * gr), "CA": 2.3 - 0.05 * gr, "ALB": s["alb0"].to_numpy()[loc0] - 3 * gr,
        "LDH": np.where(s["ldh_high"].to_numpy()[loc0], 330.0, 190.0) * (0.7 + 0.3 * f) * (1 + 0.3 * gr),
        "K": 4.0 - 0.25 * gr,
        "B2M": 1.8 + (s["b2m0"].to_numpy()[loc0] - 1.8) * f,
        "PT": 11.0 + 0.8 * gr, "APTT": 28.0 + 2.5 * gr, "FIB": 3.0 + 0.6 * gr, "DDIMER": 0.3 * (1 + 3 * gr),
    }
    sd = {"ALT": 0.35, "AST": 0.3, "TBIL": 0.3, "CREAT": 0.12, "CA": 0.03, "ALB": 0.06, "LDH": 0.15, "K": 0.06,
          "B2M": 0.1, "PT": 0.05, "APTT": 0.06, "FIB": 0.15, "DDIMER": 0.5}
    parts = []
    for code, (cat, name, unit, lo, hi, dec) in design.LOCAL_LABS.items():
        df = _base(v)
        df["_rank"] = list(design.LOCAL_LABS).index(code)
        x = base[code] * r.lognormal(0, sd[code], len(v))
        u = np.full(len(v), unit, dtype=object)
        lo_v, hi_v = np.full(len(v), lo), np.full(len(v), hi)
        if code in ("CREAT", "TBIL"):  # the outside laboratory reports in conventional units
            conv = 88.4 if code == "CREAT" else 17.1
            x, lo_v, hi_v = np.where(outside, x / conv, x), np.where(outside, lo / conv, lo_v), np.where(outside, hi / conv, hi_v)
            u = np.where(outside, "mg/dL", u)
            res = np.where(outside, fmt_num(x, 2), fmt_num(x, dec))
            lo_t = np.where(outside, fmt_num(lo_v, 2), fmt_num(lo_v, dec))
            hi_t = np.where(outside, fmt_num(hi_v, 2), fmt_num(hi_v, dec))
        elif code == "DDIMER":
            res = fmt_result(x, dec, lloq=0.1)
            lo_t, hi_t = fmt_num(lo_v, dec), fmt_num(hi_v, dec)
        else:
            res, lo_t, hi_t = fmt_num(x, dec), fmt_num(lo_v, dec), fmt_num(hi_v, dec)
        df["LBDAT"] = fmt_date(v["_day"].to_numpy())
        df["LBTIM"] = tim
        df["LBNAM"] = np.where(outside, OUTSIDE_LAB, HOSPITAL_LAB)
        df["LBCAT"] = cat
        df["LBTESTCD"] = code
        df["LBTEST"] = name
        df["LBORRES"] = res
        df["LBORRESU"] = u
        df["LBORNRLO"] = lo_t
        df["LBORNRHI"] = hi_t
        parts.append(df)
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values(["loc", "_day", "_order", "_rank"], kind="stable").reset_index(drop=True)
    out["RECPOS"] = out.groupby(["loc", "FOLDER"]).cumcount().to_numpy() + 1
    return out.drop(columns="_rank")


def _lab_rows(v: pd.DataFrame, code: str, cat: str, spec: str, meth: str | None, res: np.ndarray, unit: str | None,
              lo: str | None, hi: str | None, lloq: float | None, rank: int) -> pd.DataFrame:
    df = _base(v)
    df["_rank"] = rank
    df["LBCAT"] = cat
    df["LBSPEC"] = spec
    df["LBMETHOD"] = meth
    df["LBTESTCD"] = code
    df["LBTEST"] = dict(design.CODELISTS["LBTESTC"])[code]
    df["LBORRES"] = res
    df["LBORRESU"] = unit
    df["LBORNRLO"] = lo
    df["LBORNRHI"] = hi
    df["LBLLOQ"] = None if lloq is None else fmt_num(np.array([lloq]), 2 if lloq < 1 else 1)[0]
    return df


def form_lbcent(ctx: Context) -> pd.DataFrame:
    """Form ``lbcent``: Central laboratory transfer: cytokines and disease markers (long) (fields in docs/RAW.md)."""
    s = ctx.s
    r = ctx.rng
    parts = []
    # cytokines and inflammation markers
    v = _visits(ctx, "cyto")
    v = v[np.isfinite(v["t"].to_numpy())].reset_index(drop=True)
    loc, t, n = v["loc"].to_numpy(), v["t"].to_numpy(), len(v)
    g = s["crs"].to_numpy()[loc]
    tpk = s["crs_on"].to_numpy()[loc] + 1
    after = t > 0  # cytokines rise only after the infusion

    def peak(a: np.ndarray | float, width: float) -> np.ndarray:
        return np.exp(-((t - tpk) ** 2) / (2 * width**2)) * a * after

    fac = 10 ** (0.3 + 0.55 * g + r.normal(0, 0.15, n))
    il6 = r.lognormal(np.log(5), 0.5, n) * (1 + peak(fac, 2.5))
    ifng = r.lognormal(np.log(3), 0.5, n) * (1 + peak(fac * 0.8, 2.5))
    il10 = r.lognormal(np.log(3), 0.5, n) * (1 + peak(fac * 0.5, 2.5))
    tnfa = r.lognormal(np.log(8), 0.3, n) * (1 + peak(0.3 + 0.3 * g, 3.0))
    ferr = r.lognormal(np.log(450), 0.5, n) * (1 + peak(0.8 + 1.5 * g, 7.0))
    crp = r.lognormal(np.log(5), 0.6, n) * (1 + peak(3 + 12 * g, 3.0))
    specs = (("IL6", il6, "pg/mL", "0", "7.0", 1.5, 5000.0, "ELISA"), ("IL10", il10, "pg/mL", "0", "9.1", 1.0, 5000.0, "ELISA"),
             ("IFNG", ifng, "pg/mL", "0", "7.5", 1.0, 5000.0, "ELISA"), ("TNFA", tnfa, "pg/mL", "0", "8.1", 2.0, 5000.0, "ELISA"),
             ("FERR", ferr, "ng/mL", "23.9", "336.2", None, 2000.0, "IMMUNO"), ("CRP", crp, "mg/L", "0", "8", 0.5, None, "IMMUNO"))
    for rank, (code, x, unit, lo, hi, lloq, uloq, meth) in enumerate(specs):
        res = fmt_result(x, 1, lloq, uloq)
        parts.append(_lab_rows(v, code, "CYTO", "SERUM", meth, res, unit, lo, hi, lloq, rank))
    cyto = pd.concat(parts, ignore_index=True)
    cyto["LBREFID"] = "CY" + s["SUBJID"].to_numpy()[cyto["loc"]] + cyto["FOLDER"].to_numpy()
    cyto["LBDAT"] = fmt_date(cyto["_day"].to_numpy())
    cyto["LBTIM"] = fmt_time(np.where(cyto["FOLDER"].eq("D0").to_numpy(), s["inf_min"].to_numpy()[cyto["loc"]] - 60, 420))
    cyto["LBENDAT"] = None

    # disease markers
    v = _visits(ctx, "disease", pd_visit=True)
    v = v[~v["ne"].to_numpy()].reset_index(drop=True)
    loc, n = v["loc"].to_numpy(), len(v)
    t = np.nan_to_num(v["t"].to_numpy(), nan=-30.0)
    f = remaining_fraction(ctx, loc, t)
    ramp = pd_ramp(ctx, loc, t)
    lc = s["mmtype"].to_numpy()[loc] == "LC"
    m0 = s["m0"].to_numpy()[loc]
    u0 = s["u0"].to_numpy()[loc]
    if0 = s["iflc0"].to_numpy()[loc]
    uf = s["uflc0"].to_numpy()[loc]
    noise = r.lognormal(0, 0.05, n)
    smp = (m0 * f + ramp * np.maximum(0.6, 0.3 * m0) * ~lc) * noise
    ifeneg = (t >= s["t_ifeneg"].to_numpy()[loc]) & (ramp == 0)
    smp = np.where(ifeneg | lc, 0.0, smp)
    # urine M-protein clears faster than serum (a PR needs >= 90% reduction or < 200 mg/24 h)
    ump = np.where(u0 >= 200, u0 * f**3.5 + ramp * np.maximum(250, 0.3 * u0), u0 * f) * noise
    ump = np.where(ifeneg, 0.0, ump)
    iflc = (uf + (if0 - uf) * f + ramp * np.where(lc, np.maximum(150, 0.3 * if0), 0.3 * (if0 - uf))) * noise
    # once immunofixation is negative the involved light chain is back to normal (CR/sCR need it)
    iflc = np.where(ifeneg, uf * r.uniform(0.9, 1.3, n), iflc)
    kappa = s["mmlc"].to_numpy()[loc] == "K"
    kflc = np.where(kappa, iflc, uf * r.lognormal(0, 0.05, n))
    lflc = np.where(kappa, uf * 1.6 * r.lognormal(0, 0.05, n), iflc)
    ratio = kflc / lflc
    mt = s["mmtype"].to_numpy()[loc]
    igg = np.where(mt == "IGG", smp * 10 + 3.0, 4.5 * (0.6 + 0.4 * f)) * r.lognormal(0, 0.05, n)
    iga = np.where(mt == "IGA", smp * 10 + 0.3, 0.4 * (0.5 + 0.5 * f)) * r.lognormal(0, 0.05, n)
    iso = np.where(lc, np.where(kappa, "Free kappa light chain", "Free lambda light chain"),
                   pd.Series(mt).map({"IGG": "IgG", "IGA": "IgA", "IGD": "IgD"}).fillna("").to_numpy()
                   + np.where(kappa, " kappa", " lambda"))
    vd = v.copy()
    dparts = [
        _lab_rows(vd, "SMPROT", "DISEASE", "SERUM", "ELECTRO", fmt_result(smp, 2, 0.1), "g/dL", None, None, 0.1, 10),
        _lab_rows(vd, "UMPROT", "DISEASE", "URINE", "ELECTRO", fmt_result(ump, 0, 10), "mg/24h", None, None, 10, 11),
        _lab_rows(vd, "SIFE", "DISEASE", "SERUM", "IFE", np.where(ifeneg, "NEGATIVE", "POSITIVE"), None, None, None, None, 12),
        _lab_rows(vd, "UIFE", "DISEASE", "URINE", "IFE", np.where(ifeneg | (u0 < 30), "NEGATIVE", "POSITIVE"), None, None, None, None, 13),
        _lab_rows(vd, "KFLC", "DISEASE", "SERUM", "NEPH", fmt_num(kflc, 1), "mg/L", "3.3", "19.4", None, 15),
        _lab_rows(vd, "LFLC", "DISEASE", "SERUM", "NEPH", fmt_num(lflc, 1), "mg/L", "5.71", "26.3", None, 16),
        _lab_rows(vd, "FLCR", "DISEASE", "SERUM", "NEPH", fmt_num(ratio, 2), "ratio", "0.26", "1.65", None, 17),
        _lab_rows(vd, "IGG", "DISEASE", "SERUM", "NEPH", fmt_num(igg, 2), "g/L", "7.0", "16.0", None, 18),
        _lab_rows(vd, "IGA", "DISEASE", "SERUM", "NEPH", fmt_num(iga, 2), "g/L", "0.7", "4.0", None, 19),
    ]
    isorows = _lab_rows(vd, "IFEISO", "DISEASE", "SERUM", "IFE", iso, None, None, None, None, 14)
    dparts.append(isorows[~ifeneg].reset_index(drop=True))
    dis = pd.concat(dparts, ignore_index=True)
    dis["LBREFID"] = "MM" + s["SUBJID"].to_numpy()[dis["loc"]] + dis["FOLDER"].to_numpy()
    urine = dis["LBSPEC"].eq("URINE").to_numpy()
    dis["LBDAT"] = fmt_date(dis["_day"].to_numpy() - urine)
    dis["LBTIM"] = np.where(urine, "08:00", "07:30")
    dis["LBENDAT"] = np.where(urine, fmt_date(dis["_day"].to_numpy()), None)
    out = pd.concat([cyto, dis], ignore_index=True)
    out = out.sort_values(["loc", "_day", "_order", "_rank"], kind="stable").reset_index(drop=True)
    out["RECPOS"] = out.groupby(["loc", "FOLDER"]).cumcount().to_numpy() + 1
    return out.drop(columns="_rank")


def form_bm(ctx: Context) -> pd.DataFrame:
    """Form ``bm``: Bone marrow assessment (fields in docs/RAW.md)."""
    v = _visits(ctx, "bm")
    s = ctx.s
    r = ctx.rng
    loc, n = v["loc"].to_numpy(), len(v)
    t = np.nan_to_num(v["t"].to_numpy(), nan=-30.0)
    f = remaining_fraction(ctx, loc, t)
    crpc = (t >= s["t_ifeneg"].to_numpy()[loc])
    pc = np.where(crpc, r.uniform(0.5, 3.5, n), s["bmpc0"].to_numpy()[loc] * f * r.lognormal(0, 0.15, n) + 0.5)
    pc = pc + pd_ramp(ctx, loc, t) * 10
    sc_ok = (s["best"].to_numpy()[loc] == "SCR") & (t >= s["t_creff"].to_numpy()[loc])
    df = _base(v)
    df["BMDAT"] = fmt_date(v["_day"].to_numpy())
    df["BMPC"] = fmt_num(pc, 1)
    df["BMCLON"] = np.where(sc_ok, "NEG", "POS")
    df["BMCLMETH"] = "FLOW"
    return df


def form_mrd(ctx: Context) -> pd.DataFrame:
    """Form ``mrd``: Minimal residual disease (bone marrow) (fields in docs/RAW.md)."""
    v = _visits(ctx, "mrd")
    s = ctx.s
    r = ctx.rng
    loc, n = v["loc"].to_numpy(), len(v)
    t = np.nan_to_num(v["t"].to_numpy(), nan=-30.0)
    sens = s["mrd_sens"].to_numpy()[loc]
    best = s["best"].to_numpy()[loc]
    neg = s["mrdneg"].to_numpy()[loc] & (t >= s["t_mrdneg"].to_numpy()[loc]) & (t < s["pd_t"].to_numpy()[loc] - 30)
    lvl = np.select([t <= 0, np.isin(best, ["SCR", "CR"]), best == "VGPR"],
                    [r.uniform(-1.3, -0.5, n), r.uniform(-4.8, -4.0, n), r.uniform(-4.5, -3.0, n)], r.uniform(-3.5, -2.0, n))
    val = np.maximum(10**lvl, sens * 1.5)
    df = _base(v)
    df["MRDDAT"] = fmt_date(v["_day"].to_numpy())
    df["MRDMETH"] = "NGS"
    df["MRDRES"] = np.where(neg, "NEG", "POS")
    df["MRDVAL"] = np.where(neg, "<" + fmt_sci(sens, 1), fmt_sci(val, 1))
    df["MRDSENS"] = fmt_sci(sens, 0)
    return df


def form_pc(ctx: Context) -> pd.DataFrame:
    """Form ``pc``: CAR transgene by qPCR (fields in docs/RAW.md)."""
    s = ctx.s
    r = ctx.rng
    parts = []
    for key, spec, ratio in (("pcpb", "PB", 1.0), ("pcbm", "BM", 0.6)):
        v = _visits(ctx, key)
        v = v[np.isfinite(v["t"].to_numpy())].reset_index(drop=True)
        loc, n = v["loc"].to_numpy(), len(v)
        inf_min = s["inf_min"].to_numpy()[loc]
        pre = v["FOLDER"].eq("D0").to_numpy()
        minute = np.where(pre, inf_min - r.integers(30, 120, n), np.where(v["FOLDER"].eq("D1").to_numpy(),
                          inf_min + r.integers(-60, 60, n), r.integers(7 * 60, 10 * 60, n)))
        t = v["t"].to_numpy() + (minute - inf_min) / 1440.0
        conc = ck_conc(ctx, loc, t) * ratio * r.lognormal(0, 0.25, n) * np.where(spec == "BM", r.uniform(0.5, 2.0, n), 1)
        df = _base(v)
        df["_rank"] = 0 if spec == "PB" else 1
        df["PCREFID"] = "PCR" + s["SUBJID"].to_numpy()[loc] + spec + v["FOLDER"].to_numpy()
        df["PCSPEC"] = spec
        df["PCTPT"] = np.where(pre, "PRE", v["FOLDER"].to_numpy())
        df["PCDAT"] = fmt_date(v["_day"].to_numpy())
        df["PCTIM"] = fmt_time(minute)
        df["PCORRES"] = np.where(conc < 50, "<50", np.where(conc >= 100, fmt_num(conc, 0), fmt_num(conc, 1)))
        df["PCORRESU"] = "copies/ug gDNA"
        df["PCLLOQ"] = "50"
        parts.append(df)
    out = pd.concat(parts, ignore_index=True)
    out = out.sort_values(["loc", "_day", "_order", "_rank"], kind="stable").reset_index(drop=True)
    out["RECPOS"] = out.groupby(["loc", "FOLDER"]).cumcount().to_numpy() + 1
    return out.drop(columns="_rank")


# --------------------------------------------------------------------------- efficacy and disposition
def form_rs(ctx: Context) -> pd.DataFrame:
    """Form ``rs``: Investigator response assessment (IMWG 2016) (fields in docs/RAW.md)."""
    sc = ctx.sched
    m = (sc["occur"].to_numpy() & sc["FOLDER"].isin(RS_FOLDERS).to_numpy()) | sc["kind"].eq("PDUNS").to_numpy()
    v = sc[m].reset_index(drop=True)
    loc = v["loc"].to_numpy()
    t = v["t"].to_numpy()
    df = _base(v)
    df["RSDAT"] = fmt_date(v["_day"].to_numpy())
    df["RSORRES"] = np.where(v["ne"].to_numpy(), "NE", imwg_response(ctx, loc, t))
    return df


def _pd_visits(ctx: Context) -> pd.DataFrame:
    sc = ctx.sched
    pdt = ctx.s["pd_t"].to_numpy()[sc["loc"]]
    m = (sc["t"].to_numpy() == pdt) & (sc["FOLDER"].isin(RS_FOLDERS).to_numpy() | sc["kind"].eq("PDUNS").to_numpy())
    return sc[m].drop_duplicates("loc").reset_index(drop=True)


def form_prog(ctx: Context) -> pd.DataFrame:
    """Form ``prog``: Disease progression (fields in docs/RAW.md)."""
    v = _pd_visits(ctx)
    s = ctx.s
    r = ctx.rng
    loc, n = v["loc"].to_numpy(), len(v)
    lc = s["mmtype"].to_numpy()[loc] == "LC"
    emd = s["emd"].to_numpy()[loc] & (r.random(n) < 0.5)
    df = _base(v)
    df["PDDAT"] = fmt_date(v["_day"].to_numpy())
    df["PDSERUM"] = _yn(~lc)
    df["PDURINE"] = _yn(s["u0"].to_numpy()[loc] >= 200)
    df["PDFLC"] = _yn(lc)
    df["PDBM"] = "N"
    df["PDNEWLES"] = _yn(emd)
    df["PDOTH"] = np.where(r.random(n) < 0.1, "Hypercalcaemia attributed to myeloma", None)
    return df


SUBSEQUENT = ("Daratumumab + pomalidomide + dexamethasone", "Selinexor + dexamethasone",
              "Carfilzomib + cyclophosphamide + dexamethasone", "Anti-BCMA bispecific antibody (clinical trial)",
              "Bortezomib + DCEP")


def form_subtx(ctx: Context) -> pd.DataFrame:
    """Form ``subtx``: Subsequent anticancer therapy (fields in docs/RAW.md)."""
    s = ctx.s
    r = ctx.rng
    n = len(s)
    inf = s["inf"].to_numpy()
    end = np.fmin(s["obs_end"].to_numpy(), s["cut"].to_numpy())
    pdt = s["pd_t"].to_numpy()
    after_pd = np.isfinite(pdt) & (r.random(n) < 0.85)
    st = np.where(after_pd, inf + pdt + r.integers(7, 41, n), np.nan)
    consol = ~np.isfinite(pdt) & np.isfinite(inf) & (r.random(n) < 0.04)
    st = np.where(consol, inf + r.integers(150, 300, n), st)
    loc = np.flatnonzero(np.isfinite(st) & (st <= end))
    k = len(loc)
    u = r.random(k)
    typ = np.where(consol[loc], "ASCT", np.select([u < 0.10, u < 0.18, u < 0.23], ["ASCT", "RT", "OTHER"], "SYS"))
    trt = np.select([typ == "ASCT", typ == "RT", typ == "OTHER"],
                    ["Autologous stem cell transplantation", "Radiotherapy to thoracic spine plasmacytoma",
                     "Herbal medicine (traditional Chinese medicine)"], pick(r, SUBSEQUENT, k))
    en = st[loc] + np.where(typ == "SYS", r.integers(30, 200, k), np.where(typ == "RT", 14, 1))
    df = _logbase(loc, st[loc], "SUBLOG")
    df["THERTYPE"] = typ
    df["THEROTH"] = np.where(typ == "OTHER", "Traditional Chinese medicine", None)
    df["CMTRT"] = trt
    df["CMSTDAT"] = fmt_date(st[loc])
    df["CMENDAT"] = np.where(en <= end[loc], fmt_date(en), None)
    return _number_lines(df)


def death_day(s: pd.DataFrame) -> np.ndarray:
    """Day number of death (NaN when alive at the data cut)."""
    d = np.where(s["infused"].to_numpy(), s["inf"].to_numpy() + s["death_t"].to_numpy(),
                 np.where(s["ni_reason"].to_numpy() == "DEATH", s["ni_day"].to_numpy(), np.nan))
    return np.where(np.isfinite(d) & (d <= s["cut"].to_numpy()), d, np.nan)


def form_death(ctx: Context) -> pd.DataFrame:
    """Form ``death``: Death (fields in docs/RAW.md)."""
    s = ctx.s
    r = ctx.rng
    dd = death_day(s)
    loc = np.flatnonzero(np.isfinite(dd))
    cause = np.where(s["infused"].to_numpy()[loc], s["death_cause"].to_numpy()[loc], "PD")
    df = _logbase(loc, dd[loc], "EVENTS")
    df["RECPOS"] = 0
    df["DTHDAT"] = fmt_date(dd[loc])
    df["DTHCAUS"] = cause
    df["DTHCAUSO"] = np.select([cause == "AE", cause == "OTHER"],
                               ["Pneumonia", pick(r, ["Cerebral haemorrhage", "Acute myocardial infarction"], len(loc))], None)
    df["AUTOPSY"] = "N"
    return df


def eos_table(s: pd.DataFrame) -> pd.DataFrame:
    """End-of-study status per subject who left the study before the data cut."""
    inf = s["inf"].to_numpy()
    cut = s["cut"].to_numpy()
    dd = death_day(s)
    drop = inf + s["drop_t"].to_numpy()
    compl = inf + 730 + 14
    ni = ~s["infused"].to_numpy()
    date = np.select([np.isfinite(dd), ni, np.isfinite(drop) & (drop <= cut), compl <= cut],
                     [dd, s["ni_day"].to_numpy(), drop, compl], np.nan)
    reason = np.select([np.isfinite(dd), ni & (s["ni_reason"].to_numpy() == "PD"), ni, np.isfinite(drop) & (drop <= cut)],
                       ["DEATH", "PD", "OTHER", s["drop_reason"].to_numpy()], "")
    return pd.DataFrame({"loc": np.arange(len(s)), "date": date, "reason": reason})


def form_eos(ctx: Context) -> pd.DataFrame:
    """Form ``eos``: End of study (fields in docs/RAW.md)."""
    e = eos_table(ctx.s)
    e = e[np.isfinite(e["date"].to_numpy()) & (e["date"].to_numpy() <= ctx.s["cut"].to_numpy()[e["loc"]])]
    loc = e["loc"].to_numpy()
    reason = e["reason"].to_numpy()
    df = _logbase(loc, e["date"].to_numpy(), "EVENTS")
    df["RECPOS"] = 0
    df["EOSDAT"] = fmt_date(e["date"].to_numpy())
    df["EOSSTAT"] = np.where(reason == "", "COMPLETED", "DISCONT")
    df["DCSREAS"] = np.where(reason == "", None, reason)
    df["DCSREASO"] = np.where(reason == "OTHER", "Manufacturing failure; CAR-T product not available", None)
    return df


def form_surv(ctx: Context) -> pd.DataFrame:
    """Form ``surv``: Survival follow-up contact (fields in docs/RAW.md)."""
    s = ctx.s
    r = ctx.rng
    n = len(s)
    inf = s["inf"].to_numpy()
    pdt = s["pd_t"].to_numpy()
    k = 8
    loc = np.repeat(np.arange(n), k)
    j = np.tile(np.arange(1, k + 1), n)
    day = inf[loc] + pdt[loc] + 90 * j + r.integers(-7, 8, len(loc))
    limit = np.fmin(np.fmin(s["obs_end"].to_numpy(), s["cut"].to_numpy()), inf + 744)[loc]
    ok = np.isfinite(day) & (day <= limit)
    loc, day, j = loc[ok], day[ok], j[ok]
    df = pd.DataFrame({"loc": loc, "FOLDER": ("SFU" + pd.Series(j).astype(str).str.zfill(2)).to_numpy(),
                       "FOLDERNAME": ("Survival follow-up " + pd.Series(j).astype(str)).to_numpy(), "_order": 2000 + j,
                       "FORMINST": 1, "RECPOS": 0, "_day": day})
    df["SSDAT"] = fmt_date(day)
    df["SSSTAT"] = "ALIVE"
    df["CONTMETH"] = pick(r, ["PHONE", "PHONE", "VISIT", "RECORDS"], len(loc))
    return df
