"""Shared derivations on literal frames: --SEQ, EPOCH, VISITNUM, --LOBXFL, --NRIND, SE."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdisc_pipe.sdtm.algorithms import Findings
from cdisc_pipe.sdtm.derive import (
    derive_var_epoch, derive_var_lobxfl, derive_var_nrind, derive_var_seq, derive_var_visitnum, first_last,
)
from cdisc_pipe.sdtm.design import TrialDesign, build_se, build_ta, build_ts, build_tv
from cdisc_pipe.sdtm.mapping import Baseline


def t(*v):
    return pd.Series(list(v), dtype="str")


def test_seq_follows_keys_and_is_stable():
    df = pd.DataFrame({"USUBJID": t("B", "A", "A", "A"), "XXSTDTC": t("2024-01-02", "2024-01-03", "2024-01-01", "2024-01-01"),
                       "XXTERM": t("x", "y", "z", "a")})
    out = derive_var_seq(df, "XXSEQ", ["STUDYID", "USUBJID", "XXSTDTC", "XXSEQ"])
    # A: 01-01 (z, then a: tie keeps source order), 01-03; B: 1
    assert out[["USUBJID", "XXTERM", "XXSEQ"]].values.tolist() == [["A", "z", 1.0], ["A", "a", 2.0], ["A", "y", 3.0], ["B", "x", 1.0]]
    again = derive_var_seq(df.iloc[::-1].iloc[::-1], "XXSEQ", ["USUBJID", "XXSTDTC"])
    assert again["XXSEQ"].tolist() == out["XXSEQ"].tolist()


SE = pd.DataFrame({"USUBJID": t("A", "A", "A"), "SESTDTC": t("2024-03-01", "2024-03-10T09:00", "2024-03-15T09:00"),
                   "EPOCH": t("SCREENING", "TREATMENT", "TREATMENT")})


def test_epoch_from_se_by_date():
    df = pd.DataFrame({"USUBJID": t("A", "A", "A", "A", "A", "B"),
                       "XXDTC": t("2024-02-28", "2024-03-09", "2024-03-10T08:00", "2024-03", "2025-01-01", "2024-03-12")})
    # before the first element: none; 08:00 on the LD day, before the 09:00 first dose: still
    # SCREENING; partial date: none; after the last start: last epoch; subject without SE: none
    out = derive_var_epoch(df, SE, "XXDTC")
    assert pd.isna(out.iloc[0]) and out.iloc[1] == "SCREENING" and out.iloc[2] == "SCREENING"
    # without a time, a record on the day an element starts belongs to the new element
    assert derive_var_epoch(df.assign(XXDTC=t(*["2024-03-10"] * 6)), SE, "XXDTC").iloc[0] == "TREATMENT"
    assert pd.isna(out.iloc[3]) and out.iloc[4] == "TREATMENT" and pd.isna(out.iloc[5])


TV = pd.DataFrame({"VISITNUM": [1.0, 2.0, 3.0], "VISIT": ["SCREENING", "DAY 1", "DAY 8"]})
ALIASES = {"SCR": "SCREENING", "D1": "DAY 1", "D8": "DAY 8", "SCREENING": "SCREENING"}


def test_unscheduled_visits_numbered_across_datasets():
    lb = pd.DataFrame({"USUBJID": t("A", "A", "A", "A", "A"), "V": t("SCR", "D1", "UNS01", "UNS02", "ZZ"),
                       "LBDTC": t("2024-01-01", "2024-01-10", "2024-01-12T08:00", "2024-01-13", "2024-01-14")})
    vs = pd.DataFrame({"USUBJID": t("A", "A"), "V": t("UNS01", "D8"), "VSDTC": t("2024-01-12", "2024-01-17")})
    fnd = Findings()
    out = derive_var_visitnum({"LB": (lb, "V", "LBDTC", "UNS"), "VS": (vs, "V", "VSDTC", "UNS")}, TV, ALIASES, fnd)
    # 12 JAN (same day in LB and VS) -> 2.01 in both; 13 JAN -> 2.02; unknown 'ZZ' kept, no number
    assert out["LB"]["VISITNUM"].tolist()[:4] == [1.0, 2.0, 2.01, 2.02]
    assert out["LB"]["VISIT"].tolist()[:4] == ["SCREENING", "DAY 1", "UNSCHEDULED 2.01", "UNSCHEDULED 2.02"]
    assert np.isnan(out["LB"]["VISITNUM"].iloc[4]) and out["LB"]["VISIT"].iloc[4] == "ZZ"
    assert out["VS"]["VISITNUM"].tolist() == [2.01, 3.0]
    assert [(f.rule, f.value) for f in fnd.items] == [("SDTM.VISIT.UNKNOWN", "ZZ")]


def test_lobxfl_reference_groups_and_time_rule():
    dm = pd.DataFrame({"USUBJID": t("A"), "RFSTDTC": t("2024-03-15T09:00"), "RFXSTDTC": t("2024-03-10T09:00")})
    df = pd.DataFrame({
        "USUBJID": t(*["A"] * 7),
        "LBCAT": t("CHEM", "CHEM", "CHEM", "DISEASE", "DISEASE", "DISEASE", "CHEM"),
        "LBTESTCD": t("ALT", "ALT", "ALT", "MCPROT", "MCPROT", "MCPROT", "AST"),
        "LBORRES": t("10", "12", "14", "1.1", "1.2", None, "20"),
        "LBDTC": t("2024-03-01", "2024-03-10T08:00", "2024-03-11", "2024-03-12", "2024-03-15T08:59", "2024-03-15T08:00",
                   "2024-03-10"),
    })
    rule = Baseline.model_validate({"reference": "RFXSTDTC", "by": ["LBTESTCD"],
                                    "groups": [{"where": [{"field": "LBCAT", "op": "eq", "value": "DISEASE"}],
                                                "reference": "RFSTDTC"}]})
    out = derive_var_lobxfl(df, dm, rule, "LB", ["LBLOBXFL"])
    # ALT: 08:00 on LD day (before 09:00) is the last before LD; MCPROT: 08:59 on infusion day (the
    # 08:00 one has no result); AST: date only on the LD day counts as pre-dose
    assert out["LBLOBXFL"].fillna("").tolist() == ["", "Y", "", "", "Y", "", "Y"]


def test_lobxfl_reference_is_data_any_dm_variable_or_the_record_per_period():
    """The baseline reference is whatever variable the mapping names: here a study's own DM date
    (RFICDTC) and, for a crossover, each period's own reference on the record (one baseline per
    period with EPOCH in ``by``)."""
    dm = pd.DataFrame({"USUBJID": t("A"), "RFICDTC": t("2024-01-05")})
    df = pd.DataFrame({"USUBJID": t("A", "A", "A"), "VSTESTCD": t("SYSBP", "SYSBP", "SYSBP"),
                       "VSORRES": t("120", "125", "130"), "VSDTC": t("2024-01-01", "2024-01-04", "2024-01-06")})
    out = derive_var_lobxfl(df, dm, Baseline.model_validate({"reference": "RFICDTC", "by": ["VSTESTCD"]}), "VS",
                            ["VSBLFL"])
    assert out["VSBLFL"].fillna("").tolist() == ["", "Y", ""]
    # a reference variable the DM does not have gives no baseline (no guess)
    none = derive_var_lobxfl(df, dm, Baseline.model_validate({"reference": "RFXSTDTC", "by": ["VSTESTCD"]}), "VS",
                             ["VSBLFL"])
    assert none["VSBLFL"].isna().all()
    cross = pd.DataFrame({"USUBJID": t("A", "A", "A", "A"), "VSTESTCD": t("SYSBP", "SYSBP", "SYSBP", "SYSBP"),
                          "EPOCH": t("PERIOD 1", "PERIOD 1", "PERIOD 2", "PERIOD 2"),
                          "VSORRES": t("120", "118", "122", "119"),
                          "VSDTC": t("2024-01-01T08:00", "2024-01-01T11:00", "2024-02-01T08:00", "2024-02-01T11:00"),
                          "VSRFTDTC": t("2024-01-01T10:00", "2024-01-01T10:00", "2024-02-01T10:00", "2024-02-01T10:00")})
    rule = Baseline.model_validate({"reference": "VSRFTDTC", "source": "record", "by": ["VSTESTCD", "EPOCH"]})
    assert derive_var_lobxfl(cross, dm, rule, "VS", ["VSBLFL"])["VSBLFL"].fillna("").tolist() == ["Y", "", "Y", ""]


def test_nrind():
    df = pd.DataFrame({"LBSTRESN": [1.0, 5.0, 9.0, np.nan, 5.0], "LBSTNRLO": [2.0, 2.0, 2.0, 2.0, np.nan],
                       "LBSTNRHI": [8.0, 8.0, 8.0, 8.0, np.nan]})
    out = derive_var_nrind(df, "LB")
    assert out.tolist()[:3] == ["LOW", "NORMAL", "HIGH"] and out.iloc[3:].isna().all()


def test_first_last_of_iso_values():
    df = pd.DataFrame({"USUBJID": t("A", "A", "B"), "D": t("2024-03-02", "2024-03-01T10:00", None)})
    assert first_last(df, "D", "first").to_dict() == {"A": "2024-03-01T10:00"}
    assert first_last(df, "D", "last").to_dict() == {"A": "2024-03-02"}


DESIGN = TrialDesign.model_validate({
    "arms": [{"armcd": "DL1", "arm": "DL1: low", "dose": 1.0}],
    "elements": [
        {"etcd": "SCRN", "element": "Screening", "epoch": "SCREENING", "testrl": "consent", "start": {"variable": "RFICDTC"}},
        {"etcd": "LD", "element": "LD", "epoch": "TREATMENT", "testrl": "LD", "start": {"variable": "RFXSTDTC"}},
        {"etcd": "FU", "element": "Follow-up", "epoch": "FOLLOW-UP", "testrl": "day 29",
         "start": {"variable": "RFSTDTC", "offset_days": 28}},
    ],
    "visits": [{"visitnum": 1, "visit": "SCREENING"}, {"visitnum": 2, "visit": "DAY 7", "visitdy": 8}],
    "ts": [{"tsparmcd": "SSTDTC", "tsparm": "Study Start Date", "derive": "FIRST_RFICDTC"},
           {"tsparmcd": "TTYPE", "tsparm": "Trial Type", "tsval": "SAFETY"},
           {"tsparmcd": "TTYPE", "tsparm": "Trial Type", "tsval": "EFFICACY"},
           {"tsparmcd": "DCUTDTC", "tsparm": "Data Cutoff Date"}],
})


def test_se_ta_tv_ts_from_design():
    dm = pd.DataFrame({"USUBJID": t("A", "B"), "RFICDTC": t("2024-01-01", "2024-01-05"),
                       "RFXSTDTC": t("2024-01-20T09:00", None), "RFSTDTC": t("2024-01-25T10:00", None),
                       "RFPENDTC": t("2024-06-01", "2024-01-30")})
    se = build_se(DESIGN, "S1", dm, {})
    a = se[se["USUBJID"] == "A"]
    # FU starts 25 JAN + 28 days = 22 FEB; last element ends at RFPENDTC
    assert a["SESTDTC"].tolist() == ["2024-01-01", "2024-01-20T09:00", "2024-02-22"]
    assert a["SEENDTC"].tolist() == ["2024-01-20T09:00", "2024-02-22", "2024-06-01"]
    assert se.loc[se["USUBJID"] == "B", "ETCD"].tolist() == ["SCRN"]
    assert build_ta(DESIGN, "S1")["TAETORD"].tolist() == [1.0, 2.0, 3.0]
    assert build_tv(DESIGN, "S1")["VISITDY"].tolist()[1] == 8.0
    ts = build_ts(DESIGN, "S1", dm)
    assert ts.loc[ts["TSPARMCD"] == "SSTDTC", "TSVAL"].tolist() == ["2024-01-01"]
    assert ts.loc[ts["TSPARMCD"] == "TTYPE", "TSSEQ"].tolist() == [1.0, 2.0]
    # no value: null flavour instead of an empty parameter
    assert ts.loc[ts["TSPARMCD"] == "DCUTDTC", "TSVALNF"].tolist() == ["UNK"]
