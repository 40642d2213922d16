"""Shared by the example-study tests: run an example from its files, read an XPT file back.

pyreadstat stays the independent reader here (the project's own reader is tested against it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyreadstat

from cdisc_pipe.cli import main


def run_example(example: Path, ct: Path, tmp: Path) -> Path:
    """``cdisc-pipe run`` on ``examples/<name>`` (raw, specs, mappings) into ``tmp/out``; asserts exit 0.
    Without CT files (``ct`` absent) an empty folder is given: the CT rules are skipped, the rest runs."""
    if not ct.is_dir():
        ct = tmp / "no-ct"
        ct.mkdir(exist_ok=True)
    out = tmp / "out"
    code = main(["run", "--raw", str(example / "raw"), "--specs", str(example / "specs"),
                 "--mappings", str(example / "mappings"), "--ct", str(ct), "--out", str(out), "-q"])
    assert code == 0, (out / "logs" / "cdisc-pipe-run.log").read_text()
    return out


def read_xpt(path: Path) -> pd.DataFrame:
    """An XPT file through pyreadstat, blank text as missing (as the pipeline's frames hold it)."""
    df, meta = pyreadstat.read_xport(str(path))
    for c in df.columns:
        if meta.readstat_variable_types[c] == "string":
            df[c] = df[c].where(df[c] != "")
    return df
