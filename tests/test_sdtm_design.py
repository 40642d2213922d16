"""Trial design: each arm's own element order, epoch and start rule at each place (TA, SE)."""

from __future__ import annotations

import pandas as pd
import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.sdtm.design import build_se, build_ta, load_design

# A two-period crossover, elements named by treatment: where A sits decides its epoch.
DESIGN = {
    "arms": [
        {"armcd": "AB", "arm": "Test then Reference",
         "elements": ["SCRN", {"etcd": "A", "epoch": "TREATMENT 1", "tabranch": "Randomized to AB"},
                      {"etcd": "WASH", "epoch": "WASHOUT"}, {"etcd": "B", "epoch": "TREATMENT 2"}]},
        {"armcd": "BA", "arm": "Reference then Test",
         "elements": ["SCRN", {"etcd": "B", "epoch": "TREATMENT 1", "tabranch": "Randomized to BA"},
                      {"etcd": "WASH", "epoch": "WASHOUT"}, {"etcd": "A", "epoch": "TREATMENT 2"}]},
    ],
    "elements": [
        {"etcd": "SCRN", "element": "Screening", "epoch": "SCREENING", "testrl": "Informed consent",
         "start": {"dataset": "DM", "variable": "RFICDTC"}},
        {"etcd": "A", "element": "Test", "testrl": "First dose of A",
         "start": {"dataset": "EX", "variable": "EXSTDTC", "where": [{"field": "EXTRT", "op": "eq", "value": "A"}]}},
        {"etcd": "B", "element": "Reference", "testrl": "First dose of B",
         "start": {"dataset": "EX", "variable": "EXSTDTC", "where": [{"field": "EXTRT", "op": "eq", "value": "B"}]}},
        {"etcd": "WASH", "element": "Washout", "testrl": "Day after the first period's dose",
         # the washout starts the day after the FIRST dose, whichever treatment it was
         "start": {"dataset": "EX", "variable": "EXSTDTC", "offset_days": 1}},
    ],
    "visits": [{"visitnum": 1, "visit": "SCREENING"}],
}
DM = pd.DataFrame({"USUBJID": ["S1", "S2", "S3"], "ARMCD": ["AB", "BA", "AB"], "ACTARMCD": ["AB", "BA", None],
                   "RFICDTC": ["2024-01-01", "2024-01-02", "2024-01-03"],
                   "RFPENDTC": ["2024-02-01", "2024-02-02", "2024-01-03"]})
EX = pd.DataFrame({"USUBJID": ["S1", "S1", "S2", "S2"], "EXTRT": ["A", "B", "B", "A"],
                   "EXSTDTC": ["2024-01-08", "2024-01-22", "2024-01-09", "2024-01-23"]})


def test_ta_has_each_arms_epoch_and_branch_at_each_place():
    td = load_design(DESIGN, "trial_design.yaml")
    ta = build_ta(td, "XO1")
    got = ta[["ARMCD", "TAETORD", "ETCD", "EPOCH", "TABRANCH"]].astype(object).where(ta.notna(), None)
    assert got.values.tolist() == [
        ["AB", 1.0, "SCRN", "SCREENING", None], ["AB", 2.0, "A", "TREATMENT 1", "Randomized to AB"],
        ["AB", 3.0, "WASH", "WASHOUT", None], ["AB", 4.0, "B", "TREATMENT 2", None],
        ["BA", 1.0, "SCRN", "SCREENING", None], ["BA", 2.0, "B", "TREATMENT 1", "Randomized to BA"],
        ["BA", 3.0, "WASH", "WASHOUT", None], ["BA", 4.0, "A", "TREATMENT 2", None]]


def test_se_gives_the_same_element_the_epoch_of_the_subjects_arm():
    td = load_design(DESIGN, "trial_design.yaml")
    se = build_se(td, "XO1", DM, {"EX": EX})
    s1 = se[se["USUBJID"] == "S1"][["ETCD", "EPOCH", "SESTDTC", "SEENDTC"]].values.tolist()
    s2 = se[se["USUBJID"] == "S2"][["ETCD", "EPOCH", "SESTDTC", "SEENDTC"]].values.tolist()
    # S1 (AB): A on Jan 8 is TREATMENT 1, washout from Jan 9 (first dose + 1 day), B on Jan 22 TREATMENT 2
    assert s1 == [["SCRN", "SCREENING", "2024-01-01", "2024-01-08"], ["A", "TREATMENT 1", "2024-01-08", "2024-01-09"],
                  ["WASH", "WASHOUT", "2024-01-09", "2024-01-22"], ["B", "TREATMENT 2", "2024-01-22", "2024-02-01"]]
    # S2 (BA): the same element A is TREATMENT 2 here
    assert s2 == [["SCRN", "SCREENING", "2024-01-02", "2024-01-09"], ["B", "TREATMENT 1", "2024-01-09", "2024-01-10"],
                  ["WASH", "WASHOUT", "2024-01-10", "2024-01-23"], ["A", "TREATMENT 2", "2024-01-23", "2024-02-02"]]
    # S3: planned AB, never treated: screening only (its planned arm's order)
    assert se[se["USUBJID"] == "S3"][["ETCD", "TAETORD"]].values.tolist() == [["SCRN", 1.0]]


def test_an_element_without_epoch_needs_one_at_every_place():
    bad = {**DESIGN, "arms": [{**DESIGN["arms"][0], "elements": ["SCRN", "A", "WASH", "B"]}, DESIGN["arms"][1]]}
    with pytest.raises(InputError) as exc:
        load_design(bad, "trial_design.yaml")
    text = str(exc.value)
    assert "element A has no epoch here" in text and "arms[0].elements[1]" in text
    assert "element B has no epoch here" in text and "arms[0].elements[3]" in text
