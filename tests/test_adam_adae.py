"""ADAE builder on literal AE/SUPPAE fixtures; expected values worked by hand in the comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cdisc_pipe.adam import adae
from cdisc_pipe.spec.model import Dataset

ROOT = Path(__file__).resolve().parents[1]
T = pd.Timestamp
CRS = "Cytokine release syndrome"
ICANS = "Immune effector cell-associated neurotoxicity syndrome"


@pytest.fixture(scope="module")
def settings_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("settings")  # no adam.yaml: dlt_window_days defaults to 28
    shutil.copy(ROOT / "specs" / "settings" / "adam_bds.yaml", d / "adam_bds.yaml")
    return d


def _adsl() -> pd.DataFrame:
    # A: LD 2024-01-05, infused 2024-01-10.  B: LD 2024-02-01, never infused.  D: died 2024-03-15.
    return pd.DataFrame({
        "STUDYID": "S", "USUBJID": ["A", "B", "D"],
        "TRT01P": ["DL1", "DL2", "DL1"], "TRT01PN": [1.0, 2.0, 1.0],
        "TRT01A": ["DL1", None, "DL1"], "TRT01AN": [1.0, np.nan, 1.0],
        "SAFFL": ["Y", "N", "Y"], "DLTEVLFL": ["Y", None, "Y"],
        "TRTSDT": [T("2024-01-10"), pd.NaT, T("2024-03-01")], "TRTEDT": [T("2024-01-10"), pd.NaT, T("2024-03-01")],
        "LDSDT": [T("2024-01-05"), T("2024-02-01"), T("2024-02-25")],
        "DTHDT": [pd.NaT, pd.NaT, T("2024-03-15")], "NACTDT": [pd.NaT] * 3,
    })


AE_ROWS = [
    # USUBJID, AESEQ, AEDECOD, AEBODSYS, AESTDTC, AEENDTC, AETOXGR
    ("A", 1, CRS, "Immune system disorders", "2024-01", "2024-01-15", "2"),     # partial, TRTSDT in month
    ("A", 2, "Nausea", "Gastrointestinal disorders", "2024-01-06", "2024-01-07", "1"),  # LD-emergent
    ("A", 3, "Nausea", "Gastrointestinal disorders", "2024-01", "2024-01-07", "1"),     # partial, ended pre-infusion
    ("A", 4, ICANS, "Nervous system disorders", "2024-01-12", "2024-01-14", "3"),
    ("A", 5, "Neutrophil count decreased", "Investigations", "2024-02-07", None, "4"),  # day 28 after infusion
    ("A", 6, "Platelet count decreased", "Investigations", "2024-02-08", None, "4"),    # day 29: outside window
    ("A", 7, "Nausea", "Gastrointestinal disorders", "2024-01-20", "2024-01-21", "1"),
    ("B", 1, "Rash", "Skin and subcutaneous tissue disorders", "2024-02", None, "1"),
    ("D", 1, "Sepsis", "Infections and infestations", "2024-03-05", "2024-03", "5"),
]


@pytest.fixture(scope="module")
def built(settings_dir):
    ae = pd.DataFrame(AE_ROWS, columns=["USUBJID", "AESEQ", "AEDECOD", "AEBODSYS", "AESTDTC", "AEENDTC", "AETOXGR"])
    ae["STUDYID"] = "S"
    ae["AETERM"] = ae["AEDECOD"].str.upper()
    ae["AESEQ"] = ae["AESEQ"].astype("float64")
    supp = pd.DataFrame({"STUDYID": "S", "RDOMAIN": "AE", "USUBJID": "A", "IDVAR": "AESEQ",
                         "IDVARVAL": ["4", "5", "6"], "QNAM": "AEDLT", "QLABEL": "Dose-Limiting Toxicity",
                         "QVAL": ["Y", "Y", "Y"]})
    out, findings = adae.build({"AE": ae, "SUPPAE": supp}, _adsl(), settings_dir)
    return out.set_index(["USUBJID", "AESEQ"], drop=False), findings


def test_partial_start_date_imputed_to_infusion_date(built):
    out, _ = built
    r = out.loc[("A", 1.0)]
    # "2024-01": first of month 2024-01-01 is before TRTSDT 2024-01-10, which lies in January -> TRTSDT.
    assert r["ASTDT"] == T("2024-01-10") and r["ASTDTF"] == "D"
    assert r["TRTEMFL"] == "Y" and r["LDEMFL"] is None
    assert r["ASTDY"] == 1.0 and r["ADURN"] == 6.0 and r["ADURU"] == "DAYS"  # 01-15 - 01-10 + 1


def test_partial_start_date_never_after_end_date(built):
    out, _ = built
    r = out.loc[("A", 3.0)]
    # "2024-01" would become TRTSDT 01-10, but the AE ended 01-07: moved back to AENDT 2024-01-07.
    assert r["ASTDT"] == T("2024-01-07") and r["ASTDTF"] == "D"
    assert r["TRTEMFL"] is None and r["LDEMFL"] == "Y"


def test_ld_emergent_versus_treatment_emergent(built):
    out, _ = built
    ld = out.loc[("A", 2.0)]  # 2024-01-06: after LD start 01-05, before infusion 01-10
    assert (ld["LDEMFL"], ld["TRTEMFL"], ld["ASTDY"]) == ("Y", None, -4.0)  # 01-06 - 01-10 = -4
    te = out.loc[("A", 4.0)]
    assert (te["LDEMFL"], te["TRTEMFL"], te["CQ02NAM"], te["CQ01NAM"]) == (None, "Y", "ICANS", None)
    assert out.loc[("A", 1.0)]["CQ01NAM"] == "CRS"


def test_dlt_window(built):
    out, findings = built
    # ICANS on day 2 (01-12 - 01-10 = 2) and neutropenia on 02-07 (28 days after) are DLTs;
    # 02-08 is 29 days after the infusion: adjudicated DLT outside the window, reported.
    assert out.loc[("A", 4.0)]["ADLTFL"] == "Y"
    assert out.loc[("A", 5.0)]["ADLTFL"] == "Y"
    late = out.loc[("A", 6.0)]
    assert late["AEDLT"] == "Y" and late["ADLTFL"] is None
    dlt = [f for f in findings if f.rule == "ADAM.ADAE.DLTWINDOW"]
    assert len(dlt) == 1 and dlt[0].seq == 6.0 and "29 days" in dlt[0].message
    assert out.loc[("A", 2.0)]["AEDLT"] is None and out.loc[("A", 2.0)]["ADLTFL"] is None


def test_first_occurrence_flags(built):
    out, _ = built
    a = out[out["USUBJID"].eq("A")].reset_index(drop=True).sort_values("AESEQ")
    # TEAEs of A by ASTDT: CRS 01-10 (seq 1), ICANS 01-12 (4), Nausea 01-20 (7), neutropenia 02-07 (5),
    # platelets 02-08 (6).  The pre-infusion nausea (2, 3) is not treatment-emergent.
    assert a["AOCCFL"].tolist() == ["Y", None, None, None, None, None, None]
    assert a["AOCCSFL"].tolist() == ["Y", None, None, "Y", "Y", None, "Y"]
    assert a["AOCCPFL"].tolist() == ["Y", None, None, "Y", "Y", "Y", "Y"]


def test_never_infused_subject(built):
    out, _ = built
    r = out.loc[("B", 1.0)]
    # "2024-02" with no infusion: first of month 2024-02-01; LD-emergent (LDSDT 02-01), not treatment-emergent.
    assert r["ASTDT"] == T("2024-02-01") and r["TRTEMFL"] is None and r["LDEMFL"] == "Y"
    assert np.isnan(r["ASTDY"]) and r["TRTA"] is None and r["AOCCFL"] is None


def test_partial_end_date_not_after_death(built):
    out, _ = built
    r = out.loc[("D", 1.0)]
    # "2024-03" -> last day 2024-03-31, but death 2024-03-15 lies in March -> 2024-03-15.
    assert r["AENDT"] == T("2024-03-15") and r["AENDTF"] == "D"
    assert r["ATOXGRN"] == 5.0 and r["ADURN"] == 11.0  # 03-15 - 03-05 + 1


def test_columns_follow_the_spec(built):
    out, _ = built
    spec = Dataset.model_validate(yaml.safe_load((ROOT / "specs" / "adam" / "adae.yaml").read_text()))
    assert list(out.columns) == spec.variable_names


def test_partial_start_date_imputed_to_ld_start_when_only_ld_in_period(settings_dir):
    adsl = _adsl()
    ae = pd.DataFrame({"STUDYID": "S", "USUBJID": ["D"], "AESEQ": [2.0], "AETERM": ["FEVER"], "AEDECOD": ["Pyrexia"],
                       "AEBODSYS": ["General disorders"], "AESTDTC": ["2024-02"], "AEENDTC": [None], "AETOXGR": ["1"]})
    out, _ = adae.build({"AE": ae}, adsl, settings_dir)
    # D: LD 2024-02-25 lies in February, infusion 2024-03-01 does not -> 2024-02-25, LD-emergent.
    r = out.iloc[0]
    assert r["ASTDT"] == T("2024-02-25") and r["ASTDTF"] == "D" and r["LDEMFL"] == "Y" and r["TRTEMFL"] is None
    assert r["AEDLT"] is None  # no SUPPAE at all


def test_dltfl_disagreement_with_adsl_is_reported(settings_dir):
    adsl = _adsl().assign(DLTFL=["N", None, "Y"])  # A has DLTs in ADAE; D has none
    ae = pd.DataFrame(AE_ROWS, columns=["USUBJID", "AESEQ", "AEDECOD", "AEBODSYS", "AESTDTC", "AEENDTC", "AETOXGR"])
    ae["STUDYID"], ae["AETERM"] = "S", ae["AEDECOD"]
    supp = pd.DataFrame({"STUDYID": "S", "RDOMAIN": "AE", "USUBJID": "A", "IDVAR": "AESEQ", "IDVARVAL": ["4"],
                         "QNAM": "AEDLT", "QLABEL": "Dose-Limiting Toxicity", "QVAL": ["Y"]})
    _, findings = adae.build({"AE": ae, "SUPPAE": supp}, adsl, settings_dir)
    assert sorted(f.usubjid for f in findings if f.rule == "ADAM.ADAE.DLTADSL") == ["A", "D"]
