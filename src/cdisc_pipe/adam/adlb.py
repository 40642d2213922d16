"""ADLB: laboratory analysis dataset (BDS), one record per subject, parameter, baseline type and time point.

Derivations (spec: ``specs/adam/adlb.yaml``; options: ``specs/settings/adam_bds.yaml`` ``adlb``):

- PARAMCD = LBTESTCD (renamed by ``param_rules`` where a test is measured in several specimens or
  methods, e.g. urine M-protein), PARAM = test name with specimen when renamed, and unit;
  PARCAT1 = LBCAT; AVAL = LBSTRESN; AVALC = LBSTRESC for character results (e.g. MRD NEGATIVE).
- BASETYPE per LBCAT (STUDY.md A): "PRE-LD" (hematology, chemistry, coagulation: last non-missing
  value on or before the first lymphodepletion dose date LDSDT) or "PRE-INFUSION" (disease markers,
  MRD: last non-missing value before the CAR-T infusion TRTSDTM); cytokines get both (records
  repeated per BASETYPE): pre-infusion for CRS analyses, pre-LD as in SDTM LBLOBXFL.
- ABLFL, BASE, CHG, PCHG (post-baseline records only), ANRLO/ANRHI/ANRIND, BNRIND.
- ATOXGRL/ATOXGRH (+ ATOXDSCL/ATOXDSCH) from the CTCAE v5.0 table, BTOXGRL/BTOXGRH.
- DFLC (PARAMTYP DERIVED): involved minus uninvolved serum free light chain at each date both were
  measured; the involved chain is the one higher at the subject's reference (last pre-infusion) pair.
- Prolonged cytopenia (PCYTNEUT, PCYTPLAT, PCYTHGB; PARAMTYP DERIVED): AVALC "Y" when the first
  graded assessment on or after protocol day 28 has a low-direction CTCAE grade >= 3, else "N".
- Peak post-infusion IL-6, ferritin and CRP: one DTYPE "MAXIMUM" record per subject and parameter, a
  copy of the highest post-infusion record (the earliest on ties) with AVISIT "POST-INFUSION PEAK".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.adam.derive import derive_vars_dtm, derive_vars_dtm_to_dt, derive_vars_dy
from cdisc_pipe.adam.derive_bds import (
    AdlbSettings,
    before_reference,
    check_bds,
    derive_param_extreme_record,
    derive_var_ablfl,
    derive_var_anrind,
    derive_var_atoxgr_dir,
    derive_var_base,
    derive_var_chg,
    derive_var_pchg,
    derive_on_unique,
    dtc_has_time,
    finalize,
    load_bds_settings,
    merge_adsl,
    read_toxicity_criteria,
    require_sdtm,
)
from cdisc_pipe.errors import Finding

NAME = "ADLB"
REQUIRES = {"LB": ["STUDYID", "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBSTRESC", "LBSTRESN",
                   "LBSTRESU", "LBDTC"]}
CORE = False
ADSL_VARS = ["STUDYID", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "SAFFL", "TRTSDT", "TRTSDTM", "LDSDT"]
COLUMNS = [
    "STUDYID", "USUBJID", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "SAFFL", "TRTSDT", "LDSDT",
    "PARAMCD", "PARAM", "PARCAT1", "PARAMTYP", "BASETYPE", "DTYPE", "AVISIT", "AVISITN",
    "ADT", "ADTM", "ATMF", "ADY", "AVAL", "AVALC", "ABLFL", "BASE", "CHG", "PCHG",
    "ANRLO", "ANRHI", "ANRIND", "BNRIND", "ATOXDSCL", "ATOXGRL", "ATOXDSCH", "ATOXGRH", "BTOXGRL", "BTOXGRH",
    "SRCDOM", "SRCVAR", "SRCSEQ",
]
KEYS = ["USUBJID", "PARAMCD", "BASETYPE", "ADTM", "DTYPE", "SRCSEQ"]
LB_VARS = ["STUDYID", "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBSTRESC", "LBSTRESN", "LBSTRESU", "LBDTC"]
BASELINE_BY = ["USUBJID", "PARAMCD", "BASETYPE"]
LB_OPTIONAL = ["LBSPEC", "LBMETHOD", "VISIT", "VISITNUM", "LBSTNRLO", "LBSTNRHI", "LBLOBXFL"]
# LB variables used only to set up the analysis variables; dropped afterwards so that the
# lab-sized frame stays narrow (every copy, join and sort below moves fewer columns).
LB_CONSUMED = ["LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBSTRESC", "LBSTRESN", "LBSTRESU", "LBSPEC", "LBMETHOD",
               "VISIT", "VISITNUM", "LBSTNRLO", "LBSTNRHI"]


def _parameters(lb: pd.DataFrame, settings: AdlbSettings) -> pd.DataFrame:
    """PARAMCD/PARAM/PARCAT1 from test, specimen, method and unit (``param_rules`` rename)."""
    out = lb.copy(deep=False)
    unit = out["LBSTRESU"]
    out["PARAMCD"] = out["LBTESTCD"]
    test = out["LBTEST"].astype(object)
    out["PARAM"] = np.where(unit.notna(), test + " (" + unit.fillna("") + ")", test)
    spec = out["LBSPEC"] if "LBSPEC" in out.columns else pd.Series(None, index=out.index, dtype=object)
    method = out["LBMETHOD"] if "LBMETHOD" in out.columns else pd.Series(None, index=out.index, dtype=object)
    done = pd.Series(False, index=out.index)
    # Equality tests on factorised codes: each distinct text is compared once, not once per record.
    coded = {name: pd.factorize(col) for name, col in (("test", out["LBTESTCD"]), ("spec", spec), ("method", method))}

    def equals(name: str, value: str) -> np.ndarray:
        codes, uniques = coded[name]
        return np.isin(codes, np.flatnonzero(uniques == value))

    for rule in settings.param_rules:  # loop over configured rules, not records; first match wins
        hit = pd.Series(equals("test", rule.testcd), index=out.index) & ~done
        if rule.spec is not None:
            hit &= equals("spec", rule.spec)
        if rule.method is not None:
            hit &= equals("method", rule.method)
        hit = hit.fillna(False).astype(bool)
        if not hit.any():
            continue
        done |= hit
        out.loc[hit, "PARAMCD"] = rule.paramcd
        if rule.param is not None:
            out.loc[hit, "PARAM"] = rule.param
        else:
            where = (" in " + spec[hit].str.title()).fillna("")
            u = (" (" + unit[hit] + ")").fillna("")
            out.loc[hit, "PARAM"] = test[hit] + where + u
    out["PARCAT1"] = out["LBCAT"]
    return out


def _dflc(adlb: pd.DataFrame, settings: AdlbSettings, findings: list[Finding]) -> pd.DataFrame:
    """Derived dFLC records (see module docstring); empty when no subject has both chains."""
    cfg = settings.dflc
    if cfg is None:
        return adlb.iloc[0:0]
    keep = ["STUDYID", "USUBJID", "ADT", "ADTM", "ATMF", "AVISIT", "AVISITN", "AVAL", "SRCSEQ", "__pre_inf"]
    k = adlb.loc[adlb["PARAMCD"].eq(cfg.kappa) & adlb["AVAL"].notna(), keep]
    lam = adlb.loc[adlb["PARAMCD"].eq(cfg.lambda_) & adlb["AVAL"].notna(), ["USUBJID", "ADT", "AVAL"]]
    if k.empty or lam.empty:
        return adlb.iloc[0:0]
    k = k.sort_values(["USUBJID", "ADT", "ADTM"], kind="mergesort").drop_duplicates(["USUBJID", "ADT"], keep="last")
    lam = lam.sort_values(["USUBJID", "ADT"], kind="mergesort").drop_duplicates(["USUBJID", "ADT"], keep="last")
    pairs = k.rename(columns={"AVAL": "__k"}).merge(lam.rename(columns={"AVAL": "__l"}), on=["USUBJID", "ADT"])
    if pairs.empty:
        return adlb.iloc[0:0]
    pairs = pairs.sort_values(["USUBJID", "ADT"], kind="mergesort")
    # Reference pair: the last pre-infusion pair; subjects without one use their first pair.
    pre = pairs[pairs["__pre_inf"]].drop_duplicates("USUBJID", keep="last")
    first = pairs.drop_duplicates("USUBJID", keep="first")
    ref = pd.concat([pre, first[~first["USUBJID"].isin(pre["USUBJID"])]])
    ref = ref.assign(__kappa_inv=ref["__k"] >= ref["__l"])[["USUBJID", "__kappa_inv"]]
    no_pre = sorted(set(first["USUBJID"]) - set(pre["USUBJID"]))
    for u in no_pre:
        findings.append(Finding(rule="ADAM.ADLB.DFLC", severity="Notice", dataset=NAME, usubjid=u, variable="AVAL",
                                message="no pre-infusion kappa/lambda pair: involved chain taken from the first pair"))
    pairs = pairs.merge(ref, on="USUBJID")
    inv = np.where(pairs["__kappa_inv"], pairs["__k"], pairs["__l"])
    uninv = np.where(pairs["__kappa_inv"], pairs["__l"], pairs["__k"])
    out = pairs[["STUDYID", "USUBJID", "ADT", "ADTM", "ATMF", "AVISIT", "AVISITN", "__pre_inf"]].copy(deep=False)
    out["AVAL"] = (inv - uninv).astype("float64")
    out["PARAMCD"] = cfg.paramcd
    out["PARAM"] = cfg.param
    out["PARCAT1"] = cfg.parcat1
    out["PARAMTYP"] = "DERIVED"
    out["__unit"] = "mg/L"
    return out


def _prolonged_cytopenia(df: pd.DataFrame, settings: AdlbSettings) -> pd.DataFrame:
    """Derived Y/N records (AVALC, AVAL 1/0), one per infused subject and parameter with a graded
    assessment at least ``day`` days after the infusion; timing from the deciding assessment (the
    first late one, or with ``mode: any`` the first late one meeting the grade, else the first)."""
    cfg = settings.prolonged_cytopenia
    if cfg is None or not cfg.params:
        return df.iloc[0:0]
    source = {p.testcd: p for p in cfg.params}
    days = (pd.to_datetime(df["ADT"]) - pd.to_datetime(df["TRTSDT"])).dt.days
    grade = pd.to_numeric(df["ATOXGRL"], errors="coerce")
    late = (df["PARAMCD"].isin(list(source)) & df["DTYPE"].isna() & days.ge(cfg.day).fillna(False)
            & grade.notna() & df["SRCDOM"].eq("LB").fillna(False))
    cand = df.loc[late].assign(__hit=grade[late] >= cfg.min_grade)
    cand = cand.drop_duplicates(["USUBJID", "PARAMCD", "SRCSEQ"])  # one copy per record, whatever BASETYPE
    order = ["USUBJID", "PARAMCD", "ADTM", "SRCSEQ"]
    if cfg.mode == "any":
        cand = cand.sort_values(["USUBJID", "PARAMCD", "__hit", "ADTM", "SRCSEQ"], ascending=[True, True, False, True, True],
                                kind="mergesort")
    else:
        cand = cand.sort_values(order, kind="mergesort")
    pick = cand.drop_duplicates(["USUBJID", "PARAMCD"], keep="first")
    if pick.empty:
        return df.iloc[0:0]
    keep = ["STUDYID", "USUBJID", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "SAFFL", "TRTSDT", "LDSDT",
            "AVISIT", "AVISITN", "ADT", "ADTM", "ATMF", "BASETYPE", "SRCSEQ"]
    out = pick[keep].copy(deep=False)
    out["PARAMCD"] = pick["PARAMCD"].map({k: v.paramcd for k, v in source.items()})
    out["PARAM"] = pick["PARAMCD"].map({k: v.param for k, v in source.items()})
    out["AVALC"] = np.where(pick["__hit"], "Y", "N")
    out["AVAL"] = np.where(pick["__hit"], 1.0, 0.0)
    out["PARCAT1"], out["PARAMTYP"], out["SRCDOM"], out["SRCVAR"] = cfg.parcat1, "DERIVED", "LB", "LBSTRESN"
    return out


def _compare_lobxfl(df: pd.DataFrame) -> list[Finding]:
    """Cross-check ABLFL with the SDTM baseline flag LBLOBXFL (observed LB records only).

    Both follow STUDY.md A, but SDTM compares date-times while ADaM takes an untimed same-day
    assessment as pre-dose.  A parameter is reported (Notice) when none of its baseline types
    flags exactly the records LBLOBXFL flags; the smallest number of differing records is given.
    """
    if "LBLOBXFL" not in df.columns:
        return []
    obs = df.loc[df["SRCDOM"].eq("LB").fillna(False) & df["DTYPE"].isna(), ["LBLOBXFL", "ABLFL", "PARAMCD", "BASETYPE"]]
    differ = obs["LBLOBXFL"].eq("Y").fillna(False).astype(bool) != obs["ABLFL"].eq("Y").fillna(False).astype(bool)
    per_type = differ.groupby([obs["PARAMCD"], obs["BASETYPE"]]).sum()
    best = per_type.groupby(level="PARAMCD").min()
    return [Finding(rule="ADAM.ADLB.BASELINE", severity="Notice", dataset=NAME, variable="ABLFL", value=str(code),
                    message=f"{int(n)} {code} record(s) where ABLFL differs from LB.LBLOBXFL")
            for code, n in best[best > 0].items()]


def build(sdtm: dict[str, pd.DataFrame], adsl: pd.DataFrame, settings_dir: Path) -> tuple[pd.DataFrame, list[Finding]]:
    """Build ADLB from SDTM LB and ADSL (builder contract: ``docs/ADAM.md``)."""
    settings = load_bds_settings(settings_dir).adlb
    criteria = read_toxicity_criteria(Path(settings_dir) / settings.toxicity_table)
    lb = require_sdtm(sdtm, "LB", LB_VARS, NAME)
    lb = lb[[c for c in lb.columns if c in LB_VARS or c in LB_OPTIONAL or c in COLUMNS]]  # what ADLB reads
    findings: list[Finding] = []

    no_result = lb["LBSTRESN"].isna() & lb["LBSTRESC"].isna()
    if no_result.any():
        findings.append(Finding(rule="ADAM.ADLB.NORESULT", severity="Notice", dataset=NAME, variable="AVAL",
                                message=f"{int(no_result.sum())} LB record(s) without a result (not done) are not analysed"))
    lb = lb[~no_result]

    df = _parameters(lb, settings)
    df["AVAL"] = pd.to_numeric(df["LBSTRESN"], errors="coerce").astype("float64")
    df["AVALC"] = df["LBSTRESC"].where(df["AVAL"].isna())
    df["AVISIT"] = df["VISIT"] if "VISIT" in df.columns else None
    df["AVISITN"] = pd.to_numeric(df["VISITNUM"], errors="coerce") if "VISITNUM" in df.columns else np.nan
    df["ANRLO"] = pd.to_numeric(df.get("LBSTNRLO"), errors="coerce") if "LBSTNRLO" in df.columns else np.nan
    df["ANRHI"] = pd.to_numeric(df.get("LBSTNRHI"), errors="coerce") if "LBSTNRHI" in df.columns else np.nan
    df["SRCDOM"], df["SRCVAR"] = "LB", np.where(df["AVAL"].notna(), "LBSTRESN", "LBSTRESC")
    df["SRCSEQ"] = pd.to_numeric(df["LBSEQ"], errors="coerce").astype("float64")
    df["__unit"] = df["LBSTRESU"]
    df = df[[c for c in df.columns if c not in LB_CONSUMED or c in COLUMNS]]
    # ADTM needs a complete date (time imputed to 00:00:00, ATMF "H"); ADT is its date part, which
    # equals the un-imputed date of LBDTC, so the date strings are parsed once.
    df = derive_on_unique(df, "LBDTC", lambda u: derive_vars_dtm_to_dt(
        derive_vars_dtm(u, "A", "LBDTC", highest_imputation="h", flag_imputation="time"), ["ADTM"]))
    df, fnd = merge_adsl(df, adsl, ADSL_VARS, NAME)
    findings += fnd
    has_time = dtc_has_time(df["LBDTC"])
    df["__pre_inf"] = before_reference(df["ADT"], df["ADTM"], has_time, df["TRTSDT"], df["TRTSDTM"])

    dflc = _dflc(df, settings, findings)
    if not dflc.empty:
        dflc, _ = merge_adsl(dflc, adsl, [v for v in ADSL_VARS if v != "STUDYID"], NAME)
        dflc["ANRLO"] = np.nan
        dflc["ANRHI"] = np.nan
        df = pd.concat([df, dflc], ignore_index=True)

    # One copy of a record per baseline type (the copies of a record stay together, in the
    # order of the settings), as DataFrame.explode would, without building a list per record.
    cat_codes, cats = pd.factorize(df["PARCAT1"])
    per_cat = [settings.basetype_by_lbcat.get(c) or [settings.default_basetype] for c in cats]
    default = [settings.default_basetype]
    lists = per_cat + [default]  # code -1 (missing LBCAT) -> the default
    n_types = np.array([len(x) for x in lists])[cat_codes]
    rep = np.repeat(np.arange(len(df)), n_types)
    first = np.cumsum(n_types) - n_types
    within = np.arange(len(rep)) - np.repeat(first, n_types)
    flat = np.array([t for x in lists for t in x], dtype=object)
    offsets = np.cumsum([0] + [len(x) for x in lists])[:-1]
    basetype = flat[offsets[cat_codes[rep]] + within]
    df = df.take(rep).reset_index(drop=True)
    df["BASETYPE"] = pd.Series(basetype, index=df.index, dtype=object)
    pre_ld = before_reference(df["ADT"], df["ADTM"], pd.Series(False, index=df.index), df["LDSDT"], None)
    pre_ld_ref_known = pd.to_datetime(df["LDSDT"]).notna()
    candidate = np.where(df["BASETYPE"].eq("PRE-LD"), pre_ld, df["__pre_inf"])
    ref_known = np.where(df["BASETYPE"].eq("PRE-LD"), pre_ld_ref_known, pd.to_datetime(df["TRTSDT"]).notna())
    df["__cand"] = pd.Series(candidate, index=df.index).astype(bool)
    df["__post"] = pd.Series(ref_known & ~candidate, index=df.index).astype(bool) & df["ADT"].notna()
    df["DTYPE"] = None

    df = derive_var_ablfl(df, BASELINE_BY, ["ADTM", "SRCSEQ"], df["__cand"])
    df = derive_var_anrind(df)
    df = derive_var_base(df, BASELINE_BY, "AVAL", "BASE")
    df = derive_var_base(df, BASELINE_BY, "ANRIND", "BNRIND")

    # Peak post-infusion records (DTYPE MAXIMUM) for the configured parameters.
    post_inf = ~df["__pre_inf"] & pd.to_datetime(df["TRTSDT"]).notna() & df["ADT"].notna()
    peak_mask = df["PARAMCD"].isin(settings.peak_params) & post_inf & df["AVAL"].notna()
    df = derive_param_extreme_record(
        df, ["USUBJID", "PARAMCD", "BASETYPE"], ["-AVAL", "ADTM", "SRCSEQ"], peak_mask,
        {"DTYPE": "MAXIMUM", "AVISIT": settings.peak_avisit, "AVISITN": np.nan, "ABLFL": None, "__post": True},
    )
    df["__post"] = df["__post"].fillna(False).astype(bool)
    df = derive_var_chg(df, df["__post"])
    df = derive_var_pchg(df, df["__post"])

    for direction in ("L", "H"):
        df, fnd = derive_var_atoxgr_dir(df, criteria, direction, test_var="PARAMCD", unit_var="__unit")
        for f in fnd:
            findings.append(Finding(**{**f.to_dict(), "dataset": NAME}))
    df = derive_var_base(df, BASELINE_BY, "ATOXGRL", "BTOXGRL")
    df = derive_var_base(df, BASELINE_BY, "ATOXGRH", "BTOXGRH")
    df = pd.concat([df, _prolonged_cytopenia(df, settings)], ignore_index=True)
    df = derive_vars_dy(df, "TRTSDT", {"ADY": "ADT"})
    df["PARAMTYP"] = df["PARAMTYP"] if "PARAMTYP" in df.columns else None

    findings += _compare_lobxfl(df)
    out = finalize(df, COLUMNS, KEYS)
    findings += check_bds(out, NAME, BASELINE_BY)
    return out, findings
