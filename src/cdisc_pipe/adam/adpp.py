"""ADPP: pharmacokinetic (cellular kinetic) parameters analysis dataset (BDS), one record per subject
and parameter.

Derivations (spec: ``specs/adam/adpp.yaml``; options: ``specs/settings/adam_bds.yaml`` ``pk``):

- PARAMCD = PPTESTCD + the specimen suffix (CMAXB: Cmax in blood, CMAXM: in bone marrow), so that
  PARAMCD and PARAM stay one-to-one across specimens; PARAM = parameter name, interval (for
  interval parameters such as AUCINT P0D-P28D), specimen and unit.
- PARCAT1 = PPSPEC; PPSTINT/PPENINT carried; AVAL = PPSTRESN; AVALC = PPSTRESC when not numeric
  (e.g. "NC", not calculable); AVALU = PPSTRESU; PKFL from ADSL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.adam.adpc import cart_dose, pk_parameter
from cdisc_pipe.adam.derive_bds import check_bds, finalize, load_bds_settings, merge_adsl, parse_iso_duration_days, require_sdtm
from cdisc_pipe.errors import Finding

NAME = "ADPP"
REQUIRES = {"PP": ["STUDYID", "USUBJID", "PPTESTCD", "PPTEST", "PPSPEC", "PPSTRESC", "PPSTRESN", "PPSTRESU"]}
CORE = False
PP_VARS = ["STUDYID", "USUBJID", "PPTESTCD", "PPTEST", "PPSPEC", "PPSTRESC", "PPSTRESN", "PPSTRESU"]
ADSL_VARS = ["TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "PKFL"]
COLUMNS = [
    "STUDYID", "USUBJID", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "PKFL",
    "PARAMCD", "PARAM", "PARCAT1", "PPCAT", "PPSTINT", "PPENINT",
    "AVAL", "AVALC", "AVALU", "DOSEA", "DOSEU", "SRCDOM", "SRCVAR", "SRCSEQ",
]
KEYS = ["USUBJID", "PARAMCD"]


def _interval_text(stint: pd.Series, enint: pd.Series) -> pd.Series:
    """" from Day 0 to Day 28" for PPSTINT P0D / PPENINT P28D; empty when no interval."""
    start, _ = parse_iso_duration_days(stint)
    end, _ = parse_iso_duration_days(enint)

    def fmt(x: pd.Series) -> pd.Series:
        whole = x.notna() & x.eq(x.round())
        as_int = x.where(whole).round().astype("Int64").astype("string")
        return as_int.where(whole, x.astype("string")).astype(object)

    text = " from Day " + fmt(start) + " to Day " + fmt(end)
    return text.where(start.notna() & end.notna(), "").astype(object)


def build(sdtm: dict[str, pd.DataFrame], adsl: pd.DataFrame, settings_dir: Path) -> tuple[pd.DataFrame, list[Finding]]:
    """Build ADPP from SDTM PP, EX and ADSL (builder contract: ``docs/ADAM.md``)."""
    bds = load_bds_settings(settings_dir)
    pp = require_sdtm(sdtm, "PP", PP_VARS, NAME)
    findings: list[Finding] = []
    df = pp.copy(deep=False)
    for v in ("PPCAT", "PPSTINT", "PPENINT", "PPSEQ"):
        if v not in df.columns:
            df[v] = None
    df, fnd = merge_adsl(df, adsl, ADSL_VARS, NAME)
    findings += fnd
    if "EX" in sdtm and sdtm["EX"] is not None:
        ex = require_sdtm(sdtm, "EX", ["USUBJID", "EXCAT", "EXDOSE", "EXDOSU", "EXSTDTC"], NAME)
        df = df.merge(cart_dose(ex, bds.adex.cart_excat), how="left", on="USUBJID")
    df["PARAMCD"], df["PARAM"] = pk_parameter(df["PPTESTCD"], df["PPTEST"], df["PPSPEC"], df["PPSTRESU"], bds.pk,
                                              extra=_interval_text(df["PPSTINT"], df["PPENINT"]))
    df["PARCAT1"] = df["PPSPEC"]
    df["AVAL"] = pd.to_numeric(df["PPSTRESN"], errors="coerce").astype("float64")
    df["AVALC"] = df["PPSTRESC"].where(df["AVAL"].isna())
    df["AVALU"] = df["PPSTRESU"]
    df["SRCDOM"] = "PP"
    df["SRCVAR"] = np.where(df["AVAL"].notna(), "PPSTRESN", "PPSTRESC")
    df["SRCSEQ"] = pd.to_numeric(df["PPSEQ"], errors="coerce").astype("float64")
    out = finalize(df, COLUMNS, KEYS)
    dup = out.duplicated(["USUBJID", "PARAMCD"], keep=False)
    if dup.any():
        findings.append(Finding(rule="ADAM.ADPP.DUPKEY", severity="Error", dataset=NAME, variable="PARAMCD",
                                value=", ".join(sorted(out.loc[dup, "PARAMCD"].unique())),
                                message=f"{int(dup.sum())} records share USUBJID/PARAMCD (several intervals or "
                                        "groups of one parameter and specimen); add a specimen suffix or PARAMCD rule"))
    findings += check_bds(out, NAME)
    return out, findings
