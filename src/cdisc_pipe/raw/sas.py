"""Reading a folder of SAS datasets (one ``<form>.sas7bdat`` or ``<form>.xpt`` per form) as a RawExport.

Values become the raw text of the CSV layout (docs/RAW.md, "SAS datasets"): SAS dates ->
``DD MMM YYYY``, datetimes -> ``YYYY-MM-DD HH:MM:SS``, times -> ``HH:MM`` (``HH:MM:SS`` when the
seconds are not 0), other numbers -> their shortest text (``61``, ``1.5``), character values as
stored (blank = missing).  The data dictionary is ``data_dictionary.csv`` when the folder holds one
(checked as for CSV); otherwise it is built from the datasets: dataset label = form title, variable
label = label, the SAS format gives the type and is kept in ``note``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.errors import Finding, InputError, Problem

ROW = "__row"
_MONTHS = np.array(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], dtype=object)


def _date_text(ts: pd.Series) -> pd.Series:
    ok = ts.notna()
    out = pd.Series(pd.NA, index=ts.index, dtype="str")
    if ok.any():
        t = ts[ok]
        out[ok] = (t.dt.strftime("%d") + " " + _MONTHS[t.dt.month.to_numpy() - 1] + " " + t.dt.strftime("%Y")).to_numpy()
    return out


def _as_text(col: pd.Series, fmt: str) -> tuple[pd.Series, str]:
    """One column as raw text + its dictionary type."""
    fmt_u = (fmt or "").upper()
    if pd.api.types.is_datetime64_any_dtype(col):
        ok = col.notna()
        if fmt_u.startswith(("DATETIME", "E8601DT", "IS8601DT", "DATEAMPM")) or (col[ok].dt.normalize() != col[ok]).any():
            return col.dt.strftime("%Y-%m-%d %H:%M:%S").astype("str").where(ok, pd.NA), "datetime"
        return _date_text(col), "date"
    if pd.api.types.is_numeric_dtype(col):
        v = col.astype(float)
        ok = np.isfinite(v)
        integral = ok & (v == np.round(v)) & (v.abs() < 1e15)
        txt = v.astype(str)
        txt[integral] = v[integral].astype(np.int64).astype(str)
        return txt.where(ok, pd.NA).astype("str"), "integer" if integral.sum() == ok.sum() else "float"
    first = col.dropna()
    first = first.iloc[0] if len(first) else None
    if isinstance(first, _dt.datetime):
        return _as_text(pd.to_datetime(col), fmt)
    if isinstance(first, _dt.date):
        return _date_text(pd.to_datetime(col)), "date"
    if isinstance(first, _dt.time):
        s = col.astype(object).where(col.notna(), None)
        txt = pd.Series([None if t is None else t.strftime("%H:%M" if t.second == 0 else "%H:%M:%S") for t in s.unique()],
                        index=s.unique(), dtype=object)  # per distinct value (at most 86,400)
        return s.map(txt).astype("str"), "time"
    s = col.astype("str")
    return s.where(s.str.strip() != "", pd.NA), "text"


def read_sas_dataset(path: Path, problems: list[Problem]) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(form frame, its dictionary rows) of one SAS dataset, or None after appending a problem."""
    import pyreadstat

    try:
        if path.suffix.lower() == ".xpt":
            df, meta = pyreadstat.read_xport(str(path))
        else:
            df, meta = pyreadstat.read_sas7bdat(str(path))
    except Exception as exc:  # noqa: BLE001 - pyreadstat raises ReadstatError/PyreadstatError/OSError/UnicodeError
        problems.append(Problem(str(path), f"cannot read the SAS dataset: {exc}",
                                hint="export the form again as SAS7BDAT or XPORT (v5/v8); check the file is complete"))
        return None
    form = path.stem
    formats = getattr(meta, "original_variable_types", {}) or {}
    labels = getattr(meta, "column_names_to_labels", {}) or {}
    cols, rows = {}, []
    for c in df.columns:
        txt, typ = _as_text(df[c], formats.get(c, ""))
        cols[c] = txt.reset_index(drop=True)
        rows.append((form, meta.file_label or form, c, labels.get(c) or c, typ, None, None, "N", None,
                     f"SAS format {formats.get(c)}" if formats.get(c) else None))
    out = pd.DataFrame(cols)
    out[ROW] = (np.arange(len(out)) + 2).astype("int64")
    dd = pd.DataFrame(rows, columns=["form", "form_title", "field", "label", "type", "codelist", "codes", "required",
                                     "unit", "note"]).astype("str")
    return out, dd


def read_sas_folder(folder: Path):
    """Read a folder of SAS datasets (see the module docstring)."""
    from cdisc_pipe.raw.reader import (
        DICTIONARY_FILE,
        RawExport,
        _check_columns,
        _check_dictionary,
        read_csv_form,
    )

    folder = Path(folder)
    problems: list[Problem] = []
    findings: list[Finding] = []
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".sas7bdat", ".xpt"))
    read = {}
    for p in files:
        got = read_sas_dataset(p, problems)
        if got is not None:
            read[p.stem] = (p, *got)
    if problems:
        raise InputError(problems, stage="raw")
    dd_path = folder / DICTIONARY_FILE
    forms, source = {}, {}
    if dd_path.exists():
        dd = read_csv_form(dd_path, problems)
        if dd is None or not _check_dictionary(dd, str(dd_path), problems):
            raise InputError(problems, stage="raw")
        for form in dict.fromkeys(dd["form"]):
            if form not in read:
                near = [n for n in read if n.lower() == form.lower()]
                problems.append(Problem(str(folder / f"{form}.xpt"), "form dataset is missing", entry=form,
                                        hint=(f"rename {near[0]} to {form} (names are case-sensitive)" if near else
                                              f"add {form}.sas7bdat or {form}.xpt (the data dictionary describes it)")))
                continue
            p, df, _ = read[form]
            forms[form] = _check_columns(form, df, dd[dd["form"] == form], str(p), problems, findings)
            source[form] = p
        for extra in sorted(set(read) - set(forms) - {n for n in read if any(n.lower() == f.lower() for f in dd["form"])}):
            findings.append(Finding("RAW.FORM.UNKNOWN", "Notice", f"{read[extra][0]} is not described in the data dictionary;"
                                    " not read", source_file=str(read[extra][0])))
    else:
        if not read:
            raise InputError(Problem(str(folder), "no SAS datasets found", hint="give a folder of .sas7bdat or .xpt files"),
                             stage="raw")
        parts = []
        for form, (p, df, d) in read.items():
            forms[form], source[form] = df, p
            parts.append(d)
        dd = pd.concat(parts, ignore_index=True)
        dd[ROW] = (np.arange(len(dd)) + 2).astype("int64")
    if problems:
        raise InputError(problems, stage="raw")
    return RawExport(forms=forms, dictionary=dd.copy(), source=source, findings=findings)
