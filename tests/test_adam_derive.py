"""Shared ADaM derivations: partial-date imputation with --DTF/--TMF, merges, flags, study days."""

from __future__ import annotations

import pandas as pd
import pytest

from cdisc_pipe.adam.derive import (
    convert_blanks_to_na,
    derive_var_extreme_flag,
    derive_var_merged_exist_flag,
    derive_vars_dt,
    derive_vars_dtm,
    derive_vars_duration,
    derive_vars_dy,
    derive_vars_merged,
    filter_extreme,
    lookup,
    suppqual_wide,
)

T = pd.Timestamp
DTC = ["2023-05-10", "2023-05", "2023", "2024-02", "2023-02-30", "UNK", None, "2023-05-10T14:30", "2023-13", "2023---15"]


def test_dt_no_imputation() -> None:
    out = derive_vars_dt(pd.DataFrame({"X": DTC}), "A", "X")
    assert "ADTF" not in out.columns
    assert list(out["ADT"]) == [T("2023-05-10")] + [pd.NaT] * 6 + [T("2023-05-10"), pd.NaT, pd.NaT]


def test_dt_day_imputation_first_and_last() -> None:
    first = derive_vars_dt(pd.DataFrame({"X": DTC}), "A", "X", highest_imputation="D", date_imputation="first")
    assert first["ADT"].iloc[1] == T("2023-05-01") and first["ADTF"].iloc[1] == "D"
    assert pd.isna(first["ADT"].iloc[2]) and first["ADTF"].iloc[2] is None  # month missing: not allowed at "D"
    last = derive_vars_dt(pd.DataFrame({"X": DTC}), "A", "X", highest_imputation="D", date_imputation="last")
    assert last["ADT"].iloc[1] == T("2023-05-31")
    assert last["ADT"].iloc[3] == T("2024-02-29")  # leap year: February has 29 days in 2024
    assert last["ADTF"].iloc[0] is None  # complete date: no flag


def test_dt_month_imputation_and_invalid_values() -> None:
    out = derive_vars_dt(pd.DataFrame({"X": DTC}), "A", "X", highest_imputation="M", date_imputation="first")
    assert out["ADT"].iloc[2] == T("2023-01-01") and out["ADTF"].iloc[2] == "M"
    # "2023---15": month missing, day known -> January 15, flagged M
    assert out["ADT"].iloc[9] == T("2023-01-15") and out["ADTF"].iloc[9] == "M"
    # 2023-02-30, UNK, None and month 13 are never imputed
    for i in (4, 5, 6, 8):
        assert pd.isna(out["ADT"].iloc[i]) and out["ADTF"].iloc[i] is None
    mid = derive_vars_dt(pd.DataFrame({"X": ["2023", "2023-04"]}), "A", "X", highest_imputation="M", date_imputation="mid")
    assert list(mid["ADT"]) == [T("2023-06-30"), T("2023-04-15")]


def test_dt_min_dates_bound_the_imputation() -> None:
    df = pd.DataFrame({"X": ["2023-05", "2023-05", "2023-06-02"], "TRTSDT": [T("2023-05-10"), T("2023-04-10"), T("2023-06-05")]})
    out = derive_vars_dt(df, "AST", "X", highest_imputation="M", date_imputation="first", min_dates=["TRTSDT"])
    # treatment start inside May -> imputed to it; outside May -> first of the month; complete -> untouched
    assert list(out["ASTDT"]) == [T("2023-05-10"), T("2023-05-01"), T("2023-06-02")]


def test_dtm_time_imputation_flags() -> None:
    df = pd.DataFrame({"X": ["2023-05-10T14:30:15", "2023-05-10T14:30", "2023-05-10T14", "2023-05-10", "2023-05"]})
    out = derive_vars_dtm(df, "A", "X", highest_imputation="D", time_imputation="first")
    assert list(out["ADTM"]) == [T("2023-05-10 14:30:15"), T("2023-05-10 14:30"), T("2023-05-10 14:00"),
                                 T("2023-05-10"), T("2023-05-01")]
    assert list(out["ATMF"]) == [None, "S", "M", "H", "H"]
    assert list(out["ADTF"]) == [None, None, None, None, "D"]
    last = derive_vars_dtm(df, "A", "X", highest_imputation="h", time_imputation="last")
    assert last["ADTM"].iloc[3] == T("2023-05-10 23:59:59") and pd.isna(last["ADTM"].iloc[4])
    strict = derive_vars_dtm(df, "A", "X", highest_imputation="n")
    assert strict["ADTM"].notna().tolist() == [True, False, False, False, False]


def test_bad_choice_is_an_error() -> None:
    with pytest.raises(ValueError, match="highest_imputation"):
        derive_vars_dt(pd.DataFrame({"X": ["2023"]}), "A", "X", highest_imputation="Y")


def test_dy_has_no_day_zero() -> None:
    df = pd.DataFrame({"TRTSDT": [T("2023-01-10")] * 4,
                       "ADT": [T("2023-01-09"), T("2023-01-10"), T("2023-01-11"), pd.NaT]})
    out = derive_vars_dy(df, "TRTSDT", ["ADT"])
    assert out["ADY"].iloc[:3].tolist() == [-1, 1, 2] and pd.isna(out["ADY"].iloc[3])


def test_merged_first_last_and_duplicates() -> None:
    base = pd.DataFrame({"USUBJID": ["A", "B", "C"]})
    add = pd.DataFrame({"USUBJID": ["A", "A", "B"], "D": [T("2023-02-01"), T("2023-01-01"), T("2023-03-01")], "V": [1, 2, 3]})
    first = derive_vars_merged(base, add, ["USUBJID"], {"FDT": "D", "FV": "V"}, order=["D"], mode="first", exist_flag="HAS")
    assert first["FDT"].tolist()[:2] == [T("2023-01-01"), T("2023-03-01")] and pd.isna(first["FDT"].iloc[2])
    assert first["FV"].tolist()[:2] == [2, 3] and first["HAS"].tolist() == ["Y", "Y", None]
    last = derive_vars_merged(base, add, ["USUBJID"], {"LDT": "D"}, order=["D"], mode="last")
    assert last["LDT"].iloc[0] == T("2023-02-01")
    with pytest.raises(ValueError, match="several records"):
        derive_vars_merged(base, add, ["USUBJID"], ["V"])
    filt = derive_vars_merged(base, add, ["USUBJID"], ["V"], filter_add=lambda d: d["V"] > 1, order=["V"], mode="first")
    assert filt["V"].tolist()[:2] == [2, 3]


def test_exist_flag_and_extreme_flag() -> None:
    base = pd.DataFrame({"USUBJID": ["A", "B", "C"]})
    cm = pd.DataFrame({"USUBJID": ["A", "B"], "CMCAT": ["BRIDGING THERAPY", "OTHER"]})
    out = derive_var_merged_exist_flag(base, cm, ["USUBJID"], "BRIDGFL", condition=lambda d: d["CMCAT"] == "BRIDGING THERAPY")
    assert out["BRIDGFL"].tolist() == ["Y", "N", None]
    df = pd.DataFrame({"USUBJID": ["A", "A", "A", "B"], "ADT": [1, 2, 3, 1], "AVAL": [5.0, 3.0, 4.0, 1.0]})
    base_fl = derive_var_extreme_flag(df, ["USUBJID"], ["ADT"], "ABLFL", mode="last", filter_mask=df["ADT"] < 3)
    assert base_fl["ABLFL"].tolist() == [None, "Y", None, "Y"]
    worst = derive_var_extreme_flag(df, ["USUBJID"], ["-AVAL", "ADT"], "WORSTFL", mode="first")
    assert worst["WORSTFL"].tolist() == ["Y", None, None, "Y"]
    assert filter_extreme(df, ["USUBJID"], ["AVAL"], "first")["AVAL"].tolist() == [3.0, 1.0]


def test_duration_and_lookup_and_blanks() -> None:
    df = pd.DataFrame({"S": [T("2023-01-10")], "E": [T("2023-01-10")]})
    assert derive_vars_duration(df, "ADURN", "S", "E")["ADURN"].iloc[0] == 1
    keys = pd.Series(["A", "B"])
    empty = pd.Series([], dtype="datetime64[ns]")
    assert str(lookup(keys, empty).dtype) == "datetime64[ns]"
    assert convert_blanks_to_na(pd.DataFrame({"X": ["a", "  ", ""]}))["X"].isna().tolist() == [False, True, True]


def test_suppqual_wide_links_by_seq() -> None:
    parent = pd.DataFrame({"USUBJID": ["A", "A", "B"], "AESEQ": [1.0, 2.0, 1.0]})
    supp = pd.DataFrame({"USUBJID": ["A", "B"], "IDVAR": ["AESEQ", "AESEQ"], "IDVARVAL": ["2", " 1"],
                         "QNAM": ["AEDLT", "AEDLT"], "QVAL": ["Y", "N"]})
    out = suppqual_wide(parent, supp, ["AEDLT", "OTHER"])
    assert out["AEDLT"].tolist() == [None, "Y", "N"] or out["AEDLT"].isna().tolist() == [True, False, False]
    assert out["AEDLT"].iloc[1:].tolist() == ["Y", "N"] and out["OTHER"].isna().all()


def test_dtm_to_dt_and_treatment_window_flag() -> None:
    from cdisc_pipe.adam.derive import derive_var_trtemfl_window, derive_vars_dtm_to_dt

    df = pd.DataFrame({"ASTDTM": [T("2023-01-09 23:00"), T("2023-01-10 08:00"), T("2023-02-20"), pd.NaT],
                       "TRTSDT": [T("2023-01-10")] * 4, "WEND": [T("2023-02-07")] * 4})
    out = derive_vars_dtm_to_dt(df, ["ASTDTM"])
    assert out["ASTDT"].tolist()[:3] == [T("2023-01-09"), T("2023-01-10"), T("2023-02-20")]
    # on/after TRTSDT and on/before the window end: only the day-1 record
    flag = derive_var_trtemfl_window(out, "TRTEMFL", "ASTDT", "TRTSDT", window_end="WEND")
    assert flag["TRTEMFL"].tolist() == [None, "Y", None, None]
    with pytest.raises(ValueError, match="not a --DTM"):
        derive_vars_dtm_to_dt(df, ["TRTSDT"])


def test_suppqual_wide_subject_level_text_keys_and_unknown_idvar() -> None:
    parent = pd.DataFrame({"USUBJID": ["A", "B"], "MHSEQ": [1.0, 1.0], "MHGRPID": ["G1 ", None]})
    supp = pd.DataFrame({"USUBJID": ["A", "B", "A", "A"], "IDVAR": [None, "", "MHGRPID", "XXSEQ"],
                         "IDVARVAL": [None, None, "G1", "1"], "QNAM": ["COHORT", "COHORT", "GRPQ", "LOST"],
                         "QVAL": ["C1", "C2", "q", "x"]})
    out = suppqual_wide(parent, supp)
    assert out["COHORT"].tolist() == ["C1", "C2"]  # blank IDVAR: subject level
    assert out["GRPQ"].tolist() == ["q", None]     # text key compared stripped
    assert "LOST" not in out.columns               # parent has no XXSEQ: nothing to link to


def test_parse_dtc_fast_path_agrees_with_the_regex() -> None:
    """Complete ASCII dates/datetimes are read byte-wise; every value must give what the ISO 8601
    regex alone gives (reference below), including near misses that must fall back to it."""
    import re

    import numpy as np

    from cdisc_pipe.adam.derive import _DTC_RE, parse_dtc

    values = ["2023-05-01", "2023-05-01T10:20", "2023-05-01T10:20:30", "2023-13-01", "2023-05-01T25:00",
              " 2023-05-01", "2023-05-01 ", "2023-05", "2023---01", "2023-05-01T10:-:30", "2023-05-01T10:20:30.5",
              "UNK", "", None, "2023/05/01", "2023-05-01T10", "2023-05-01X10:20", "2023-05-01T10:20:3x",
              "0000-00-00", "2023-05-01T10:20Z", "1999-12-31T23:59:59"]
    got = parse_dtc(pd.Series(values, dtype=object))
    names = ["year", "month", "day", "hour", "minute", "second"]
    rx = re.compile(_DTC_RE)
    for i, v in enumerate(values):
        m = rx.match(v.strip()) if isinstance(v, str) else None
        expect = [float(m.group(n)) if m and m.group(n) not in (None, "-") else np.nan for n in names]
        out_of_range = m is not None and not (
            (np.isnan(expect[1]) or 1 <= expect[1] <= 12) and (np.isnan(expect[2]) or 1 <= expect[2] <= 31)
            and (np.isnan(expect[3]) or expect[3] <= 23) and (np.isnan(expect[4]) or expect[4] <= 59)
            and (np.isnan(expect[5]) or expect[5] <= 59))
        if out_of_range:
            expect = [np.nan] * 6
        present = isinstance(v, str) and v.strip() != ""
        assert np.allclose(got.loc[i, names].to_numpy(dtype=float), expect, equal_nan=True), v
        assert bool(got.loc[i, "valid"]) == ((not present) or (m is not None and not out_of_range)), v
    assert convert_blanks_to_na(pd.DataFrame({"X": pd.Series(["a", " ", None], dtype="str")}))["X"].isna().tolist() == [
        False, True, True]


def test_days_after_and_in_day_window_bounds_and_missing():
    from cdisc_pipe.adam.derive import days_after, in_day_window

    df = pd.DataFrame({
        "ASTDT": pd.to_datetime(["2024-01-01", "2024-01-29", "2024-01-30", None, "2023-12-31"]),
        "TRTSDT": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01"]),
    })
    days = days_after(df, "ASTDT", "TRTSDT")
    # 0 (same day), 28 (Jan 29 - Jan 1), 29, missing, -1 (the day before)
    assert days.tolist()[:3] == [0, 28, 29] and pd.isna(days.iloc[3]) and days.iloc[4] == -1
    # window [0, 28]: bounds included, missing -> False, before the reference -> False
    assert in_day_window(days, (0, 28)).tolist() == [True, True, False, False, False]
