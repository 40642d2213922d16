"""ADPC: cellular kinetics concentrations for NCA (ADaMIG-NCA; BDS, subclass NON-COMPARTMENTAL ANALYSIS).

One record per subject, analyte/specimen and sample, plus one imputed record per BLQ sample.
Derivations (spec: ``specs/adam/adpc.yaml``; options: ``specs/settings/adam_bds.yaml`` ``pk``):

- PARAMCD = PCTESTCD + a specimen suffix (BCMACARB blood, BCMACARM bone marrow), PARAM = analyte,
  specimen and unit; PARCAT1 = PCSPEC; AVAL = PCSTRESN, AVALU = PCSTRESU.
- PCRFTDTM = reference (CAR-T infusion) date/time from PCRFTDTC (ADSL TRTSDTM when missing).
  ARRLT = AFRLT = (ADTM - PCRFTDTM) in days; NRRLT = NFRLT = PCELTM in days (single dose, so time
  from first dose = time from reference dose); RRLTU = FRLTU = "DAYS".
- DOSEA/DOSEU = the administered CAR-T dose (EX, EXCAT "CAR-T").
- BLQ samples (PCSTRESC "BLQ") keep AVAL missing (AVALC "BLQ"); for concentration summaries an
  extra record with DTYPE "HALFLLOQ" (AVAL = PCLLOQ / 2) or "LLOQ" (AVAL = PCLLOQ) is added.
- ABLFL: the last pre-infusion sample (ARRLT <= 0) with a result (a BLQ result counts).
- NCAXFL/NCA1XRS: samples not used for NCA (no result, unknown actual time, taken on or after the
  first new anticancer therapy NACTDT, or excluded by the NCA itself: SUPPPC NCAXFL/NCAXRS); ANL01FL: records used for NCA (observed, not excluded);
  ANL02FL: records used for concentration summaries (quantified observed + imputed BLQ records,
  whether or not the NCA used them; not after new anticancer therapy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.adam.derive import derive_vars_dt, derive_vars_dtm, derive_vars_dy, suppqual_wide
from cdisc_pipe.adam.derive_bds import (
    PkSettings,
    check_bds,
    derive_var_ablfl,
    finalize,
    load_bds_settings,
    merge_adsl,
    parse_iso_duration_days,
    require_sdtm,
    y_flag,
)
from cdisc_pipe.errors import Finding

NAME = "ADPC"
REQUIRES = {
    "PC": ["STUDYID", "USUBJID", "PCSEQ", "PCTESTCD", "PCTEST", "PCSPEC", "PCSTRESC", "PCSTRESN", "PCSTRESU",
           "PCDTC", "PCLLOQ", "PCRFTDTC", "PCELTM"],
    "EX": ["USUBJID", "EXCAT", "EXDOSE", "EXDOSU", "EXSTDTC"],
}
CORE = False
PC_VARS = ["STUDYID", "USUBJID", "PCSEQ", "PCTESTCD", "PCTEST", "PCSPEC", "PCSTRESC", "PCSTRESN", "PCSTRESU",
           "PCDTC", "PCLLOQ", "PCRFTDTC", "PCELTM"]
EX_VARS = ["USUBJID", "EXCAT", "EXDOSE", "EXDOSU", "EXSTDTC"]
ADSL_VARS = ["STUDYID", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "PKFL", "TRTSDT", "TRTSDTM", "NACTDT"]
COLUMNS = [
    "STUDYID", "USUBJID", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "PKFL",
    "PARAMCD", "PARAM", "PARCAT1", "AVISIT", "AVISITN", "ATPT", "ATPTN", "ATPTREF",
    "ADTM", "ADT", "ADY", "PCRFTDTM", "NRRLT", "ARRLT", "RRLTU", "NFRLT", "AFRLT", "FRLTU",
    "DTYPE", "AVAL", "AVALC", "AVALU", "PCSTRESC", "PCLLOQ", "ALLOQ", "DOSEA", "DOSEU",
    "ABLFL", "ANL01FL", "ANL02FL", "NCAXFL", "NCA1XRS", "SRCDOM", "SRCVAR", "SRCSEQ",
]
KEYS = ["USUBJID", "PARAMCD", "ADTM", "DTYPE", "SRCSEQ"]

REASON_NO_RESULT = "NO RESULT"
REASON_NO_TIME = "ACTUAL SAMPLING TIME UNKNOWN"
REASON_NEW_THERAPY = "SAMPLE ON OR AFTER NEW ANTICANCER THERAPY"
REASON_NCA = "EXCLUDED BY NCA"


def pk_parameter(testcd: pd.Series, test: pd.Series, spec: pd.Series, unit: pd.Series,
                 settings: PkSettings, extra: pd.Series | None = None) -> tuple[pd.Series, pd.Series]:
    """PARAMCD (test code + specimen suffix) and PARAM ("<test>[ <extra>] in <Specimen> (<unit>)")."""
    suffix = spec.map(settings.specimen_suffix).fillna("")
    paramcd = (testcd.astype(object) + suffix).str.slice(0, 8)
    label = test.astype(object)
    if extra is not None:
        label = label + extra.fillna("")
    label = label + (" in " + spec.astype(object).str.title()).fillna("")
    label = label + (" (" + unit.astype(object) + ")").fillna("")
    return paramcd, label


def cart_dose(ex: pd.DataFrame, cart_excat: str) -> pd.DataFrame:
    """DOSEA/DOSEU per subject: the first CAR-T administration with a dose > 0."""
    cart = ex[ex["EXCAT"].eq(cart_excat).fillna(False) & (pd.to_numeric(ex["EXDOSE"], errors="coerce") > 0)]
    cart = cart.sort_values(["USUBJID", "EXSTDTC"], kind="mergesort").drop_duplicates("USUBJID")
    return pd.DataFrame({"USUBJID": cart["USUBJID"],
                         "DOSEA": pd.to_numeric(cart["EXDOSE"], errors="coerce").astype("float64"),
                         "DOSEU": cart["EXDOSU"]})


def build(sdtm: dict[str, pd.DataFrame], adsl: pd.DataFrame, settings_dir: Path) -> tuple[pd.DataFrame, list[Finding]]:
    """Build ADPC from SDTM PC, EX and ADSL (builder contract: ``docs/ADAM.md``)."""
    bds = load_bds_settings(settings_dir)
    settings = bds.pk
    pc = require_sdtm(sdtm, "PC", PC_VARS, NAME)
    ex = require_sdtm(sdtm, "EX", EX_VARS, NAME)
    findings: list[Finding] = []

    # Records the NCA did not use carry SUPPPC NCAXFL = "Y" and the reason in NCAXRS.
    df = suppqual_wide(pc, sdtm.get("SUPPPC"), ["NCAXFL", "NCAXRS"]).rename(
        columns={"NCAXFL": "__nca_xfl", "NCAXRS": "__nca_xrs"})
    for v in ("VISIT", "VISITNUM", "PCTPT", "PCTPTNUM", "PCTPTREF"):
        if v not in df.columns:
            df[v] = None
    df, fnd = merge_adsl(df, adsl, ADSL_VARS, NAME)
    findings += fnd
    df = df.merge(cart_dose(ex, bds.adex.cart_excat), how="left", on="USUBJID")

    df["PARAMCD"], df["PARAM"] = pk_parameter(df["PCTESTCD"], df["PCTEST"], df["PCSPEC"], df["PCSTRESU"], settings)
    df["PARCAT1"] = df["PCSPEC"]
    df["AVAL"] = pd.to_numeric(df["PCSTRESN"], errors="coerce").astype("float64")
    blq = df["PCSTRESC"].eq(settings.blq_result).fillna(False).astype(bool)
    filled_blq = blq & df["AVAL"].notna()
    if filled_blq.any():
        findings.append(Finding(rule="ADAM.ADPC.BLQ", severity="Warning", dataset=NAME, variable="AVAL",
                                message=f"{int(filled_blq.sum())} BLQ record(s) have PCSTRESN filled; AVAL kept missing"))
        df.loc[filled_blq, "AVAL"] = np.nan
    df["AVALC"] = np.where(blq, settings.blq_result, None)
    df["AVALU"] = df["PCSTRESU"]
    df["PCLLOQ"] = pd.to_numeric(df["PCLLOQ"], errors="coerce").astype("float64")
    df["ALLOQ"] = df["PCLLOQ"]
    df["AVISIT"], df["AVISITN"] = df["VISIT"], pd.to_numeric(df["VISITNUM"], errors="coerce")
    df["ATPT"], df["ATPTN"], df["ATPTREF"] = df["PCTPT"], pd.to_numeric(df["PCTPTNUM"], errors="coerce"), df["PCTPTREF"]
    df["SRCDOM"], df["SRCVAR"] = "PC", np.where(blq, "PCSTRESC", "PCSTRESN")
    df["SRCSEQ"] = pd.to_numeric(df["PCSEQ"], errors="coerce").astype("float64")

    df = derive_vars_dtm(df, "A", "PCDTC", highest_imputation="s", flag_imputation="none")
    df = derive_vars_dt(df, "A", "PCDTC", highest_imputation="n")
    df = derive_vars_dtm(df, "PCRFT", "PCRFTDTC", highest_imputation="s", flag_imputation="none")
    df["PCRFTDTM"] = df["PCRFTDTM"].where(df["PCRFTDTM"].notna(), pd.to_datetime(df["TRTSDTM"]))
    df = derive_vars_dy(df, "TRTSDT", {"ADY": "ADT"})

    df["ARRLT"] = ((df["ADTM"] - df["PCRFTDTM"]).dt.total_seconds() / 86400.0).astype("float64")
    df["AFRLT"] = df["ARRLT"]
    df["NRRLT"], bad_eltm = parse_iso_duration_days(df["PCELTM"])
    df["NFRLT"] = df["NRRLT"]
    df["RRLTU"] = df["FRLTU"] = settings.time_unit
    if bad_eltm.any():
        findings.append(Finding(rule="ADAM.ADPC.PCELTM", severity="Warning", dataset=NAME, variable="NRRLT",
                                value=", ".join(sorted(df.loc[bad_eltm, "PCELTM"].astype(str).unique())[:5]),
                                message=f"{int(bad_eltm.sum())} PCELTM value(s) are not ISO 8601 day/time durations; NRRLT missing"))

    # NCA exclusions (first applicable reason).
    no_result = df["AVAL"].isna() & ~blq
    no_time = df["ARRLT"].isna() & ~no_result
    after_nact_any = (settings.exclude_after_new_therapy & df["ADT"].notna() & pd.to_datetime(df["NACTDT"]).notna()
                      & (df["ADT"] >= pd.to_datetime(df["NACTDT"])))
    after_nact = after_nact_any & ~no_result & ~no_time
    by_nca = df["__nca_xfl"].eq("Y").fillna(False).astype(bool)
    nca_reason = df["__nca_xrs"].fillna(REASON_NCA).astype(object)
    reason = np.select([no_result, no_time, after_nact, by_nca],
                       [REASON_NO_RESULT, REASON_NO_TIME, REASON_NEW_THERAPY, nca_reason], "")
    df["NCA1XRS"] = pd.Series(reason, index=df.index, dtype=object).where(reason != "", None)
    df["NCAXFL"] = y_flag(df["NCA1XRS"].notna())
    df["DTYPE"] = None

    df = derive_var_ablfl(df, ["USUBJID", "PARAMCD"], ["ADTM", "SRCSEQ"], df["ARRLT"].le(0).fillna(False))
    df["ANL01FL"] = y_flag(df["NCAXFL"].isna())
    # Concentration summaries do not depend on the NCA's own choices (e.g. a BLQ between quantifiable
    # samples is dropped from the AUC but is still a BLQ concentration at its time point).
    in_summary = ~no_result & ~after_nact_any
    df["ANL02FL"] = y_flag(in_summary & df["AVAL"].notna())

    if settings.blq_imputation != "none":
        imp = df[blq & in_summary & df["PCLLOQ"].notna()].copy(deep=False)
        factor = 0.5 if settings.blq_imputation == "HALFLLOQ" else 1.0
        imp["AVAL"] = imp["PCLLOQ"] * factor
        imp["AVALC"] = None
        imp["DTYPE"] = settings.blq_imputation
        imp["ABLFL"] = None
        imp["ANL01FL"] = None
        imp["ANL02FL"] = "Y"
        imp["SRCVAR"] = "PCLLOQ"
        df = pd.concat([df, imp], ignore_index=True)
        no_lloq = blq & df["PCLLOQ"].isna() & df["DTYPE"].isna()
        if no_lloq.any():
            findings.append(Finding(rule="ADAM.ADPC.LLOQ", severity="Warning", dataset=NAME, variable="PCLLOQ",
                                    message=f"{int(no_lloq.sum())} BLQ record(s) without PCLLOQ: no imputed record"))

    out = finalize(df, COLUMNS, KEYS)
    findings += check_bds(out, NAME, ["USUBJID", "PARAMCD"])
    return out, findings
