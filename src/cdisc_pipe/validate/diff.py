"""Changes since the last run: records added, removed and changed per dataset (by keys), and findings
that are new or resolved.

The snapshot kept in ``<out>/reports/_previous/`` holds only what the comparison needs: per dataset
the key text and a 64-bit hash of every record (``<name>.npz``: two numpy arrays, read without
pickle), and the previous findings (``findings.csv``).  Hashing is vectorised
(``pandas.util.hash_pandas_object``); records are matched by key through a hash index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.spec.model import StudySpec
from cdisc_pipe.validate.context import as_text
from cdisc_pipe.validate.data import StudyData, domain_prefix, known_distinct

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
    """One row per record: ``key`` (key values joined by '|', '#n' for repeated keys) and ``hash``
    (64-bit, ``uint64``)."""
    keys = record_keys(name, df, data, spec)
    # joined as plain Python strings: pandas' element-wise string addition costs several passes per key
    parts = [as_text(df[k]).fillna("").to_numpy(dtype=object) for k in keys]
    key = pd.Series(parts[0] if len(parts) == 1 else ["|".join(t) for t in zip(*parts)], dtype=object)
    # repeated keys are numbered; not looked for when the key values are known distinct
    occ = None if _keys_distinct(df, keys) else key.groupby(key, sort=False).cumcount().to_numpy()
    if occ is not None and (occ > 0).any():
        arr = key.to_numpy(dtype=object).copy()
        dup = np.flatnonzero(occ > 0)
        arr[dup] = [f"{arr[i]}#{occ[i]}" for i in dup]
        key = pd.Series(arr, dtype=object)
    h = pd.util.hash_pandas_object(_coded(df), index=False).to_numpy()
    return pd.DataFrame({"key": key.to_numpy(dtype=object), "hash": h.astype(np.uint64)})


def _keys_distinct(df: pd.DataFrame, keys: list[str]) -> bool:
    """True when the key texts of the records are known to be distinct without comparing them: every
    key variable is numeric or a text column whose distinct values are known and hold neither "|"
    nor "" (then distinct key values join to distinct texts), and no two records share their key
    values (:func:`validate.context.group_codes`).  False means "not known": the texts are compared."""
    from cdisc_pipe.validate.context import first_of_group, group_codes

    for k in keys:
        s = df[k]
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            continue
        known = known_distinct(s) if isinstance(s.dtype, pd.StringDtype) else None
        if known is None or any("|" in u or u == "" for u in known[1].tolist()):
            return False
    return bool(first_of_group(group_codes(df, keys)).all())


def _coded(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each text column whose distinct values are known (``validate.data.known_distinct``)
    as a categorical of them: pandas hashes a text column through its distinct values anyway
    (``categorize``), so the hashes are the same, without factorizing the column again."""
    cols = {}
    for c in df.columns:
        known = known_distinct(df[c]) if isinstance(df[c].dtype, pd.StringDtype) else None
        cols[c] = df[c] if known is None else pd.Categorical.from_codes(known[0], categories=pd.Index(known[1], dtype=object))
    return pd.DataFrame(cols, index=df.index, copy=False)


#: A dataset's snapshot file: ``key`` (UTF-8 bytes) and ``hash`` (uint64) arrays, read without
#: pickle.  ``<name>.csv`` (key, hash as text) is what versions before it wrote: still read.
SNAPSHOT_SUFFIX = ".npz"


def _encode(keys: np.ndarray) -> np.ndarray:
    """Keys as fixed-width UTF-8 bytes (numpy ``S``)."""
    try:
        return np.asarray(keys, dtype=object).astype(np.bytes_) if len(keys) else np.zeros(0, dtype="S1")
    except UnicodeEncodeError:  # not all ASCII
        return np.array([k.encode("utf-8") for k in keys], dtype=np.bytes_)


def _decode(keys: np.ndarray) -> np.ndarray:
    return np.array([k.decode("utf-8") for k in keys.tolist()], dtype=object)


def write_snapshot(path: Path, snap: pd.DataFrame) -> None:
    """One dataset's snapshot (:func:`snapshot_frame`) into ``path`` (``<name>.npz``)."""
    with open(path, "wb") as fh:
        np.savez(fh, key=_encode(snap["key"].to_numpy(dtype=object)), hash=snap["hash"].to_numpy(dtype=np.uint64))


def read_snapshot(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(keys as UTF-8 bytes, hashes) of a dataset's snapshot in ``folder``; None when it has none."""
    path = folder / f"{name.lower()}{SNAPSHOT_SUFFIX}"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return z["key"], z["hash"].astype(np.uint64)
    old = folder / f"{name.lower()}.csv"
    if old.is_file():
        prev = pd.read_csv(old, dtype=str, keep_default_na=False)
        return _encode(prev["key"].to_numpy(dtype=object)), prev["hash"].to_numpy(dtype=object).astype(np.uint64)
    return None


def _compare_dataset(name: str, prev: tuple[np.ndarray, np.ndarray], cur: pd.DataFrame
                     ) -> tuple[dict, list[pd.DataFrame]]:
    """Summary row and record-level changes of one dataset (previous snapshot: keys as bytes and
    hashes; current: :func:`snapshot_frame`).  Keys are unique in a snapshot (repeats numbered)."""
    p_key, p_hash = prev
    c_key, c_hash = _encode(cur["key"].to_numpy(dtype=object)), cur["hash"].to_numpy(dtype=np.uint64)
    p_index = pd.Index(p_key.astype(object))
    pos = p_index.get_indexer(c_key.astype(object)) if p_index.is_unique else None
    if pos is None:  # a numbered repeat can still meet a key written that way ("A#1"): compared as tables
        m = pd.DataFrame({"key": p_key, "hash": p_hash}).merge(
            pd.DataFrame({"key": c_key, "hash": c_hash}), on="key", how="outer", suffixes=("_p", "_c"), indicator=True)
        added = m.loc[m["_merge"] == "right_only", "key"].to_numpy()
        removed = m.loc[m["_merge"] == "left_only", "key"].to_numpy()
        changed = m.loc[(m["_merge"] == "both") & (m["hash_p"] != m["hash_c"]), "key"].to_numpy()
    else:
        found = pos >= 0
        seen = np.zeros(len(p_key), dtype=bool)
        seen[pos[found]] = True
        added, removed = c_key[~found], p_key[~seen]
        changed = c_key[found][p_hash[pos[found]] != c_hash[found]]
    row = {"dataset": name, "records_previous": len(p_key), "records_now": len(c_key),
           "added": len(added), "removed": len(removed), "changed": len(changed)}
    recs = [pd.DataFrame({"dataset": name, "change": label, "key": sorted(_decode(np.asarray(keys)))})
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
    stored = {p.stem.upper() for pattern in ("*.csv", f"*{SNAPSHOT_SUFFIX}") for p in ds_dir.glob(pattern)}
    names = sorted(stored | set(data.datasets)) if had_previous else sorted(data.datasets)
    none = (np.zeros(0, dtype="S1"), np.zeros(0, dtype=np.uint64))
    for name in names:
        cur = snapshot_frame(name, data.datasets[name], data, spec) if name in data.datasets else None
        if had_previous:
            row, parts = _compare_dataset(name, read_snapshot(ds_dir, name) or none,
                                          cur if cur is not None else pd.DataFrame({"key": [], "hash": []}))
            rows.append(row)
            recs += parts
        if cur is not None:
            write_snapshot(new_dir / f"{name.lower()}{SNAPSHOT_SUFFIX}", cur)
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
