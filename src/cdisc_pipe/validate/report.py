"""Validation reports: ``validation.xlsx`` (openpyxl), ``validation.html`` (Jinja2, autoescaped,
self-contained, sortable) and ``validation.json`` (machine-readable for CI).

Spreadsheet cells are written as text when a value could be read as a formula (starts with = + - @):
the cell gets data type ``s`` so Excel never evaluates it.  Control characters that XML 1.0 forbids
are replaced.  Files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, select_autoescape

FORMULA_START = ("=", "+", "-", "@")
_ILLEGAL = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32)], "?")


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _jsonable(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, (pd.Timestamp, _dt.date)):
        return v.isoformat()
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-ready dicts (NaN/NA -> None; whole float seq -> int)."""
    out = df.astype(object).where(df.notna(), None)
    recs = out.to_dict(orient="records")
    for r in recs:
        for k, v in r.items():
            v = _jsonable(v)
            if isinstance(v, float) and v.is_integer() and k in ("seq",):
                v = int(v)
            r[k] = v
    return recs


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """``validation.json``: summary, rules, findings (limited per rule), changes, traceability."""
    text = json.dumps(payload, indent=1, ensure_ascii=True, default=str, sort_keys=False)
    _atomic_write_bytes(path, (text + "\n").encode("ascii"))


# ------------------------------------------------------------------ xlsx
def display_text(v: Any) -> Any:
    """A value as a reader sees it in a report cell: numbers and text unchanged; None/NaN -> None;
    True/False -> "yes"/"no"; a list -> its items joined with "; " (None when empty); a dict ->
    "key: value; ..." (None when empty).  Never a Python repr ('None', 'False', '[]', 'nan')."""
    v = _jsonable(v)
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple, set)):
        items = [display_text(x) for x in v]
        items = [str(x) for x in items if x is not None]
        return "; ".join(items) if items else None
    if isinstance(v, dict):
        items = [f"{k}: {display_text(x)}" for k, x in v.items() if display_text(x) is not None]
        return "; ".join(items) if items else None
    return v


def safe_cell_value(v: Any) -> tuple[Any, bool]:
    """(value for openpyxl, force text).  Numbers stay numbers; formula-like text is forced to a text
    cell; booleans, lists and dicts are written as readable text (:func:`display_text`)."""
    v = display_text(v)
    if isinstance(v, str):
        v = v.translate(_ILLEGAL)
        if v == "":
            return None, False
        return v, v.startswith(FORMULA_START)
    return v, False


def numbers(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` of a frame read as text (e.g. a CSV read with ``dtype=str``) as numbers, so the
    workbook stores them as numbers: whole numbers as Int64, blanks as missing.  A column with any
    value that is not a number is left as it is."""
    out = df.copy()
    for c in columns:
        if c not in out.columns:
            continue
        s = out[c].astype(object).where(out[c].notna() & (out[c].astype("str").str.strip() != ""), None)
        num = pd.to_numeric(s, errors="coerce")
        if (num.isna() & s.notna()).any():
            continue
        out[c] = num.astype("Int64") if bool((num.dropna() == num.dropna().round()).all()) else num
    return out


def summary_table(summary: dict[str, Any]) -> pd.DataFrame:
    """The run summary as item / value rows with real types (counts as numbers, yes/no, lists as
    text, nothing for a missing value)."""
    return pd.DataFrame({"item": list(summary), "value": [display_text(v) for v in summary.values()]},
                        dtype=object)


REF_LABELS = {"p21": "P21", "core": "CORE", "cdisc": "CDISC", "fda": "FDA"}


def rules_table(rules: pd.DataFrame) -> pd.DataFrame:
    """The Rules table as reports show it: status first (rules that failed to run, with findings,
    skipped, then passed); severity only for a rule with findings (a rule that passed or was skipped
    found nothing of any severity); the other validators' rule ids in one ``refs`` column
    ("P21 SD1082; FDA FDAC036"), left out when no rule has one, as is ``reason`` when every rule ran."""
    if rules.empty:
        return rules
    df = rules.copy()
    has = pd.to_numeric(df.get("findings"), errors="coerce").fillna(0) > 0
    df["severity"] = df["severity"].astype(object).where(has, None)
    ref_cols = [c for c in REF_LABELS if c in df.columns]
    refs = pd.Series([None] * len(df), index=df.index, dtype=object)
    for i, row in df[ref_cols].iterrows():
        parts = [f"{REF_LABELS[c]} {row[c]}" for c in ref_cols if isinstance(row[c], str) and row[c]]
        refs[i] = "; ".join(parts) if parts else None
    df = df.drop(columns=ref_cols)
    if refs.notna().any():
        df["refs"] = refs
    if "reason" in df.columns and df["reason"].isna().all():  # every rule ran: no reason to give
        df = df.drop(columns="reason")
    first = ["status", "rule", "findings", "severity", "category", "standard", "refs", "reason", "datasets",
             "message"]
    cols = [c for c in first if c in df.columns] + [c for c in df.columns if c not in first]
    # what needs a look first: failed to run, findings, skipped, then passed (rule order within each)
    order = df["status"].map(STATUS_ORDER).fillna(len(STATUS_ORDER)) if "status" in df.columns else 0
    return df.assign(__o=order).sort_values("__o", kind="stable").drop(columns="__o")[cols].reset_index(drop=True)


STATUS_ORDER = {"EXECUTION ERROR": 0, "ISSUE": 1, "SKIPPED": 2, "SUCCESS": 3}


def _sheet(wb, title: str, df: pd.DataFrame, widths: dict[str, int] | None = None) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(title)
    cols = list(df.columns)
    ws.append(cols)
    for c in ws[1]:
        c.font = Font(bold=True)
    values = df.astype(object).where(df.notna(), None).to_numpy()
    for r, row in enumerate(values, start=2):
        for ci, v in enumerate(row, start=1):
            val, as_text = safe_cell_value(v)
            if val is None:
                continue
            cell = ws.cell(row=r, column=ci, value=val)
            if as_text:
                cell.data_type = "s"
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(max(len(cols), 1))}{max(len(values) + 1, 1)}"
    for i, col in enumerate(cols, start=1):
        w = (widths or {}).get(col, min(max(len(str(col)) + 2, 10), 60))
        ws.column_dimensions[get_column_letter(i)].width = w


def write_xlsx(path: Path, sheets: dict[str, pd.DataFrame]) -> None:
    """One sheet per entry, header row frozen, autofilter on, formula-like text written as text."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    fixed = _dt.datetime(2000, 1, 1)  # no wall-clock stamp in the document properties
    wb.properties.created = fixed
    wb.properties.modified = fixed
    widths = {"message": 70, "value": 30, "rule": 22, "usubjid": 20, "explanation": 60, "reason": 50}
    for title, df in sheets.items():
        _sheet(wb, title[:31], df, widths)
    buf = io.BytesIO()
    wb.save(buf)
    _atomic_write_bytes(path, _fixed_zip_times(buf.getvalue()))


def _fixed_zip_times(data: bytes) -> bytes:
    """The same zip with every member dated 1980-01-01 (openpyxl stamps the wall clock)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":  # openpyxl sets "modified" to now on save
                content = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                                 rb"\g<1>2000-01-01T00:00:00Z\g<2>", content)
            dst.writestr(fixed, content)
    return out.getvalue()


# ------------------------------------------------------------------ html
HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Validation report - {{ title }}</title>
<style>
:root{--ink:#1b2430;--muted:#5b6675;--line:#d5dbe3;--head:#eef2f7;--accent:#1f5c99}
*{box-sizing:border-box}
body{font-family:Arial,Helvetica,sans-serif;font-size:13px;margin:0;color:var(--ink)}
header{background:var(--accent);color:#fff;padding:12px 16px}header h1{font-size:20px;margin:0 0 4px}
header p{margin:0;opacity:.9}
nav{position:sticky;top:0;background:#f7f9fb;border-bottom:1px solid var(--line);padding:6px 16px;z-index:2}
nav a{margin-right:16px;color:var(--accent);text-decoration:none}nav a:hover{text-decoration:underline}
nav .count{color:var(--muted)}
main{padding:4px 16px 32px}
section{scroll-margin-top:40px}
h2{font-size:16px;margin-top:24px;border-bottom:2px solid var(--accent);padding-bottom:3px}
table{border-collapse:collapse;margin:6px 0 12px 0}
th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}
td.num{text-align:right;white-space:nowrap}
th{background:var(--head);cursor:pointer;position:sticky;top:30px}
th.sorted-asc:after{content:" \\25B2"}th.sorted-desc:after{content:" \\25BC"}
.Error{color:#b00020;font-weight:bold}.Warning{color:#a15c00}.Notice{color:#335}
.ISSUE{color:#a15c00;font-weight:bold}.SUCCESS{color:#1b6e2d}.SKIPPED{color:var(--muted)}
.EXECUTION-ERROR{color:#b00020;font-weight:bold}
.kpi td{font-size:15px}.note{color:#555}
@media print{nav{display:none}th{position:static}}
</style></head><body>
<header><h1>Validation report - {{ title }}</h1>
<p>Rules: {{ summary.rules_total }} ({{ summary.rules_success }} passed, {{ summary.rules_issue }} with
findings, {{ summary.rules_skipped }} skipped, {{ summary.rules_execution_error }} failed to run).
Datasets: {{ summary.datasets }}.</p></header>
<nav><a href="#summary">Summary</a>{% for section in sections %}<a href="#{{ section.id }}">{{ section.nav }}
{%- if section.count is not none %} <span class="count">({{ section.count }})</span>{% endif %}</a>{% endfor %}</nav>
<main>
<section id="summary">
<h2>Summary</h2>
<table class="kpi"><tr><th>Errors</th><th>Warnings</th><th>Notices</th><th>Explained (expected)</th>
<th>Unexplained warnings</th></tr>
<tr><td class="num Error">{{ summary.errors }}</td><td class="num Warning">{{ summary.warnings }}</td>
<td class="num Notice">{{ summary.notices }}</td><td class="num">{{ summary.expected }}</td>
<td class="num">{{ summary.unexplained_warnings }}</td></tr></table>
{% if summary.unused_expected %}<p class="note">Stale explanations (VAL.EXPECTED.STALE):
{{ summary.unused_expected|join('; ') }}</p>{% endif %}
{% if summary.ct_reason %}<p class="note">CT checks: {{ summary.ct_reason }}</p>{% endif %}
<p class="note">Click a column header to sort a table.</p>
</section>
{% for section in sections %}
<section id="{{ section.id }}">
<h2>{{ section.title }}</h2>
{% if section.note %}<p class="note">{{ section.note }}</p>{% endif %}
{% if section.rows %}
<table class="sortable"><thead><tr>{% for c in section.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in section.rows %}<tr>{% for c in section.columns %}{% set v = row[c] %}
<td{% if c in ('severity', 'status') and v %} class="{{ v|replace(' ', '-') }}"{% elif v is number %} class="num"{% endif %}>{{ '' if v is none else v }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% else %}<p class="note">None.</p>{% endif %}
</section>
{% endfor %}
</main>
<script>
document.querySelectorAll("table.sortable th").forEach(function(th){th.addEventListener("click",function(){
 var table=th.closest("table"),body=table.tBodies[0],idx=Array.prototype.indexOf.call(th.parentNode.children,th);
 var asc=!th.classList.contains("sorted-asc");
 th.parentNode.querySelectorAll("th").forEach(function(h){h.classList.remove("sorted-asc","sorted-desc")});
 th.classList.add(asc?"sorted-asc":"sorted-desc");
 var rows=Array.prototype.slice.call(body.rows);
 rows.sort(function(a,b){var x=a.cells[idx].textContent,y=b.cells[idx].textContent,nx=parseFloat(x),ny=parseFloat(y);
  var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c;});
 rows.forEach(function(r){body.appendChild(r)});});});
</script></body></html>
"""


def write_html(path: Path, title: str, summary: dict[str, Any], sections: list[dict[str, Any]]) -> None:
    """Self-contained HTML (inline CSS/JS), every value autoescaped."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    html = env.from_string(HTML_TEMPLATE).render(title=title, summary=summary, sections=sections)
    _atomic_write_bytes(path, html.encode("utf-8"))


def section(title: str, df: pd.DataFrame, note: str | None = None, nav: str | None = None,
            anchor: str | None = None) -> dict[str, Any]:
    """One report section: a table with a title, an anchor for the navigation bar (``anchor``, default
    from the title), the bar's short name (``nav``, default the title) and the row count.  Cells hold
    what :func:`display_text` makes of the values (no Python reprs)."""
    rows = [{k: display_text(v) for k, v in r.items()} for r in records(df)]
    slug = anchor or re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return {"title": title, "note": note, "columns": list(df.columns), "rows": rows, "id": slug,
            "nav": nav or title, "count": len(rows)}
