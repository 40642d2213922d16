"""ADLB: the BDS verbs (adam.verbs_bds) on small literal frames, and the bundled study's plan
(specs/plans/adlb.yaml) on a literal LB/ADSL fixture; expected values worked by hand in the comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from cdisc_pipe.adam import conform_to_spec
from cdisc_pipe.adam.derive import convert_blanks_to_na
from cdisc_pipe.adam.plan import load_plans, plan_methods, run_plan
from cdisc_pipe.adam.verbs import VERBS, Context
from cdisc_pipe.spec.load import load_specs

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "specs" / "plans" / "adlb.yaml"
T = pd.Timestamp


def run_verb(name: str, df: pd.DataFrame, frames: dict | None = None, dataset: str = "ADXX", **args):
    """Run one verb as a plan step would; returns (frame, findings)."""
    verb = VERBS[name]
    step = verb.args.model_validate({"verb": name, **args})
    ctx = Context(frames=frames or {}, dataset=dataset)
    return verb.run(df, step, ctx), ctx.findings


def eq(variable: str, *values: str) -> dict:
    return {"variable": variable, "comparator": "IN" if len(values) > 1 else "EQ", "values": list(values)}


# --------------------------------------------------------------------------------------------
# derive_vars_params_from_findings


def _findings() -> pd.DataFrame:
    return pd.DataFrame({
        "LBTESTCD": ["PLAT", "MCPROT", "MCPROT", "MCPROT", "MRDFRAC", "RATIO"],
        "LBTEST": ["Platelets", "Monoclonal Protein", "Monoclonal Protein", "Monoclonal Protein", "MRD", "Ratio"],
        "LBSPEC": [None, "URINE", "URINE", "SERUM", None, None],
        "LBMETHOD": [None, "IFE", None, "SPEP", None, None],
        "LBSTRESN": [150.0, np.nan, 3.0, 2.0, np.nan, 1.5],
        "LBSTRESC": ["150", "POSITIVE", "3", "2", "NEGATIVE", "1.5"],
        "LBSTRESU": ["10^9/L", None, "g/L", "g/L", None, None],
    })


def test_params_from_findings_table_first_match_and_default_param():
    rows = [
        {"testcd": "MCPROT", "paramcd": "MCPROTUI", "param": "Urine M-Protein by IFE",
         "where": [eq("LBSPEC", "URINE"), eq("LBMETHOD", "IFE")]},
        {"testcd": "MCPROT", "paramcd": "MCPROTU", "where": [eq("LBSPEC", "URINE")]},  # PARAM by default
        {"testcd": "MCPROT", "paramcd": "MCPROTU", "where": [eq("LBSPEC", "URINE")], "param": "never used"},
    ]
    out, _ = run_verb("derive_vars_params_from_findings", _findings(), domain="LB", parameters=rows,
                      param_qualifier="LBSPEC", unit_var="_AVALU")
    # row 1 urine IFE -> the IFE row (listed first); row 2 urine without method -> the urine row, whose
    # PARAM is "<test> in <Specimen> (<unit>)"; serum MCPROT matches no row -> PARAMCD = LBTESTCD.
    assert out["PARAMCD"].tolist() == ["PLAT", "MCPROTUI", "MCPROTU", "MCPROT", "MRDFRAC", "RATIO"]
    assert out["PARAM"].tolist() == ["Platelets (10^9/L)", "Urine M-Protein by IFE", "Monoclonal Protein in Urine (g/L)",
                                     "Monoclonal Protein (g/L)", "MRD", "Ratio"]  # no unit: no parentheses
    assert out["AVAL"].tolist()[2:4] == [3.0, 2.0] and np.isnan(out["AVAL"].iloc[1])
    # AVALC only for character results (LBSTRESN missing)
    assert out["AVALC"].tolist() == [None, "POSITIVE", None, None, "NEGATIVE", None]
    assert out["_AVALU"].tolist() == ["10^9/L", None, "g/L", "g/L", None, None]


def test_params_from_findings_per_distinct_combination_equals_record_by_record(monkeypatch):
    """PARAMCD/PARAM are worked out once per distinct (--TESTCD, --TEST, qualifier, condition
    variables, unit) and given to every record: the same as record by record (forced by making the
    combinations unnumberable), on 40 shuffled copies of the table, each copy's answer as above."""
    import cdisc_pipe.adam.verbs_bds as vb

    rows = [
        {"testcd": "MCPROT", "paramcd": "MCPROTUI", "param": "Urine M-Protein by IFE",
         "where": [eq("LBSPEC", "URINE"), eq("LBMETHOD", "IFE")]},
        {"testcd": "MCPROT", "paramcd": "MCPROTU", "where": [eq("LBSPEC", "URINE")]},
    ]
    base = _findings()
    order = np.random.default_rng(3).permutation(len(base) * 40)
    many = pd.concat([base] * 40, ignore_index=True).iloc[order].reset_index(drop=True)
    kw = dict(domain="LB", parameters=rows, param_qualifier="LBSPEC", unit_var="_AVALU")
    grouped, _ = run_verb("derive_vars_params_from_findings", many, **kw)
    monkeypatch.setattr(vb, "_group_number", lambda *a, **k: None)
    by_record, _ = run_verb("derive_vars_params_from_findings", many, **kw)
    pd.testing.assert_frame_equal(grouped, by_record)
    one, _ = run_verb("derive_vars_params_from_findings", base, **kw)
    expected = one[["PARAMCD", "PARAM"]].iloc[order % len(base)].reset_index(drop=True)
    pd.testing.assert_frame_equal(grouped[["PARAMCD", "PARAM"]], expected)


def test_params_from_findings_avalc_options_and_outputs():
    out, _ = run_verb("derive_vars_params_from_findings", _findings(), domain="LB", avalc="always", unit_var=None)
    assert out["AVALC"].tolist()[0] == "150" and "AVALU" not in out.columns
    verb = VERBS["derive_vars_params_from_findings"]
    step = verb.args.model_validate({"verb": verb.name, "domain": "LB", "avalc": "none"})
    assert verb.outputs(step) == ["PARAMCD", "PARAM", "AVAL", "AVALU"]
    assert "LBSTRESC" not in verb.reads(step)
    with pytest.raises(ValidationError):  # a PARAMCD longer than 8 characters
        verb.args.model_validate({"verb": verb.name, "domain": "LB", "parameters": [{"testcd": "X", "paramcd": "TOOLONGCD"}]})


# --------------------------------------------------------------------------------------------
# derive_var_before_reference


def _timing() -> pd.DataFrame:
    return pd.DataFrame({
        "LBDTC": ["2024-01-10T08:00", "2024-01-10T12:00", "2024-01-10", "2024-01-09", "2024-01-11", None, "2024-01-12"],
        "ADT": [T("2024-01-10")] * 3 + [T("2024-01-09"), T("2024-01-11"), pd.NaT, T("2024-01-12")],
        "ADTM": [T("2024-01-10 08:00"), T("2024-01-10 12:00"), T("2024-01-10"), T("2024-01-09"), T("2024-01-11"), pd.NaT,
                 T("2024-01-12")],
        "REF": [T("2024-01-10")] * 6 + [pd.NaT],
        "REFDTM": [T("2024-01-10 10:00")] * 6 + [pd.NaT],
        "GRP": ["A", "A", "A", "B", "B", "B", "B"],
    })


def test_before_reference_by_time_when_known_else_by_date():
    out, _ = run_verb("derive_var_before_reference", _timing(), new_var="PRE", date="ADT", datetime="ADTM",
                      dtc="LBDTC", reference_date="REF", reference_datetime="REFDTM")
    # 08:00 < 10:00 -> Y; 12:00 -> N; untimed on the reference day -> Y (same day counts as before);
    # day before -> Y; day after -> N; no date -> missing; no reference -> missing.
    assert out["PRE"].tolist() == ["Y", "N", "Y", "Y", "N", None, None]
    out, _ = run_verb("derive_var_before_reference", _timing(), new_var="PRE", date="ADT", reference_date="REF",
                      same_day="after")
    # by date only, a same-day record is not before: the three 01-10 records -> N
    assert out["PRE"].tolist() == ["N", "N", "N", "Y", "N", None, None]


def test_before_reference_where_keeps_other_records_and_checks_pairs():
    df = _timing().assign(PRE=["old"] * 7)
    out, _ = run_verb("derive_var_before_reference", df, new_var="PRE", date="ADT", reference_date="REF",
                      where=[eq("GRP", "B")], true_value="1", false_value="0")
    assert out["PRE"].tolist() == ["old", "old", "old", "1", "0", None, None]
    with pytest.raises(ValidationError):  # datetime without the reference date-time
        VERBS["derive_var_before_reference"].args.model_validate(
            {"verb": "derive_var_before_reference", "new_var": "X", "reference_date": "R", "datetime": "ADTM"})


# --------------------------------------------------------------------------------------------
# derive_param_computed


def _chains() -> pd.DataFrame:
    rows = [
        # USUBJID, PARAMCD, ADT, ADTM hour, AVAL, PRE
        ("A", "K", "2024-01-01", 8, 100.0, "Y"), ("A", "L", "2024-01-01", 8, 10.0, "Y"),
        ("A", "K", "2024-01-05", 8, 5.0, "Y"), ("A", "L", "2024-01-05", 8, 30.0, "Y"),   # last pre pair: L larger
        ("A", "K", "2024-02-01", 8, 20.0, "N"), ("A", "L", "2024-02-01", 8, 12.0, "N"),
        ("A", "L", "2024-02-01", 9, 14.0, "N"),                                          # later L the same day
        ("A", "K", "2024-03-01", 8, 7.0, "N"),                                           # no L that day: no record
        ("B", "K", "2024-02-01", 8, 3.0, "N"), ("B", "L", "2024-02-01", 8, 9.0, "N"),   # no pre pair: first pair
        ("B", "K", "2024-03-01", 8, 4.0, "N"), ("B", "L", "2024-03-01", 8, np.nan, "N"),  # L missing: no record
    ]
    df = pd.DataFrame(rows, columns=["USUBJID", "PARAMCD", "ADT", "H", "AVAL", "PRE"])
    df["ADT"] = pd.to_datetime(df["ADT"])
    df["ADTM"] = df["ADT"] + pd.to_timedelta(df.pop("H"), unit="h")
    df["AVISIT"] = "V"
    return df


def test_param_computed_difference_oriented_at_the_reference_pair():
    args = dict(parameters=["K", "L"], by_vars=["USUBJID", "ADT"], order=["ADTM"], operation="difference",
                orient={"reference": [eq("PRE", "Y")], "label": "pre-dose"}, keep_vars=["ADTM", "AVISIT", "PRE"],
                set_values={"PARAMCD": "D", "PARAMTYP": "DERIVED"})
    out, findings = run_verb("derive_param_computed", _chains(), dataset="ADLB", **args)
    new = out[out["PARAMCD"].eq("D")]
    # A: reference = last pre pair (01-05: K 5 < L 30) -> L first: 10-100 = -90, 30-5 = 25, 14-20 = -6
    #    (the later L of 02-01, 14, is used).  B: no pre pair -> first pair (K 3 < L 9): 9-3 = 6.
    assert new["AVAL"].tolist() == [-90.0, 25.0, -6.0, 6.0]
    assert new["USUBJID"].tolist() == ["A", "A", "A", "B"] and set(new["PARAMTYP"]) == {"DERIVED"}
    assert new["ADTM"].iloc[2] == T("2024-02-01 08:00")  # timing from the first parameter's (K) record
    assert len(out) == len(_chains()) + 4
    assert [(f.rule, f.usubjid, f.severity) for f in findings] == [("ADAM.ADLB.D", "B", "Notice")]
    assert findings[0].message.startswith("no pre-dose K/L pair")


def test_param_computed_without_orientation_and_its_checks():
    out, _ = run_verb("derive_param_computed", _chains(), parameters=["K", "L"], by_vars=["USUBJID", "ADT"],
                      order=["ADTM"], operation="ratio", set_values={"PARAMCD": "R"})
    assert out.loc[out["PARAMCD"].eq("R"), "AVAL"].tolist() == [10.0, 5 / 30, 20 / 14, 3 / 9]
    model = VERBS["derive_param_computed"].args
    base = {"verb": "derive_param_computed", "by_vars": ["USUBJID"], "operation": "difference"}
    with pytest.raises(ValidationError):  # no new PARAMCD
        model.model_validate({**base, "parameters": ["K", "L"], "set_values": {"PARAM": "x"}})
    with pytest.raises(ValidationError):  # orientation needs exactly two operands
        model.model_validate({**base, "parameters": ["K", "L", "M"], "set_values": {"PARAMCD": "X"},
                              "orient": {"reference": []}})


# --------------------------------------------------------------------------------------------
# derive_basetype_records


def test_basetype_records_copies_together_and_otherwise():
    df = pd.DataFrame({"CAT": ["HEM", "CYT", "OTHER", None], "N": [1, 2, 3, 4]})
    bt = [{"basetype": "PRE-INF", "where": [eq("CAT", "CYT")]}, {"basetype": "PRE-LD", "where": [eq("CAT", "HEM", "CYT")]}]
    out, _ = run_verb("derive_basetype_records", df, basetypes=bt, otherwise="PRE-LD")
    # CYT twice (in the order listed); OTHER and missing CAT -> otherwise
    assert out["N"].tolist() == [1, 2, 2, 3, 4]
    assert out["BASETYPE"].tolist() == ["PRE-LD", "PRE-INF", "PRE-LD", "PRE-LD", "PRE-LD"]
    out, _ = run_verb("derive_basetype_records", df, basetypes=bt)  # admiral: unmatched kept, BASETYPE missing
    assert out["BASETYPE"].tolist() == ["PRE-LD", "PRE-INF", "PRE-LD", None, None]


# --------------------------------------------------------------------------------------------
# derive_var_ablfl, derive_var_base, derive_var_chg, derive_var_pchg, derive_var_anrind


def _bds() -> pd.DataFrame:
    return pd.DataFrame({
        "USUBJID": ["A", "A", "A", "A", "B", "B"],
        "ADTM": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-09", "2024-01-01", "2024-01-09"]),
        "SEQ": [1.0, 3.0, 2.0, 4.0, 1.0, 2.0],
        "AVAL": [10.0, 12.0, np.nan, 15.0, 0.0, 5.0],
        "AVALC": [None, None, None, None, None, None],
        "PRE": ["Y", "Y", "Y", "N", "Y", "N"],
        "ANRLO": [11.0, 11.0, 11.0, 11.0, np.nan, np.nan],
        "ANRHI": [14.0, 14.0, 14.0, 14.0, 4.0, 4.0],
    })


def test_ablfl_base_chg_pchg():
    df, _ = run_verb("derive_var_ablfl", _bds(), by_vars=["USUBJID"], order=["ADTM", "SEQ"], filter=[eq("PRE", "Y")])
    # A: last pre record by ADTM, SEQ is SEQ 3 (01-02); SEQ 2 (same day, lower SEQ) has no value anyway.
    # B: its only pre record (AVAL 0).
    assert df["ABLFL"].tolist() == [None, "Y", None, None, "Y", None]
    df, _ = run_verb("derive_var_anrind", df)
    # 10 < 11 LOW; 12 NORMAL; missing AVAL -> missing; 15 > 14 HIGH; B: only an upper limit, 0 <= 4 NORMAL, 5 HIGH
    assert df["ANRIND"].tolist() == ["LOW", "NORMAL", None, "HIGH", "NORMAL", "HIGH"]
    df, _ = run_verb("derive_var_base", df, by_vars=["USUBJID"])
    df, _ = run_verb("derive_var_base", df, by_vars=["USUBJID"], source_var="ANRIND", new_var="BNRIND")
    assert df["BASE"].tolist() == [12.0] * 4 + [0.0] * 2 and df["BNRIND"].tolist() == ["NORMAL"] * 4 + ["NORMAL"] * 2
    df, _ = run_verb("derive_var_chg", df, filter=[eq("PRE", "N")])
    df, _ = run_verb("derive_var_pchg", df, filter=[eq("PRE", "N")])
    # A 01-09: 15 - 12 = 3, 3 / 12 * 100 = 25; B: 5 - 0 = 5, PCHG missing (BASE 0); pre records missing
    assert df["CHG"].tolist()[3] == 3.0 and df["CHG"].tolist()[5] == 5.0 and df["CHG"].iloc[:3].isna().all()
    assert df["PCHG"].iloc[3] == 25.0 and np.isnan(df["PCHG"].iloc[5])


def test_missing_baseline_leaves_base_and_change_missing():
    df = _bds().assign(PRE="N")
    df, _ = run_verb("derive_var_ablfl", df, by_vars=["USUBJID"], order=["ADTM", "SEQ"], filter=[eq("PRE", "Y")])
    df, _ = run_verb("derive_var_base", df, by_vars=["USUBJID"])
    df, _ = run_verb("derive_var_chg", df)
    assert df["ABLFL"].isna().all() and df["BASE"].isna().all() and df["CHG"].isna().all()


# --------------------------------------------------------------------------------------------
# derive_var_atoxgr_dir


CRITERIA = {
    "name": "CTC", "version": "9", "terms": [
        {"term": "Platelets decreased", "testcd": ["PLAT"], "direction": "L", "unit": "10^9/L",
         "grades": [{"grade": 3, "any": [{"lt": 50}]}, {"grade": 2, "any": [{"lt": 75}]},
                    {"grade": 1, "any": [{"lt": "LLN"}]}]},
        {"term": "ALT increased", "testcd": ["ALT"], "direction": "H",
         "grades": [{"grade": 2, "any": [{"gt": "3*ULN", "baseline": "not_high"}, {"gt": "3*BASE", "baseline": "high"}]},
                    {"grade": 1, "any": [{"gt": "ULN", "baseline": "not_high"}, {"ge": "1.5*BASE", "baseline": "high"}]}]},
    ],
}


def test_atoxgr_from_criteria_given_in_the_plan():
    df = pd.DataFrame({
        "PARAMCD": ["PLAT", "PLAT", "PLAT", "PLAT", "PLAT", "ALT", "ALT", "ALT", "HGB"],
        "AVAL": [50.0, 49.9, 140.0, 160.0, 20.0, 120.0, 90.0, 100.0, 50.0],
        "UNIT": ["10^9/L"] * 4 + ["g/L", "U/L", "U/L", "U/L", "g/L"],
        "ANRLO": [150.0, 150.0, 150.0, np.nan, 150.0, 0.0, 0.0, np.nan, 120.0],
        "ANRHI": [400.0, 400.0, 400.0, 400.0, 400.0, 40.0, 40.0, np.nan, 160.0],
        "BASE": [np.nan] * 5 + [np.nan, 50.0, 60.0, np.nan],
        "BNRIND": [None] * 5 + ["NORMAL", "HIGH", "HIGH", None],
    })
    out, findings = run_verb("derive_var_atoxgr_dir", df, dataset="ADLB", criteria=CRITERIA, direction="L",
                             unit_var="UNIT")
    # exactly 50 -> not < 50 -> grade 2; 49.9 -> 3; 140 < LLN 150 -> 1; 160 with LLN missing: grades 3 and 2
    # do not hold and grade 1 cannot be told -> missing; 20 in g/L: not graded (Warning); HGB: no term.
    assert out["ATOXGRL"].tolist()[:5] == ["2", "3", "1", None, None]
    assert out["ATOXDSCL"].tolist()[0] == "Platelets decreased" and out["ATOXGRL"].iloc[8] is None
    assert [(f.rule, f.severity, f.dataset) for f in findings] == [("ADAM.ATOXGR.UNIT", "Warning", "ADLB")]
    out, _ = run_verb("derive_var_atoxgr_dir", df, criteria=CRITERIA, direction="H", unit_var="UNIT",
                      new_var="GRH", dsc_var="DSCH")
    # ALT 120 = 3 x ULN 40, not > -> grade 1 (baseline normal); 90 with baseline HIGH (BASE 50):
    # 90 >= 1.5 x 50 = 75 -> grade 1; 100 with BASE 60: 100 >= 90 -> 1 (ULN missing is irrelevant then)
    assert out["GRH"].tolist()[5:8] == ["1", "1", "1"] and "ATOXGRH" not in out.columns
    step = VERBS["derive_var_atoxgr_dir"].args.model_validate(
        {"verb": "derive_var_atoxgr_dir", "criteria": CRITERIA, "direction": "L"})
    assert VERBS["derive_var_atoxgr_dir"].reads(step) == ["PARAMCD", "AVAL", "AVALU", "ANRLO"]
    assert VERBS["derive_var_atoxgr_dir"].outputs(step) == ["ATOXDSCL", "ATOXGRL"]


# --------------------------------------------------------------------------------------------
# derive_extreme_records, derive_extreme_event


def test_extreme_records_peak_earliest_on_ties():
    df = pd.DataFrame({"USUBJID": ["A", "A", "A", "B"], "AVAL": [5.0, 9.0, 9.0, 1.0],
                       "ADTM": pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-02", "2024-01-01"]),
                       "AVISITN": [1.0, 2.0, 3.0, 1.0], "POST": ["Y", "Y", "Y", "N"]})
    out, _ = run_verb("derive_extreme_records", df, by_vars=["USUBJID"], order=["-AVAL", "ADTM"],
                      filter=[eq("POST", "Y")], set_values={"DTYPE": "MAXIMUM", "AVISITN": None})
    new = out[out["DTYPE"].eq("MAXIMUM")]
    # A: 9 twice -> the earlier (01-02); B: no candidate -> no record.  AVISITN missing stays numeric.
    assert len(new) == 1 and new["ADTM"].iloc[0] == T("2024-01-02") and np.isnan(new["AVISITN"].iloc[0])
    assert pd.api.types.is_float_dtype(out["AVISITN"])


def _late() -> pd.DataFrame:
    return pd.DataFrame({"USUBJID": ["A", "A", "A", "B", "B", "C"], "DAY": [20, 28, 35, 29, 31, 40],
                         "GR": ["4", "3", "1", "2", "4", None], "SEQ": [1.0, 2.0, 3.0, 1.0, 2.0, 1.0]})


EVENTS = [{"condition": [eq("GR", "3", "4")], "set_values": {"AVALC": "Y", "AVAL": 1}},
          {"set_values": {"AVALC": "N", "AVAL": 0}}]


def test_extreme_event_first_late_assessment():
    args = dict(by_vars=["USUBJID"], filter=[{"variable": "DAY", "comparator": "GE", "values": ["28"]},
                                             {"variable": "GR", "comparator": "NOTNULL"}],
                order=["DAY", "SEQ"], events=EVENTS, keep_vars=["DAY", "SEQ"], set_values={"PARAMCD": "PCYT"})
    out, _ = run_verb("derive_extreme_event", _late(), **args)
    new = out[out["PARAMCD"].eq("PCYT")].set_index("USUBJID")
    # A: day 20 is too early; first late = day 28 grade 3 -> Y.  B: first late = day 29 grade 2 -> N (the
    # grade 4 on day 31 does not count).  C: no graded late record -> no record.
    assert new["AVALC"].to_dict() == {"A": "Y", "B": "N"} and new["AVAL"].to_dict() == {"A": 1.0, "B": 0.0}
    assert new.loc["A", "DAY"] == 28 and new.loc["B", "SEQ"] == 1.0
    # priority "event": any late grade >= 3 wins -> B is Y (day 31)
    out, _ = run_verb("derive_extreme_event", _late(), **{**args, "priority": "event"})
    new = out[out["PARAMCD"].eq("PCYT")].set_index("USUBJID")
    assert new["AVALC"].to_dict() == {"A": "Y", "B": "Y"} and new.loc["B", "DAY"] == 31
    # mode "last": the last late record -> A day 35 grade 1 -> N; B day 31 -> Y
    out, _ = run_verb("derive_extreme_event", _late(), **{**args, "mode": "last"})
    new = out[out["PARAMCD"].eq("PCYT")].set_index("USUBJID")
    assert new["AVALC"].to_dict() == {"A": "N", "B": "Y"}


# --------------------------------------------------------------------------------------------
# checks and counted filter


def test_flag_agreement_best_of_basetypes_and_check_bds():
    df = pd.DataFrame({"PARAMCD": ["P", "P", "P", "P", "Q", "Q"], "BT": ["X", "X", "Y", "Y", "X", "X"],
                       "ABLFL": ["Y", None, None, "Y", "Y", None], "SRC": ["Y", None, "Y", None, "Y", None]})
    _, findings = run_verb("check_flag_agreement", df, dataset="ADLB", source_flag_var="SRC", by_vars=["PARAMCD"],
                           best_of=["BT"], rule="BASELINE")
    # P: BT X agrees (0 differences) -> not reported; Q agrees -> nothing
    assert findings == []
    df.loc[1, "ABLFL"] = "Y"  # P/X now differs in 1 record, P/Y in 2 -> reported with 1
    _, findings = run_verb("check_flag_agreement", df, dataset="ADLB", source_flag_var="SRC", best_of=["BT"],
                           rule="BASELINE")
    assert [(f.rule, f.value, f.message) for f in findings] == [
        ("ADAM.ADLB.BASELINE", "P", "1 P record(s) where ABLFL differs from SRC")]
    bds = pd.DataFrame({"USUBJID": ["A", "A"], "PARAMCD": ["P", "P"], "PARAM": ["p", "p2"], "AVAL": [1.0, np.nan],
                        "AVALC": [None, None], "ABLFL": ["Y", "Y"]})
    _, findings = run_verb("check_bds", bds, dataset="ADLB", baseline_by=["USUBJID", "PARAMCD"])
    # P has two PARAMs (one Error), A's second P record has no value (Notice), two baselines (Error)
    assert sorted(f.rule for f in findings) == ["ADAM.BDS.ABLFL", "ADAM.BDS.NOVAL", "ADAM.BDS.PARAM11"]


def test_filter_records_counted():
    df = pd.DataFrame({"N": [1.0, np.nan, np.nan], "C": ["1", "X", None]})
    out, findings = run_verb("filter_records_counted", df, dataset="ADLB", message="record(s) without a result",
                             where=[{"any": [[{"variable": "N", "comparator": "NOTNULL"}],
                                             [{"variable": "C", "comparator": "NOTNULL"}]]}])
    assert len(out) == 2 and [f.message for f in findings] == ["1 record(s) without a result"]


def test_bds_verbs_document_admiral_and_name_no_study_term():
    text = (ROOT / "src" / "cdisc_pipe" / "adam" / "verbs_bds.py").read_text()
    for term in ("CAR-T", "EXCAT", "BCMA", "LYMPHODEPLETION", "INTLK6", "KLCFR", "PRE-LD"):
        assert term not in text
    for name in ("derive_vars_params_from_findings", "derive_param_computed", "derive_basetype_records",
                 "derive_var_atoxgr_dir", "derive_extreme_records", "derive_extreme_event"):
        assert VERBS[name].admiral


# --------------------------------------------------------------------------------------------
# the bundled study's plan


@pytest.fixture(scope="module")
def spec():
    return load_specs(ROOT / "specs")


@pytest.fixture(scope="module")
def plan(spec, tmp_path_factory):
    folder = tmp_path_factory.mktemp("plans")
    shutil.copy(PLAN, folder)  # this plan alone (other plans not loaded)
    return load_plans(folder, spec)["ADLB"]


def _adsl() -> pd.DataFrame:
    # A: LD from 2024-01-05, infused 2024-01-10 10:00.  B: LD started, never infused.
    # C: infused, but no lab before LD (missing PRE-LD baseline).
    return pd.DataFrame({
        "STUDYID": "S", "USUBJID": ["A", "B", "C"],
        "TRT01P": ["DL1", "DL2", "DL1"], "TRT01PN": [1.0, 2.0, 1.0],
        "TRT01A": ["DL1", None, "DL1"], "TRT01AN": [1.0, np.nan, 1.0], "SAFFL": ["Y", "N", "Y"],
        "TRTSDT": [T("2024-01-10"), pd.NaT, T("2024-01-10")],
        "TRTSDTM": [T("2024-01-10 10:00"), pd.NaT, T("2024-01-10 09:00")],
        "LDSDT": [T("2024-01-05"), T("2024-01-05"), T("2024-01-05")],
    })


LB_COLUMNS = ["USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBSTRESN", "LBSTRESU", "LBDTC", "LBSTNRLO",
              "LBSTNRHI", "VISIT", "VISITNUM"]
LB_ROWS = [
    ("A", 1, "PLAT", "Platelets", "HEMATOLOGY", 160.0, "10^9/L", "2023-12-26", 150, 400, "SCREENING", 1),
    ("A", 2, "PLAT", "Platelets", "HEMATOLOGY", 140.0, "10^9/L", "2024-01-05", 150, 400, "LD DAY 1", 2),
    ("A", 3, "PLAT", "Platelets", "HEMATOLOGY", 50.0, "10^9/L", "2024-01-17", 150, 400, "DAY 8", 4),
    ("A", 4, "PLAT", "Platelets", "HEMATOLOGY", 49.9, "10^9/L", "2024-01-24", 150, 400, "DAY 15", 5),
    ("A", 5, "INTLK6", "Interleukin 6", "CYTOKINES", 5.0, "pg/mL", "2024-01-10T08:00", None, 7, "DAY 1", 3),
    ("A", 6, "INTLK6", "Interleukin 6", "CYTOKINES", 500.0, "pg/mL", "2024-01-12", None, 7, "DAY 3", 3.1),
    ("A", 7, "INTLK6", "Interleukin 6", "CYTOKINES", 80.0, "pg/mL", "2024-01-14", None, 7, "DAY 5", 3.2),
    ("A", 8, "KLCFR", "Kappa Lt Chain,Free", "DISEASE ASSESSMENT", 100.0, "mg/L", "2023-12-26", 3.3, 19.4, "SCREENING", 1),
    ("A", 9, "LLCFR", "Lambda Lt Chain,Free", "DISEASE ASSESSMENT", 10.0, "mg/L", "2023-12-26", 5.7, 26.3, "SCREENING", 1),
    ("A", 10, "KLCFR", "Kappa Lt Chain,Free", "DISEASE ASSESSMENT", 20.0, "mg/L", "2024-02-09", 3.3, 19.4, "MONTH 1", 6),
    ("A", 11, "LLCFR", "Lambda Lt Chain,Free", "DISEASE ASSESSMENT", 12.0, "mg/L", "2024-02-09", 5.7, 26.3, "MONTH 1", 6),
    ("A", 12, "MCPROT", "Monoclonal Protein", "DISEASE ASSESSMENT", 3.0, "g/L", "2023-12-26", None, None, "SCREENING", 1),
    ("A", 13, "INTLK6", "Interleukin 6", "CYTOKINES", 4.0, "pg/mL", "2024-01-04", None, 7, "SCREENING", 1),
    ("B", 1, "PLAT", "Platelets", "HEMATOLOGY", 200.0, "10^9/L", "2024-01-03", 150, 400, "SCREENING", 1),
    ("B", 2, "INTLK6", "Interleukin 6", "CYTOKINES", 900.0, "pg/mL", "2024-01-12", None, 7, "DAY 3", 3.1),
    ("C", 1, "PLAT", "Platelets", "HEMATOLOGY", 100.0, "10^9/L", "2024-01-20", 150, 400, "DAY 11", 4),
]


def _lb(rows=LB_ROWS) -> pd.DataFrame:
    lb = pd.DataFrame(rows, columns=LB_COLUMNS)
    lb["STUDYID"] = "S"
    lb["LBSTRESC"] = lb["LBSTRESN"].map("{:g}".format)
    lb["LBSPEC"] = np.where(lb["LBTESTCD"].eq("MCPROT"), "URINE", None)
    lb["LBMETHOD"] = None
    lb["LBLOBXFL"] = None
    lb["LBSEQ"] = lb["LBSEQ"].astype("float64")
    for c in ("LBSTNRLO", "LBSTNRHI"):
        lb[c] = pd.to_numeric(lb[c]).astype("float64")
    return lb


def build(plan, spec, lb: pd.DataFrame):
    """Run the plan as build_adam does (blanks to missing, then the spec's variables and types)."""
    out, findings = run_plan(plan, {"LB": convert_blanks_to_na(lb), "ADSL": _adsl()})
    out, conform = conform_to_spec(out, spec.dataset("ADLB"))
    assert not [f for f in conform if f.rule in ("ADAM.SPEC.NOTDERIVED", "ADAM.SPEC.EXTRA")]
    return out, findings


@pytest.fixture(scope="module")
def built(plan, spec):
    return build(plan, spec, _lb())


def _rec(out, usubjid, paramcd, adt=None, dtype=None, basetype=None):
    sel = out["USUBJID"].eq(usubjid) & out["PARAMCD"].eq(paramcd)
    if basetype is not None:
        sel &= out["BASETYPE"].eq(basetype)
    sel &= out["DTYPE"].isna() if dtype is None else out["DTYPE"].eq(dtype)
    if adt is not None:
        sel &= out["ADT"].eq(T(adt))
    rows = out[sel]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_pre_ld_baseline_change_and_grades(built):
    out, _ = built
    assert set(out.loc[out["PARAMCD"].eq("PLAT"), "BASETYPE"]) == {"PRE-LD"}
    # Baseline = last value on/before LDSDT 2024-01-05: 140 (the 160 at screening is earlier).
    base = _rec(out, "A", "PLAT", "2024-01-05")
    assert base["ABLFL"] == "Y" and base["BASE"] == 140.0
    assert base["ANRIND"] == "LOW" and base["ATOXGRL"] == "1"  # 140 < LLN 150 -> grade 1
    day8 = _rec(out, "A", "PLAT", "2024-01-17")
    assert day8["CHG"] == pytest.approx(-90.0)  # 50 - 140
    assert day8["PCHG"] == pytest.approx(-64.2857142857)  # -90 / 140 * 100
    assert day8["ATOXGRL"] == "2"  # exactly 50: "<75 - 50" -> grade 2, not 3
    assert day8["BTOXGRL"] == "1" and day8["BNRIND"] == "LOW"
    assert day8["ADY"] == 8.0  # 2024-01-17 - 2024-01-10 + 1
    assert _rec(out, "A", "PLAT", "2024-01-24")["ATOXGRL"] == "3"  # 49.9 < 50
    screening = _rec(out, "A", "PLAT", "2023-12-26")
    assert screening["ABLFL"] is None and np.isnan(screening["CHG"]) and screening["ADY"] == -15.0
    assert screening["ATOXGRH"] is None  # no CTCAE high-direction term for platelets


def test_missing_pre_ld_baseline(built):
    out, _ = built
    rec = _rec(out, "C", "PLAT")
    assert rec["ABLFL"] is None and np.isnan(rec["BASE"]) and np.isnan(rec["CHG"]) and rec["BTOXGRL"] is None
    assert rec["ATOXGRL"] == "1"  # 100: 75 <= 100 < LLN 150


def test_cytokine_baselines_pre_infusion_and_pre_ld_and_peak(built):
    out, _ = built
    il6 = out[out["USUBJID"].eq("A") & out["PARAMCD"].eq("INTLK6")]
    # 4 observed records + 1 peak, each once per baseline type.
    assert il6.groupby("BASETYPE").size().to_dict() == {"PRE-INFUSION": 5, "PRE-LD": 5}
    # 08:00 on the infusion day, infusion at 10:00 -> pre-infusion baseline 5; pre-LD baseline 4
    # (2024-01-04, before the first LD dose on 01-05).
    assert _rec(out, "A", "INTLK6", "2024-01-10", basetype="PRE-INFUSION")["ABLFL"] == "Y"
    assert _rec(out, "A", "INTLK6", "2024-01-04", basetype="PRE-LD")["ABLFL"] == "Y"
    assert _rec(out, "A", "INTLK6", "2024-01-10", basetype="PRE-LD")["CHG"] == 1.0  # post-LD: 5 - 4
    peak = _rec(out, "A", "INTLK6", dtype="MAXIMUM", basetype="PRE-INFUSION")
    assert peak["AVAL"] == 500.0 and peak["ADT"] == T("2024-01-12") and peak["AVISIT"] == "POST-INFUSION PEAK"
    assert peak["CHG"] == 495.0 and peak["PCHG"] == pytest.approx(9900.0)  # (500 - 5) / 5 * 100
    assert peak["ABLFL"] is None and peak["SRCSEQ"] == 6.0 and np.isnan(peak["AVISITN"])
    peak_ld = _rec(out, "A", "INTLK6", dtype="MAXIMUM", basetype="PRE-LD")
    assert peak_ld["CHG"] == 496.0 and peak_ld["PCHG"] == pytest.approx(12400.0)  # (500 - 4) / 4 * 100


def test_never_infused_subject_has_no_pre_infusion_baseline_or_peak(built):
    out, _ = built
    b = out[out["USUBJID"].eq("B")]
    il6 = b[b["PARAMCD"].eq("INTLK6")]
    # One record per baseline type, no peak; 2024-01-12 is after B's LD start: no PRE-LD baseline either.
    assert sorted(il6["BASETYPE"]) == ["PRE-INFUSION", "PRE-LD"] and il6["DTYPE"].isna().all()
    assert il6["ABLFL"].isna().all() and il6["BASE"].isna().all() and il6["ADY"].isna().all()
    # B's pre-LD platelet baseline still exists: 200 on 2024-01-03 before LDSDT.
    assert _rec(out, "B", "PLAT")["ABLFL"] == "Y"


def test_dflc_derived_parameter(built):
    out, findings = built
    dflc = out[out["PARAMCD"].eq("DFLC")].sort_values("ADT")
    # Reference pair (pre-infusion) kappa 100 >= lambda 10: kappa involved.
    # 2023-12-26: 100 - 10 = 90 (baseline); 2024-02-09: 20 - 12 = 8, CHG = 8 - 90 = -82.
    assert dflc["AVAL"].tolist() == [90.0, 8.0]
    assert dflc["ABLFL"].tolist() == ["Y", None]
    assert dflc["CHG"].iloc[1] == -82.0
    assert set(dflc["PARAMTYP"]) == {"DERIVED"} and set(dflc["BASETYPE"]) == {"PRE-INFUSION"}
    assert dflc["SRCDOM"].isna().all() and dflc["SRCSEQ"].isna().all()
    assert set(dflc["PARAM"]) == {"Difference Involved-Uninvolved Free Light Chain (mg/L)"}
    assert not [f for f in findings if f.rule == "ADAM.ADLB.DFLC"]  # A has a pre-infusion pair


def test_dflc_without_a_pre_infusion_pair_uses_the_first_pair(plan, spec):
    # only post-infusion pairs: 02-09 kappa 20 >= lambda 12 (first pair) -> kappa involved; 03-09: 5 - 30 = -25
    rows = [r for r in LB_ROWS if r[2] not in ("KLCFR", "LLCFR")] + [
        ("A", 20, "KLCFR", "Kappa Lt Chain,Free", "DISEASE ASSESSMENT", 20.0, "mg/L", "2024-02-09", None, None, "M1", 6),
        ("A", 21, "LLCFR", "Lambda Lt Chain,Free", "DISEASE ASSESSMENT", 12.0, "mg/L", "2024-02-09", None, None, "M1", 6),
        ("A", 22, "KLCFR", "Kappa Lt Chain,Free", "DISEASE ASSESSMENT", 5.0, "mg/L", "2024-03-09", None, None, "M2", 7),
        ("A", 23, "LLCFR", "Lambda Lt Chain,Free", "DISEASE ASSESSMENT", 30.0, "mg/L", "2024-03-09", None, None, "M2", 7)]
    out, findings = build(plan, spec, _lb(rows))
    assert out.loc[out["PARAMCD"].eq("DFLC")].sort_values("ADT")["AVAL"].tolist() == [8.0, -25.0]
    notes = [f for f in findings if f.rule == "ADAM.ADLB.DFLC"]
    assert len(notes) == 1 and notes[0].usubjid == "A" and notes[0].severity == "Notice"
    assert notes[0].message == "no pre-infusion KLCFR/LLCFR pair: operands ordered at the first pair"


def test_param_rule_for_urine_specimen(built):
    out, findings = built
    rec = _rec(out, "A", "MCPROTU")
    assert rec["PARAM"] == "Monoclonal Protein in Urine (g/L)"  # default PARAM of a renamed test
    assert not [f for f in findings if f.severity == "Error"]


def test_columns_follow_the_spec(built, spec):
    out, _ = built
    ds = spec.dataset("ADLB")
    assert list(out.columns) == ds.variable_names
    assert not out.duplicated(ds.keys).any()


def test_records_without_a_result_are_dropped_and_counted(plan, spec):
    lb = _lb()
    lb.loc[lb["LBSEQ"].eq(13.0) & lb["USUBJID"].eq("A"), ["LBSTRESN", "LBSTRESC"]] = [np.nan, None]
    out, findings = build(plan, spec, lb)
    assert not ((out["USUBJID"] == "A") & (out["SRCSEQ"] == 13.0)).any()
    assert [f.message for f in findings if f.rule == "ADAM.ADLB.FILTERED"] == [
        "1 LB record(s) without a result (not done) are not analysed"]


def test_baseline_flag_differences_with_sdtm_are_reported(plan, spec):
    lb = _lb()
    # SDTM flagged the screening platelet count of A (LBSEQ 1) instead of the LD-day one (LBSEQ 2).
    lb["LBLOBXFL"] = np.where(lb["USUBJID"].eq("A") & lb["LBSEQ"].eq(1.0), "Y", None)
    _, findings = build(plan, spec, lb)
    plat = [f for f in findings if f.rule == "ADAM.ADLB.BASELINE" and f.value == "PLAT"]
    # A LBSEQ 1 (flagged in SDTM only), A LBSEQ 2 and B LBSEQ 1 (ABLFL only): 2 + 1 = 3 records.
    assert len(plat) == 1 and plat[0].message.startswith("3 PLAT")


def test_param_rules_first_match_wins(plan, spec):
    lb = _lb()
    ife = lb[lb["LBTESTCD"].eq("MCPROT")].assign(LBSEQ=99.0, LBSTRESN=np.nan, LBSTRESC="POSITIVE", LBSTRESU=None,
                                                  LBMETHOD="IMMUNOFIXATION ELECTROPHORESIS")
    out, _ = build(plan, spec, pd.concat([lb, ife], ignore_index=True))
    # Urine IFE matches the method-specific row before the urine fallback row.
    rec = _rec(out, "A", "MCPROTUI")
    assert rec["PARAM"] == "Urine M-Protein by Immunofixation" and rec["AVALC"] == "POSITIVE"
    assert _rec(out, "A", "MCPROTU")["AVAL"] == 3.0


def test_prolonged_cytopenia(built):
    out, _ = built
    # A: platelets graded after infusion 2024-01-10: 01-17 (7 days) and 01-24 (14 days) -> none at >= 28 days.
    assert out[out["PARAMCD"].eq("PCYTPLAT")].empty


def test_prolonged_cytopenia_first_assessment_after_day_28(plan, spec):
    late = [
        # day 28 after infusion (2024-02-07): 40 x10^9/L -> grade 3; day 35: recovered to 100 (grade 1).
        ("A", 20, "PLAT", "Platelets", "HEMATOLOGY", 40.0, "10^9/L", "2024-02-07", 150, 400, "DAY 28", 7),
        ("A", 21, "PLAT", "Platelets", "HEMATOLOGY", 100.0, "10^9/L", "2024-02-14", 150, 400, "DAY 35", 8),
        # C: day 27 grade 4 (too early), day 30 grade 2 -> N.
        ("C", 20, "PLAT", "Platelets", "HEMATOLOGY", 20.0, "10^9/L", "2024-02-06", 150, 400, "DAY 27", 7),
        ("C", 21, "PLAT", "Platelets", "HEMATOLOGY", 60.0, "10^9/L", "2024-02-09", 150, 400, "DAY 30", 8),
    ]
    out, _ = build(plan, spec, _lb(LB_ROWS + late))
    pc = out[out["PARAMCD"].eq("PCYTPLAT")].set_index("USUBJID")
    assert pc.loc["A", "AVALC"] == "Y" and pc.loc["A", "AVAL"] == 1.0 and pc.loc["A", "ADT"] == T("2024-02-07")
    assert pc.loc["C", "AVALC"] == "N" and pc.loc["C", "ADY"] == 31.0  # 2024-02-09 - 2024-01-10 + 1
    assert set(pc["PARAMTYP"]) == {"DERIVED"} and "B" not in pc.index
    assert pc.loc["A", "SRCSEQ"] == 20.0 and set(pc["SRCVAR"]) == {"LBSTRESN"}
    assert pc["BASE"].isna().all() and pc["ATOXGRL"].isna().all()  # not carried from the assessment


def test_plan_method_text_names_no_file(plan):
    methods = plan_methods(plan)
    assert {"ATOXGRL", "BASETYPE", "DTYPE", "ABLFL", "CHG"} <= set(methods)
    for text in methods.values():
        assert ".yaml" not in text and "adam_bds" not in text
    assert methods["BASETYPE"].startswith("'PRE-INFUSION' for records where PARCAT1 in ('CYTOKINES'")
    assert "CTCAE v5.0 grade, low direction" in methods["ATOXGRL"]


def test_plan_criteria_match_the_settings_table(plan):
    # the plan carries the CTCAE v5.0 table inline (the engine resolves no file paths): it must stay
    # identical to specs/settings/ctcae_v5_lab.yaml
    table = yaml.safe_load((ROOT / "specs" / "settings" / "ctcae_v5_lab.yaml").read_text())
    steps = [s for s in plan.steps if s.verb == "derive_var_atoxgr_dir"]
    assert [s.direction for s in steps] == ["L", "H"]
    for s in steps:
        assert s.criteria.model_dump(exclude_defaults=True) == type(s.criteria).model_validate(table).model_dump(
            exclude_defaults=True)
