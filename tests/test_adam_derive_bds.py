"""BDS verbs of cdisc_pipe.adam.derive_bds on small literal frames, expected values worked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.adam.derive_bds import (
    Bound,
    ToxicityCriteria,
    derive_param_extreme_record,
    derive_var_ablfl,
    derive_var_anrind,
    derive_var_atoxgr_dir,
    derive_var_base,
    derive_var_chg,
    derive_var_pchg,
    derive_var_period_flag,
    derive_var_trtemfl,
    parse_iso_duration_days,
    read_toxicity_criteria,
)
from cdisc_pipe.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
CTCAE = ROOT / "specs" / "settings" / "ctcae_v5_lab.yaml"

D = pd.Timestamp


@pytest.fixture(scope="module")
def ctcae() -> ToxicityCriteria:
    return read_toxicity_criteria(CTCAE)


def _bds() -> pd.DataFrame:
    return pd.DataFrame({
        "USUBJID": ["A", "A", "A", "A", "B", "B"],
        "PARAMCD": ["HGB"] * 6,
        "ADT": [D("2024-01-01"), D("2024-01-04"), D("2024-01-05"), D("2024-01-20"), D("2024-01-03"), D("2024-01-30")],
        "AVAL": [120.0, np.nan, 110.0, 88.0, 100.0, 90.0],
        "ANRLO": [115.0] * 6,
        "ANRHI": [160.0] * 6,
    })


def test_baseline_last_non_missing_on_or_before_reference_and_change():
    df = _bds()
    ref = pd.Series([D("2024-01-05")] * 4 + [pd.NaT] * 2)  # B: no reference date -> no baseline
    cand = (df["ADT"] <= ref).fillna(False)
    df = derive_var_ablfl(df, ["USUBJID", "PARAMCD"], ["ADT"], cand)
    # A: candidates 01-01 (120), 01-04 (missing), 01-05 (110) -> last non-missing is 01-05.
    assert df["ABLFL"].tolist() == [None, None, "Y", None, None, None]
    df = derive_var_base(df, ["USUBJID", "PARAMCD"])
    assert df["BASE"].tolist()[:4] == [110.0] * 4
    assert df["BASE"].iloc[4:].isna().all()  # missing baseline for B
    post = df["ADT"] > ref
    df = derive_var_chg(derive_var_pchg(df, post), post)
    # A 01-20: CHG = 88 - 110 = -22; PCHG = -22 / 110 * 100 = -20.0
    assert df.loc[3, "CHG"] == pytest.approx(-22.0)
    assert df.loc[3, "PCHG"] == pytest.approx(-20.0)
    # Baseline and pre-baseline records, and subject B (no baseline), have no change.
    assert df.loc[[0, 1, 2, 4, 5], "CHG"].isna().all()


def test_pchg_missing_when_base_is_zero():
    df = pd.DataFrame({"AVAL": [5.0, 3.0], "BASE": [0.0, 2.0]})
    out = derive_var_pchg(df)
    assert np.isnan(out.loc[0, "PCHG"])
    assert out.loc[1, "PCHG"] == pytest.approx(50.0)  # (3 - 2) / 2 * 100


def test_anrind():
    df = pd.DataFrame({"AVAL": [1.0, 5.0, 9.0, np.nan, 9.0], "ANRLO": [2.0, 2.0, 2.0, 2.0, np.nan],
                       "ANRHI": [8.0, 8.0, 8.0, 8.0, np.nan]})
    assert derive_var_anrind(df)["ANRIND"].tolist() == ["LOW", "NORMAL", "HIGH", None, None]


def test_bound_parsing():
    b = Bound.parse("2.5*ULN")
    assert (b.ref, b.factor, b.offset) == ("ULN", 2.5, 0.0)
    b = Bound.parse("ULN+40")
    assert (b.ref, b.factor, b.offset) == ("ULN", 1.0, 40.0)
    assert Bound.parse(80).number == 80.0
    with pytest.raises(ValueError):
        Bound.parse("ULN**2")


def test_platelet_grades_at_the_boundaries(ctcae):
    # CTCAE v5 platelet count decreased (10^9/L): G1 <LLN-75, G2 <75-50, G3 <50-25, G4 <25.
    # 50.0 is "<75 - 50" -> grade 2; 49.9 -> grade 3; 25 -> grade 3; 24.99 -> 4; LLN 150 -> 0.
    df = pd.DataFrame({"PARAMCD": "PLAT", "AVALU": "10^9/L",
                       "AVAL": [150.0, 149.0, 75.0, 50.0, 49.9, 25.0, 24.99, np.nan],
                       "ANRLO": 150.0, "ANRHI": 400.0})
    out, findings = derive_var_atoxgr_dir(df, ctcae, "L")
    assert out["ATOXGRL"].tolist() == ["0", "1", "1", "2", "3", "3", "4", None]
    assert out["ATOXDSCL"].iloc[0] == "Platelet count decreased"
    assert findings == []


def test_alt_grades_relative_to_uln_or_abnormal_baseline(ctcae):
    # ULN 40: 3.0 x ULN = 120 is still grade 1 (">ULN - 3.0 x ULN"); 120.1 -> grade 2; 200.1 -> 3.
    # Abnormal (HIGH) baseline 100: grade 1 needs >= 1.5 x 100 = 150; 149 -> 0; 301 > 3 x 100 -> 2.
    df = pd.DataFrame({"PARAMCD": "ALT", "AVALU": "U/L",
                       "AVAL": [40.0, 120.0, 120.1, 200.1, 149.0, 150.0, 301.0],
                       "ANRHI": 40.0, "ANRLO": 0.0, "BASE": [20.0] * 4 + [100.0] * 3,
                       "BNRIND": ["NORMAL"] * 4 + ["HIGH"] * 3})
    out, _ = derive_var_atoxgr_dir(df, ctcae, "H")
    assert out["ATOXGRH"].tolist() == ["0", "1", "2", "3", "0", "1", "2"]


def test_missing_limit_makes_grade_undetermined_not_normal(ctcae):
    # Neutrophils 1.2 x10^9/L is grade 2 whatever the LLN; 1.8 needs the LLN to tell 0 from 1.
    df = pd.DataFrame({"PARAMCD": "NEUT", "AVALU": "10^9/L", "AVAL": [1.2, 1.8], "ANRLO": np.nan, "ANRHI": np.nan})
    out, _ = derive_var_atoxgr_dir(df, ctcae, "L")
    assert out["ATOXGRL"].tolist() == ["2", None]


def test_unit_mismatch_is_not_graded_and_reported(ctcae):
    # Hemoglobin thresholds are in g/L; 9.0 g/dL must not be read as 9 g/L (grade 3).
    df = pd.DataFrame({"PARAMCD": "HGB", "AVALU": "g/dL", "AVAL": [9.0], "ANRLO": 12.0, "ANRHI": 16.0})
    out, findings = derive_var_atoxgr_dir(df, ctcae, "L")
    assert out["ATOXGRL"].isna().all()
    assert len(findings) == 1 and findings[0].rule == "ADAM.ATOXGR.UNIT"


def test_peak_record_is_highest_post_reference_value_earliest_on_ties():
    df = pd.DataFrame({"USUBJID": ["A"] * 4 + ["B"], "PARAMCD": "INTLK6",
                       "ADT": [D("2024-01-01"), D("2024-01-03"), D("2024-01-05"), D("2024-01-07"), D("2024-01-02")],
                       "AVAL": [900.0, 50.0, 700.0, 700.0, 10.0], "DTYPE": None})
    post = df["ADT"] > D("2024-01-01")  # the 900 is pre-infusion and must not be the peak
    out = derive_param_extreme_record(df, ["USUBJID", "PARAMCD"], ["-AVAL", "ADT"], post, {"DTYPE": "MAXIMUM"})
    peaks = out[out["DTYPE"].eq("MAXIMUM")]
    assert peaks["USUBJID"].tolist() == ["A", "B"]
    assert peaks["AVAL"].tolist() == [700.0, 10.0]
    assert peaks["ADT"].tolist() == [D("2024-01-05"), D("2024-01-02")]  # tie at 700: first date
    assert len(out) == 7


def test_extreme_record_is_taken_whole_by_position_whatever_the_index():
    # the candidates are sorted on their by and order variables only, then taken whole: the new
    # records are full copies (every variable), in the input's index order, also when the index is
    # neither a range nor sorted
    df = pd.DataFrame({"USUBJID": ["B", "A", "A", "B"], "PARAMCD": "X", "AVAL": [5.0, 1.0, 3.0, 7.0],
                       "ANOTE": ["b5", "a1", "a3", "b7"], "DTYPE": None}, index=[40, 10, 30, 20])
    everyone = pd.Series(True, index=df.index)
    out = derive_param_extreme_record(df, ["USUBJID", "PARAMCD"], ["-AVAL"], everyone, {"DTYPE": "MAXIMUM"})
    new = out.iloc[4:]
    # A's highest is 3 (index 30), B's is 7 (index 20): index order 20 then 30, so B before A
    assert new["USUBJID"].tolist() == ["B", "A"]
    assert new["ANOTE"].tolist() == ["b7", "a3"] and new["AVAL"].tolist() == [7.0, 3.0]
    assert out.iloc[:4]["ANOTE"].tolist() == ["b5", "a1", "a3", "b7"]  # the input records unchanged, first
    assert "__record_position__" not in out.columns
    none = derive_param_extreme_record(df, ["USUBJID", "PARAMCD"], ["-AVAL"], ~everyone, {"DTYPE": "MAXIMUM"})
    assert len(none) == 4


def test_trtemfl_and_period_flag():
    df = pd.DataFrame({
        "ASTDT": [D("2024-01-06"), D("2024-01-10"), pd.NaT, pd.NaT, D("2024-01-12")],
        "AENDT": [D("2024-01-07"), pd.NaT, D("2024-01-11"), D("2024-01-08"), pd.NaT],
        "TRTSDT": [D("2024-01-10")] * 4 + [pd.NaT],
        "LDSDT": [D("2024-01-05")] * 5,
    })
    out = derive_var_trtemfl(df)
    # before infusion; on infusion day; unknown start ending after infusion; unknown start ending
    # before; never infused.
    assert out["TRTEMFL"].tolist() == [None, "Y", "Y", None, None]
    out = derive_var_period_flag(df, "ASTDT", "LDSDT", "TRTSDT", "LDEMFL")
    # LD 01-05 <= 01-06 < infusion 01-10 -> Y; never infused subject: period open -> Y.
    assert out["LDEMFL"].tolist() == ["Y", None, None, None, "Y"]


def test_iso_durations_in_days():
    days, invalid = parse_iso_duration_days(pd.Series(["-PT1H", "P7D", "PT12H", "P1W", "P1M", None, "x"]))
    assert days.iloc[0] == pytest.approx(-1 / 24)
    assert days.iloc[1:4].tolist() == [7.0, 0.5, 7.0]
    assert invalid.tolist() == [False, False, False, False, True, False, True]


def test_grading_table_errors_are_input_errors(tmp_path):
    (tmp_path / "t.yaml").write_text(
        "name: X\nversion: '1'\nterms:\n  - {term: T, testcd: [A], direction: L,"
        " grades: [{grade: 1, any: [{lt: LLN}]}, {grade: 2, any: [{lt: 3}]}]}\n")
    with pytest.raises(InputError) as exc:
        read_toxicity_criteria(tmp_path / "t.yaml")
    assert "highest to the lowest" in str(exc.value)


def test_require_sdtm_names_what_is_missing_and_never_exposes_the_input():
    from cdisc_pipe.adam.derive_bds import require_sdtm

    ae = pd.DataFrame({"USUBJID": ["A"], "AESEQ": ["1"]})
    with pytest.raises(InputError) as exc:
        require_sdtm({"AE": ae}, "AE", ["USUBJID", "AESTDTC"], "ADAE")
    assert "AESTDTC" in str(exc.value)
    with pytest.raises(InputError) as exc:
        require_sdtm({}, "LB", ["USUBJID"], "ADLB")
    assert "LB" in str(exc.value)
    got = require_sdtm({"AE": ae}, "AE", ["USUBJID"], "ADAE")
    got["AESEQ"] = 1.0
    got["NEW"] = "x"
    assert ae["AESEQ"].tolist() == ["1"] and "NEW" not in ae.columns


def test_derive_on_unique_matches_direct_derivation():
    from cdisc_pipe.adam.derive import derive_vars_dtm
    from cdisc_pipe.adam.derive_bds import derive_on_unique

    df = pd.DataFrame({"LBDTC": ["2024-01-05T07:30", None, "2024-01-05", "2024-01-05T07:30", "2024-01", "x"]})
    direct = derive_vars_dtm(df, "A", "LBDTC", highest_imputation="h", flag_imputation="time")
    via = derive_on_unique(df, "LBDTC", lambda u: derive_vars_dtm(u, "A", "LBDTC", highest_imputation="h",
                                                                 flag_imputation="time"))
    assert via["ADTM"].tolist() == direct["ADTM"].tolist()
    assert via["ATMF"].tolist() == direct["ATMF"].tolist()
    assert via["ADTM"].iloc[2] == D("2024-01-05 00:00") and via["ATMF"].iloc[2] == "H"
