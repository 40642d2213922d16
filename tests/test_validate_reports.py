"""validation.xlsx and validation.html as a programmer reads them (issue #16 item 12).

xlsx: counts, seq and seconds are numbers; no cell holds a Python repr ('False', 'None', '[]', 'nan').
html: a navigation bar to every section; the Rules table shows status first and a severity only for
rules with findings; the other validators' ids in one refs column, dropped when no rule has one.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from openpyxl import load_workbook

from cdisc_pipe.validate import run_validation
from cdisc_pipe.validate.report import display_text, numbers, rules_table, summary_table

from tests.test_validate_engine import _write_sdtm, study_out  # noqa: F401  (fixture)
from tests.test_validate_rules import S1

REPRS = {"False", "True", "None", "[]", "{}", "nan", "NaN", "<NA>", "NaT", "()", "set()"}
NUMERIC = {  # sheet -> columns that hold numbers
    "By rule and dataset": {"findings"},
    "Findings": {"seq"},
    "Rules": {"findings", "seconds"},
    "Changes (datasets)": {"records_previous", "records_now", "added", "removed", "changed"},
    "Changes (findings)": {"seq"},
    "Traceability": {"records_in", "records_out", "source_row"},
}
SUMMARY_COUNTS = {"errors", "warnings", "notices", "findings", "expected", "unexplained_warnings", "rules_total",
                  "rules_run", "datasets", "new_findings", "resolved_findings"}


@pytest.fixture()
def two_runs(study_out, tmp_path):  # noqa: F811
    """The clean study validated twice (the second run has a previous one: Changes sheets filled),
    with a stage finding carrying a raw row, a traceability table and run times recorded."""
    out, spec, ct, data = study_out
    sdtm_only = spec.model_copy(update={"datasets": {n: d for n, d in spec.datasets.items()
                                                     if d.purpose == "Tabulation"}})
    stage = out / "sdtm" / "_stage"
    stage.mkdir()
    (stage / "findings.json").write_text(json.dumps([{
        "rule": "SDTM.CT.UNMAPPED", "severity": "Warning", "message": "raw value not mapped", "dataset": "AE",
        "usubjid": S1, "seq": 2, "variable": "AEOUT", "value": "=A1*2", "source_file": "raw/ae.csv",
        "source_row": 3}]))
    pd.DataFrame({"form": ["ae", "ae"], "dataset": ["AE", "AE"], "records_in": ["2", "1"],
                  "records_out": ["2", "0"], "source_row": ["", "7"], "usubjid": ["", S1],
                  "reason": ["", "not mapped"]}).to_csv(stage / "traceability.csv", index=False)
    settings = tmp_path / "validation.yaml"
    settings.write_text("record_run_times: true\nexpected:\n  - rule: DQ.PC.LLOQ\n    scope: all\n"
                        "    explanation: stale on purpose\n")
    run_validation(out, sdtm_only, ct, settings_path=settings)
    lb = data.datasets["LB"].copy()
    lb.loc[1, "LBORRES"] = "46"
    for p in (out / "sdtm").glob("*.xpt"):
        p.unlink()
    _write_sdtm(out / "sdtm", {**data.datasets, "LB": lb}, spec)
    (stage / "findings.json").write_text(json.dumps([{  # one finding resolved, one new (both with a seq)
        "rule": "SDTM.CT.UNMAPPED", "severity": "Warning", "message": "raw value not mapped", "dataset": "AE",
        "usubjid": S1, "seq": 1, "variable": "AEOUT", "value": "=A1*2", "source_file": "raw/ae.csv",
        "source_row": 2}]))
    result = run_validation(out, sdtm_only, ct, settings_path=settings)
    return out, result


def test_xlsx_numbers_are_numbers_and_no_cell_is_a_python_repr(two_runs):
    out, result = two_runs
    wb = load_workbook(out / "reports" / "validation.xlsx")
    seen: dict[str, set[str]] = {}
    for ws in wb:
        header = [c.value for c in ws[1]]
        for row in ws.iter_rows(min_row=2):
            for c in row:
                col = header[c.column - 1]
                assert not (isinstance(c.value, str) and c.value.strip() in REPRS), (ws.title, col, c.value)
                if c.value is None:
                    continue
                if col in NUMERIC.get(ws.title, ()):
                    assert isinstance(c.value, (int, float)) and not isinstance(c.value, bool), \
                        (ws.title, col, c.value)
                    assert c.data_type == "n"
                    seen.setdefault(ws.title, set()).add(col)
    # the numeric columns were really exercised
    assert seen["Rules"] == {"findings", "seconds"}
    assert seen["Traceability"] == {"records_in", "records_out", "source_row"}
    assert {"records_previous", "added", "changed"} <= seen["Changes (datasets)"]
    assert seen["Changes (findings)"] == {"seq"} and seen["Findings"] == {"seq"}
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(min_row=2, values_only=True)}
    for k in SUMMARY_COUNTS:
        assert isinstance(summary[k], int), (k, summary[k])
    assert summary["previous_run"] == "yes" and summary["new_findings"] == 1 and summary["resolved_findings"] == 1
    assert summary["unused_expected"] == "expected[0] DQ.PC.LLOQ scope=all"
    assert summary["ct"].startswith("SDTM: ")
    # a formula-like value is still a text cell, never a formula
    trace = [c for row in wb["Findings"].iter_rows(min_row=2) for c in row if c.value == "=A1*2"]
    assert all(c.data_type == "s" for c in trace)


def _html_sections(html: str) -> tuple[list[str], list[str]]:
    nav = re.search(r"<nav>(.*?)</nav>", html, re.S).group(1)
    return re.findall(r'href="#([^"]+)"', nav), re.findall(r'<section id="([^"]+)"', html)


def _table(html: str, section_id: str) -> tuple[list[str], list[list[str]]]:
    body = html.split(f'<section id="{section_id}">', 1)[1].split("</section>", 1)[0]
    head = re.findall(r"<th>(.*?)</th>", body)
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S) for r in re.findall(r"<tr>(.*?)</tr>", body, re.S)[1:]]
    return head, rows


def test_html_navigation_and_rules_table(two_runs):
    out, result = two_runs
    html = (out / "reports" / "validation.html").read_text(encoding="utf-8")
    links, sections = _html_sections(html)
    assert links == sections and {"summary", "by-rule", "findings", "rules", "changes-datasets",
                                  "changes-findings", "changes-records", "traceability"} <= set(links)
    head, rows = _table(html, "rules")
    assert head[:4] == ["status", "rule", "findings", "severity"]
    assert not {"p21", "core", "fda", "cdisc"} & set(head)
    for r in rows:
        _status, findings, severity = r[0], int(r[2]), r[3]
        assert (severity != "") == (findings > 0), r[:4]
        if findings:
            assert severity in ("Error", "Warning", "Notice")
    # rules needing a look come first
    order = {"EXECUTION ERROR": 0, "ISSUE": 1, "SKIPPED": 2, "SUCCESS": 3}
    assert [order[r[0]] for r in rows] == sorted(order[r[0]] for r in rows)
    # a passed rule never shows a severity class
    assert not re.search(r'<td class="SUCCESS">SUCCESS</td>\s*<td[^>]*>[^<]+</td>\s*<td[^>]*>\d+</td>\s*'
                         r'<td class="Error">', html)
    # the refs of the rules that have them, in one column
    refs = dict((r[1], r[head.index("refs")]) for r in rows)
    assert refs["XPT.LENGTH.ACTUAL"] == "P21 SD1082; FDA FDAC036"
    assert refs["STR.VAR.REQ_MISSING"] == ""
    for v in REPRS - {"()"}:
        assert f">{v}<" not in html, v


def test_rules_table_drops_empty_columns_and_blanks_severity_without_findings():
    rules = pd.DataFrame([
        {"rule": "A.ONE", "standard": "s", "category": "c", "severity": "Error", "p21": None, "core": None,
         "fda": None, "cdisc": None, "status": "SUCCESS", "reason": None, "findings": 0, "datasets": "DM",
         "message": "m"},
        {"rule": "A.TWO", "standard": "s", "category": "c", "severity": "Warning", "p21": None, "core": None,
         "fda": None, "cdisc": None, "status": "ISSUE", "reason": None, "findings": 3, "datasets": "DM",
         "message": "m"},
    ])
    t = rules_table(rules)
    assert list(t.columns) == ["status", "rule", "findings", "severity", "category", "standard", "datasets",
                               "message"]
    assert t["rule"].tolist() == ["A.TWO", "A.ONE"] and t["severity"].tolist() == ["Warning", None]


@pytest.mark.parametrize("value,shown", [
    (False, "no"), (True, "yes"), (None, None), ([], None), ({}, None), (float("nan"), None),
    (["a", "b"], "a; b"), ({"SDTM": "x.txt"}, "SDTM: x.txt"), (3, 3), (2.5, 2.5), ("text", "text"),
])
def test_display_text_never_gives_a_repr(value, shown):
    assert display_text(value) == shown


def test_summary_and_text_numbers_helpers():
    t = summary_table({"errors": 2, "previous_run": False, "new_findings": None, "unused_expected": []})
    assert t["value"].tolist() == [2, "no", None, None]
    df = numbers(pd.DataFrame({"n": ["1", "", "3"], "t": ["1", "x", ""]}), ["n", "t"])
    assert df["n"].tolist()[0] == 1 and pd.isna(df["n"][1]) and df["t"].tolist() == ["1", "x", ""]
