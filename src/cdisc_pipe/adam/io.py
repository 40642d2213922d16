"""Reading SDTM for the ADaM stage: a folder of XPT v5 files or Dataset-JSON 1.1 files.

XPT files are read with :func:`cdisc_pipe.xpt.read_xpt_file` (the pipeline's reader: UTF-8, or the
encoding it detects or is forced to use); Dataset-JSON here, as plain JSON (``columns`` + ``rows``,
UTF-8 by definition).

The returned frames follow docs/ARCHITECTURE.md: upper-case column names, character variables as
Python strings with missing = None (trailing blanks stripped, blanks become missing, leading blanks
kept), numeric variables float64. SDTM ``--DTC`` values stay ISO 8601 strings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.runlog import RunLog
from cdisc_pipe.xpt.datasets import normalise_encoding, read_xpt_file
from cdisc_pipe.xpt.reader import known_distinct

__all__ = ["read_sdtm", "read_sdtm_file", "as_read"]


def as_read(df: pd.DataFrame) -> pd.DataFrame:
    """A dataset as validation holds it (``cdisc_pipe.validate.data.held_dataset``: what reading its
    XPT file back gives, text as pandas ``str``) in this module's conventions, as :func:`read_sdtm`
    reads the file: text as object of ``str`` with None for missing; numerics and dates as they
    are (the test suite proves both equal)."""
    cols = {c: pd.Series(_objects(df[c]), index=df.index, dtype=object)
            if isinstance(df[c].dtype, pd.StringDtype) else df[c] for c in df.columns}
    return pd.DataFrame(cols, index=df.index, copy=False)


def _objects(s: pd.Series) -> np.ndarray:
    """A ``str`` column as an object array with None for missing (from its distinct values when known)."""
    known = known_distinct(s)
    if known is None:
        return s.to_numpy(dtype=object, na_value=None)
    codes, uniques = known
    return np.append(uniques, None).astype(object).take(codes)  # code -1 takes the None


def _text(s: pd.Series) -> pd.Series:
    """A text column as object of ``str``: trailing blanks stripped, blank -> None, leading blanks
    kept, non-text values (a number in a JSON string column) untouched; each distinct value once."""
    codes, uniques = pd.factorize(s.astype(object))
    values = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    stripped = values.str.rstrip(" ")  # NaN for a non-str value
    is_text = stripped.notna().to_numpy(dtype=bool)
    blank = is_text & (values.str.strip() == "").to_numpy(dtype=bool, na_value=False)
    clean = np.where(is_text, stripped.to_numpy(dtype=object), values.to_numpy(dtype=object))
    clean[blank] = None
    out = clean[np.maximum(codes, 0)] if len(clean) else np.full(len(s), None, dtype=object)
    out[codes < 0] = None
    return pd.Series(out, index=s.index, dtype=object)


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Upper-case names; text columns as object with None for blank; numerics float64."""
    out = df.copy(deep=False)
    out.columns = [str(c).upper() for c in out.columns]
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[col] = s.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(s) or pd.api.types.is_timedelta64_dtype(s):
            continue
        else:
            out[col] = _text(s)
    return out


def _read_dataset_json(path: Path) -> pd.DataFrame:
    """Dataset-JSON 1.1 (``.json``: one object with columns/rows; ``.ndjson``: metadata line + rows)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".ndjson":
        lines = [ln for ln in text.splitlines() if ln.strip()]
        meta = json.loads(lines[0])
        rows = [json.loads(ln) for ln in lines[1:]]
    else:
        meta = json.loads(text)
        rows = meta.get("rows", [])
    columns = meta.get("columns")
    if not isinstance(columns, list) or not columns:
        raise ValueError("no 'columns' array (not Dataset-JSON 1.1?)")
    names = [c["name"] for c in columns]
    df = pd.DataFrame(rows, columns=names)
    for c in columns:
        if c.get("dataType") in ("integer", "float", "double", "decimal"):
            df[c["name"]] = pd.to_numeric(df[c["name"]], errors="coerce")
    return df


def _read_file(path: Path, encoding: str | None) -> tuple[pd.DataFrame, str | None]:
    """One SDTM file, normalised, and the encoding note of an XPT file not read as plain UTF-8."""
    if path.suffix.lower() == ".xpt":
        read = read_xpt_file(path, encoding=encoding)
        return _normalise(read.frame), read.note
    return _normalise(_read_dataset_json(path)), None


def read_sdtm_file(path: Path, *, encoding: str | None = None) -> pd.DataFrame:
    """Read one SDTM file (``.xpt``, ``.json``, ``.ndjson``) into a normalised frame.

    ``encoding`` forces the encoding of an XPT file (see :func:`read_sdtm`).
    """
    return _read_file(Path(path), encoding)[0]


def read_sdtm(folder: str | Path, *, encoding: str | None = None, log: RunLog | None = None) -> dict[str, pd.DataFrame]:
    """Read every SDTM dataset in ``folder`` (XPT preferred over Dataset-JSON of the same name).

    Args:
        folder: the SDTM folder; subfolders are ignored.
        encoding: ``None``: each XPT file is read as UTF-8 and, when its text is not valid UTF-8,
            as the first of cp1252, latin-1 that decodes all of it.  A name (``"latin-1"``,
            ``"cp1252"``, ...): that encoding for every XPT file, strictly.
        log: receives one NOTE per XPT file whose text was not plain UTF-8 (the encoding used,
            why, and an example value), also when another file fails.

    Returns ``{"DM": frame, ...}`` keyed by upper-case dataset name.
    Raises one InputError listing every unreadable file (and every variable a forced encoding
    cannot decode: file, row, variable, bytes), or when the folder holds no datasets.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(Problem(str(root), "SDTM folder not found", hint="Pass --sdtm DIR with the SDTM .xpt or .json files"),
                         stage="adam")
    if encoding is not None:
        try:
            encoding = normalise_encoding(encoding)
        except ValueError as exc:
            raise InputError(Problem("--encoding", str(exc), value=encoding), stage="adam") from None
    files: dict[str, Path] = {}
    for ext in (".ndjson", ".json", ".xpt"):  # later extensions win: XPT first choice
        for p in sorted(root.iterdir()):
            if p.is_file() and p.suffix.lower() == ext:
                files[p.stem.upper()] = p
    files = {k: v for k, v in files.items() if k.replace("_", "").isalnum() and len(k) <= 8}
    if not files:
        raise InputError(Problem(str(root), "no SDTM datasets (.xpt, .json or .ndjson) in the folder",
                                 hint="Point --sdtm at the folder holding dm.xpt, ae.xpt, ..."), stage="adam")
    problems: list[Problem] = []
    out: dict[str, pd.DataFrame] = {}
    for name, path in sorted(files.items()):
        try:
            out[name], note = _read_file(path, encoding)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        except Exception as exc:  # any reader failure is reported as bad input, with the file named
            problems.append(Problem(str(path), f"cannot read dataset: {type(exc).__name__}: {exc}",
                                    hint="Check that the file is a valid XPT v5 or Dataset-JSON 1.1 file"))
            continue
        if note and log is not None:
            log.note(note)
    if problems:
        raise InputError(problems, stage="adam")
    from cdisc_pipe.xpt.datasets import declared_empty_frames

    for name, frame in declared_empty_frames(root).items():  # no file: define.xml says HasNoData
        out.setdefault(name, frame)
        if log is not None:
            log.note(f"{name}: no file in {root}; define.xml declares it without data (HasNoData): read as "
                     f"{frame.shape[1]} variables, 0 records")
    return out
