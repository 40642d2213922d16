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
def safe_cell_value(v: Any) -> tuple[Any, bool]:
    """(value for openpyxl, force text).  Formula-like text is forced to a text cell."""
    v = _jsonable(v)
    if isinstance(v, str):
        v = v.translate(_ILLEGAL)
        return v, v.startswith(FORMULA_START)
    if isinstance(v, (list, dict)):
        return json.dumps(v, default=str), False
    return v, False


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
<title>Validation report - {{ title }}</title>
<style>
body{font-family:Arial,Helvetica,sans-serif;font-size:13px;margin:16px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:24px}
table{border-collapse:collapse;margin:6px 0 12px 0}
th,td{border:1px solid #bbb;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#e8eef5;cursor:pointer;position:sticky;top:0}
th.sorted-asc:after{content:" \\25B2"}th.sorted-desc:after{content:" \\25BC"}
.Error{color:#b00020;font-weight:bold}.Warning{color:#a15c00}.Notice{color:#335}
.kpi td{font-size:15px}.note{color:#555}
</style></head><body>
<h1>Validation report - {{ title }}</h1>
<p class="note">Rules: {{ summary.rules_total }} ({{ summary.rules_success }} success, {{ summary.rules_issue }} with
findings, {{ summary.rules_skipped }} skipped, {{ summary.rules_execution_error }} execution errors).
Datasets: {{ summary.datasets }}. Click a column header to sort.</p>
<table class="kpi"><tr><th>Errors</th><th>Warnings</th><th>Notices</th><th>Explained (expected)</th>
<th>Unexplained warnings</th></tr>
<tr><td class="Error">{{ summary.errors }}</td><td class="Warning">{{ summary.warnings }}</td>
<td class="Notice">{{ summary.notices }}</td><td>{{ summary.expected }}</td><td>{{ summary.unexplained_warnings }}</td></tr></table>
{% for section in sections %}
<h2>{{ section.title }}</h2>
{% if section.note %}<p class="note">{{ section.note }}</p>{% endif %}
{% if section.rows %}
<table class="sortable"><thead><tr>{% for c in section.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in section.rows %}<tr>{% for c in section.columns %}
<td{% if c == 'severity' %} class="{{ row[c] }}"{% endif %}>{{ '' if row[c] is none else row[c] }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% else %}<p class="note">None.</p>{% endif %}
{% endfor %}
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


def section(title: str, df: pd.DataFrame, note: str | None = None) -> dict[str, Any]:
    return {"title": title, "note": note, "columns": list(df.columns), "rows": records(df)}
