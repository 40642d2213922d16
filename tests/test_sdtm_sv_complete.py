"""SV completeness: every visit used elsewhere is in SV, its dates spanning the visit's records (#17 item 1)."""

import pandas as pd

from cdisc_pipe.sdtm.relations import complete_sv

TV = pd.DataFrame({"VISITNUM": [1.0, 2.0], "VISIT": ["SCREENING", "DAY 1"], "VISITDY": [-7.0, 1.0]})
DM = pd.DataFrame({"USUBJID": ["S1"], "RFSTDTC": ["2023-01-08"]})


def _sv():
    return pd.DataFrame({"STUDYID": "X", "DOMAIN": "SV", "USUBJID": ["S1", "S1"], "VISITNUM": [1.0, 2.0],
                         "VISIT": ["SCREENING", "DAY 1"], "SVSTDTC": ["2023-01-01", "2023-01-08"],
                         "SVENDTC": ["2023-01-01", "2023-01-08"], "SVSTDY": [-7.0, 1.0], "SVENDY": [-7.0, 1.0],
                         "SVUPDES": [None, None]})


def test_unscheduled_visit_used_in_lb_gets_an_sv_record_and_dates_span_the_records():
    lb = pd.DataFrame({"DOMAIN": "LB", "USUBJID": ["S1", "S1", "S1"], "VISITNUM": [1.0, 1.01, 2.0],
                       "VISIT": ["SCREENING", "UNSCHEDULED 1.01", "DAY 1"],
                       "LBDTC": ["2022-12-31T08:00", "2023-01-04T08:00", "2023-01-08"],
                       "LBENDTC": ["2023-01-01", "2023-01-05", None]})
    out = complete_sv(_sv(), {"LB": lb}, TV, "X", pd.DataFrame(), DM)
    assert out["VISITNUM"].tolist() == [1.0, 1.01, 2.0]
    scr = out.iloc[0]
    assert (scr["SVSTDTC"], scr["SVENDTC"], scr["SVSTDY"]) == ("2022-12-31", "2023-01-01", -8.0)
    uns = out.iloc[1]
    assert (uns["SVSTDTC"], uns["SVENDTC"], uns["VISIT"], uns["SVUPDES"]) == \
        ("2023-01-04", "2023-01-05", "UNSCHEDULED 1.01", "Unscheduled visit")
    assert (uns["SVSTDY"], uns["SVENDY"]) == (-4.0, -3.0)


def test_complete_sv_leaves_a_complete_sv_unchanged():
    vs = pd.DataFrame({"DOMAIN": "VS", "USUBJID": ["S1"], "VISITNUM": [2.0], "VISIT": ["DAY 1"], "VSDTC": ["2023-01-08T09:00"]})
    sv = _sv()
    out = complete_sv(sv, {"VS": vs}, TV, "X", pd.DataFrame(), DM)
    pd.testing.assert_frame_equal(out, sv)
