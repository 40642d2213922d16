"""ADEX: the exposure-parameter verbs (adam.verbs_occds) and the bundled study's plan
(specs/plans/adex.yaml) on literal EX/SUPPEX/ADSL fixtures; expected values worked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from cdisc_pipe.adam.verbs import VERBS
from cdisc_pipe.spec.load import load_specs
from tests.test_adam_adae import run_bundled_plan, run_verb

ROOT = Path(__file__).resolve().parents[1]
T = pd.Timestamp


@pytest.fixture(scope="module")
def spec():
    return load_specs(ROOT / "specs")


# --------------------------------------------------------------------------------------------
# derive_param_exposure, derive_param_ratio


EXREC = pd.DataFrame({
    "STUDYID": "S", "USUBJID": ["A", "A", "A", "B", "B"], "SEQ": [1.0, 2.0, 3.0, 1.0, 2.0],
    "CAT": ["X", "X", "Y", "X", "X"], "DOSE": [10.0, 20.0, 5.0, np.nan, 7.0], "U": ["mg", "mg", "mg", "mg", "g"],
    "TXT": ["1.5", None, None, "abc", "2"],
    "SDT": [T("2024-01-02"), T("2024-01-01"), T("2024-01-05"), T("2024-02-01"), T("2024-02-03")],
})


def test_exposure_sum_with_dates_and_unit_check():
    out, findings = run_verb("derive_param_exposure", EXREC.iloc[:0].copy(), {"EXREC": EXREC}, dataset="ADEX",
                             dataset_add="EXREC", paramcd="XCUM", param="Cumulative X", source_var="DOSE",
                             function="sum", filter=[{"variable": "CAT", "values": ["X"]}], start_date="SDT",
                             end_date="SDT", unit_var="U", unit="mg", set_values={"PARCAT1": "X"})
    rec = out.set_index("USUBJID")
    # A: 10 + 20 = 30, dates 01-01..01-02 (seq 2 is earlier); B: the missing dose does not count
    # (nor its date): 7, 02-03..02-03.  B's seq 2 is in g, not mg: reported (Error), still summed.
    assert rec.loc["A", "AVAL"] == 30.0 and (rec.loc["A", "ASTDT"], rec.loc["A", "AENDT"]) == (T("2024-01-01"),
                                                                                               T("2024-01-02"))
    assert rec.loc["B", "AVAL"] == 7.0 and rec.loc["B", "ASTDT"] == T("2024-02-03")
    assert set(out["PARAMCD"]) == {"XCUM"} and set(out["PARCAT1"]) == {"X"}
    assert [(f.rule, f.severity) for f in findings] == [("ADAM.ADEX.UNIT", "Error")]


def test_exposure_first_by_order_from_the_dataset_itself_text_values_as_numbers():
    df = EXREC.assign(PARAMCD=None)
    out, findings = run_verb("derive_param_exposure", df, dataset="ADEX", paramcd="XFIRST", param="First X",
                             source_var="TXT", function="first", order=["SDT", "SEQ"],
                             filter=[{"variable": "CAT", "values": ["X"]}])
    new = out[out["PARAMCD"].eq("XFIRST")].set_index("USUBJID")
    # A: the X records with TXT present: only seq 1 ("1.5") -> 1.5.  B: "abc" is not a number
    # (missing), "2" -> 2.  The source records stay (a later filter_records drops them).
    assert new["AVAL"].to_dict() == {"A": 1.5, "B": 2.0} and len(out) == len(df) + 2 and findings == []
    out, findings = run_verb("derive_param_exposure", df, dataset="ADEX", paramcd="XFIRST", param="First X",
                             source_var="DOSE", function="first", order=["SDT"],
                             filter=[{"variable": "CAT", "values": ["X"]}])
    # A has two X doses: the first by SDT is seq 2 (01-01, 20); several records reported (Warning).
    assert out[out["PARAMCD"].eq("XFIRST")].set_index("USUBJID")["AVAL"].to_dict() == {"A": 20.0, "B": 7.0}
    assert [f.rule for f in findings] == ["ADAM.ADEX.SEVERAL"]
    with pytest.raises(ValidationError):  # first/last need an order
        VERBS["derive_param_exposure"].args.model_validate(
            {"verb": "x", "paramcd": "P", "param": "P", "source_var": "V", "function": "first"})


def test_ratio_parameter_only_for_subjects_with_both():
    df = pd.DataFrame({"USUBJID": ["A", "A", "B", "C", "C"], "PARAMCD": ["DOSE", "PLAN", "PLAN", "DOSE", "PLAN"],
                       "AVAL": [0.95, 1.0, 3.0, 2.0, 0.0], "ASTDT": [T("2024-01-10"), pd.NaT, pd.NaT,
                                                                     T("2024-01-11"), pd.NaT]})
    out, _ = run_verb("derive_param_ratio", df, paramcd="PCT", param="Percent", numerator="DOSE",
                      denominator="PLAN", factor=100)
    pct = out[out["PARAMCD"].eq("PCT")].set_index("USUBJID")
    # A: 0.95 / 1.0 x 100 = 95, date of the DOSE record; B has no DOSE: no record; C: planned 0 -> missing
    assert list(pct.index) == ["A", "C"] and pct.loc["A", "AVAL"] == pytest.approx(95.0)
    assert pct.loc["A", "ASTDT"] == T("2024-01-10") and np.isnan(pct.loc["C", "AVAL"])


# --------------------------------------------------------------------------------------------
# the bundled study's plan


@pytest.fixture(scope="module")
def built(spec, tmp_path_factory):
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
        "EXENDTC": [None] * 8,
        "EXVAMT": [np.nan] * n_ld + [70.0, np.nan],
    })
    suppex = pd.DataFrame({"STUDYID": "S", "RDOMAIN": "EX", "USUBJID": ["A"], "IDVAR": "EXSEQ", "IDVARVAL": ["7"],
                           "QNAM": "TOTCARTC", "QLABEL": "Total CAR+ T Cells (10^6)", "QVAL": ["66.5"]})
    return run_bundled_plan("ADEX", {"EX": ex, "SUPPEX": suppex, "ADSL": adsl}, spec, tmp_path_factory.mktemp("adex"))


def _val(out, usubjid, paramcd):
    rows = out[out["USUBJID"].eq(usubjid) & out["PARAMCD"].eq(paramcd)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_lymphodepletion_cumulative_doses(built):
    out, _ = built
    flu = _val(out, "A", "FLUCUM")
    assert flu["AVAL"] == 90.0  # 3 days x 30 mg/m2
    # EXENDTC missing: the end date is the start date -> 01-05 .. 01-07
    assert (flu["ASTDT"], flu["AENDT"]) == (T("2024-01-05"), T("2024-01-07"))
    assert _val(out, "A", "CYCUM")["AVAL"] == 900.0  # 3 x 300 mg/m2
    assert _val(out, "B", "FLUCUM")["AVAL"] == 30.0  # one day only
    assert out[out["USUBJID"].eq("B") & out["PARAMCD"].eq("CYCUM")].empty
    assert flu["PARCAT1"] == "LYMPHODEPLETION" and flu["TRT01P"] == "DL1" and flu["SAFFL"] == "Y"


def test_car_t_planned_versus_actual(built):
    out, findings = built
    assert _val(out, "A", "CARTPDOS")["AVAL"] == 1.0 and pd.isna(_val(out, "A", "CARTPDOS")["ASTDT"])
    dose = _val(out, "A", "CARTDOSE")
    assert dose["AVAL"] == 0.95 and dose["ASTDT"] == dose["AENDT"] == T("2024-01-10")  # time part dropped
    assert _val(out, "A", "CARTPCT")["AVAL"] == pytest.approx(95.0)  # 0.95 / 1.0 x 100
    assert _val(out, "A", "TOTCARTC")["AVAL"] == 66.5
    assert _val(out, "A", "INFVOL")["AVAL"] == 70.0
    # Never infused: planned dose only.
    b = out[out["USUBJID"].eq("B")]
    assert sorted(b["PARAMCD"]) == ["CARTPDOS", "FLUCUM"] and _val(out, "B", "CARTPDOS")["AVAL"] == 3.0
    assert out.groupby("PARAMCD")["PARAM"].nunique().eq(1).all() and findings == []


def test_columns_and_codelists_follow_the_spec(built, spec):
    out, _ = built
    assert list(out.columns) == spec.dataset("ADEX").variable_names
    codes = yaml.safe_load((ROOT / "specs" / "codelists" / "adex_paramcd.yaml").read_text())
    assert set(out["PARAMCD"]) <= {t["submission_value"] for t in codes["terms"]}
    names = yaml.safe_load((ROOT / "specs" / "codelists" / "adex_param.yaml").read_text())
    assert {t["submission_value"] for t in names["terms"]} == set(out["PARAM"])
