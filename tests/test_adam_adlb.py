"""ADLB builder on a literal LB fixture; expected values worked by hand in the comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cdisc_pipe.adam import adlb
from cdisc_pipe.spec.model import Dataset

ROOT = Path(__file__).resolve().parents[1]
T = pd.Timestamp


@pytest.fixture(scope="module")
def settings_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("settings")
    for f in ("adam_bds.yaml", "ctcae_v5_lab.yaml"):
        shutil.copy(ROOT / "specs" / "settings" / f, d / f)
    return d


def _adsl() -> pd.DataFrame:
    # A: LD from 2024-01-05, infused 2024-01-10 10:00.  B: LD started, never infused.
    # C: infused, but no lab before LD (missing PRE-LD baseline).
    return pd.DataFrame({
        "STUDYID": "S", "USUBJID": ["A", "B", "C"],
        "TRT01P": ["DL1", "DL2", "DL1"], "TRT01PN": [1.0, 2.0, 1.0],
        "TRT01A": ["DL1", None, "DL1"], "TRT01AN": [1.0, np.nan, 1.0], "SAFFL": ["Y", "N", "Y"],
        "TRTSDT": [T("2024-01-10"), pd.NaT, T("2024-01-10")],
        "TRTSDTM": [T("2024-01-10 10:00"), pd.NaT, T("2024-01-10 09:00")],
        "LDSDT": [T("2024-01-05"), T("2024-01-05"), T("2024-01-05")],
    })


LB_ROWS = [
    # USUBJID, LBSEQ, LBTESTCD, LBTEST, LBCAT, LBSTRESN, LBSTRESU, LBDTC, LO, HI, VISIT, VISITNUM
    ("A", 1, "PLAT", "Platelets", "HEMATOLOGY", 160.0, "10^9/L", "2023-12-26", 150, 400, "SCREENING", 1),
    ("A", 2, "PLAT", "Platelets", "HEMATOLOGY", 140.0, "10^9/L", "2024-01-05", 150, 400, "LD DAY 1", 2),
    ("A", 3, "PLAT", "Platelets", "HEMATOLOGY", 50.0, "10^9/L", "2024-01-17", 150, 400, "DAY 8", 4),
    ("A", 4, "PLAT", "Platelets", "HEMATOLOGY", 49.9, "10^9/L", "2024-01-24", 150, 400, "DAY 15", 5),
    ("A", 5, "INTLK6", "Interleukin 6", "CYTOKINES", 5.0, "pg/mL", "2024-01-10T08:00", None, 7, "DAY 1", 3),
    ("A", 6, "INTLK6", "Interleukin 6", "CYTOKINES", 500.0, "pg/mL", "2024-01-12", None, 7, "DAY 3", 3.1),
    ("A", 7, "INTLK6", "Interleukin 6", "CYTOKINES", 80.0, "pg/mL", "2024-01-14", None, 7, "DAY 5", 3.2),
    ("A", 8, "KLCFR", "Kappa Lt Chain,Free", "DISEASE ASSESSMENT", 100.0, "mg/L", "2023-12-26", 3.3, 19.4, "SCREENING", 1),
    ("A", 9, "LLCFR", "Lambda Lt Chain,Free", "DISEASE ASSESSMENT", 10.0, "mg/L", "2023-12-26", 5.7, 26.3, "SCREENING", 1),
    ("A", 10, "KLCFR", "Kappa Lt Chain,Free", "DISEASE ASSESSMENT", 20.0, "mg/L", "2024-02-09", 3.3, 19.4, "MONTH 1", 6),
    ("A", 11, "LLCFR", "Lambda Lt Chain,Free", "DISEASE ASSESSMENT", 12.0, "mg/L", "2024-02-09", 5.7, 26.3, "MONTH 1", 6),
    ("A", 12, "MCPROT", "Monoclonal Protein", "DISEASE ASSESSMENT", 3.0, "g/L", "2023-12-26", None, None, "SCREENING", 1),
    ("A", 13, "INTLK6", "Interleukin 6", "CYTOKINES", 4.0, "pg/mL", "2024-01-04", None, 7, "SCREENING", 1),
    ("B", 1, "PLAT", "Platelets", "HEMATOLOGY", 200.0, "10^9/L", "2024-01-03", 150, 400, "SCREENING", 1),
    ("B", 2, "INTLK6", "Interleukin 6", "CYTOKINES", 900.0, "pg/mL", "2024-01-12", None, 7, "DAY 3", 3.1),
    ("C", 1, "PLAT", "Platelets", "HEMATOLOGY", 100.0, "10^9/L", "2024-01-20", 150, 400, "DAY 11", 4),
]


def _lb() -> pd.DataFrame:
    lb = pd.DataFrame(LB_ROWS, columns=["USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBSTRESN", "LBSTRESU",
                                        "LBDTC", "LBSTNRLO", "LBSTNRHI", "VISIT", "VISITNUM"])
    lb["STUDYID"] = "S"
    lb["LBSTRESC"] = lb["LBSTRESN"].map("{:g}".format)
    lb["LBSPEC"] = np.where(lb["LBTESTCD"].eq("MCPROT"), "URINE", None)
    lb["LBSEQ"] = lb["LBSEQ"].astype("float64")
    return lb


@pytest.fixture(scope="module")
def built(settings_dir):
    return adlb.build({"LB": _lb()}, _adsl(), settings_dir)


def _rec(out, usubjid, paramcd, adt=None, dtype=None, basetype=None):
    sel = out["USUBJID"].eq(usubjid) & out["PARAMCD"].eq(paramcd)
    if basetype is not None:
        sel &= out["BASETYPE"].eq(basetype)
    sel &= out["DTYPE"].isna() if dtype is None else out["DTYPE"].eq(dtype)
    if adt is not None:
        sel &= out["ADT"].eq(T(adt))
    rows = out[sel]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def test_pre_ld_baseline_change_and_grades(built):
    out, _ = built
    assert set(out.loc[out["PARAMCD"].eq("PLAT"), "BASETYPE"]) == {"PRE-LD"}
    # Baseline = last value on/before LDSDT 2024-01-05: 140 (the 160 at screening is earlier).
    base = _rec(out, "A", "PLAT", "2024-01-05")
    assert base["ABLFL"] == "Y" and base["BASE"] == 140.0
    assert base["ANRIND"] == "LOW" and base["ATOXGRL"] == "1"  # 140 < LLN 150 -> grade 1
    day8 = _rec(out, "A", "PLAT", "2024-01-17")
    assert day8["CHG"] == pytest.approx(-90.0)  # 50 - 140
    assert day8["PCHG"] == pytest.approx(-64.2857142857)  # -90 / 140 * 100
    assert day8["ATOXGRL"] == "2"  # exactly 50: "<75 - 50" -> grade 2, not 3
    assert day8["BTOXGRL"] == "1" and day8["BNRIND"] == "LOW"
    assert day8["ADY"] == 8.0  # 2024-01-17 - 2024-01-10 + 1
    assert _rec(out, "A", "PLAT", "2024-01-24")["ATOXGRL"] == "3"  # 49.9 < 50
    screening = _rec(out, "A", "PLAT", "2023-12-26")
    assert screening["ABLFL"] is None and np.isnan(screening["CHG"]) and screening["ADY"] == -15.0
    assert screening["ATOXGRH"] is None  # no CTCAE high-direction term for platelets


def test_missing_pre_ld_baseline(built):
    out, _ = built
    rec = _rec(out, "C", "PLAT")
    assert rec["ABLFL"] is None and np.isnan(rec["BASE"]) and np.isnan(rec["CHG"]) and rec["BTOXGRL"] is None
    assert rec["ATOXGRL"] == "1"  # 100: 75 <= 100 < LLN 150


def test_cytokine_baselines_pre_infusion_and_pre_ld_and_peak(built):
    out, _ = built
    il6 = out[out["USUBJID"].eq("A") & out["PARAMCD"].eq("INTLK6")]
    # 4 observed records + 1 peak, each once per baseline type.
    assert il6.groupby("BASETYPE").size().to_dict() == {"PRE-INFUSION": 5, "PRE-LD": 5}
    # 08:00 on the infusion day, infusion at 10:00 -> pre-infusion baseline 5; pre-LD baseline 4
    # (2024-01-04, before the first LD dose on 01-05).
    assert _rec(out, "A", "INTLK6", "2024-01-10", basetype="PRE-INFUSION")["ABLFL"] == "Y"
    assert _rec(out, "A", "INTLK6", "2024-01-04", basetype="PRE-LD")["ABLFL"] == "Y"
    assert _rec(out, "A", "INTLK6", "2024-01-10", basetype="PRE-LD")["CHG"] == 1.0  # post-LD: 5 - 4
    peak = _rec(out, "A", "INTLK6", dtype="MAXIMUM", basetype="PRE-INFUSION")
    assert peak["AVAL"] == 500.0 and peak["ADT"] == T("2024-01-12") and peak["AVISIT"] == "POST-INFUSION PEAK"
    assert peak["CHG"] == 495.0 and peak["PCHG"] == pytest.approx(9900.0)  # (500 - 5) / 5 * 100
    assert peak["ABLFL"] is None and peak["SRCSEQ"] == 6.0
    peak_ld = _rec(out, "A", "INTLK6", dtype="MAXIMUM", basetype="PRE-LD")
    assert peak_ld["CHG"] == 496.0 and peak_ld["PCHG"] == pytest.approx(12400.0)  # (500 - 4) / 4 * 100


def test_never_infused_subject_has_no_pre_infusion_baseline_or_peak(built):
    out, _ = built
    b = out[out["USUBJID"].eq("B")]
    il6 = b[b["PARAMCD"].eq("INTLK6")]
    # One record per baseline type, no peak; 2024-01-12 is after B's LD start: no PRE-LD baseline either.
    assert sorted(il6["BASETYPE"]) == ["PRE-INFUSION", "PRE-LD"] and il6["DTYPE"].isna().all()
    assert il6["ABLFL"].isna().all() and il6["BASE"].isna().all() and il6["ADY"].isna().all()
    # B's pre-LD platelet baseline still exists: 200 on 2024-01-03 before LDSDT.
    assert _rec(out, "B", "PLAT")["ABLFL"] == "Y"


def test_dflc_derived_parameter(built):
    out, _ = built
    dflc = out[out["PARAMCD"].eq("DFLC")].sort_values("ADT")
    # Reference pair (pre-infusion) kappa 100 >= lambda 10: kappa involved.
    # 2023-12-26: 100 - 10 = 90 (baseline); 2024-02-09: 20 - 12 = 8, CHG = 8 - 90 = -82.
    assert dflc["AVAL"].tolist() == [90.0, 8.0]
    assert dflc["ABLFL"].tolist() == ["Y", None]
    assert dflc["CHG"].iloc[1] == -82.0
    assert set(dflc["PARAMTYP"]) == {"DERIVED"} and set(dflc["BASETYPE"]) == {"PRE-INFUSION"}
    assert dflc["SRCDOM"].isna().all()


def test_param_rule_for_urine_specimen(built):
    out, findings = built
    rec = _rec(out, "A", "MCPROTU")
    assert rec["PARAM"] == "Monoclonal Protein in Urine (g/L)"  # default PARAM of a renamed test
    assert not [f for f in findings if f.severity == "Error"]


def test_columns_follow_the_spec(built):
    out, _ = built
    spec = Dataset.model_validate(yaml.safe_load((ROOT / "specs" / "adam" / "adlb.yaml").read_text()))
    assert list(out.columns) == spec.variable_names
    assert not out.duplicated(spec.keys).any()


def test_baseline_flag_differences_with_sdtm_are_reported(settings_dir):
    lb = _lb()
    # SDTM flagged the screening platelet count of A (LBSEQ 1) instead of the LD-day one (LBSEQ 2).
    lb["LBLOBXFL"] = np.where(lb["USUBJID"].eq("A") & lb["LBSEQ"].eq(1.0), "Y", None)
    _, findings = adlb.build({"LB": lb}, _adsl(), settings_dir)
    plat = [f for f in findings if f.rule == "ADAM.ADLB.BASELINE" and f.value == "PLAT"]
    # A LBSEQ 1 (flagged in SDTM only), A LBSEQ 2 and B LBSEQ 1 (ABLFL only): 2 + 1 = 3 records.
    assert len(plat) == 1 and plat[0].message.startswith("3 PLAT")


def test_param_rules_first_match_wins(settings_dir):
    lb = _lb()
    ife = lb[lb["LBTESTCD"].eq("MCPROT")].assign(LBSEQ=99.0, LBSTRESN=np.nan, LBSTRESC="POSITIVE", LBSTRESU=None,
                                                  LBMETHOD="IMMUNOFIXATION ELECTROPHORESIS")
    lb = pd.concat([lb.assign(LBMETHOD=None), ife], ignore_index=True)
    out, _ = adlb.build({"LB": lb}, _adsl(), settings_dir)
    # Urine IFE matches the method-specific rule before the urine fallback rule.
    rec = _rec(out, "A", "MCPROTUI")
    assert rec["PARAM"] == "Urine M-Protein by Immunofixation" and rec["AVALC"] == "POSITIVE"
    assert _rec(out, "A", "MCPROTU")["AVAL"] == 3.0


def test_prolonged_cytopenia(built):
    out, _ = built
    # A: platelets graded after infusion 2024-01-10: 01-17 (7 days) and 01-24 (14 days) -> none at >= 28 days.
    assert out[out["PARAMCD"].eq("PCYTPLAT")].empty


def test_prolonged_cytopenia_first_assessment_after_day_28(settings_dir):
    lb = _lb()
    late = pd.DataFrame([
        # day 28 after infusion (2024-02-07): 40 x10^9/L -> grade 3; day 35: recovered to 100 (grade 1).
        ("A", 20, "PLAT", "Platelets", "HEMATOLOGY", 40.0, "10^9/L", "2024-02-07", 150, 400, "DAY 28", 7),
        ("A", 21, "PLAT", "Platelets", "HEMATOLOGY", 100.0, "10^9/L", "2024-02-14", 150, 400, "DAY 35", 8),
        # C: day 27 grade 4 (too early), day 30 grade 2 -> N.
        ("C", 20, "PLAT", "Platelets", "HEMATOLOGY", 20.0, "10^9/L", "2024-02-06", 150, 400, "DAY 27", 7),
        ("C", 21, "PLAT", "Platelets", "HEMATOLOGY", 60.0, "10^9/L", "2024-02-09", 150, 400, "DAY 30", 8),
    ], columns=["USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBSTRESN", "LBSTRESU", "LBDTC", "LBSTNRLO",
                "LBSTNRHI", "VISIT", "VISITNUM"]).assign(STUDYID="S", LBSPEC=None, LBSTRESC=lambda d: d["LBSTRESN"].astype(str))
    out, _ = adlb.build({"LB": pd.concat([lb, late], ignore_index=True)}, _adsl(), settings_dir)
    pc = out[out["PARAMCD"].eq("PCYTPLAT")].set_index("USUBJID")
    assert pc.loc["A", "AVALC"] == "Y" and pc.loc["A", "AVAL"] == 1.0 and pc.loc["A", "ADT"] == T("2024-02-07")
    assert pc.loc["C", "AVALC"] == "N" and pc.loc["C", "ADY"] == 31.0  # 2024-02-09 - 2024-01-10 + 1
    assert set(pc["PARAMTYP"]) == {"DERIVED"} and "B" not in pc.index
