"""ADPC: the pharmacokinetic verbs (adam.verbs_pk) on literal tables, and the bundled study's plan
(specs/plans/adpc.yaml) on literal PC/EX/SUPPPC/ADSL fixtures; expected values worked by hand in
the comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.adam import conform_to_spec
from cdisc_pipe.adam.derive import convert_blanks_to_na
from cdisc_pipe.adam.plan import load_plans, run_plan
from cdisc_pipe.adam.verbs import VERBS, Context
from cdisc_pipe.adam.verbs_pk import (
    derive_param_dtype_copy,
    derive_var_iso_duration,
    derive_var_relative_time,
    derive_vars_exclusion_reason,
    derive_vars_period,
)
from cdisc_pipe.spec.load import load_specs

ROOT = Path(__file__).resolve().parents[1]
T = pd.Timestamp

NO_RESULT = "NO RESULT"
NO_TIME = "ACTUAL SAMPLING TIME UNKNOWN"
NEW_THERAPY = "SAMPLE ON OR AFTER NEW ANTICANCER THERAPY"


def step(verb: str, df: pd.DataFrame, frames: dict | None = None, **args):
    """Run one verb as a plan step would; returns (frame, findings)."""
    ctx = Context(frames=frames or {}, dataset="ADXX")
    a = VERBS[verb].args.model_validate({"verb": verb, **args})
    return VERBS[verb].run(df, a, ctx), ctx.findings


# --------------------------------------------------------------------------------------------
# derive_var_relative_time


def test_relative_time_keeps_fractions_and_sign():
    df = pd.DataFrame({"REF": [T("2024-01-10 10:00")] * 3 + [pd.NaT],
                       "ADTM": [T("2024-01-10 09:00"), T("2024-01-11 16:00"), pd.NaT, T("2024-01-12")]})
    out = derive_var_relative_time(df, "ARRLT", "REF", "ADTM")
    # 09:00 vs 10:00: -1 h = -1/24 day; 2024-01-11 16:00 - 2024-01-10 10:00 = 30 h = 1.25 days
    assert out["ARRLT"].iloc[0] == pytest.approx(-1 / 24) and out["ARRLT"].iloc[1] == 1.25
    assert out["ARRLT"].iloc[2:].isna().all()  # either date-time missing
    assert derive_var_relative_time(df, "AFRLT", "REF", "ADTM", "hours")["AFRLT"].iloc[1] == 30.0
    assert "ARRLT" not in df.columns  # pure: the input is not changed


# --------------------------------------------------------------------------------------------
# derive_var_iso_duration


def test_iso_duration_in_days_and_hours():
    df = pd.DataFrame({"ELTM": ["-PT1H", "P7D", "P1DT12H", "P1W", "PT30M", None, "P1M", "7 days"]})
    out, invalid = derive_var_iso_duration(df, "NRRLT", "ELTM")
    # -PT1H = -1/24; P1DT12H = 1.5; P1W = 7; PT30M = 30/1440; months (P1M) and free text are invalid
    assert out["NRRLT"].iloc[:5].tolist() == pytest.approx([-1 / 24, 7.0, 1.5, 7.0, 30 / 1440])
    assert out["NRRLT"].iloc[5:].isna().all()
    assert invalid.tolist() == [False] * 6 + [True, True]  # a missing value is not invalid
    hours, _ = derive_var_iso_duration(df, "NRRLT", "ELTM", "hours")
    assert hours["NRRLT"].iloc[1] == 168.0  # 7 days


def test_iso_duration_verb_reports_invalid_values():
    df = pd.DataFrame({"PCELTM": ["P1D", "P1M", "P1M", "soon"]})
    out, findings = step("derive_var_iso_duration", df, new_var="NRRLT", source="PCELTM")
    assert out["NRRLT"].iloc[0] == 1.0 and out["NRRLT"].iloc[1:].isna().all()
    (f,) = findings
    assert (f.rule, f.severity, f.variable, f.value) == ("ADAM.ADXX.PCELTM", "Warning", "NRRLT", "P1M, soon")
    assert f.message.startswith("3 PCELTM value(s)")


# --------------------------------------------------------------------------------------------
# derive_var_concat


def test_concat_required_optional_case_numbers_and_length():
    df = pd.DataFrame({"TESTCD": ["CONCA", "CONCAVERYLONG", None, "CONCA"],
                       "SFX": ["B", "M", "B", None],
                       "SPEC": ["BONE MARROW", None, "BLOOD", "BLOOD"],
                       "DAY": [0.0, 0.5, np.nan, 28.0]})
    parts = [{"variable": "TESTCD", "required": True}, {"variable": "SFX"}]
    out, _ = step("derive_var_concat", df, new_var="PARAMCD", parts=parts, max_length=8)
    # CONCA+B; CONCAVERYLONG+M cut to 8; no test code -> missing; no suffix -> the code alone
    assert out["PARAMCD"].tolist() == ["CONCAB", "CONCAVER", None, "CONCA"]
    parts = [{"text": "Day "}, {"variable": "DAY", "required": True},
             {"variable": "SPEC", "prefix": " in ", "suffix": "!", "case": "title"}]
    out, _ = step("derive_var_concat", df, new_var="X", parts=parts)
    # 0.0 -> "0", 0.5 -> "0.5"; a missing SPEC leaves out " in " and "!" too; a missing DAY -> missing
    assert out["X"].tolist() == ["Day 0 in Bone Marrow!", "Day 0.5", None, "Day 28 in Blood!"]


def test_concat_arguments_are_checked():
    with pytest.raises(ValueError):  # a part is text or a variable, not both
        VERBS["derive_var_concat"].args.model_validate(
            {"verb": "derive_var_concat", "new_var": "X", "parts": [{"text": "a", "variable": "B"}]})
    with pytest.raises(ValueError):  # prefix belongs to a variable part
        VERBS["derive_var_concat"].args.model_validate(
            {"verb": "derive_var_concat", "new_var": "X", "parts": [{"text": "a", "prefix": "b"}]})


# --------------------------------------------------------------------------------------------
# derive_vars_exclusion_reason


def test_exclusion_reason_first_that_applies_and_reason_variable():
    from cdisc_pipe.adam.verbs_pk import Reason

    df = pd.DataFrame({"AVAL": [np.nan, np.nan, 5.0, 5.0, 5.0, 5.0],
                       "ARRLT": [np.nan, 1.0, np.nan, 1.0, 1.0, 1.0],
                       "XFL": [None, None, None, "Y", "Y", None],
                       "XRS": [None, None, None, "BLQ BETWEEN", None, None]})
    reasons = [Reason(where=[{"variable": "AVAL", "comparator": "ISNULL"}], reason=NO_RESULT),
               Reason(where=[{"variable": "ARRLT", "comparator": "ISNULL"}], reason=NO_TIME),
               Reason(where=[{"variable": "XFL", "values": ["Y"]}], reason="EXCLUDED BY NCA", reason_var="XRS")]
    out = derive_vars_exclusion_reason(df, "NCA1XRS", reasons, "NCAXFL")
    # row 0: both no result and no time -> the first listed wins; row 4: flagged without a reason text
    assert out["NCA1XRS"].tolist() == [NO_RESULT, NO_RESULT, NO_TIME, "BLQ BETWEEN", "EXCLUDED BY NCA", None]
    assert out["NCAXFL"].tolist() == ["Y"] * 5 + [None]


# --------------------------------------------------------------------------------------------
# derive_param_dtype_copy


def test_dtype_copy_appends_copies_with_values_set():
    from cdisc_pipe.adam.verbs_pk import CopyFrom

    df = pd.DataFrame({"USUBJID": ["A", "A", "B"], "AVAL": [np.nan, 12.0, np.nan], "AVALC": ["BLQ", None, "BLQ"],
                       "LLOQ": [50.0, 50.0, 10.0], "ANL01FL": ["Y", "Y", "Y"], "SEQ": [1.0, 2.0, 1.0]})
    mask = df["AVALC"].eq("BLQ")
    out = derive_param_dtype_copy(df, mask, "HALFLLOQ",
                                  {"AVAL": CopyFrom(variable="LLOQ", factor=0.5), "AVALC": None, "ANL01FL": None,
                                   "SRCVAR": "LLOQ"})
    assert len(out) == 5
    # originals first, untouched (DTYPE missing); copies after: 50 / 2 = 25, 10 / 2 = 5
    assert out["DTYPE"].tolist() == [None, None, None, "HALFLLOQ", "HALFLLOQ"]
    assert out["AVAL"].iloc[3:].tolist() == [25.0, 5.0] and out["SEQ"].iloc[3:].tolist() == [1.0, 1.0]
    assert out["AVALC"].iloc[3:].tolist() == [None, None] and out["ANL01FL"].iloc[3:].tolist() == [None, None]
    assert np.isnan(out["AVAL"].iloc[0]) and out["AVALC"].iloc[0] == "BLQ"
    assert out["SRCVAR"].tolist() == [None, None, None, "LLOQ", "LLOQ"]
    none = derive_param_dtype_copy(df, pd.Series(False, index=df.index), "HALFLLOQ", {})
    assert len(none) == 3 and none["DTYPE"].isna().all()


def test_dtype_copy_verb_skips_and_reports_records_lacking_a_required_value():
    df = pd.DataFrame({"PCSTRESC": ["BLQ", "BLQ", "7"], "PCLLOQ": [50.0, np.nan, 50.0], "AVAL": [np.nan, np.nan, 7.0]})
    out, findings = step("derive_param_dtype_copy", df, dtype="LLOQ",
                         filter=[{"variable": "PCSTRESC", "values": ["BLQ"]}],
                         require=["PCLLOQ"], set_values_to={"AVAL": {"variable": "PCLLOQ"}})
    assert len(out) == 4 and out["AVAL"].iloc[3] == 50.0  # one copy: LLOQ itself (no factor)
    (f,) = findings
    assert f.rule == "ADAM.ADXX.DTYPE" and f.severity == "Warning" and f.message.startswith("1 record(s)")
    with pytest.raises(ValueError):  # DTYPE comes from dtype, not set_values_to
        VERBS["derive_param_dtype_copy"].args.model_validate(
            {"verb": "derive_param_dtype_copy", "dtype": "X", "filter": [{"variable": "A", "values": ["1"]}],
             "set_values_to": {"DTYPE": "Y"}})


# --------------------------------------------------------------------------------------------
# derive_vars_period


def _periods() -> pd.DataFrame:
    """ADSL of a two-period crossover: A (TR) both periods, B (RT) stopped after period 1, C no dose."""
    return pd.DataFrame({
        "USUBJID": ["A", "B", "C"],
        "AP01SDTM": [T("2024-01-10 08:00"), T("2024-01-10 09:00"), pd.NaT],
        "AP01EDT": [T("2024-01-13"), T("2024-01-13"), pd.NaT],
        "AP02SDTM": [T("2024-01-17 08:00"), pd.NaT, pd.NaT],
        "AP02EDT": [T("2024-01-20"), pd.NaT, pd.NaT],
        "TRT01A": ["Test", "Reference", None], "TRT01AN": [1.0, 2.0, np.nan],
        "TRT02A": ["Reference", None, None], "TRT02AN": [2.0, np.nan, np.nan]})


def test_period_of_a_reference_date_from_adsl_period_dates():
    df = pd.DataFrame({
        "USUBJID": ["A", "A", "A", "A", "A", "B", "C", "D"],
        "REF": [T("2024-01-10 08:00"),  # A: the period 1 dose itself (start is inclusive) -> 1
                T("2024-01-12 20:00"),  # before period 1's end date (13 JAN 00:00) -> 1
                T("2024-01-15 08:00"),  # washout: after period 1's end, before period 2's start -> none
                T("2024-01-17 08:00"),  # the period 2 dose -> 2
                pd.NaT,                 # no date -> none, and not reported
                T("2024-01-10 09:00"),  # B: period 1 (no period 2 dates) -> 1
                T("2024-01-10 09:00"),  # C: no period dates -> none
                T("2024-01-10 09:00")]})  # D: not in ADSL -> none
    out, unmatched = derive_vars_period(df, _periods(), "REF", [1, 2], "AP{xx}SDTM", "AP{xx}EDT", "APERIOD",
                                        {"TRTA": "TRT{xx}A", "TRTAN": "TRT{xx}AN"}, {"APERIODC": "PERIOD {xx}"},
                                        ["USUBJID"])
    assert out["APERIOD"].fillna(-1).tolist() == [1.0, 1.0, -1, 2.0, -1, 1.0, -1, -1]
    assert out["TRTA"].tolist() == ["Test", "Test", None, "Reference", None, "Reference", None, None]
    assert out["TRTAN"].fillna(-1).tolist() == [1.0, 1.0, -1, 2.0, -1, 2.0, -1, -1]
    assert out["APERIODC"].tolist() == ["PERIOD 01", "PERIOD 01", None, "PERIOD 02", None, "PERIOD 01", None, None]
    # a date in no period: the washout record of A, and C and D (dated, without periods); not the undated one
    assert unmatched.tolist() == [False, False, True, False, False, False, True, True]
    assert "APERIOD" not in df.columns  # pure
    # without an end a period lasts until a later one starts: the washout record is in period 1
    out, unmatched = derive_vars_period(df, _periods(), "REF", [1, 2], "AP{xx}SDTM", None, "APERIOD", {}, {},
                                        ["USUBJID"])
    assert out["APERIOD"].fillna(-1).tolist() == [1.0, 1.0, 1.0, 2.0, -1, 1.0, -1, -1]


def test_period_verb_reports_dates_in_no_period_and_checks_its_arguments():
    df = pd.DataFrame({"USUBJID": ["A", "A"], "REF": [T("2024-01-10 08:00"), T("2024-01-15 08:00")]})
    out, findings = step("derive_vars_period", df, frames={"ADSL": _periods()}, date="REF", periods=[1, 2],
                         end="AP{xx}EDT", new_vars={"TRTA": "TRT{xx}A"}, period_text={"APERIODC": "Period {x}"})
    assert out["APERIODC"].tolist() == ["Period 1", None]
    (f,) = findings
    assert f.rule == "ADAM.ADXX.APERIOD" and f.severity == "Warning" and f.value == "1"
    assert "REF falls in no period of ADSL (AP01SDTM, AP02SDTM)" in f.message
    verb = VERBS["derive_vars_period"]
    a = verb.args.model_validate({"verb": "derive_vars_period", "date": "REF", "periods": [1, 2], "end": "AP{xx}EDT",
                                  "new_vars": {"TRTA": "TRT{xx}A"}})
    assert verb.outputs(a) == ["APERIOD", "TRTA"] and verb.sources(a) == ["ADSL"]
    assert verb.needs(a) == {"ADSL": ["USUBJID", "AP01SDTM", "AP01EDT", "TRT01A", "AP02SDTM", "AP02EDT", "TRT02A"]}
    text = verb.describe(a)
    assert "AP{xx}SDTM (xx = 01, 02) is the latest on or before REF" in text["APERIOD"]
    assert text["TRTA"].startswith("ADSL.TRT{xx}A with xx = APERIOD (the period of ADSL (per USUBJID) whose")
    for bad in ({"periods": [1, 1]}, {"periods": [0]}, {"new_vars": {"TRTA": "TRT01A"}},
                {"new_vars": {"APERIOD": "TRT{xx}A"}}, {"start": "APSDTM"}):
        with pytest.raises(ValueError):
            verb.args.model_validate({"verb": "derive_vars_period", "date": "REF", "periods": [1, 2], **bad})


# --------------------------------------------------------------------------------------------
# the bundled study's plan


def _adsl() -> pd.DataFrame:
    return pd.DataFrame({
        "STUDYID": "S", "USUBJID": ["A", "B", "C"], "TRT01P": ["DL1", "DL2", "DL2"], "TRT01PN": [1.0, 2.0, 2.0],
        "TRT01A": ["DL1", "DL2", "DL2"], "TRT01AN": [1.0, 2.0, 2.0], "PKFL": ["Y", "Y", "Y"],
        "TRTSDT": [T("2024-01-10"), T("2024-01-11"), T("2024-01-12")],
        "TRTSDTM": [T("2024-01-10 10:00"), T("2024-01-11 09:00"), T("2024-01-12 12:00")],
        "NACTDT": [T("2024-02-01"), pd.NaT, pd.NaT],
    })


PC_ROWS = [
    # USUBJID, PCSEQ, PCSTRESC, PCSTRESN, PCDTC, PCELTM, PCSPEC, PCLLOQ
    ("A", 1, "BLQ", None, "2024-01-10T09:00", "-PT1H", "BLOOD", 50.0),
    ("A", 2, "1000", 1000.0, "2024-01-11T16:00", "P1D", "BLOOD", 50.0),
    ("A", 3, "80000", 80000.0, "2024-01-17T10:00", "P7D", "BLOOD", 50.0),
    ("A", 4, "BLQ", None, "2024-01-24T10:00", "P14D", "BLOOD", 50.0),
    ("A", 5, "500", 500.0, "2024-02-07T10:00", "P28D", "BLOOD", 50.0),      # after new therapy 02-01
    ("A", 6, "3000", 3000.0, "2024-01-24T11:00", "P14D", "BONE MARROW", 50.0),
    ("A", 7, None, None, "2024-01-31T10:00", "P21D", "BLOOD", 50.0),          # no result
    ("A", 8, "600", 600.0, "2024-01-28", "P18D", "BLOOD", 50.0),              # date without time
    ("A", 9, "BLQ", None, "2024-02-14T10:00", "P35D", "BLOOD", 50.0),        # BLQ after new therapy
    ("B", 1, "2000", 2000.0, "2024-01-18T09:00", "P7D", "BLOOD", 50.0),       # PCRFTDTC missing
    ("B", 2, "1500", 1500.0, "2024-01-21T09:00", "P10D", "BLOOD", 50.0),      # excluded by the NCA (SUPPPC)
    ("C", 1, "BLQ", None, "2024-01-12T11:00", "-PT1H", "BLOOD", 50.0),       # two pre-dose samples at one time
    ("C", 2, "40", 40.0, "2024-01-12T11:00", "-PT1H", "BLOOD", 50.0),
    ("C", 3, "BLQ", None, "2024-01-19T12:00", "P7D", "BLOOD", None),          # BLQ without LLOQ
]


def _pc() -> pd.DataFrame:
    pc = pd.DataFrame(PC_ROWS, columns=["USUBJID", "PCSEQ", "PCSTRESC", "PCSTRESN", "PCDTC", "PCELTM", "PCSPEC",
                                        "PCLLOQ"])
    pc["STUDYID"] = "S"
    pc["PCSEQ"] = pc["PCSEQ"].astype("float64")
    pc["PCLLOQ"] = pc["PCLLOQ"].astype("float64")
    pc["PCTESTCD"], pc["PCTEST"], pc["PCSTRESU"] = "CONCA", "Analyte A", "ng/mL"
    pc["PCRFTDTC"] = pc["USUBJID"].map({"A": "2024-01-10T10:00", "B": "2024-01-11T09:00", "C": "2024-01-12T12:00"})
    pc.loc[pc["USUBJID"].eq("B") & pc["PCSEQ"].eq(1.0), "PCRFTDTC"] = None
    pc["VISIT"], pc["VISITNUM"] = "V", 1.0
    pc["PCTPT"], pc["PCTPTNUM"], pc["PCTPTREF"] = "T", 1.0, "INFUSION"
    return pc


EX = pd.DataFrame({"USUBJID": ["A", "A", "B", "C"], "EXCAT": ["LYMPHODEPLETION", "CAR-T", "CAR-T", "CAR-T"],
                   "EXDOSE": [30.0, 0.95, 3.1, 3.0], "EXDOSU": ["mg/m2", "10^6/kg", "10^6/kg", "10^6/kg"],
                   "EXSTDTC": ["2024-01-05", "2024-01-10T10:00", "2024-01-11T09:00", "2024-01-12T12:00"]})
SUPPPC = pd.DataFrame({"STUDYID": "S", "RDOMAIN": "PC", "USUBJID": ["B", "B"], "IDVAR": "PCSEQ",
                       "IDVARVAL": ["2", "2"], "QNAM": ["NCAXFL", "NCAXRS"], "QLABEL": ["x", "y"],
                       "QVAL": ["Y", "BLQ BETWEEN QUANTIFIABLE VALUES"]})


@pytest.fixture(scope="module")
def spec():
    return load_specs(ROOT / "specs")


@pytest.fixture(scope="module")
def plan(spec, tmp_path_factory):
    d = tmp_path_factory.mktemp("plans")
    shutil.copy(ROOT / "specs" / "plans" / "adpc.yaml", d / "adpc.yaml")
    return load_plans(d, spec)["ADPC"]


def _run(plan, spec, frames):
    frames = {k: convert_blanks_to_na(v) for k, v in frames.items()}
    df, findings = run_plan(plan, frames)
    out, more = conform_to_spec(df, spec.dataset("ADPC"))
    return out, findings + more


@pytest.fixture(scope="module")
def built(plan, spec):
    return _run(plan, spec, {"PC": _pc(), "EX": EX, "SUPPPC": SUPPPC, "ADSL": _adsl()})


def _rec(out, usubjid, seq, dtype=None):
    sel = out["USUBJID"].eq(usubjid) & out["SRCSEQ"].eq(seq)
    sel &= out["DTYPE"].isna() if dtype is None else out["DTYPE"].eq(dtype)
    rows = out[sel]
    assert len(rows) == 1
    return rows.iloc[0]


def test_blq_record_keeps_aval_missing_and_gets_an_imputed_copy(built):
    out, _ = built
    blq = _rec(out, "A", 4.0)
    assert np.isnan(blq["AVAL"]) and blq["AVALC"] == "BLQ" and blq["ANL01FL"] == "Y" and blq["ANL02FL"] is None
    assert blq["SRCVAR"] == "PCSTRESC"
    imp = _rec(out, "A", 4.0, dtype="HALFLLOQ")
    # LLOQ 50 -> 25 for summaries; not an NCA record, no baseline flag.
    assert imp["AVAL"] == 25.0 and imp["AVALC"] is None and imp["ANL01FL"] is None and imp["ANL02FL"] == "Y"
    assert imp["SRCVAR"] == "PCLLOQ" and imp["ARRLT"] == blq["ARRLT"]
    # the pre-dose BLQ baseline gets a copy too, without the baseline flag
    assert _rec(out, "A", 1.0, dtype="HALFLLOQ")["ABLFL"] is None


def test_no_imputed_copy_after_new_therapy_or_without_lloq(built):
    out, findings = built
    assert out["SRCSEQ"].eq(9.0).sum() == 1 and out["USUBJID"].eq("C").sum() == 4  # A/9 after 02-01; C/3 no LLOQ
    assert _rec(out, "A", 9.0)["NCA1XRS"] == NEW_THERAPY
    lloq = [f for f in findings if f.rule == "ADAM.ADPC.DTYPE"]
    assert len(lloq) == 1 and lloq[0].severity == "Warning" and lloq[0].message.startswith("1 record(s)")


def test_relative_times_and_dose(built):
    out, _ = built
    pre = _rec(out, "A", 1.0)
    assert pre["ARRLT"] == pytest.approx(-1 / 24)  # 09:00 vs infusion 10:00
    assert pre["NRRLT"] == pytest.approx(-1 / 24) and pre["RRLTU"] == "DAYS" and pre["FRLTU"] == "DAYS"
    d1 = _rec(out, "A", 2.0)
    assert d1["ARRLT"] == pytest.approx(1.25)  # 2024-01-11 16:00 - 2024-01-10 10:00 = 30 h
    assert d1["AFRLT"] == d1["ARRLT"] and d1["NRRLT"] == 1.0 and d1["NFRLT"] == 1.0
    assert d1["PCRFTDTM"] == T("2024-01-10 10:00") and d1["ADY"] == 2.0  # 01-11 vs TRTSDT 01-10: day 2
    assert (d1["DOSEA"], d1["DOSEU"], d1["AVALU"]) == (0.95, "10^6/kg", "ng/mL")  # the CAR-T dose, not LD
    assert _rec(out, "A", 1.0)["ADY"] == 1.0  # same day as TRTSDT
    # PCRFTDTC missing: ADSL TRTSDTM (2024-01-11 09:00); 2024-01-18 09:00 is 7 days later
    b1 = _rec(out, "B", 1.0)
    assert b1["PCRFTDTM"] == T("2024-01-11 09:00") and b1["ARRLT"] == 7.0


def test_sample_without_a_time_is_not_used_for_nca(built):
    out, _ = built
    notime = _rec(out, "A", 8.0)  # "2024-01-28": ADT known, ADTM (and so ARRLT) not
    assert notime["ADT"] == T("2024-01-28") and pd.isna(notime["ADTM"]) and np.isnan(notime["ARRLT"])
    assert notime["NCA1XRS"] == NO_TIME and notime["ANL01FL"] is None and notime["ANL02FL"] == "Y"


def test_baseline_is_the_pre_infusion_sample_even_when_blq(built):
    out, _ = built
    assert _rec(out, "A", 1.0)["ABLFL"] == "Y"
    assert out.loc[out["USUBJID"].eq("A") & out["PARAMCD"].eq("CONCAB"), "ABLFL"].eq("Y").sum() == 1
    assert out.loc[out["USUBJID"].eq("B"), "ABLFL"].isna().all()  # B has no pre-infusion sample
    # C: two pre-dose samples at the same time: the tie goes to the later PCSEQ
    assert _rec(out, "C", 2.0)["ABLFL"] == "Y" and _rec(out, "C", 1.0)["ABLFL"] is None


def test_nca_exclusions(built):
    out, _ = built
    after = _rec(out, "A", 5.0)
    assert after["NCAXFL"] == "Y" and after["NCA1XRS"] == NEW_THERAPY and after["ANL01FL"] is None
    missing = _rec(out, "A", 7.0)
    assert missing["NCA1XRS"] == NO_RESULT
    assert not out["SRCSEQ"].eq(7.0).sum() > 1  # no imputed copy for a missing result
    nca = _rec(out, "B", 2.0)
    assert nca["NCAXFL"] == "Y" and nca["NCA1XRS"] == "BLQ BETWEEN QUANTIFIABLE VALUES"
    assert nca["ANL01FL"] is None and nca["ANL02FL"] == "Y"  # still a concentration for summaries
    assert _rec(out, "B", 1.0)["NCAXFL"] is None
    assert after["ANL02FL"] is None


def test_without_suppqual_nothing_is_excluded_by_the_nca(plan, spec):
    out, _ = _run(plan, spec, {"PC": _pc(), "EX": EX, "ADSL": _adsl()})  # no SUPPPC: the NCA excluded nothing
    assert _rec(out, "B", 2.0)["NCAXFL"] is None and _rec(out, "B", 2.0)["ANL01FL"] == "Y"


def test_parameters_by_specimen(built):
    out, findings = built
    marrow = _rec(out, "A", 6.0)
    assert marrow["PARAMCD"] == "CONCAM" and marrow["PARCAT1"] == "BONE MARROW"
    assert marrow["PARAM"] == "Analyte A in Bone Marrow (ng/mL)"
    assert _rec(out, "A", 2.0)["PARAMCD"] == "CONCAB"
    assert not [f for f in findings if f.severity == "Error"]


def test_columns_follow_the_spec_and_records_the_keys(built, spec):
    out, findings = built
    ds = spec.dataset("ADPC")
    assert list(out.columns) == ds.variable_names
    assert not out.duplicated(ds.keys).any()
    assert not [f for f in findings if f.rule in ("ADAM.SPEC.NOTDERIVED", "ADAM.SPEC.EXTRA")]
    # each imputed copy directly follows its sample
    a = out[out["USUBJID"].eq("A") & out["PARAMCD"].eq("CONCAB")]
    assert a["SRCSEQ"].tolist()[:3] == [1.0, 1.0, 2.0] and a["DTYPE"].tolist()[:2] == [None, "HALFLLOQ"]


def test_method_text_names_no_file(plan):
    for var, text in plan.methods.items():
        assert ".yaml" not in text and "plans" not in text, var
    assert plan.methods["NCAXFL"] == "'Y' when NCA1XRS is not missing (a reason applies)"
    assert plan.methods["ARRLT"].startswith("(ADTM - PCRFTDTM) in days")
