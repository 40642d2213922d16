"""ADAE: the OCCDS verbs (adam.verbs_occds) and the bundled study's plan (specs/plans/adae.yaml),
on literal AE/SUPPAE/ADSL fixtures; expected values worked by hand in the comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from cdisc_pipe.adam import conform_to_spec
from cdisc_pipe.adam.derive import convert_blanks_to_na
from cdisc_pipe.adam.plan import load_plans, run_plan
from cdisc_pipe.adam.verbs import VERBS, Context
from cdisc_pipe.spec.load import load_specs

ROOT = Path(__file__).resolve().parents[1]
T = pd.Timestamp
CRS = "Cytokine release syndrome"
ICANS = "Immune effector cell-associated neurotoxicity syndrome"


def run_verb(name: str, df: pd.DataFrame, frames: dict | None = None, dataset: str = "ADXX", **args):
    """Run one verb as a plan step would; returns (frame, findings)."""
    verb = VERBS[name]
    step = verb.args.model_validate({"verb": name, **args})
    ctx = Context(frames=frames or {}, dataset=dataset)
    return verb.run(df, step, ctx), ctx.findings


@pytest.fixture(scope="module")
def spec():
    return load_specs(ROOT / "specs")


def run_bundled_plan(name: str, frames: dict, spec, tmp: Path):
    """The bundled study's plan for ``name`` alone (other plans not loaded), run as build_adam does."""
    folder = tmp / "plans"
    folder.mkdir(exist_ok=True)
    shutil.copy(ROOT / "specs" / "plans" / f"{name.lower()}.yaml", folder)
    plan = load_plans(folder, spec)[name]
    out, findings = run_plan(plan, {k: convert_blanks_to_na(v) for k, v in frames.items()})
    out, conform = conform_to_spec(out, spec.dataset(name))
    assert not [f for f in conform if f.rule == "ADAM.SPEC.NOTDERIVED"]
    return out, findings


# --------------------------------------------------------------------------------------------
# derive_vars_event_dt


def test_event_dt_start_bounded_by_the_later_reference_date_in_the_period():
    df = pd.DataFrame({
        "USUBJID": ["A", "A", "A", "B"], "AESEQ": [1.0, 2.0, 3.0, 1.0],
        "AESTDTC": ["2024-01", "2024", "2024-01-03", "2024-02"],
        "AEENDTC": [None, "2024-01-07", None, "2024-02"],
        "LD": [T("2024-01-05")] * 3 + [pd.NaT], "TRT": [T("2024-01-10")] * 3 + [pd.NaT],
        "DTH": [pd.NaT] * 3 + [T("2024-02-15")],
    })
    out, findings = run_verb("derive_vars_event_dt", df, start_dtc="AESTDTC", end_dtc="AEENDTC",
                             min_dates=["LD", "TRT"], death_date="DTH")
    # 1: "2024-01" -> 01-01; LD 01-05 and TRT 01-10 both in January -> the later, 01-10 (flag D).
    # 2: "2024" -> 2024-01-01, both in 2024 -> 01-10, but it ended 01-07 -> moved back to 01-07 (flag M).
    # 3: complete: not imputed, no flag.  B: "2024-02" start -> 02-01 (no bound); end -> 02-29,
    #    but death 02-15 lies in February -> 02-15.
    assert out["ASTDT"].tolist() == [T("2024-01-10"), T("2024-01-07"), T("2024-01-03"), T("2024-02-01")]
    assert out["ASTDTF"].tolist() == ["D", "M", None, "D"]
    assert out["AENDT"].tolist()[1:] == [T("2024-01-07"), pd.NaT, T("2024-02-15")]
    assert out["AENDTF"].tolist() == [None, None, None, "D"] and findings == []


def test_event_dt_neutral_defaults_and_invalid_dates_reported():
    df = pd.DataFrame({"USUBJID": ["A", "A"], "AESEQ": [1.0, 2.0], "AESTDTC": ["2024-01", "JAN2024"],
                       "AEENDTC": [None, None], "LDSDT": [T("2024-01-05")] * 2})
    # no min_dates given: LDSDT in the frame is not used (nothing study-specific by default)
    out, findings = run_verb("derive_vars_event_dt", df, dataset="ADAE", start_dtc="AESTDTC", end_dtc="AEENDTC")
    assert out["ASTDT"].iloc[0] == T("2024-01-01") and pd.isna(out["ASTDT"].iloc[1])
    assert [(f.rule, f.seq, f.value) for f in findings] == [("ADAM.ADAE.ASTDT", 2.0, "JAN2024")]


# --------------------------------------------------------------------------------------------
# derive_var_record_window_flag


def test_window_event_flag_edges_and_reports():
    df = pd.DataFrame({
        "USUBJID": ["A", "A", "A", "A", "A", "B"], "AESEQ": [1.0, 2.0, 3.0, 4.0, 5.0, 1.0],
        "AEDECOD": ["P", "Q", "R", "S", "T", "U"], "FLAG": ["Y", "Y", "Y", "Y", None, "Y"],
        "ASTDT": [T("2024-01-10"), T("2024-02-07"), T("2024-02-08"), pd.NaT, T("2024-01-12"), T("2024-01-12")],
        "TRTSDT": [T("2024-01-10")] * 5 + [pd.NaT],
    })
    out, findings = run_verb("derive_var_record_window_flag", df, dataset="ADAE", new_var="ADLTFL",
                             source_flag="FLAG", window=[0, 28], term_var="AEDECOD", seq_var="AESEQ")
    # day 0 (the reference day) and day 28 (02-07 - 01-10) are inside; day 29 outside; unknown onset
    # outside; not adjudicated (5) never flagged; B has no reference date.
    assert out["ADLTFL"].tolist() == ["Y", "Y", None, None, None, None]
    assert [(f.usubjid, f.seq) for f in findings] == [("A", 3.0), ("A", 4.0), ("B", 1.0)]
    assert "onset 29 days after TRTSDT" in findings[0].message and "onset date unknown" in findings[1].message
    assert "TRTSDT missing" in findings[2].message and findings[0].value == "R"


def test_window_event_flag_reports_disagreement_with_subject_flag():
    df = pd.DataFrame({"USUBJID": ["A", "B"], "D": ["Y", None],
                       "ASTDT": [T("2024-01-11")] * 2, "TRTSDT": [T("2024-01-10")] * 2})
    adsl = pd.DataFrame({"USUBJID": ["A", "B", "C"], "DLTFL": ["N", "N", "Y"]})
    _, findings = run_verb("derive_var_record_window_flag", df, {"ADSL": adsl}, dataset="ADAE", new_var="ADLTFL",
                           source_flag="D", window=[0, 28], subject_dataset="ADSL", subject_flag="DLTFL")
    # A flagged here but ADSL says N; C flagged in ADSL without a record here; B agrees.
    assert [(f.rule, f.usubjid) for f in findings] == [("ADAM.ADAE.SUBJFLAG", "A"), ("ADAM.ADAE.SUBJFLAG", "C")]
    with pytest.raises(ValidationError):
        VERBS["derive_var_record_window_flag"].args.model_validate(
            {"verb": "x", "new_var": "F", "source_flag": "D", "window": [0, 28], "subject_dataset": "ADSL"})
    with pytest.raises(ValidationError):  # [first day, last day]
        VERBS["derive_var_record_window_flag"].args.model_validate(
            {"verb": "x", "new_var": "F", "source_flag": "D", "window": [28, 0]})


# --------------------------------------------------------------------------------------------
# derive_vars_toxgr_collected, derive_vars_suppqual


def test_toxicity_grade_from_collected_grade():
    df = pd.DataFrame({"AETOXGR": ["1", "5", None, "6", "X"]})
    out, findings = run_verb("derive_vars_toxgr_collected", df, dataset="ADAE", source_var="AETOXGR")
    assert out["ATOXGR"].tolist() == ["1", "5", None, "6", "X"]
    assert out["ATOXGRN"].tolist()[:2] == [1.0, 5.0] and out["ATOXGRN"].iloc[2:].isna().all()
    # "6" and "X" are outside 1-5: reported once (Error), no number
    assert [(f.rule, f.severity, f.value) for f in findings] == [("ADAM.ADAE.ATOXGR", "Error", "6, X")]


def test_suppqual_as_variables():
    ae = pd.DataFrame({"USUBJID": ["A", "A", "B"], "AESEQ": [1.0, 2.0, 1.0]})
    supp = pd.DataFrame({"USUBJID": ["A", "B"], "IDVAR": ["AESEQ", "AESEQ"], "IDVARVAL": ["2", " 1"],
                         "QNAM": ["AEDLT", "AEDLT"], "QVAL": ["Y", "N"]})
    out, _ = run_verb("derive_vars_suppqual", ae, {"SUPPAE": supp}, dataset_add="SUPPAE",
                      new_vars={"_D": "AEDLT", "_X": "NOSUCH"})
    # IDVARVAL " 1" (blank-padded, SDTMIG 3.1 style) still links to AESEQ 1; an absent QNAM is missing
    assert out["_D"].tolist() == [None, "Y", "N"] and out["_X"].isna().all()
    out, _ = run_verb("derive_vars_suppqual", ae, {}, dataset_add="SUPPAE", new_vars=["AEDLT"])
    assert out["AEDLT"].isna().all()  # no SUPPAE at all (required: false)
    assert VERBS["derive_vars_suppqual"].sources(
        VERBS["derive_vars_suppqual"].args.model_validate({"verb": "x", "dataset_add": "SUPPAE", "new_vars": ["Q"],
                                                          "required": True})) == ["SUPPAE"]


# --------------------------------------------------------------------------------------------
# the bundled study's plan


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
AE_COLS = ["USUBJID", "AESEQ", "AEDECOD", "AEBODSYS", "AESTDTC", "AEENDTC", "AETOXGR"]


def _ae(rows=AE_ROWS) -> pd.DataFrame:
    ae = pd.DataFrame(rows, columns=AE_COLS)
    ae["STUDYID"] = "S"
    ae["AETERM"] = ae["AEDECOD"].str.upper()
    ae["AESEQ"] = ae["AESEQ"].astype("float64")
    for v in ("AESER", "AEREL", "AEOUT"):
        ae[v] = None
    return ae


def _suppae(seqs) -> pd.DataFrame:
    return pd.DataFrame({"STUDYID": "S", "RDOMAIN": "AE", "USUBJID": "A", "IDVAR": "AESEQ",
                         "IDVARVAL": [str(s) for s in seqs], "QNAM": "AEDLT", "QLABEL": "Dose-Limiting Toxicity",
                         "QVAL": ["Y"] * len(seqs)})


@pytest.fixture(scope="module")
def built(spec, tmp_path_factory):
    out, findings = run_bundled_plan("ADAE", {"AE": _ae(), "SUPPAE": _suppae([4, 5, 6]), "ADSL": _adsl()}, spec,
                                     tmp_path_factory.mktemp("adae"))
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
    assert (te["TRTA"], te["TRTAN"], te["ATOXGR"], te["ATOXGRN"]) == ("DL1", 1.0, "3", 3.0)


def test_dlt_window(built):
    out, findings = built
    # ICANS on day 2 (01-12 - 01-10 = 2) and neutropenia on 02-07 (28 days after) are DLTs;
    # 02-08 is 29 days after the infusion: adjudicated DLT outside the window, reported.
    assert out.loc[("A", 4.0)]["ADLTFL"] == "Y"
    assert out.loc[("A", 5.0)]["ADLTFL"] == "Y"
    late = out.loc[("A", 6.0)]
    assert late["AEDLT"] == "Y" and late["ADLTFL"] is None
    dlt = [f for f in findings if f.rule == "ADAM.ADAE.OUTWINDOW"]
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


def test_columns_follow_the_spec(built, spec):
    out, _ = built
    assert list(out.columns) == spec.dataset("ADAE").variable_names


def test_partial_start_date_imputed_to_ld_start_when_only_ld_in_period(spec, tmp_path):
    ae = _ae([("D", 2, "Pyrexia", "General disorders", "2024-02", None, "1")])
    out, _ = run_bundled_plan("ADAE", {"AE": ae, "ADSL": _adsl()}, spec, tmp_path)  # no SUPPAE at all
    # D: LD 2024-02-25 lies in February, infusion 2024-03-01 does not -> 2024-02-25, LD-emergent.
    r = out.iloc[0]
    assert r["ASTDT"] == T("2024-02-25") and r["ASTDTF"] == "D" and r["LDEMFL"] == "Y" and r["TRTEMFL"] is None
    assert r["AEDLT"] is None


def test_dltfl_disagreement_with_adsl_is_reported(spec, tmp_path):
    adsl = _adsl().assign(DLTFL=["N", None, "Y"])  # A has DLTs in ADAE; D has none
    _, findings = run_bundled_plan("ADAE", {"AE": _ae(), "SUPPAE": _suppae([4]), "ADSL": adsl}, spec, tmp_path)
    assert sorted(f.usubjid for f in findings if f.rule == "ADAM.ADAE.SUBJFLAG") == ["A", "D"]


def test_plan_methods_name_no_files(spec, tmp_path):
    folder = tmp_path / "plans"
    folder.mkdir()
    shutil.copy(ROOT / "specs" / "plans" / "adae.yaml", folder)
    methods = load_plans(folder, spec)["ADAE"].methods
    assert "28 days" in methods["ADLTFL"] and "AEDLT = 'Y'" in methods["ADLTFL"]
    assert "LDSDT and/or TRTSDT" in methods["ASTDT"] and "ADSL.DTHDT" in methods["ASTDT"]
    assert not [v for v, t in methods.items() if ".yaml" in t or ".py" in t]
