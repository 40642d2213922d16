"""A small-molecule oral PK study from files only: examples/crossover01 (issue 15, "Done when").

A randomised, open-label, two-period, two-sequence (TR / RT) crossover of a korvaxan 100 mg test
tablet vs the reference tablet, 12 healthy subjects, plasma sampling pre-dose and 0.5-48 h after each
dose, ng/mL with LLOQ 2.  ``cdisc-pipe run`` takes its CSV export through SDTM (PC with PCRFTDTC =
the dose of the same period, PP from the NCA with one profile per dose, times in hours), ADaM (ADSL
with periods, ADPC, ADPP) and validation, with no Python of the study anywhere.

PP is checked against an independent NCA written here with plain numpy from the SDTM PC and EX the
run wrote (PKNCA rules as docs/NCA.md states them): linear-up/log-down AUClast, lambda z by the best
adjusted R2 over the last >= 3 points after Tmax (ties within 1e-4 to more points), AUCinf = AUClast
+ Clast/lambda z, %extrapolated, CL/F = dose/AUCinf, Vz/F = dose/(lambda z AUCinf), t1/2 = ln 2 /
lambda z.  PP is rounded to 6 significant digits, so each value is compared to the recomputed one
within half a unit of its 6th significant digit (at most 5e-6 relative).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED, once_per_session
from tests.example_runs import read_xpt, run_example

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "crossover01"
CT = SHARED / "ct"
STUDY = "CROSSOVER01-101-"
COMPLETERS = [f"{1001 + i}" for i in range(12) if i != 9]
DROPOUT = "1010"
PARAMS = ["CMAX", "TMAX", "AUCLST", "AUCIFO", "AUCPEO", "LAMZ", "LAMZHL", "LAMZNPT", "R2ADJ", "CLFO", "VZFO"]
UNITS = {"CMAX": "ng/mL", "TMAX": "h", "AUCLST": "h*ng/mL", "AUCIFO": "h*ng/mL", "AUCPEO": "%", "LAMZ": "/h",
         "LAMZHL": "h", "LAMZNPT": None, "R2ADJ": None, "CLFO": "L/h", "VZFO": "L"}
TREATMENT = {"KORVAXAN TEST TABLET": "Korvaxan test tablet", "KORVAXAN REFERENCE TABLET": "Korvaxan reference tablet"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's run, once per session (shared by the xdist workers; read-only for the tests)."""
    return Path(once_per_session(tmp_path_factory, "crossover01", lambda tmp: str(run_example(EXAMPLE, CT, tmp))))


_read = read_xpt


@pytest.fixture(scope="module")
def ds(run: Path):
    cache: dict[str, pd.DataFrame] = {}

    def get(name: str) -> pd.DataFrame:
        if name not in cache:
            folder = "adam" if name.startswith("ad") else "sdtm"
            cache[name] = _read(run / folder / f"{name}.xpt")
        return cache[name]
    return get


def _hours(later: pd.Series, earlier: pd.Series) -> np.ndarray:
    """later - earlier in hours (ISO 8601 text or datetimes; a date without a time is its midnight)."""
    def dt(s: pd.Series) -> pd.Series:
        return s if pd.api.types.is_datetime64_any_dtype(s) else pd.to_datetime(s, format="ISO8601")
    return ((dt(later) - dt(earlier)).dt.total_seconds() / 3600.0).to_numpy()


# ------------------------------------------------------------------------------------------------
# the independent NCA (plain numpy, one profile at a time)


def _auc_segment(t1: float, t2: float, c1: float, c2: float) -> float:
    """Linear-up/log-down: log trapezoid where the concentration falls and both ends are > 0."""
    if c2 < c1 and c2 > 0:
        return (c1 - c2) / math.log(c1 / c2) * (t2 - t1)
    return (c1 + c2) / 2.0 * (t2 - t1)


def nca_profile(t: np.ndarray, c: np.ndarray, blq: np.ndarray, dose_mg: float) -> dict[str, float]:
    """t: hours since the dose (pre-dose <= 0), c: concentration (NaN when BLQ), blq: BLQ flags;
    records already restricted to the usable ones (a time and a result or BLQ)."""
    order = np.argsort(t, kind="stable")
    t, c, blq = t[order], c[order], blq[order]
    pre = t <= 0
    # time zero: the last pre-dose sample, at 0 (0 when BLQ); none here is dropped (one per period)
    assert pre.sum() == 1
    t = np.where(pre, 0.0, t)
    c = np.where(pre & blq, 0.0, c)
    quant = ~blq & ~pre
    first_q, last_q = t[quant].min(), t[quant].max()
    keep = ~(blq & ~pre & (t > first_q) & (t < last_q))  # BLQ between quantifiable values: dropped
    c = np.where(blq & ~pre, 0.0, c)                       # leading / trailing BLQ: 0
    t, c, quant = t[keep], c[keep], quant[keep]
    post = t > 0
    i_max = np.flatnonzero(post)[np.argmax(c[post])]      # first occurrence on ties
    cmax, tmax = c[i_max], t[i_max]
    i_last = np.flatnonzero(c > 0).max()
    tlast, clast = t[i_last], c[i_last]
    auclast = sum(_auc_segment(t[i], t[i + 1], c[i], c[i + 1]) for i in range(i_last))
    # lambda z: the last k >= 3 quantifiable points after Tmax; best adjusted R2, ties (1e-4) to more points
    elig = np.flatnonzero(quant & (t > tmax) & (c > 0))
    fits = []
    for k in range(3, len(elig) + 1):
        idx = elig[-k:]
        x, y = t[idx], np.log(c[idx])
        slope, intercept = np.polyfit(x, y, 1)
        r2 = 1 - ((y - (intercept + slope * x)) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        fits.append((k, -slope, 1 - (1 - r2) * (k - 1) / (k - 2)))
    ok = [f for f in fits if f[1] > 0]
    best = max(f[2] for f in ok)
    k, lz, r2adj = max((f for f in ok if f[2] > best - 1e-4), key=lambda f: f[0])
    aucinf = auclast + clast / lz
    return {"CMAX": cmax, "TMAX": tmax, "AUCLST": auclast, "AUCIFO": aucinf, "AUCPEO": 100 * (1 - auclast / aucinf),
            "LAMZ": lz, "LAMZHL": math.log(2) / lz, "LAMZNPT": float(k), "R2ADJ": r2adj,
            # mg / (h*ng/mL) = 1e6 ng / (h ng/mL) = 1e6 mL/h = 1e3 L/h; mg / (/h * h*ng/mL) = 1e3 L
            "CLFO": dose_mg * 1000 / aucinf, "VZFO": dose_mg * 1000 / (lz * aucinf), "_TLAST": tlast}


@pytest.fixture(scope="module")
def independent(ds) -> pd.DataFrame:
    """One row per profile (USUBJID, PCRFTDTC) with every parameter recomputed from SDTM PC and EX."""
    pc, ex = ds("pc"), ds("ex")
    usable = pc["PCSTAT"].isna() & pc["PCDTC"].str.contains("T", na=False)  # not done; no time: not used
    pc = pc[usable].assign(T=lambda d: _hours(d["PCDTC"], d["PCRFTDTC"]), BLQ=lambda d: d["PCSTRESC"] == "BLQ")
    dose = ex.set_index(["USUBJID", "EXSTDTC"])["EXDOSE"]
    rows = []
    for (usubjid, ref), p in pc.groupby(["USUBJID", "PCRFTDTC"]):
        values = nca_profile(p["T"].to_numpy(), p["PCSTRESN"].to_numpy(dtype=float), p["BLQ"].to_numpy(),
                             float(dose[(usubjid, ref)]))
        rows.append({"USUBJID": usubjid, "PCRFTDTC": ref, **values})
    return pd.DataFrame(rows)


def _close_at_6_digits(reported: float, recomputed: float) -> bool:
    """PP shows 6 significant digits: equal to the rounded value, or within half a unit of the 6th digit."""
    if float(f"{recomputed:.6g}") == reported:
        return True
    half_unit = 0.5 * 10.0 ** (math.floor(math.log10(abs(recomputed))) - 5)
    return abs(reported - recomputed) <= half_unit * (1 + 1e-9)


# ------------------------------------------------------------------------------------------------


def test_run_is_clean_and_every_warning_is_explained(run: Path) -> None:
    summary = json.loads((run / "reports" / "validation.json").read_text(encoding="utf-8"))["summary"]
    assert summary["errors"] == 0
    assert summary["unexplained_warnings"] == 0
    assert summary["unused_expected"] == []
    assert (summary["ct_reason"] is None) == CT.is_dir()


def test_datasets_and_record_counts(ds) -> None:
    # 12 subjects, 23 doses (1010 stopped after period 1), 13 samples per dose
    assert len(ds("dm")) == 12 and len(ds("ex")) == 23 and len(ds("pc")) == 23 * 13
    assert len(ds("pp")) == 23 * len(PARAMS)
    assert len(ds("adsl")) == 12 and len(ds("adpp")) == len(ds("pp"))
    assert len(ds("adpc")) == 23 * 13 - 1  # the sample not taken is not an analysis record


def test_pp_equals_an_independent_nca_for_every_profile(ds, independent) -> None:
    pp = ds("pp")
    assert pp["PPSTAT"].isna().all()  # every parameter of every profile was calculated
    got = pp.pivot(index=["USUBJID", "PPRFTDTC"], columns="PPTESTCD", values="PPSTRESN")
    ref = independent.set_index(["USUBJID", "PCRFTDTC"])
    assert sorted(got.index) == sorted(ref.index) and len(got) == 23
    bad = [(k, code, got.loc[k, code], ref.loc[k, code]) for k in got.index for code in PARAMS
           if not _close_at_6_digits(got.loc[k, code], ref.loc[k, code])]
    assert bad == []
    assert (pp["PPSTRESC"].astype(float) == pp["PPSTRESN"]).all()
    assert {c: set(pp.loc[pp["PPTESTCD"] == c, "PPSTRESU"].fillna("-")) for c in PARAMS} == \
        {c: {u or "-"} for c, u in UNITS.items()}


def test_one_profile_worked_by_hand(ds) -> None:
    """1001, period 1 (test tablet, dosed 2025-03-03 08:00), times in h from PCDTC - PCRFTDTC:

    pre-dose 07:21 BLQ -> time zero, C = 0; 0.53333 h 520; 1.01667 848; 1.53333 783; 2.01667 868;
    3.03333 746; 4.01667 622; 6 496; 8.01667 329; 12.0333 206; 24.0833 38.0; 36.0667 6.51;
    48.0167 BLQ (trailing: 0, after Tlast).
    Cmax = 868 at Tmax = 121 min = 2.01667 h.  Clast = 6.51 at Tlast = 36.0667 h.
    AUClast, linear up / log down, by segment (log: (c1 - c2) / ln(c1/c2) x dt):
      0-0.5333 lin 138.667; -1.0167 lin 330.600; -1.5333 log 421.119; -2.0167 lin 398.992;
      -3.0333 log 818.885; -4.0167 log 670.754; -6 log 1103.973; -8.0167 log 820.386;
      -12.0333 log 1055.253; -24.0833 log 1197.664; -36.0667 log 213.890  => 7170.18 h*ng/mL.
    Lambda z: after Tmax the candidates are the last 3..9 points; adjusted R2 of the last 3 / 4 / 5 /
    6 points = 0.999610 / 0.998747 / 0.998857 / 0.999118 (the longer fits lower still): 3 points.
    ln C = 5.32788, 3.63759, 1.87334 at t = 12.0333, 24.0833, 36.0667; mean t 24.0611, mean ln C
    3.61293; Sxx = 12.0278^2 + 0.0222^2 + 12.0056^2 = 288.801; Sxy = -12.0278 x 1.71494 + 0.0222 x
    0.02465 + 12.0056 x -1.73959 = -41.5112; slope = -0.143736 => LAMZ 0.143736 /h, LAMZHL = 0.693147
    / 0.143736 = 4.82236 h.  SSres 0.00116313, SStot 5.96782, R2 0.999805, R2ADJ = 1 - 0.000195 x
    2/1 = 0.999610.
    AUCIFO = 7170.18 + 6.51 / 0.143736 = 7170.18 + 45.2913 = 7215.47; AUCPEO = 100 x 45.2913 /
    7215.47 = 0.627697 %; CLFO = 100 mg / 7215.47 h*ng/mL = 100e6 ng / 7215.47 h*ng/mL = 13859.1
    mL/h = 13.8591 L/h; VZFO = 100e6 / (0.143736 x 7215.47) mL = 96.4204 L.
    """
    pp = ds("pp")
    one = pp[(pp["USUBJID"] == STUDY + "1001") & (pp["PPRFTDTC"] == "2025-03-03T08:00")]
    assert one["PPGRPID"].unique().tolist() == ["PLASMA-TREATMENT 1 DOSE"]
    assert dict(zip(one["PPTESTCD"], one["PPSTRESN"])) == {
        "CMAX": 868.0, "TMAX": 2.01667, "AUCLST": 7170.18, "LAMZ": 0.143736, "LAMZHL": 4.82236, "LAMZNPT": 3.0,
        "R2ADJ": 0.99961, "AUCIFO": 7215.47, "AUCPEO": 0.627697, "CLFO": 13.8591, "VZFO": 96.4204}


def test_one_profile_per_dose_with_its_reference_dose(ds) -> None:
    pp, ex = ds("pp"), ds("ex")
    doses = ex.groupby("USUBJID")["EXSTDTC"].apply(sorted).to_dict()
    profiles = pp.groupby("USUBJID")["PPRFTDTC"].apply(lambda s: sorted(set(s))).to_dict()
    assert profiles == doses
    for s in COMPLETERS:
        assert len(profiles[STUDY + s]) == 2, s
    assert profiles[STUDY + DROPOUT] == ["2025-03-10T08:30"]  # one profile: stopped after period 1
    # the group of a profile names its period's dose; PPTPTREF = PCTPTREF of the dose
    ep = ex.set_index(["USUBJID", "EXSTDTC"])["EPOCH"]
    assert all(grp == f"PLASMA-{ep[(u, ref)]} DOSE" and tpt == f"{ep[(u, ref)]} DOSE"
               for u, ref, grp, tpt in zip(pp["USUBJID"], pp["PPRFTDTC"], pp["PPGRPID"], pp["PPTPTREF"]))
    # every PC record refers to the dose of its period: the pre-dose sample to the dose that follows it
    pc = ds("pc")
    t = _hours(pc["PCDTC"], pc["PCRFTDTC"])
    pre = (pc["PCTPT"] == "PRE-DOSE").to_numpy()
    timed = pc["PCDTC"].str.contains("T", na=False).to_numpy()
    assert (t[pre] < 0).all() and (t[pre] > -1).all()
    assert (t[~pre & timed] > 0).all() and (t[~pre & timed] < 49).all()


def test_times_are_hours(ds, independent) -> None:
    pp = ds("pp")
    tmax = pp[pp["PPTESTCD"] == "TMAX"]
    assert set(tmax["PPSTRESU"]) == {"h"} and tmax["PPSTRESN"].between(0.5, 4.1).all()
    # 1004's 8 h sample of period 1 was drawn 47 min late: its actual time is 8 h 47 min
    adpc = ds("adpc")
    late = adpc[(adpc["USUBJID"] == STUDY + "1004") & (adpc["APERIOD"] == 1) & (adpc["ATPT"] == "8 H POST-DOSE")]
    assert late["ARRLT"].round(6).tolist() == [round(8 + 47 / 60, 6)] and late["NRRLT"].tolist() == [8.0]
    # ADPC relative times in hours from the dates; nominal from PCELTM, + 168 h in period 2
    assert set(adpc["RRLTU"]) == {"h"} and set(adpc["FRLTU"]) == {"h"}
    timed = adpc["ADTM"].notna()
    assert np.allclose(adpc.loc[timed, "ARRLT"], _hours(adpc.loc[timed, "ADTM"], adpc.loc[timed, "PCRFTDTM"]))
    adsl = ds("adsl").set_index("USUBJID")
    first = pd.to_datetime(adsl.loc[adpc.loc[timed, "USUBJID"], "TRTSDTM"]).reset_index(drop=True)
    assert np.allclose(adpc.loc[timed, "AFRLT"], _hours(adpc.loc[timed, "ADTM"].reset_index(drop=True), first))
    assert (adpc["NFRLT"] - adpc["NRRLT"]).tolist() == [168.0 * (p - 1) for p in adpc["APERIOD"]]


def test_samples_not_used_by_the_nca(ds) -> None:
    pc, supp = ds("pc"), ds("supppc")
    # 1008: the 12 h sample of period 2 was not drawn; 1005: the 6 h sample of period 2 has no time
    missed = pc[pc["PCSTAT"] == "NOT DONE"]
    assert missed["USUBJID"].tolist() == [STUDY + "1008"] and missed["PCTPT"].tolist() == ["12 H POST-DOSE"]
    assert missed["PCDTC"].isna().all() and missed["PCRFTDTC"].tolist() == ["2025-03-17T08:10"]
    reasons = supp[supp["QNAM"] == "NCAXRS"].set_index("USUBJID")["QVAL"].to_dict()
    assert reasons == {STUDY + "1005": "PCDTC or PCRFTDTC has no time: actual time in hours unknown",
                       STUDY + "1008": "not done (PCSTAT NOT DONE)"}
    adpc = ds("adpc")
    flagged = adpc[adpc["NCAXFL"] == "Y"]
    assert flagged["USUBJID"].tolist() == [STUDY + "1005"] and flagged["ATPT"].tolist() == ["6 H POST-DOSE"]
    assert flagged["NCA1XRS"].tolist() == [reasons[STUDY + "1005"]] and flagged["ADTM"].isna().all()
    assert (adpc["ANL01FL"] == "Y").sum() == len(adpc) - 1
    # BLQ as the NCA used it: every BLQ sample here is pre-dose or trailing, so AVAL 0
    blq = adpc[adpc["PCSTRESC"] == "BLQ"]
    assert len(blq) == 35 and (blq["AVAL"] == 0).all() and set(blq["ATPT"]) == {"PRE-DOSE", "36 H POST-DOSE",
                                                                               "48 H POST-DOSE"}
    q = adpc[adpc["PCSTRESC"] != "BLQ"]
    assert (q["AVAL"] == q["PCSTRESC"].astype(float)).all()


def test_arms_sequences_and_periods(ds) -> None:
    dm, se = ds("dm").set_index("USUBJID"), ds("se")
    assert (dm["ARMCD"] == dm["ACTARMCD"]).all() and dm["ARMNRS"].isna().all()
    assert dm.loc[STUDY + DROPOUT, ["ARMCD", "ACTARMCD"]].tolist() == ["TR", "TR"]  # a prefix of TR
    epochs = se[se["USUBJID"] == STUDY + DROPOUT].sort_values("TAETORD")["EPOCH"].tolist()
    assert epochs == ["SCREENING", "TREATMENT 1", "WASHOUT", "FOLLOW-UP"]
    assert se[se["USUBJID"] == STUDY + "1001"].sort_values("TAETORD")["EPOCH"].tolist() == \
        ["SCREENING", "TREATMENT 1", "WASHOUT", "TREATMENT 2", "FOLLOW-UP"]
    adsl = ds("adsl").set_index("USUBJID")
    assert (adsl["TRTSEQP"] == dm.loc[adsl.index, "ARM"]).all() and (adsl["TRTSEQA"] == dm.loc[adsl.index, "ACTARM"]).all()
    tr = adsl["ARMCD"] == "TR"
    assert set(adsl.loc[tr, "TRT01P"]) == {"Korvaxan test tablet"} and set(adsl.loc[~tr, "TRT01P"]) == {
        "Korvaxan reference tablet"}
    assert adsl.loc[STUDY + DROPOUT, "COMPLFL"] == "N" and pd.isna(adsl.loc[STUDY + DROPOUT, "TRT02A"])
    assert (adsl["PKFL"] == "Y").all() and (adsl["COMPLFL"] == "Y").sum() == 11


def test_adpp_periods_and_treatments(ds) -> None:
    adpp, ex, pp = ds("adpp"), ds("ex"), ds("pp")
    dose = ex.set_index(["USUBJID", "EXSTDTC"])
    key = list(zip(adpp["USUBJID"], adpp["PROFID"].str.split("-PLASMA-").str[1]))
    # the period of a profile is the epoch of its dose; the actual treatment is the tablet taken then
    assert adpp["APERIOD"].tolist() == [int(dose.loc[k, "EPOCH"][-1]) for k in key]
    assert adpp["TRTA"].tolist() == [TREATMENT[dose.loc[k, "EXTRT"]] for k in key]
    adsl = ds("adsl").set_index("USUBJID")
    assert adpp["TRTP"].tolist() == [adsl.loc[u, f"TRT0{int(p)}P"] for u, p in zip(adpp["USUBJID"], adpp["APERIOD"])]
    assert (adpp["TRTP"] == adpp["TRTA"]).all()  # nobody took the wrong tablet
    assert adpp["APERIODC"].tolist() == [f"PERIOD 0{int(p)}" for p in adpp["APERIOD"]]
    # one ADPP record per PP record, same value, PARAMCD = PPTESTCD
    m = adpp.merge(pp, left_on=["USUBJID", "SRCSEQ"], right_on=["USUBJID", "PPSEQ"], validate="one_to_one")
    assert len(m) == len(pp) and (m["PARAMCD"] == m["PPTESTCD"]).all() and (m["AVAL"] == m["PPSTRESN"]).all()
    # periods x treatments: 11 completers have both; 1010 has period 1 (test) only
    counts = adpp[adpp["PARAMCD"] == "CMAX"].groupby(["APERIOD", "TRTA"]).size().to_dict()
    assert counts == {(1.0, "Korvaxan reference tablet"): 6, (1.0, "Korvaxan test tablet"): 6,
                      (2.0, "Korvaxan reference tablet"): 5, (2.0, "Korvaxan test tablet"): 6}
    # ADPC and ADPP name the same profiles
    assert set(ds("adpc")["PROFID"]) == set(adpp["PROFID"])


def test_the_pp_method_in_the_spec_is_the_nca_settings_description():
    """define.xml's NCA method text is what the settings do (parameters, no AUCINT sentence here)."""
    from cdisc_pipe.nca import describe_method, load_nca_settings
    from cdisc_pipe.spec import load_specs

    root = Path(__file__).resolve().parents[1] / "examples" / "crossover01" / "specs"
    text = describe_method(load_nca_settings(root / "settings" / "nca.yaml"))
    assert load_specs(root).methods["MT.PP.NCA"].description == text
    assert "AUCINT" not in text and "at most 1 day before" in text
