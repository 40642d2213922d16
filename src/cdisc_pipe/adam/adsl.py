"""ADSL: one record per subject in DM (enrolled = apheresed, plus any screened subject in DM).

Each step below is a small derivation on the subject-level frame; the inputs beyond DM and EX are
optional: when a domain is absent the variables it feeds stay missing and a Notice finding says so.
Definitions follow ../shared/domain/STUDY.md section A and 3.1 (see also specs/adam/adsl.yaml).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.adam.derive import (
    derive_var_merged_exist_flag,
    derive_vars_ae_dt,
    derive_vars_dt,
    derive_vars_dtm,
    derive_vars_merged,
    dlt_window_mask,
    impute_dtc_dt,
    suppqual_wide,
)
from cdisc_pipe.adam.derive_bds import before_reference
from cdisc_pipe.adam.settings import AdamSettings, MeasurableRule, load_adam_settings
from cdisc_pipe.errors import Finding

REQUIRES: dict[str, list[str]] = {
    "DM": ["STUDYID", "USUBJID", "SUBJID", "SITEID", "AGE", "AGEU", "SEX", "RACE", "ARMCD", "ARM",
           "ACTARMCD", "ACTARM", "RFSTDTC", "RFICDTC", "DTHFL", "DTHDTC"],
    "EX": ["USUBJID", "EXCAT", "EXTRT", "EXDOSE", "EXDOSU", "EXSTDTC"],
}
CORE = True

# Optional inputs and the ADSL variables they feed (for the Notice when absent).
OPTIONAL: dict[str, tuple[list[str], str]] = {
    "PR": (["USUBJID", "PRTRT", "PRSTDTC"], "APHDT, ENRLDT, ENRLFL, NACTDT (subsequent ASCT)"),
    "DS": (["USUBJID", "DSCAT", "DSDECOD", "DSSTDTC"], "EOSSTT, EOSDT, DCSREAS"),
    "CM": (["USUBJID", "CMCAT", "CMSTDTC"], "NACTDT, PRLINES, REFLSTFL, BRIDGFL"),
    "MH": (["USUBJID", "MHSEQ", "MHCAT"], "ISS, RISS, HRCYTOFL, EMDFL"),
    "RS": (["USUBJID", "RSTESTCD", "RSSTRESC", "RSDTC"], "BECOG, MRDEVLFL, LSTALVDT"),
    "LB": (["USUBJID", "LBTESTCD", "LBSTRESN", "LBSTRESU", "LBDTC"], "MDTYPE, BLDISFL, EFFFL"),
    "AE": (["USUBJID", "AESEQ", "AESTDTC"], "DLTFL, DLTEVLFL"),
    "DD": (["USUBJID", "DDSTRESC"], "DTHCAUS"),
    "PC": (["USUBJID", "PCSTRESN", "PCDTC"], "PKFL"),
}

CART = "CAR-T"
LYMPHODEPLETION = "LYMPHODEPLETION"


def _has(sdtm: dict[str, pd.DataFrame], name: str) -> bool:
    need = OPTIONAL[name][0]
    return name in sdtm and all(v in sdtm[name].columns for v in need)


def _yn(mask: pd.Series) -> pd.Series:
    return pd.Series(np.where(mask.fillna(False).astype(bool), "Y", "N"), index=mask.index, dtype=object)


def _text(series: pd.Series) -> pd.Series:
    return pd.Series(np.where(series.isna(), None, series.astype(object)), index=series.index, dtype=object)


def derive_trt_dates(adsl: pd.DataFrame, ex: pd.DataFrame) -> pd.DataFrame:
    """TRTSDTM/TRTSDT/TRTSTMF/TRTEDT (first CAR-T record with EXDOSE > 0), DOSE01A/DOSE01U,
    LDSDT/LDEDT (first/last lymphodepletion dose)."""
    cart = ex[(ex["EXCAT"] == CART) & (pd.to_numeric(ex["EXDOSE"], errors="coerce") > 0)]
    # Seconds are never collected on the infusion form: no "S" flag for them.
    cart = derive_vars_dtm(cart, "EX", "EXSTDTC", highest_imputation="h", time_imputation="first",
                           flag_imputation="time", ignore_seconds_flag=True)
    cart = cart[cart["EXDTM"].notna()]
    out = derive_vars_merged(adsl, cart, ["USUBJID"],
                             {"TRTSDTM": "EXDTM", "TRTSTMF": "EXTMF", "DOSE01A": "EXDOSE", "DOSE01U": "EXDOSU"},
                             order=["EXDTM"], mode="first")
    out["TRTSDT"] = out["TRTSDTM"].dt.normalize()
    out["TRTEDT"] = out["TRTSDT"]  # single infusion: treatment ends the day it starts
    out["DOSE01A"] = pd.to_numeric(out["DOSE01A"], errors="coerce").astype("float64")
    ld = derive_vars_dt(ex[ex["EXCAT"] == LYMPHODEPLETION], "EXS", "EXSTDTC")
    end_col = "EXENDTC" if "EXENDTC" in ld.columns else "EXSTDTC"
    ld = derive_vars_dt(ld, "EXE", end_col)
    ld["EXEDT"] = ld["EXEDT"].fillna(ld["EXSDT"])
    out = derive_vars_merged(out, ld[ld["EXSDT"].notna()], ["USUBJID"], {"LDSDT": "EXSDT"}, order=["EXSDT"], mode="first")
    out = derive_vars_merged(out, ld[ld["EXEDT"].notna()], ["USUBJID"], {"LDEDT": "EXEDT"}, order=["EXEDT"], mode="last")
    return out


def arm_labels(adsl: pd.DataFrame, ta: pd.DataFrame | None) -> dict[str, str]:
    """Dose-level code -> label, from DM ARMCD/ARM, DM ACTARMCD/ACTARM and TA ARMCD/ARM."""
    pairs = [adsl[["ARMCD", "ARM"]], adsl[["ACTARMCD", "ACTARM"]].set_axis(["ARMCD", "ARM"], axis=1)]
    if ta is not None and {"ARMCD", "ARM"} <= set(ta.columns):
        pairs.insert(0, ta[["ARMCD", "ARM"]])
    allp = pd.concat(pairs, ignore_index=True).dropna()
    return allp.drop_duplicates("ARMCD").set_index("ARMCD")["ARM"].to_dict()


def derive_treatment_vars(adsl: pd.DataFrame, settings: AdamSettings, ta: pd.DataFrame | None = None
                          ) -> tuple[pd.DataFrame, list[Finding]]:
    """TRT01P/TRT01PN (planned dose level = ARM), DOSE01P, TRT01A/TRT01AN (level matching the
    infused dose within the relative tolerance; the nearest level when several match).

    Level numbers follow the order of ``planned_dose`` in the settings (DL1 -> 1 ...).  A subject
    whose infused dose matches no level keeps TRT01A missing and gets a Warning.
    """
    findings: list[Finding] = []
    out = adsl.copy(deep=False)
    levels = list(settings.planned_dose)
    number = {cd: float(i + 1) for i, cd in enumerate(levels)}
    arm_label = arm_labels(out, ta)
    # TRT01P = DM.ARM; where ARM is missing, the label of ARMCD from TA or the actual arms.
    out["TRT01P"] = _text(out["ARM"].where(out["ARM"].notna(), out["ARMCD"].map(arm_label)))
    no_arm = out[out["ARM"].isna() & out["ARMCD"].notna()]
    if len(no_arm):
        findings.append(Finding("ADSL.DM.ARM", "Warning",
                                f"DM.ARM is missing for {len(no_arm)} subject(s) with ARMCD; TRT01P takes the arm "
                                "label of ARMCD from TA/ACTARM", dataset="DM", usubjid=no_arm["USUBJID"].iloc[0],
                                variable="ARM"))
    out["TRT01PN"] = out["ARMCD"].map(number).astype("float64")
    out["DOSE01P"] = out["ARMCD"].map(settings.planned_dose).astype("float64")
    dose = out["DOSE01A"].to_numpy(dtype="float64")
    if levels:
        planned = np.array([settings.planned_dose[cd] for cd in levels], dtype="float64")
        rel = np.abs(dose[:, None] - planned[None, :]) / planned[None, :]
        rel = np.where(rel <= settings.dose_tolerance, rel, np.inf)
        best = np.argmin(rel, axis=1)
        matched = np.isfinite(rel[np.arange(len(dose)), best]) & ~np.isnan(dose)
        codes = np.where(matched, np.array(levels, dtype=object)[best], None)
    else:
        matched = np.zeros(len(dose), dtype=bool)
        codes = np.full(len(dose), None, dtype=object)
    code_s = pd.Series(codes, index=out.index, dtype=object)
    out["TRT01A"] = _text(code_s.map(arm_label))
    out["TRT01AN"] = code_s.map(number).astype("float64")
    # Level label not seen among planned arms (e.g. everyone at DL3 was planned DL2): use the code.
    no_label = code_s.notna() & out["TRT01A"].isna()
    out.loc[no_label, "TRT01A"] = code_s[no_label]
    unmatched = out[out["DOSE01A"].notna() & ~pd.Series(matched, index=out.index)]
    for row in unmatched.itertuples():  # findings only: one per problem subject
        findings.append(Finding("ADSL.TRT01A.NOLEVEL", "Warning",
                                f"infused dose {row.DOSE01A} matches no dose level within {settings.dose_tolerance:.0%}",
                                dataset="ADSL", usubjid=row.USUBJID, variable="TRT01A", value=str(row.DOSE01A)))
    differs = out[out["TRT01A"].notna() & out["ACTARM"].notna() & (out["TRT01A"] != out["ACTARM"])]
    for row in differs.itertuples():
        findings.append(Finding("ADSL.TRT01A.ACTARM", "Warning",
                                f"actual dose level {row.TRT01A!r} differs from ACTARM {row.ACTARM!r}",
                                dataset="ADSL", usubjid=row.USUBJID, variable="TRT01A", value=row.TRT01A))
    return out, findings


def derive_apheresis(adsl: pd.DataFrame, pr: pd.DataFrame) -> pd.DataFrame:
    """APHDT = first leukapheresis (PR PRTRT LEUKAPHERESIS); ENRLDT = APHDT (enrolled = apheresed)."""
    aph = derive_vars_dt(pr[pr["PRTRT"] == "LEUKAPHERESIS"], "PR", "PRSTDTC")
    out = derive_vars_merged(adsl, aph[aph["PRDT"].notna()], ["USUBJID"], {"APHDT": "PRDT"}, order=["PRDT"], mode="first")
    out["ENRLDT"] = out["APHDT"]
    return out


def derive_disposition(adsl: pd.DataFrame, ds: pd.DataFrame) -> pd.DataFrame:
    """EOSSTT (COMPLETED / DISCONTINUED / ONGOING), EOSDT, DCSREAS from DS disposition events."""
    disp = ds[ds["DSCAT"] == "DISPOSITION EVENT"]
    disp = derive_vars_dt(disp, "DS", "DSSTDTC")
    out = derive_vars_merged(adsl, disp, ["USUBJID"], {"EOSDT": "DSDT", "__DSDECOD": "DSDECOD"},
                             order=["DSDT"], mode="last")
    dec = out.pop("__DSDECOD")
    out["EOSSTT"] = pd.Series(np.where(dec.isna(), "ONGOING", np.where(dec == "COMPLETED", "COMPLETED", "DISCONTINUED")),
                              index=out.index, dtype=object)
    out["DCSREAS"] = pd.Series(np.where(dec.notna() & (dec != "COMPLETED"), dec, None), index=out.index, dtype=object)
    return out


def derive_death(adsl: pd.DataFrame, dd: pd.DataFrame | None) -> pd.DataFrame:
    """DTHDT (DM.DTHDTC, a missing day imputed to the 1st, flag DTHDTF) and DTHCAUS (DD)."""
    out = derive_vars_dt(adsl, "DTH", "DTHDTC", highest_imputation="D", date_imputation="first")
    out["DTHFL"] = _text(out["DTHFL"])
    if dd is not None:
        src = dd.copy(deep=False)
        if "DDTESTCD" in src.columns:
            # the primary cause first
            src["__ord"] = np.where(src["DDTESTCD"] == "PRCDTH", 0, 1)
        else:
            src["__ord"] = 0
        src = src[src["DDSTRESC"].notna()]
        out = derive_vars_merged(out, src, ["USUBJID"], {"DTHCAUS": "DDSTRESC"}, order=["__ord"], mode="first")
    else:
        out["DTHCAUS"] = None
    return out


def derive_nact(adsl: pd.DataFrame, cm: pd.DataFrame | None, pr: pd.DataFrame | None) -> pd.DataFrame:
    """NACTDT: first new anticancer therapy after infusion (CM SUBSEQUENT ANTI-CANCER THERAPY or PR
    SUBSEQUENT THERAPY such as a post-infusion ASCT); a missing day is imputed to the 1st
    (the earliest possible start: conservative for PFS censoring).  Bridging therapy is not new therapy."""
    parts = []
    if cm is not None:
        c = cm[cm["CMCAT"] == "SUBSEQUENT ANTI-CANCER THERAPY"]
        parts.append(derive_vars_dt(c, "N", "CMSTDTC", highest_imputation="D", date_imputation="first")[["USUBJID", "NDT", "NDTF"]])
    if pr is not None and "PRCAT" in pr.columns:
        p = pr[pr["PRCAT"] == "SUBSEQUENT THERAPY"]
        parts.append(derive_vars_dt(p, "N", "PRSTDTC", highest_imputation="D", date_imputation="first")[["USUBJID", "NDT", "NDTF"]])
    if not parts:
        out = adsl.copy(deep=False)
        out["NACTDT"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]")
        out["NACTDTF"] = None
        return out
    allnew = pd.concat(parts, ignore_index=True)
    allnew = allnew.merge(adsl[["USUBJID", "TRTSDT"]], on="USUBJID", how="inner")
    allnew = allnew[allnew["NDT"].notna() & allnew["TRTSDT"].notna() & (allnew["NDT"] >= allnew["TRTSDT"])]
    return derive_vars_merged(adsl, allnew, ["USUBJID"], {"NACTDT": "NDT", "NACTDTF": "NDTF"}, order=["NDT"], mode="first")


def derive_lstalvdt(adsl: pd.DataFrame, sdtm: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """LSTALVDT: the latest complete date the subject is known alive, over DM (RFICDTC, RFPENDTC
    unless dead), EX, RS, LB, AE, PC, VS, DS (non-death), SS (ALIVE), PR and CM start dates.
    For a subject who died, LSTALVDT is the death date (the last day known alive)."""
    sources: list[tuple[str, str]] = [
        ("EX", "EXSTDTC"), ("EX", "EXENDTC"), ("RS", "RSDTC"), ("LB", "LBDTC"), ("AE", "AESTDTC"),
        ("AE", "AEENDTC"), ("PC", "PCDTC"), ("VS", "VSDTC"), ("PR", "PRSTDTC"), ("CM", "CMSTDTC"),
    ]
    frames = []
    for dom, var in sources:
        if dom in sdtm and var in sdtm[dom].columns:
            frames.append(pd.DataFrame({"USUBJID": sdtm[dom]["USUBJID"], "DTC": sdtm[dom][var]}))
    if "SS" in sdtm and {"SSDTC", "SSSTRESC"} <= set(sdtm["SS"].columns):
        ss = sdtm["SS"][sdtm["SS"]["SSSTRESC"] == "ALIVE"]
        frames.append(pd.DataFrame({"USUBJID": ss["USUBJID"], "DTC": ss["SSDTC"]}))
    if "DS" in sdtm and {"DSSTDTC", "DSDECOD"} <= set(sdtm["DS"].columns):
        ds = sdtm["DS"][sdtm["DS"]["DSDECOD"] != "DEATH"]
        frames.append(pd.DataFrame({"USUBJID": ds["USUBJID"], "DTC": ds["DSSTDTC"]}))
    dm_alive = adsl[adsl["DTHFL"] != "Y"]
    frames.append(pd.DataFrame({"USUBJID": adsl["USUBJID"], "DTC": adsl["RFICDTC"]}))
    if "RFPENDTC" in adsl.columns:
        frames.append(pd.DataFrame({"USUBJID": dm_alive["USUBJID"], "DTC": dm_alive["RFPENDTC"]}))
    # Only the latest date per subject counts: one record per subject and date string is enough.
    alldt = pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)
    alldt = derive_vars_dt(alldt, "A", "DTC")  # complete dates only
    alldt = alldt[alldt["ADT"].notna()]
    out = derive_vars_merged(adsl, alldt, ["USUBJID"], {"LSTALVDT": "ADT"}, order=["ADT"], mode="last")
    # Died: the death date (records dated after death are data errors reported by validation).
    dead = out["DTHDT"].notna()
    out.loc[dead, "LSTALVDT"] = out.loc[dead, "DTHDT"]
    return out


def derive_baseline_ecog(adsl: pd.DataFrame, rs: pd.DataFrame) -> pd.DataFrame:
    """BECOG: last non-missing ECOG (RS ECOG101) on or before the first lymphodepletion dose date
    (an untimed assessment on the LD day is pre-dose, the protocol's schedule) - the rule of the
    ADECOG baseline (:func:`cdisc_pipe.adam.derive_bds.before_reference`), so BECOG = ADECOG BASE.
    Without lymphodepletion the infusion date is the reference; never treated: the last value."""
    e = rs[(rs["RSTESTCD"] == "ECOG101")].copy(deep=False)
    if "RSSTRESN" in e.columns:
        e["__v"] = pd.to_numeric(e["RSSTRESN"], errors="coerce")
    else:
        e["__v"] = pd.to_numeric(e["RSSTRESC"], errors="coerce")
    e["__seq"] = pd.to_numeric(e["RSSEQ"], errors="coerce") if "RSSEQ" in e.columns else np.nan
    e = derive_vars_dt(e[e["__v"].notna()], "A", "RSDTC")
    e = e.merge(adsl[["USUBJID", "LDSDT", "TRTSDT"]], on="USUBJID", how="inner")
    ref = e["LDSDT"].fillna(e["TRTSDT"])
    pre = before_reference(e["ADT"], e["ADT"], pd.Series(False, index=e.index), ref, None)
    e = e[e["ADT"].notna() & (ref.isna() | pre)]
    return derive_vars_merged(adsl, e, ["USUBJID"], {"BECOG": "__v"}, order=["ADT", "__seq"], mode="last")


def derive_disease_characteristics(adsl: pd.DataFrame, mh: pd.DataFrame, suppmh: pd.DataFrame | None,
                                   settings: AdamSettings) -> pd.DataFrame:
    """ISS, RISS, HRCYTOFL (high-risk cytogenetics), EMDFL (extramedullary disease) and DIAGDT from
    the primary-diagnosis MH record and its SUPPMH qualifiers."""
    prim = mh[mh["MHCAT"] == "PRIMARY DIAGNOSIS"]
    qn = ["ISS", "RISS", settings.high_risk_cytogenetics_qnam, "EMD"]
    prim = suppqual_wide(prim, suppmh, qn) if suppmh is not None else prim.assign(**{q: None for q in qn})
    if "MHSTDTC" in prim.columns:
        prim = derive_vars_dt(prim, "DIAG", "MHSTDTC", highest_imputation="M", date_imputation="first")
    else:
        prim = prim.assign(DIAGDT=pd.NaT)
    return derive_vars_merged(adsl, prim, ["USUBJID"],
                              {"ISS": "ISS", "RISS": "RISS", "HRCYTOFL": settings.high_risk_cytogenetics_qnam,
                               "EMDFL": "EMD", "DIAGDT": "DIAGDT"}, order=["MHSEQ"], mode="first")


def derive_prior_therapy(adsl: pd.DataFrame, cm: pd.DataFrame, suppcm: pd.DataFrame | None) -> pd.DataFrame:
    """PRLINES: number of prior lines (distinct SUPPCM LINENUM on prior anti-cancer therapy; records
    without a line number count as one line each); REFLSTFL: refractory to the last prior line
    (Y when a record of the highest LINENUM has SUPPCM REFRACT = Y, N when its records say N,
    missing without line numbers or refractory status); BRIDGFL: bridging therapy given (Y/N)."""
    prior = cm[cm["CMCAT"] == "PRIOR ANTI-CANCER THERAPY"]
    if suppcm is not None and "CMSEQ" in prior.columns:
        prior = suppqual_wide(prior, suppcm, ["LINENUM", "REFRACT"])
    else:
        prior = prior.assign(LINENUM=None, REFRACT=None)
    num = pd.to_numeric(prior["LINENUM"], errors="coerce")
    last_line = num.groupby(prior["USUBJID"]).transform("max")
    on_last = prior[num.notna() & (num == last_line) & prior["REFRACT"].isin(["Y", "N"])]
    refr = on_last.assign(__y=on_last["REFRACT"] == "Y").groupby("USUBJID")["__y"].any()
    line = prior["LINENUM"].astype(object).where(prior["LINENUM"].notna(), "rec" + prior.index.astype(str))
    counts = pd.DataFrame({"USUBJID": prior["USUBJID"], "L": line}).drop_duplicates().groupby("USUBJID").size()
    out = adsl.copy(deep=False)
    out["PRLINES"] = out["USUBJID"].map(counts).fillna(0).astype("float64")
    ref = out["USUBJID"].map(refr)
    out["REFLSTFL"] = pd.Series(np.where(ref.isna(), None, np.where(ref.fillna(False).astype(bool), "Y", "N")),
                                index=out.index, dtype=object)
    out = derive_var_merged_exist_flag(out, cm, ["USUBJID"], "BRIDGFL",
                                       condition=lambda d: d["CMCAT"] == "BRIDGING THERAPY", missing_value="N")
    return out


def baseline_disease_markers(adsl: pd.DataFrame, lb: pd.DataFrame) -> pd.DataFrame:
    """The baseline LB records of every subject: records flagged LBLOBXFL = "Y" (disease markers:
    last value before infusion) or, when LB has no LBLOBXFL, the last complete-dated value per test
    (and specimen) on or before the infusion date."""
    base = lb.copy(deep=False)
    if "LBLOBXFL" in base.columns:
        return base[base["LBLOBXFL"] == "Y"]
    base = derive_vars_dt(base, "A", "LBDTC")
    base = base.merge(adsl[["USUBJID", "TRTSDT"]], on="USUBJID")
    base = base[base["ADT"].notna() & (base["ADT"] <= base["TRTSDT"])]
    keys = ["USUBJID", "LBTESTCD"] + (["LBSPEC"] if "LBSPEC" in base.columns else [])
    return base.sort_values("ADT", kind="mergesort").drop_duplicates(keys, keep="last")


def _rule_records(base: pd.DataFrame, rule: MeasurableRule, tests: list[str]) -> pd.DataFrame:
    sel = base[base["LBTESTCD"].isin(tests)]
    if rule.lbspec is not None and "LBSPEC" in sel.columns:
        sel = sel[sel["LBSPEC"] == rule.lbspec]
    return sel


def derive_baseline_assessment(adsl: pd.DataFrame, lb: pd.DataFrame, rules: list[MeasurableRule]) -> pd.DataFrame:
    """BLDISFL: Y when the subject has a baseline result (LBSTRESN or LBSTRESC, e.g. "<0.10") of any disease
    marker named by the measurable-disease rules (serum/urine M-protein, FLC and FLC ratio, with the
    rule's specimen), else N.  "No baseline disease assessment" is its own PFS censoring reason
    (STUDY.md 3.3); not measurable (MDTYPE missing) is a different thing."""
    out = adsl.copy(deep=False)
    if not rules:
        out["BLDISFL"] = None
        return out
    base = baseline_disease_markers(adsl, lb)
    # a result below the quantification limit ("<0.10", LBSTRESN null) is an assessment too
    has = pd.to_numeric(base["LBSTRESN"], errors="coerce").notna()
    if "LBSTRESC" in base.columns:
        has |= base["LBSTRESC"].notna() & base["LBSTRESC"].astype(str).str.strip().ne("")
    base = base[has]
    parts = [_rule_records(base, r, list(r.lbtestcd)) for r in rules]
    parts += [base[base["LBTESTCD"] == r.ratio_testcd] for r in rules if r.ratio_testcd]
    assessed = pd.concat(parts, ignore_index=True)["USUBJID"]
    out["BLDISFL"] = _yn(out["USUBJID"].isin(assessed))
    return out


def derive_measurable_disease(adsl: pd.DataFrame, lb: pd.DataFrame, rules: list[MeasurableRule]) -> pd.DataFrame:
    """MDTYPE: the first IMWG measurable-disease rule met at baseline (settings ``measurable_disease``).

    Baseline = :func:`baseline_disease_markers`.  Values in a unit that is neither the rule's
    ``unit`` nor in its ``unit_factors`` are not used (see :func:`measurable_unit_findings`, which
    reports them).
    """
    out = adsl.copy(deep=False)
    out["MDTYPE"] = None
    if not rules:
        return out
    base = baseline_disease_markers(adsl, lb)
    base = base.assign(__v=pd.to_numeric(base["LBSTRESN"], errors="coerce"))
    met_type = pd.Series(None, index=out.index, dtype=object)
    for rule in rules:
        sel = _rule_records(base, rule, list(rule.lbtestcd))
        factors = {rule.unit: 1.0, **rule.unit_factors}
        factor = sel["LBSTRESU"].map(factors)
        sel = sel.assign(__v=sel["__v"] * factor)[factor.notna()]
        value = sel.groupby("USUBJID")["__v"].max()
        ok = out["USUBJID"].map(value) >= rule.min_value
        if rule.ratio_testcd and rule.ratio_normal:
            ratio = base[base["LBTESTCD"] == rule.ratio_testcd].groupby("USUBJID")["__v"].max()
            r = out["USUBJID"].map(ratio)
            ok &= (r < rule.ratio_normal[0]) | (r > rule.ratio_normal[1])
        ok = ok.fillna(False).astype(bool)
        met_type = pd.Series(np.where(met_type.isna() & ok, rule.type, met_type), index=out.index, dtype=object)
    out["MDTYPE"] = met_type.where(met_type.notna(), None)
    return out


def measurable_unit_findings(lb: pd.DataFrame, rules: list[MeasurableRule]) -> list[Finding]:
    """A Warning per (test, unit) of baseline disease markers whose unit no rule can convert."""
    findings: list[Finding] = []
    base = lb[lb["LBLOBXFL"] == "Y"] if "LBLOBXFL" in lb.columns else lb
    for rule in rules:
        sel = base[base["LBTESTCD"].isin(rule.lbtestcd) & base["LBSTRESN"].notna()]
        if rule.lbspec is not None and "LBSPEC" in sel.columns:
            sel = sel[sel["LBSPEC"] == rule.lbspec]
        known = {rule.unit, *rule.unit_factors}
        bad = sel[~sel["LBSTRESU"].isin(known)].drop_duplicates(["LBTESTCD", "LBSTRESU"])
        for row in bad.itertuples():
            findings.append(Finding("ADSL.MDTYPE.UNIT", "Warning",
                                    f"baseline {row.LBTESTCD} in unit {row.LBSTRESU!r} not convertible for the "
                                    f"{rule.type} rule (expects {sorted(known)}); not used for MDTYPE",
                                    dataset="LB", usubjid=row.USUBJID, variable="LBSTRESU", value=str(row.LBSTRESU)))
    return findings


def derive_dlt(adsl: pd.DataFrame, ae: pd.DataFrame, suppae: pd.DataFrame | None, window_days: int) -> pd.DataFrame:
    """DLTFL: an investigator-adjudicated DLT (SUPPAE AEDLT = Y) starting from infusion to day
    ``window_days`` after it (protocol day 0..28 = TRTSDT..TRTSDT+28).

    The onset date is ADAE's ASTDT (:func:`cdisc_pipe.adam.derive.derive_vars_ae_dt`: partial
    dates imputed admiral-style with the LD/infusion-date adjustment, never after the end date or
    death) and the window test is :func:`dlt_window_mask`, so DLTFL = Y exactly when the subject
    has an ADAE record with ADLTFL = Y.  Needs TRTSDT, LDSDT and DTHDT on ``adsl``."""
    a = suppqual_wide(ae, suppae, ["AEDLT"]) if suppae is not None else ae.assign(AEDLT=None)
    a = a.merge(adsl[["USUBJID", "TRTSDT", "LDSDT", "DTHDT"]], on="USUBJID", how="inner")
    a = derive_vars_ae_dt(a)
    dlt = a[dlt_window_mask(a, window_days).to_numpy()]
    out = adsl.copy(deep=False)
    out["DLTFL"] = _yn(out["USUBJID"].isin(dlt["USUBJID"]))
    out.loc[out["TRTSDT"].isna(), "DLTFL"] = None
    return out


def derive_population_flags(adsl: pd.DataFrame, sdtm: dict[str, pd.DataFrame], settings: AdamSettings) -> pd.DataFrame:
    """ENRLFL (apheresed), SAFFL (infused), DLTEVLFL (infused and a DLT in the window or followed
    through day ``dlt_window_days``), EFFFL (infused and measurable disease at baseline), PKFL
    (a quantifiable post-infusion CAR transgene sample), MRDEVLFL (infused and an evaluable
    post-infusion MRD result)."""
    out = adsl.copy(deep=False)
    out["ENRLFL"] = _yn(out["APHDT"].notna())
    infused = out["TRTSDT"].notna()
    out["SAFFL"] = _yn(infused)
    completed = out["LSTALVDT"] >= out["TRTSDT"] + pd.Timedelta(days=settings.dlt_window_days)
    out["DLTEVLFL"] = _yn(infused & ((out["DLTFL"] == "Y") | completed))
    out["EFFFL"] = _yn(infused & out["MDTYPE"].notna())
    if "PC" in sdtm and _has(sdtm, "PC"):
        pc = derive_vars_dt(sdtm["PC"], "A", "PCDTC")
        pc = pc.merge(out[["USUBJID", "TRTSDT"]], on="USUBJID")
        q = pc[(pd.to_numeric(pc["PCSTRESN"], errors="coerce") > 0) & (pc["ADT"] >= pc["TRTSDT"])]
        out["PKFL"] = _yn(infused & out["USUBJID"].isin(q["USUBJID"]))
    else:
        out["PKFL"] = _yn(pd.Series(False, index=out.index))
    if "RS" in sdtm and _has(sdtm, "RS"):
        m = derive_vars_dt(sdtm["RS"][sdtm["RS"]["RSTESTCD"] == "MRDIND"], "A", "RSDTC")
        m = m.merge(out[["USUBJID", "TRTSDT"]], on="USUBJID")
        ev = m[m["RSSTRESC"].isin(["NEGATIVE", "POSITIVE"]) & (m["ADT"] >= m["TRTSDT"])]
        out["MRDEVLFL"] = _yn(infused & out["USUBJID"].isin(ev["USUBJID"]))
    else:
        out["MRDEVLFL"] = _yn(pd.Series(False, index=out.index))
    return out


def build(sdtm: dict[str, pd.DataFrame], adsl: pd.DataFrame | None, settings_dir: Path) -> tuple[pd.DataFrame, list[Finding]]:
    """Build ADSL from SDTM (``adsl`` is ignored: ADSL is the first dataset built)."""
    del adsl
    settings = load_adam_settings(settings_dir)
    findings: list[Finding] = []
    for name, (vars_, feeds) in OPTIONAL.items():
        if not _has(sdtm, name):
            findings.append(Finding("ADAM.INPUT.OPTIONAL", "Notice",
                                    f"SDTM {name} (with {', '.join(vars_)}) not available: {feeds} left missing",
                                    dataset="ADSL"))
    dm = sdtm["DM"]
    keep = [c for c in ["STUDYID", "USUBJID", "SUBJID", "SITEID", "AGE", "AGEU", "SEX", "RACE", "ETHNIC", "COUNTRY",
                        "ARMCD", "ARM", "ACTARMCD", "ACTARM", "ARMNRS", "ACTARMUD", "RFSTDTC", "RFICDTC", "RFPENDTC",
                        "DTHFL", "DTHDTC"] if c in dm.columns]
    out = dm[keep].copy(deep=False).reset_index(drop=True)
    # ADaMIG 1.3 (SDTMIG 3.4 DM): ARM/ACTARM may be null (never infused: ACTARM null with ARMNRS
    # "ASSIGNED, NOT TREATED"); ARMNRS and ACTARMUD are carried from DM (Cond), missing when DM lacks them.
    for c in ("ARMNRS", "ACTARMUD"):
        if c not in out.columns:
            out[c] = None
    no_reason = out[(out["ARM"].isna() | out["ACTARM"].isna()) & out["ARMNRS"].isna()]
    for u in no_reason["USUBJID"]:  # findings only: one per problem subject
        findings.append(Finding("ADSL.ARMNRS.MISSING", "Warning",
                                "ARM or ACTARM is null but DM.ARMNRS gives no reason (SDTMIG 3.4 DM)",
                                dataset="DM", usubjid=u, variable="ARMNRS"))
    dup = out["USUBJID"].duplicated(keep="first")
    for u in out.loc[dup, "USUBJID"]:
        findings.append(Finding("ADSL.DM.DUPLICATE", "Error", "USUBJID occurs more than once in DM; first record used",
                                dataset="DM", usubjid=u, variable="USUBJID"))
    out = out[~dup].reset_index(drop=True)
    rfic, _ = impute_dtc_dt(out["RFICDTC"])
    out["RFICDT"] = rfic
    out = derive_trt_dates(out, sdtm["EX"])
    out, f = derive_treatment_vars(out, settings, sdtm.get("TA"))
    findings += f
    pr = sdtm.get("PR") if _has(sdtm, "PR") else None
    cm = sdtm.get("CM") if _has(sdtm, "CM") else None
    out = derive_apheresis(out, pr) if pr is not None else out.assign(APHDT=pd.NaT, ENRLDT=pd.NaT)
    if _has(sdtm, "DS"):
        out = derive_disposition(out, sdtm["DS"])
    else:
        out = out.assign(EOSSTT=None, EOSDT=pd.NaT, DCSREAS=None)
    out = derive_death(out, sdtm["DD"] if _has(sdtm, "DD") else None)
    out = derive_nact(out, cm, pr)
    out = derive_lstalvdt(out, sdtm)
    out = derive_baseline_ecog(out, sdtm["RS"]) if _has(sdtm, "RS") else out.assign(BECOG=np.nan)
    if _has(sdtm, "MH"):
        out = derive_disease_characteristics(out, sdtm["MH"], sdtm.get("SUPPMH"), settings)
    else:
        out = out.assign(ISS=None, RISS=None, HRCYTOFL=None, EMDFL=None, DIAGDT=pd.NaT)
    if cm is not None:
        out = derive_prior_therapy(out, cm, sdtm.get("SUPPCM"))
    else:
        out = out.assign(PRLINES=np.nan, REFLSTFL=None, BRIDGFL=None)
    if _has(sdtm, "LB"):
        out = derive_measurable_disease(out, sdtm["LB"], settings.measurable_disease)
        out = derive_baseline_assessment(out, sdtm["LB"], settings.measurable_disease)
        findings += measurable_unit_findings(sdtm["LB"], settings.measurable_disease)
    else:
        out = out.assign(MDTYPE=None, BLDISFL=None)
    if _has(sdtm, "AE"):
        out = derive_dlt(out, sdtm["AE"], sdtm.get("SUPPAE"), settings.dlt_window_days)
    else:
        out = out.assign(DLTFL=None)
    out = derive_population_flags(out, sdtm, settings)
    for col in ["TRTSDT", "TRTEDT", "APHDT", "ENRLDT", "LDSDT", "LDEDT", "EOSDT", "DTHDT", "LSTALVDT", "NACTDT",
                "RFICDT", "DIAGDT", "TRTSDTM"]:
        out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
    for col in ["AGE", "TRT01PN", "TRT01AN", "DOSE01P", "DOSE01A", "BECOG", "PRLINES"]:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    # the DM character dates were inputs only (ADSL carries the numeric dates)
    out = out.drop(columns=[c for c in ("RFSTDTC", "RFICDTC", "RFPENDTC", "DTHDTC") if c in out.columns])
    return out, findings
