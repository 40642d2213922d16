"""ADEX builder on literal EX/SUPPEX fixtures; expected values worked by hand in the comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cdisc_pipe.adam import adex
from cdisc_pipe.spec.model import Dataset

ROOT = Path(__file__).resolve().parents[1]
T = pd.Timestamp


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("settings")
    shutil.copy(ROOT / "specs" / "settings" / "adam_bds.yaml", d / "adam_bds.yaml")
    # A: DL1 (planned 1.0), infused 0.95.  B: DL2 (planned 3.0), one LD day then never infused.
    adsl = pd.DataFrame({"STUDYID": "S", "USUBJID": ["A", "B"], "TRT01P": ["DL1", "DL2"], "TRT01PN": [1.0, 2.0],
                         "TRT01A": ["DL1", None], "TRT01AN": [1.0, np.nan], "SAFFL": ["Y", "N"],
                         "DOSE01P": [1.0, 3.0]})
    n_ld = 6
    ex = pd.DataFrame({
        "STUDYID": "S", "USUBJID": ["A"] * 7 + ["B"], "EXSEQ": np.arange(1.0, 9.0),
        "EXCAT": ["LYMPHODEPLETION"] * n_ld + ["CAR-T", "LYMPHODEPLETION"],
        "EXTRT": ["FLUDARABINE", "CYCLOPHOSPHAMIDE"] * 3 + ["ANTI-BCMA CAR-T CELLS", "FLUDARABINE"],
        "EXDOSE": [30.0, 300.0, 30.0, 300.0, 30.0, 300.0, 0.95, 30.0],
        "EXDOSU": ["mg/m2"] * n_ld + ["10^6/kg", "mg/m2"],
        "EXSTDTC": ["2024-01-05", "2024-01-05", "2024-01-06", "2024-01-06", "2024-01-07", "2024-01-07",
                    "2024-01-10T10:00", "2024-02-01"],
        "EXVAMT": [np.nan] * n_ld + [70.0, np.nan],
    })
    suppex = pd.DataFrame({"STUDYID": "S", "RDOMAIN": "EX", "USUBJID": ["A"], "IDVAR": "EXSEQ", "IDVARVAL": ["7"],
                           "QNAM": "TOTCARTC", "QLABEL": "Total CAR+ T Cells (10^6)", "QVAL": ["66.5"]})
    out, findings = adex.build({"EX": ex, "SUPPEX": suppex}, adsl, d)
    return out, findings


def _val(out, usubjid, paramcd):
    rows = out[out["USUBJID"].eq(usubjid) & out["PARAMCD"].eq(paramcd)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_lymphodepletion_cumulative_doses(built):
    out, _ = built
    flu = _val(out, "A", "FLUCUM")
    assert flu["AVAL"] == 90.0  # 3 days x 30 mg/m2
    assert (flu["ASTDT"], flu["AENDT"]) == (T("2024-01-05"), T("2024-01-07"))
    assert _val(out, "A", "CYCUM")["AVAL"] == 900.0  # 3 x 300 mg/m2
    assert _val(out, "B", "FLUCUM")["AVAL"] == 30.0  # one day only
    assert out[out["USUBJID"].eq("B") & out["PARAMCD"].eq("CYCUM")].empty


def test_car_t_planned_versus_actual(built):
    out, findings = built
    assert _val(out, "A", "CARTPDOS")["AVAL"] == 1.0
    assert _val(out, "A", "CARTDOSE")["AVAL"] == 0.95
    assert _val(out, "A", "CARTPCT")["AVAL"] == pytest.approx(95.0)  # 0.95 / 1.0 x 100
    assert _val(out, "A", "TOTCARTC")["AVAL"] == 66.5
    assert _val(out, "A", "INFVOL")["AVAL"] == 70.0
    # Never infused: planned dose only.
    b = out[out["USUBJID"].eq("B")]
    assert sorted(b["PARAMCD"]) == ["CARTPDOS", "FLUCUM"] and _val(out, "B", "CARTPDOS")["AVAL"] == 3.0
    assert out.groupby("PARAMCD")["PARAM"].nunique().eq(1).all() and findings == []


def test_columns_and_codelists_follow_the_spec(built):
    out, _ = built
    spec = Dataset.model_validate(yaml.safe_load((ROOT / "specs" / "adam" / "adex.yaml").read_text()))
    assert list(out.columns) == spec.variable_names
    codes = yaml.safe_load((ROOT / "specs" / "codelists" / "adex_paramcd.yaml").read_text())
    assert set(out["PARAMCD"]) <= {t["submission_value"] for t in codes["terms"]}
    names = yaml.safe_load((ROOT / "specs" / "codelists" / "adex_param.yaml").read_text())
    assert {t["submission_value"] for t in names["terms"]} == set(adex.PARAMS.values())
