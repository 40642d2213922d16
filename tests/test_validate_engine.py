"""Validation engine, rule loading, statuses, reports (xlsx/html/json), stage findings, run-to-run diff."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.paths import shared_dir
from cdisc_pipe.validate import (
    ValidationSettings, load_rules, load_settings, run_validation, study_rule_files, validate_data,
)
from cdisc_pipe.validate import functions as vfun
from cdisc_pipe.validate.model import Rule
from cdisc_pipe.validate.report import safe_cell_value, write_html, write_xlsx, section

from tests.test_validate_rules import CT_TEXT, S1, clean_study  # shared literal fixture


def _rule(**kw) -> Rule:
    base = dict(id="T.TEST", standard="Test", severity="Error", category="Structure", message="test rule",
                check={"operator": "not_null", "variables": ["AETERM"]}, scope={"datasets": ["AE"]})
    base.update(kw)
    return Rule.model_validate(base)


# ---------------------------------------------------------------- rule files
def test_rule_file_problems_are_collected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
- id: X.ONE
  standard: Test
  severity: Error
  category: Structure
  message: m
  check: {operator: not_null, variable: [AETERM]}
- id: X.TWO
  standard: Test
  severity: Fatal
  category: Structure
  message: m
  check: {operator: not_null, variables: [AETERM]}
- id: X.THREE
  standard: Test
  severity: Error
  category: Structure
  message: m
  check: {operator: python, function: no_such_function}
- id: X.FOUR
  standard: Test
  severity: Error
  category: Structure
  message: m
  colour: red
  check: {operator: nope}
""")
    with pytest.raises(InputError) as exc:
        load_rules([bad])
    text = str(exc.value)
    assert "X.ONE" in text and "check.variable" in text  # wrong operator parameter
    assert "X.TWO" in text and "severity" in text
    assert "X.THREE" in text and "no_such_function" in text
    assert "X.FOUR" in text and "colour" in text


def test_rule_yaml_is_read_with_safe_loader(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("- !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(InputError):
        load_rules([evil])


def test_bundled_rules_have_references_only_where_confirmed():
    rules = load_rules()
    refs = {r.id: r.refs for r in rules}
    assert refs["DT.ISO8601.DTC"].core == "CORE-000547"
    assert refs["XPT.LENGTH.ACTUAL"].p21 == "SD1082" and refs["XPT.LENGTH.ACTUAL"].fda == "FDAC036"
    assert refs["TS.SSTDTC"].fda == "TRC 1734"
    confirmed = {"CORE-000547", "CORE-000189", "CG0665", "SD0006", "FDAC113", "SD1082", "FDAC036", "TRC 1734",
                 "TRC 1736"}
    used = {v for r in refs.values() for v in (r.p21, r.core, r.fda, r.cdisc) if v}
    assert used <= confirmed


# ---------------------------------------------------------------- statuses
def test_statuses_skipped_execution_error_and_run_continues():
    data, spec = clean_study()

    @vfun.rule_function("_test_boom")
    def boom(ctx, params):  # pragma: no cover - raising is the point
        raise RuntimeError("kaput")

    try:
        rules = [
            _rule(id="T.BOOM", check={"operator": "python", "function": "_test_boom"}),
            _rule(id="T.ABSENT", scope={"datasets": ["QS"]}),
            _rule(id="T.NOSPEC", needs_spec=True),
            _rule(id="T.NOVAR", check={"operator": "not_null", "variables": ["AEXYZ"]}),
            _rule(id="T.OK"),
            _rule(id="T.ISSUE", check={"operator": "is_null", "variables": ["AETERM"]}),
        ]
        results, findings = validate_data(data, None, {}, "CT folder not configured", ValidationSettings(), rules)
    finally:
        del vfun.FUNCTIONS["_test_boom"]
    by = {r.rule.id: r for r in results}
    assert by["T.BOOM"].status == "EXECUTION ERROR" and "kaput" in by["T.BOOM"].reason
    assert by["T.ABSENT"].status == "SKIPPED" and "QS" in by["T.ABSENT"].reason
    assert by["T.NOSPEC"].status == "SKIPPED" and "spec" in by["T.NOSPEC"].reason
    assert by["T.NOVAR"].status == "SKIPPED" and "AEXYZ" in by["T.NOVAR"].reason
    assert by["T.OK"].status == "SUCCESS"
    assert by["T.ISSUE"].status == "ISSUE" and by["T.ISSUE"].findings == 2
    assert all(r.seconds >= 0 for r in results)
    # findings carry subject and sequence number of the record
    assert sorted(findings["usubjid"]) == sorted(data.datasets["AE"]["USUBJID"])
    assert sorted(findings["seq"]) == [1.0, 1.0]


def test_ct_rules_skip_with_reason_without_ct_folder():
    data, spec = clean_study()
    rules = [r for r in load_rules() if r.id == "CT.PKG.NONEXT"]
    results, _ = validate_data(data, spec, {}, "CT folder not configured", ValidationSettings(), rules)
    assert results[0].status == "SKIPPED" and "CT folder not configured" in results[0].reason


def test_disabled_rule_and_severity_override():
    data, spec = clean_study()
    data.datasets["AE"].loc[0, "AETERM"] = None
    settings = ValidationSettings(disabled_rules=["T.OFF"], severity_overrides={"T.ON": "Notice"})
    results, findings = validate_data(data, spec, {}, None, settings, [_rule(id="T.OFF"), _rule(id="T.ON")])
    assert results[0].status == "SKIPPED" and results[0].reason == "disabled in settings"
    assert list(findings["severity"]) == ["Notice"]


def test_iso8601_partial_dates_are_valid_and_bad_ones_are_not():
    data, _ = clean_study()
    ae = data.datasets["AE"]
    good = ["2023", "2023-01", "2023-01-08", "2023---08", "2023-01-08T10", "2023-01-08T10:05",
            "2023-01-08T10:05:30", "2024-02-29", "2023-01-08T10:05:30.5"]
    bad = ["2023/01/08", "UNK", "2023-13", "2023-02-29", "2023-01-32", "08JAN2023", "2023-1-8", "2023-01-08T25:00",
           "2023-01-08 10:05"]
    vals = good + bad
    data.datasets["AE"] = pd.concat([ae.iloc[[0]]] * len(vals), ignore_index=True).assign(
        AESTDTC=pd.Series(vals, dtype="str"))
    rule = [r for r in load_rules() if r.id == "DT.ISO8601.DTC"]
    _, findings = validate_data(data, None, {}, None, ValidationSettings(), rule)
    assert sorted(findings.loc[findings["variable"] == "AESTDTC", "value"]) == sorted(bad)


# ---------------------------------------------------------------- reports
def test_xlsx_cells_never_become_formulas(tmp_path):
    from openpyxl import load_workbook

    df = pd.DataFrame({"value": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "plain", None],
                       "seq": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0]})
    path = tmp_path / "t.xlsx"
    write_xlsx(path, {"Findings": df})
    ws = load_workbook(path)["Findings"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == "A1:B7"
    cells = [ws.cell(row=r, column=1) for r in range(2, 6)]
    assert [c.value for c in cells] == ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)"]
    assert all(c.data_type == "s" for c in cells)
    assert safe_cell_value("a\x01b") == ("a?b", False)


def test_html_is_escaped_and_self_contained(tmp_path):
    path = tmp_path / "v.html"
    df = pd.DataFrame({"value": ["<script>alert(1)</script>"], "rule": ["X.Y"]})
    write_html(path, "<b>study</b>", {"errors": 1, "warnings": 0, "notices": 0, "expected": 0,
                                      "unexplained_warnings": 0, "rules_total": 1, "rules_success": 0,
                                      "rules_issue": 1, "rules_skipped": 0, "rules_execution_error": 0,
                                      "datasets": 1}, [section("Findings", df)])
    html = path.read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;study&lt;/b&gt;" in html
    assert "<script>" in html  # the inline sorter, and nothing fetched from elsewhere
    import re

    assert "src=" not in html
    assert re.findall(r'href="([^"]*)"', html) == ["#summary", "#findings"]  # the navigation bar only


# ---------------------------------------------------------------- end to end on XPT files
def _write_sdtm(folder: Path, frames: dict[str, pd.DataFrame], spec) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in frames.items():
        if name.startswith("AD"):
            continue
        ds = spec.datasets[name]
        out = df.copy()
        for c in out.columns:
            if not pd.api.types.is_numeric_dtype(out[c].dtype):
                out[c] = out[c].astype(object).where(out[c].notna(), "")
        pyreadstat.write_xport(out, str(folder / f"{name.lower()}.xpt"), file_format_version=5, table_name=name,
                               file_label=ds.label, column_labels=[ds.variable(c).label for c in out.columns])


@pytest.fixture()
def study_out(tmp_path):
    data, spec = clean_study()
    out = tmp_path / "out"
    _write_sdtm(out / "sdtm", data.datasets, spec)
    ct = tmp_path / "ct"
    ct.mkdir()
    (ct / "sdtm-ct-test.txt").write_text(CT_TEXT)
    return out, spec, ct, data


def test_run_validation_end_to_end_reports_and_diff(study_out, tmp_path):
    out, spec, ct, data = study_out
    sdtm_only = spec.model_copy(update={"datasets": {n: d for n, d in spec.datasets.items() if d.purpose == "Tabulation"}})
    stage = out / "sdtm" / "_stage"
    stage.mkdir()
    (stage / "findings.json").write_text(json.dumps([{
        "rule": "SDTM.CT.UNMAPPED", "severity": "Warning", "message": "raw value not mapped", "dataset": "AE",
        "usubjid": S1, "seq": None, "variable": "AEOUT", "value": "=cmd|' /C calc'!A0", "source_file": "raw/ae.csv",
        "source_row": 3, "extra": {}}]))
    pd.DataFrame({"form": ["ae"], "dataset": ["AE"], "records_in": [2], "records_out": [2]}).to_csv(
        stage / "traceability.csv", index=False)
    settings = tmp_path / "validation.yaml"
    from cdisc_pipe.paths import default_specs

    study_rules = default_specs() / "settings" / "study_rules.yaml"  # the bundled study's own rules
    settings.write_text(f"rule_files: ['{study_rules.as_posix()}']\n"
                        f"expected:\n  - rule: SDTM.CT.UNMAPPED\n    subjects: [{S1}]\n"
                        "    explanation: the site wrote free text\n"
                        "  - rule: DQ.PC.LLOQ\n    scope: all\n    explanation: stale entry\n")

    r1 = run_validation(out, sdtm_only, ct, settings_path=settings)
    s = r1.summary
    # no define.xml beside the XPT files -> TRC 1736 error; everything else in the clean study is quiet
    assert set(r1.findings.loc[r1.findings["severity"] == "Error", "rule"]) == {"TRC.DEFINE.PRESENT"}
    assert r1.exit_code == 1 and s["errors"] == 1
    # the stage finding is explained; the entry matching nothing is a stale-explanation Warning
    assert s["warnings"] == 2 and s["expected"] == 1 and s["unexplained_warnings"] == 1
    assert s["rules_execution_error"] == 0 and s["rules_run"] >= 80
    assert s["previous_run"] is False
    assert s["unused_expected"] == ["expected[1] DQ.PC.LLOQ scope=all"]
    assert set(r1.findings.loc[r1.findings["explanation"].isna() & (r1.findings["severity"] == "Warning"),
                               "rule"]) == {"VAL.EXPECTED.STALE"}
    stage_row = r1.findings[r1.findings["source"] == "stage:sdtm"].iloc[0]
    assert "raw/ae.csv:3" in stage_row["message"] and stage_row["explanation"] == "the site wrote free text"
    js = json.loads((out / "reports" / "validation.json").read_text())
    assert js["summary"]["errors"] == 1 and js["traceability"][0]["form"] == "ae"
    assert {r["status"] for r in js["rules"]} <= {"SUCCESS", "ISSUE", "SKIPPED", "EXECUTION ERROR"}
    assert (out / "reports" / "validation.xlsx").is_file() and (out / "reports" / "validation.html").is_file()
    from openpyxl import load_workbook
    wb = load_workbook(out / "reports" / "validation.xlsx")
    assert {"Summary", "By rule and dataset", "Findings", "Rules", "Traceability"} <= set(wb.sheetnames)
    fws = wb["Findings"]
    header = [c.value for c in fws[1]]
    assert header[:7] == ["severity", "dataset", "usubjid", "seq", "variable", "value", "rule"]
    evil = [c for row in fws.iter_rows(min_row=2) for c in row if str(c.value).startswith("=cmd")]
    assert evil and all(c.data_type == "s" for c in evil)

    # second run: one LB record changed, one AE record removed, a new finding appears, the stage one resolves
    lb = data.datasets["LB"].copy()
    lb.loc[1, "LBORRES"] = "46"
    ae = data.datasets["AE"].iloc[[0]].copy()
    ae.loc[0, "AETOXGR"] = None  # DQ.AE.GRADE.MISSING
    frames = {**data.datasets, "LB": lb, "AE": ae}
    for p in (out / "sdtm").glob("*.xpt"):
        p.unlink()
    _write_sdtm(out / "sdtm", frames, spec)
    (stage / "findings.json").write_text("[]")
    r2 = run_validation(out, sdtm_only, ct, settings_path=settings)
    assert r2.summary["previous_run"] is True
    ds = r2.changes["datasets"].set_index("dataset")
    assert ds.loc["LB", ["added", "removed", "changed"]].tolist() == [0, 0, 1]
    assert ds.loc["AE", ["added", "removed", "changed"]].tolist() == [0, 1, 1]
    assert ds.loc["DM", ["added", "removed", "changed"]].tolist() == [0, 0, 0]
    fc = r2.changes["findings"]
    assert set(fc.loc[fc["change"] == "new", "rule"]) >= {"DQ.AE.GRADE.MISSING"}
    assert set(fc.loc[fc["change"] == "resolved", "rule"]) == {"SDTM.CT.UNMAPPED"}


def test_settings_errors_are_input_errors(tmp_path):
    p = tmp_path / "validation.yaml"
    p.write_text("expected:\n  - rule: X\n    explanaton: typo\n")
    with pytest.raises(InputError) as exc:
        load_settings(p)
    assert "explanaton" in str(exc.value) or "explanation" in str(exc.value)


def test_bundled_settings_file_is_valid():
    from cdisc_pipe.paths import default_specs

    path = default_specs() / "settings" / "validation.yaml"
    if not path.is_file():
        pytest.skip("no bundled validation settings")
    settings, sp = load_settings(path)
    ids = {r.id for r in load_rules(extra=study_rule_files(settings, sp))}
    for e in settings.expected:
        assert e.explanation.strip()
        assert e.rule in ids or "." in e.rule  # validation rule or a stage finding rule


def test_nothing_to_validate_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        run_validation(tmp_path / "empty", None, None)


PILOT = (shared_dir() / "reference" / "sdtm-msg-2.0-cdiscpilot01") if shared_dir() else None


@pytest.mark.skipif(PILOT is None or not PILOT.is_dir(), reason="CDISC pilot package not available")
def test_cdisc_pilot_package_without_spec(tmp_path):
    r = run_validation(tmp_path / "out", None, shared_dir() / "ct", sdtm_dir=PILOT)
    by = {x.rule.id: x for x in r.rules}
    assert r.summary["datasets"] >= 25 and r.summary["rules_execution_error"] == 0
    assert by["STR.VAR.REQ_MISSING"].status == "SKIPPED" and "spec" in by["STR.VAR.REQ_MISSING"].reason
    assert by["DT.ISO8601.DTC"].status == "SUCCESS"
    # a known property of the sample package: AEDECOD is blank (no MedDRA coding shipped)
    assert by["AE.DECOD.NULL"].status == "ISSUE"
    assert (tmp_path / "out" / "reports" / "validation.json").is_file()


# ---------------------------------------------------------------- operator edge cases
def _ae(data, **cols):
    ae = data.datasets["AE"]
    n = max(len(v) for v in cols.values())
    base = pd.concat([ae.iloc[[0]]] * n, ignore_index=True).assign(AESEQ=[float(i + 1) for i in range(n)])
    data.datasets["AE"] = base.assign(**{k: pd.Series(v, dtype="str") for k, v in cols.items()})


def test_date_order_uses_the_precision_both_dates_have():
    data, _ = clean_study()
    # 1: same day, end time earlier -> fires; 2: partial end date -> not compared; 3: date vs datetime same day
    # -> fine; 4: end day before -> fires
    _ae(data, AESTDTC=["2023-01-08T10:00", "2023-01-08", "2023-01-08T10:00", "2023-01-09"],
        AEENDTC=["2023-01-08T09:00", "2023-01", "2023-01-08", "2023-01-08T23:00"])
    rule = _rule(check={"operator": "date_order", "start": "AESTDTC", "end": "AEENDTC"})
    _, f = validate_data(data, None, {}, None, ValidationSettings(), [rule])
    assert sorted(f["seq"]) == [1.0, 4.0]


def test_study_day_has_no_day_zero_and_ignores_partial_dates():
    data, _ = clean_study()
    # S1 RFSTDTC 2023-01-07: 01-06 -> -1, 01-07 -> 1, 01-08 -> 2; partial -> no expectation
    _ae(data, AESTDTC=["2023-01-06", "2023-01-07T23:59", "2023-01-08", "2023-01"])
    data.datasets["AE"]["AESTDY"] = [-1.0, 1.0, 1.0, np.nan]
    rule = _rule(check={"operator": "study_day", "dtc": "--STDTC", "dy": "--STDY"})
    _, f = validate_data(data, None, {}, None, ValidationSettings(), [rule])
    assert list(f["seq"]) == [3.0] and "expected 2" in f["message"].iloc[0]


def test_iso_durations():
    data, _ = clean_study()
    good = ["P28D", "-PT2H", "PT0H", "P1Y2M", "PT1.5H", "P2W"]
    bad = ["28D", "P", "PT", "P1H", "7 days"]
    pc = data.datasets["PC"]
    vals = good + bad
    data.datasets["PC"] = pd.concat([pc.iloc[[0]]] * len(vals), ignore_index=True).assign(
        PCELTM=pd.Series(vals, dtype="str"))
    rule = [r for r in load_rules() if r.id == "DT.ISO8601.DUR"]
    _, f = validate_data(data, None, {}, None, ValidationSettings(), rule)
    assert sorted(f["value"]) == sorted(bad)


def test_when_filter_keeps_subject_and_seq_of_filtered_records():
    data, _ = clean_study()
    rule = _rule(scope={"datasets": ["LB"]}, when=[{"variable": "LBTESTCD", "op": "eq", "values": ["MCPROT"]}],
                 check={"operator": "compare", "left": "LBSTRESN", "op": "gt", "value": 1.0})
    _, f = validate_data(data, None, {}, None, ValidationSettings(), [rule])
    # MCPROT records: S1 seq 3 (2.0) and 4 (0.8), S2 seq 3 (1.5): only 0.8 is not > 1.0
    assert f[["usubjid", "seq", "value"]].values.tolist() == [[S1, 4.0, "0.8"]]


def test_dataset_json_folder_is_validated_when_there_is_no_xpt(tmp_path):
    """A folder of Dataset-JSON 1.1 files: data and column metadata are read, rules run."""
    doc = {
        "datasetJSONCreationDateTime": "2025-01-01T00:00:00", "datasetJSONVersion": "1.1.0",
        "itemGroupOID": "IG.DM", "records": 2, "name": "DM", "label": "Demographics",
        "columns": [
            {"itemOID": "IT.DM.STUDYID", "name": "STUDYID", "label": "Study Identifier", "dataType": "string", "length": 10},
            {"itemOID": "IT.DM.USUBJID", "name": "USUBJID", "label": "Unique Subject Identifier", "dataType": "string",
             "length": 30},
            {"itemOID": "IT.DM.AGE", "name": "AGE", "label": "Age", "dataType": "integer"},
            {"itemOID": "IT.DM.AGEU", "name": "AGEU", "label": "Age Units", "dataType": "string", "length": 5},
            {"itemOID": "IT.DM.RFSTDTC", "name": "RFSTDTC", "label": "Subject Reference Start Date/Time",
             "dataType": "datetime", "length": 16},
        ],
        "rows": [["BCMACART01", "S1", 60, "YEARS", "2023-01-07T10:00"], ["BCMACART01", "S2", 61, None, "2023/01/08"]],
    }
    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    (sdtm / "dm.json").write_text(json.dumps(doc))
    r = run_validation(tmp_path / "out", None, None, sdtm_dir=sdtm)
    by = {x.rule.id: x for x in r.rules}
    assert r.summary["datasets"] == 1
    assert by["DM.AGEU.MISSING"].status == "ISSUE" and by["DT.ISO8601.DTC"].status == "ISSUE"
    assert by["XPT.LENGTH.ACTUAL"].status == "ISSUE"  # USUBJID declared 30 for 2-byte values; the rest fit
    assert set(r.findings.loc[r.findings["rule"] == "XPT.LENGTH.ACTUAL", "variable"]) == {"USUBJID"}


def test_study_rules_live_in_the_study_folder_and_add_to_the_generic_rules(tmp_path):
    """The package holds generic rules only; a study's rule files (validation settings ``rule_files``,
    relative to the settings file, globs allowed) are loaded in addition, in file-name order."""
    from cdisc_pipe.validate.engine import RULES_DIR

    generic = {r.id for r in load_rules()}
    assert not any(i.startswith("DQ.") for i in generic)
    assert not any("CAR-T" in p.read_text(encoding="utf-8") for p in RULES_DIR.glob("*.yaml"))
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "dq.yaml").write_text(
        "- id: DQ.XX.ONE\n  standard: Study\n  severity: Warning\n  category: Data quality\n"
        "  scope: {datasets: [AE]}\n  message: AETERM missing\n  check: {operator: not_null, variables: [AETERM]}\n",
        encoding="utf-8")
    settings_file = tmp_path / "validation.yaml"
    settings_file.write_text("rule_files: [rules/*.yaml]\n", encoding="utf-8")
    settings, sp = load_settings(settings_file)
    files = study_rule_files(settings, sp)
    assert files == [rules_dir / "dq.yaml"]
    ids = [r.id for r in load_rules(extra=files)]
    assert "DQ.XX.ONE" in ids and set(ids) - {"DQ.XX.ONE"} == generic
    # a study rule may not reuse a package rule id; a listed file that does not exist is an input error
    (rules_dir / "dup.yaml").write_text((rules_dir / "dq.yaml").read_text().replace("DQ.XX.ONE", sorted(generic)[0]),
                                        encoding="utf-8")
    with pytest.raises(InputError, match="duplicate rule id"):
        load_rules(extra=study_rule_files(settings, sp))
    settings_file.write_text("rule_files: [nowhere.yaml]\n", encoding="utf-8")
    settings, sp = load_settings(settings_file)
    with pytest.raises(InputError, match="rule file not found"):
        study_rule_files(settings, sp)


def test_workbook_written_later_is_the_workbook_written_at_once(bundled_run, tmp_path):
    """``workbook_later``: the workbook comes from a second process while the caller goes on; once
    waited for, it is the same bytes, and the other reports are there already."""
    import shutil

    from cdisc_pipe import paths as P
    from cdisc_pipe.spec import load_specs

    spec = load_specs(P.default_specs())
    settings = P.default_specs() / "settings" / "validation.yaml"
    done = {}
    for later in (False, True):
        out = tmp_path / str(later)
        for sub in ("sdtm", "adam"):
            shutil.copytree(bundled_run / sub, out / sub)
        r = run_validation(out, spec, P.default_ct(), settings_path=settings, workbook_later=later)
        assert (r.pending is not None) == later and r.reports["json"].is_file() and r.reports["html"].is_file()
        assert r.wait().pending is None and r.reports["xlsx"].is_file()
        done[later] = {k: p.read_bytes() for k, p in r.reports.items()}
    assert done[True] == done[False]


def test_base_is_the_aval_of_the_first_baseline_record_of_its_group():
    data, _ = clean_study()
    # groups USUBJID/PARAMCD/BASETYPE: ALT with no BASETYPE has two ABLFL=Y records (AVAL 30, then 31):
    # the first counts, so BASE 31 on record 3 fires (expected 30); ALT/LAST has its own baseline (40);
    # AST has none, so its BASE must be null: record 6 (BASE 20) fires
    txt = lambda v: pd.Series(v, dtype="str")  # noqa: E731
    data.datasets["ADLB"] = pd.DataFrame({
        "STUDYID": txt(["S"] * 6), "USUBJID": txt([S1] * 6), "ASEQ": [1.0, 2, 3, 4, 5, 6],
        "PARAMCD": txt(["ALT", "ALT", "ALT", "ALT", "AST", "AST"]),
        "BASETYPE": txt([None, None, None, "LAST", None, None]),
        "AVAL": [30.0, 31, 35, 40, 20, 21], "ABLFL": txt(["Y", "Y", None, "Y", None, None]),
        "BASE": [30.0, 30, 31, 40, np.nan, 20]})
    rule = [r for r in load_rules() if r.id == "AD.BASE.ABLFL"]
    _, f = validate_data(data, None, {}, None, ValidationSettings(), rule)
    assert f["value"].tolist() == ["31", "20"]
    assert ["baseline AVAL 30.0" in m for m in f["message"]] == [True, False]


def test_one_to_one_reports_each_offending_distinct_pair_once():
    data, _ = clean_study()
    lb = data.datasets["LB"]
    # VISITNUM 2 has two VISIT names (B, C); VISIT D has two numbers (3, 4); a pair with a missing
    # side is not compared; a repeated pair (2, B) is reported once, at its first record
    visitnum = [1.0, 1.0, 2.0, 2.0, 3.0, 4.0, 5.0, np.nan, 2.0]
    visit = ["A", "A", "B", "C", "D", "D", None, "E", "B"]
    data.datasets["LB"] = pd.concat([lb.iloc[[0]]] * len(visit), ignore_index=True).assign(
        LBSEQ=[float(i + 1) for i in range(len(visit))], VISITNUM=visitnum, VISIT=pd.Series(visit, dtype="str"))
    rule = _rule(scope={"datasets": ["LB"]}, check={"operator": "one_to_one", "left": "VISITNUM", "right": "VISIT"})
    _, f = validate_data(data, None, {}, None, ValidationSettings(), [rule])
    assert f["seq"].tolist() == [3.0, 4.0, 5.0, 6.0]
    assert f["value"].tolist() == ["2|B", "2|C", "3|D", "4|D"]


def test_consistent_within_reports_each_value_of_a_group_with_more_than_one():
    data, _ = clean_study()
    lb = data.datasets["LB"]
    # group ALT: units IU/L, U/L and missing (missing counts as a value): each first record fires;
    # group AST: one unit; group HGB: one unit and its repeat
    testcd = ["ALT", "ALT", "ALT", "ALT", "AST", "AST", "HGB"]
    unit = ["IU/L", "U/L", None, "IU/L", "U/L", "U/L", "g/L"]
    data.datasets["LB"] = pd.concat([lb.iloc[[0]]] * len(unit), ignore_index=True).assign(
        LBSEQ=[float(i + 1) for i in range(len(unit))], LBTESTCD=pd.Series(testcd, dtype="str"),
        LBSTRESU=pd.Series(unit, dtype="str"))
    rule = _rule(scope={"datasets": ["LB"]}, check={"operator": "consistent_within", "variable": "LBSTRESU",
                                                    "by": ["LBTESTCD"]})
    _, f = validate_data(data, None, {}, None, ValidationSettings(), [rule])
    assert f["seq"].tolist() == [1.0, 2.0, 3.0]
