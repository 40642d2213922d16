"""Keyed and nearest-preceding joins of raw forms, and lookups between SDTM datasets, on small
literal tables of a two-period crossover.  Expected values are worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.sdtm.algorithms import Context, Findings
from cdisc_pipe.sdtm.build import map_dataset
from cdisc_pipe.sdtm.derive import derive_var_lobxfl
from cdisc_pipe.sdtm.lookup import moment, run_lookups
from cdisc_pipe.sdtm.mapping import Baseline, DatasetMapping, Mappings


def table(text: str, **const) -> pd.DataFrame:
    """A literal '|' table as an all-text frame; blank cells are missing; ``__row`` = line + 1."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    head = [h.strip() for h in lines[0].split("|")]
    df = pd.DataFrame([[c.strip() for c in ln.split("|")] for ln in lines[1:]], columns=head)
    for k, v in const.items():
        df[k] = v
    df = df.replace("", np.nan).astype("str")
    df["__row"] = [str(i + 2) for i in range(len(df))]
    return df


def vals(s: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in s]


def by_rule(findings: Findings, rule: str) -> list:
    return [f for f in findings.items if f.rule == rule]


def run_map(mapping: dict, forms: dict[str, pd.DataFrame]):
    m = DatasetMapping.model_validate(mapping)
    findings = Findings()
    used: list[tuple] = []
    frame, trace = map_dataset(m, forms, "XO", Context(m.dataset, {}, {}, findings), None, used)
    t = pd.concat(trace, ignore_index=True) if trace else pd.DataFrame(columns=["form", "source_row", "reason"])
    return frame.sort_values("__row", key=lambda s: s.astype(int)).reset_index(drop=True), findings, t, used


# ------------------------------------------------------------------------------------------------
# raw forms: keyed join (by subject and period, named differently on each side)

PC = table("""
SUBJID|PCPER|PCDAT      |PCTIM
1001  |1    |10 JAN 2024|10:00
1001  |2    |10 FEB 2024|10:00
1002  |1    |11 JAN 2024|11:00
1002  |3    |11 MAR 2024|11:00
1003  |     |12 JAN 2024|10:00
""", SITEID="101")
EX = table("""
SUBJID|PERIOD|EXTRT|EXSTDAT    |EXSTTIM
1001  |1     |A    |10 JAN 2024|08:00
1001  |2     |B    |10 FEB 2024|08:00
1002  |1     |B    |11 JAN 2024|09:00
1002  |1     |B    |12 JAN 2024|09:00
1004  |1     |A    |13 JAN 2024|08:00
""", SITEID="101")

KEYED = {"dataset": "PC",
         "sources": [{"form": "pc", "join": [{"form": "ex", "name": "dose", "by": [{"field": "PCPER", "joined": "PERIOD"}],
                                               "reason": "dose record without a PK sample"}]}],
         "variables": {"PCDTC": {"dtc": {"date": "PCDAT", "time": "PCTIM"}},
                       "PCRFTDTC": {"dtc": {"date": "dose.EXSTDAT", "time": "dose.EXSTTIM"}}}}


def test_keyed_join_by_period_with_different_names():
    frame, findings, trace, used = run_map(KEYED, {"pc": PC, "ex": EX})
    assert vals(frame["PCRFTDTC"]) == [
        "2024-01-10T08:00",   # 1001 period 1 -> ex row 2
        "2024-02-10T08:00",   # 1001 period 2 -> ex row 3
        None,                 # 1002 period 1: ex rows 4 and 5 both match -> none used
        None,                 # 1002 period 3: no ex record
        None,                 # 1003: blank period never matches
    ]
    [many] = by_rule(findings, "SDTM.JOIN.MULTIPLE")
    assert many.severity == "Error" and many.value == "ex rows 4, 5" and many.source_row == 4
    assert many.usubjid == "XO-101-1002"
    [none] = by_rule(findings, "SDTM.JOIN.NOMATCH")
    assert none.severity == "Notice" and none.extra["rows"] == [5, 6]
    # traceability: the tied ex records and the ex record of a subject without samples
    ex_rows = trace[trace["form"] == "ex"].sort_values("source_row")
    assert ex_rows["source_row"].tolist() == [4, 5, 6]
    assert ex_rows["reason"].tolist()[:2] == ["one of several ex records matching a row; none used (SDTM.JOIN.MULTIPLE)"] * 2
    assert ex_rows["reason"].tolist()[2] == "dose record without a PK sample"
    assert used == [("ex", "PC", 2, "joined by subject, PCPER = dose.PERIOD")]


def test_keyed_join_short_form_and_where_on_the_joined_form():
    # by: [PERIOD] (same name both sides) after renaming; where keeps only the later 1002 record
    pc = PC.rename(columns={"PCPER": "PERIOD"})
    m = {**KEYED, "sources": [{"form": "pc", "join": [{"form": "ex", "name": "dose", "by": ["PERIOD"],
                                                       "where": [{"field": "EXSTDAT", "op": "ne", "value": "11 JAN 2024"}]}]}]}
    frame, findings, trace, _ = run_map(m, {"pc": pc, "ex": EX})
    assert vals(frame["PCRFTDTC"])[:3] == ["2024-01-10T08:00", "2024-02-10T08:00", "2024-01-12T09:00"]
    assert not by_rule(findings, "SDTM.JOIN.MULTIPLE")
    # ex row 4 failed where: listed with the join's reason
    assert 4 in trace.loc[trace["form"] == "ex", "source_row"].tolist()


# ------------------------------------------------------------------------------------------------
# raw forms: nearest preceding join

LB = table("""
SUBJID|LBDAT      |LBTIM
1001  |10 JAN 2024|07:00
1001  |10 JAN 2024|
1001  |15 JAN 2024|09:00
1001  |UN JAN 2024|
1002  |20 JAN 2024|12:00
1002  |25 JAN 2024|08:00
""", SITEID="101")
EX2 = table("""
SUBJID|EXTRT|EXSTDAT    |EXSTTIM
1001  |A    |10 JAN 2024|08:00
1001  |A    |12 JAN 2024|
1002  |A    |20 JAN 2024|08:00
1002  |B    |20 JAN 2024|08:00
1002  |A    |UN JAN 2024|
""", SITEID="101")

NEAREST = {"dataset": "LB",
           "sources": [{"form": "lb", "join": [{"form": "ex", "nearest": {"date": {"date": "LBDAT", "time": "LBTIM"},
                                                                           "joined": {"date": "EXSTDAT", "time": "EXSTTIM"}}}]}],
           "variables": {"LBDTC": {"dtc": {"date": "LBDAT", "time": "LBTIM"}},
                         "LBRFTDTC": {"dtc": {"date": "ex.EXSTDAT", "time": "ex.EXSTTIM"}},
                         "LBTRT": {"copy": "ex.EXTRT"}}}


def test_nearest_preceding_join_dates_partial_dates_and_ties():
    frame, findings, _, used = run_map(NEAREST, {"lb": LB, "ex": EX2})
    assert vals(frame["LBRFTDTC"]) == [
        None,                 # 10 JAN 07:00: the only earlier-or-same-day dose is 08:00, later -> none
        "2024-01-10T08:00",   # 10 JAN, no time: compared by date, the 08:00 dose of that day counts
        "2024-01-12",         # 15 JAN 09:00: latest is the 12 JAN dose (no time = from 00:00)
        None,                 # UN JAN 2024 is partial: never compared
        None,                 # 20 JAN 12:00: two doses at 20 JAN 08:00 (ex rows 4, 5) tie -> none used
        None,                 # 25 JAN: the same tie is the latest; the partial dose (row 6) is no candidate
    ]
    [date_row] = [f for f in by_rule(findings, "SDTM.JOIN.DATE") if f.source_file == "lb"]
    assert date_row.value == "UN JAN 2024" and date_row.source_row == 5 and date_row.severity == "Warning"
    [date_ex] = [f for f in by_rule(findings, "SDTM.JOIN.DATE") if f.source_file == "ex"]
    assert date_ex.source_row == 6 and date_ex.value == "UN JAN 2024"
    [many] = by_rule(findings, "SDTM.JOIN.MULTIPLE")
    assert many.value == "ex rows 4, 5" and many.extra["rows"] == [6, 7]
    [none] = by_rule(findings, "SDTM.JOIN.NOMATCH")
    assert none.extra["rows"] == [2]
    assert used == [("ex", "LB", 2, "joined by subject: the latest record on or before the row's date")]


def test_nearest_join_with_where_breaks_the_tie():
    m = {**NEAREST, "sources": [{"form": "lb", "join": [{**NEAREST["sources"][0]["join"][0],
                                                          "where": [{"field": "EXTRT", "op": "eq", "value": "B"}],
                                                          "reason": "not a B dose"}]}]}
    frame, findings, trace, _ = run_map(m, {"lb": LB, "ex": EX2})
    # only ex row 5 (B, 20 JAN 08:00) is a candidate: 1002's two samples take it; 1001 has no B dose
    assert vals(frame["LBRFTDTC"]) == [None, None, None, None, "2024-01-20T08:00", "2024-01-20T08:00"]
    assert vals(frame["LBTRT"])[4:] == ["B", "B"]
    assert not by_rule(findings, "SDTM.JOIN.MULTIPLE")
    reasons = trace[trace["form"] == "ex"].set_index("source_row")["reason"]
    assert reasons[2] == "not a B dose" and reasons[6] == "not a B dose"


def test_join_model_errors():
    with pytest.raises(ValueError, match="extra"):
        DatasetMapping.model_validate({"dataset": "LB", "sources": [{"form": "lb", "join": [{"form": "ex", "on": ["X"]}]}]})


# ------------------------------------------------------------------------------------------------
# lookups between SDTM datasets

EXS = pd.DataFrame({
    "USUBJID": ["S1", "S1", "S1", "S2", "S2", "S3", "S3"],
    "EXTRT": ["DRUG A", "RESCUE", "DRUG B", "DRUG B", "DRUG A", "DRUG A", "DRUG A"],
    "EXSTDTC": ["2024-01-10T08:00", "2024-01-10T09:00", "2024-02-10T08:00", "2024-01", "2024-02-11T09:00",
                "2024-01-12T08:00", "2024-01-12T08:00"],
    "EPOCH": ["TREATMENT 1", "TREATMENT 1", "TREATMENT 2", "TREATMENT 1", "TREATMENT 2", "TREATMENT 1", "TREATMENT 1"],
    "VISITNUM": [2.0, 2.0, 4.0, 2.0, 4.0, 2.0, 3.0],
    "__form": "ex", "__row": ["2", "3", "4", "5", "6", "7", "8"], "__usubjid": ["S1", "S1", "S1", "S2", "S2", "S3", "S3"],
}).astype({"USUBJID": "str", "EXTRT": "str", "EXSTDTC": "str", "EPOCH": "str"})
PCS = pd.DataFrame({
    "USUBJID": ["S1", "S1", "S1", "S2", "S2", "S3"],
    "PCDTC": ["2024-01-10T10:00", "2024-02-11T08:00", "2024-01", "2024-01-20T10:00", "2024-02-11T10:00",
              "2024-01-12T10:00"],
    "VISITNUM": [2.0, 5.0, 2.0, 2.0, 4.0, 2.0],
    "__form": "pc", "__row": ["2", "3", "4", "5", "6", "7"], "__usubjid": ["S1", "S1", "S1", "S2", "S2", "S3"],
}).astype({"USUBJID": "str", "PCDTC": "str"})


def lookups(pc_lookup: list[dict], frames: dict[str, pd.DataFrame] | None = None) -> tuple[pd.DataFrame, Findings]:
    m = Mappings(datasets={"PC": DatasetMapping.model_validate({"dataset": "PC", "lookup": pc_lookup}),
                           "EX": DatasetMapping.model_validate({"dataset": "EX"})},
                 files={"PC": "pc.yaml", "EX": "ex.yaml"})
    f = Findings()
    out = run_lookups(frames or {"PC": PCS, "EX": EXS}, m, f)
    return out["PC"], f


NEAREST_LK = {"dataset": "EX", "where": [{"field": "EXTRT", "op": "in", "value": ["DRUG A", "DRUG B"]}],
              "nearest": {"date": "PCDTC", "other": "EXSTDTC"},
              "copy": {"PCRFTDTC": "EXSTDTC"}, "text": {"PCTPTREF": "{EXTRT} DOSE IN {EPOCH}"}}


def test_lookup_nearest_preceding_dose_with_where():
    pc, f = lookups([NEAREST_LK])
    assert vals(pc["PCRFTDTC"]) == [
        "2024-01-10T08:00",   # S1 10 JAN 10:00: the 09:00 RESCUE record fails where; DRUG A at 08:00
        "2024-02-10T08:00",   # S1 11 FEB: period 2 dose
        None,                 # S1 '2024-01' is partial: not compared (SDTM.LOOKUP.DATE)
        None,                 # S2 20 JAN: its only earlier dose is dated '2024-01' (partial): no candidate
        "2024-02-11T09:00",   # S2 period 2
        None,                 # S3: two DRUG A records at 12 JAN 08:00 -> several, none used
    ]
    assert vals(pc["PCTPTREF"]) == ["DRUG A DOSE IN TREATMENT 1", "DRUG B DOSE IN TREATMENT 2", None, None,
                                    "DRUG A DOSE IN TREATMENT 2", None]
    [many] = by_rule(f, "SDTM.LOOKUP.MULTIPLE")
    assert many.severity == "Error" and many.dataset == "PC" and many.value == "EX ex rows 7, 8" and many.source_row == 7
    dates = {(x.dataset, x.source_row, x.value) for x in by_rule(f, "SDTM.LOOKUP.DATE")}
    assert dates == {("PC", 4, "2024-01"), ("EX", 5, "2024-01")}   # the PC record and the EX record
    [none] = by_rule(f, "SDTM.LOOKUP.NOMATCH")
    assert none.extra["rows"] == [5] and none.severity == "Notice"


def test_lookup_by_keys_needs_a_unique_record_or_a_pick():
    base = {"dataset": "EX", "by": ["EPOCH"], "copy": {"PCRFTDTC": "EXSTDTC"}}
    pc = PCS.assign(EPOCH=["TREATMENT 1", "TREATMENT 2", None, "TREATMENT 1", "TREATMENT 2", "TREATMENT 1"])
    frames = {"PC": pc, "EX": EXS}
    out, f = lookups([base], frames)
    # S1 TREATMENT 1 has DRUG A and RESCUE -> several; S3 has two records -> several; S2's TREATMENT 1 is
    # one record ('2024-01'): copied as it is (keys match, no date compared)
    assert vals(out["PCRFTDTC"]) == [None, "2024-02-10T08:00", None, "2024-01", "2024-02-11T09:00", None]
    assert sorted(x.value for x in by_rule(f, "SDTM.LOOKUP.MULTIPLE")) == ["EX ex rows 2, 3", "EX ex rows 7, 8"]
    # pick: first by EXSTDTC: S1 -> 08:00 (DRUG A); S3's two records tie at the same time -> still several
    out, f = lookups([{**base, "pick": "first", "order_by": "EXSTDTC"}], frames)
    assert vals(out["PCRFTDTC"]) == ["2024-01-10T08:00", "2024-02-10T08:00", None, None, "2024-02-11T09:00", None]
    assert [x.value for x in by_rule(f, "SDTM.LOOKUP.MULTIPLE")] == ["EX ex rows 7, 8"]
    # S2's only TREATMENT 1 record has a partial EXSTDTC: it cannot be ordered, reported
    assert [(x.dataset, x.source_row) for x in by_rule(f, "SDTM.LOOKUP.DATE")] == [("EX", 5)]
    out, _ = lookups([{**base, "pick": "last", "order_by": "EXSTDTC"}], frames)
    assert vals(out["PCRFTDTC"])[0] == "2024-01-10T09:00"      # the RESCUE record is the last


def test_lookup_numeric_keys_and_templates_and_later_lookups_win_where_they_match():
    by_visit = {"dataset": "EX", "by": ["VISITNUM"], "where": [{"field": "EXTRT", "op": "ne", "value": "RESCUE"}],
                "copy": {"PCRFTDTC": "EXSTDTC"}, "text": {"PCTPTREF": "VISIT {VISITNUM} DOSE"}}
    out, _ = lookups([NEAREST_LK, by_visit])
    # VISITNUM 2.0 = 2.0 (numbers); the template shows 2, not 2.0
    # S1 row 4 (partial date, visit 2) gets the visit's dose from the second lookup; S2 row 5 (visit 2)
    # gets its '2024-01' record; S3 row 7: visit 2 is one record (row 7) -> matched, replaces nothing
    assert vals(out["PCRFTDTC"]) == ["2024-01-10T08:00", "2024-02-10T08:00", "2024-01-10T08:00", "2024-01",
                                     "2024-02-11T09:00", "2024-01-12T08:00"]
    assert vals(out["PCTPTREF"]) == ["VISIT 2 DOSE", "DRUG B DOSE IN TREATMENT 2", "VISIT 2 DOSE", "VISIT 2 DOSE",
                                     "VISIT 4 DOSE", "VISIT 2 DOSE"]


def test_lookup_missing_variable_at_run_time_is_an_input_error():
    with pytest.raises(InputError) as exc:
        lookups([{"dataset": "EX", "by": ["EXGRPID"], "copy": {"PCRFTDTC": "EXSTDY"}}])
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "pc.yaml, lookup[0]: EX has no EXSTDY when lookups run" in text and "derived after lookups" in text
    assert "pc.yaml, lookup[0]: EX has no EXGRPID" in text
    assert "PC has no EXGRPID" in text


def test_moment_partial_dates_seconds_and_whole_days():
    s = pd.Series(["2024-01-10", "2024-01-10T08:00", "2024-01-10T08:00:30", "2024-01", "2024", None, "2024-01-10T08"],
                  dtype="str")
    start = moment(s, False)
    end = moment(s, True)
    assert start.iloc[0] == pd.Timestamp("2024-01-10 00:00") and end.iloc[0] == pd.Timestamp("2024-01-10 23:59:59")
    assert start.iloc[1] == end.iloc[1] == pd.Timestamp("2024-01-10 08:00")
    assert start.iloc[2] == pd.Timestamp("2024-01-10 08:00:30")
    assert start.iloc[3:6].isna().all()              # partial and missing dates have no moment
    assert end.iloc[6] == pd.Timestamp("2024-01-10 23:59:59")   # an hour alone counts as no time


# ------------------------------------------------------------------------------------------------
# baseline per period from a looked-up reference


def test_baseline_per_period_from_the_next_period_start():
    """Pre-dose records timed before the dose, or taken during the washout, are in the previous
    epoch; the start of the next treatment period (SE, ``direction: after``) gives each record the
    period it precedes, and the baseline is the last record before that period's start."""
    se = pd.DataFrame({"USUBJID": "S1", "EPOCH": ["SCREENING", "TREATMENT 1", "WASHOUT", "TREATMENT 2"],
                       "SESTDTC": ["2024-01-02", "2024-01-10T08:00", "2024-01-17", "2024-02-10T08:00"]}).astype("str")
    lb = pd.DataFrame({"USUBJID": "S1", "LBTESTCD": "ALT", "LBORRES": ["20", "21", "30", "24", "25", "33"],
                       "LBDTC": ["2024-01-05", "2024-01-10T07:00", "2024-01-12", "2024-02-09", "2024-02-10T07:00",
                                 "2024-02-12"],
                       "EPOCH": ["SCREENING", "SCREENING", "TREATMENT 1", "WASHOUT", "WASHOUT", "TREATMENT 2"],
                       "__form": "lb", "__row": ["2", "3", "4", "5", "6", "7"], "__usubjid": "S1"}).astype("str")
    m = Mappings(datasets={
        "LB": DatasetMapping.model_validate({"dataset": "LB", "lookup": [
            {"dataset": "SE", "where": [{"field": "EPOCH", "op": "matches", "value": "TREATMENT.*"}],
             "nearest": {"date": "LBDTC", "other": "SESTDTC", "direction": "after"},
             "copy": {"PERREF": "SESTDTC", "PERIOD": "EPOCH"}, "working": True}]})}, files={"LB": "lb.yaml"})
    f = Findings()
    out = run_lookups({"LB": lb, "SE": se}, m, f)["LB"]
    # 05 JAN and 10 JAN 07:00 precede period 1 (10 JAN 08:00); 12 JAN, 09 FEB and 10 FEB 07:00 precede
    # period 2 (10 FEB 08:00); 12 FEB follows every period start
    assert vals(out["PERIOD"]) == ["TREATMENT 1", "TREATMENT 1", "TREATMENT 2", "TREATMENT 2", "TREATMENT 2", None]
    flagged = derive_var_lobxfl(out, pd.DataFrame({"USUBJID": ["S1"]}),
                                Baseline(reference="PERREF", source="record", by=["LBTESTCD", "PERIOD"]), "LB", ["LBLOBXFL"])
    # period 1: last before 10 JAN 08:00 is the 07:00 record; period 2: the 10 FEB 07:00 record
    assert vals(flagged["LBLOBXFL"]) == [None, "Y", None, None, "Y", None]
    [none] = by_rule(f, "SDTM.LOOKUP.NOMATCH")
    assert none.extra["rows"] == [7]
