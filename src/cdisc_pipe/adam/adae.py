"""ADAE: adverse events analysis dataset (OCCDS, subclass ADVERSE EVENT), one record per AE record.

Derivations (spec: ``specs/adam/adae.yaml``; options: ``specs/settings/adam_bds.yaml`` ``adae``):

- AENDT from AEENDTC: a partial end date is imputed to the last day of the month (or year), never
  after death (DTHDT); AENDTF = "D"/"M".
- ASTDT from AESTDTC: a partial start date is imputed to the first day of the month (or year); when
  the first lymphodepletion dose date (LDSDT) and/or the CAR-T infusion date (TRTSDT) fall inside
  the partial date's period and after that day, the later of them is used (admiral ``min_dates``:
  the worst case, emergent rather than not); the result is never after the AE end date nor after
  death (``max_dates``).  ASTDTF = "D"/"M".
- ASTDY/AENDY relative to TRTSDT (no day 0); ADURN = AENDT - ASTDT + 1 days.
- TRTEMFL: onset on or after TRTSDT (unknown onset with end on/after TRTSDT or unknown counts),
  optionally before new anticancer therapy (NACTDT) or within a window.  LDEMFL: onset on or after
  the first lymphodepletion dose (LDSDT) and before TRTSDT (all post-LD onsets when never infused).
- ATOXGR = AETOXGR (ASTCT 2019 for CRS/ICANS, CTCAE v5.0 otherwise), ATOXGRN its number.
- CQ01NAM "CRS", CQ02NAM "ICANS" (customised queries by preferred term).
- ADLTFL (record-level DLT flag; ADSL.DLTFL is the subject-level one): the investigator's DLT adjudication (SUPPAE QNAM AEDLT = "Y") for an AE with onset from the
  infusion day to ``dlt_window_days`` (``adam.yaml``) days after it; a DLT outside the window is
  reported.
- AOCCFL/AOCCSFL/AOCCPFL: first treatment-emergent AE per subject / SOC / SOC and PT by ASTDT, AESEQ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.adam.derive import (
    derive_vars_ae_dt,
    derive_vars_duration,
    derive_vars_dy,
    dlt_window_mask,
    suppqual_wide,
)
from cdisc_pipe.adam.derive_bds import (
    AdaeSettings,
    derive_var_aoccfl,
    derive_var_period_flag,
    derive_var_trtemfl,
    finalize,
    load_bds_settings,
    merge_adsl,
    require_sdtm,
    y_flag,
)
from cdisc_pipe.adam.settings import load_adam_settings
from cdisc_pipe.errors import Finding

NAME = "ADAE"
REQUIRES = {"AE": ["STUDYID", "USUBJID", "AESEQ", "AETERM", "AEDECOD", "AESTDTC"]}
CORE = False
AE_VARS = ["STUDYID", "USUBJID", "AESEQ", "AETERM", "AEDECOD", "AESTDTC"]
AE_OPTIONAL = ["AEBODSYS", "AESER", "AEREL", "AEOUT", "AETOXGR", "AEENDTC"]
ADSL_VARS = ["TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "SAFFL", "DLTEVLFL", "TRTSDT", "TRTEDT", "LDSDT",
             "DTHDT", "NACTDT"]
HEAD = [
    "STUDYID", "USUBJID", "AESEQ", "TRTA", "TRTAN", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "SAFFL",
    "DLTEVLFL", "TRTSDT", "TRTEDT", "LDSDT", "AETERM", "AEDECOD", "AEBODSYS", "AESER", "AEREL", "AEOUT",
    "AETOXGR", "AESTDTC", "AEENDTC", "ASTDT", "ASTDTF", "AENDT", "AENDTF", "ASTDY", "AENDY", "ADURN", "ADURU",
    "ATOXGR", "ATOXGRN", "TRTEMFL", "LDEMFL",
]
TAIL = ["AEDLT", "ADLTFL", "AOCCFL", "AOCCSFL", "AOCCPFL"]
KEYS = ["USUBJID", "AESEQ"]


def columns(settings: AdaeSettings) -> list[str]:
    """ADAE variables in dataset order (the customised-query names depend on the settings)."""
    return HEAD + [f"{q.prefix}NAM" for q in settings.custom_queries] + TAIL


def _dlt(df: pd.DataFrame, window_days: int, findings: list[Finding]) -> pd.Series:
    """ADLTFL mask: adjudicated DLT with onset in [TRTSDT, TRTSDT + window_days]; reports the others."""
    adjudicated = df["AEDLT"].eq("Y").fillna(False).astype(bool)
    days = (pd.to_datetime(df["ASTDT"]) - pd.to_datetime(df["TRTSDT"])).dt.days
    dlt = dlt_window_mask(df, window_days)  # the rule shared with ADSL.DLTFL
    outside = adjudicated & ~dlt
    bad = df.loc[outside]
    why = np.where(bad["TRTSDT"].isna(), "the subject was not infused",
                   np.where(bad["ASTDT"].isna(), "onset date unknown",
                            "onset " + days[outside].astype("Int64").astype(str) + " days after infusion"))
    # One finding per adjudicated-DLT record outside the window (few records by nature).
    findings.extend(
        Finding(rule="ADAM.ADAE.DLTWINDOW", severity="Warning", dataset=NAME, usubjid=u, seq=float(seq),
                variable="ADLTFL", value=str(term),
                message=f"investigator-adjudicated DLT (SUPPAE AEDLT=Y) outside the {window_days}-day DLT "
                        f"window ({w}); ADLTFL not set")
        for u, seq, term, w in zip(bad["USUBJID"], bad["AESEQ"], bad["AEDECOD"], why)
    )
    return dlt


def _check_adsl_dltfl(df: pd.DataFrame, adsl: pd.DataFrame) -> list[Finding]:
    """Subjects whose ADSL.DLTFL disagrees with their ADAE ADLTFL records (both use
    derive_vars_ae_dt + dlt_window_mask, so this is a guard against an ADSL from elsewhere)."""
    if "DLTFL" not in adsl.columns:
        return []
    in_adae = set(df.loc[df["ADLTFL"].eq("Y").fillna(False), "USUBJID"])
    in_adsl = set(adsl.loc[adsl["DLTFL"].eq("Y").fillna(False), "USUBJID"])
    return [
        Finding(rule="ADAM.ADAE.DLTADSL", severity="Warning", dataset=NAME, usubjid=u, variable="ADLTFL",
                message=("ADAE has an ADLTFL record but ADSL.DLTFL is not Y" if u in in_adae else
                         "ADSL.DLTFL is Y but no ADAE record has ADLTFL = Y") + " (ADSL built from other data?)")
        for u in sorted(in_adae ^ in_adsl)
    ]


def build(sdtm: dict[str, pd.DataFrame], adsl: pd.DataFrame, settings_dir: Path) -> tuple[pd.DataFrame, list[Finding]]:
    """Build ADAE from SDTM AE (+ SUPPAE) and ADSL (builder contract: ``docs/ADAM.md``)."""
    settings = load_bds_settings(settings_dir).adae
    dlt_window_days = load_adam_settings(settings_dir).dlt_window_days
    ae = require_sdtm(sdtm, "AE", AE_VARS, NAME)
    findings: list[Finding] = []
    for v in AE_OPTIONAL:
        if v not in ae.columns:
            ae[v] = None
    ae = suppqual_wide(ae, sdtm.get("SUPPAE"), ["AEDLT"])
    ae["AESEQ"] = pd.to_numeric(ae["AESEQ"], errors="coerce").astype("float64")
    df, fnd = merge_adsl(ae, adsl, ADSL_VARS, NAME)
    findings += fnd
    df["TRTA"], df["TRTAN"] = df["TRT01A"], df["TRT01AN"]

    # one rule for AE dates, shared with ADSL.DLTFL (cdisc_pipe.adam.derive.derive_vars_ae_dt)
    df = derive_vars_ae_dt(df)
    bad_start = df["AESTDTC"].notna() & df["ASTDT"].isna()
    findings.extend(
        Finding(rule="ADAM.ADAE.ASTDT", severity="Warning", dataset=NAME, usubjid=u, seq=float(seq),
                variable="ASTDT", value=str(dtc),
                message="AESTDTC cannot be converted to a date (not ISO 8601); ASTDT missing")
        for u, seq, dtc in zip(df.loc[bad_start, "USUBJID"], df.loc[bad_start, "AESEQ"], df.loc[bad_start, "AESTDTC"])
    )
    df = derive_vars_dy(df, "TRTSDT", {"ASTDY": "ASTDT", "AENDY": "AENDT"})
    df = derive_vars_duration(df, "ADURN", "ASTDT", "AENDT", out_unit="days", add_one=True)
    df["ADURU"] = np.where(df["ADURN"].notna(), "DAYS", None)

    df = derive_var_trtemfl(
        df, "ASTDT", "AENDT", "TRTSDT",
        trt_end="TRTEDT" if settings.trtemfl_window_days is not None else None,
        window_days=settings.trtemfl_window_days,
        stop_date="NACTDT" if settings.trtemfl_until_new_therapy else None,
    )
    df = derive_var_period_flag(df, "ASTDT", "LDSDT", "TRTSDT", "LDEMFL")

    df["ATOXGR"] = df["AETOXGR"]
    df["ATOXGRN"] = pd.to_numeric(df["AETOXGR"], errors="coerce").astype("float64")
    bad_grade = df["AETOXGR"].notna() & ~df["ATOXGRN"].isin([1, 2, 3, 4, 5])
    if bad_grade.any():
        findings.append(Finding(rule="ADAM.ADAE.ATOXGR", severity="Error", dataset=NAME, variable="ATOXGR",
                                value=", ".join(sorted(map(str, df.loc[bad_grade, "AETOXGR"].unique()))),
                                message=f"{int(bad_grade.sum())} AE record(s) with AETOXGR outside 1-5"))
        df.loc[bad_grade, "ATOXGRN"] = np.nan

    for q in settings.custom_queries:
        df[f"{q.prefix}NAM"] = np.where(df["AEDECOD"].isin(q.aedecod), q.name, None)

    df["ADLTFL"] = y_flag(_dlt(df, dlt_window_days, findings))

    findings += _check_adsl_dltfl(df, adsl)

    teae = df["TRTEMFL"].eq("Y").fillna(False).astype(bool)
    order = ["ASTDT", "AESEQ"]
    df = derive_var_aoccfl(df, ["USUBJID"], order, "AOCCFL", teae)
    df = derive_var_aoccfl(df, ["USUBJID", "AEBODSYS"], order, "AOCCSFL", teae)
    df = derive_var_aoccfl(df, ["USUBJID", "AEBODSYS", "AEDECOD"], order, "AOCCPFL", teae)

    return finalize(df, columns(settings), KEYS), findings
