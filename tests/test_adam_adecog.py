"""ADECOG: baseline relative to a reference date (derive_vars_base_ref_date) and the bundled
study's plan (specs/plans/adecog.yaml) on a literal RS fixture; expected values worked by hand in
the comments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.spec.load import load_specs
from tests.test_adam_adae import run_bundled_plan, run_verb

ROOT = Path(__file__).resolve().parents[1]
T = pd.Timestamp


@pytest.fixture(scope="module")
def spec():
    return load_specs(ROOT / "specs")


# --------------------------------------------------------------------------------------------
# derive_vars_base_ref_date


BDS = pd.DataFrame({
    "USUBJID": ["A", "A", "A", "A", "A", "B", "C"], "PARAMCD": "P",
    "ADT": [T("2024-01-01"), T("2024-01-05"), T("2024-01-05"), T("2024-01-06"), pd.NaT, T("2024-01-01"),
            T("2024-01-02")],
    "SEQ": [1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 1.0],
    "AVAL": [1.0, 2.0, np.nan, 3.0, 4.0, 1.0, 2.0], "AVALC": ["1", "2", None, "3", "4", "1", "2"],
    "REF": [T("2024-01-05")] * 5 + [pd.NaT, T("2024-01-02")],
})


def test_baseline_on_or_before_the_reference_day():
    out, _ = run_verb("derive_vars_base_ref_date", BDS, order=["ADT", "SEQ"], reference_date="REF",
                      base_vars={"BASE": "AVAL", "BASEC": "AVALC"})
    a = out[out["USUBJID"].eq("A")]
    # A: candidates on/before 01-05 with a value: seq 1 (01-01) and 2 (01-05); seq 3 (same day, later
    # SEQ) has no value -> baseline seq 2 (AVAL 2).  CHG only after 01-05: seq 4 -> 3 - 2 = 1;
    # the undated record 5 is neither baseline nor post-baseline.
    assert a["ABLFL"].tolist() == [None, "Y", None, None, None]
    assert a["BASE"].tolist() == [2.0] * 5 and a["BASEC"].tolist() == ["2"] * 5
    assert a["CHG"].iloc[3] == 1.0 and a["CHG"].drop(a.index[3]).isna().all()
    # B: no reference date -> no baseline, no change.  C: assessed on the reference day -> baseline.
    b, c = out[out["USUBJID"].eq("B")].iloc[0], out[out["USUBJID"].eq("C")].iloc[0]
    assert b["ABLFL"] is None and np.isnan(b["BASE"]) and np.isnan(b["CHG"])
    assert c["ABLFL"] == "Y" and c["BASE"] == 2.0 and np.isnan(c["CHG"])


def test_baseline_strictly_before_the_reference_day():
    out, _ = run_verb("derive_vars_base_ref_date", BDS, order=["ADT", "SEQ"], reference_date="REF", same_day=False,
                      chg_var=None)
    # same_day false: A's baseline is seq 1 (01-01); C (assessed on the reference day only) has none
    assert out.loc[out["USUBJID"].eq("A"), "ABLFL"].tolist() == ["Y", None, None, None, None]
    assert out.loc[out["USUBJID"].eq("C"), "ABLFL"].isna().all() and "CHG" not in out.columns


# --------------------------------------------------------------------------------------------
# the bundled study's plan


def _build(spec, tmp_path, extra_rows=()):
    # A: LD 2024-01-05, infused 01-10.  C: no LD date (never started LD): no baseline.
    adsl = pd.DataFrame({"STUDYID": "S", "USUBJID": ["A", "C"], "TRT01P": ["DL1", "DL1"], "TRT01PN": [1.0, 1.0],
                         "TRT01A": ["DL1", None], "TRT01AN": [1.0, np.nan], "SAFFL": ["Y", "N"],
                         "LDSDT": [T("2024-01-05"), pd.NaT], "TRTSDT": [T("2024-01-10"), pd.NaT]})
    rows = [
        ("A", 1, "ECOG101", 1.0, "2023-12-20"), ("A", 2, "ECOG101", 0.0, "2024-01-05"),
        ("A", 3, "ECOG101", 2.0, "2024-01-17"), ("A", 4, "OVRLRESP", np.nan, "2024-02-10"),
        ("A", 5, "ECOG101", 1.0, "2024-02-10"), ("C", 1, "ECOG101", 1.0, "2024-01-02"), *extra_rows,
    ]
    rs = pd.DataFrame(rows, columns=["USUBJID", "RSSEQ", "RSTESTCD", "RSSTRESN", "RSDTC"])
    rs["STUDYID"], rs["RSCAT"] = "S", "ECOG"
    rs["RSSEQ"] = rs["RSSEQ"].astype("float64")
    rs["RSTEST"] = np.where(rs["RSTESTCD"].eq("ECOG101"), "ECOG - Performance Status", "Overall Response")
    rs["RSSTRESC"] = np.where(rs["RSTESTCD"].eq("ECOG101"), rs["RSSTRESN"].map("{:.0f}".format), "PR")
    rs["VISIT"], rs["VISITNUM"] = "V", 1.0
    return run_bundled_plan("ADECOG", {"RS": rs, "ADSL": adsl}, spec, tmp_path)


def test_change_from_pre_ld_baseline(spec, tmp_path):
    out, findings = _build(spec, tmp_path)
    a = out[out["USUBJID"].eq("A")].reset_index(drop=True)
    assert set(out["PARAMCD"]) == {"ECOG101"} and len(a) == 4  # the OVRLRESP record is not ECOG
    # Baseline: last on/before LDSDT 2024-01-05 -> 0 (the 1 on 2023-12-20 is earlier).
    assert a["ABLFL"].tolist() == [None, "Y", None, None]
    assert a["BASE"].tolist() == [0.0] * 4 and a["BASEC"].tolist() == ["0"] * 4
    # 01-17: 2 - 0 = 2; 02-10: 1 - 0 = 1; no change on and before baseline.
    assert a["CHG"].iloc[2:].tolist() == [2.0, 1.0] and a["CHG"].iloc[:2].isna().all()
    assert a["ADY"].tolist() == [-21.0, -5.0, 8.0, 32.0]  # 2023-12-20 - 2024-01-10 = -21
    assert (a["SRCDOM"].iloc[0], a["SRCVAR"].iloc[0], a["SRCSEQ"].tolist()) == ("RS", "RSSTRESN", [1.0, 2.0, 3.0, 5.0])
    assert findings == []


def test_missing_baseline_without_lymphodepletion(spec, tmp_path):
    out, _ = _build(spec, tmp_path)
    c = out[out["USUBJID"].eq("C")].iloc[0]
    assert c["ABLFL"] is None and np.isnan(c["BASE"]) and np.isnan(c["CHG"]) and np.isnan(c["ADY"])


def test_out_of_range_ecog_is_reported(spec, tmp_path):
    out, findings = _build(spec, tmp_path, [("A", 6, "ECOG101", 7.0, "2024-03-01"), ("C", 2, "ECOG101", 0.0,
                                                                                     "2024-03-01")])
    assert 7.0 in out["AVAL"].tolist()  # kept
    # one Error per record outside 0-5 (0 is inside)
    assert [(f.rule, f.severity, f.usubjid, f.value) for f in findings] == [("ADAM.ADECOG.RANGE", "Error", "A", "7.0")]


def test_columns_follow_the_spec(spec, tmp_path):
    out, _ = _build(spec, tmp_path)
    assert list(out.columns) == spec.dataset("ADECOG").variable_names
