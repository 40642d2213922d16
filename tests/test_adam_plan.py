"""Derivation plans: ADaM datasets from files of verb steps (adam.plan, adam.verbs).

Fixtures are literal tables; every expected value is worked out by hand in a comment.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cdisc_pipe.adam import build_adam
from cdisc_pipe.adam.plan import attach_plan_methods, load_plans
from cdisc_pipe.adam.verbs import VERBS
from cdisc_pipe.errors import InputError
from cdisc_pipe.spec.model import Dataset, Origin, Standard, Study, StudySpec, Variable

DERIVED = Origin(type="Derived")
PRED = Origin(type="Predecessor", description="DM")


def v(name: str, data_type: str = "text", origin: Origin = DERIVED, **kw) -> Variable:
    fmt = {"date": "DATE9."}.get(data_type)
    return Variable(name=name, label=name.title(), data_type=data_type, core="Req", origin=origin,
                    display_format=fmt, **kw)


ADSL_VARS = [v("STUDYID", origin=PRED), v("USUBJID", origin=PRED), v("AGE", "integer", origin=PRED),
             v("ARM", origin=PRED), v("TRTSDT", "date"), v("TRTEDT", "date"), v("TRTDURD", "integer"),
             v("CUMDOSE", "float"), v("AVGDD", "float"), v("AGEGR1"), v("AGEGR1N", "integer"), v("SAFFL"),
             v("NAEFL")]


def spec_with(*extra: Dataset, adsl_vars: list[Variable] = ADSL_VARS) -> StudySpec:
    adsl = Dataset(name="ADSL", label="Subject-Level Analysis Dataset", **{"class": "SUBJECT LEVEL ANALYSIS DATASET"},
                   structure="One record per subject", keys=[k for k in ("STUDYID", "USUBJID")
                                                             if k in [x.name for x in adsl_vars]],
                   purpose="Analysis", variables=adsl_vars)
    return StudySpec(
        study=Study(oid="STDY.T1", name="T1", protocol_name="T1", description="test", sponsor="Test",
                    metadata_datetime="2025-06-30T08:15:42"),
        standards=[Standard(oid="STD.ADAMIG.1-3", name="ADaMIG", type="IG", version="1.3")],
        datasets={d.name: d for d in (adsl, *extra)})


DM = pd.DataFrame({
    "STUDYID": ["T1"] * 4,
    "USUBJID": ["T1-01", "T1-02", "T1-03", "T1-04"],
    "AGE": [64.0, 65.0, 81.0, 70.0],
    "ARM": ["Placebo", "Drug 50 mg", "Drug 50 mg", "Screen Failure"],
    "ARMCD": ["Pbo", "D50", "D50", "Scrnfail"],
})
EX = pd.DataFrame({
    "USUBJID": ["T1-01", "T1-01", "T1-02", "T1-02", "T1-03"],
    "EXTRT": ["PLACEBO", "PLACEBO", "DRUG", "DRUG", "DRUG"],
    "EXDOSE": [0.0, 0.0, 50.0, 100.0, 0.0],
    "EXSTDTC": ["2024-01-01", "2024-01-15", "2024-02-01", "2024-02-11", "2024-03-01"],
    "EXENDTC": ["2024-01-14", "2024-01-28", "2024-02-10", "2024-02-20", "2024-03-01"],
    "EXSEQ": [1.0, 2.0, 1.0, 2.0, 1.0],
})
AE = pd.DataFrame({"USUBJID": ["T1-02", "T1-02"], "AESER": ["N", "Y"], "AEDECOD": ["Headache", "Nausea"]})

ADSL_PLAN = {
    "dataset": "ADSL",
    "source": {"dataset": "DM", "where": [{"variable": "ARMCD", "comparator": "NE", "values": ["Scrnfail"]}],
               "keep": ["STUDYID", "USUBJID", "AGE", "ARM"]},
    "steps": [
        # a dose counts when > 0, or any placebo record (dose 0 is still treatment)
        {"verb": "derive_vars_merged", "dataset_add": "EX",
         "filter_add": [{"any": [[{"variable": "EXDOSE", "comparator": "GT", "values": ["0"]}],
                                 [{"variable": "EXTRT", "comparator": "EQ", "values": ["PLACEBO"]}]]}],
         "order": ["EXSTDTC", "EXSEQ"], "mode": "first", "new_vars": {"_TRTSDTC": "EXSTDTC"}},
        {"verb": "derive_vars_merged", "dataset_add": "EX",
         "filter_add": [{"any": [[{"variable": "EXDOSE", "comparator": "GT", "values": ["0"]}],
                                 [{"variable": "EXTRT", "comparator": "EQ", "values": ["PLACEBO"]}]]}],
         "order": ["EXENDTC", "EXSEQ"], "mode": "last", "new_vars": {"_TRTEDTC": "EXENDTC"}},
        {"verb": "derive_vars_dt", "dtc": "_TRTSDTC", "new_vars_prefix": "TRTS"},
        {"verb": "derive_vars_dt", "dtc": "_TRTEDTC", "new_vars_prefix": "TRTE"},
        {"verb": "derive_vars_duration", "new_var": "TRTDURD", "start_date": "TRTSDT", "end_date": "TRTEDT"},
        {"verb": "derive_var_merged_summary", "dataset_add": "EX", "new_var": "_DOSEDAYS", "function": "sum",
         "source_var": "EXDOSE", "missing_value": 0},
        {"verb": "derive_var_computed", "new_var": "CUMDOSE", "operation": "product", "operands": ["_DOSEDAYS", 10]},
        {"verb": "derive_var_computed", "new_var": "AVGDD", "operation": "ratio", "operands": ["CUMDOSE", "TRTDURD"],
         "round": 1},
        {"verb": "derive_vars_cat", "new_vars": ["AGEGR1", "AGEGR1N"], "categories": [
            {"where": [{"variable": "AGE", "comparator": "LT", "values": ["65"]}], "values": {"AGEGR1": "<65", "AGEGR1N": 1}},
            {"where": [{"variable": "AGE", "comparator": "LE", "values": ["80"]}], "values": {"AGEGR1": "65-80", "AGEGR1N": 2}},
            {"where": [{"variable": "AGE", "comparator": "GT", "values": ["80"]}], "values": {"AGEGR1": ">80", "AGEGR1N": 3}}]},
        {"verb": "derive_vars_cat", "new_vars": ["SAFFL"],
         "categories": [{"where": [{"variable": "TRTSDT", "comparator": "NOTNULL"}], "values": {"SAFFL": "Y"}}],
         "otherwise": {"SAFFL": "N"}},
        {"verb": "derive_var_merged_exist_flag", "dataset_add": "AE", "new_var": "NAEFL",
         "condition": [{"variable": "AESER", "comparator": "EQ", "values": ["Y"]}], "false_value": "N",
         "missing_value": "N"},
    ],
}


def write_plans(tmp_path: Path, *plans: dict) -> Path:
    specs = tmp_path / "specs"
    (specs / "plans").mkdir(parents=True)
    (specs / "settings").mkdir()
    for plan in plans:
        (specs / "plans" / f"{plan['dataset'].lower()}.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return specs


def test_adsl_from_a_plan(tmp_path: Path) -> None:
    specs = write_plans(tmp_path, ADSL_PLAN)
    result = build_adam({"DM": DM, "EX": EX, "AE": AE}, spec_with(), specs / "settings")
    adsl = result.datasets["ADSL"].set_index("USUBJID")
    # T1-04 is a screen failure: excluded by the source's where
    assert list(adsl.index) == ["T1-01", "T1-02", "T1-03"]
    # T1-01: placebo (dose 0) counts: first EXSTDTC 2024-01-01, last EXENDTC 2024-01-28
    assert adsl.loc["T1-01", "TRTSDT"] == pd.Timestamp("2024-01-01")
    assert adsl.loc["T1-01", "TRTEDT"] == pd.Timestamp("2024-01-28")
    # TRTDURD = 2024-01-28 - 2024-01-01 + 1 = 28 days
    assert adsl.loc["T1-01", "TRTDURD"] == 28.0
    # T1-02: 2024-02-01 .. 2024-02-20 -> 20 days; CUMDOSE = (50 + 100) * 10 = 1500; AVGDD = 1500 / 20 = 75.0
    assert adsl.loc["T1-02", "TRTDURD"] == 20.0
    assert adsl.loc["T1-02", "CUMDOSE"] == 1500.0 and adsl.loc["T1-02", "AVGDD"] == 75.0
    # T1-03: its only record is dose 0 of DRUG (not placebo): never treated
    assert pd.isna(adsl.loc["T1-03", "TRTSDT"]) and adsl.loc["T1-03", "SAFFL"] == "N"
    assert adsl.loc["T1-03", "CUMDOSE"] == 0.0 and np.isnan(adsl.loc["T1-03", "AVGDD"])
    # AGE 64 -> <65 (1); 65 -> 65-80 (2); 81 -> >80 (3)
    assert list(adsl["AGEGR1"]) == ["<65", "65-80", ">80"] and list(adsl["AGEGR1N"]) == [1.0, 2.0, 3.0]
    # NAEFL: T1-02 has a serious AE; T1-01 and T1-03 have no AE record at all -> missing_value N
    assert list(adsl["NAEFL"]) == ["N", "Y", "N"]
    assert list(result.datasets["ADSL"].columns) == [x.name for x in ADSL_VARS]
    assert not [f for f in result.findings if f.severity in ("Warning", "Error")]


def test_method_text_speaks_cdisc_and_spells_out_working_variables(tmp_path: Path) -> None:
    specs = write_plans(tmp_path, ADSL_PLAN)
    spec = spec_with()
    plans = load_plans(specs / "plans", spec)
    text = plans["ADSL"].methods["TRTEDT"]
    assert text.startswith("Date part of _TRTEDTC (no imputation)")
    assert ("[_TRTEDTC: Last EX.EXENDTC where EXDOSE > 0 or EXTRT = 'PLACEBO', per USUBJID "
            "(records ordered by EXENDTC, EXSEQ)]") in text
    assert plans["ADSL"].methods["AGEGR1"] == "'<65' when AGE < 65; '65-80' when AGE <= 80; '>80' when AGE > 80"
    assert plans["ADSL"].methods["AVGDD"] == "CUMDOSE / TRTDURD (missing when a divisor is 0), rounded to 1 decimal place(s)"
    with_methods = attach_plan_methods(spec, plans)
    trtedt = with_methods.dataset("ADSL").variable("TRTEDT")
    assert trtedt.method == "MT.ADSL.TRTEDT"
    assert with_methods.methods["MT.ADSL.TRTEDT"].description.startswith("TRTEDT: Date part of")
    assert with_methods.dataset("ADSL").variable("AGE").method is None  # a predecessor: no method
    assert "plans" not in text and ".yaml" not in text


def test_spec_and_plan_disagreements_are_input_errors_before_data(tmp_path: Path) -> None:
    plan = {**ADSL_PLAN, "steps": ADSL_PLAN["steps"][:-1] + [
        {"verb": "derive_vars_assigned", "values": {"EXTRA": "x"}},
        {"verb": "derive_vars_cat", "new_vars": ["ZZ"], "categories": [
            {"where": [{"variable": "NOSUCH", "comparator": "EQ", "values": ["1"]}], "values": {"ZZ": "1"}}]},
        {"verb": "derive_nothing"},
        {"verb": "derive_vars_dt", "dtc": "AESTDTC", "new_vars_prefix": "ast"},
    ]}
    specs = write_plans(tmp_path, plan)
    with pytest.raises(InputError) as exc:
        load_plans(specs / "plans", spec_with())
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "steps[12].verb" in text and "unknown verb" in text and "derive_nothing" in text
    assert "steps[13:derive_vars_dt].new_vars_prefix" in text  # lower-case prefix refused
    # the file had argument errors, so the spec comparison waits for them to be fixed
    plan["steps"] = plan["steps"][:-2]
    specs = write_plans(tmp_path / "again", plan)
    with pytest.raises(InputError) as exc:
        load_plans(specs / "plans", spec_with())
    msgs = [(p.entry, p.message) for p in exc.value.problems]
    assert ("steps[11:derive_vars_cat]", "step reads NOSUCH, which no earlier step (nor the source's keep list) writes") in msgs
    assert ("steps", "ADSL spec variable(s) written by no step: NAEFL") in msgs
    assert ("steps", "step(s) write variable(s) not in the ADSL spec: EXTRA, ZZ") in msgs


def test_dataset_with_a_spec_and_no_plan_is_an_input_error(tmp_path: Path) -> None:
    adxx = Dataset(name="ADXX", label="Something", **{"class": "BASIC DATA STRUCTURE"}, structure="x",
                   keys=["USUBJID"], purpose="Analysis", variables=[v("USUBJID")])
    specs = write_plans(tmp_path, ADSL_PLAN)
    with pytest.raises(InputError) as exc:
        build_adam({"DM": DM, "EX": EX, "AE": AE}, spec_with(adxx), specs / "settings")
    (p,) = exc.value.problems
    assert p.message == "ADXX has a spec but no derivation plan" and "adxx.yaml" in p.hint


def test_missing_input_dataset_and_variable_are_named(tmp_path: Path) -> None:
    specs = write_plans(tmp_path, ADSL_PLAN)
    with pytest.raises(InputError) as exc:
        build_adam({"DM": DM, "EX": EX}, spec_with(), specs / "settings")
    assert [(p.file, p.message) for p in exc.value.problems] == [
        ("ae.xpt", "SDTM dataset AE is missing; ADSL need(s) it")]
    # every variable a step needs from an input is checked before anything is derived, all at once
    with pytest.raises(InputError) as exc:
        build_adam({"DM": DM.drop(columns="AGE"), "EX": EX.drop(columns=["EXSEQ", "EXTRT"]), "AE": AE}, spec_with(),
                   specs / "settings")
    assert [(p.file, p.column, p.message) for p in exc.value.problems] == [
        ("dm.xpt", "AGE", "SDTM dataset DM lacks AGE; ADSL need(s) them"),
        ("ex.xpt", "EXSEQ, EXTRT", "SDTM dataset EX lacks EXSEQ, EXTRT; ADSL need(s) them")]


def test_a_variable_missing_while_a_plan_runs_names_plan_step_and_dataset(tmp_path: Path) -> None:
    """Verbs that do not declare their needs still fail with the plan file, step and variable."""
    plan = {"dataset": "ADSL", "source": {"dataset": "DM", "keep": ["STUDYID", "USUBJID"]},
            "steps": [{"verb": "filter_extreme", "by_vars": ["USUBJID"], "order": ["NOSUCH"]}]}
    specs = write_plans(tmp_path, plan)
    spec = spec_with(adsl_vars=[v("STUDYID", origin=PRED), v("USUBJID", origin=PRED)])
    with pytest.raises(InputError) as exc:
        build_adam({"DM": DM}, spec, specs / "settings")
    (p,) = exc.value.problems
    assert (p.entry, p.value) == ("steps[0:filter_extreme]", "NOSUCH") and p.file.endswith("adsl.yaml")


ADAE = Dataset(name="ADAE", label="Adverse Events Analysis Dataset", **{"class": "OCCURRENCE DATA STRUCTURE"},
               structure="One record per AE", keys=["USUBJID", "AESEQ"], purpose="Analysis",
               variables=[v("USUBJID", origin=PRED), v("AESEQ", "integer", origin=PRED), v("AEDECOD", origin=PRED),
                          v("TRTSDT", "date", origin=PRED), v("ASTDT", "date"), v("ASTDTF"), v("ASTDY", "integer"),
                          v("TRTEMFL"), v("AOCCPFL")])

AE2 = pd.DataFrame({
    "USUBJID": ["T1-02", "T1-02", "T1-02", "T1-01"],
    "AESEQ": [1.0, 2.0, 3.0, 1.0],
    "AEDECOD": ["Nausea", "Nausea", "Headache", "Nausea"],
    "AESTDTC": ["2024-02", "2024-02-05", "2024-01-20", "2023-12-30"],
    "AESER": ["N", "N", "N", "N"],
})

ADAE_PLAN = {
    "dataset": "ADAE",
    "source": {"dataset": "AE", "keep": ["USUBJID", "AESEQ", "AEDECOD"], "working": ["AESTDTC"]},
    "steps": [
        {"verb": "derive_vars_merged", "dataset_add": "ADSL", "new_vars": ["TRTSDT"]},
        {"verb": "derive_vars_dt", "dtc": "AESTDTC", "new_vars_prefix": "AST", "highest_imputation": "M",
         "min_dates": ["TRTSDT"]},
        {"verb": "derive_vars_dy", "reference_date": "TRTSDT", "source_vars": {"ASTDY": "ASTDT"}},
        {"verb": "derive_var_trtemfl", "end_date": None},
        {"verb": "derive_var_extreme_flag", "by_vars": ["USUBJID", "AEDECOD"], "order": ["ASTDT", "AESEQ"],
         "new_var": "AOCCPFL", "filter": [{"variable": "TRTEMFL", "comparator": "EQ", "values": ["Y"]}]},
    ],
}


def test_adae_plan_reads_adsl_built_in_the_same_run(tmp_path: Path) -> None:
    specs = write_plans(tmp_path, ADSL_PLAN, ADAE_PLAN)
    spec = spec_with(ADAE)
    result = build_adam({"DM": DM, "EX": EX, "AE": AE2}, spec, specs / "settings")
    adae = result.datasets["ADAE"]
    got = adae.set_index(["USUBJID", "AESEQ"])
    # T1-02 TRTSDT 2024-02-01. AESEQ 1 "2024-02": first of month 2024-02-01, TRTSDT in that month and not
    # before it -> 2024-02-01 (D imputed), ASTDY 1, emergent.
    assert got.loc[("T1-02", 1.0), "ASTDT"] == pd.Timestamp("2024-02-01") and got.loc[("T1-02", 1.0), "ASTDTF"] == "D"
    assert got.loc[("T1-02", 1.0), "ASTDY"] == 1.0
    # AESEQ 3 on 2024-01-20: before TRTSDT -> ASTDY = 2024-01-20 - 2024-02-01 = -12; not emergent
    assert got.loc[("T1-02", 3.0), "ASTDY"] == -12.0 and got.loc[("T1-02", 3.0), "TRTEMFL"] is None
    # first emergent Nausea of T1-02: AESEQ 1 (2024-02-01) before AESEQ 2 (2024-02-05)
    assert got["AOCCPFL"].to_dict() == {("T1-02", 1.0): "Y", ("T1-02", 2.0): None, ("T1-02", 3.0): None,
                                        ("T1-01", 1.0): None}
    # T1-01's AE (2023-12-30) precedes its TRTSDT 2024-01-01: ASTDY -2
    assert got.loc[("T1-01", 1.0), "ASTDY"] == -2.0


def test_tte_from_any_dataset(tmp_path: Path) -> None:
    adtte = Dataset(name="ADTTE", label="Time to Event", **{"class": "BASIC DATA STRUCTURE"},
                    structure="One record per subject per parameter", keys=["USUBJID", "PARAMCD"], purpose="Analysis",
                    variables=[v("USUBJID", origin=PRED), v("PARAMCD"), v("PARAM"), v("STARTDT", "date"),
                               v("ADT", "date"), v("AVAL", "float"), v("CNSR", "integer"), v("EVNTDESC"),
                               v("SRCDOM"), v("SRCVAR"), v("SRCSEQ", "integer")])
    tte = {"dataset": "ADTTE", "steps": [{
        "verb": "derive_param_tte", "paramcd": "TTNAU", "param": "Time to First Nausea (days)", "start_date": "TRTSDT",
        "population": [{"variable": "SAFFL", "comparator": "EQ", "values": ["Y"]}],
        "events": [{"id": "nausea", "dataset": "ADAE", "date": "ASTDT", "cnsr": 0, "evntdesc": "NAUSEA",
                    "srcdom": "ADAE", "srcvar": "ASTDT", "srcseq": "AESEQ",
                    "where": [{"variable": "AEDECOD", "comparator": "EQ", "values": ["Nausea"]},
                              {"variable": "TRTEMFL", "comparator": "EQ", "values": ["Y"]}]}],
        "censors": [{"id": "eot", "dataset": "ADSL", "date": "TRTEDT", "cnsr": 1, "evntdesc": "END OF TREATMENT",
                     "cnsdtdsc": "LAST DOSE DATE", "srcdom": "ADSL", "srcvar": "TRTEDT"}]},
        {"verb": "filter_records", "where": [{"variable": "PARAMCD", "comparator": "EQ", "values": ["TTNAU"]}]}],
        "order": ["USUBJID"]}
    specs = write_plans(tmp_path, ADSL_PLAN, ADAE_PLAN, tte)
    spec = spec_with(ADAE, adtte)
    got = build_adam({"DM": DM, "EX": EX, "AE": AE2}, spec, specs / "settings").datasets["ADTTE"]
    got = got.set_index("USUBJID")
    # T1-01 (SAFFL Y): its nausea is before treatment -> censored at TRTEDT 2024-01-28: AVAL 28
    assert (got.loc["T1-01", "CNSR"], got.loc["T1-01", "AVAL"], got.loc["T1-01", "EVNTDESC"]) == (1.0, 28.0, "END OF TREATMENT")
    # T1-02: first emergent nausea 2024-02-01 = TRTSDT -> AVAL 1, SRCSEQ 1
    assert (got.loc["T1-02", "CNSR"], got.loc["T1-02", "AVAL"], got.loc["T1-02", "SRCSEQ"]) == (0.0, 1.0, 1.0)
    # T1-03 is not in the safety population (never treated): no record
    assert list(got.index) == ["T1-01", "T1-02"]


def test_every_verb_documents_its_admiral_counterpart() -> None:
    for name, verb in VERBS.items():
        assert verb.admiral, name
        assert verb.args.__doc__ or verb.run.__doc__ or name, name


def _run_step(step: dict, df: pd.DataFrame, frames: dict | None = None) -> pd.DataFrame:
    from cdisc_pipe.adam.verbs import Context

    verb = VERBS[step["verb"]]
    return verb.run(df, verb.args.model_validate(step), Context(frames=frames or {}, dataset="T"))


def test_cat_copies_another_variable_and_keeps_its_type() -> None:
    df = pd.DataFrame({"LAST": pd.to_datetime(["2024-01-10", None, None]), "DISC": pd.to_datetime([None, "2024-02-01", None]),
                       "N": [1.0, 2.0, 3.0]})
    # end date: LAST when present, else DISC when present; else missing
    out = _run_step({"verb": "derive_vars_cat", "new_vars": ["END"], "categories": [
        {"where": [{"variable": "LAST", "comparator": "NOTNULL"}], "values": {"END": {"variable": "LAST"}}},
        {"where": [{"variable": "DISC", "comparator": "NOTNULL"}], "values": {"END": {"variable": "DISC"}}}]}, df)
    assert pd.api.types.is_datetime64_any_dtype(out["END"])
    assert list(out["END"]) == [pd.Timestamp("2024-01-10"), pd.Timestamp("2024-02-01"), pd.NaT]
    out = _run_step({"verb": "derive_vars_cat", "new_vars": ["M"], "categories": [
        {"where": [{"variable": "N", "comparator": "GT", "values": ["1"]}], "values": {"M": {"variable": "N"}}}],
        "otherwise": {"M": 0}}, df)
    assert list(out["M"]) == [0.0, 2.0, 3.0] and out["M"].dtype == "float64"


def test_computed_min_max_over_dates_and_numbers() -> None:
    df = pd.DataFrame({"A": pd.to_datetime(["2024-01-10", "2024-01-05", None]),
                       "B": pd.to_datetime(["2024-01-08", None, None]), "X": [1.0, np.nan, 4.0]})
    out = _run_step({"verb": "derive_var_computed", "new_var": "D", "operation": "difference", "operands": ["A", "B", -1]}, df)
    # 2024-01-10 - 2024-01-08 + 1 = 3 days; a missing date gives missing
    assert out["D"].iloc[0] == 3.0 and np.isnan(out["D"].iloc[1])
    out = _run_step({"verb": "derive_var_computed", "new_var": "M", "operation": "min", "operands": ["A", "B"]}, df)
    # SAS MIN ignores missing: day numbers since 1960-01-01 (2024-01-08 = 23383, 2024-01-05 = 23380)
    assert list(out["M"].iloc[:2]) == [23383.0, 23380.0] and np.isnan(out["M"].iloc[2])
    out = _run_step({"verb": "derive_var_computed", "new_var": "M", "operation": "max", "operands": ["X", 2]}, df)
    assert list(out["M"]) == [2.0, 2.0, 4.0]
    out = _run_step({"verb": "derive_var_computed", "new_var": "R", "operation": "ratio", "operands": [5, "X"],
                     "round": 0}, df)
    # 5 / 1 = 5; 5 / missing = missing; 5 / 4 = 1.25 -> 1
    assert out["R"].iloc[0] == 5.0 and np.isnan(out["R"].iloc[1]) and out["R"].iloc[2] == 1.0


def test_round_is_half_away_from_zero() -> None:
    df = pd.DataFrame({"X": [0.125, -0.125, 2.5, 0.285]})
    out = _run_step({"verb": "derive_var_computed", "new_var": "R", "operation": "product", "operands": ["X", 1],
                     "round": 2}, df)
    # SAS ROUND(0.125, 0.01) = 0.13; -0.125 -> -0.13; 2.5 -> 2.5; 0.285 (binary 0.28499999...) -> 0.29 as SAS
    assert list(out["R"]) == [0.13, -0.13, 2.5, 0.29]


def test_contains_and_summary() -> None:
    ae = pd.DataFrame({"USUBJID": ["a", "a", "b"], "AEDECOD": ["APPLICATION SITE ERYTHEMA", "NAUSEA", "BLISTER"],
                       "DOSE": [1.0, np.nan, np.nan]})
    out = _run_step({"verb": "derive_vars_cat", "new_vars": ["CQ"], "categories": [
        {"where": [{"variable": "AEDECOD", "comparator": "CONTAINS", "values": ["ERYTHEMA", "BLISTER"]}],
         "values": {"CQ": "DERM"}}]}, ae)
    assert list(out["CQ"]) == ["DERM", None, "DERM"]
    subj = pd.DataFrame({"USUBJID": ["a", "b", "c"]})
    out = _run_step({"verb": "derive_var_merged_summary", "dataset_add": "AE", "new_var": "S", "function": "sum",
                     "source_var": "DOSE"}, subj, {"AE": ae})
    # a: 1 + missing = 1 (missing values skipped); b: all missing -> missing; c: no record -> missing
    assert out["S"].iloc[0] == 1.0 and np.isnan(out["S"].iloc[1]) and np.isnan(out["S"].iloc[2])
    out = _run_step({"verb": "derive_var_merged_summary", "dataset_add": "AE", "new_var": "N", "function": "count",
                     "missing_value": 0}, subj, {"AE": ae})
    assert list(out["N"]) == [2, 1, 0]


def test_pooled_sites() -> None:
    adsl = pd.DataFrame({"SITEID": ["701"] * 6 + ["702"] * 4 + ["703"] * 3,
                         "ARM": ["P", "P", "P", "H", "H", "H", "P", "P", "P", "P", "P", "H", "H"]})
    out = _run_step({"verb": "derive_var_pooled", "new_var": "SITEGR1", "group_var": "SITEID", "within": ["ARM"],
                     "min_count": 3, "pooled_value": "900"}, adsl)
    # 701: P 3, H 3 -> kept; 702: P 4, H 0 -> pooled; 703: P 1, H 2 -> pooled
    assert list(out["SITEGR1"]) == ["701"] * 6 + ["900"] * 7
    out = _run_step({"verb": "derive_var_pooled", "new_var": "SITEGR1", "group_var": "SITEID",
                     "min_count": 4, "pooled_value": "900"}, adsl)
    # without levels: 701 has 6, 702 has 4 (kept), 703 has 3 (< 4: pooled)
    assert list(out["SITEGR1"]) == ["701"] * 6 + ["702"] * 4 + ["900"] * 3


STUDY_VERB_FILE = '''
"""A study's own verb: BMI from weight (kg) and height (cm)."""
import numpy as np
from pydantic import Field
from cdisc_pipe.adam.verbs import StepArgs, Verb


class BmiArgs(StepArgs):
    new_var: str = "BMIBL"
    weight: str
    height: str


def run(df, a, ctx):
    out = df.copy()
    out[a.new_var] = df[a.weight] / (df[a.height] / 100.0) ** 2
    if a.new_var == "BOOM":
        raise ZeroDivisionError("boom")
    return out


VERBS = [Verb(name="derive_var_study_bmi", args=BmiArgs, run=run, outputs=lambda a: [a.new_var],
              describe=lambda a: {a.new_var: f"{a.weight} / ({a.height} / 100) ** 2"}, admiral="none",
              reads=lambda a: [a.weight, a.height])]
'''


def test_a_study_verb_named_by_the_plan(tmp_path: Path) -> None:
    spec = spec_with(adsl_vars=[v("USUBJID", origin=PRED), v("BMIBL", "float")])
    dm = pd.DataFrame({"USUBJID": ["a", "b"], "W": [80.0, 50.0], "H": [200.0, 100.0]})
    plan = {"dataset": "ADSL", "study_verbs": ["../verbs/bmi.py"],
            "source": {"dataset": "DM", "keep": ["USUBJID"], "working": ["W", "H"]},
            "steps": [{"verb": "derive_var_study_bmi", "weight": "W", "height": "H"}]}
    specs = write_plans(tmp_path, plan)
    (specs / "verbs").mkdir()
    (specs / "verbs" / "bmi.py").write_text(STUDY_VERB_FILE)
    plans = load_plans(specs / "plans", spec)
    (own,) = plans["ADSL"].study_verbs
    assert own.verbs == ("derive_var_study_bmi",) and len(own.sha256) == 64
    assert plans["ADSL"].study_verbs_used() == ["derive_var_study_bmi"]
    assert "derive_var_study_bmi" not in VERBS  # never added to the library's registry
    adsl = build_adam({"DM": dm}, spec, specs / "settings").datasets["ADSL"]
    # 80 / 2.0^2 = 20; 50 / 1.0^2 = 50
    assert list(adsl["BMIBL"]) == [20.0, 50.0]
    assert plans["ADSL"].methods["BMIBL"] == "W / (H / 100) ** 2"

    # its failure is the study's: exit 2 naming its file, not an internal error
    spec_boom = spec_with(adsl_vars=[v("USUBJID", origin=PRED), v("BOOM", "float")])
    plan["steps"][0]["new_var"] = "BOOM"
    (specs / "plans" / "adsl.yaml").write_text(yaml.safe_dump(plan))
    with pytest.raises(InputError) as exc:
        build_adam({"DM": dm}, spec_boom, specs / "settings")
    assert "study verb derive_var_study_bmi failed: ZeroDivisionError: boom" in str(exc.value.problems[0])


def test_study_verb_files_that_cannot_be_used(tmp_path: Path) -> None:
    spec = spec_with(adsl_vars=[v("USUBJID", origin=PRED)])
    plan = {"dataset": "ADSL", "study_verbs": ["missing.py", "bad.py", "clash.py", "empty.py"],
            "source": {"dataset": "DM", "keep": ["USUBJID"]},
            "steps": [{"verb": "filter_records", "where": [{"variable": "USUBJID", "comparator": "NOTNULL"}]}]}
    specs = write_plans(tmp_path, plan)
    (specs / "plans" / "bad.py").write_text("import nosuchmodule_xyz\n")
    (specs / "plans" / "clash.py").write_text(STUDY_VERB_FILE.replace("derive_var_study_bmi", "derive_vars_dt"))
    (specs / "plans" / "empty.py").write_text("X = 1\n")
    with pytest.raises(InputError) as exc:
        load_plans(specs / "plans", spec)
    msgs = [p.message for p in exc.value.problems]
    assert msgs[0] == "study verb file not found (a .py file, relative to the plan)"
    assert msgs[1].startswith("study verb file failed to load: ModuleNotFoundError")
    assert msgs[2] == "study verb(s) named like library verbs: derive_vars_dt"
    assert msgs[3].startswith("a study verb file must define VERBS")


def test_log_and_manifest_name_the_study_verb_file(tmp_path: Path) -> None:
    from cdisc_pipe.manifest import sha256_file
    from cdisc_pipe.pipeline import Paths, load_spec, study_verb_files
    from cdisc_pipe.runlog import RunLog
    from cdisc_pipe.spec import load_specs

    specs = tmp_path / "specs"
    (specs / "adam").mkdir(parents=True)
    (specs / "plans").mkdir()
    (specs / "verbs").mkdir()
    (specs / "verbs" / "bmi.py").write_text(STUDY_VERB_FILE)
    spec = spec_with(adsl_vars=[v("USUBJID", origin=PRED), v("BMIBL", "float")])
    (specs / "study.yaml").write_text(yaml.safe_dump({
        "study": spec.study.model_dump(exclude_none=True),
        "standards": [s.model_dump(exclude_none=True) for s in spec.standards]}))
    (specs / "adam" / "adsl.yaml").write_text(yaml.safe_dump(
        spec.dataset("ADSL").model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)))
    (specs / "plans" / "adsl.yaml").write_text(yaml.safe_dump({
        "dataset": "ADSL", "study_verbs": ["../verbs/bmi.py"],
        "source": {"dataset": "DM", "keep": ["USUBJID"], "working": ["W", "H"]},
        "steps": [{"verb": "derive_var_study_bmi", "weight": "W", "height": "H"}]}))
    assert "ADSL" in load_specs(specs).datasets
    log = RunLog("adam", quiet=True)
    load_spec(Paths(out=tmp_path / "out", specs=specs), log)
    text = "\n".join(log.lines)
    digest = sha256_file(specs / "verbs" / "bmi.py")
    assert "study verb file" in text and digest in text and "derive_var_study_bmi" in text
    assert study_verb_files(specs / "plans") == [{"plan": "adsl.yaml", "file": "../verbs/bmi.py", "sha256": digest}]


def test_a_derived_variable_needs_a_step_or_a_spec_method(tmp_path: Path) -> None:
    from cdisc_pipe.adam.plan import check_methods

    specs = write_plans(tmp_path, ADSL_PLAN)
    spec = spec_with()
    plans = load_plans(specs / "plans", spec)
    assert check_methods(attach_plan_methods(spec, plans)) == []
    # without the plan, every Derived variable lacks a method (AGE etc. are predecessors: no method needed)
    missing = [p.entry for p in check_methods(spec)]
    assert missing == [f"variables[{i}:{x.name}]" for i, x in enumerate(ADSL_VARS) if x.origin.type == "Derived"]


def test_several_records_to_merge_without_a_mode_is_an_input_error(tmp_path: Path) -> None:
    plan = {"dataset": "ADSL", "source": {"dataset": "DM", "keep": ["STUDYID", "USUBJID"]},
            "steps": [{"verb": "derive_vars_merged", "dataset_add": "EX", "new_vars": {"_X": "EXSTDTC"}}]}
    specs = write_plans(tmp_path, plan)
    spec = spec_with(adsl_vars=[v("STUDYID", origin=PRED), v("USUBJID", origin=PRED)])
    with pytest.raises(InputError) as exc:  # EX has two records for T1-01: which one?
        build_adam({"DM": DM, "EX": EX}, spec, specs / "settings")
    (p,) = exc.value.problems
    assert p.entry == "steps[0:derive_vars_merged]" and "several records per USUBJID" in p.message
    assert "order and mode" in p.hint


def test_a_study_verb_file_runs_once_per_content(tmp_path: Path) -> None:
    spec = spec_with(adsl_vars=[v("USUBJID", origin=PRED), v("BMIBL", "float")])
    plan = {"dataset": "ADSL", "study_verbs": ["bmi.py"], "source": {"dataset": "DM", "keep": ["USUBJID"],
                                                                     "working": ["W", "H"]},
            "steps": [{"verb": "derive_var_study_bmi", "weight": "W", "height": "H"}]}
    specs = write_plans(tmp_path, plan)
    runs = tmp_path / "runs.txt"
    code = STUDY_VERB_FILE + f"\nwith open({str(runs)!r}, 'a') as fh:\n    fh.write('ran\\n')\n"
    (specs / "plans" / "bmi.py").write_text(code)
    load_plans(specs / "plans", spec)
    load_plans(specs / "plans", spec)  # the specs and the ADaM stage both load the plans
    assert runs.read_text() == "ran\n"
    (specs / "plans" / "bmi.py").write_text(code + "# changed\n")  # new content: run again
    load_plans(specs / "plans", spec)
    assert runs.read_text() == "ran\nran\n"


def test_independent_groups_of_the_bundled_plans():
    from cdisc_pipe import paths as P
    from cdisc_pipe.adam import _dependency_order, _independent_groups
    from cdisc_pipe.adam.plan import load_plans
    from cdisc_pipe.spec import load_specs

    spec = load_specs(P.default_specs())
    plans = load_plans(P.default_specs() / "plans", spec)
    order = _dependency_order(plans)
    first, groups = _independent_groups(order, plans)
    # ADSL reads no ADaM dataset; ADTTE reads ADRS, so they go together; the others stand alone
    assert first == ["ADSL"]
    assert ["ADRS", "ADTTE"] in groups and sorted(n for g in groups for n in g) == sorted(order[1:])
    assert all(len(g) == 1 for g in groups if g != ["ADRS", "ADTTE"])


def test_adam_derived_in_two_processes_equals_one_process(bundled_run, monkeypatch):
    """Every dataset group to either process (forced: the bundled study is too small to split)
    gives the same datasets and the same findings, in the same order."""
    import cdisc_pipe.adam as A
    from cdisc_pipe import parallel
    from cdisc_pipe import paths as P
    from cdisc_pipe.adam import build_adam, read_sdtm
    from cdisc_pipe.spec import load_specs

    spec = load_specs(P.default_specs())
    sdtm = read_sdtm(bundled_run / "sdtm")
    one = build_adam(sdtm, spec, P.default_specs() / "settings")
    pids: set[int] = set()

    def forced(fn, sizes, **kw):  # every group to the side it would get with any records at all
        out = parallel.map_shared(lambda key: (fn(key), os.getpid()), sizes, minimum=0, **kw)
        pids.update(p for _, p in out.values())
        return {k: v for k, (v, _) in out.items()}
    monkeypatch.setattr(A, "map_shared", forced)
    two = build_adam(sdtm, spec, P.default_specs() / "settings")
    if parallel.fork_context() is not None and parallel.cores() >= 2:
        assert len(pids) == 2
    assert list(two.datasets) == list(one.datasets)
    for name, df in one.datasets.items():
        pd.testing.assert_frame_equal(two.datasets[name], df)
    assert two.findings == one.findings


def test_adam_consuming_the_sdtm_frames_gives_the_same_datasets(bundled_run, monkeypatch):
    """build_adam(consume=True) empties the caller's dict and lets each SDTM dataset go once no
    plan still to derive in the process may read it; the datasets and findings are the same, in
    one process and in two (every group forced to the side it would get)."""
    import cdisc_pipe.adam as A
    from cdisc_pipe import parallel
    from cdisc_pipe import paths as P
    from cdisc_pipe.adam import build_adam, read_sdtm
    from cdisc_pipe.adam import plan as plan_module
    from cdisc_pipe.spec import load_specs

    spec = load_specs(P.default_specs())
    sdtm = read_sdtm(bundled_run / "sdtm")
    one = build_adam(sdtm, spec, P.default_specs() / "settings")
    released: list[str] = []
    real = plan_module.run_plan

    def spy(plan, frames, release_source=False):
        if release_source:
            released.append(plan.source.dataset)
        return real(plan, frames, release_source)
    monkeypatch.setattr(plan_module, "run_plan", spy)
    monkeypatch.setenv(parallel.PROCESSES_ENV, "1")
    given = dict(sdtm)
    seq = build_adam(given, spec, P.default_specs() / "settings", consume=True)
    assert given == {}
    # dependency order ADSL ADAE ADECOG ADEX ADLB ADPC ADPE ADPP ADRS ADTTE; a plan's source goes
    # when neither its steps nor a later plan may read it: AE (ADSL read it before), PC, PE, PP,
    # and RS with ADRS (the second plan starting from it); never DM (ADSL's steps read it), EX
    # (ADPC's and ADPP's steps read it), LB (ADRS's steps read it after ADLB)
    assert released == ["AE", "PC", "PE", "PP", "RS"]
    monkeypatch.delenv(parallel.PROCESSES_ENV)

    def forced(fn, sizes, **kw):
        return parallel.map_shared(fn, sizes, minimum=0, **kw)
    monkeypatch.setattr(A, "map_shared", forced)
    two = build_adam(dict(sdtm), spec, P.default_specs() / "settings", consume=True)
    for result in (seq, two):
        assert list(result.datasets) == list(one.datasets)
        for name, df in one.datasets.items():
            pd.testing.assert_frame_equal(result.datasets[name], df)
        assert result.findings == one.findings


def test_a_dataset_named_in_any_step_argument_may_be_read():
    from pydantic import BaseModel

    from cdisc_pipe.adam.plan import _named_datasets

    class Event(BaseModel):
        dataset: str
        date: str

    class Args(BaseModel):
        verb: str
        dataset_add: str
        supp_dataset: str | None = None
        population_dataset: str = "adsl"
        events: list[Event]
        named: dict[str, Event]
        domain: str  # a prefix, not a dataset read

    step = Args(verb="v", dataset_add="ae", supp_dataset="SUPPAE", events=[Event(dataset="DS", date="DSSTDTC")],
                named={"death": Event(dataset="dd", date="DDDTC")}, domain="LB")
    assert _named_datasets(step) == {"AE", "SUPPAE", "ADSL", "DS", "DD"}
