"""SV is one record per subject visit: two unscheduled EDC folders on one date share VISITNUM
(unscheduled visits are numbered by date), so they are one SV record; the other raw record is listed
in the traceability with its reason (found at 5,000 subjects)."""

from __future__ import annotations

import pandas as pd

from cdisc_pipe.sdtm.algorithms import FORM, ROW, SUBJ
from cdisc_pipe.sdtm.build import _one_record_per_visit


def test_two_folders_on_one_date_are_one_visit():
    sv = pd.DataFrame({
        "USUBJID": ["S1", "S1", "S1", "S2"],
        "VISITNUM": [14.0, 14.01, 14.01, 14.01],
        "SVSTDTC": ["2023-08-30", "2023-09-15", "2023-09-15", "2023-09-15"],
        "SVENDTC": ["2023-08-30", "2023-09-15", "2023-09-16", "2023-09-15"],
        FORM: ["visit"] * 4, ROW: ["10", "11", "12", "13"], SUBJ: ["S1", "S1", "S1", "S2"],
    })
    trace: list[pd.DataFrame] = []
    out = _one_record_per_visit(sv, trace)
    assert out[["USUBJID", "VISITNUM"]].values.tolist() == [["S1", 14.0], ["S1", 14.01], ["S2", 14.01]]
    # the kept record spans both folders: earliest start, latest end
    assert out.loc[out["VISITNUM"].eq(14.01) & out["USUBJID"].eq("S1"), "SVENDTC"].item() == "2023-09-16"
    assert len(trace) == 1 and trace[0]["source_row"].tolist() == [12]
    assert "one SV record" in trace[0]["reason"].item()


def test_unique_visits_unchanged():
    sv = pd.DataFrame({"USUBJID": ["S1", "S1"], "VISITNUM": [1.0, 2.0], "SVSTDTC": ["2023-01-01", "2023-02-01"],
                       "SVENDTC": ["2023-01-01", "2023-02-01"], FORM: ["visit"] * 2, ROW: ["2", "3"], SUBJ: ["S1"] * 2})
    trace: list[pd.DataFrame] = []
    assert _one_record_per_visit(sv, trace) is sv and trace == []
