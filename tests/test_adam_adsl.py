"""ADSL on a small literal SDTM fixture (also used by the ADRS/ADTTE/build tests).

The fixture study: infusion (CAR-T) on 2023-01-10 = study day 1 for every infused subject;
``day(n)`` is the ISO date of study day n (2023-01-10 + n - 1 days).

| subject | arm (planned) | story |
|---|---|---|
| 1001 | DL1 | PR d29, PR d57 (confirmed), VGPR d91, VGPR d181; MRD neg d91, d181 (only at 1e-4), d456 (sustained) |
| 1002 | DL1 | PR d29 then SD d57/d91 (unconfirmed PR); PD d120 + d150 (confirmed); DLT on d10 |
| 1003 | DL1 | PR d29, PR d57, missed d91, PD d121 + d150: PD after ONE missed assessment -> event |
| 1004 | DL2 | SD d29, then PD d190 + d220: PD after >= 2 missed assessments -> censored at d29; FLC-measurable |
| 1005 | DL2 | PR d29, PR d57, new therapy "2023-03" (imputed 2023-03-01 = d51), PD d91/d120 -> censored at d29 |
| 1006 | DL2 | SD d29, SD d57, death d80 without PD -> event |
| 1007 | DL3 | no response assessment; withdrew d20; not measurable (EFFFL N); DLTEVLFL N |
| 1008 | DL2 | apheresed, never infused (ARMNRS ASSIGNED, NOT TREATED) |
| 1009 | DL3 planned, 3.1 x10^6/kg infused (-> TRT01A DL2) | CR d29, CR d57 (confirmed CR), MRD neg d91, pos d181 |
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cdisc_pipe.adam import adsl as adsl_mod
from cdisc_pipe.paths import project_root

SETTINGS = project_root() / "specs" / "settings"
STUDY = "BCMACART01"


def day(n: int) -> str:
    """ISO date of study day n (day 1 = infusion 2023-01-10; no day 0: day -1 = 2023-01-09)."""
    return (date(2023, 1, 10) + timedelta(days=n - 1 if n > 0 else n)).isoformat()


def ts(n: int) -> pd.Timestamp:
    return pd.Timestamp(day(n))


def uid(s: int) -> str:
    return f"{STUDY}-101-{s}"


def _frame(cols: str, rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=cols.split())


def make_sdtm() -> dict[str, pd.DataFrame]:
    """The literal SDTM fixture (see module docstring)."""
    arms = {"DL1": "DL1: 1.0x10^6 CAR-T cells/kg", "DL2": "DL2: 3.0x10^6 CAR-T cells/kg", "DL3": "DL3: 6.0x10^6 CAR-T cells/kg"}
    planned = {1001: "DL1", 1002: "DL1", 1003: "DL1", 1004: "DL2", 1005: "DL2", 1006: "DL2", 1007: "DL3", 1008: "DL2", 1009: "DL3"}
    actual = {**planned, 1008: None, 1009: "DL2"}
    dm_rows = []
    for s, arm in planned.items():
        infused = s != 1008
        act = actual[s]
        dm_rows.append((STUDY, "DM", uid(s), str(s), "101", 60.0 + s % 10, "YEARS", "F" if s % 2 else "M", "ASIAN",
                        "NOT HISPANIC OR LATINO", "CHN", arm, arms[arm], act, arms[act] if act else None,
                        None if infused else "ASSIGNED, NOT TREATED",
                        f"{day(1)}T10:00" if infused else None, "2022-12-01",
                        day(20) if s == 1007 else (day(80) if s == 1006 else (day(6) if s == 1008 else day(460))),
                        "Y" if s == 1006 else None, day(80) if s == 1006 else None))
    dm = _frame("STUDYID DOMAIN USUBJID SUBJID SITEID AGE AGEU SEX RACE ETHNIC COUNTRY ARMCD ARM ACTARMCD ACTARM ARMNRS "
                "RFSTDTC RFICDTC RFPENDTC DTHFL DTHDTC", dm_rows)
    dose = {"DL1": 1.0, "DL2": 3.0, "DL3": 6.0}
    ex_rows = []
    seq = 0
    for s in planned:
        if s == 1008:
            continue
        for drug, d in (("FLUDARABINE", -5), ("CYCLOPHOSPHAMIDE", -3)):
            seq += 1
            ex_rows.append((uid(s), seq, "LYMPHODEPLETION", drug, 30.0, "mg/m2", day(d), day(d)))
        seq += 1
        ex_rows.append((uid(s), seq, "CAR-T", "ANTI-BCMA CAR-T CELLS", 3.1 if s == 1009 else dose[planned[s]], "10^6/kg",
                        f"{day(1)}T10:00", f"{day(1)}T10:00"))
    ex = _frame("USUBJID EXSEQ EXCAT EXTRT EXDOSE EXDOSU EXSTDTC EXENDTC", ex_rows)
    pr = _frame("USUBJID PRSEQ PRTRT PRCAT PRSTDTC",
                [(uid(s), 1.0, "LEUKAPHERESIS", "STUDY PROCEDURE", "2022-12-20") for s in planned])
    ds = _frame("USUBJID DSSEQ DSCAT DSDECOD DSSTDTC", [
        (uid(1007), 1.0, "DISPOSITION EVENT", "WITHDRAWAL BY SUBJECT", day(20)),
        (uid(1006), 1.0, "DISPOSITION EVENT", "DEATH", day(80)),
        (uid(1008), 1.0, "DISPOSITION EVENT", "WITHDRAWAL BY SUBJECT", day(6)),
        (uid(1001), 1.0, "PROTOCOL MILESTONE", "INFORMED CONSENT OBTAINED", "2022-12-01"),
    ])
    cm = _frame("USUBJID CMSEQ CMTRT CMCAT CMSTDTC", [
        (uid(1001), 1.0, "BORTEZOMIB", "PRIOR ANTI-CANCER THERAPY", "2019-03"),
        (uid(1001), 2.0, "LENALIDOMIDE", "PRIOR ANTI-CANCER THERAPY", "2020-05"),
        (uid(1001), 3.0, "DEXAMETHASONE", "PRIOR ANTI-CANCER THERAPY", "2020-05"),
        (uid(1002), 1.0, "DEXAMETHASONE", "BRIDGING THERAPY", day(-20)),
        (uid(1005), 1.0, "DARATUMUMAB", "SUBSEQUENT ANTI-CANCER THERAPY", "2023-03"),
    ])
    suppcm = _frame("STUDYID RDOMAIN USUBJID IDVAR IDVARVAL QNAM QLABEL QVAL", [
        (STUDY, "CM", uid(1001), "CMSEQ", "1", "LINENUM", "Line Number", "1"),
        (STUDY, "CM", uid(1001), "CMSEQ", "2", "LINENUM", "Line Number", "2"),
        (STUDY, "CM", uid(1001), "CMSEQ", "3", "LINENUM", "Line Number", "2"),
        (STUDY, "CM", uid(1001), "CMSEQ", "1", "REFRACT", "Refractory", "Y"),
        (STUDY, "CM", uid(1001), "CMSEQ", "2", "REFRACT", "Refractory", "N"),
        (STUDY, "CM", uid(1001), "CMSEQ", "3", "REFRACT", "Refractory", "Y"),
    ])
    mh = _frame("USUBJID MHSEQ MHTERM MHCAT MHSTDTC", [(uid(1001), 1.0, "MULTIPLE MYELOMA", "PRIMARY DIAGNOSIS", "2018-06")])
    suppmh = _frame("STUDYID RDOMAIN USUBJID IDVAR IDVARVAL QNAM QLABEL QVAL", [
        (STUDY, "MH", uid(1001), "MHSEQ", "1", q, q, v) for q, v in (("ISS", "II"), ("RISS", "II"), ("HRCYTO", "Y"), ("EMD", "N"))
    ])
    lb_rows = []
    for s in planned:
        m = 5.0 if s in (1004, 1007) else 25.0
        # 1009 reports in g/dL: 2.5 g/dL = 25 g/L (unit_factors in the settings)
        lb_rows.append((uid(s), 1.0, "MCPROT", "SERUM", 2.5 if s == 1009 else m, "g/dL" if s == 1009 else "g/L", day(-7), "Y"))
        if s not in (1007, 1008):
            lb_rows.append((uid(s), 2.0, "MCPROT", "SERUM", 1.0, "g/L", day(29), None))
    lb_rows += [(uid(1004), 3.0, "KLCFR", "SERUM", 300.0, "mg/L", day(-7), "Y"),
                (uid(1004), 4.0, "KLCLLCFR", "SERUM", 10.0, None, day(-7), "Y")]
    lb = _frame("USUBJID LBSEQ LBTESTCD LBSPEC LBSTRESN LBSTRESU LBDTC LBLOBXFL", lb_rows)
    # MRD by NGS (fraction of cells; LBLLOQ = sensitivity): 1001's day-181 negative is only at 1e-4
    ngs = _frame("USUBJID LBSEQ LBTESTCD LBSPEC LBMETHOD LBSTRESN LBLLOQ LBDTC", [
        (uid(1001), 10.0, "MRDFRAC", "BONE MARROW", "NEXT GENERATION SEQUENCING", None, 1e-5, day(91)),
        (uid(1001), 11.0, "MRDFRAC", "BONE MARROW", "NEXT GENERATION SEQUENCING", None, 1e-4, day(181)),
        (uid(1001), 12.0, "MRDFRAC", "BONE MARROW", "NEXT GENERATION SEQUENCING", None, 1e-5, day(456)),
        (uid(1009), 10.0, "MRDFRAC", "BONE MARROW", "NEXT GENERATION SEQUENCING", None, 1e-5, day(91)),
        (uid(1009), 11.0, "MRDFRAC", "BONE MARROW", "NEXT GENERATION SEQUENCING", 3e-4, 1e-5, day(181)),
    ])
    lb = pd.concat([lb, ngs], ignore_index=True)
    ae = _frame("USUBJID AESEQ AEDECOD AESTDTC", [
        (uid(1002), 1.0, "Cytokine release syndrome", day(10)),
        (uid(1001), 1.0, "Neutropenia", day(40)),
    ])
    suppae = _frame("STUDYID RDOMAIN USUBJID IDVAR IDVARVAL QNAM QLABEL QVAL", [
        (STUDY, "AE", uid(1002), "AESEQ", "1", "AEDLT", "Dose Limiting Toxicity", "Y"),
        (STUDY, "AE", uid(1001), "AESEQ", "1", "AEDLT", "Dose Limiting Toxicity", "Y"),
    ])
    dd = _frame("USUBJID DDSEQ DDTESTCD DDSTRESC", [(uid(1006), 1.0, "PRCDTH", "INFECTION")])
    pc = _frame("USUBJID PCSEQ PCSTRESN PCDTC", [
        (uid(1001), 1.0, None, f"{day(1)}T09:00"), (uid(1001), 2.0, 12000.0, day(8)),
        (uid(1002), 1.0, None, day(8)),
    ])
    ovr = {
        1001: [(29, "PR"), (57, "PR"), (91, "VGPR"), (181, "VGPR")],
        1002: [(29, "PR"), (57, "SD"), (91, "SD"), (120, "PD"), (150, "PD")],
        1003: [(29, "PR"), (57, "PR"), (121, "PD"), (150, "PD")],
        1004: [(29, "SD"), (190, "PD"), (220, "PD")],
        1005: [(29, "PR"), (57, "PR"), (91, "PD"), (120, "PD")],
        1006: [(29, "SD"), (57, "SD")],
        1009: [(29, "CR"), (57, "CR"), (91, "CR")],
    }
    mrd = {1001: [(91, "NEGATIVE"), (181, "NEGATIVE"), (456, "NEGATIVE")], 1009: [(91, "NEGATIVE"), (181, "POSITIVE")]}
    rs_rows = []
    for s in planned:
        seq = 0
        if s != 1008:
            seq += 1
            rs_rows.append((uid(s), float(seq), "ECOG101", "ECOG", "1", 1.0, "SCREENING", day(-9), None))
            seq += 1
            rs_rows.append((uid(s), float(seq), "ECOG101", "ECOG", "2", 2.0, "DAY -4", day(-4), None))
        for d, r in ovr.get(s, []):
            seq += 1
            rs_rows.append((uid(s), float(seq), "OVRLRESP", "KUMAR IMWG 2016", r, None, f"DAY {d}", day(d), "INVESTIGATOR"))
        for d, r in mrd.get(s, []):
            seq += 1
            rs_rows.append((uid(s), float(seq), "MRDIND", "KUMAR IMWG 2016", r, None, f"DAY {d}", day(d), "INVESTIGATOR"))
    rs = _frame("USUBJID RSSEQ RSTESTCD RSCAT RSSTRESC RSSTRESN VISIT RSDTC RSEVAL", rs_rows)
    return {"DM": dm, "EX": ex, "PR": pr, "DS": ds, "CM": cm, "SUPPCM": suppcm, "MH": mh, "SUPPMH": suppmh, "LB": lb,
            "AE": ae, "SUPPAE": suppae, "DD": dd, "PC": pc, "RS": rs}


@pytest.fixture(scope="module")
def adsl() -> pd.DataFrame:
    df, _ = adsl_mod.build(make_sdtm(), None, SETTINGS)
    return df.set_index("SUBJID")


def test_one_record_per_subject_including_never_infused(adsl: pd.DataFrame) -> None:
    assert len(adsl) == 9 and adsl.index.is_unique
    never = adsl.loc["1008"]
    assert never["ENRLFL"] == "Y" and never["SAFFL"] == "N"
    assert pd.isna(never["TRTSDT"]) and never["TRT01A"] is None and pd.isna(never["TRT01AN"])
    assert never["TRT01P"] == "DL2: 3.0x10^6 CAR-T cells/kg" and never["TRT01PN"] == 2


def test_treatment_dates_and_doses(adsl: pd.DataFrame) -> None:
    s = adsl.loc["1001"]
    assert s["TRTSDTM"] == pd.Timestamp("2023-01-10 10:00") and s["TRTSDT"] == ts(1) == s["TRTEDT"]
    assert s["LDSDT"] == pd.Timestamp("2023-01-05") and s["LDEDT"] == pd.Timestamp("2023-01-07")
    assert s["APHDT"] == pd.Timestamp("2022-12-20") == s["ENRLDT"]
    assert s["RFICDT"] == pd.Timestamp("2022-12-01")
    assert s["DOSE01P"] == 1.0 and s["DOSE01A"] == 1.0 and s["DOSE01U"] == "10^6/kg"
    # 1009: planned DL3 (6.0), infused 3.1 -> |3.1-3.0|/3.0 = 3% <= 20% -> actual level DL2
    s9 = adsl.loc["1009"]
    assert s9["TRT01PN"] == 3 and s9["TRT01AN"] == 2 and s9["TRT01A"] == "DL2: 3.0x10^6 CAR-T cells/kg"


def test_disposition_death_lstalv_nact(adsl: pd.DataFrame) -> None:
    assert adsl.loc["1007", "EOSSTT"] == "DISCONTINUED" and adsl.loc["1007", "DCSREAS"] == "WITHDRAWAL BY SUBJECT"
    assert adsl.loc["1007", "EOSDT"] == ts(20)
    assert adsl.loc["1001", "EOSSTT"] == "ONGOING" and adsl.loc["1001", "DCSREAS"] is None
    d = adsl.loc["1006"]
    assert d["DTHFL"] == "Y" and d["DTHDT"] == ts(80) and d["DTHCAUS"] == "INFECTION" and d["LSTALVDT"] == ts(80)
    # 1001: latest known-alive date = MRD assessment on day 456 (RFPENDTC day 460 -> later) -> day 460
    assert adsl.loc["1001", "LSTALVDT"] == ts(460)
    # 1007: last contact day 20
    assert adsl.loc["1007", "LSTALVDT"] == ts(20)
    # partial CMSTDTC "2023-03" imputed to the first of the month, flagged D
    assert adsl.loc["1005", "NACTDT"] == pd.Timestamp("2023-03-01") and adsl.loc["1005", "NACTDTF"] == "D"
    assert pd.isna(adsl.loc["1001", "NACTDT"])


def test_baseline_covariates(adsl: pd.DataFrame) -> None:
    s = adsl.loc["1001"]
    # ECOG 1 on day -9 is before the first LD dose (day -5); the day -4 value (2) is after it.
    assert s["BECOG"] == 1
    assert (s["ISS"], s["RISS"], s["HRCYTOFL"], s["EMDFL"]) == ("II", "II", "Y", "N")
    assert s["DIAGDT"] == pd.Timestamp("2018-06-01")
    assert s["PRLINES"] == 2  # LINENUM 1, 2, 2 -> two lines
    # last line (2): lenalidomide N, dexamethasone Y -> refractory to the last line
    assert s["REFLSTFL"] == "Y" and adsl.loc["1002", "REFLSTFL"] is None
    assert adsl.loc["1002", "BRIDGFL"] == "Y" and s["BRIDGFL"] == "N"
    assert s["MDTYPE"] == "SERUM M-PROTEIN"
    # 1004: serum M 5 g/L (< 10) but kappa FLC 300 mg/L (>= 100) with ratio 10 (outside 0.26-1.65)
    assert adsl.loc["1004", "MDTYPE"] == "FREE LIGHT CHAIN"
    assert adsl.loc["1007", "MDTYPE"] is None
    assert adsl.loc["1009", "MDTYPE"] == "SERUM M-PROTEIN"  # 2.5 g/dL -> 25 g/L >= 10


def test_unconvertible_baseline_unit_is_reported() -> None:
    sdtm = make_sdtm()
    lb = sdtm["LB"].copy()
    lb.loc[(lb["USUBJID"] == uid(1001)) & (lb["LBLOBXFL"] == "Y"), "LBSTRESU"] = "mmol/L"
    sdtm["LB"] = lb
    df, findings = adsl_mod.build(sdtm, None, SETTINGS)
    assert df.set_index("SUBJID").loc["1001", "MDTYPE"] is None
    units = [f for f in findings if f.rule == "ADSL.MDTYPE.UNIT"]
    assert len(units) == 1 and units[0].value == "mmol/L" and units[0].usubjid == uid(1001)


def test_population_flags(adsl: pd.DataFrame) -> None:
    assert list(adsl["SAFFL"]) == ["Y"] * 7 + ["N", "Y"]
    assert adsl.loc["1007", "EFFFL"] == "N" and adsl.loc["1004", "EFFFL"] == "Y" and adsl.loc["1008", "EFFFL"] == "N"
    # DLT: 1002 (day 10, within day 0..28); 1001's AEDLT on day 40 is outside the window
    assert adsl.loc["1002", "DLTFL"] == "Y" and adsl.loc["1001", "DLTFL"] == "N"
    # 1007 withdrew on day 20 (< TRTSDT + 28) without a DLT -> not DLT-evaluable
    assert adsl.loc["1007", "DLTEVLFL"] == "N" and adsl.loc["1006", "DLTEVLFL"] == "Y"
    assert adsl.loc["1008", "DLTEVLFL"] == "N"
    # PK: 1001 has a quantifiable post-infusion sample; 1002 only BLQ
    assert adsl.loc["1001", "PKFL"] == "Y" and adsl.loc["1002", "PKFL"] == "N"
    assert adsl.loc["1009", "MRDEVLFL"] == "Y" and adsl.loc["1002", "MRDEVLFL"] == "N"


def test_dates_are_datetime64(adsl: pd.DataFrame) -> None:
    for col in ("TRTSDT", "TRTSDTM", "APHDT", "LDSDT", "DTHDT", "LSTALVDT", "NACTDT", "RFICDT"):
        assert str(adsl[col].dtype) == "datetime64[ns]", col


def test_missing_optional_domains_give_notices() -> None:
    sdtm = {k: v for k, v in make_sdtm().items() if k in ("DM", "EX")}
    df, findings = adsl_mod.build(sdtm, None, SETTINGS)
    assert len(df) == 9
    assert {f.rule for f in findings} == {"ADAM.INPUT.OPTIONAL"}
    assert any("PR" in f.message and "APHDT" in f.message for f in findings)
    assert (df["ENRLFL"] == "N").all() and df["BECOG"].isna().all()


def test_settings_path_exists() -> None:
    assert (Path(SETTINGS) / "adam.yaml").exists()


def test_partial_date_dlt_same_in_adsl_and_adae() -> None:
    """One rule for DLT onset dates: ADSL.DLTFL and ADAE.ADLTFL both use derive_vars_ae_dt.

    1003 gets an adjudicated DLT with AESTDTC "2023-01" (infusion 2023-01-10, LD 2023-01-05..07).
    Imputation: first of the month 2023-01-01; LDSDT 2023-01-05 and TRTSDT 2023-01-10 both lie in
    January and after the 1st -> the later bound, TRTSDT 2023-01-10 = protocol day 0 -> inside the
    0..28 window.  (The old ADSL rule, "missing day -> 1st", gave 2023-01-01 = day -9 -> DLTFL N.)
    1004 gets one with AESTDTC "2023-02" ending "2023-02-10": 2023-02-01 (no bound in February:
    TRTSDT is in January) = 2023-02-01 - 2023-01-10 = 22 days -> inside the window in both.
    1005 gets one with AESTDTC "2023-02-20": 41 days after infusion -> outside in both.
    """
    from cdisc_pipe.adam import adae as adae_mod

    sdtm = make_sdtm()
    extra = _frame("USUBJID AESEQ AEDECOD AESTDTC", [
        (uid(1003), 1.0, "Neutropenia", "2023-01"),
        (uid(1004), 1.0, "Thrombocytopenia", "2023-02"),
        (uid(1005), 1.0, "Anaemia", "2023-02-20"),
    ])
    extra["AEENDTC"] = [None, "2023-02-10", None]
    ae = pd.concat([sdtm["AE"], extra], ignore_index=True)
    ae["STUDYID"], ae["AETERM"] = STUDY, ae["AEDECOD"].str.upper()
    sdtm["AE"] = ae
    sdtm["SUPPAE"] = pd.concat([sdtm["SUPPAE"], _frame("STUDYID RDOMAIN USUBJID IDVAR IDVARVAL QNAM QLABEL QVAL", [
        (STUDY, "AE", uid(s), "AESEQ", "1", "AEDLT", "Dose Limiting Toxicity", "Y") for s in (1003, 1004, 1005)])],
        ignore_index=True)
    adsl_df, _ = adsl_mod.build(sdtm, None, SETTINGS)
    adae_df, findings = adae_mod.build(sdtm, adsl_df, SETTINGS)
    a = adsl_df.set_index("SUBJID")
    assert a.loc["1003", "DLTFL"] == "Y" and a.loc["1004", "DLTFL"] == "Y" and a.loc["1005", "DLTFL"] == "N"
    r3 = adae_df[adae_df["USUBJID"] == uid(1003)].iloc[0]
    assert r3["ASTDT"] == pd.Timestamp("2023-01-10") and r3["ASTDTF"] == "D" and r3["ADLTFL"] == "Y"
    r4 = adae_df[adae_df["USUBJID"] == uid(1004)].iloc[0]
    assert r4["ASTDT"] == pd.Timestamp("2023-02-01") and r4["ADLTFL"] == "Y"
    # Same subjects flagged in both (and no ADSL/ADAE disagreement finding)
    in_adae = set(adae_df.loc[adae_df["ADLTFL"] == "Y", "USUBJID"])
    assert in_adae == set(adsl_df.loc[adsl_df["DLTFL"] == "Y", "USUBJID"]) == {uid(1002), uid(1003), uid(1004)}
    assert not [f for f in findings if f.rule == "ADAM.ADAE.DLTADSL"]


def test_never_infused_arm_variables_follow_adamig(adsl: pd.DataFrame) -> None:
    """1008 was assigned DL2 and never infused: ARM/ARMCD planned, ACTARM/ACTARMCD null with
    ARMNRS "ASSIGNED, NOT TREATED" (SDTMIG 3.4 DM, carried to ADSL); so ACTARM (and ARM, null for a
    screen failure) cannot be Req in the ADSL spec: Cond, as ARMNRS and ACTARMUD."""
    from cdisc_pipe.adam import conform_to_spec
    from cdisc_pipe.spec.load import load_specs

    never = adsl.loc["1008"]
    assert never["ARMCD"] == "DL2" and pd.isna(never["ACTARMCD"]) and pd.isna(never["ACTARM"])
    assert never["ARMNRS"] == "ASSIGNED, NOT TREATED" and pd.isna(never["ACTARMUD"])
    assert pd.isna(adsl.loc["1001", "ARMNRS"]) and adsl.loc["1001", "ACTARM"] == "DL1: 1.0x10^6 CAR-T cells/kg"
    spec = load_specs(project_root() / "specs")
    core = {v.name: v.core for v in spec.datasets["ADSL"].variables}
    assert {k: core[k] for k in ("ARM", "ACTARM", "ARMNRS", "ACTARMUD")} == dict.fromkeys(
        ("ARM", "ACTARM", "ARMNRS", "ACTARMUD"), "Cond")
    # Every Req variable of the ADSL spec is populated on every record, the never-infused one included.
    out, _ = conform_to_spec(adsl.reset_index(), spec.datasets["ADSL"])
    req = [v for v, c in core.items() if c == "Req"]
    assert not out[req].isna().any().any(), out[req].isna().sum()
    assert "ACTARMUD" in out.columns and "ARMNRS" in out.columns


def test_null_actual_arm_without_reason_is_reported() -> None:
    sdtm = make_sdtm()
    sdtm["DM"] = sdtm["DM"].assign(ARMNRS=None)
    _, findings = adsl_mod.build(sdtm, None, SETTINGS)
    miss = [f for f in findings if f.rule == "ADSL.ARMNRS.MISSING"]
    assert [f.usubjid for f in miss] == [uid(1008)]


def test_becog_is_the_adecog_baseline() -> None:
    """ECOG 3 recorded on the first LD day (day -5, untimed) is the pre-dose baseline in both ADSL
    and ADECOG (the old ADSL rule took only values strictly before LDSDT: day -9 value 1)."""
    from cdisc_pipe.adam import adecog as adecog_mod

    sdtm = make_sdtm()
    rs = sdtm["RS"]
    extra = _frame("USUBJID RSSEQ RSTESTCD RSCAT RSSTRESC RSSTRESN VISIT RSDTC RSEVAL",
                   [(uid(1001), 99.0, "ECOG101", "ECOG", "3", 3.0, "LYMPHODEPLETION", day(-5), None)])
    sdtm["RS"] = pd.concat([rs, extra], ignore_index=True).assign(STUDYID=STUDY, RSTEST="ECOG Performance Status")
    adsl_df, _ = adsl_mod.build(sdtm, None, SETTINGS)
    a = adsl_df.set_index("SUBJID")
    assert a.loc["1001", "BECOG"] == 3 and a.loc["1002", "BECOG"] == 1  # 1002: day -9 (1); day -4 (2) is after LD
    ecog, _ = adecog_mod.build(sdtm, adsl_df, SETTINGS)
    base = ecog[ecog["ABLFL"] == "Y"].set_index("USUBJID")["AVAL"]
    assert base.to_dict() == adsl_df.set_index("USUBJID")["BECOG"].dropna().reindex(base.index).to_dict()
    assert base[uid(1001)] == 3


def test_baseline_disease_assessment_flag() -> None:
    """BLDISFL: 1002's only baseline disease marker (serum M-protein) reported "<1.0" (LBSTRESN
    null) is still a baseline assessment -> Y (MDTYPE missing: nothing measurable); 1003's baseline
    record with no result at all (not done) -> N; others keep Y (1007: 5 g/L, not measurable)."""
    sdtm = make_sdtm()
    lb = sdtm["LB"].copy()
    lb["LBSTRESC"] = lb["LBSTRESN"].map(lambda v: None if pd.isna(v) else str(v))
    b2 = (lb["USUBJID"] == uid(1002)) & (lb["LBLOBXFL"] == "Y")
    b3 = (lb["USUBJID"] == uid(1003)) & (lb["LBLOBXFL"] == "Y")
    lb.loc[b2, ["LBSTRESN", "LBSTRESC"]] = [None, "<1.0"]
    lb.loc[b3, ["LBSTRESN", "LBSTRESC"]] = [None, None]
    sdtm["LB"] = lb
    df, _ = adsl_mod.build(sdtm, None, SETTINGS)
    a = df.set_index("SUBJID")
    assert (a.loc["1002", "BLDISFL"], a.loc["1002", "MDTYPE"]) == ("Y", None)
    assert (a.loc["1003", "BLDISFL"], a.loc["1003", "MDTYPE"]) == ("N", None)
    assert a.loc["1007", "BLDISFL"] == "Y" and a.loc["1001", "BLDISFL"] == "Y"
