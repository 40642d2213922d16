"""Issue #16 items 1-3, "no silent wrong results": the data cut-off, plausibility rules, text and
censored results in numeric tests.  Unit cases on literal tables; end-to-end cases copy the bundled
raw export, change one cell and run the pipeline (exit code and message asserted)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe import cutoff as co
from cdisc_pipe.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the cut-off, unit level
def test_after_cutoff_compares_at_the_values_precision():
    s = pd.Series(["2024-06-30", "2024-07-01T08:00", "2024-07", "2024-06", "2025", "2024", None, "garbage"], dtype=object)
    assert co.after_cutoff(s, "2024-06-30").tolist() == [False, True, True, False, True, False, False, False]
    assert not co.after_cutoff(s, None).any()


def _specs(tmp_path: Path, text: str | None) -> Path:
    (tmp_path / "settings").mkdir(parents=True, exist_ok=True)
    if text is not None:
        (tmp_path / "settings" / co.SETTINGS_FILE).write_text(text)
    return tmp_path


def test_cutoff_order_option_setting_export_date_audit_none(tmp_path):
    forms = {"vs": pd.DataFrame({"ENTRYDTM": ["2024-01-02 10:00:00", None], "MODDTM": ["2024-03-05 09:00:00", "x"]}),
             "ae": pd.DataFrame({"ENTRYDTM": ["2024-02-01 08:00:00"]})}
    raw = SimpleNamespace(forms=forms, export_date=None)
    specs = _specs(tmp_path, "cutoff: null\naudit_columns: [ENTRYDTM, MODDTM]\n")
    got = co.resolve(None, specs, raw)
    assert got.date == "2024-03-05" and "vs.MODDTM" in got.source
    assert co.resolve(None, specs, SimpleNamespace(forms=forms, export_date="2024-02-10T00:00:00")).date == "2024-02-10"
    (specs / "settings" / co.SETTINGS_FILE).write_text("cutoff: 2023-12-31\naudit_columns: [ENTRYDTM]\n")
    assert co.resolve(None, specs, raw).date == "2023-12-31"
    assert co.resolve("2022-01-31", specs, raw) == co.Cutoff("2022-01-31", "--cutoff")
    # no option, no setting, no export date, no audit column: no cut-off (never the wall clock)
    assert co.resolve(None, _specs(tmp_path / "empty", None), SimpleNamespace(forms=forms)).date is None


def test_latest_audit_date_looks_at_each_values_first_ten_characters():
    forms = {"lb": pd.DataFrame({"MODDTM": pd.Series(["2024-03-05 09:00:00", "2024-03-05", "2024-12-31x", "2025-13",
                                                      "", None, "2025-1-01 10:00", "2024-11-30T23:59"], dtype="str"),
                                 "N": [1, 2, 3, 4, 5, 6, 7, 8]}),
             "vs": pd.DataFrame({"MODDTM": ["9999-99-99", None]}),  # shaped like a date: counted (no calendar check)
             "ae": pd.DataFrame({"MODDTM": [None, None]}, dtype=object),
             "cm": pd.DataFrame({"MODDTM": [20240101, 20250101]})}  # numbers are not ISO dates
    # lb alone: "2024-12-31x" starts with a date; "2025-13" and "2025-1-01 ..." do not
    assert co.latest_audit_date({"lb": forms["lb"]}, ["MODDTM", "N"]) == ("2024-12-31", "lb.MODDTM")
    assert co.latest_audit_date(forms, ["MODDTM"]) == ("9999-99-99", "vs.MODDTM")
    assert co.latest_audit_date({"ae": forms["ae"], "cm": forms["cm"]}, ["MODDTM"]) == (None, None)


def test_a_bad_cutoff_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not a date YYYY-MM-DD"):
        co.check_date("2024-02-30", "command line", "--cutoff")
    from cdisc_pipe.cli import main

    assert main(["run", "--out", str(tmp_path / "o"), "--cutoff", "31/12/2024", "-q"]) == 2


def test_adam_dates_ignore_dates_after_the_cutoff():
    from cdisc_pipe.adam.derive import impute_dtc_dt, impute_dtc_dtm

    dtc = pd.Series(["2024-05-10", "2099-03-15T08:07", "2024-07"], dtype=object)
    with co.in_force("2024-06-30"):
        d, _ = impute_dtc_dt(dtc, "M", "first")
        dtm, _, _ = impute_dtc_dtm(dtc, "M", "first", "first")
    assert d.isna().tolist() == [False, True, True]
    assert dtm.isna().tolist() == [False, True, True]
    assert impute_dtc_dt(dtc, "M", "first")[0].notna().all()  # no cut-off in force


# ------------------------------------------------------------------ results, unit level
def test_text_result_keeps_the_parameter_of_its_test():
    from cdisc_pipe.adam.verbs_bds import derive_vars_params_from_findings

    lb = pd.DataFrame({"LBTESTCD": ["ALT", "ALT", "ALT", "GLUC"], "LBTEST": ["Alanine Aminotransferase"] * 3 + ["Glucose"],
                       "LBSTRESN": [23.0, np.nan, 30.0, np.nan], "LBSTRESC": ["23", "ABC", "30", "NOT DONE"],
                       "LBSTRESU": ["U/L", None, "U/L", None]})
    out = derive_vars_params_from_findings(lb, "LB")
    assert out.loc[out["PARAMCD"] == "ALT", "PARAM"].unique().tolist() == ["Alanine Aminotransferase (U/L)"]
    assert out["AVALC"].tolist()[1] == "ABC"
    assert out["PARAM"].tolist()[3] == "Glucose"  # a test with no unit anywhere keeps none


# ------------------------------------------------------------------ end to end on the bundled study
def _edit(raw: Path, form: str, column: str, value: str, **where: str) -> int:
    """Set one cell of ``raw/<form>.csv`` (the first row matching ``where``); returns its row number."""
    path = raw / f"{form}.csv"
    rows = list(csv.reader(path.open(newline="", encoding="utf-8")))
    head = rows[0]
    k = next(i for i, r in enumerate(rows) if i and all(r[head.index(c)] == v for c, v in where.items()))
    rows[k][head.index(column)] = value
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return k + 1  # header = row 1


def _run(tmp_path: Path, edit) -> tuple[int, Path, int]:
    from cdisc_pipe.cli import main

    raw = tmp_path / "raw"
    shutil.copytree(ROOT / "raw", raw)
    row = edit(raw)
    out = tmp_path / "out"
    return main(["run", "--raw", str(raw), "--out", str(out), "-q"]), out, row


def _json(path: Path) -> pd.DataFrame:
    d = json.loads(path.read_text(encoding="utf-8"))
    return pd.DataFrame(d["rows"], columns=[c["name"] for c in d["columns"]])


def _findings(out: Path, rule: str) -> list[dict]:
    v = json.loads((out / "reports" / "validation.json").read_text(encoding="utf-8"))
    return [f for f in v["findings"] if f["rule"] == rule]


def _subject_values(out: Path, subject: str) -> tuple:
    adsl = _json(out / "adam" / "adsl.json").set_index("USUBJID")
    tte = _json(out / "adam" / "adtte.json")
    dm = _json(out / "sdtm" / "dm.json").set_index("USUBJID")
    os_ = tte[(tte["USUBJID"] == subject) & (tte["PARAMCD"] == "OS")]["AVAL"].tolist()
    return adsl.loc[subject, "LSTALVDT"], os_, dm.loc[subject, "RFPENDTC"]


S1001 = "BCMACART01-101-1001"


def test_future_vs_date_is_an_error_and_changes_no_analysis_date(tmp_path, bundled_run):
    code, out, row = _run(tmp_path, lambda raw: _edit(raw, "vs", "VSDAT", "15 MAR 2099", SUBJID="1001",
                                                      VSDAT="27 APR 2022"))
    assert code == 1
    (f,) = _findings(out, "SDTM.DATE.AFTERCUTOFF")
    assert f["severity"] == "Error" and f["value"] == "VSDAT=15 MAR 2099 -> 2099-03-15T08:07"
    assert "raw column VSDAT" in f["message"] and f"[vs:{row}]" in f["message"] and "2024-12-31" in f["message"]
    # the record keeps the collected date, without a study day; the analysis is the clean run's
    vs = _json(out / "sdtm" / "vs.json")
    late = vs[vs["VSDTC"].str.startswith("2099")]
    assert len(late) and late["VSDY"].isna().all()
    assert _subject_values(out, S1001) == _subject_values(bundled_run, S1001)
    assert _findings(out, "DT.DY.DY") == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data_cutoff"]["date"] == "2024-12-31"
    ts = _json(out / "sdtm" / "ts.json")
    assert ts.loc[ts["TSPARMCD"] == "DCUTDTC", "TSVAL"].tolist() == ["2024-12-31"]
    assert "Data cut-off of this package: 2024-12-31" in (out / "sdtm" / "define.xml").read_text(encoding="utf-8")


def test_future_ae_start_does_not_move_the_end_of_participation(tmp_path, bundled_run):
    code, out, row = _run(tmp_path, lambda raw: _edit(raw, "ae", "AESTDAT", "01 JAN 2099", SUBJID="1001",
                                                      AESTDAT="22 APR 2022"))
    assert code == 1
    (f,) = _findings(out, "SDTM.DATE.AFTERCUTOFF")
    assert f["value"] == "AESTDAT=01 JAN 2099 -> 2099-01-01" and f"[ae:{row}]" in f["message"]
    assert _subject_values(out, S1001) == _subject_values(bundled_run, S1001)


def test_negative_age_is_an_error_naming_the_raw_rows(tmp_path):
    code, out, row = _run(tmp_path, lambda raw: _edit(raw, "dm", "AGE", "-5", SUBJID="1002"))
    assert code == 1
    (f,) = _findings(out, "PL.AGE.NEG")
    assert f["severity"] == "Error" and f["value"] in ("-5", "-5.0") and f"dm:{row}" in f["message"]
    assert _findings(out, "PL.STUDY.AGE.RANGE") == []  # one finding for one cell


def test_text_and_censored_lab_results(tmp_path):
    def edit(raw: Path) -> tuple[int, int]:
        a = _edit(raw, "chem", "LBORRES", "ABC", SUBJID="1002", LBTESTCD="ALT")
        b = _edit(raw, "chem", "LBORRES", "<0.5", SUBJID="1003", LBTESTCD="ALT")
        return a, b

    code, out, (row_text, row_cens) = _run(tmp_path, edit)
    assert code == 0  # nothing wrong in the outputs: both values are reported and kept
    (f,) = _findings(out, "SDTM.NUM.INVALID")
    assert f["value"] == "ABC" and f"[chem:{row_text}]" in f["message"]
    cens = [f for f in _findings(out, "SDTM.RESULT.CENSORED") if f["value"] == "ALT <0.5"]
    assert len(cens) == 1 and f"[chem:{row_cens}]" in cens[0]["message"]
    lb = _json(out / "sdtm" / "lb.json")
    rec = lb[lb["LBORRES"] == "ABC"].iloc[0]
    assert rec["LBSTRESC"] == "ABC" and pd.isna(rec["LBSTRESN"])
    assert lb[lb["LBORRES"] == "<0.5"].iloc[0]["LBSTRESC"] == "<0.5"
    adlb = _json(out / "adam" / "adlb.json")
    assert adlb.loc[adlb["PARAMCD"] == "ALT", "PARAM"].nunique() == 1
    assert _findings(out, "AD.PARAMCD.PARAM") == [] and _findings(out, "ADAM.BDS.PARAM11") == []
