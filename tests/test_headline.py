"""The study's headline results, computed twice: from ADaM, and independently straight from SDTM.

Headlines: ORR at month 3 (EFFFL denominator), confirmed CR-or-better rate, median PFS by
Kaplan-Meier, DLT count per dose level.  The SDTM side is written without the ADaM code: plain
per-subject Python over the SDTM records (small data), its own date arithmetic, its own
confirmation and censoring logic and its own Kaplan-Meier.  Agreement of the two is the test.

Runs on the literal fixture (tests/test_adam_adsl.py) always, and on the bundled study when its
raw export and mappings are present.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import yaml
import pytest

from cdisc_pipe.adam import build_adam
from cdisc_pipe.paths import project_root
from cdisc_pipe.spec.load import load_specs
from tests.test_adam_adsl import SETTINGS, make_sdtm

RESPONDER = {"sCR", "CR", "VGPR", "PR"}
CR_OR_BETTER = {"sCR", "CR"}
RANK = {"sCR": 1, "CR": 2, "VGPR": 3, "PR": 4, "MR": 5, "SD": 6, "PD": 7, "NE": 8}


# ---------------------------------------------------------------- from ADaM
def km_median_numpy(time: np.ndarray, event: np.ndarray) -> float:
    """Kaplan-Meier median (first time with S(t) <= 0.5), vectorised over distinct times."""
    times = np.unique(time[event == 1])
    if times.size == 0:
        return math.nan
    at_risk = (time[None, :] >= times[:, None]).sum(axis=1)
    deaths = ((time[None, :] == times[:, None]) & (event[None, :] == 1)).sum(axis=1)
    surv = np.cumprod(1.0 - deaths / at_risk)
    hit = np.nonzero(surv <= 0.5 + 1e-12)[0]
    return float(times[hit[0]]) if hit.size else math.nan


def headline_from_adam(adam: dict[str, pd.DataFrame]) -> dict:
    adsl, adrs, adtte = adam["ADSL"], adam["ADRS"], adam["ADTTE"]
    eff = set(adsl.loc[adsl["EFFFL"] == "Y", "USUBJID"])
    m3 = adrs[(adrs["PARAMCD"] == "RSPM3") & adrs["USUBJID"].isin(eff)]
    cbor = adrs[(adrs["PARAMCD"] == "CBOR") & adrs["USUBJID"].isin(eff)]
    pfs = adtte[(adtte["PARAMCD"] == "PFS") & adtte["USUBJID"].isin(eff)]
    dlt = adsl[adsl["DLTEVLFL"] == "Y"]
    return {
        "n_eff": len(eff),
        "orr_m3": int((m3["AVALC"] == "Y").sum()),
        "cr_or_better": int(cbor["AVALC"].isin(CR_OR_BETTER).sum()),
        "median_pfs": km_median_numpy(pfs["AVAL"].to_numpy(float), (pfs["CNSR"] == 0).to_numpy(int)),
        "dlt_by_level": {lvl: (int((g["DLTFL"] == "Y").sum()), len(g)) for lvl, g in dlt.groupby("TRT01A")},
    }


# ---------------------------------------------------------------- from SDTM, independently
def _d(text) -> date | None:
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _d_first_day(text) -> date | None:
    """A start date with a missing day taken as the first of the month (new therapy start)."""
    if isinstance(text, str) and len(text) == 7:
        return date(int(text[:4]), int(text[5:7]), 1)
    return _d(text)


def _d_last_day(text) -> date | None:
    """An assessment date with a missing day taken as the last day of the month."""
    if isinstance(text, str) and len(text) == 7:
        y, m = int(text[:4]), int(text[5:7])
        return date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1)
    return _d(text)


def _recs(df: pd.DataFrame | None, **eq) -> list[dict]:
    if df is None:
        return []
    rows = df.to_dict("records")
    return [r for r in rows if all(r.get(k) == v for k, v in eq.items())]


def km_median_python(pairs: list[tuple[float, int]]) -> float:
    """Kaplan-Meier median with a plain loop over ordered times."""
    surv = 1.0
    for t in sorted({t for t, e in pairs if e == 1}):
        n = sum(1 for u, _ in pairs if u >= t)
        d = sum(1 for u, e in pairs if u == t and e == 1)
        surv *= 1 - d / n
        if surv <= 0.5 + 1e-12:
            return float(t)
    return math.nan


def headline_from_sdtm(sdtm: dict[str, pd.DataFrame]) -> dict:
    # the planned assessment days of the missed-assessment rule, as the ADTTE plan gives them
    plan = yaml.safe_load((SETTINGS.parent / "plans" / "adtte.yaml").read_text(encoding="utf-8"))
    planned_days = next(s["schedule_days"] for s in plan["steps"] if s["verb"] == "derive_vars_missed")
    dm = sdtm["DM"].to_dict("records")
    infusion = {}
    for r in _recs(sdtm["EX"], EXCAT="CAR-T"):
        if (r.get("EXDOSE") or 0) > 0 and _d(r["EXSTDTC"]):
            u = r["USUBJID"]
            infusion[u] = min(infusion.get(u, _d(r["EXSTDTC"])), _d(r["EXSTDTC"]))
    # measurable disease at baseline (IMWG thresholds, baseline-flagged LB records)
    base = {}
    for r in _recs(sdtm.get("LB"), LBLOBXFL="Y"):
        base.setdefault(r["USUBJID"], []).append(r)

    def measurable(u: str) -> bool:
        recs = base.get(u, [])
        for r in recs:
            v = r.get("LBSTRESN")
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            unit = r.get("LBSTRESU")
            if r["LBTESTCD"] == "MCPROT" and r.get("LBSPEC") == "SERUM" and (
                    (unit == "g/L" and v >= 10) or (unit == "g/dL" and v >= 1)):
                return True
            if r["LBTESTCD"] in ("MCPROT", "MPROTEXR") and r.get("LBSPEC") == "URINE" and unit in (
                    "mg/day", "mg/24h", "mg/(24.h)") and v >= 200:
                return True
        flc = [r["LBSTRESN"] * (10 if r.get("LBSTRESU") == "mg/dL" else 1) for r in recs
               if r["LBTESTCD"] in ("KLCFR", "LLCFR") and r.get("LBSTRESU") in ("mg/L", "mg/dL")
               and r.get("LBSPEC") == "SERUM" and r.get("LBSTRESN") is not None]
        ratio = [r["LBSTRESN"] for r in recs if r["LBTESTCD"] == "KLCLLCFR" and r.get("LBSTRESN") is not None]
        return bool(flc) and max(flc) >= 100 and bool(ratio) and not (0.26 <= max(ratio) <= 1.65)

    eff = [r["USUBJID"] for r in dm if r["USUBJID"] in infusion and measurable(r["USUBJID"])]
    nact = {}
    for r in _recs(sdtm.get("CM"), CMCAT="SUBSEQUENT ANTI-CANCER THERAPY") + _recs(sdtm.get("PR"), PRCAT="SUBSEQUENT THERAPY"):
        u = r["USUBJID"]
        d = _d_first_day(r.get("CMSTDTC") or r.get("PRSTDTC"))
        if d and u in infusion and d >= infusion[u]:
            nact[u] = min(nact.get(u, d), d)
    death = {r["USUBJID"]: _d_first_day(r.get("DTHDTC")) for r in dm if r.get("DTHDTC")}

    orr = cr = 0
    pfs: list[tuple[float, int]] = []
    for u in eff:
        t0 = infusion[u]
        # analysed assessments: investigator overall response on/after infusion, on/before new therapy,
        # the worst per date
        by_date: dict[date, str] = {}
        for r in _recs(sdtm["RS"], USUBJID=u, RSTESTCD="OVRLRESP"):
            if r.get("RSEVAL") not in (None, "INVESTIGATOR"):
                continue
            d = _d_last_day(r["RSDTC"])
            if d is None or d < t0 or (u in nact and d > nact[u]) or r["RSSTRESC"] not in RANK:
                continue
            if d not in by_date or RANK[r["RSSTRESC"]] > RANK[by_date[d]]:
                by_date[d] = r["RSSTRESC"]
        seq = sorted(by_date.items())
        # month 3: study day 76..105 closest to 91, the earlier on ties
        window = [((d - t0).days + 1, d, resp) for d, resp in seq if 76 <= (d - t0).days + 1 <= 105]
        if window:
            _, _, resp = min(window, key=lambda w: (abs(w[0] - 91), w[0]))
            orr += resp in RESPONDER
        evaluable = [(d, resp) for d, resp in seq if resp != "NE"]
        # first confirmed PD: PD followed by PD, or PD as the last evaluable assessment
        pd_date = None
        for i, (d, resp) in enumerate(evaluable):
            nxt = evaluable[i + 1][1] if i + 1 < len(evaluable) else None
            if resp == "PD" and nxt in (None, "PD"):
                pd_date = d
                break
        # confirmed CR or better before the first confirmed PD: two consecutive evaluable CR/sCR
        pairs = zip(evaluable, evaluable[1:])
        cr += any(a[1] in CR_OR_BETTER and b[1] in CR_OR_BETTER and (pd_date is None or a[0] < pd_date) for a, b in pairs)
        # PFS (days from infusion, day 1 = infusion)
        adequate_before = lambda x: [d for d, _ in evaluable if d < x]  # noqa: E731

        def missed(last: date | None, ev: date) -> int:
            last_day = (last - t0).days + 1 if last else 1
            ev_day = (ev - t0).days + 1
            return sum(1 for p in planned_days if last_day + 14 < p < ev_day - 14)

        dth = death.get(u)
        if dth and u in nact and dth > nact[u]:
            dth = None  # death after new therapy is not a PFS event
        events = [e for e in (pd_date, dth) if e is not None]
        if events:
            ev = min(events)
            last = max(adequate_before(ev), default=None)
            if missed(last, ev) < 2:
                pfs.append(((ev - t0).days + 1, 1))
                continue
            pfs.append((((last or t0) - t0).days + 1, 0))
            continue
        last = max((d for d, _ in evaluable), default=None)
        pfs.append((((last or t0) - t0).days + 1, 0))

    # DLT: investigator-adjudicated DLT starting day 0..28 after infusion, by actual arm, among
    # the DLT-evaluable (a DLT, or known alive through infusion + 28 days)
    dlt_subj = set()
    supp = {(r["USUBJID"], str(r["IDVARVAL"]).strip()) for r in _recs(sdtm.get("SUPPAE"), QNAM="AEDLT", QVAL="Y")}
    for r in sdtm["AE"].to_dict("records"):
        u = r["USUBJID"]
        seqtxt = str(int(r["AESEQ"])) if r.get("AESEQ") is not None else ""
        d = _d(r.get("AESTDTC"))
        if (u, seqtxt) in supp and u in infusion and d and 0 <= (d - infusion[u]).days <= 28:
            dlt_subj.add(u)
    last_alive = {}
    for dom, var in (("RS", "RSDTC"), ("LB", "LBDTC"), ("AE", "AESTDTC"), ("AE", "AEENDTC"), ("PC", "PCDTC"),
                     ("EX", "EXSTDTC"), ("VS", "VSDTC"), ("CM", "CMSTDTC"), ("PR", "PRSTDTC")):
        for r in (sdtm[dom].to_dict("records") if dom in sdtm and var in sdtm[dom].columns else []):
            d = _d(r.get(var))
            if d:
                last_alive[r["USUBJID"]] = max(last_alive.get(r["USUBJID"], d), d)
    for r in _recs(sdtm.get("SS"), SSSTRESC="ALIVE") + _recs(sdtm.get("DS")):
        if r.get("DSDECOD") == "DEATH":
            continue
        d = _d(r.get("SSDTC") or r.get("DSSTDTC"))
        if d:
            last_alive[r["USUBJID"]] = max(last_alive.get(r["USUBJID"], d), d)
    for r in dm:
        if not r.get("DTHDTC") and _d(r.get("RFPENDTC")):
            d = _d(r["RFPENDTC"])
            last_alive[r["USUBJID"]] = max(last_alive.get(r["USUBJID"], d), d)
        if death.get(r["USUBJID"]):
            last_alive[r["USUBJID"]] = death[r["USUBJID"]]
    by_level: dict[str, list[int]] = {}
    for r in dm:
        u = r["USUBJID"]
        if u not in infusion:
            continue
        ok = u in dlt_subj or (last_alive.get(u) and last_alive[u] >= infusion[u] + timedelta(days=28))
        if ok:
            cell = by_level.setdefault(r["ACTARM"], [0, 0])
            cell[0] += u in dlt_subj
            cell[1] += 1
    return {"n_eff": len(eff), "orr_m3": orr, "cr_or_better": cr, "median_pfs": km_median_python(pfs),
            "dlt_by_level": {k: tuple(v) for k, v in by_level.items()}}


def _same(a: dict, b: dict) -> None:
    assert a["n_eff"] == b["n_eff"]
    assert a["orr_m3"] == b["orr_m3"]
    assert a["cr_or_better"] == b["cr_or_better"]
    assert (math.isnan(a["median_pfs"]) and math.isnan(b["median_pfs"])) or a["median_pfs"] == b["median_pfs"]
    assert a["dlt_by_level"] == b["dlt_by_level"]


def _core_spec():
    spec = load_specs(project_root() / "specs")
    return spec.model_copy(update={"datasets": {k: v for k, v in spec.datasets.items()
                                                if v.purpose == "Tabulation" or k in ("ADSL", "ADRS", "ADTTE")}})


def _build_core(sdtm: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """ADSL, ADRS and ADTTE by the study's plans (only those three: the spec is cut to them)."""
    import shutil
    import tempfile
    from pathlib import Path

    specs = project_root() / "specs"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(specs / "settings", Path(tmp) / "settings")
        (Path(tmp) / "plans").mkdir()
        for name in ("adsl", "adrs", "adtte"):
            if (specs / "plans" / f"{name}.yaml").exists():
                shutil.copy(specs / "plans" / f"{name}.yaml", Path(tmp) / "plans")
        return build_adam(sdtm, _core_spec(), Path(tmp) / "settings").datasets


def test_headline_fixture_agrees_and_matches_hand_values() -> None:
    sdtm = make_sdtm()
    adam = _build_core(sdtm)
    a, b = headline_from_adam(adam), headline_from_sdtm(sdtm)
    _same(a, b)
    # by hand: EFFFL = 1001-1006, 1009 (1007 not measurable, 1008 not infused) -> 7
    # month 3 responders: 1001 (VGPR d91), 1009 (CR d91) -> 2 / 7
    # confirmed CR or better: 1009 -> 1
    # PFS times (event*): 1001 181, 1002 120*, 1003 121*, 1004 29, 1005 29, 1006 80*, 1009 91
    #   KM (at risk = time >= t): t=80 n=5 S=4/5=0.8; t=120 n=3 S=0.8*2/3=0.533; t=121 n=2 S=0.267 -> median 121
    # DLT-evaluable by actual level: DL1 1001, 1002 (DLT), 1003 -> (1, 3); DL2 1004, 1005, 1006, 1009 -> (0, 4)
    assert (a["n_eff"], a["orr_m3"], a["cr_or_better"]) == (7, 2, 1)
    assert a["median_pfs"] == 121
    assert a["dlt_by_level"] == {"DL1: 1.0x10^6 CAR-T cells/kg": (1, 3), "DL2: 3.0x10^6 CAR-T cells/kg": (0, 4)}


def test_km_median_implementations_agree_on_a_reached_median() -> None:
    # times 10*, 20, 30*, 40*, 50: S(10)=4/5, S(30)=4/5*2/3=0.533, S(40)=0.533*1/2=0.267 -> median 40
    pairs = [(10, 1), (20, 0), (30, 1), (40, 1), (50, 0)]
    t = np.array([p[0] for p in pairs], float)
    e = np.array([p[1] for p in pairs])
    assert km_median_numpy(t, e) == km_median_python(pairs) == 40


BUNDLED = project_root()


@pytest.mark.skipif(not ((BUNDLED / "raw").is_dir() and (BUNDLED / "mappings").is_dir()),
                    reason="bundled raw export / mappings not present yet")
def test_headline_bundled_study_agrees() -> None:
    from cdisc_pipe.raw import read_export
    from cdisc_pipe.sdtm import build_sdtm

    spec = load_specs(BUNDLED / "specs")
    sdtm = build_sdtm(read_export(BUNDLED / "raw"), spec, BUNDLED / "mappings").datasets
    adam = _build_core(sdtm)
    a, b = headline_from_adam(adam), headline_from_sdtm(sdtm)
    print("bundled headline:", a)
    _same(a, b)
    assert a["n_eff"] > 0
