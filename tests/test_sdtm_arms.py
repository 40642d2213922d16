"""Actual arm (ACTARMCD/ACTARM/ARMNRS) by configurable algorithms: nearest dose, treatment sequence."""

from __future__ import annotations

import pandas as pd
import pytest

from cdisc_pipe.sdtm.algorithms import Findings
from cdisc_pipe.sdtm.arms import check_actual_arm, derive_actual_arm, received_sequence
from cdisc_pipe.sdtm.design import TrialDesign
from cdisc_pipe.sdtm.mapping import ActualArm

ELEMENTS = [{"etcd": "SCRN", "element": "Screening", "epoch": "SCREENING", "testrl": "consent",
             "start": {"variable": "RFICDTC"}}]
VISITS = [{"visitnum": 1, "visit": "SCREENING"}]


def design(arms: list[dict]) -> TrialDesign:
    return TrialDesign.model_validate({"arms": arms, "elements": ELEMENTS, "visits": VISITS})


def vals(s: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in s]


def dm(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["USUBJID", "ARMCD"]).astype("str").assign(ARMNRS=None)


DOSE = design([{"armcd": "LOW", "arm": "Low dose", "dose": 1.0}, {"armcd": "HIGH", "arm": "High dose", "dose": 3.0}])


def test_dose_nearest_within_tolerance():
    ex = pd.DataFrame({"USUBJID": ["A", "B", "B", "C", "E"], "EXCAT": ["X", "X", "X", "X", "Y"],
                       "EXDOSE": [1.1, 1.5, 1.4, 2.0, 3.0]})
    aa = ActualArm.model_validate({"method": "dose", "where": [{"field": "EXCAT", "op": "eq", "value": "X"}],
                                   "tolerance": 0.2})
    f = Findings()
    out = derive_actual_arm(dm([("A", "LOW"), ("B", "LOW"), ("C", "HIGH"), ("D", "LOW"), ("E", "LOW"), ("F", None)]),
                            aa, DOSE, {"EX": ex}, f)
    got = out.set_index("USUBJID")
    # A 1.1 -> LOW; B total 2.9 -> HIGH (actual differs from planned); C 2.0 is 33 % from 3.0 -> unplanned;
    # D no record, E only records outside `where` -> not treated; F no planned arm
    assert vals(got["ACTARMCD"]) == ["LOW", "HIGH", None, None, None, None]
    assert vals(got["ACTARM"])[:2] == ["Low dose", "High dose"]
    assert vals(got["ARMNRS"]) == [None, None, "UNPLANNED TREATMENT", "ASSIGNED, NOT TREATED",
                                      "ASSIGNED, NOT TREATED", "NOT ASSIGNED"]
    unplanned = [x for x in f.items if x.rule == "SDTM.ARM.UNPLANNED"]
    assert len(unplanned) == 1 and unplanned[0].value == "2.0"  # subject C's total dose
    assert "CAR" not in unplanned[0].message and "EXDOSE" in unplanned[0].message


CROSSOVER = design([{"armcd": "AB", "arm": "Test then Reference", "sequence": ["T", "R"]},
                    {"armcd": "BA", "arm": "Reference then Test", "sequence": ["R", "T"]}])
SEQ = ActualArm.model_validate({"method": "sequence", "treatment": "EXTRT", "order_by": "EXSTDTC",
                                "codes": {"DRUG X 10 MG": "T", "PLACEBO": "R"}})


def crossover_ex() -> pd.DataFrame:
    rows = [
        ("S1", "DRUG X 10 MG", "2024-01-01"), ("S1", "DRUG X 10 MG", "2024-01-02"),  # two doses in period 1
        ("S1", "PLACEBO", "2024-02-01"), ("S1", "PLACEBO", "2024-02-02"),
        ("S2", "PLACEBO", "2024-01-03"), ("S2", "DRUG X 10 MG", "2024-02-03"),      # BA completer
        ("S3", "DRUG X 10 MG", "2024-01-05"),                                       # stopped after period 1
        ("S4", "PLACEBO", "2024-02-05"), ("S4", "DRUG X 20 MG", "2024-01-05"),     # not a planned treatment (unsorted)
        ("S5", "DRUG X 10 MG", "2024-01-05"), ("S5", "PLACEBO", "2024-02-05"),
        ("S5", "DRUG X 10 MG", "2024-03-05"),                                       # T R T: unplanned
        ("S6", "PLACEBO", "2024-01-05"),                                            # planned AB, got R only
    ]
    return pd.DataFrame(rows, columns=["USUBJID", "EXTRT", "EXSTDTC"])


def test_sequence_crossover_completers_and_dropouts():
    f = Findings()
    subjects = dm([("S1", "AB"), ("S2", "BA"), ("S3", "AB"), ("S4", "AB"), ("S5", "AB"), ("S6", "AB"), ("S7", "BA")])
    out = derive_actual_arm(subjects, SEQ, CROSSOVER, {"EX": crossover_ex()}, f).set_index("USUBJID")
    assert vals(out["ACTARMCD"]) == ["AB", "BA", "AB", None, None, "BA", None]
    assert vals(out["ACTARM"])[:2] == ["Test then Reference", "Reference then Test"]
    assert vals(out["ARMNRS"]) == [None, None, None, "UNPLANNED TREATMENT", "UNPLANNED TREATMENT", None,
                                      "ASSIGNED, NOT TREATED"]
    # the finding names the sequence received (S4, S5)
    assert {x.value for x in f.items if x.rule == "SDTM.ARM.UNPLANNED"} == {"DRUG X 20 MG-R", "T-R-T"}


def test_sequence_partial_unplanned_and_period_variable():
    strict = SEQ.model_copy(update={"partial": "unplanned"})
    out = derive_actual_arm(dm([("S3", "AB"), ("S1", "AB")]), strict, CROSSOVER, {"EX": crossover_ex()}, Findings())
    assert vals(out["ACTARMCD"]) == [None, "AB"]
    # with a period variable two periods of the same treatment stay two periods (R, R is not R)
    ex = pd.DataFrame({"USUBJID": ["P1", "P1", "P1"], "EXTRT": ["R", "R", "R"],
                       "EXSTDTC": ["2024-01-01", "2024-01-02", "2024-02-01"], "EXGRPID": ["P1", "P1", "P2"]})
    aa = ActualArm.model_validate({"method": "sequence", "period": "EXGRPID"})
    seq = received_sequence(aa, {"EX": ex})
    assert seq["TRT"].tolist() == ["R", "R"] and seq["POS"].tolist() == [0, 1]
    aa_no_period = ActualArm.model_validate({"method": "sequence"})
    assert received_sequence(aa_no_period, {"EX": ex})["TRT"].tolist() == ["R"]


@pytest.mark.parametrize("method, arms, entry", [
    ("dose", [{"armcd": "AB", "arm": "x", "sequence": ["T", "R"]}], "arms[0].dose"),
    ("sequence", [{"armcd": "L", "arm": "x", "dose": 1.0}], "arms[0].sequence"),
])
def test_design_must_give_what_the_method_needs(method, arms, entry):
    problems = check_actual_arm(ActualArm(method=method), design(arms), "dm.yaml", "trial_design.yaml")
    assert [p.entry for p in problems] == [entry]


def test_no_study_words_in_the_generic_packages():
    """Issue 14 done-when: the bundled study's words are not in sdtm/, nca/, validate/ (the study's
    decisions live in its mappings and settings)."""
    import re
    from pathlib import Path

    import cdisc_pipe

    root = Path(cdisc_pipe.__file__).parent
    pattern = re.compile(r"CAR-T|BCMA|lymphodeplet")
    hits = [f"{p.relative_to(root)}:{i}" for pkg in ("sdtm", "nca", "validate") for p in sorted((root / pkg).rglob("*"))
            if p.suffix in (".py", ".yaml", ".j2") for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if pattern.search(line)]
    assert hits == []


def test_crossover_ta_and_se_follow_each_arms_element_order():
    from cdisc_pipe.errors import InputError
    from cdisc_pipe.sdtm.design import build_se, build_ta, load_design

    raw = {
        "arms": [{"armcd": "AB", "arm": "Test then Reference", "sequence": ["T", "R"], "elements": ["SCRN", "TEST", "REF"]},
                 {"armcd": "BA", "arm": "Reference then Test", "sequence": ["R", "T"], "elements": ["SCRN", "REF", "TEST"]}],
        "elements": [
            {"etcd": "SCRN", "element": "Screening", "epoch": "SCREENING", "testrl": "consent", "start": {"variable": "RFICDTC"}},
            {"etcd": "TEST", "element": "Test", "epoch": "TREATMENT", "testrl": "first test dose",
             "start": {"dataset": "EX", "variable": "EXSTDTC", "where": [{"field": "EXTRT", "op": "eq", "value": "T"}]}},
            {"etcd": "REF", "element": "Reference", "epoch": "TREATMENT", "testrl": "first reference dose",
             "start": {"dataset": "EX", "variable": "EXSTDTC", "where": [{"field": "EXTRT", "op": "eq", "value": "R"}]}},
        ],
        "visits": VISITS,
    }
    td = load_design(raw, "trial_design.yaml")
    ta = build_ta(td, "S")
    assert ta.loc[ta["ARMCD"] == "BA", "ETCD"].tolist() == ["SCRN", "REF", "TEST"]
    assert ta.loc[ta["ARMCD"] == "BA", "TAETORD"].tolist() == [1.0, 2.0, 3.0]
    dmf = pd.DataFrame({"USUBJID": ["S1", "S2"], "ARMCD": ["AB", "BA"], "ACTARMCD": ["AB", "BA"],
                        "RFICDTC": ["2024-01-01", "2024-01-01"], "RFPENDTC": ["2024-03-01", "2024-03-01"]})
    ex = pd.DataFrame({"USUBJID": ["S1", "S1", "S2", "S2"], "EXTRT": ["T", "R", "R", "T"],
                       "EXSTDTC": ["2024-01-10", "2024-02-10", "2024-01-10", "2024-02-10"]})
    se = build_se(td, "S", dmf, {"EX": ex})
    s2 = se[se["USUBJID"] == "S2"]
    assert s2["ETCD"].tolist() == ["SCRN", "REF", "TEST"] and s2["TAETORD"].tolist() == [1.0, 2.0, 3.0]
    assert s2["SEENDTC"].tolist() == ["2024-01-10", "2024-02-10", "2024-03-01"]
    bad = dict(raw, arms=[dict(raw["arms"][0], elements=["SCRN", "WASHOUT"])])
    with pytest.raises(InputError, match="arms\\[0\\].elements\\[1\\]"):
        load_design(bad, "trial_design.yaml")


# ------------------------------------------------------------------------------------------------
# method record: the arm recorded on an allocation record

ALLOC = ActualArm.model_validate({"method": "record", "dataset": "DS", "variable": "DSTERM",
                                  "where": [{"field": "DSDECOD", "op": "eq", "value": "RANDOMIZED"}],
                                  "codes": {"SEQUENCE AB": "AB", "SEQUENCE BA": "BA"}})


def test_record_arm_from_allocation_records():
    ds = pd.DataFrame({
        "USUBJID": ["S1", "S2", "S3", "S3", "S4", "S4", "S5", "S6", "S7"],
        "DSDECOD": ["RANDOMIZED"] * 6 + ["RANDOMIZED", "INFORMED CONSENT OBTAINED", "RANDOMIZED"],
        "DSTERM": ["SEQUENCE AB", "SEQUENCE BA", "SEQUENCE AB", "SEQUENCE BA", "SEQUENCE AB", "SEQUENCE AB",
                   "SEQUENCE CD", "SEQUENCE AB", "BA"]})
    f = Findings()
    subjects = dm([("S1", "AB"), ("S2", "AB"), ("S3", "AB"), ("S4", "BA"), ("S5", "AB"), ("S6", "AB"), ("S7", "BA"),
                   ("S8", "AB")])
    out = derive_actual_arm(subjects, ALLOC, CROSSOVER, {"DS": ds}, f).set_index("USUBJID")
    # S1 AB; S2 planned AB but allocated BA (actual differs from planned); S3 two different values ->
    # unplanned; S4 the same value (AB) twice -> AB; S5 'SEQUENCE CD' is in no codes
    # entry and no arm -> unplanned (SDTM.ARM.UNKNOWN); S6 only a record failing where -> not treated;
    # S7 'BA' is not in codes but is an ARMCD -> BA; S8 no record -> not treated
    assert vals(out["ACTARMCD"]) == ["AB", "BA", None, "AB", None, None, "BA", None]
    assert vals(out["ARMNRS"]) == [None, None, "UNPLANNED TREATMENT", None, "UNPLANNED TREATMENT",
                                   "ASSIGNED, NOT TREATED", None, "ASSIGNED, NOT TREATED"]
    [unplanned] = [x for x in f.items if x.rule == "SDTM.ARM.UNPLANNED"]
    assert unplanned.value == "AB-BA" and unplanned.extra["count"] == 1
    [unknown] = [x for x in f.items if x.rule == "SDTM.ARM.UNKNOWN" and x.variable == "ACTARMCD"]
    assert unknown.value == "SEQUENCE CD" and unknown.severity == "Error" and "actual_arm.codes" in unknown.message


def test_record_arm_checks():
    with pytest.raises(ValueError, match="needs variable"):
        ActualArm.model_validate({"method": "record", "dataset": "DS"})
    with pytest.raises(ValueError, match="only used by method record"):
        ActualArm.model_validate({"method": "dose", "variable": "DSTERM"})
    aa = ALLOC.model_copy(update={"codes": {"SEQUENCE AB": "AB", "SEQUENCE XY": "XY"}})
    problems = check_actual_arm(aa, CROSSOVER, "dm.yaml", "trial_design.yaml")
    assert [(p.entry, p.value) for p in problems] == [("actual_arm.codes.SEQUENCE XY", "XY")]
    # arms need neither dose nor sequence for method record
    assert check_actual_arm(ALLOC, design([{"armcd": "AB", "arm": "x"}, {"armcd": "BA", "arm": "y"}]), "d", "t") == []


def test_a_period_derived_after_the_arm_is_refused():
    # EPOCH comes from SE, which needs the actual arm: reading it would find no period at all
    aa = ActualArm.model_validate({"method": "sequence", "period": "EPOCH"})
    problems = check_actual_arm(aa, CROSSOVER, "dm.yaml", "trial_design.yaml")
    assert [(p.entry, p.value) for p in problems] == [("actual_arm.period", "EPOCH")]


def test_a_treatment_variable_the_mapping_lacks_is_an_input_error_not_nobody_treated():
    from cdisc_pipe.errors import InputError

    ex = crossover_ex().drop(columns=["EXTRT"])
    with pytest.raises(InputError) as exc:
        derive_actual_arm(dm([("S1", "AB")]), SEQ, CROSSOVER, {"EX": ex}, Findings())
    assert "EX has no EXTRT" in str(exc.value)
