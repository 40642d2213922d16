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


def snapshots(data: StudyData, spec: StudySpec | None) -> dict[str, pd.DataFrame]:
    """:func:`snapshot_frame` of every dataset, computed once per run for :func:`compare` and
    :func:`write_snapshot`."""
    return {name: snapshot_frame(name, df, data, spec) for name, df in data.datasets.items()}


def compare(previous_dir: Path, data: StudyData, spec: StudySpec | None,
            findings: pd.DataFrame, current: dict[str, pd.DataFrame] | None = None
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, bool]:
    """(records summary per dataset, record-level changes, finding changes, had_previous).

    ``current``: this run's :func:`snapshots` (computed here when not given)."""
    if not (previous_dir / "findings.csv").is_file():
        return (pd.DataFrame(columns=COLS_SUM), pd.DataFrame(columns=COLS_REC), pd.DataFrame(columns=COLS_FND),
                False)
    rows, recs = [], []
    prev_names = {p.stem.upper() for p in (previous_dir / "datasets").glob("*.csv")}
    for name in sorted(prev_names | set(data.datasets)):
        prev_path = previous_dir / "datasets" / f"{name.lower()}.csv"
        prev = pd.read_csv(prev_path, dtype=str, keep_default_na=False) if prev_path.is_file() else \
            pd.DataFrame({"key": [], "hash": []}, dtype=str)
        cur = (current[name] if current is not None else snapshot_frame(name, data.datasets[name], data, spec)) \
            if name in data.datasets else \
            pd.DataFrame({"key": [], "hash": []}, dtype=str)
        row, parts = _compare_dataset(name, prev, cur)
        rows.append(row)
        recs += parts
    fnd = _compare_findings(previous_dir, findings)
    return (pd.DataFrame(rows, columns=COLS_SUM),
            pd.concat(recs, ignore_index=True) if recs else pd.DataFrame(columns=COLS_REC), fnd, True)


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


def compare_and_snapshot(previous_dir: Path, data: StudyData, spec: StudySpec | None, findings: pd.DataFrame
                         ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, bool]:
    """:func:`compare` then :func:`write_snapshot` in one pass: each dataset's snapshot is computed once,
    compared with the previous one and written in its place, so only one dataset's keys and hashes are
    in memory at a time.  Same results and files as the two calls."""
    had_previous = (previous_dir / "findings.csv").is_file()
    ds_dir = previous_dir / "datasets"
    prev_files = sorted(ds_dir.glob("*.csv"))
    rows, recs = [], []
    if had_previous:
        for name in sorted({p.stem.upper() for p in prev_files} | set(data.datasets)):
            prev_path = ds_dir / f"{name.lower()}.csv"
            prev = pd.read_csv(prev_path, dtype=str, keep_default_na=False) if prev_path.is_file() else \
                pd.DataFrame({"key": [], "hash": []}, dtype=str)
            cur = snapshot_frame(name, data.datasets[name], data, spec) if name in data.datasets else None
            row, parts = _compare_dataset(name, prev, cur if cur is not None else
                                          pd.DataFrame({"key": [], "hash": []}, dtype=str))
            rows.append(row)
            recs += parts
            if cur is not None:  # the previous file is read: replace it now
                ds_dir.mkdir(parents=True, exist_ok=True)
                cur.to_csv(prev_path, index=False)
        fnd = _compare_findings(previous_dir, findings)
        done = set(data.datasets)
    else:
        fnd = pd.DataFrame(columns=COLS_FND)
        done = set()
    ds_dir.mkdir(parents=True, exist_ok=True)
    for old in prev_files:
        if old.stem.upper() not in data.datasets:
            old.unlink()
    for name, df in data.datasets.items():
        if name not in done:
            snapshot_frame(name, df, data, spec).to_csv(ds_dir / f"{name.lower()}.csv", index=False)
    finding_identity(findings).to_csv(previous_dir / "findings.csv", index=False)
    if not had_previous:
        return (pd.DataFrame(columns=COLS_SUM), pd.DataFrame(columns=COLS_REC), pd.DataFrame(columns=COLS_FND),
                False)
    return (pd.DataFrame(rows, columns=COLS_SUM),
            pd.concat(recs, ignore_index=True) if recs else pd.DataFrame(columns=COLS_REC), fnd, True)


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


def write_snapshot(previous_dir: Path, data: StudyData, spec: StudySpec | None, findings: pd.DataFrame,
                   current: dict[str, pd.DataFrame] | None = None) -> None:
    """Replace the snapshot with this run's keys, hashes and findings (``current``: this run's
    :func:`snapshots`, computed here when not given)."""
    ds_dir = previous_dir / "datasets"
    ds_dir.mkdir(parents=True, exist_ok=True)
    for old in ds_dir.glob("*.csv"):
        if old.stem.upper() not in data.datasets:
            old.unlink()
    for name, df in data.datasets.items():
        (current[name] if current is not None else snapshot_frame(name, df, data, spec)).to_csv(ds_dir / f"{name.lower()}.csv", index=False)
    finding_identity(findings).to_csv(previous_dir / "findings.csv", index=False)
