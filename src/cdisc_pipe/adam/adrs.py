"""ADRS: IMWG response parameters (BDS), after the admiralonco IMWG pattern.

Parameters (PARAMCD): per assessment ``OVR`` (as recorded), ``COVR`` (confirmed), ``MRD`` (MRD
status); per infused subject ``CBOR``, ``RSP``, ``RSPM3``, ``CRRSP``, ``VGPRRSP``, ``MRDNEG``,
``MRDNEGCR``, ``SMRDNEG``, ``PD``, ``DEATH``, ``LSTA``.  AVAL of a response is its rank in
``response_order`` (1 = best: sCR 1, CR 2, VGPR 3, PR 4, MR 5, SD 6, PD 7, NE 8); Y/N parameters
have AVAL 1/0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.adam.derive import derive_var_extreme_flag, derive_vars_dt, derive_vars_dy, lookup
from cdisc_pipe.adam.settings import AdamSettings, load_adam_settings
from cdisc_pipe.errors import Finding

REQUIRES: dict[str, list[str]] = {"RS": ["USUBJID", "RSSEQ", "RSTESTCD", "RSSTRESC", "RSDTC"]}
CORE = False

OVRLRESP = "OVRLRESP"
MRDIND = "MRDIND"

PARAMS: dict[str, str] = {
    "OVR": "Overall Response by Investigator",
    "COVR": "Confirmed Overall Response by Investigator",
    "CBOR": "Best Confirmed Overall Response by Investigator",
    "RSP": "Confirmed Response (PR or Better) by Investigator",
    "RSPM3": "Response at Month 3 (PR or Better) by Investigator",
    "CRRSP": "Confirmed CR or Better by Investigator",
    "VGPRRSP": "Confirmed VGPR or Better by Investigator",
    "MRD": "MRD Status in Bone Marrow",
    "MRDNEG": "MRD Negativity at 10^-5",
    "MRDNEGCR": "MRD Negativity at 10^-5 and CR or Better",
    "SMRDNEG": "Sustained MRD Negativity (1 Year or More)",
    "PD": "Disease Progression by Investigator",
    "DEATH": "Death",
    "LSTA": "Last Adequate Disease Assessment by Investigator",
}

ADSL_VARS = ["STUDYID", "USUBJID", "SUBJID", "SITEID", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "TRTSDT",
             "SAFFL", "EFFFL", "MRDEVLFL"]


def rank_map(settings: AdamSettings) -> dict[str, float]:
    """Response category -> AVAL (1 = best)."""
    return {r: float(i + 1) for i, r in enumerate(settings.response_order)}


def derive_ovr(rs: pd.DataFrame, adsl: pd.DataFrame, settings: AdamSettings) -> tuple[pd.DataFrame, list[Finding]]:
    """OVR records: RS OVRLRESP by the investigator; ADT from RSDTC (missing day -> last day of the
    month, ADTF "D"); AVAL = rank; ADY relative to TRTSDT; traceability to RS.RSSTRESC/RSSEQ."""
    findings: list[Finding] = []
    src = rs[rs["RSTESTCD"] == OVRLRESP]
    if "RSEVAL" in src.columns:
        src = src[src["RSEVAL"].isna() | (src["RSEVAL"] == "INVESTIGATOR")]
    src = src.merge(adsl[["USUBJID", "TRTSDT", "NACTDT"]], on="USUBJID", how="inner")
    src = derive_vars_dt(src, "A", "RSDTC", highest_imputation="D", date_imputation="last")
    ranks = rank_map(settings)
    out = pd.DataFrame({
        "USUBJID": src["USUBJID"].to_numpy(),
        "PARAMCD": "OVR",
        "AVALC": src["RSSTRESC"].to_numpy(dtype=object),
        "ADT": src["ADT"].to_numpy(),
        "ADTF": src["ADTF"].to_numpy(dtype=object),
        "TRTSDT": src["TRTSDT"].to_numpy(),
        "NACTDT": src["NACTDT"].to_numpy(),
        "AVISIT": src["VISIT"].to_numpy(dtype=object) if "VISIT" in src.columns else None,
        "AVISITN": pd.to_numeric(src["VISITNUM"], errors="coerce").to_numpy() if "VISITNUM" in src.columns else np.nan,
        "SRCDOM": "RS", "SRCVAR": "RSSTRESC",
        "SRCSEQ": pd.to_numeric(src["RSSEQ"], errors="coerce").to_numpy(),
    })
    out["AVAL"] = out["AVALC"].map(ranks).astype("float64")
    for row in out[out["AVALC"].notna() & out["AVAL"].isna()].itertuples():
        findings.append(Finding("ADRS.AVALC.UNKNOWN", "Warning", f"response {row.AVALC!r} is not an IMWG category; record kept, AVAL missing",
                                dataset="RS", usubjid=row.USUBJID, seq=row.SRCSEQ, variable="RSSTRESC", value=row.AVALC))
    for row in out[out["ADT"].isna()].itertuples():
        findings.append(Finding("ADRS.ADT.MISSING", "Warning", "assessment date missing or not imputable; record kept, not analysed",
                                dataset="RS", usubjid=row.USUBJID, seq=row.SRCSEQ, variable="RSDTC"))
    out = derive_vars_dy(out, "TRTSDT", ["ADT"])
    return out, findings


def derive_anl_flags(ovr: pd.DataFrame, settings: AdamSettings) -> pd.DataFrame:
    """ANL01FL: the worst record per subject and date on or after TRTSDT; ANL02FL: ANL01FL and on
    or before NACTDT (new anticancer therapy); ANL03FL: ANL02FL and up to the first PD."""
    post = ovr["ADT"].notna() & ovr["TRTSDT"].notna() & (ovr["ADT"] >= ovr["TRTSDT"]) & ovr["AVAL"].notna()
    out = derive_var_extreme_flag(ovr, ["USUBJID", "ADT"], ["AVAL"], "ANL01FL", mode="last", filter_mask=post)
    before_nact = out["NACTDT"].isna() | (out["ADT"] <= out["NACTDT"])
    out["ANL02FL"] = np.where((out["ANL01FL"] == "Y") & before_nact, "Y", None)
    pd_dates = out[(out["ANL02FL"] == "Y") & (out["AVALC"] == settings.pd_response)].groupby("USUBJID")["ADT"].min()
    first_pd = lookup(out["USUBJID"], pd_dates)
    out["ANL03FL"] = np.where((out["ANL02FL"] == "Y") & (first_pd.isna() | (out["ADT"] <= first_pd)), "Y", None)
    for c in ("ANL02FL", "ANL03FL"):
        out[c] = out[c].astype(object)
    return out


def derive_confirmed(ovr: pd.DataFrame, settings: AdamSettings) -> pd.DataFrame:
    """COVR: confirmed response per analysed assessment (ANL02FL records), IMWG 2016 style.

    - A response needing confirmation (``confirm_responses``, MR or better) at an assessment is
      confirmed at the level of the worse of it and the *next evaluable* assessment (NE skipped);
      without a next assessment it is unconfirmed and counts as SD.  SD needs no confirmation.
    - PD is confirmed by a next evaluable PD, or when it is the subject's last evaluable assessment
      (no further assessment was possible); the PD date is that of the first PD of the pair.
    - A subject stays in the best confirmed category reached so far until confirmed PD.
    - NE assessments carry the current confirmed category (NE before any evaluable assessment).
    Adds ``PDCONF`` ("Y" on the assessment where confirmed PD starts).
    """
    ranks = rank_map(settings)
    cats = {v: k for k, v in ranks.items()}
    pd_rank, sd_rank = ranks[settings.pd_response], ranks.get("SD")
    ne = set(settings.not_evaluable)
    conf_ranks = {ranks[r] for r in settings.confirm_responses}
    a = ovr[ovr["ANL02FL"] == "Y"].sort_values(["USUBJID", "ADT"], kind="mergesort").copy(deep=False)
    evaluable = ~a["AVALC"].isin(ne)
    ev = a[evaluable]
    nxt = ev.groupby("USUBJID")["AVAL"].shift(-1)
    worse = np.fmax(ev["AVAL"], nxt)  # fmax: NaN next -> the record itself
    needs = ev["AVAL"].isin(conf_ranks)
    is_pd = ev["AVAL"] == pd_rank
    level = pd.Series(np.nan, index=ev.index)
    confirmed_resp = needs & nxt.notna() & pd.Series(worse, index=ev.index).isin(conf_ranks)
    level[confirmed_resp] = pd.Series(worse, index=ev.index)[confirmed_resp]
    # Unconfirmed responses and SD count as SD; a response confirmed only to SD is SD.
    stable = (needs & ~confirmed_resp) | (ev["AVAL"] == sd_rank)
    if sd_rank is not None:
        level[stable & level.isna()] = sd_rank
    pd_conf = is_pd & (nxt.isna() | (nxt == pd_rank)) if settings.confirm_pd else is_pd
    a["__level"] = level
    a["__pd"] = pd_conf.reindex(a.index).fillna(False).astype(bool)
    a["__best"] = a.groupby("USUBJID")["__level"].cummin()
    # cummin skips NaN but leaves NaN on those rows; carry the running best forward.
    a["__best"] = a.groupby("USUBJID")["__best"].ffill()
    a["__pdcum"] = a.groupby("USUBJID")["__pd"].cummax().astype(bool)
    aval = np.where(a["__pdcum"], pd_rank, a["__best"])
    aval = np.where(np.isnan(aval.astype("float64")), ranks[settings.not_evaluable[0]], aval)
    out = a.drop(columns=["__level", "__best", "__pdcum"]).copy(deep=False)
    out["PARAMCD"] = "COVR"
    out["AVAL"] = aval.astype("float64")
    out["AVALC"] = out["AVAL"].map(cats).astype(object)
    first_pd = out.loc[out["__pd"]].groupby("USUBJID")["ADT"].min()
    out["PDCONF"] = np.where(out["__pd"] & (out["ADT"] == lookup(out["USUBJID"], first_pd)), "Y", None)
    out = out.drop(columns=["__pd"])
    fp = lookup(out["USUBJID"], first_pd)
    out["ANL03FL"] = np.where(fp.isna() | (out["ADT"] <= fp), "Y", None).astype(object)
    out["SRCDOM"], out["SRCVAR"] = "RS", "RSSTRESC"
    return out


def _subject_param(adsl: pd.DataFrame, paramcd: str, avalc: pd.Series, adt: pd.Series | None = None,
                   seq: pd.Series | None = None, srcdom: str | None = "ADRS", srcvar: str | None = None) -> pd.DataFrame:
    """One record per infused subject for a subject-level parameter (avalc etc. indexed by USUBJID)."""
    subj = adsl.loc[adsl["SAFFL"] == "Y", ["USUBJID", "TRTSDT", "NACTDT"]].copy(deep=False)
    subj["PARAMCD"] = paramcd
    subj["AVALC"] = lookup(subj["USUBJID"], avalc).astype(object)
    subj["ADT"] = lookup(subj["USUBJID"], adt).astype("datetime64[ns]") if adt is not None else pd.NaT
    subj["SRCSEQ"] = lookup(subj["USUBJID"], seq).astype("float64") if seq is not None else np.nan
    # traced only when the value comes from a source record (a date or a sequence number)
    traced = (subj["SRCSEQ"].notna() | subj["ADT"].notna()) & bool(srcdom and srcvar)
    subj["SRCDOM"] = pd.Series(np.where(traced, srcdom, None), index=subj.index, dtype=object)
    subj["SRCVAR"] = pd.Series(np.where(traced, srcvar, None), index=subj.index, dtype=object)
    return subj


def _yn_param(adsl: pd.DataFrame, paramcd: str, yes: pd.Series, adt: pd.Series | None = None,
              seq: pd.Series | None = None, srcdom: str | None = "RS", srcvar: str | None = None) -> pd.DataFrame:
    """Y/N subject parameter: Y for USUBJIDs in ``yes`` (a boolean Series by USUBJID)."""
    flags = yes[yes].index
    rec = _subject_param(adsl, paramcd, pd.Series(dtype=object), adt, seq, srcdom, srcvar)
    rec["AVALC"] = np.where(rec["USUBJID"].isin(flags), "Y", "N").astype(object)
    rec["AVAL"] = np.where(rec["AVALC"] == "Y", 1.0, 0.0)
    rec.loc[rec["AVALC"] == "N", ["ADT"]] = pd.NaT
    rec.loc[rec["AVALC"] == "N", "SRCSEQ"] = np.nan
    rec.loc[rec["AVALC"] == "N", ["SRCDOM", "SRCVAR"]] = None
    return rec


def derive_best_and_responders(covr: pd.DataFrame, adsl: pd.DataFrame, settings: AdamSettings) -> list[pd.DataFrame]:
    """CBOR (best COVR up to the first confirmed PD, before new therapy; NE without assessments),
    RSP (CBOR PR or better), CRRSP (CR or better), VGPRRSP (VGPR or better); ADT = the first date
    the category was reached (the DOR start for RSP)."""
    ranks = rank_map(settings)
    cats = {v: k for k, v in ranks.items()}
    c = covr[covr["ANL03FL"] == "Y"].sort_values(["USUBJID", "ADT"], kind="mergesort")
    best = c.groupby("USUBJID")["AVAL"].min()
    at_best = c[c["AVAL"] == lookup(c["USUBJID"], best)].drop_duplicates("USUBJID", keep="first").set_index("USUBJID")
    cbor = _subject_param(adsl, "CBOR", best.map(cats), at_best["ADT"], at_best["SRCSEQ"], "RS", "RSSTRESC")
    cbor["AVALC"] = cbor["AVALC"].where(cbor["AVALC"].notna(), settings.not_evaluable[0])
    cbor["AVAL"] = cbor["AVALC"].map(ranks).astype("float64")
    out = [cbor]
    for paramcd, floor in (("RSP", "PR"), ("VGPRRSP", "VGPR"), ("CRRSP", "CR")):
        lim = ranks[floor]
        reached = c[c["AVAL"] <= lim].drop_duplicates("USUBJID", keep="first").set_index("USUBJID")
        yes = pd.Series(True, index=reached.index)
        out.append(_yn_param(adsl, paramcd, yes, reached["ADT"], reached["SRCSEQ"], "RS", "RSSTRESC"))
    return out


def derive_month3_response(ovr: pd.DataFrame, adsl: pd.DataFrame, settings: AdamSettings) -> pd.DataFrame:
    """RSPM3: the analysed OVR assessment (ANL02FL) with study day in [lower, upper] closest to
    ``target_day`` (ties -> earlier, per settings); Y when PR or better; none in window -> N."""
    w = settings.orr_month3
    cand = ovr[(ovr["ANL02FL"] == "Y") & ovr["ADY"].between(w.lower_day, w.upper_day)].copy(deep=False)
    cand["__dist"] = (cand["ADY"] - w.target_day).abs()
    cand["__tie"] = cand["ADY"] if w.tie == "earlier" else -cand["ADY"]
    chosen = cand.sort_values(["USUBJID", "__dist", "__tie"], kind="mergesort").drop_duplicates("USUBJID").set_index("USUBJID")
    yes = chosen["AVALC"].isin(w.responses)
    rec = _yn_param(adsl, w.paramcd, yes, chosen["ADT"], chosen["SRCSEQ"], "RS", "RSSTRESC")
    # The assessment used is traced even when it is not a response.
    rec["ADT"] = lookup(rec["USUBJID"], chosen["ADT"]).astype("datetime64[ns]")
    rec["SRCSEQ"] = lookup(rec["USUBJID"], chosen["SRCSEQ"]).astype("float64")
    has = rec["SRCSEQ"].notna()
    rec["SRCDOM"] = np.where(has, "RS", None)
    rec["SRCVAR"] = np.where(has, "RSSTRESC", None)
    return rec


def derive_mrd_sensitivity(mrd: pd.DataFrame, lb: pd.DataFrame | None, sensitivity: float) -> tuple[pd.DataFrame, list[Finding]]:
    """CRIT1/CRIT1FL on MRD records: Y when NEGATIVE and the NGS measurement of the same day (LB,
    LBSPEC BONE MARROW, LBMETHOD NEXT GENERATION SEQUENCING) has LBLLOQ <= ``sensitivity``; a
    negative without a same-day NGS record keeps the investigator's status (Y).  A negative at a
    coarser sensitivity is N and reported (Notice)."""
    out = mrd.copy(deep=False)
    out["CRIT1"] = f"MRD NEGATIVE AT SENSITIVITY {sensitivity:.0E} OR BETTER"
    llod = pd.Series(np.nan, index=out.index)
    if lb is not None and {"LBSPEC", "LBMETHOD", "LBLLOQ", "LBDTC"} <= set(lb.columns):
        ngs = lb[(lb["LBSPEC"] == "BONE MARROW") & (lb["LBMETHOD"] == "NEXT GENERATION SEQUENCING")]
        ngs = derive_vars_dt(ngs, "L", "LBDTC")
        ngs = ngs.assign(__llq=pd.to_numeric(ngs["LBLLOQ"], errors="coerce"))
        ngs = ngs[ngs["LDT"].notna() & ngs["__llq"].notna()].groupby(["USUBJID", "LDT"], as_index=False)["__llq"].min()
        key = out[["USUBJID", "ADT"]].rename(columns={"ADT": "LDT"}).reset_index()
        llod = key.merge(ngs, on=["USUBJID", "LDT"], how="left").set_index("index")["__llq"].reindex(out.index)
    neg = out["AVALC"] == "NEGATIVE"
    coarse = neg & llod.notna() & (llod > sensitivity)
    out["CRIT1FL"] = np.where(neg & ~coarse, "Y", "N").astype(object)
    findings = [Finding("ADRS.MRD.SENSITIVITY", "Notice",
                        f"MRD NEGATIVE at sensitivity {llod[row.Index]:g}, "
                        f"coarser than {sensitivity:g}: not counted as MRD-negative", dataset="ADRS",
                        usubjid=row.USUBJID, seq=row.SRCSEQ, variable="CRIT1FL")
                for row in out[coarse].itertuples()]
    return out, findings


def derive_mrd(rs: pd.DataFrame, adsl: pd.DataFrame, cbor_cr: pd.DataFrame, settings: AdamSettings,
               lb: pd.DataFrame | None = None) -> tuple[list[pd.DataFrame], list[Finding]]:
    """MRD per assessment (RS MRDIND; ANL01FL post-infusion, ANL02FL before new therapy; CRIT1FL =
    negative at the required sensitivity) and the subject parameters MRDNEG (any analysed CRIT1FL
    negative), MRDNEGCR (the first such negative on or after CR or better was reached, CRRSP ADT),
    SMRDNEG (two such negatives >=
    ``sustained_mrd_days`` apart with no positive between them)."""
    src = rs[rs["RSTESTCD"] == MRDIND].merge(adsl[["USUBJID", "TRTSDT", "NACTDT"]], on="USUBJID", how="inner")
    src = derive_vars_dt(src, "A", "RSDTC", highest_imputation="D", date_imputation="last")
    mrd = pd.DataFrame({
        "USUBJID": src["USUBJID"].to_numpy(), "PARAMCD": "MRD",
        "AVALC": src["RSSTRESC"].to_numpy(dtype=object), "ADT": src["ADT"].to_numpy(),
        "ADTF": src["ADTF"].to_numpy(dtype=object), "TRTSDT": src["TRTSDT"].to_numpy(),
        "NACTDT": src["NACTDT"].to_numpy(),
        "AVISIT": src["VISIT"].to_numpy(dtype=object) if "VISIT" in src.columns else None,
        "AVISITN": pd.to_numeric(src["VISITNUM"], errors="coerce").to_numpy() if "VISITNUM" in src.columns else np.nan,
        "SRCDOM": "RS", "SRCVAR": "RSSTRESC", "SRCSEQ": pd.to_numeric(src["RSSEQ"], errors="coerce").to_numpy(),
    })
    mrd["AVAL"] = mrd["AVALC"].map({"NEGATIVE": 1.0, "POSITIVE": 0.0}).astype("float64")
    mrd = derive_vars_dy(mrd, "TRTSDT", ["ADT"])
    post = mrd["ADT"].notna() & (mrd["ADT"] >= mrd["TRTSDT"]) & mrd["AVAL"].notna()
    mrd["ANL01FL"] = np.where(post, "Y", None).astype(object)
    mrd["ANL02FL"] = np.where(post & (mrd["NACTDT"].isna() | (mrd["ADT"] <= mrd["NACTDT"])), "Y", None).astype(object)
    mrd, findings = derive_mrd_sensitivity(mrd, lb, settings.mrd_sensitivity)
    a = mrd[mrd["ANL02FL"] == "Y"].sort_values(["USUBJID", "ADT"], kind="mergesort")
    neg = a[a["CRIT1FL"] == "Y"]
    first_neg = neg.drop_duplicates("USUBJID").set_index("USUBJID")
    mrdneg = _yn_param(adsl, "MRDNEG", pd.Series(True, index=first_neg.index), first_neg["ADT"], first_neg["SRCSEQ"],
                       "RS", "RSSTRESC")
    # MRD-negative CR: the first analysed negative on or after the date CR or better was first
    # reached (CRRSP ADT) - a negative marrow while still in VGPR is not an MRD-negative CR.
    cr_date = cbor_cr.loc[cbor_cr["AVALC"] == "Y"].set_index("USUBJID")["ADT"]
    in_cr = neg[lookup(neg["USUBJID"], cr_date).notna() & (neg["ADT"] >= lookup(neg["USUBJID"], cr_date))]
    both = in_cr.drop_duplicates("USUBJID").set_index("USUBJID")
    mrdnegcr = _yn_param(adsl, "MRDNEGCR", pd.Series(True, index=both.index), both["ADT"], both["SRCSEQ"], "RS", "RSSTRESC")
    # Sustained: negatives from the first negative up to the first positive after it.
    a2 = a.assign(__f=lookup(a["USUBJID"], first_neg["ADT"]))
    a2 = a2[a2["__f"].notna()]
    pos_after = a2[(a2["AVALC"] == "POSITIVE") & (a2["ADT"] > a2["__f"])].groupby("USUBJID")["ADT"].min()
    a2["__p"] = lookup(a2["USUBJID"], pos_after)
    run = a2[(a2["CRIT1FL"] == "Y") & (a2["__p"].isna() | (a2["ADT"] < a2["__p"]))]
    span = (run.groupby("USUBJID")["ADT"].max() - run.groupby("USUBJID")["ADT"].min()).dt.days
    sustained = span[span >= settings.sustained_mrd_days]
    fs = first_neg[first_neg.index.isin(sustained.index)]
    smrd = _yn_param(adsl, "SMRDNEG", pd.Series(True, index=fs.index), fs["ADT"], fs["SRCSEQ"], "RS", "RSSTRESC")
    return [mrd, mrdneg, mrdnegcr, smrd], findings


def derive_event_params(covr: pd.DataFrame, ovr: pd.DataFrame, adsl: pd.DataFrame, settings: AdamSettings) -> list[pd.DataFrame]:
    """PD (confirmed PD before new therapy; ADT = first PD of the confirming pair), DEATH (ADSL
    DTHDT) and LSTA (last evaluable analysed assessment while progression-free: before the PD date;
    PD after new therapy is not analysed, so LSTA is then on or before NACTDT)."""
    pdrec = covr[covr["PDCONF"] == "Y"].drop_duplicates("USUBJID").set_index("USUBJID")
    pd_param = _yn_param(adsl, "PD", pd.Series(True, index=pdrec.index), pdrec["ADT"], pdrec["SRCSEQ"], "RS", "RSSTRESC")
    dead = adsl.set_index("USUBJID")["DTHDT"].dropna()
    death = _yn_param(adsl, "DEATH", pd.Series(True, index=dead.index), dead, None, "ADSL", "DTHDT")
    pd_dt = pdrec["ADT"]
    ok = ovr[(ovr["ANL02FL"] == "Y") & ~ovr["AVALC"].isin(settings.not_evaluable)]
    ok = ok[lookup(ok["USUBJID"], pd_dt).isna() | (ok["ADT"] < lookup(ok["USUBJID"], pd_dt))]
    last = ok.sort_values(["USUBJID", "ADT"], kind="mergesort").drop_duplicates("USUBJID", keep="last").set_index("USUBJID")
    lsta = _subject_param(adsl, "LSTA", last["AVALC"], last["ADT"], last["SRCSEQ"], "RS", "RSSTRESC")
    lsta["AVAL"] = lsta["AVALC"].map(rank_map(settings)).astype("float64")
    return [pd_param, death, lsta]


def build(sdtm: dict[str, pd.DataFrame], adsl: pd.DataFrame, settings_dir: Path) -> tuple[pd.DataFrame, list[Finding]]:
    """Build ADRS from RS (OVRLRESP and MRDIND records) and ADSL."""
    settings = load_adam_settings(settings_dir)
    rs = sdtm["RS"]
    ovr, findings = derive_ovr(rs, adsl, settings)
    ovr = derive_anl_flags(ovr, settings)
    covr = derive_confirmed(ovr, settings)
    subject = derive_best_and_responders(covr, adsl, settings)
    m3 = derive_month3_response(ovr, adsl, settings)
    crrsp = subject[3]  # derive_best_and_responders returns CBOR, RSP, VGPRRSP, CRRSP
    mrd, f = derive_mrd(rs, adsl, crrsp, settings, sdtm.get("LB"))
    findings += f
    events = derive_event_params(covr, ovr, adsl, settings)
    covr = covr.drop(columns=["PDCONF"])
    parts = [ovr, covr, *subject, m3, *mrd, *events]
    parts = [p for p in parts if len(p)]
    out = pd.concat(parts, ignore_index=True) if parts else ovr.iloc[0:0]
    # Columns only some parameters carry (absent when, e.g., RS has no OVRLRESP records).
    for col in ("AVISIT", "ADTF", "CRIT1", "CRIT1FL", "SRCDOM", "SRCVAR"):
        if col not in out.columns:
            out[col] = None
    for col in ("AVISITN", "SRCSEQ", "AVAL"):
        if col not in out.columns:
            out[col] = np.nan
    out["PARAM"] = out["PARAMCD"].map(PARAMS).astype(object)
    for flag in ("ANL01FL", "ANL02FL", "ANL03FL"):
        if flag not in out.columns:
            out[flag] = None
        out[flag] = out[flag].astype(object).where(out[flag].notna(), None)
    # Subject-level Y/N and category parameters are analysis records by construction.
    subj_level = ~out["PARAMCD"].isin(["OVR", "COVR", "MRD"])
    out.loc[subj_level, ["ANL01FL", "ANL02FL", "ANL03FL"]] = None
    out = derive_vars_dy(out.drop(columns=["ADY"], errors="ignore"), "TRTSDT", ["ADT"])
    keep = [c for c in ADSL_VARS if c not in ("USUBJID", "TRTSDT")]
    out = out.drop(columns=["NACTDT"], errors="ignore").merge(adsl[["USUBJID"] + keep], on="USUBJID", how="left")
    order = {p: i for i, p in enumerate(PARAMS)}
    out["__p"] = out["PARAMCD"].map(order)
    out = out.sort_values(["USUBJID", "__p", "ADT", "SRCSEQ"], kind="mergesort", na_position="last").drop(columns="__p")
    out["ASEQ"] = out.groupby("USUBJID").cumcount().astype("float64") + 1
    out = out.reset_index(drop=True)
    out["ADT"] = pd.to_datetime(out["ADT"]).astype("datetime64[ns]")
    out["TRTSDT"] = pd.to_datetime(out["TRTSDT"]).astype("datetime64[ns]")
    for c in ("AVALC", "ADTF", "AVISIT", "SRCDOM", "SRCVAR", "CRIT1", "CRIT1FL"):
        out[c] = out[c].astype(object).where(out[c].notna(), None) if c in out.columns else None
    return out, findings
