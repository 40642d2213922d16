"""Independent reference ADaM for CDISC's pilot study CDISCPILOT01 (ADSL, ADAE, ADTTE).

Written from the derivation texts of the pilot's ADaM define.xml (Define-XML 1.0, ItemDef
``Comment`` attributes) and its reviewer's guide (adrg.pdf), with plain pandas + pyreadstat.  It
must not import anything from ``cdisc_pipe``: it is the yardstick the spec-driven engine is compared
against.  Each function derives one group of variables and quotes the define text it implements;
where that text is ambiguous the reading chosen is marked ``CHOICE`` and listed in
``examples/cdiscpilot01/NOTES.md`` ("Ambiguities and choices").

Conventions: numeric variables are float64, numeric dates datetime64[ns] (SAS dates with DATE9.),
text variables are strings with missing values as NaN (blank SDTM text is read as missing).

    from tests.pilot_reference import PILOT_DIR, build_reference
    ref = build_reference(PILOT_DIR / "sdtm")     # {"ADSL": ..., "ADAE": ..., "ADTTE": ...}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

PILOT_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "cdiscpilot01"

# Variables in the order of the pilot define (those needing LB/VS/QS left out: see NOTES.md).
ADSL_VARS = [
    "STUDYID", "USUBJID", "SUBJID", "SITEID", "SITEGR1", "ARM", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN",
    "TRTSDT", "TRTEDT", "TRTDUR", "AVGDD", "CUMDOSE", "AGE", "AGEGR1", "AGEGR1N", "AGEU", "RACE", "RACEN",
    "SEX", "ETHNIC", "SAFFL", "ITTFL", "COMP8FL", "COMP16FL", "COMP24FL", "DISCONFL", "DSRAEFL", "DTHFL",
    "EDUCLVL", "DISONSDT", "DURDIS", "DURDSGR1", "VISIT1DT", "RFSTDTC", "RFENDTC", "VISNUMEN", "RFENDT",
    "DCDECOD", "DCREASCD",
]
ADAE_VARS = [
    "STUDYID", "SITEID", "USUBJID", "TRTA", "TRTAN", "AGE", "AGEGR1", "AGEGR1N", "RACE", "RACEN", "SEX",
    "SAFFL", "TRTSDT", "TRTEDT", "ASTDT", "ASTDTF", "ASTDY", "AENDT", "AENDY", "ADURN", "ADURU", "AETERM",
    "AELLT", "AELLTCD", "AEDECOD", "AEPTCD", "AEHLT", "AEHLTCD", "AEHLGT", "AEHLGTCD", "AEBODSYS", "AESOC",
    "AESOCCD", "AESEV", "AESER", "AESCAN", "AESCONG", "AESDISAB", "AESDTH", "AESHOSP", "AESLIFE", "AESOD",
    "AEREL", "AEACN", "AEOUT", "AESEQ", "TRTEMFL", "AOCCFL", "AOCCSFL", "AOCCPFL", "AOCC02FL", "AOCC03FL",
    "AOCC04FL", "CQ01NAM", "AOCC01FL",
]
ADTTE_VARS = [
    "STUDYID", "SITEID", "USUBJID", "AGE", "AGEGR1", "AGEGR1N", "RACE", "RACEN", "SEX", "TRTSDT", "TRTEDT",
    "TRTDUR", "TRTP", "TRTA", "TRTAN", "PARAM", "PARAMCD", "AVAL", "STARTDT", "ADT", "CNSR", "EVNTDESC",
    "SRCDOM", "SRCVAR", "SRCSEQ", "SAFFL",
]

SDTM_NEEDED = ("dm", "ds", "ex", "sv", "mh", "sc", "ae")

# ARMN codelist of the define: "Treatment variable values are based on the numeric dose level
# (i.e., 0, 54, 81)" (adrg.pdf, Core Variables).
ARMN = {"Placebo": 0.0, "Xanomeline Low Dose": 54.0, "Xanomeline High Dose": 81.0}
# RACEN codelist of the define (1, 2, 6, 7).
RACEN = {"WHITE": 1.0, "BLACK OR AFRICAN AMERICAN": 2.0, "AMERICAN INDIAN OR ALASKA NATIVE": 6.0, "ASIAN": 7.0}
# DCREASCD: "Grouping of DCDECOD values to support summarizing study completion status and reason
# for discontinuation" into the DISCREAS codelist.  CHOICE: the mapping is by name; DISCREAS
# "I/E Not Met" is PROTOCOL VIOLATION with DSTERM "PROTOCOL ENTRY CRITERIA NOT MET" (SUPPDS ENTCRIT).
DCREAS = {
    "COMPLETED": "Completed", "ADVERSE EVENT": "Adverse Event", "DEATH": "Death",
    "LACK OF EFFICACY": "Lack of Efficacy", "LOST TO FOLLOW-UP": "Lost to Follow-up",
    "PHYSICIAN DECISION": "Physician Decision", "PROTOCOL VIOLATION": "Protocol Violation",
    "STUDY TERMINATED BY SPONSOR": "Sponsor Decision", "WITHDRAWAL BY SUBJECT": "Withdrew Consent",
}
IE_NOT_MET_TERM = "PROTOCOL ENTRY CRITERIA NOT MET"
CQ01_STRINGS = ("APPLICATION", "DERMATITIS", "ERYTHEMA", "BLISTER")
CQ01_SOC = "SKIN AND SUBCUTANEOUS TISSUE DISORDERS"
CQ01_EXCLUDED = ("COLD SWEAT", "HYPERHIDROSIS", "ALOPECIA")
SITE_POOL_MIN = 3  # SAP 7.1 (not supplied): sites with < 3 subjects in any arm are pooled
POOLED_SITE = "900"
DAYS_PER_MONTH = 365.25 / 12


# --------------------------------------------------------------------------------------------
# input and small helpers
# --------------------------------------------------------------------------------------------

def read_sdtm(sdtm_dir: Path) -> dict[str, pd.DataFrame]:
    """The SDTM domains the reference reads, upper-case names; blank text -> NaN.

    ts.xpt holds a cp1252 byte, so every file is read as cp1252 (ASCII elsewhere).
    """
    out = {}
    for name in SDTM_NEEDED:
        df, _ = pyreadstat.read_xport(str(Path(sdtm_dir) / f"{name}.xpt"), encoding="cp1252")
        for col in df.columns:
            if not pd.api.types.is_numeric_dtype(df[col]):
                df[col] = df[col].where(df[col].str.strip() != "")
        out[name.upper()] = df
    return out


def iso_date(dtc: pd.Series) -> pd.Series:
    """A complete ISO 8601 date (YYYY-MM-DD, time part ignored) as datetime64; partial -> NaT."""
    text = dtc.astype("object").where(dtc.notna() & (dtc.astype("object").str.len() >= 10))
    return pd.to_datetime(text.str[:10], format="%Y-%m-%d", errors="coerce").astype("datetime64[ns]")


def days(end: pd.Series, start: pd.Series) -> pd.Series:
    """end - start in days as float (NaN when either is missing)."""
    return (end - start).dt.days.astype("float64")


def sas_round(x: pd.Series, digits: int) -> pd.Series:
    """SAS ROUND (half away from zero), not numpy's half-to-even."""
    f = 10.0**digits
    return np.sign(x) * np.floor(np.abs(x) * f + 0.5) / f


def lookup(keys: pd.Series, mapping: pd.Series) -> pd.Series:
    """Values of ``mapping`` (indexed by key) for ``keys``, aligned to ``keys``' index."""
    return pd.Series(mapping.reindex(keys.to_numpy()).to_numpy(), index=keys.index)


def flag_first(df: pd.DataFrame, subset: pd.Series, by: list[str], order: list[str]) -> pd.Series:
    """'Y' on the first record of each ``by`` group among ``subset`` rows sorted by ``order``
    (missing values sort first, as SAS sorts them), else missing."""
    rows = df.loc[subset, by + order].sort_values(by + order, na_position="first", kind="mergesort")
    first = rows.index[~rows.duplicated(subset=by, keep="first")]
    flag = pd.Series(np.nan, index=df.index, dtype="object")
    flag.loc[first] = "Y"
    return flag


# --------------------------------------------------------------------------------------------
# ADSL
# --------------------------------------------------------------------------------------------

def adsl_subjects(dm: pd.DataFrame) -> pd.DataFrame:
    """One record per randomised subject.

    adrg.pdf: "The datasets include only subjects who were enrolled in the study. Subjects who
    failed screening criteria were not included in analysis datasets."  Screen failures are the DM
    records with ARMCD 'Scrnfail' (DS DSDECOD SCREEN FAILURE, the same 52 subjects).
    Copies: STUDYID, USUBJID, SUBJID, SITEID, ARM, AGE, AGEU, RACE, SEX, ETHNIC, DTHFL, RFSTDTC,
    RFENDTC ("DM.<name>").
    """
    keep = ["STUDYID", "USUBJID", "SUBJID", "SITEID", "ARMCD", "ARM", "AGE", "AGEU", "RACE", "SEX", "ETHNIC",
            "DTHFL", "RFSTDTC", "RFENDTC"]
    adsl = dm.loc[dm["ARMCD"] != "Scrnfail", keep].sort_values("USUBJID", kind="mergesort")
    return adsl.reset_index(drop=True)


def derive_treatment(adsl: pd.DataFrame) -> pd.DataFrame:
    """TRT01P "DM.ARM"; TRT01PN "Numeric code for TRT01P which corresponds to the randomized dose";
    TRT01A "TRT01A=TRT01P, i.e., no difference between actual and randomized treatment in this
    study"; TRT01AN likewise (ARMN codelist 0/54/81)."""
    adsl = adsl.copy()
    adsl["TRT01P"] = adsl["ARM"]
    adsl["TRT01PN"] = adsl["TRT01P"].map(ARMN).astype("float64")
    adsl["TRT01A"] = adsl["TRT01P"]
    adsl["TRT01AN"] = adsl["TRT01PN"]
    return adsl


def derive_sitegr1(adsl: pd.DataFrame) -> pd.DataFrame:
    """SITEGR1: "refer to SAP, Section 7.1 - if not pooled then SITEGR1=SITEID. If pooled, SITEGR1
    will be 900".  CHOICE (SAP not supplied): a site is pooled when it has fewer than 3 ADSL
    subjects in any one planned treatment group (an arm without subjects counts as 0)."""
    adsl = adsl.copy()
    counts = pd.crosstab(adsl["SITEID"], adsl["TRT01P"]).reindex(columns=list(ARMN), fill_value=0)
    pooled = counts.index[(counts < SITE_POOL_MIN).any(axis=1)]
    adsl["SITEGR1"] = adsl["SITEID"].where(~adsl["SITEID"].isin(pooled), POOLED_SITE)
    return adsl


def visit_dates(sv: pd.DataFrame, visitnums: list[float]) -> pd.DataFrame:
    """SV.SVSTDTC of the given visits as dates, one column per VISITNUM, indexed by USUBJID."""
    rows = sv[sv["VISITNUM"].isin(visitnums)].assign(DT=lambda d: iso_date(d["SVSTDTC"]))
    wide = rows.pivot_table(index="USUBJID", columns="VISITNUM", values="DT", aggfunc="first")
    return wide.reindex(columns=visitnums).astype("datetime64[ns]")


def disposition(ds: pd.DataFrame) -> pd.DataFrame:
    """The subject's DSCAT = 'DISPOSITION EVENT' record (one per subject), indexed by USUBJID."""
    rows = ds[ds["DSCAT"] == "DISPOSITION EVENT"]
    assert not rows["USUBJID"].duplicated().any(), "more than one disposition event per subject"
    return rows.set_index("USUBJID")[["DSDECOD", "DSTERM", "VISITNUM", "DSSTDTC"]]


def derive_disposition(adsl: pd.DataFrame, ds: pd.DataFrame) -> pd.DataFrame:
    """DCDECOD "DS.DSDECOD where DSCAT='DISPOSITION EVENT'"; DCREASCD (grouping, see DCREAS);
    DISCONFL "Y if DCREASCD ^= 'Completed'. Null otherwise"; DSRAEFL "Y if DCREASCD='Adverse
    Event'. Null otherwise"; VISNUMEN "if DS.VISITNUM=13 where DSTERM='PROTCOL COMPLETED' then
    VISNUMEN=12, otherwise VISNUMEN=DS.VISITNUM where DSTERM='PROTCOL COMPLETED'" - CHOICE: the
    VISITNUM of the disposition event record, 13 (week 26, where completion is recorded) -> 12;
    RFENDT "RFENDTC converted to SAS date"."""
    adsl = adsl.copy()
    disp = disposition(ds)
    adsl["DCDECOD"] = lookup(adsl["USUBJID"], disp["DSDECOD"])
    term = lookup(adsl["USUBJID"], disp["DSTERM"])
    reas = adsl["DCDECOD"].map(DCREAS)
    adsl["DCREASCD"] = reas.where(~((adsl["DCDECOD"] == "PROTOCOL VIOLATION") & (term == IE_NOT_MET_TERM)),
                                  "I/E Not Met")
    adsl["DISCONFL"] = np.where(adsl["DCREASCD"].notna() & (adsl["DCREASCD"] != "Completed"), "Y", None)
    adsl["DSRAEFL"] = np.where(adsl["DCREASCD"] == "Adverse Event", "Y", None)
    vis = lookup(adsl["USUBJID"], disp["VISITNUM"]).astype("float64")
    adsl["VISNUMEN"] = vis.where(vis != 13, 12.0)
    adsl["RFENDT"] = iso_date(adsl["RFENDTC"])
    return adsl


def derive_treatment_dates(adsl: pd.DataFrame, sv: pd.DataFrame, ex: pd.DataFrame, ds: pd.DataFrame) -> pd.DataFrame:
    """TRTSDT "SV.SVSTDTC when SV.VISITNUM=3, converted to SAS date".

    TRTEDT "The date of final dose (from the CRF) is EX.EXENDTC on the subject's last EX record.
    If the date of final dose is missing for the subject and the subject discontinued after visit
    3, use the date of discontinuation as the date of last dose."  Last EX record = latest
    EXSTDTC, then EXSEQ.  CHOICE: "discontinued after visit 3" = disposition event not COMPLETED
    with DS.VISITNUM > 3; "date of discontinuation" = its DSSTDTC.

    TRTDUR "TRTEDT-TRTSDT+1".
    """
    adsl = adsl.copy()
    v3 = visit_dates(sv, [3.0])[3.0]
    adsl["TRTSDT"] = lookup(adsl["USUBJID"], v3).astype("datetime64[ns]")

    last_ex = ex.sort_values(["USUBJID", "EXSTDTC", "EXSEQ"], kind="mergesort").groupby("USUBJID").tail(1)
    final_dose = iso_date(last_ex.set_index("USUBJID")["EXENDTC"])
    disp = disposition(ds)
    discontinued_after_v3 = (disp["DSDECOD"] != "COMPLETED") & (disp["VISITNUM"] > 3)
    disc_date = iso_date(disp["DSSTDTC"]).where(discontinued_after_v3)
    trtedt = lookup(adsl["USUBJID"], final_dose).astype("datetime64[ns]")
    adsl["TRTEDT"] = trtedt.fillna(lookup(adsl["USUBJID"], disc_date).astype("datetime64[ns]"))
    adsl["TRTDUR"] = days(adsl["TRTEDT"], adsl["TRTSDT"]) + 1
    return adsl


def derive_dose(adsl: pd.DataFrame, sv: pd.DataFrame, ds: pd.DataFrame) -> pd.DataFrame:
    """CUMDOSE "For ARMN=0 or 1: CUMDOSE=TRT01PN*TRTDUR. --- For ARMN=2: CUMDOSE will be based on
    54mg per day for the # of days subj was in 1st dosing interval (i.e., visit4date-TRTSTDT+1 if
    1st interval completed, TRTEDT-TRTSTDT+1 if subj discontinued <=visit 4 and > visit 3), 81mg
    per day for the # of days subj was in 2nd dosing interval (i.e., visit12date-visit4date if 2nd
    interval completed, TRTEDT-visit4date if subj discontinued <= visit 12 and > visit 4), and 54mg
    per day for the # of days subj was in 3rd dosing interval (i.e., TRTEDT - visit12date if subj
    continued after visit 12)."

    CHOICE: ARMN 0/1/2 = placebo / low dose / high dose (the ARMN codelist itself is 0/54/81);
    "discontinued <= visit N" is read from the disposition event: a subject who did not complete
    and whose DS.VISITNUM is in (3, 4] discontinued in interval 1, in (4, 12] in interval 2;
    completers (DS week 26) and anyone with DS.VISITNUM > 12 continued after visit 12.

    AVGDD "CUMDOSE/TRTDUR" (SignificantDigits 1: rounded to 1 decimal).
    """
    adsl = adsl.copy()
    vd = visit_dates(sv, [4.0, 12.0])
    v4 = lookup(adsl["USUBJID"], vd[4.0]).astype("datetime64[ns]")
    v12 = lookup(adsl["USUBJID"], vd[12.0]).astype("datetime64[ns]")
    disp = disposition(ds)
    dsvis = lookup(adsl["USUBJID"], disp["VISITNUM"]).astype("float64")
    completed = lookup(adsl["USUBJID"], disp["DSDECOD"]) == "COMPLETED"
    stop_in_1 = ~completed & (dsvis > 3) & (dsvis <= 4)
    stop_in_2 = ~completed & (dsvis > 4) & (dsvis <= 12)
    past_12 = ~stop_in_1 & ~stop_in_2

    trtdur = adsl["TRTDUR"]
    d1 = days(v4, adsl["TRTSDT"]).add(1).where(~stop_in_1, trtdur)
    d2 = pd.Series(0.0, index=adsl.index)
    d2 = d2.mask(stop_in_2, days(adsl["TRTEDT"], v4)).mask(past_12, days(v12, v4))
    d3 = days(adsl["TRTEDT"], v12).where(past_12, 0.0)
    high = 54 * d1 + 81 * d2 + 54 * d3

    is_high = adsl["TRT01P"] == "Xanomeline High Dose"
    adsl["CUMDOSE"] = (adsl["TRT01PN"] * trtdur).where(~is_high, high)
    adsl["AVGDD"] = sas_round(adsl["CUMDOSE"] / trtdur, 1)
    return adsl


def derive_groupings(adsl: pd.DataFrame) -> pd.DataFrame:
    """AGEGR1N "AGEGR1 = 1 if AGE <65. AGEGR1 = 2 if AGE 65-80. AGEGR1 = 3 if AGE >80."; AGEGR1
    "Character variable derived from ADSL.AGEGR1N" (<65, 65-80, >80); RACEN "Numeric code for
    RACE" (RACEN codelist)."""
    adsl = adsl.copy()
    age = adsl["AGE"]
    adsl["AGEGR1N"] = np.select([age < 65, (age >= 65) & (age <= 80), age > 80], [1.0, 2.0, 3.0], np.nan)
    adsl["AGEGR1"] = adsl["AGEGR1N"].map({1.0: "<65", 2.0: "65-80", 3.0: ">80"})
    adsl["RACEN"] = adsl["RACE"].map(RACEN).astype("float64")
    return adsl


def derive_populations(adsl: pd.DataFrame) -> pd.DataFrame:
    """ITTFL "Y if ARMCD ne ' '. N otherwise"; SAFFL "Y if ITTFL='Y' and TRTSDT ne missing. N
    otherwise".  (EFFFL needs QS: left out.)"""
    adsl = adsl.copy()
    adsl["ITTFL"] = np.where(adsl["ARMCD"].notna(), "Y", "N")
    adsl["SAFFL"] = np.where((adsl["ITTFL"] == "Y") & adsl["TRTSDT"].notna(), "Y", "N")
    return adsl


def derive_completers(adsl: pd.DataFrame, sv: pd.DataFrame) -> pd.DataFrame:
    """COMP8FL "Y if subject has a SV.VISITNUM=8 and ENDDT >= date of visit 8, N otherwise";
    COMP16FL the same with visit 10, COMP24FL with visit 12.  CHOICE: ENDDT (not an ADSL variable)
    = RFENDT, the "Date of Discontinuation/Completion"."""
    adsl = adsl.copy()
    vd = visit_dates(sv, [8.0, 10.0, 12.0])
    for var, vis in (("COMP8FL", 8.0), ("COMP16FL", 10.0), ("COMP24FL", 12.0)):
        vdate = lookup(adsl["USUBJID"], vd[vis]).astype("datetime64[ns]")
        adsl[var] = np.where(vdate.notna() & (adsl["RFENDT"] >= vdate), "Y", "N")
    return adsl


def derive_baseline_characteristics(adsl: pd.DataFrame, sc: pd.DataFrame, mh: pd.DataFrame,
                                    sv: pd.DataFrame) -> pd.DataFrame:
    """EDUCLVL "SC.SCSTRESN where SC.SCTESTCD=YEARSEDU" - CHOICE: the SDTM names the test EDLEVEL
    (EDUCATION LEVEL, in YEARS; the only SC test), there is no YEARSEDU.
    DISONSDT "MH.MHSTDTC where MHCAT='PRIMARY DIAGNOSIS' converted to SAS date".
    VISIT1DT "SV.SVSTDTC when SV.VISITNUM=1, converted to SAS date".
    DURDIS "number of months between VISIT1DT and DISONSET" - CHOICE: (VISIT1DT - DISONSDT + 1)
    days / (365.25/12), rounded to 1 decimal (SignificantDigits 1).
    DURDSGR1 "grouping DURDIS values as <12 and >=12" (of the rounded DURDIS)."""
    adsl = adsl.copy()
    edu = sc[sc["SCTESTCD"] == "EDLEVEL"].drop_duplicates("USUBJID").set_index("USUBJID")["SCSTRESN"]
    adsl["EDUCLVL"] = lookup(adsl["USUBJID"], edu).astype("float64")
    prim = mh[mh["MHCAT"] == "PRIMARY DIAGNOSIS"].drop_duplicates("USUBJID").set_index("USUBJID")
    adsl["DISONSDT"] = lookup(adsl["USUBJID"], iso_date(prim["MHSTDTC"])).astype("datetime64[ns]")
    adsl["VISIT1DT"] = lookup(adsl["USUBJID"], visit_dates(sv, [1.0])[1.0]).astype("datetime64[ns]")
    months = (days(adsl["VISIT1DT"], adsl["DISONSDT"]) + 1) / DAYS_PER_MONTH
    adsl["DURDIS"] = sas_round(months, 1)
    adsl["DURDSGR1"] = np.select([adsl["DURDIS"] < 12, adsl["DURDIS"] >= 12], ["<12", ">=12"], "")
    adsl["DURDSGR1"] = adsl["DURDSGR1"].where(adsl["DURDSGR1"] != "")
    return adsl


def build_adsl(sdtm: dict[str, pd.DataFrame]) -> pd.DataFrame:
    adsl = adsl_subjects(sdtm["DM"])
    adsl = derive_treatment(adsl)
    adsl = derive_sitegr1(adsl)
    adsl = derive_disposition(adsl, sdtm["DS"])
    adsl = derive_treatment_dates(adsl, sdtm["SV"], sdtm["EX"], sdtm["DS"])
    adsl = derive_dose(adsl, sdtm["SV"], sdtm["DS"])
    adsl = derive_groupings(adsl)
    adsl = derive_populations(adsl)
    adsl = derive_completers(adsl, sdtm["SV"])
    adsl = derive_baseline_characteristics(adsl, sdtm["SC"], sdtm["MH"], sdtm["SV"])
    return finish(adsl, ADSL_VARS)


# --------------------------------------------------------------------------------------------
# ADAE
# --------------------------------------------------------------------------------------------

def adae_records(ae: pd.DataFrame, adsl: pd.DataFrame) -> pd.DataFrame:
    """adrg.pdf: "ADAE contains one record per reported event per subject ... there is a 1-1
    correspondence between records in the source and this analysis dataset".  ADSL variables:
    STUDYID, SITEID, TRTA (= ADSL.TRT01A), TRTAN (= ADSL.TRT01AN), AGE, AGEGR1, AGEGR1N, RACE,
    RACEN, SEX, SAFFL, TRTSDT, TRTEDT.  Every AE subject is an ADSL subject."""
    add = adsl[["USUBJID", "SITEID", "TRT01A", "TRT01AN", "AGE", "AGEGR1", "AGEGR1N", "RACE", "RACEN", "SEX",
                "SAFFL", "TRTSDT", "TRTEDT"]].rename(columns={"TRT01A": "TRTA", "TRT01AN": "TRTAN"})
    adae = ae.drop(columns=["DOMAIN"]).merge(add, on="USUBJID", how="left", validate="many_to_one")
    assert adae["TRTSDT"].notna().sum() == adae["SAFFL"].eq("Y").sum()
    return adae


def derive_ae_dates(adae: pd.DataFrame) -> pd.DataFrame:
    """ASTDT "AE.AESTDTC, converted to a numeric SAS date. ... If the day component is missing, a
    value of '01' is used. If both the month and day are missing no imputation is performed";
    ASTDTF "'D' if the day value within the character date is imputed".
    AENDT "AE.AEENDTC, converted to a numeric SAS date" (no imputation: partial -> missing).
    ASTDY "IF ASTDT>=TRTSDT>MISSING then ASTDY=ASTDT-TRTSDT+1 Else if TRTSDT>ASTDT>MISSING then
    ASTDY=ASTDT-TRTSDT"; AENDY likewise.  ADURN "AENDT-ASTDT+1"; ADURU "If ADURN is not missing
    then ADURU='DAY'"."""
    adae = adae.copy()
    st = adae["AESTDTC"].astype("object")
    year_month = st.str.fullmatch(r"\d{4}-\d{2}", na=False)
    adae["ASTDT"] = iso_date(st.where(~year_month, st + "-01"))
    adae["ASTDTF"] = np.where(year_month & adae["ASTDT"].notna(), "D", None)
    adae["AENDT"] = iso_date(adae["AEENDTC"])
    for day, date in (("ASTDY", "ASTDT"), ("AENDY", "AENDT")):
        rel = days(adae[date], adae["TRTSDT"])
        adae[day] = rel.where(rel < 0, rel + 1)
    adae["ADURN"] = days(adae["AENDT"], adae["ASTDT"]) + 1
    adae["ADURU"] = np.where(adae["ADURN"].notna(), "DAY", None)
    return adae


def derive_trtemfl(adae: pd.DataFrame) -> pd.DataFrame:
    """TRTEMFL "If ASTDT >= TRTSDT > . then TRTEMFL='Y'. Otherwise TRTEMFL='N'" (a missing ASTDT
    is not emergent)."""
    adae = adae.copy()
    emergent = adae["TRTSDT"].notna() & adae["ASTDT"].notna() & (adae["ASTDT"] >= adae["TRTSDT"])
    adae["TRTEMFL"] = np.where(emergent, "Y", "N")
    return adae


def derive_cq01(adae: pd.DataFrame) -> pd.DataFrame:
    """CQ01NAM "If AEDECOD contains any of the character strings of ('APPLICATION', 'DERMATITIS',
    'ERYTHEMA', 'BLISTER') OR if AEBODSYS='SKIN AND SUBC UTANEOUS TISSUE DISORDERS' but AEDECOD is
    not in ('COLD SWEAT', 'HYPERHIDROSIS', 'ALOPECIA') then CQ01NAM='DERMATOLOGIC EVENTS'
    Otherwise CQ01NAM=NULL".  CHOICE: "SUBC UTANEOUS" is a line-break typo for SUBCUTANEOUS; the
    exclusion binds to the SOC branch (the excluded terms contain none of the strings, so either
    reading gives the same result); "contains" is a case-sensitive substring test (so PHARYNGEAL
    ERYTHEMA counts)."""
    adae = adae.copy()
    decod = adae["AEDECOD"].astype("object").fillna("")
    by_term = decod.str.contains("|".join(CQ01_STRINGS), regex=True)
    by_soc = (adae["AEBODSYS"] == CQ01_SOC) & ~decod.isin(CQ01_EXCLUDED)
    adae["CQ01NAM"] = np.where(by_term | by_soc, "DERMATOLOGIC EVENTS", None)
    return adae


def derive_occurrence_flags(adae: pd.DataFrame) -> pd.DataFrame:
    """"Subset to TRTEMFL='Y' [and AESER='Y' | and CQ01NAM ...] and sort by Subject (USUBJID),
    [System Organ Class (AEBODSYS), [Preferred Term (AEDECOD),]] Start Date (ASTDT), and Sequence
    Number (AESEQ) and flag the first record (set ...='Y') within each Subject [and SOC [and PT]]".
    AOCC01FL "Subset to CQ01NAM='' and TRTEMFL='Y' ... (Flag First Treatment Emergent
    Dermatological Event for Time to Event Analysis)" - CHOICE: CQ01NAM='' is a typo for
    CQ01NAM ne '' (the flag marks the first dermatologic event; adrg.pdf says the same)."""
    adae = adae.copy()
    te = adae["TRTEMFL"] == "Y"
    ser = te & (adae["AESER"] == "Y")
    derm = te & adae["CQ01NAM"].notna()
    subj, soc, pt, order = ["USUBJID"], ["USUBJID", "AEBODSYS"], ["USUBJID", "AEBODSYS", "AEDECOD"], ["ASTDT", "AESEQ"]
    adae["AOCCFL"] = flag_first(adae, te, subj, order)
    adae["AOCCSFL"] = flag_first(adae, te, soc, order)
    adae["AOCCPFL"] = flag_first(adae, te, pt, order)
    adae["AOCC02FL"] = flag_first(adae, ser, subj, order)
    adae["AOCC03FL"] = flag_first(adae, ser, soc, order)
    adae["AOCC04FL"] = flag_first(adae, ser, pt, order)
    adae["AOCC01FL"] = flag_first(adae, derm, subj, order)
    return adae


def build_adae(sdtm: dict[str, pd.DataFrame], adsl: pd.DataFrame) -> pd.DataFrame:
    adae = adae_records(sdtm["AE"], adsl)
    adae = derive_ae_dates(adae)
    adae = derive_trtemfl(adae)
    adae = derive_cq01(adae)
    adae = derive_occurrence_flags(adae)
    # define keys: USUBJID, AETERM, ASTDT, AESEQ
    adae = adae.sort_values(["USUBJID", "AETERM", "ASTDT", "AESEQ"], na_position="first", kind="mergesort")
    return finish(adae.reset_index(drop=True), ADAE_VARS)


# --------------------------------------------------------------------------------------------
# ADTTE
# --------------------------------------------------------------------------------------------

def build_adtte(adsl: pd.DataFrame, adae: pd.DataFrame) -> pd.DataFrame:
    """PARAMCD "TTDE", PARAM "Time to First Dermatologic Event"; one record per ADSL subject
    (CHOICE: the define names no population; all ADSL subjects are SAFFL = Y).

    STARTDT "ADSL.RFSTDTC" (as a date).
    ADT "if ADAE.ASTDT is not missing and occurred after TRTSDT then ADAE.ASTDT else convert
    ADSL.RFENDTC to a SAS numeric date"; CNSR "if ADAE.TRTEMFL ="Y" then CNSR=0, else CNSR=1" -
    CHOICE: the ADAE record is the subject's first treatment-emergent dermatologic event
    (AOCC01FL = 'Y', "Flag First Treatment Emergent Dermatological Event for Time to Event
    Analysis"); "after" = on or after (the TRTEMFL rule).
    AVAL "ADT-STARTDT+1".  EVNTDESC "if ADTTE.CNSR = 0 then "Dematologic Event Occured", else if
    ADTTE.CNSR =1 then "Study Completion Date"" (text kept as written, typos included).
    SRCDOM "either ADAE or ADSL", SRCVAR "either ASTDT or RFENDT", SRCSEQ "The value of
    ADAE.AESEQ if SRCDOM=ADAE, otherwise null"."""
    tte = adsl[["STUDYID", "SITEID", "USUBJID", "AGE", "AGEGR1", "AGEGR1N", "RACE", "RACEN", "SEX", "TRTSDT",
                "TRTEDT", "TRTDUR", "TRT01P", "TRT01A", "TRT01AN", "SAFFL", "RFSTDTC", "RFENDT"]].copy()
    tte = tte.rename(columns={"TRT01P": "TRTP", "TRT01A": "TRTA", "TRT01AN": "TRTAN"})
    tte["PARAM"] = "Time to First Dermatologic Event"
    tte["PARAMCD"] = "TTDE"
    tte["STARTDT"] = iso_date(tte["RFSTDTC"])

    first = adae[adae["AOCC01FL"] == "Y"].set_index("USUBJID")
    ev_date = lookup(tte["USUBJID"], first["ASTDT"]).astype("datetime64[ns]")
    ev_seq = lookup(tte["USUBJID"], first["AESEQ"]).astype("float64")
    is_event = ev_date.notna() & tte["TRTSDT"].notna() & (ev_date >= tte["TRTSDT"])

    tte["ADT"] = ev_date.where(is_event, tte["RFENDT"])
    tte["CNSR"] = np.where(is_event, 0.0, 1.0)
    tte["EVNTDESC"] = np.where(is_event, "Dematologic Event Occured", "Study Completion Date")
    tte["SRCDOM"] = np.where(is_event, "ADAE", "ADSL")
    tte["SRCVAR"] = np.where(is_event, "ASTDT", "RFENDT")
    tte["SRCSEQ"] = ev_seq.where(is_event)
    tte["AVAL"] = days(tte["ADT"], tte["STARTDT"]) + 1
    return finish(tte, ADTTE_VARS)


# --------------------------------------------------------------------------------------------

def finish(df: pd.DataFrame, variables: list[str]) -> pd.DataFrame:
    """Variables in define order; numeric -> float64, dates -> datetime64[ns], text missing -> NaN."""
    out = df[variables].copy()
    for col in variables:
        s = out[col]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[col] = s.astype("datetime64[ns]")
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[col] = s.astype("float64")
        else:
            out[col] = s.astype("object").where(s.notna(), np.nan)
    return out


def build_reference(sdtm_dir: Path) -> dict[str, pd.DataFrame]:
    """ADSL, ADAE and ADTTE of CDISCPILOT01 computed from the SDTM XPT files in ``sdtm_dir``."""
    sdtm = read_sdtm(Path(sdtm_dir))
    adsl = build_adsl(sdtm)
    adae = build_adae(sdtm, adsl)
    adtte = build_adtte(adsl, adae)
    return {"ADSL": adsl, "ADAE": adae, "ADTTE": adtte}


if __name__ == "__main__":  # quick look: python tests/pilot_reference.py
    import time

    t0 = time.perf_counter()
    ref = build_reference(PILOT_DIR / "sdtm")
    print(f"build_reference: {time.perf_counter() - t0:.2f} s")
    for name, frame in ref.items():
        print(name, frame.shape)
