"""Reading SDTM for the ADaM stage: a folder of XPT v5 files or Dataset-JSON 1.1 files.

XPT files are read with :func:`cdisc_pipe.xpt.read_xpt` (the pipeline's reader); Dataset-JSON
here, as plain JSON (``columns`` + ``rows``).

The returned frames follow docs/ARCHITECTURE.md: upper-case column names, character variables as
Python strings with missing = None (blanks in XPT become missing), numeric variables float64.
SDTM ``--DTC`` values stay ISO 8601 strings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.xpt import read_xpt

__all__ = ["read_sdtm", "read_sdtm_file"]


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Upper-case names; text columns as object with None for blank; numerics float64."""
    out = df.copy(deep=False)
    out.columns = [str(c).upper() for c in out.columns]
    for col in out.columns:
        s = out[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out[col] = s.astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(s):
            continue
        else:
            text = s.astype(object)
            blank = text.isna() | text.map(lambda v: isinstance(v, str) and v.strip() == "")
            out[col] = pd.Series(np.where(blank, None, text), index=out.index, dtype=object)
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


def read_sdtm_file(path: Path) -> pd.DataFrame:
    """Read one SDTM file (``.xpt``, ``.json``, ``.ndjson``) into a normalised frame."""
    if path.suffix.lower() == ".xpt":
        return _normalise(read_xpt(path))
    return _normalise(_read_dataset_json(path))


def read_sdtm(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Read every SDTM dataset in ``folder`` (XPT preferred over Dataset-JSON of the same name).

    Returns ``{"DM": frame, ...}`` keyed by upper-case dataset name.  Subfolders are ignored.
    Raises one InputError listing every unreadable file, or when the folder holds no datasets.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(Problem(str(root), "SDTM folder not found", hint="Pass --sdtm DIR with the SDTM .xpt or .json files"),
                         stage="adam")
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
            out[name] = read_sdtm_file(path)
        except InputError as exc:
            problems.extend(exc.problems)
        except Exception as exc:  # any reader failure is reported as bad input, with the file named
            problems.append(Problem(str(path), f"cannot read dataset: {type(exc).__name__}: {exc}",
                                    hint="Check that the file is a valid XPT v5 or Dataset-JSON 1.1 file"))
    if problems:
        raise InputError(problems, stage="adam")
    return out
