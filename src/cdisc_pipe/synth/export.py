"""Writing the simulated eCRF records as an EDC export: CSV per form (or one xlsx) + data dictionary."""

from __future__ import annotations

import datetime as _dt
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.synth import design
from cdisc_pipe.synth.text import fmt_dtm

DICTIONARY_FILE = "data_dictionary.csv"
DICTIONARY_SHEET = "data_dictionary"
DICTIONARY_COLUMNS = ("form", "form_title", "field", "label", "type", "codelist", "codes", "required", "unit", "note")
#: xlsx sheets hold at most this many data rows (Excel's limit minus the header).
XLSX_MAX_ROWS = 1_048_575


def form_columns(form: design.Form) -> list[str]:
    """Column order of a form's file: metadata columns then the form's fields."""
    return [m[0] for m in design.META_FIELDS] + [f.name for f in form.fields]


def dictionary_frame() -> pd.DataFrame:
    """The data dictionary: one row per column of every form (metadata columns included)."""
    rows = []
    for form in design.FORMS:
        for name, label, typ in design.META_FIELDS:
            rows.append((form.name, form.title, name, label, typ, "", "", "Y", "",
                         "EDC metadata" + ("; YYYY-MM-DD HH:MM:SS" if typ == "datetime" else "")))
        for f in form.fields:
            codes = "|".join(f"{c}={d}" for c, d in design.CODELISTS[f.codelist]) if f.codelist else ""
            note = f.note or ""
            if f.type == "date":
                note = ("DD MMM YYYY; " + note).strip("; ")
            elif f.type == "time":
                note = ("HH:MM (24 h); " + note).strip("; ")
            rows.append((form.name, form.title, f.name, f.label, f.type, f.codelist or "", codes,
                         "Y" if f.required else "N", f.unit or "", note))
    return pd.DataFrame(rows, columns=list(DICTIONARY_COLUMNS))


def finish_form(df: pd.DataFrame, form: design.Form, s: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Add the EDC metadata columns (ids, audit timestamps) and put the columns in dictionary order."""
    n = len(df)
    out = df.sort_values(["loc", "_order", "_day", "RECPOS"], kind="stable").reset_index(drop=True) if n else df
    loc = out["loc"].to_numpy()
    day = out["_day"].to_numpy(dtype=float)
    day = np.where(np.isfinite(day), day, s["consent"].to_numpy()[loc])
    extract = s["cut"].to_numpy()[loc] + 20
    lag = np.minimum(rng.geometric(0.3, n) - 1, 30)
    entry = np.minimum(day + lag, extract)
    sec = rng.integers(8 * 3600, 18 * 3600, n)
    modified = rng.random(n) < 0.2
    mod = np.where(modified, np.minimum(entry + rng.integers(1, 60, n), extract), entry)
    msec = np.where(modified & (mod > entry), rng.integers(8 * 3600, 18 * 3600, n), sec)
    out = out.assign(
        STUDYID=design.STUDYID, SITEID=design.SITEID, SUBJID=s["SUBJID"].to_numpy()[loc],
        FORMINST=out["FORMINST"].astype(int).astype(str), RECPOS=out["RECPOS"].astype(int).astype(str),
        ENTRYDTM=fmt_dtm(entry, sec), MODDTM=fmt_dtm(mod, msec),
    )
    cols = form_columns(form)
    for c in cols:
        if c not in out.columns:
            raise KeyError(f"form {form.name}: builder did not produce field {c}")
    return out[cols]


def write_csv(df: pd.DataFrame, path: Path, append: bool) -> None:
    """Append (or create) a form's CSV: UTF-8, comma, minimal quoting, LF line ends, blanks for missing."""
    df.to_csv(path, mode="a" if append else "w", header=not append, index=False, encoding="utf-8",
              lineterminator="\n", na_rep="")


def write_dictionary_csv(out_dir: Path) -> None:
    """Write ``data_dictionary.csv``."""
    write_csv(dictionary_frame(), out_dir / DICTIONARY_FILE, append=False)


def csv_to_xlsx(csv_dir: Path, xlsx_path: Path) -> None:
    """Convert a CSV export folder into one workbook (one sheet per form + the dictionary).

    Every cell is written as text (a value starting with ``=`` stays text, never a formula).  The
    workbook's document properties and zip entries carry a fixed timestamp, so the same export gives
    the same bytes and never shows the wall clock.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    fixed = _dt.datetime(2000, 1, 1)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    sheets = [(form.name, csv_dir / f"{form.name}.csv") for form in design.FORMS]
    sheets.append((DICTIONARY_SHEET, csv_dir / DICTIONARY_FILE))
    for name, path in sheets:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        if len(frame) > XLSX_MAX_ROWS:
            raise ValueError(f"{path.name}: {len(frame)} rows do not fit in one xlsx sheet; use CSV for this size")
        ws = wb.create_sheet(title=name)
        ws.append(list(frame.columns))

        def cell(v: str):
            c = WriteOnlyCell(ws, value=v)
            c.data_type = "s"
            return c

        for rec in frame.itertuples(index=False, name=None):  # openpyxl writes row by row
            ws.append([cell(v) if v.startswith("=") else (v if v != "" else None) for v in rec])
    buf = io.BytesIO()
    wb.save(buf)
    _rezip_fixed_time(buf.getvalue(), xlsx_path)


def _rezip_fixed_time(data: bytes, target: Path) -> None:
    """Rewrite a zip package with a fixed entry timestamp so the same export gives the same bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = item.external_attr
            body = src.read(item.filename)
            if item.filename == "docProps/core.xml":  # openpyxl stamps the save time here
                body = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)", rb"\g<1>2000-01-01T00:00:00Z\g<2>",
                              body)
            dst.writestr(info, body)
