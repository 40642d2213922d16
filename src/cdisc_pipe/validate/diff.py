"""Changes since the last run: records added, removed and changed per dataset (by keys), and findings
that are new or resolved.

The snapshot kept in ``<out>/reports/_previous/`` holds only what the comparison needs: per dataset
the key text and a 64-bit hash of every record (``<name>.csv``), and the previous findings
(``findings.csv``).  Hashing is vectorised (``pandas.util.hash_pandas_object``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.spec.model import StudySpec
from cdisc_pipe.validate.context import as_text
from cdisc_pipe.validate.data import StudyData, domain_prefix

FINDING_KEY = ["rule", "dataset", "usubjid", "seq", "variable", "value"]
COLS_SUM = ["dataset", "records_previous", "records_now", "added", "removed", "changed"]
COLS_REC = ["dataset", "change", "key"]
COLS_FND = ["change", *FINDING_KEY, "severity", "message"]


def record_keys(name: str, df: pd.DataFrame, data: StudyData, spec: StudySpec | None) -> list[str]:
    """Key variables of a dataset: spec keys, else define.xml KeySequence, else USUBJID + --SEQ/ASEQ."""
    keys: list[str] = []
    if spec is not None and name in spec.datasets:
        keys = list(spec.datasets[name].keys)
    if not keys:
        dd = data.define_dataset(name)
        if dd is not None:
            keys = [v.name for v in sorted(dd.variables.values(), key=lambda v: v.key_sequence or 0) if v.key_sequence]
    keys = [k for k in keys if k in df.columns]
    if not keys:
        prefix = domain_prefix(name, df, spec)
        keys = [c for c in ("STUDYID", "USUBJID", f"{prefix}SEQ" if prefix else "", "ASEQ", "PARAMCD")
                if c in df.columns]
    return keys or list(df.columns)


def snapshot_frame(name: str, df: pd.DataFrame, data: StudyData, spec: StudySpec | None) -> pd.DataFrame:
    """One row per record: ``key`` (key values joined by '|', '#n' for repeated keys) and ``hash``."""
    keys = record_keys(name, df, data, spec)
    # joined as plain Python strings: pandas' element-wise string addition costs several passes per key
    parts = [as_text(df[k]).fillna("").to_numpy(dtype=object) for k in keys]
    key = pd.Series(parts[0] if len(parts) == 1 else ["|".join(t) for t in zip(*parts)], dtype=object)
    occ = key.groupby(key, sort=False).cumcount().to_numpy()
    if (occ > 0).any():
        arr = key.to_numpy(dtype=object).copy()
        dup = np.flatnonzero(occ > 0)
        arr[dup] = [f"{arr[i]}#{occ[i]}" for i in dup]
        key = pd.Series(arr, dtype=object)
    h = pd.util.hash_pandas_object(df, index=False).to_numpy()
    return pd.DataFrame({"key": key.to_numpy(dtype=object), "hash": h.astype(np.uint64).astype(str)})


def _compare_dataset(name: str, prev: pd.DataFrame, cur: pd.DataFrame) -> tuple[dict, list[pd.DataFrame]]:
    """Summary row and record-level changes of one dataset (previous vs current snapshot)."""
    m = prev.merge(cur, on="key", how="outer", suffixes=("_p", "_c"), indicator=True)
    added = m.loc[m["_merge"] == "right_only", "key"]
    removed = m.loc[m["_merge"] == "left_only", "key"]
    changed = m.loc[(m["_merge"] == "both") & (m["hash_p"] != m["hash_c"]), "key"]
    row = {"dataset": name, "records_previous": len(prev), "records_now": len(cur),
           "added": len(added), "removed": len(removed), "changed": len(changed)}
    recs = [pd.DataFrame({"dataset": name, "change": label, "key": sorted(keys.astype(str))})
            for label, keys in (("added", added), ("removed", removed), ("changed", changed)) if len(keys)]
    return row, recs


def _compare_findings(previous_dir: Path, findings: pd.DataFrame) -> pd.DataFrame:
    """Findings new since the previous run or resolved."""
    prev_f = pd.read_csv(previous_dir / "findings.csv", dtype=str, keep_default_na=False)
    cur_f = finding_identity(findings)
    pf = prev_f.assign(__id=_fid(prev_f))
    cf = cur_f.assign(__id=_fid(cur_f))
    new = cf[~cf["__id"].isin(pf["__id"])].assign(change="new")
    resolved = pf[~pf["__id"].isin(cf["__id"])].assign(change="resolved")
    fnd = pd.concat([new, resolved], ignore_index=True)
    if not len(fnd):
        return pd.DataFrame(columns=COLS_FND)
    # compared as text; reported with blanks missing and the sequence number a number again
    fnd = fnd[COLS_FND].astype(object).where(fnd[COLS_FND] != "", None)
    fnd["seq"] = pd.to_numeric(fnd["seq"], errors="coerce")
    return fnd


def compare_datasets(previous_dir: Path, data: StudyData, spec: StudySpec | None, new_dir: Path
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Record changes since the previous run (summary per dataset, record-level changes; empty
    without a previous run) and this run's snapshot of every dataset written to ``new_dir``.

    Each dataset's snapshot is computed once, compared with the previous one and written, so only
    one dataset's keys and hashes are in memory at a time.  The previous snapshot is only read:
    :func:`replace_snapshot` puts ``new_dir`` in its place (so this may run in a second process,
    and be run again in this one if that process fails)."""
    had_previous = (previous_dir / "findings.csv").is_file()
    ds_dir = previous_dir / "datasets"
    new_dir.mkdir(parents=True, exist_ok=True)
    rows, recs = [], []
    names = sorted({p.stem.upper() for p in ds_dir.glob("*.csv")} | set(data.datasets)) if had_previous \
        else sorted(data.datasets)
    empty = pd.DataFrame({"key": [], "hash": []}, dtype=str)
    for name in names:
        cur = snapshot_frame(name, data.datasets[name], data, spec) if name in data.datasets else None
        if had_previous:
            prev_path = ds_dir / f"{name.lower()}.csv"
            prev = pd.read_csv(prev_path, dtype=str, keep_default_na=False) if prev_path.is_file() else empty
            row, parts = _compare_dataset(name, prev, cur if cur is not None else empty)
            rows.append(row)
            recs += parts
        if cur is not None:
            cur.to_csv(new_dir / f"{name.lower()}.csv", index=False)
    if not had_previous:
        return pd.DataFrame(columns=COLS_SUM), pd.DataFrame(columns=COLS_REC)
    return (pd.DataFrame(rows, columns=COLS_SUM),
            pd.concat(recs, ignore_index=True) if recs else pd.DataFrame(columns=COLS_REC))


def compare_findings(previous_dir: Path, findings: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """(findings new or resolved since the previous run, whether there was one); this run's findings
    then replace the previous ones in the snapshot."""
    had_previous = (previous_dir / "findings.csv").is_file()
    fnd = _compare_findings(previous_dir, findings) if had_previous else pd.DataFrame(columns=COLS_FND)
    previous_dir.mkdir(parents=True, exist_ok=True)
    finding_identity(findings).to_csv(previous_dir / "findings.csv", index=False)
    return fnd, had_previous


def replace_snapshot(previous_dir: Path, new_dir: Path) -> None:
    """The dataset snapshot written by :func:`compare_datasets` into ``new_dir`` becomes
    ``<previous_dir>/datasets`` (files of datasets no longer present go with the old folder)."""
    import shutil

    ds_dir = previous_dir / "datasets"
    old = previous_dir / ".datasets-old"
    shutil.rmtree(old, ignore_errors=True)
    if ds_dir.exists():
        ds_dir.rename(old)
    new_dir.rename(ds_dir)
    shutil.rmtree(old, ignore_errors=True)


def finding_identity(findings: pd.DataFrame) -> pd.DataFrame:
    """Findings as text, the columns that identify a finding across runs plus severity and message."""
    out = pd.DataFrame({c: as_text(findings[c]).fillna("") if c in findings.columns else ""
                        for c in [*FINDING_KEY, "severity", "message"]})
    return out


def _fid(f: pd.DataFrame) -> pd.Series:
    s = f[FINDING_KEY[0]].astype("str")
    for c in FINDING_KEY[1:]:
        s = s + "\x1f" + f[c].astype("str")
    return s
