"""ADEX: exposure analysis dataset (BDS, PARAMCD-based), one record per subject and parameter.

Parameters (spec: ``specs/adam/adex.yaml``; options: ``specs/settings/adam_bds.yaml`` ``adex``):

- CARTPDOS: planned CAR-T dose (10^6 CAR+ T cells/kg) of the planned dose level (ADSL DOSE01P),
  every ADSL subject with a planned level.
- CARTDOSE: administered CAR-T dose (EX EXCAT "CAR-T", EXDOSE, 10^6/kg), infused subjects.
- CARTPCT: administered dose as a percentage of the planned dose (CARTDOSE / CARTPDOS x 100).
- TOTCARTC: total CAR+ T cells infused (x10^6; SUPPEX QNAM TOTCARTC on the CAR-T record).
- INFVOL: infused volume (EXVAMT, mL) when collected.
- FLUCUM / CYCUM: cumulative fludarabine / cyclophosphamide dose (sum of EXDOSE, mg/m2) over the
  lymphodepletion records.
ASTDT/AENDT = first/last administration date contributing to the parameter; PARCAT1 = EXCAT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.adam.derive import derive_vars_dt, suppqual_wide
from cdisc_pipe.adam.derive_bds import finalize, load_bds_settings, merge_adsl, require_adsl, require_sdtm, check_bds
from cdisc_pipe.errors import Finding

NAME = "ADEX"
REQUIRES = {"EX": ["STUDYID", "USUBJID", "EXSEQ", "EXCAT", "EXTRT", "EXDOSE", "EXDOSU", "EXSTDTC"]}
CORE = False
EX_VARS = ["STUDYID", "USUBJID", "EXSEQ", "EXCAT", "EXTRT", "EXDOSE", "EXDOSU", "EXSTDTC"]
ADSL_VARS = ["TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "SAFFL"]
COLUMNS = [
    "STUDYID", "USUBJID", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "SAFFL",
    "PARAMCD", "PARAM", "PARCAT1", "AVAL", "ASTDT", "AENDT",
]
KEYS = ["USUBJID", "PARAMCD"]
PARAMS = {
    "CARTPDOS": "Planned CAR-T Dose (10^6 CAR+ T cells/kg)",
    "CARTDOSE": "Administered CAR-T Dose (10^6 CAR+ T cells/kg)",
    "CARTPCT": "Administered CAR-T Dose as Percent of Planned (%)",
    "TOTCARTC": "Total CAR+ T Cells Infused (10^6 cells)",
    "INFVOL": "CAR-T Infusion Volume (mL)",
    "FLUCUM": "Cumulative Fludarabine Dose (mg/m2)",
    "CYCUM": "Cumulative Cyclophosphamide Dose (mg/m2)",
}
LD_PARAM_LABEL = "Cumulative {drug} Dose (mg/m2)"


def _summary(ex: pd.DataFrame, mask: pd.Series, value: pd.Series, paramcd: str, how: str) -> pd.DataFrame:
    """One record per subject: ``how`` ("sum" or "first") of ``value`` over ``mask`` records, with dates."""
    sub = ex.loc[mask].assign(__v=value[mask])
    sub = sub[sub["__v"].notna()]
    if sub.empty:
        return pd.DataFrame(columns=["USUBJID", "STUDYID", "PARAMCD", "AVAL", "ASTDT", "AENDT", "PARCAT1"])
    g = sub.groupby("USUBJID", sort=True)
    out = pd.DataFrame({
        "STUDYID": g["STUDYID"].first(),
        "AVAL": g["__v"].sum() if how == "sum" else g["__v"].first(),
        "ASTDT": g["ASTDT"].min(),
        "AENDT": g["AENDT"].max(),
        "PARCAT1": g["EXCAT"].first(),
    }).reset_index()
    out["PARAMCD"] = paramcd
    return out


def build(sdtm: dict[str, pd.DataFrame], adsl: pd.DataFrame, settings_dir: Path) -> tuple[pd.DataFrame, list[Finding]]:
    """Build ADEX from SDTM EX (+ SUPPEX) and ADSL (builder contract: ``docs/ADAM.md``)."""
    settings = load_bds_settings(settings_dir).adex
    ex = require_sdtm(sdtm, "EX", EX_VARS, NAME)
    require_adsl(adsl, ["USUBJID", "STUDYID", *ADSL_VARS], NAME)
    findings: list[Finding] = []
    if "EXVAMT" not in ex.columns:
        ex["EXVAMT"] = np.nan
    if "EXENDTC" not in ex.columns:
        ex["EXENDTC"] = None
    ex["EXSEQ"] = pd.to_numeric(ex["EXSEQ"], errors="coerce").astype("float64")
    ex = suppqual_wide(ex, sdtm.get("SUPPEX"), ["TOTCARTC"])
    ex = derive_vars_dt(ex, "AST", "EXSTDTC", highest_imputation="n")
    ex["EXENDTC"] = ex["EXENDTC"].where(ex["EXENDTC"].notna(), ex["EXSTDTC"])
    ex = derive_vars_dt(ex, "AEN", "EXENDTC", highest_imputation="n")
    dose = pd.to_numeric(ex["EXDOSE"], errors="coerce").astype("float64")
    cart = ex["EXCAT"].eq(settings.cart_excat).fillna(False).astype(bool) & dose.gt(0)
    ld = ex["EXCAT"].eq(settings.ld_excat).fillna(False).astype(bool)

    parts = [
        _summary(ex, cart, dose, "CARTDOSE", "first"),
        _summary(ex, cart, pd.to_numeric(ex["TOTCARTC"], errors="coerce"), "TOTCARTC", "first"),
        _summary(ex, cart, pd.to_numeric(ex["EXVAMT"], errors="coerce"), "INFVOL", "first"),
    ]
    several = ex.loc[cart].duplicated("USUBJID", keep=False)
    if several.any():
        findings.append(Finding(rule="ADAM.ADEX.CART", severity="Warning", dataset=NAME, variable="AVAL",
                                message=f"{ex.loc[cart][several]['USUBJID'].nunique()} subject(s) with several CAR-T "
                                        "administrations: the first is analysed"))
    labels = dict(PARAMS)
    for drug, paramcd in settings.ld_drugs.items():  # loop over configured drugs
        drug_mask = ld & ex["EXTRT"].str.upper().eq(drug).fillna(False).astype(bool)
        parts.append(_summary(ex, drug_mask, dose, paramcd, "sum"))
        labels.setdefault(paramcd, LD_PARAM_LABEL.format(drug=drug.title()))
    bad_unit = ld & ex["EXDOSU"].ne("mg/m2").fillna(True)
    if bad_unit.any():
        findings.append(Finding(rule="ADAM.ADEX.UNIT", severity="Error", dataset=NAME, variable="AVAL",
                                message=f"{int(bad_unit.sum())} lymphodepletion record(s) not in mg/m2 summed as mg/m2"))

    require_adsl(adsl, ["DOSE01P"], NAME)
    planned = adsl[["USUBJID", "STUDYID"]].copy(deep=False)
    planned["AVAL"] = pd.to_numeric(adsl["DOSE01P"], errors="coerce").astype("float64")
    planned = planned[planned["AVAL"].notna()]
    planned["PARAMCD"] = "CARTPDOS"
    planned["PARCAT1"] = settings.cart_excat
    parts.append(planned)
    pct = parts[0][["USUBJID", "STUDYID", "AVAL", "ASTDT", "AENDT", "PARCAT1"]].merge(
        planned[["USUBJID", "AVAL"]].rename(columns={"AVAL": "__p"}), on="USUBJID")
    pct["AVAL"] = pct["AVAL"] / pct["__p"] * 100.0
    pct["PARAMCD"] = "CARTPCT"
    parts.append(pct.drop(columns="__p"))

    df = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    df["PARAM"] = df["PARAMCD"].map(labels)
    df, fnd = merge_adsl(df, adsl, ADSL_VARS, NAME)
    findings += fnd
    out = finalize(df, COLUMNS, KEYS)
    findings += check_bds(out, NAME)
    return out, findings
