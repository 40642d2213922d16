"""Reading a raw EDC export (a CSV folder or one xlsx workbook) and checking it against its dictionary.

The reader checks the *shape* of the export only: every form the dictionary names is there, every
required column is there, the files are UTF-8 CSV with one field per column on every row.  It never
coerces types or judges values (the SDTM stage does that and reports findings).  Everything wrong
is collected and raised as one :class:`~cdisc_pipe.errors.InputError`.

Encoding policy: UTF-8, with or without a byte-order mark (a BOM is accepted silently).  Any other
encoding (Latin-1, Windows-1252, GBK, ...) is an error naming the file, the row and the first bad
byte, because guessing an encoding would silently change clinical text.

Row numbers: ``__row`` and the rows in problems are record numbers in the file with the header as
row 1 (the first record is row 2).  They equal the line number unless a quoted value spans lines.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.errors import Finding, InputError, Problem
from cdisc_pipe.parallel import map_shared

DICTIONARY_FILE = "data_dictionary.csv"
DICTIONARY_SHEET = "data_dictionary"
DICTIONARY_REQUIRED = ("form", "field", "label", "type", "codelist", "codes", "required")
FIELD_TYPES = frozenset({"text", "integer", "float", "date", "time", "datetime"})
ROW = "__row"
_BOM = b"\xef\xbb\xbf"
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_MAX_LISTED = 10
#: Form files adding up to fewer bytes are all parsed in this process (a second one costs more than
#: it saves on a small export)
SHARE_BYTES = 16 * 2**20


@dataclass
class RawExport:
    """A raw export as read: all-text forms, the data dictionary, where each form came from, findings.

    Attributes:
        forms: form name -> DataFrame; every column is text (missing = NA; nothing is coerced),
            plus ``__row`` = record number in the source (header = row 1, first record = row 2).
        dictionary: the data dictionary (one row per column of every form).
        source: form name -> path of the file it was read from (the workbook for xlsx).
        findings: things worth reporting that did not stop the read (unknown columns or files,
            missing optional columns).
        excluded: source records the reader left out on purpose (ODM ``TransactionType="Remove"``),
            one row each: ``form``, ``source_row`` (the ``__row`` it would have had), ``usubjid``
            (the subject key), ``reason``; empty for CSV/xlsx/SAS.
        export_date: the date the export itself states (ODM ``AsOfDateTime``, else
            ``CreationDateTime``, as written); None for CSV/xlsx/SAS (the data cut-off's default,
            :mod:`cdisc_pipe.cutoff`).
    """

    forms: dict[str, pd.DataFrame]
    dictionary: pd.DataFrame
    source: dict[str, Path]
    findings: list[Finding] = field(default_factory=list)
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"form": pd.Series(dtype="str"), "source_row": pd.Series(dtype="int64"), "usubjid": pd.Series(dtype="str"),
         "reason": pd.Series(dtype="str")}))
    export_date: str | None = None


# ------------------------------------------------------------------------------------------------
# CSV
def _decode(path: Path, data: bytes, problems: list[Problem]) -> str | None:
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    lines = pd.Series(text.split("\n"))
    bad = lines[lines.str.contains("\ufffd", regex=False)]
    header = next(csv.reader([lines.iloc[0]])) if len(lines) else []
    for idx, line in bad.head(_MAX_LISTED).items():
        pos = line.index("\ufffd")
        col_no = line[:pos].count(",")
        raw_line = data.split(b"\n")[idx]
        start = len(line[:pos].encode("utf-8", errors="replace"))
        snippet = raw_line[start:start + 1]
        problems.append(Problem(
            str(path), "not valid UTF-8 text (the file looks like another encoding, e.g. Windows-1252, Latin-1 or GBK)",
            entry=f"row {idx + 1}", column=header[col_no] if col_no < len(header) else None,
            value="".join(f"\\x{b:02x}" for b in snippet),
            hint="re-export the file as UTF-8 (with or without BOM)"))
    if len(bad) > _MAX_LISTED:
        problems.append(Problem(str(path), f"{len(bad) - _MAX_LISTED} more rows are not valid UTF-8",
                                hint="re-export the file as UTF-8"))
    return None


def _not_csv_text(data: bytes) -> tuple[str, str] | None:
    """(what the file is, what to do) when the bytes are not CSV text at all, else None.

    Checked on the first bytes before decoding, so a workbook or UTF-16 file saved under a
    ``.csv`` name gets its real cause instead of encoding or parser messages."""
    head = data[:8192]
    if head.startswith(b"PK\x03\x04"):
        return ("an Excel workbook (.xlsx) or another ZIP archive saved under a .csv name, not CSV text",
                "save the form from Excel as 'CSV UTF-8 (Comma delimited)', or give the workbook itself "
                "(.xlsx, one sheet per form) as the raw export")
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return ("a legacy Excel workbook (.xls) saved under a .csv name, not CSV text",
                "save the form from Excel as 'CSV UTF-8 (Comma delimited)'")
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32 text, not UTF-8", "re-export the file as UTF-8 (with or without BOM)"
    nul = head.count(b"\x00")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (nul and nul >= len(head) // 4 and (
            head[1::2].count(b"\x00") > len(head) // 5 or head[0::2].count(b"\x00") > len(head) // 5)):
        return ("UTF-16 text (two bytes per character), not UTF-8",
                "re-export the file as UTF-8 (in Excel: 'CSV UTF-8 (Comma delimited)', not 'Unicode Text')")
    if nul:
        return ("a binary file (it holds NUL bytes), not CSV text",
                "check that the right file was exported under this name; re-export the form as CSV (UTF-8)")
    return None


def _unclosed_quote_line(text: str) -> int:
    """Line number (1-based) of the quote that breaks the file's quoting.

    First choice: the first quote in the middle of a value (neither after a comma or line start nor
    before a comma, line end or another quote), which CSV does not allow: a stray quote.  Else (a
    file cut off inside a quoted value) the line where the last quoted value opens."""
    b = np.frombuffer(text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8"), dtype=np.uint8)
    quotes = np.flatnonzero(b == 34)
    if not len(quotes):
        return 1
    nl = np.flatnonzero(b == 10)
    padded = np.concatenate(([10], b, [10]))  # line breaks around the text: no bounds checks
    prev, nxt = padded[quotes], padded[quotes + 2]
    stray = ~np.isin(prev, (44, 10, 34)) & ~np.isin(nxt, (44, 10, 34))
    pos = quotes[np.flatnonzero(stray)[0]] if stray.any() else quotes[-1]
    return int(np.searchsorted(nl, pos)) + 1


def _field_counts(text: str) -> tuple[pd.Series, bool]:
    """Fields per record (quoted values removed first, so commas/newlines inside quotes don't count)."""
    stripped = _QUOTED.sub("", text)
    unterminated = '"' in stripped
    # commas and line breaks counted on the UTF-8 bytes with numpy (neither byte occurs inside a
    # multi-byte character): no Python string per line
    b = np.frombuffer(stripped.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8"), dtype=np.uint8)
    nl = np.flatnonzero(b == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [len(b)]))
    commas = np.flatnonzero(b == 44)
    counts = (np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1).astype("int64")
    counts[ends == starts] = 0  # empty lines are not records; a line of spaces is (and has too few fields)
    return pd.Series(counts), unterminated


def read_csv_form(path: Path, problems: list[Problem]) -> pd.DataFrame | None:
    """Read one form CSV as text, or append problems and return None.

    Checks: empty file, encoding, unterminated quotes, records with too few/too many fields,
    duplicate column names.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(str(path), f"cannot read the file: {exc.strerror or exc}",
                                hint="check the file exists, is a regular file and is readable"))
        return None
    if not data.strip(_BOM + b" \t\r\n"):
        problems.append(Problem(str(path), "empty file: no header row and no records", entry="row 1",
                                hint="re-export the form; a form without records still needs its header row"))
        return None
    kind = _not_csv_text(data)
    if kind is not None:
        what, hint = kind
        problems.append(Problem(str(path), what, entry="row 1", hint=hint))
        return None
    text = _decode(path, data, problems)
    if text is None:
        return None
    counts, unterminated = _field_counts(text)
    n_before = len(problems)
    if unterminated:
        row = _unclosed_quote_line(text)
        problems.append(Problem(str(path), "a quote character opens a value that is never closed: a stray quote in "
                                "an unquoted value, or a file cut off inside a quoted value", entry=f"row {row}",
                                value=_record_text(text, row - 1)[:80],
                                hint="remove the stray quote (or quote the whole value and double the inner quotes: "
                                     "\"5\"\" tall\"), or re-export the file if the transfer was cut off"))
        return None
    header_line = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    header = next(csv.reader([header_line]))
    expected = len(header)
    if expected == 1:
        names = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}
        delim = next((d for d in names if d in header_line), None)
        if delim is not None:
            problems.append(Problem(str(path), f"the file is delimited by {names[delim]}, not commas "
                                    f"({header_line.count(delim) + 1} column names read as one)", entry="row 1",
                                    value=header_line[:60], hint="export the form as comma-separated CSV (in Excel: "
                                    "'CSV UTF-8 (Comma delimited)'; a locale with decimal commas writes semicolons)"))
            return None
    wrong = counts[(counts > 0) & (counts != expected)]
    wrong = wrong[wrong.index > 0]
    for idx, cnt in wrong.head(_MAX_LISTED).items():
        short = cnt < expected
        problems.append(Problem(
            str(path), f"row has {cnt} fields but the header has {expected}"
            + (f" (the row looks truncated: columns from {header[cnt]} on are missing)" if short
               else " (an unquoted comma in a value, or a shifted row)"),
            entry=f"row {idx + 1}", column=header[cnt] if short else header[-1],
            value=_record_text(text, idx), hint="re-export the file; every row must have one field per column"))
    if len(wrong) > _MAX_LISTED:
        problems.append(Problem(str(path), f"{len(wrong) - _MAX_LISTED} more rows have the wrong number of fields"))
    dups = sorted({h for h in header if header.count(h) > 1})
    for d in dups:
        problems.append(Problem(str(path), "column name appears more than once in the header", entry="row 1", column=d,
                                hint="rename or remove the duplicate column"))
    if len(problems) > n_before:
        return None
    try:
        df = pd.read_csv(io.StringIO(text.lstrip("\ufeff")), dtype=str, keep_default_na=False, na_values=[""],
                         skip_blank_lines=True, encoding="utf-8")
    except (pd.errors.ParserError, ValueError) as exc:  # pragma: no cover - the field counter catches these first
        problems.append(Problem(str(path), f"not a readable CSV file: {exc}", hint="re-export the file as plain CSV"))
        return None
    rows = counts.index[(counts > 0) & (counts.index > 0)].to_numpy() + 1
    if len(rows) != len(df):  # pragma: no cover - defensive: parser and counter disagree
        problems.append(Problem(str(path), f"could not align records ({len(df)} parsed, {len(rows)} counted)",
                                hint="re-export the file as plain CSV"))
        return None
    df[ROW] = rows.astype("int64")
    return df


def _read_csv_alone(path: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    """:func:`read_csv_form` with its own problem list (it may run in another process)."""
    problems: list[Problem] = []
    return read_csv_form(path, problems), problems


def _record_text(text: str, idx: int) -> str:
    stripped_lines = text.replace("\r\n", "\n").split("\n")
    line = stripped_lines[idx] if idx < len(stripped_lines) else ""
    return line if len(line) <= 120 else line[:117] + "..."


# ------------------------------------------------------------------------------------------------
# xlsx
def _grid_to_form(grid: pd.DataFrame) -> pd.DataFrame:
    """A sheet grid (row 0 = header) -> form frame with ``__row`` = sheet row; blank rows dropped."""
    header = grid.iloc[0].tolist()
    data = grid.iloc[1:]
    used = [j for j, h in enumerate(header) if h is not None or data[j].notna().any()]
    names = [str(header[j]) if header[j] is not None else f"Unnamed: {j}" for j in used]
    df = data[used].copy()
    df.columns = names
    df = df[df.notna().any(axis=1)]
    out = df.astype("str").where(df.notna(), None) if len(df) else df.astype(object)
    out = pd.DataFrame({c: pd.Series(out[c].to_numpy(dtype=object), dtype="str") for c in out.columns})
    out[ROW] = (df.index.to_numpy() + 1).astype("int64")
    return out


def _read_workbook(path: Path, problems: list[Problem]) -> dict[str, pd.DataFrame] | None:
    from cdisc_pipe.raw.xlsx import read_workbook_text

    try:
        grids = read_workbook_text(path)
    except Exception as exc:  # zipfile/lxml raise many types for a damaged workbook
        problems.append(Problem(str(path), f"cannot read the workbook: {exc}",
                                hint="save it again as .xlsx (Excel 2007+) or export CSV files"))
        return None
    out = {}
    for name, grid in grids.items():
        label = f"{path}[{name}]"
        if grid.empty or grid.iloc[0].isna().all():
            problems.append(Problem(label, "empty sheet: no header row", entry="row 1",
                                    hint="a form without records still needs its header row"))
            continue
        header = [h for h in grid.iloc[0].tolist() if h is not None]
        for d in sorted({h for h in header if header.count(h) > 1}):
            problems.append(Problem(label, "column name appears more than once in the header", entry="row 1",
                                    column=d, hint="rename or remove the duplicate column"))
        out[name] = _grid_to_form(grid)
    return out


# ------------------------------------------------------------------------------------------------
# dictionary and export
def _check_dictionary(dd: pd.DataFrame, where: str, problems: list[Problem]) -> bool:
    missing = [c for c in DICTIONARY_REQUIRED if c not in dd.columns]
    for c in missing:
        problems.append(Problem(where, "data dictionary column is missing", entry="row 1", column=c,
                                hint=f"the dictionary needs the columns {', '.join(DICTIONARY_REQUIRED)}"))
    if missing:
        return False
    ok = True
    for col in ("form", "field"):
        blank = dd[dd[col].isna()]
        for r in blank[ROW].head(_MAX_LISTED):
            problems.append(Problem(where, f"dictionary entry without a {col}", entry=f"row {r}", column=col,
                                    hint="fill it in or remove the row"))
            ok = False
    bad_req = dd[~dd["required"].isin(["Y", "N"])]
    for r, v in zip(bad_req[ROW].head(_MAX_LISTED), bad_req["required"].head(_MAX_LISTED)):
        problems.append(Problem(where, "required flag must be Y or N", entry=f"row {r}", column="required",
                                value=None if pd.isna(v) else str(v), hint="write Y or N"))
        ok = False
    bad_type = dd[~dd["type"].isin(sorted(FIELD_TYPES))]
    for r, v in zip(bad_type[ROW].head(_MAX_LISTED), bad_type["type"].head(_MAX_LISTED)):
        problems.append(Problem(where, "unknown field type", entry=f"row {r}", column="type",
                                value=None if pd.isna(v) else str(v), hint=f"use one of {', '.join(sorted(FIELD_TYPES))}"))
        ok = False
    dup = dd[dd.duplicated(["form", "field"], keep="first") & dd["form"].notna()]
    for r, f, c in zip(dup[ROW].head(_MAX_LISTED), dup["form"], dup["field"]):
        problems.append(Problem(where, "field described twice in the dictionary", entry=f"row {r}", column="field",
                                value=f"{f}.{c}", hint="keep one row per form and field"))
        ok = False
    return ok


def _check_columns(form: str, df: pd.DataFrame, spec: pd.DataFrame, label: str, problems: list[Problem],
                   findings: list[Finding]) -> pd.DataFrame:
    cols = [c for c in df.columns if c != ROW]
    described = list(spec["field"])
    unknown = [c for c in cols if c not in described]
    # columns that differ from the dictionary only in letter case: one problem per form, not one per column
    by_lower = {c.lower(): c for c in unknown}
    case_only = {fld: by_lower[fld.lower()] for fld in spec["field"] if fld not in cols and fld.lower() in by_lower}
    if case_only:
        fld, col = next(iter(case_only.items()))
        problems.append(Problem(label, f"{len(case_only)} column name(s) differ from the data dictionary only in "
                                f"letter case (e.g. {col!r} for {fld!r})", entry="row 1", column=fld, value=col,
                                hint="rename the columns to the dictionary's names (column names are case-sensitive), "
                                     "or correct the data dictionary"))
    for fld, req in zip(spec["field"], spec["required"]):
        if fld in cols or fld in case_only:
            continue
        close = difflib.get_close_matches(fld, unknown, n=1, cutoff=0.6)
        if req == "Y":
            hint = (f"column {close[0]!r} looks like it: rename it back to {fld!r}" if close
                    else f"add the column {fld!r} (the dictionary marks it required)")
            problems.append(Problem(label, "required column is missing" + (" (renamed?)" if close else ""),
                                    entry="row 1", column=fld, value=close[0] if close else None, hint=hint))
        else:
            findings.append(Finding("RAW.COLUMN.MISSING", "Warning",
                                    f"optional column {fld} is missing from form {form}; read as blank",
                                    variable=fld, source_file=label, source_row=1))
            df[fld] = pd.Series(pd.NA, index=df.index, dtype="str")
    for c in unknown:
        findings.append(Finding("RAW.COLUMN.UNKNOWN", "Notice",
                                f"column {c} of form {form} is not in the data dictionary; kept, not mapped",
                                variable=c, source_file=label, source_row=1))
    order = [c for c in described if c in df.columns] + unknown + [ROW]
    return df[order]


def read_export(raw_dir: Path) -> RawExport:
    """Read a raw EDC export and check it against its data dictionary.

    Args:
        raw_dir: a folder of ``<form>.csv`` files + ``data_dictionary.csv``; or an ``.xlsx`` workbook
            (one sheet per form + a ``data_dictionary`` sheet); or a folder holding one such workbook;
            or a CDISC ODM-XML 1.3.2 file (or a folder holding one ``.xml``); or a folder of SAS
            datasets (one ``.sas7bdat`` or ``.xpt`` per form).  See ``cdisc_pipe.raw.detect``.

    Returns:
        :class:`RawExport` with every form the dictionary names.

    Raises:
        InputError: every problem found (missing files/columns, empty files, bad encoding, rows with
            the wrong number of fields), each naming file, row, column and value, with what to do.
    """
    raw_dir = Path(raw_dir)
    from cdisc_pipe.raw.detect import detect_format

    kind, target = detect_format(raw_dir)
    if kind == "odm":
        from cdisc_pipe.raw.odm import read_odm

        return read_odm(target)
    if kind == "sas":
        from cdisc_pipe.raw.sas import read_sas_folder

        return read_sas_folder(target)
    problems: list[Problem] = []
    findings: list[Finding] = []
    workbook: Path | None = None
    if raw_dir.is_file() and raw_dir.suffix.lower() in (".xlsx", ".xlsm"):
        workbook = raw_dir
    elif raw_dir.is_dir() and not (raw_dir / DICTIONARY_FILE).exists():
        books = sorted(raw_dir.glob("*.xlsx"))
        if len(books) == 1:
            workbook = books[0]
    if not raw_dir.exists():
        raise InputError(Problem(str(raw_dir), "raw export not found", hint="give a folder of CSV files or an .xlsx workbook"),
                         stage="raw")

    if workbook is not None:
        sheets = _read_workbook(workbook, problems)
        if sheets is None:
            raise InputError(problems, stage="raw")
        if DICTIONARY_SHEET not in sheets:
            problems.append(Problem(str(workbook), f"no '{DICTIONARY_SHEET}' sheet",
                                    hint="the workbook needs a data dictionary sheet describing every form"))
            raise InputError(problems, stage="raw")
        dd = sheets.pop(DICTIONARY_SHEET)
        dd_label = f"{workbook}[{DICTIONARY_SHEET}]"
        frames = {name: (df, f"{workbook}[{name}]") for name, df in sheets.items()}
        present = set(frames)
    else:
        if not raw_dir.is_dir():
            raise InputError(Problem(str(raw_dir), "not a folder or an .xlsx workbook",
                                     hint="give a folder of CSV files or an .xlsx workbook"), stage="raw")
        dd_path = raw_dir / DICTIONARY_FILE
        if not dd_path.exists():
            raise InputError(Problem(str(dd_path), "data dictionary not found",
                                     hint=f"the export folder needs {DICTIONARY_FILE} describing every form"),
                             stage="raw")
        dd = read_csv_form(dd_path, problems)
        if dd is None:
            raise InputError(problems, stage="raw")
        dd_label = str(dd_path)
        present = {p.stem for p in raw_dir.glob("*.csv")} - {Path(DICTIONARY_FILE).stem}
        frames = {}

    if not _check_dictionary(dd, dd_label, problems):
        raise InputError(problems, stage="raw")
    form_names = list(dict.fromkeys(dd["form"]))
    forms: dict[str, pd.DataFrame] = {}
    source: dict[str, Path] = {}
    read: dict[str, tuple[pd.DataFrame | None, list[Problem]]] = {}
    if workbook is None:  # the form files, about half their bytes parsed in a second process
        files = [(form, (raw_dir / f"{form}.csv").stat().st_size) for form in form_names
                 if (raw_dir / f"{form}.csv").is_file()]
        read = map_shared(lambda form: _read_csv_alone(raw_dir / f"{form}.csv"), files, minimum=SHARE_BYTES)
    for form in form_names:
        spec = dd[dd["form"] == form]
        if workbook is not None:
            if form not in frames:
                near = [n for n in frames if n.lower() == form.lower()]
                problems.append(Problem(str(workbook), f"form sheet '{form}' is missing", entry=form,
                                        hint=(f"rename the sheet '{near[0]}' to '{form}'" if near else
                                              f"add the sheet '{form}' (the data dictionary describes it)")))
                continue
            df, label = frames[form]
            source[form] = workbook
        else:
            path = raw_dir / f"{form}.csv"
            label = str(path)
            if not path.exists():
                near = [n for n in present if n.lower() == form.lower()]
                problems.append(Problem(label, "form file is missing", entry=form,
                                        hint=(f"rename {near[0]}.csv to {form}.csv (names are case-sensitive)" if near
                                              else f"add {form}.csv to the export (the data dictionary describes it)")))
                continue
            df, found = read[form] if form in read else _read_csv_alone(path)
            problems += found
            if df is None:
                continue
            source[form] = path
        forms[form] = _check_columns(form, df, spec, label, problems, findings)
    for extra in sorted(present - set(form_names)):
        where = f"{workbook}[{extra}]" if workbook is not None else str(raw_dir / f"{extra}.csv")
        findings.append(Finding("RAW.FORM.UNKNOWN", "Notice",
                                f"{where} is not described in the data dictionary; not read", source_file=where))
    if problems:
        raise InputError(problems, stage="raw")
    dd = dd.copy()
    return RawExport(forms=forms, dictionary=dd, source=source, findings=findings)
