"""ADSL on a small literal SDTM fixture (also used by the ADRS/ADTTE/build tests), built by the
bundled study's derivation plan (specs/plans/adsl.yaml), and the subject-level verbs
(cdisc_pipe.adam.verbs_subject) on smaller literal tables.

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

import importlib
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.adam import build_adam, conform_to_spec
from cdisc_pipe.adam.derive import convert_blanks_to_na
from cdisc_pipe.adam.plan import load_plans, run_plan
from cdisc_pipe.adam.verbs import VERBS, Context
from cdisc_pipe.errors import Finding, InputError
from cdisc_pipe.paths import project_root
from cdisc_pipe.spec.load import load_specs
from cdisc_pipe.spec.model import StudySpec

SPECS = project_root() / "specs"
SETTINGS = SPECS / "settings"
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
                "RFSTDTC RFICDTC RFPENDTC DTHFL DTHDTC", dm_rows).assign(ACTARMUD=None)
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
    # VISITNUM (Expected in SDTM): the study day of "DAY n" visits, -1 for screening
    num = pd.to_numeric(rs["VISIT"].str.extract(r"DAY (-?\d+)")[0], errors="coerce")
    rs["VISITNUM"] = num.where(num.notna(), -1.0)
    return {"DM": dm, "EX": ex, "PR": pr, "DS": ds, "CM": cm, "SUPPCM": suppcm, "MH": mh, "SUPPMH": suppmh, "LB": lb,
            "AE": ae, "SUPPAE": suppae, "DD": dd, "PC": pc, "RS": rs}


# --------------------------------------------------------------------------------------------
# building with the plan


@lru_cache(maxsize=None)
def _spec(specs_dir: Path = SPECS) -> StudySpec:
    return load_specs(specs_dir)


def _frames(sdtm: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {k.upper(): convert_blanks_to_na(v) for k, v in sdtm.items()}


def _run(name: str, frames: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[Finding]]:
    spec = _spec()
    plan = load_plans(SPECS / "plans", spec)[name]
    df, findings = run_plan(plan, frames)
    df, more = conform_to_spec(df, spec.dataset(name))
    return df, findings + more


def build_adsl(sdtm: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, list[Finding]]:
    """ADSL of ``sdtm`` by the bundled plan (specs/plans/adsl.yaml), conformed to the spec."""
    return _run("ADSL", _frames(sdtm))


def build_after_adsl(name: str, sdtm: dict[str, pd.DataFrame], adsl_df: pd.DataFrame) -> tuple[pd.DataFrame, list[Finding]]:
    """Another ADaM dataset on the same fixture: by its plan when the study has one, else its module."""
    if (SPECS / "plans" / f"{name.lower()}.yaml").exists():
        return _run(name, {**_frames(sdtm), "ADSL": adsl_df})
    module = importlib.import_module(f"cdisc_pipe.adam.{name.lower()}")
    return module.build(sdtm, adsl_df, SETTINGS)


@pytest.fixture(scope="module")
def adsl() -> pd.DataFrame:
    df, _ = build_adsl(make_sdtm())
    return df.set_index("SUBJID")


def test_one_record_per_subject_including_never_infused(adsl: pd.DataFrame) -> None:
    assert len(adsl) == 9 and adsl.index.is_unique
    never = adsl.loc["1008"]
    assert never["ENRLFL"] == "Y" and never["SAFFL"] == "N"
    assert pd.isna(never["TRTSDT"]) and never["TRT01A"] is None and pd.isna(never["TRT01AN"])
    assert never["TRT01P"] == "DL2: 3.0x10^6 CAR-T cells/kg" and never["TRT01PN"] == 2


def test_duplicate_dm_record_is_an_error_and_the_first_is_used() -> None:
    sdtm = make_sdtm()
    dm = sdtm["DM"]
    twin = dm[dm["SUBJID"] == "1001"].assign(AGE=99.0)
    sdtm["DM"] = pd.concat([dm, twin], ignore_index=True)
    df, findings = build_adsl(sdtm)
    assert len(df) == 9 and df.set_index("SUBJID").loc["1001", "AGE"] == 61.0  # 60 + 1001 % 10
    dup = [f for f in findings if f.rule == "ADSL.DM.DUPLICATE"]
    assert [(f.severity, f.usubjid) for f in dup] == [("Error", uid(1001))]


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


def test_actual_level_differs_from_actarm_and_unmatched_dose_are_reported() -> None:
    """Give 1002 an infused dose of 2.0 (|2-1|/1 = 100%, |2-3|/3 = 33%, |2-6|/6 = 67%: no level
    within 20%) -> TRT01A missing and a NOLEVEL warning; give 1003 (planned and DM.ACTARM DL1) 3.0
    -> DL2 exactly -> TRT01A DL2 and a warning that it differs from ACTARM.  1009 (3.1 -> DL2, ACTARM
    DL2) agrees: no warning."""
    sdtm = make_sdtm()
    ex = sdtm["EX"].copy()
    cart = ex["EXCAT"] == "CAR-T"
    ex.loc[(ex["USUBJID"] == uid(1002)) & cart, "EXDOSE"] = 2.0
    ex.loc[(ex["USUBJID"] == uid(1003)) & cart, "EXDOSE"] = 3.0
    sdtm["EX"] = ex
    df, findings = build_adsl(sdtm)
    a = df.set_index("SUBJID")
    assert a.loc["1002", "TRT01A"] is None and pd.isna(a.loc["1002", "TRT01AN"]) and a.loc["1002", "DOSE01A"] == 2.0
    assert a.loc["1003", "TRT01AN"] == 2 and a.loc["1003", "TRT01PN"] == 1
    nolevel = [f for f in findings if f.rule == "ADSL.TRT01A.NOLEVEL"]
    assert [(f.usubjid, f.value) for f in nolevel] == [(uid(1002), "2.0")]
    assert [f.usubjid for f in findings if f.rule == "ADSL.TRT01A.ACTARM"] == [uid(1003)]


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
    df, findings = build_adsl(sdtm)
    assert df.set_index("SUBJID").loc["1001", "MDTYPE"] is None
    units = [f for f in findings if f.rule == "ADSL.MDTYPE.UNIT"]
    assert len(units) == 1 and units[0].value == "mmol/L" and units[0].usubjid == uid(1001)


def test_population_flags(adsl: pd.DataFrame) -> None:
    assert list(adsl["SAFFL"]) == ["Y"] * 7 + ["N", "Y"]
    assert adsl.loc["1007", "EFFFL"] == "N" and adsl.loc["1004", "EFFFL"] == "Y" and adsl.loc["1008", "EFFFL"] == "N"
    # DLT: 1002 (day 10, within day 0..28); 1001's AEDLT on day 40 is outside the window
    assert adsl.loc["1002", "DLTFL"] == "Y" and adsl.loc["1001", "DLTFL"] == "N"
    assert adsl.loc["1008", "DLTFL"] is None  # never infused: no window
    # 1007 withdrew on day 20 (< TRTSDT + 28) without a DLT -> not DLT-evaluable
    assert adsl.loc["1007", "DLTEVLFL"] == "N" and adsl.loc["1006", "DLTEVLFL"] == "Y"
    assert adsl.loc["1008", "DLTEVLFL"] == "N"
    # PK: 1001 has a quantifiable post-infusion sample; 1002 only BLQ
    assert adsl.loc["1001", "PKFL"] == "Y" and adsl.loc["1002", "PKFL"] == "N"
    assert adsl.loc["1009", "MRDEVLFL"] == "Y" and adsl.loc["1002", "MRDEVLFL"] == "N"


def test_dates_are_datetime64(adsl: pd.DataFrame) -> None:
    for col in ("TRTSDT", "TRTSDTM", "APHDT", "LDSDT", "DTHDT", "LSTALVDT", "NACTDT", "RFICDT"):
        assert str(adsl[col].dtype) == "datetime64[ns]", col


def test_datasets_the_plan_needs_are_required_and_optional_ones_are_not(tmp_path: Path) -> None:
    """A dataset a step of the plan reads is required (an input error naming it, before any
    derivation; the old module left its variables missing with a Notice); the sources marked
    optional (TA labels, VS and SS contact dates, AE/EX end dates, RS) may be absent: ADSL is still
    built, with a Notice ADAM.INPUT.OPTIONAL per absent source (the other tests)."""
    (tmp_path / "plans").mkdir()
    (tmp_path / "settings").mkdir()
    (tmp_path / "plans" / "adsl.yaml").write_bytes((SPECS / "plans" / "adsl.yaml").read_bytes())
    spec = _spec()
    adsl_only = spec.model_copy(update={"datasets": {n: d for n, d in spec.datasets.items()
                                                     if d.purpose != "Analysis" or n == "ADSL"}})
    sdtm = {k: v for k, v in make_sdtm().items() if k in ("DM", "EX")}
    with pytest.raises(InputError) as err:
        build_adam(sdtm, adsl_only, tmp_path / "settings")
    named = {p.entry for p in err.value.problems}
    assert named == {"PR", "DS", "DD", "CM", "SUPPCM", "MH", "SUPPMH", "LB", "AE", "SUPPAE", "PC"}
    # with every dataset the plan needs, the optional ones (TA, VS, SS; RS: an early export may have
    # no assessment yet) absent: built
    res = build_adam(make_sdtm(), adsl_only, tmp_path / "settings")
    assert len(res.datasets["ADSL"]) == 9


def test_settings_and_plan_exist() -> None:
    assert (SPECS / "plans" / "adsl.yaml").exists()


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
    sdtm = make_sdtm()
    extra = _frame("USUBJID AESEQ AEDECOD AESTDTC", [
        (uid(1003), 1.0, "Neutropenia", "2023-01"),
        (uid(1004), 1.0, "Thrombocytopenia", "2023-02"),
        (uid(1005), 1.0, "Anaemia", "2023-02-20"),
    ])
    extra["AEENDTC"] = [None, "2023-02-10", None]
    ae = pd.concat([sdtm["AE"], extra], ignore_index=True)
    ae["STUDYID"], ae["AETERM"] = STUDY, ae["AEDECOD"].str.upper()
    # the rest of what the ADAE plan carries (not used by the DLT rule)
    ae = ae.assign(AEBODSYS="SOC", AESER="N", AEREL="RELATED", AEOUT="RECOVERED/RESOLVED", AETOXGR="2")
    sdtm["AE"] = ae
    sdtm["SUPPAE"] = pd.concat([sdtm["SUPPAE"], _frame("STUDYID RDOMAIN USUBJID IDVAR IDVARVAL QNAM QLABEL QVAL", [
        (STUDY, "AE", uid(s), "AESEQ", "1", "AEDLT", "Dose Limiting Toxicity", "Y") for s in (1003, 1004, 1005)])],
        ignore_index=True)
    adsl_df, _ = build_adsl(sdtm)
    adae_df, findings = build_after_adsl("ADAE", sdtm, adsl_df)
    a = adsl_df.set_index("SUBJID")
    assert a.loc["1003", "DLTFL"] == "Y" and a.loc["1004", "DLTFL"] == "Y" and a.loc["1005", "DLTFL"] == "N"
    r3 = adae_df[adae_df["USUBJID"] == uid(1003)].iloc[0]
    assert r3["ASTDT"] == pd.Timestamp("2023-01-10") and r3["ASTDTF"] == "D" and r3["ADLTFL"] == "Y"
    r4 = adae_df[adae_df["USUBJID"] == uid(1004)].iloc[0]
    assert r4["ASTDT"] == pd.Timestamp("2023-02-01") and r4["ADLTFL"] == "Y"
    # Same subjects flagged in both (and no ADSL/ADAE disagreement finding)
    in_adae = set(adae_df.loc[adae_df["ADLTFL"] == "Y", "USUBJID"])
    assert in_adae == set(adsl_df.loc[adsl_df["DLTFL"] == "Y", "USUBJID"]) == {uid(1002), uid(1003), uid(1004)}
    assert not [f for f in findings if f.rule.endswith("SUBJFLAG")]


def test_never_infused_arm_variables_follow_adamig(adsl: pd.DataFrame) -> None:
    """1008 was assigned DL2 and never infused: ARM/ARMCD planned, ACTARM/ACTARMCD null with
    ARMNRS "ASSIGNED, NOT TREATED" (SDTMIG 3.4 DM, carried to ADSL); so ACTARM (and ARM, null for a
    screen failure) cannot be Req in the ADSL spec: Cond, as ARMNRS and ACTARMUD."""
    never = adsl.loc["1008"]
    assert never["ARMCD"] == "DL2" and pd.isna(never["ACTARMCD"]) and pd.isna(never["ACTARM"])
    assert never["ARMNRS"] == "ASSIGNED, NOT TREATED" and pd.isna(never["ACTARMUD"])
    assert pd.isna(adsl.loc["1001", "ARMNRS"]) and adsl.loc["1001", "ACTARM"] == "DL1: 1.0x10^6 CAR-T cells/kg"
    spec = _spec()
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
    _, findings = build_adsl(sdtm)
    miss = [f for f in findings if f.rule == "ADSL.ARMNRS.MISSING"]
    assert [f.usubjid for f in miss] == [uid(1008)]


def test_missing_arm_takes_the_label_of_its_code() -> None:
    """DM.ARM missing for 1002 (ARMCD DL1): TRT01P = the DL1 label seen on other subjects, with a Warning."""
    sdtm = make_sdtm()
    dm = sdtm["DM"].copy()
    dm.loc[dm["SUBJID"] == "1002", "ARM"] = None
    sdtm["DM"] = dm
    df, findings = build_adsl(sdtm)
    assert df.set_index("SUBJID").loc["1002", "TRT01P"] == "DL1: 1.0x10^6 CAR-T cells/kg"
    assert [f.usubjid for f in findings if f.rule == "ADSL.TRT01P.LABEL"] == [uid(1002)]


def test_becog_is_the_adecog_baseline() -> None:
    """ECOG 3 recorded on the first LD day (day -5, untimed) is the pre-dose baseline in both ADSL
    and ADECOG (the old ADSL rule took only values strictly before LDSDT: day -9 value 1)."""
    sdtm = make_sdtm()
    rs = sdtm["RS"]
    extra = _frame("USUBJID RSSEQ RSTESTCD RSCAT RSSTRESC RSSTRESN VISIT RSDTC RSEVAL",
                   [(uid(1001), 99.0, "ECOG101", "ECOG", "3", 3.0, "LYMPHODEPLETION", day(-5), None)])
    sdtm["RS"] = pd.concat([rs, extra], ignore_index=True).assign(STUDYID=STUDY, RSTEST="ECOG Performance Status",
                                                                  VISITNUM=1.0)
    adsl_df, _ = build_adsl(sdtm)
    a = adsl_df.set_index("SUBJID")
    assert a.loc["1001", "BECOG"] == 3 and a.loc["1002", "BECOG"] == 1  # 1002: day -9 (1); day -4 (2) is after LD
    assert pd.isna(a.loc["1008", "BECOG"])  # never treated and no ECOG at all
    ecog, _ = build_after_adsl("ADECOG", sdtm, adsl_df)
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
    df, _ = build_adsl(sdtm)
    a = df.set_index("SUBJID")
    assert (a.loc["1002", "BLDISFL"], a.loc["1002", "MDTYPE"]) == ("Y", None)
    assert (a.loc["1003", "BLDISFL"], a.loc["1003", "MDTYPE"]) == ("N", None)
    assert a.loc["1007", "BLDISFL"] == "Y" and a.loc["1001", "BLDISFL"] == "Y"


def test_plan_methods_describe_the_steps_without_file_names() -> None:
    plan = load_plans(SPECS / "plans", _spec())["ADSL"]
    text = plan.methods
    assert "within 20% of DOSE01A" in text["TRT01A"] and "EXCAT = 'CAR-T'" in text["TRTSDTM"]
    assert "0 to 28 days after TRTSDT" in text["DLTFL"]
    assert all(".yaml" not in t and ".py" not in t for t in text.values())


# --------------------------------------------------------------------------------------------
# the verbs, one by one, on small literal tables


def run_step(df: pd.DataFrame, step: dict, frames: dict[str, pd.DataFrame] | None = None,
             dataset: str = "ADSL") -> tuple[pd.DataFrame, list[Finding]]:
    verb = VERBS[step["verb"]]
    args = verb.args.model_validate(step)
    ctx = Context(frames={k.upper(): v for k, v in (frames or {}).items()}, dataset=dataset)
    return verb.run(df, args, ctx).reset_index(drop=True), ctx.findings


def _vals(col: pd.Series) -> list:
    """Values with every kind of missing as None (text columns may hold NaN)."""
    return [None if pd.isna(x) else x for x in col]


SUBJ = pd.DataFrame({"USUBJID": ["S1", "S2", "S3", "S4"],
                     "TRTSDT": pd.to_datetime(["2023-05-10", "2023-05-10", None, "2023-06-01"])})


def test_extreme_event_last_date_over_sources_partial_dates_and_optional_sources() -> None:
    """Latest complete date over EX start/end and an optional VS that is absent.
    S1: EX 2023-05-10, end 2023-05-12 -> 2023-05-12.  S2: EX start "2023-05" (partial: not a date)
    and end missing -> no date.  S3: no records.  S4: start 2023-06-01T08:00 -> 2023-06-01."""
    ex = pd.DataFrame({"USUBJID": ["S1", "S2", "S4"], "EXSTDTC": ["2023-05-10", "2023-05", "2023-06-01T08:00"],
                       "EXENDTC": ["2023-05-12", None, None]})
    out, _ = run_step(SUBJ, {"verb": "derive_vars_extreme_event", "new_var": "LSTDT", "mode": "last",
                             "events": [{"dataset": "EX", "dtc": "EXSTDTC"}, {"dataset": "EX", "dtc": "EXENDTC"},
                                        {"dataset": "VS", "dtc": "VSDTC", "optional": True}]}, {"EX": ex})
    assert list(out["LSTDT"]) == [pd.Timestamp("2023-05-12"), pd.NaT, pd.NaT, pd.Timestamp("2023-06-01")]
    assert str(out["LSTDT"].dtype) == "datetime64[ns]"
    with pytest.raises(KeyError):  # a source not marked optional must be there
        run_step(SUBJ, {"verb": "derive_vars_extreme_event", "new_var": "LSTDT", "mode": "last",
                        "events": [{"dataset": "VS", "dtc": "VSDTC"}]}, {"EX": ex})


def test_extreme_event_first_date_imputation_ties_and_filter_join() -> None:
    """First new therapy on/after TRTSDT.  S1: CM "2023-05" -> 2023-05-01 (D) is before TRTSDT
    2023-05-10 -> dropped; CM 2023-06-03 and PR 2023-06-03 tie -> the first source (CM, no flag,
    CMTRT carried).  S2: PR "2023-07" -> 2023-07-01 flag D.  S3: TRTSDT missing -> no candidate
    passes the comparison.  S4: none."""
    cm = pd.DataFrame({"USUBJID": ["S1", "S1", "S3"], "CMCAT": ["NEW", "NEW", "NEW"],
                       "CMSTDTC": ["2023-05", "2023-06-03", "2023-06-01"], "CMTRT": ["A", "B", "C"]})
    pr = pd.DataFrame({"USUBJID": ["S1", "S2"], "PRCAT": ["NEW", "NEW"], "PRSTDTC": ["2023-06-03", "2023-07"],
                       "PRTRT": ["ASCT", "ASCT"]})
    step = {"verb": "derive_vars_extreme_event", "new_var": "NACTDT", "mode": "first", "date_flag_var": "NACTDTF",
            "filter_join": [{"variable": "NACTDT", "comparator": "GE", "other": "TRTSDT"}],
            "events": [{"dataset": "CM", "where": [{"variable": "CMCAT", "values": ["NEW"]}], "dtc": "CMSTDTC",
                        "highest_imputation": "D", "set_values_to": {"_WHAT": "CMTRT"}},
                       {"dataset": "PR", "dtc": "PRSTDTC", "highest_imputation": "D",
                        "set_values_to": {"_WHAT": "PRTRT"}}]}
    out, _ = run_step(SUBJ, step, {"CM": cm, "PR": pr})
    assert list(out["NACTDT"]) == [pd.Timestamp("2023-06-03"), pd.Timestamp("2023-07-01"), pd.NaT, pd.NaT]
    assert list(out["NACTDTF"]) == [None, "D", None, None]
    assert list(out["_WHAT"]) == ["B", "ASCT", None, None]


def test_extreme_event_datetime_flags_coalesced_dtc_and_record_order() -> None:
    """Datetimes: S1 "2023-05-10" -> 00:00 with time flag H; S2 "2023-05-10T10:15" -> seconds
    missing, flag S ignored.  Coalesce: end missing -> the start is used.  Order: two records of
    the same date, the later RSSEQ wins for mode last."""
    ex = pd.DataFrame({"USUBJID": ["S1", "S2"], "EXSTDTC": ["2023-05-10", "2023-05-10T10:15"], "EXDOSE": [1.0, 2.0]})
    out, _ = run_step(SUBJ, {"verb": "derive_vars_extreme_event", "new_var": "TRTSDTM", "type": "datetime",
                             "mode": "first", "time_flag_var": "TRTSTMF",
                             "events": [{"dataset": "EX", "dtc": "EXSTDTC", "highest_imputation": "h",
                                         "ignore_seconds_flag": True, "set_values_to": {"DOSE01A": "EXDOSE"}}]},
                      {"EX": ex})
    assert list(out["TRTSDTM"][:2]) == [pd.Timestamp("2023-05-10 00:00"), pd.Timestamp("2023-05-10 10:15")]
    assert list(out["TRTSTMF"]) == ["H", None, None, None] and list(out["DOSE01A"][:2]) == [1.0, 2.0]
    ld = pd.DataFrame({"USUBJID": ["S1", "S1"], "EXSTDTC": ["2023-05-01", "2023-05-03"],
                       "EXENDTC": ["2023-05-02", "2023-05"]})
    out, _ = run_step(SUBJ, {"verb": "derive_vars_extreme_event", "new_var": "LDEDT", "mode": "last",
                             "events": [{"dataset": "EX", "dtc": ["EXENDTC", "EXSTDTC"]}]}, {"EX": ld})
    assert out.loc[0, "LDEDT"] == pd.Timestamp("2023-05-03")  # partial end "2023-05" -> its start 05-03
    rs = pd.DataFrame({"USUBJID": ["S1", "S1", "S1"], "RSSEQ": [2.0, 1.0, 3.0], "RSSTRESN": [2.0, 1.0, 0.0],
                       "RSDTC": ["2023-05-01", "2023-05-01", "2023-04-01"]})
    out, _ = run_step(SUBJ, {"verb": "derive_vars_extreme_event", "new_var": "_D", "mode": "last",
                             "events": [{"dataset": "RS", "dtc": "RSDTC", "order": ["RSSEQ"],
                                         "set_values_to": {"BECOG": "RSSTRESN"}}]}, {"RS": rs})
    assert out.loc[0, "BECOG"] == 2.0  # 2023-05-01 twice: RSSEQ 2 after RSSEQ 1


def test_extreme_event_rejects_time_imputation_of_a_date() -> None:
    with pytest.raises(ValueError):
        VERBS["derive_vars_extreme_event"].args.model_validate(
            {"verb": "derive_vars_extreme_event", "new_var": "X", "mode": "first",
             "events": [{"dataset": "EX", "dtc": "EXSTDTC", "highest_imputation": "h"}]})


def test_dtm_to_dt() -> None:
    df = pd.DataFrame({"TRTSDTM": pd.to_datetime(["2023-05-10 10:00", None])})
    out, _ = run_step(df, {"verb": "derive_vars_dtm_to_dt", "source_vars": ["TRTSDTM"]})
    assert out.loc[0, "TRTSDT"] == pd.Timestamp("2023-05-10") and pd.isna(out.loc[1, "TRTSDT"])


LEVELS = {"LOW": 10.0, "MID": 12.0, "HIGH": 30.0, "PBO": 0.0}


def test_dose_level_matching_within_tolerance() -> None:
    """Tolerance 20%.  11.0: LOW |1|/10 = 10%, MID |1|/12 = 8.3% -> MID (nearest).  8.0: LOW 20%
    -> LOW (the bound is inclusive).  20.0: none (LOW 100%, MID 67%, HIGH 33%) -> missing + Warning.
    0.0: PBO (planned 0: only an exact 0 matches).  missing dose: no level, no warning.
    Labels: MID from DM's pairs, HIGH has none -> no match here; LOW's label from TA; code fallback."""
    df = pd.DataFrame({"USUBJID": ["A", "B", "C", "D", "E"], "DOSE": [11.0, 8.0, 20.0, 0.0, np.nan],
                       "ARMCD": ["MID", "LOW", "HIGH", "PBO", "LOW"], "ARM": ["Mid dose", None, "High", None, None]})
    ta = pd.DataFrame({"ARMCD": ["LOW"], "ARM": ["Low dose"]})
    out, findings = run_step(df, {"verb": "derive_vars_dose_level", "levels": LEVELS, "dose_var": "DOSE",
                                  "tolerance": 0.2, "label_var": "TRTA", "number_var": "TRTAN",
                                  "label_code_fallback": True, "compare_var": "ARM",
                                  "label_sources": [{"dataset": "TA", "code": "ARMCD", "label": "ARM"},
                                                    {"code": "ARMCD", "label": "ARM"}]}, {"TA": ta})
    assert list(out["TRTA"]) == ["Mid dose", "Low dose", None, "PBO", None]
    assert list(out["TRTAN"].fillna(-1)) == [2.0, 1.0, -1, 4.0, -1]
    assert [(f.rule, f.usubjid) for f in findings if f.rule.endswith("NOLEVEL")] == [("ADSL.TRTA.NOLEVEL", "C")]
    assert [f.usubjid for f in findings if f.rule == "ADSL.TRTA.ARM"] == []  # B: ARM missing, not compared


def test_dose_level_planned_from_the_code() -> None:
    df = pd.DataFrame({"USUBJID": ["A", "B", "C"], "ARMCD": ["HIGH", "OTHER", None], "ARM": ["High", "Other", None]})
    out, _ = run_step(df, {"verb": "derive_vars_dose_level", "levels": LEVELS, "code_var": "ARMCD",
                           "label_var": "TRTP", "label_prefer": "ARM", "number_var": "TRTPN",
                           "planned_dose_var": "DOSEP"})
    # OTHER is not a level: no number, no planned dose; its label is still DM.ARM
    assert list(out["TRTP"]) == ["High", "Other", None]
    assert list(out["TRTPN"].fillna(-1)) == [3.0, -1, -1] and list(out["DOSEP"].fillna(-1)) == [30.0, -1, -1]
    with pytest.raises(ValueError):  # one way only
        VERBS["derive_vars_dose_level"].args.model_validate(
            {"verb": "derive_vars_dose_level", "levels": LEVELS, "code_var": "ARMCD", "dose_var": "D",
             "number_var": "N"})


SUPP = ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL"]


def test_merged_suppqual_first_record_and_its_qualifiers() -> None:
    """S1 has two primary-diagnosis records; MHSEQ 1 is first -> ISS II, its MHSTDTC.  S2's only
    record has no SUPPMH -> ISS missing.  The MHSEQ 3 record (other category) is never used."""
    mh = pd.DataFrame({"USUBJID": ["S1", "S1", "S1", "S2"], "MHSEQ": [2.0, 1.0, 3.0, 1.0],
                       "MHCAT": ["PRIM", "PRIM", "OTHER", "PRIM"], "MHSTDTC": ["2019", "2018-06", "2020", "2017"]})
    supp = pd.DataFrame([("T", "MH", "S1", "MHSEQ", "1", "ISS", "ISS", "II"),
                         ("T", "MH", "S1", "MHSEQ", "2", "ISS", "ISS", "III"),
                         ("T", "MH", "S1", "MHSEQ", "3", "ISS", "ISS", "I")], columns=SUPP)
    out, _ = run_step(SUBJ, {"verb": "derive_vars_merged_suppqual", "dataset_add": "MH", "supp_dataset": "SUPPMH",
                             "filter_add": [{"variable": "MHCAT", "values": ["PRIM"]}], "order": ["MHSEQ"],
                             "mode": "first", "qnams": {"ISS": "ISS"}, "new_vars": {"_DIAGDTC": "MHSTDTC"}},
                      {"MH": mh, "SUPPMH": supp})
    assert _vals(out["ISS"][:2]) == ["II", None] and _vals(out["_DIAGDTC"][:3]) == ["2018-06", "2017", None]


def test_therapy_lines_count_and_last_line_status() -> None:
    """S1: lines 1, 2, 2 -> 2 lines; last line 2 has REFRACT N and Y -> Y.
    S2: line 1 (N) and a record without a line -> 2 lines; last numbered line 1 says N -> N.
    S3: one record without line or status -> 1 line, status missing.  S4: no prior therapy -> 0."""
    cm = pd.DataFrame({"USUBJID": ["S1", "S1", "S1", "S2", "S2", "S3", "S4"], "CMSEQ": [1.0, 2.0, 3.0, 1.0, 2.0, 1.0, 1.0],
                       "CMCAT": ["PRIOR"] * 6 + ["CONCOMITANT"]})
    supp = pd.DataFrame([("T", "CM", "S1", "CMSEQ", "1", "LINENUM", "", "1"), ("T", "CM", "S1", "CMSEQ", "2", "LINENUM", "", "2"),
                         ("T", "CM", "S1", "CMSEQ", "3", "LINENUM", "", "2"), ("T", "CM", "S1", "CMSEQ", "2", "REFRACT", "", "N"),
                         ("T", "CM", "S1", "CMSEQ", "3", "REFRACT", "", "Y"), ("T", "CM", "S2", "CMSEQ", "1", "LINENUM", "", "1"),
                         ("T", "CM", "S2", "CMSEQ", "1", "REFRACT", "", "N")], columns=SUPP)
    out, _ = run_step(SUBJ, {"verb": "derive_vars_therapy_lines", "dataset_add": "CM", "supp_dataset": "SUPPCM",
                             "filter_add": [{"variable": "CMCAT", "values": ["PRIOR"]}], "line_qnam": "LINENUM",
                             "count_var": "PRLINES", "status_qnam": "REFRACT", "status_var": "REFLSTFL"},
                      {"CM": cm, "SUPPCM": supp})
    assert list(out["PRLINES"]) == [2.0, 2.0, 1.0, 0.0]
    assert list(out["REFLSTFL"]) == ["Y", "N", None, None]


RULES = [{"type": "SERUM", "testcd": ["MPROT"], "spec": "SERUM", "min_value": 10, "unit": "g/L",
          "unit_factors": {"g/dL": 10}},
         {"type": "FLC", "testcd": ["KAPPA", "LAMBDA"], "min_value": 100, "unit": "mg/L",
          "ratio_testcd": "RATIO", "ratio_normal": [0.26, 1.65]}]


def test_measurable_disease_rules_units_and_assessment() -> None:
    """S1: serum 1.2 g/dL = 12 g/L >= 10 -> SERUM (first rule wins although FLC is met too).
    S2: serum 5 g/L; kappa 150 mg/L but ratio 1.0 is normal -> not measurable; assessed (Y).
    S3: serum 30 in mmol/L -> not convertible (Warning), not used; lambda 120 and ratio 0.1 -> FLC.
    S4: only a post-baseline value -> not assessed (N), MDTYPE missing."""
    lb = pd.DataFrame({
        "USUBJID": ["S1", "S1", "S1", "S2", "S2", "S2", "S3", "S3", "S3", "S4"],
        "LBTESTCD": ["MPROT", "KAPPA", "RATIO", "MPROT", "KAPPA", "RATIO", "MPROT", "LAMBDA", "RATIO", "MPROT"],
        "LBSPEC": ["SERUM"] * 10,
        "LBSTRESN": [1.2, 500.0, 5.0, 5.0, 150.0, 1.0, 30.0, 120.0, 0.1, 40.0],
        "LBSTRESC": ["1.2", "500", "5", "5", "150", "1", "30", "120", "0.1", "40"],
        "LBSTRESU": ["g/dL", "mg/L", None, "g/L", "mg/L", None, "mmol/L", "mg/L", None, "g/L"],
        "LBLOBXFL": ["Y"] * 9 + [None],
        "LBDTC": ["2023-05-01"] * 10})
    out, findings = run_step(SUBJ, {"verb": "derive_vars_measurable_disease", "dataset_add": "LB", "rules": RULES,
                                    "new_var": "MDTYPE", "assessed_var": "BLDISFL"}, {"LB": lb})
    assert list(out["MDTYPE"]) == ["SERUM", None, "FLC", None]
    assert list(out["BLDISFL"]) == ["Y", "Y", "Y", "N"]
    assert [(f.rule, f.usubjid, f.value) for f in findings] == [("ADSL.MDTYPE.UNIT", "S3", "mmol/L")]


def test_measurable_disease_baseline_by_date_without_a_baseline_flag() -> None:
    """No LBLOBXFL: the last complete-dated value per test on or before TRTSDT (2023-05-10).
    S1: 20 g/L on 05-01 and 5 g/L on 05-09 -> baseline 5 -> not measurable; 50 on 05-20 is after.
    S2: 15 g/L on 05-10 (the infusion day counts) -> SERUM.  S3: TRTSDT missing -> no baseline."""
    lb = pd.DataFrame({"USUBJID": ["S1", "S1", "S1", "S2", "S3"], "LBTESTCD": ["MPROT"] * 5, "LBSPEC": ["SERUM"] * 5,
                       "LBSTRESN": [20.0, 5.0, 50.0, 15.0, 40.0], "LBSTRESU": ["g/L"] * 5,
                       "LBDTC": ["2023-05-01", "2023-05-09", "2023-05-20", "2023-05-10", "2023-05-01"]})
    out, _ = run_step(SUBJ, {"verb": "derive_vars_measurable_disease", "dataset_add": "LB", "rules": RULES[:1],
                             "new_var": "MDTYPE"}, {"LB": lb})
    assert list(out["MDTYPE"]) == [None, "SERUM", None, None]


def test_event_window_flag_with_the_ae_date_rule() -> None:
    """Window 0..28 days after TRTSDT 2023-05-10 (S1, S2), 2023-06-01 (S4); S3 not treated.
    S1: AEDLT Y on "2023-05" -> first of month 05-01, but TRTSDT 05-10 lies in May -> 05-10 = day 0
    -> Y.  S2: AEDLT Y on 2023-06-08 = day 29 -> outside; AEDLT N on 05-12 -> not adjudicated -> N.
    S3: TRTSDT missing -> missing.  S4: AEDLT Y on 2023-05-31 = day -1 -> N."""
    ae = pd.DataFrame({"USUBJID": ["S1", "S2", "S2", "S3", "S4"], "AESEQ": [1.0, 1.0, 2.0, 1.0, 1.0],
                       "AESTDTC": ["2023-05", "2023-06-08", "2023-05-12", "2023-05-12", "2023-05-31"],
                       "AEENDTC": [None] * 5})
    supp = pd.DataFrame([("T", "AE", u, "AESEQ", s, "AEDLT", "", v) for u, s, v in
                         (("S1", "1", "Y"), ("S2", "1", "Y"), ("S2", "2", "N"), ("S3", "1", "Y"), ("S4", "1", "Y"))],
                        columns=SUPP)
    step = {"verb": "derive_var_event_window_flag", "dataset_add": "AE", "supp_dataset": "SUPPAE", "qnams": ["AEDLT"],
            "filter_add": [{"variable": "AEDLT", "values": ["Y"]}],
            "onset": {"start_dtc": "AESTDTC", "end_dtc": "AEENDTC", "min_dates": ["TRTSDT"]},
            "reference_date": "TRTSDT", "window": [0, 28], "new_var": "DLTFL"}
    out, _ = run_step(SUBJ, step, {"AE": ae, "SUPPAE": supp})
    assert list(out["DLTFL"]) == ["Y", "N", None, "N"]
    # without min_dates the partial date stays on 05-01 = day -9 -> outside
    step["onset"] = {"start_dtc": "AESTDTC", "end_dtc": "AEENDTC"}
    out, _ = run_step(SUBJ, step, {"AE": ae, "SUPPAE": supp})
    assert out.loc[0, "DLTFL"] == "N"


def test_check_records_reports_and_changes_nothing() -> None:
    df = pd.DataFrame({"USUBJID": ["A", "B", "A"], "ARM": ["X", None, "X"]})
    out, findings = run_step(df, {"verb": "check_records", "where": [{"variable": "ARM", "comparator": "ISNULL"}],
                                  "rule": "T.ARM", "message": "no arm", "variable": "ARM"})
    assert out.equals(df) and [(f.rule, f.usubjid, f.severity) for f in findings] == [("T.ARM", "B", "Warning")]
    _, findings = run_step(df, {"verb": "check_records", "duplicated_by": ["USUBJID"], "rule": "T.DUP",
                                "severity": "Error", "message": "twice"})
    assert [(f.usubjid, f.dataset) for f in findings] == [("A", "ADSL")]
