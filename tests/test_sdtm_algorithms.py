"""Each mapping algorithm on its own, on small literal inputs with hand-worked expected values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.sdtm.algorithms import (
    FORM, ROW, SUBJ, Context, Findings, apply_rule, ascii_policy, byte_len, evaluate, split_text,
    standardise_results,
)
from cdisc_pipe.sdtm.dates import assemble_dtc, iso_duration_days, study_day
from cdisc_pipe.sdtm.mapping import Condition, Rule, UnitConversion
from cdisc_pipe.spec.model import Codelist, CodelistTerm


def s(*values) -> pd.Series:
    return pd.Series(list(values), dtype="str")


def frame(**cols) -> pd.DataFrame:
    df = pd.DataFrame({k: pd.Series(v, dtype="str") for k, v in cols.items()})
    n = len(df)
    df[FORM] = "form"
    df[ROW] = [str(i + 2) for i in range(n)]
    df[SUBJ] = [f"S-{i + 1}" for i in range(n)]
    return df


NY = Codelist(oid="CL.NY", name="No Yes", extensible=False, nci_code="C66742",
              terms=[CodelistTerm(submission_value="N", decode="No"), CodelistTerm(submission_value="Y", decode="Yes")])


def ctx(findings: Findings | None = None) -> Context:
    return Context("XX", {"CL.NY": NY}, {"yn": {"OUI": "Y"}}, findings or Findings())


# --- dates ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, time, expected", [
    ("12 MAR 2024", None, "2024-03-12"),
    ("12 MAR 2024", "14:20", "2024-03-12T14:20"),
    ("UN MAR 2024", None, "2024-03"),          # day unknown: month precision
    ("UN UNK 2023", None, "2023"),             # day and month unknown: year only
    ("15 UNK 2024", None, "2024---15"),        # month unknown, day known: SDTMIG 'YYYY---DD'
    ("UN UNK 2024", "10:00", "2024"),          # no time on a partial date (reported, not invented)
    ("1 jan 2024", "8:05", "2024-01-01T08:05"),
    ("2024-03-05", None, "2024-03-05"),         # ISO input accepted
    ("12 MAR 2024", "14:UN", "2024-03-12T14"),  # unknown minutes: hour precision
])
def test_assemble_dtc_partial_dates_stay_partial(raw, time, expected):
    dtc, invalid, _ = assemble_dtc(s(raw), s(time) if time is not None else None)
    assert dtc.iloc[0] == expected
    assert not invalid.iloc[0]


def test_assemble_dtc_never_produces_missing_month_with_unknown_day():
    dtc, _, _ = assemble_dtc(s("UN UNK 2024", "UN MAR 2024"))
    assert "---" not in "".join(dtc.tolist())


@pytest.mark.parametrize("raw", ["31 FEB 2024", "30 FEB 2023", "12 FOO 2024", "32 JAN 2024", "garbage", "2024-13-01"])
def test_assemble_dtc_invalid_dates_are_flagged_and_left_missing(raw):
    dtc, invalid, _ = assemble_dtc(s(raw))
    assert invalid.iloc[0]
    assert pd.isna(dtc.iloc[0])


def test_assemble_dtc_blank_is_missing_not_invalid_and_leap_day_is_valid():
    dtc, invalid, _ = assemble_dtc(s(None, "", "29 FEB 2024"))
    assert dtc.isna().tolist() == [True, True, False]
    assert dtc.iloc[2] == "2024-02-29"
    assert not invalid.any()


def test_assemble_dtc_time_dropped_flag_on_partial_date():
    _, _, dropped = assemble_dtc(s("UN MAR 2024", "12 MAR 2024"), s("10:00", "10:00"))
    assert dropped.tolist() == [True, False]


def test_study_day_has_no_day_zero_and_needs_complete_dates():
    # RFSTDTC 2024-03-15T09:00: the day before is -1, the same day is 1, the next day is 2.
    dy = study_day(s("2024-03-14", "2024-03-15T20:00", "2024-03-16", "2024-03", "2024-03-10"),
                   s(*["2024-03-15T09:00"] * 5))
    assert dy.tolist()[:3] == [-1.0, 1.0, 2.0]
    assert np.isnan(dy.iloc[3])          # partial date: no study day
    assert dy.iloc[4] == -5.0            # 10 MAR = 5 days before 15 MAR -> -5 (LD day -5)


def test_iso_duration_days():
    assert iso_duration_days(pd.Series([7, -1, 0, None])).tolist()[:3] == ["P7D", "-P1D", "P0D"]


# --- conditions and rules -------------------------------------------------------------------------

def test_evaluate_structured_conditions():
    f = frame(A=["Y", "n", None, " y "], B=["1", "5", "x", "10"])
    assert evaluate(f, [Condition(field="A", op="eq", value="y")]).tolist() == [True, False, False, True]
    assert evaluate(f, [Condition(field="A", op="blank")]).tolist() == [False, False, True, False]
    assert evaluate(f, [Condition(field="B", op="ge", value=5)]).tolist() == [False, True, False, True]
    assert evaluate(f, [Condition(field="A", op="in", value=["N", "Y"]),
                        Condition(field="B", op="lt", value=6)]).tolist() == [True, True, False, False]
    assert evaluate(f, [Condition(field="B", op="matches", value=r"\d+")]).tolist() == [True, True, False, True]


def test_copy_value_and_when():
    f = frame(X=[" a ", "", "c"], K=["1", "2", "3"])
    assert apply_rule(Rule.model_validate({"copy": "X"}), f, ctx(), "V").tolist()[0] == "a"
    assert apply_rule(Rule.model_validate({"copy": "X"}), f, ctx(), "V").isna().tolist() == [False, True, False]
    assert apply_rule(Rule.model_validate({"value": "K"}), f, ctx(), "V").tolist() == ["K", "K", "K"]
    rule = Rule.model_validate({"when": [{"if": [{"field": "K", "op": "eq", "value": "1"}], "then": {"value": "ONE"}},
                                         {"if": [{"field": "K", "op": "le", "value": 2}], "then": {"copy": "K"}}],
                                "else": {"value": "MANY"}})
    # first matching branch wins: K=1 -> ONE (not '1'), K=2 -> '2', K=3 -> else
    assert apply_rule(rule, f, ctx(), "V").tolist() == ["ONE", "2", "MANY"]


def test_when_without_else_leaves_missing():
    f = frame(K=["1", "2"])
    rule = Rule.model_validate({"when": [{"if": [{"field": "K", "op": "eq", "value": "1"}], "then": {"value": "A"}}]})
    out = apply_rule(rule, f, ctx(), "V")
    assert out.iloc[0] == "A" and pd.isna(out.iloc[1])


def test_concat_skips_blank_fields():
    f = frame(A=["x", None, "p"], B=["y", "z", None])
    out = apply_rule(Rule.model_validate({"concat": {"fields": ["A", "B"], "sep": "; "}}), f, ctx(), "V")
    assert out.tolist() == ["x; y", "z", "p"]


def test_assign_codelist_decode_synonym_and_unmapped_kept_with_finding():
    fnd = Findings()
    f = frame(F=["y", "No", "oui", "MAYBE", None, "MAYBE"])
    open_ny = NY.model_copy(update={"extensible": True})
    c = Context("XX", {"CL.NY": open_ny}, {"yn": {"OUI": "Y"}}, fnd)
    out = apply_rule(Rule.model_validate({"assign": {"field": "F", "codelist": "CL.NY", "synonyms": "yn"}}), f, c, "XXFL")
    assert out.tolist()[:4] == ["Y", "N", "Y", "MAYBE"]     # extensible codelist, unmapped: kept as collected
    assert pd.isna(out.iloc[4])
    [finding] = fnd.items
    assert finding.rule == "SDTM.CT.UNMAPPED" and finding.value == "MAYBE" and finding.variable == "XXFL"
    assert finding.extra["count"] == 2 and finding.extra["subjects"] == ["S-4", "S-6"] and finding.extra["rows"] == [5, 7]


def test_a_value_outside_a_non_extensible_codelist_is_an_error_at_its_raw_cell():
    """AESER 'MAYBE' / SEX '=1': reported as not a term (with the raw row), not carried into SDTM
    where it would fail later as 'longer than the spec length' (#16 item 7)."""
    fnd = Findings()
    f = frame(F=["y", "MAYBE", "=1"])
    out = apply_rule(Rule.model_validate({"assign": {"field": "F", "codelist": "CL.NY", "synonyms": "yn"}}), f, ctx(fnd), "XXFL")
    assert out.iloc[0] == "Y" and out.iloc[1:].isna().all()
    # one finding per distinct collected value, each with its raw row
    assert {(f.rule, f.severity, f.value, tuple(f.extra["rows"])) for f in fnd.items} == {
        ("SDTM.CT.INVALID", "Error", "MAYBE", (3,)), ("SDTM.CT.INVALID", "Error", "=1", (4,))}
    assert all("not a term of the non-extensible codelist CL.NY (N, Y)" in f.message for f in fnd.items)


def test_assign_synonym_outside_non_extensible_codelist_is_reported():
    fnd = Findings()
    f = frame(F=["Q"])
    apply_rule(Rule.model_validate({"assign": {"field": "F", "codelist": "CL.NY", "map": {"Q": "MAYBE"}}}), f, ctx(fnd), "V")
    assert [x.rule for x in fnd.items] == ["SDTM.CT.SYNONYM"]


def test_number_reports_text_in_numeric_field():
    fnd = Findings()
    out = apply_rule(Rule.model_validate({"number": "N"}), frame(N=["1.5", "abc", None, "1,200"]), ctx(fnd), "XXDOSE")
    assert out.iloc[0] == 1.5 and np.isnan(out.iloc[1]) and np.isnan(out.iloc[2]) and out.iloc[3] == 1200.0
    assert [(x.rule, x.value) for x in fnd.items] == [("SDTM.NUM.INVALID", "abc")]


def test_dtc_rule_reports_invalid_dates():
    fnd = Findings()
    out = apply_rule(Rule.model_validate({"dtc": {"date": "D"}}), frame(D=["31 FEB 2024", "01 FEB 2024"]), ctx(fnd), "XXDTC")
    assert pd.isna(out.iloc[0]) and out.iloc[1] == "2024-02-01"
    assert [(x.rule, x.value, x.source_row) for x in fnd.items] == [("SDTM.DATE.INVALID", "31 FEB 2024", 2)]


def test_rule_needs_exactly_one_algorithm():
    with pytest.raises(ValueError, match="exactly one"):
        Rule.model_validate({"copy": "A", "value": "B"})
    with pytest.raises(ValueError, match="exactly one"):
        Rule.model_validate({})


# --- results ---------------------------------------------------------------------------------------

CONV = [UnitConversion.model_validate(x) for x in (
    {"testcd": "HGB", "from": "g/L", "to": "g/L"},
    {"testcd": "HGB", "from": "g/dL", "to": "g/L", "factor": 10},
    {"testcd": "RATIO", "from": "", "to": ""},
    {"testcd": "CREAT", "from": "mg/dL", "to": "umol/L", "factor": 88.42},
)]


def test_standardise_results_conversion_qualifiers_and_unknown_units():
    fnd = Findings()
    orres = s("12.5", "<5", ">200", "NEGATIVE", "130", "2", "1.1", "7")
    unit = s("g/dL", "g/dL", "g/L", None, "mmol/L", None, None, None)
    test = s("HGB", "HGB", "HGB", "HGB", "HGB", "RATIO", "CREAT", "HGB")
    f = frame(X=["."] * 8)
    out = standardise_results(orres, unit, pd.DataFrame({"T": test}), CONV, Context("LB", {}, {}, fnd), f, "LB")
    # 12.5 g/dL x 10 = 125 g/L; <5 g/dL -> '<50' with no number, LLOQ 50; >200 g/L -> '>200'
    assert out["LBSTRESC"].tolist()[:4] == ["125", "<50", ">200", "NEGATIVE"]
    assert out["LBSTRESN"].iloc[0] == 125.0
    assert out["LBSTRESN"].iloc[1:4].isna().all()
    assert out["__lloq"].iloc[1] == 50.0 and np.isnan(out["__lloq"].iloc[2])
    assert out["LBSTRESU"].iloc[0] == "g/L" and pd.isna(out["LBSTRESU"].iloc[3])
    # unknown unit mmol/L for HGB: standard result left missing, reported
    assert pd.isna(out["LBSTRESC"].iloc[4]) and np.isnan(out["LBSTRESN"].iloc[4])
    # unitless test with from: "" converts; CREAT without unit and HGB without unit are reported
    assert out["LBSTRESN"].iloc[5] == 2.0
    assert np.isnan(out["LBSTRESN"].iloc[6]) and np.isnan(out["LBSTRESN"].iloc[7])
    rules = sorted((x.rule, x.value) for x in fnd.items)
    censored = [r for r in rules if r[0] == "SDTM.RESULT.CENSORED"]  # '<50' / '>200': kept, reported (#16)
    assert censored == [("SDTM.RESULT.CENSORED", "HGB <5"), ("SDTM.RESULT.CENSORED", "HGB >200")]
    assert [r for r in rules if r not in censored] == [
        ("SDTM.UNIT.MISSING", "CREAT 1.1"), ("SDTM.UNIT.MISSING", "HGB 7"), ("SDTM.UNIT.UNKNOWN", "HGB mmol/L")]


# --- text ------------------------------------------------------------------------------------------

def test_split_text_at_word_boundaries_into_200_byte_chunks():
    words = " ".join(["word%03d" % i for i in range(60)])  # 60 x 8 - 1 = 479 characters
    out = split_text(pd.Series([words, "short", None], dtype="str"))
    assert out.shape[1] == 3
    assert all(len(x) <= 200 for x in out.iloc[0].tolist())
    assert " ".join(out.iloc[0].tolist()) == words       # nothing lost, split between words
    assert out.iloc[1, 0] == "short" and out.iloc[1, 1:].isna().all()


def test_ascii_policy_reports_and_keeps_the_text():
    """The data keep the text as collected (Dataset-JSON is UTF-8); the XPT writer transliterates
    (tests/test_empty_and_unicode.py)."""
    fnd = Findings()
    df = frame(AETERM=["Na\u00efve fever 38\u00b0C", "plain", "\u53d1\u70ed"])
    out = ascii_policy(df, "AE", fnd)
    assert out["AETERM"].tolist() == ["Na\u00efve fever 38\u00b0C", "plain", "\u53d1\u70ed"]
    assert {x.rule for x in fnd.items} == {"SDTM.TEXT.NONASCII"}
    assert sorted(x.value for x in fnd.items) == ["Na\u00efve fever 38\u00b0C", "\u53d1\u70ed"]  # originals kept in the report
    assert df["AETERM"].iloc[0] == "Na\u00efve fever 38\u00b0C"  # input untouched


def test_byte_len_counts_utf8_bytes():
    assert byte_len(pd.Series(["ab", "\u00e9", None], dtype="str")).tolist() == [2, 2, 0]


def test_duration_days_rule():
    out = apply_rule(Rule.model_validate({"duration_days": "D"}), frame(D=["7", "-1", None]), ctx(), "XXELTM")
    assert out.tolist()[:2] == ["P7D", "-P1D"] and pd.isna(out.iloc[2])


def test_split_into_numbered_variables_and_into_supp_columns():
    from types import SimpleNamespace

    from cdisc_pipe.sdtm.build import _split
    from cdisc_pipe.sdtm.mapping import Split

    text = " ".join(["comment%02d" % i for i in range(45)])  # 45 x 10 - 1 = 449 characters
    f = frame(COVAL=[text, "short"])
    fnd = Findings()
    out = _split(f, Split(variable="COVAL", into="variables"), SimpleNamespace(name="CO"), None, fnd)
    assert [c for c in out.columns if c.startswith("COVAL")] == ["COVAL", "COVAL1", "COVAL2"]
    assert " ".join(out.loc[0, ["COVAL", "COVAL1", "COVAL2"]]) == text
    assert out.loc[1, "COVAL"] == "short" and pd.isna(out.loc[1, "COVAL1"])
    assert [x.rule for x in fnd.items] == ["SDTM.TEXT.SPLIT"]
    out = _split(f, Split(variable="COVAL", into="supp"), SimpleNamespace(name="CO"), None, Findings())
    assert "__split_COVAL1" in out and "COVAL1" not in out


def test_text_extreme_by_is_the_groupby_min_and_max_of_text_per_row():
    from cdisc_pipe.sdtm.algorithms import text_extreme_by

    df = pd.DataFrame({
        "USUBJID": ["S1", "S1", "S1", "S2", "S2", None, "S3"],
        "VISITNUM": [1.0, 1.0, 2.0, 1.0, 1.0, 1.0, np.nan],
        "DTC": ["2024-03-05", "2024-03", "2024-04-01", None, None, "2024-01-01", "2024-02-02"],
    }).astype({"USUBJID": "str", "DTC": "str"})
    by = [df["USUBJID"], df["VISITNUM"]]
    # S1/1: "2024-03" < "2024-03-05" in string order (a partial date sorts first); S1/2 alone;
    # S2/1 has no value; a missing USUBJID or VISITNUM is no group (as groupby's dropna)
    assert [None if pd.isna(v) else v for v in text_extreme_by(df["DTC"], by, "min")] == \
        ["2024-03", "2024-03", "2024-04-01", None, None, None, None]
    assert [None if pd.isna(v) else v for v in text_extreme_by(df["DTC"], by, "max")] == \
        ["2024-03-05", "2024-03-05", "2024-04-01", None, None, None, None]
    expected = df.groupby(["USUBJID", "VISITNUM"], sort=False)["DTC"].max()
    got = text_extreme_by(df["DTC"], by, "max")
    for i in range(3):  # the groupby reduction itself, on the grouped rows
        assert got[i] == expected[(df["USUBJID"][i], df["VISITNUM"][i])]
