"""ADECOG builder on a literal RS fixture; expected values worked by hand in the comments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cdisc_pipe.adam import adecog
from cdisc_pipe.spec.model import Dataset

ROOT = Path(__file__).resolve().parents[1]
T = pd.Timestamp


def _build(tmp_path):
    # A: LD 2024-01-05, infused 01-10.  C: no LD date (never started LD): no baseline.
    adsl = pd.DataFrame({"STUDYID": "S", "USUBJID": ["A", "C"], "TRT01P": ["DL1", "DL1"], "TRT01PN": [1.0, 1.0],
                         "TRT01A": ["DL1", None], "TRT01AN": [1.0, np.nan], "SAFFL": ["Y", "N"],
                         "LDSDT": [T("2024-01-05"), pd.NaT], "TRTSDT": [T("2024-01-10"), pd.NaT]})
    rows = [
        ("A", 1, "ECOG101", 1.0, "2023-12-20"), ("A", 2, "ECOG101", 0.0, "2024-01-05"),
        ("A", 3, "ECOG101", 2.0, "2024-01-17"), ("A", 4, "OVRLRESP", np.nan, "2024-02-10"),
        ("A", 5, "ECOG101", 1.0, "2024-02-10"), ("C", 1, "ECOG101", 1.0, "2024-01-02"),
    ]
    rs = pd.DataFrame(rows, columns=["USUBJID", "RSSEQ", "RSTESTCD", "RSSTRESN", "RSDTC"])
    rs["STUDYID"], rs["RSCAT"] = "S", "ECOG"
    rs["RSSEQ"] = rs["RSSEQ"].astype("float64")
    rs["RSTEST"] = np.where(rs["RSTESTCD"].eq("ECOG101"), "ECOG - Performance Status", "Overall Response")
    rs["RSSTRESC"] = np.where(rs["RSTESTCD"].eq("ECOG101"), rs["RSSTRESN"].map("{:.0f}".format), "PR")
    return adecog.build({"RS": rs}, adsl, tmp_path)


def test_change_from_pre_ld_baseline(tmp_path):
    out, findings = _build(tmp_path)
    a = out[out["USUBJID"].eq("A")].reset_index(drop=True)
    assert set(out["PARAMCD"]) == {"ECOG101"} and len(a) == 4  # the OVRLRESP record is not ECOG
    # Baseline: last on/before LDSDT 2024-01-05 -> 0 (the 1 on 2023-12-20 is earlier).
    assert a["ABLFL"].tolist() == [None, "Y", None, None]
    assert a["BASE"].tolist() == [0.0] * 4 and a["BASEC"].tolist() == ["0"] * 4
    # 01-17: 2 - 0 = 2; 02-10: 1 - 0 = 1; no change on and before baseline.
    assert a["CHG"].iloc[2:].tolist() == [2.0, 1.0] and a["CHG"].iloc[:2].isna().all()
    assert a["ADY"].tolist() == [-21.0, -5.0, 8.0, 32.0]  # 2023-12-20 - 2024-01-10 = -21
    assert findings == []


def test_missing_baseline_without_lymphodepletion(tmp_path):
    out, _ = _build(tmp_path)
    c = out[out["USUBJID"].eq("C")].iloc[0]
    assert c["ABLFL"] is None and np.isnan(c["BASE"]) and np.isnan(c["CHG"]) and np.isnan(c["ADY"])


def test_columns_follow_the_spec(tmp_path):
    out, _ = _build(tmp_path)
    spec = Dataset.model_validate(yaml.safe_load((ROOT / "specs" / "adam" / "adecog.yaml").read_text()))
    assert list(out.columns) == spec.variable_names
