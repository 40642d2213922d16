"""ADECOG: ECOG performance status change from baseline (BDS), one record per subject and assessment.

Derivations (spec: ``specs/adam/adecog.yaml``):

- Source: RS records with RSTESTCD "ECOG101"; PARAMCD = RSTESTCD, PARAM = RSTEST,
  PARCAT1 = RSCAT; AVAL = RSSTRESN (0-5), AVALC = RSSTRESC; ADT = RSDTC (complete dates only).
- Baseline (STUDY.md A): the last non-missing assessment on or before the first lymphodepletion
  dose date (ADSL LDSDT); subjects who never started lymphodepletion have no baseline.
- BASE/BASEC from the baseline record; CHG = AVAL - BASE on records after LDSDT.
- ADY relative to the infusion date TRTSDT (no day 0).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cdisc_pipe.adam.derive import derive_vars_dt, derive_vars_dy
from cdisc_pipe.adam.derive_bds import (
    before_reference,
    check_bds,
    derive_var_ablfl,
    derive_var_base,
    derive_var_chg,
    finalize,
    merge_adsl,
    require_sdtm,
)
from cdisc_pipe.errors import Finding

NAME = "ADECOG"
REQUIRES = {"RS": ["STUDYID", "USUBJID", "RSSEQ", "RSTESTCD", "RSTEST", "RSSTRESC", "RSSTRESN", "RSDTC"]}
CORE = False
TESTCD = "ECOG101"
RS_VARS = ["STUDYID", "USUBJID", "RSSEQ", "RSTESTCD", "RSTEST", "RSSTRESC", "RSSTRESN", "RSDTC"]
ADSL_VARS = ["TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "SAFFL", "LDSDT", "TRTSDT"]
COLUMNS = [
    "STUDYID", "USUBJID", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "SAFFL", "LDSDT", "TRTSDT",
    "PARAMCD", "PARAM", "PARCAT1", "AVISIT", "AVISITN", "ADT", "ADY", "AVAL", "AVALC",
    "ABLFL", "BASE", "BASEC", "CHG", "SRCDOM", "SRCVAR", "SRCSEQ",
]
KEYS = ["USUBJID", "PARAMCD", "ADT", "SRCSEQ"]


def build(sdtm: dict[str, pd.DataFrame], adsl: pd.DataFrame, settings_dir: Path) -> tuple[pd.DataFrame, list[Finding]]:
    """Build ADECOG from SDTM RS (ECOG101) and ADSL (builder contract: ``docs/ADAM.md``)."""
    rs = require_sdtm(sdtm, "RS", RS_VARS, NAME)
    findings: list[Finding] = []
    df = rs[rs["RSTESTCD"].eq(TESTCD).fillna(False)].copy(deep=False)
    for v in ("RSCAT", "VISIT", "VISITNUM"):
        if v not in df.columns:
            df[v] = None
    df, fnd = merge_adsl(df, adsl, ADSL_VARS, NAME)
    findings += fnd
    df["PARAMCD"], df["PARAM"], df["PARCAT1"] = df["RSTESTCD"], df["RSTEST"], df["RSCAT"]
    df["AVAL"] = pd.to_numeric(df["RSSTRESN"], errors="coerce").astype("float64")
    df["AVALC"] = df["RSSTRESC"]
    out_of_range = df["AVAL"].notna() & ~df["AVAL"].isin([0, 1, 2, 3, 4, 5])
    if out_of_range.any():
        findings.append(Finding(rule="ADAM.ADECOG.RANGE", severity="Error", dataset=NAME, variable="AVAL",
                                message=f"{int(out_of_range.sum())} ECOG value(s) outside 0-5 (kept)"))
    df["AVISIT"], df["AVISITN"] = df["VISIT"], pd.to_numeric(df["VISITNUM"], errors="coerce")
    df["SRCDOM"], df["SRCVAR"] = "RS", "RSSTRESN"
    df["SRCSEQ"] = pd.to_numeric(df["RSSEQ"], errors="coerce").astype("float64")
    df = derive_vars_dt(df, "A", "RSDTC", highest_imputation="n")
    df = derive_vars_dy(df, "TRTSDT", {"ADY": "ADT"})

    cand = before_reference(df["ADT"], df["ADT"], pd.Series(False, index=df.index), df["LDSDT"], None)
    post = pd.to_datetime(df["LDSDT"]).notna() & df["ADT"].notna() & ~cand
    df = derive_var_ablfl(df, ["USUBJID", "PARAMCD"], ["ADT", "SRCSEQ"], cand)
    df = derive_var_base(df, ["USUBJID", "PARAMCD"], "AVAL", "BASE")
    df = derive_var_base(df, ["USUBJID", "PARAMCD"], "AVALC", "BASEC")
    df = derive_var_chg(df, post)
    out = finalize(df, COLUMNS, KEYS)
    findings += check_bds(out, NAME, ["USUBJID", "PARAMCD"])
    return out, findings
