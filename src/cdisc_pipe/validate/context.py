"""The context a check runs in, the hits it returns, and vectorised helpers shared by checks.

Helpers that inspect string values work on the distinct values of a column (``pd.factorize``) and
broadcast the answer back, so a rule over a million records with a few thousand distinct dates costs
a few thousand regex matches, not a million.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from cdisc_pipe.spec.model import StudySpec
from cdisc_pipe.validate.data import StudyData, known_distinct
from cdisc_pipe.validate.model import ValidationSettings


class RuleSkipped(Exception):
    """Raised by a check when it cannot run (dataset or variable absent, no spec, no CT)."""


@dataclass
class Hits:
    """Failing records of one check on one dataset.

    ``rows`` are positions in the (filtered) frame the check was given, or -1 for a dataset-level
    finding; ``variable``, ``value`` and ``detail`` are scalars or arrays of the same length.
    """

    rows: np.ndarray
    variable: Any
    value: Any = None
    detail: Any = None
    usubjid: Any = None  # for dataset-level hits about a subject (rows == -1)
    dataset: Any = None  # for study-level hits about a dataset
    severity: Any = None  # when a wrapped external check grades its own findings

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class CheckContext:
    """One rule applied to one dataset (or to the study for study-level rules)."""

    dataset: str | None
    df: pd.DataFrame | None
    prefix: str | None
    data: StudyData
    spec: StudySpec | None
    settings: ValidationSettings
    ct: dict[str, Any] = field(default_factory=dict)  # publishing set -> CtPackage
    ct_reason: str | None = None  # why CT is unavailable
    # per-run cache of column-derived arrays of whole datasets (``text_bytes``), created by the
    # engine for one run and passed to every context of that run; never module-level state
    cache: dict[Any, Any] = field(default_factory=dict)

    def resolve(self, pattern: str, required: bool = True) -> list[str]:
        """Columns matching ``pattern``: ``--`` is the domain prefix, ``*``/``?`` are globs."""
        if self.df is None:
            return []
        pat = pattern
        if "--" in pat:
            if self.prefix is None:
                if required:
                    raise RuleSkipped(f"{pattern} needs a domain prefix")
                return []
            pat = pat.replace("--", self.prefix)
        if any(ch in pat for ch in "*?["):
            cols = [c for c in self.df.columns if fnmatch.fnmatchcase(c, pat)]
        else:
            cols = [pat] if pat in self.df.columns else []
        if not cols and required:
            raise RuleSkipped(f"{self.dataset}: no variable {pat}")
        return cols

    def resolve_many(self, patterns: list[str], required: bool = True) -> list[str]:
        cols: list[str] = []
        for p in patterns:
            for c in self.resolve(p, required=False):
                if c not in cols:
                    cols.append(c)
        if not cols and required:
            raise RuleSkipped(f"{self.dataset}: none of {', '.join(patterns)} present")
        return cols

    def label(self, column: str) -> str | None:
        """A column's label: as stored in the file, else define.xml's, else the spec's."""
        meta = self.data.meta.get(self.dataset or "")
        col = meta.columns.get(column) if meta is not None else None
        if col is not None and col.label:
            return col.label
        dd = self.data.define_dataset(self.dataset or "")
        if dd is not None and column in dd.variables and dd.variables[column].label:
            return dd.variables[column].label
        if self.spec is not None and self.dataset in self.spec.datasets:
            for v in self.spec.datasets[self.dataset].variables:
                if v.name == column:
                    return v.label
        return None

    def resolve_by_label(self, patterns: list[str], label: str) -> list[str]:
        """Columns matching one of the name ``patterns`` whose label contains the regular expression
        ``label`` (case-insensitive), in the dataset's column order."""
        rx = re.compile(label, re.IGNORECASE)
        cols = self.resolve_many(patterns, required=False)
        order = {c: i for i, c in enumerate(self.df.columns)} if self.df is not None else {}
        return sorted((c for c in cols if rx.search(self.label(c) or "")), key=lambda c: order.get(c, 0))

    def one(self, pattern: str) -> str:
        return self.resolve(pattern)[0]

    def other(self, name: str) -> pd.DataFrame:
        """Another dataset of the study (0 records when define.xml declares it without data);
        RuleSkipped when absent."""
        df = self.data.datasets.get(name.upper())
        if df is None:
            df = self.data.empty_frame(name.upper())  # no file, declared def:HasNoData: 0 records
        if df is None:
            raise RuleSkipped(f"dataset {name.upper()} absent")
        return df

    def text_bytes(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(UTF-8 byte length, non-ASCII flag) of every value of ``self.df[column]`` (0 / False for
        missing).  Several rules (spec length, XPT 200 bytes, XPT storage length, ASCII) need the same
        arrays: for an unfiltered dataset they are computed once per run and kept in ``cache``."""
        full = self.data.datasets.get(self.dataset or "")
        if full is None or self.df is not full:
            return text_bytes(self.df[column])
        key = ("text_bytes", self.dataset, column)
        if key not in self.cache:
            # kept small: the narrowest integer type for the lengths, no flags when all values are ASCII
            n, non_ascii = text_bytes(self.df[column])
            n = n.astype(np.int16 if (not len(n) or n.max() < 2 ** 15) else np.int32)
            self.cache[key] = (n, non_ascii if non_ascii.any() else None)
        n, non_ascii = self.cache[key]
        return n, (non_ascii if non_ascii is not None else np.zeros(len(n), dtype=bool))

    def byte_bound(self, column: str) -> int | None:
        """An upper bound of the UTF-8 byte length of every value of ``column``, known without
        looking at the values: the storage width of a character variable of an XPT file whose text
        was decoded as UTF-8 (no value can be longer than its field; trailing blanks are stripped),
        also for a subset of its records.  None when not known (Dataset-JSON, another encoding)."""
        meta = self.data.meta.get(self.dataset or "")
        if meta is None or meta.encoding != "utf-8" or not str(meta.path).lower().endswith(".xpt"):
            return None
        col = meta.columns.get(column)
        return col.length if col is not None and col.type == "text" and col.length is not None else None

    def need_spec(self) -> StudySpec:
        if self.spec is None:
            raise RuleSkipped("no study spec given (spec-based rule)")
        return self.spec

    def hits(self, mask: np.ndarray | pd.Series, variable: Any, value: Any = None, detail: Any = None,
             detail_prefix: str = "") -> Hits:
        """Hits for the rows where ``mask`` is True.

        ``value`` and ``detail`` may be scalars, full-length Series/arrays (taken at the failing rows
        and only then turned into text, so a rule over a million records formats only its
        findings), or a tuple of Series joined with ``|`` (key values).
        """
        m = np.asarray(mask, dtype=bool)
        rows = np.flatnonzero(m)
        if not len(rows):  # the common case: nothing to turn into text (a rule calls this per column)
            return empty_hits()
        return Hits(rows, _pick(variable, rows, m.shape), _pick(value, rows, m.shape),
                    _pick(detail, rows, m.shape, detail_prefix))

    def dataset_hits(self, variables: list[Any], values: list[Any] | None = None,
                     details: list[Any] | None = None) -> Hits:
        """Dataset-level hits (no record): one per entry of ``variables``."""
        n = len(variables)
        return Hits(np.full(n, -1, dtype=np.int64), np.asarray(variables, dtype=object),
                    np.asarray(values if values is not None else [None] * n, dtype=object),
                    np.asarray(details if details is not None else [None] * n, dtype=object))


def _pick(x: Any, rows: np.ndarray, shape: tuple[int, ...], prefix: str = "") -> Any:
    """``x`` at ``rows`` as text (see :meth:`CheckContext.hits`)."""
    if isinstance(x, tuple):
        parts = [_pick(p, rows, shape) for p in x]
        out = pd.Series(parts[0], dtype="str").fillna("")
        for p in parts[1:]:
            out = out + "|" + pd.Series(p, dtype="str").fillna("")
        res = out.to_numpy(dtype=object)
    elif isinstance(x, pd.Series):
        res = as_text(x.iloc[rows]).to_numpy(dtype=object)
    elif isinstance(x, np.ndarray) and x.shape == shape:
        res = as_text(pd.Series(x[rows])).to_numpy(dtype=object)
    else:
        return prefix + x if (prefix and isinstance(x, str)) else x
    if prefix:
        res = np.array([None if v is None or v is pd.NA else prefix + str(v) for v in res], dtype=object) \
            if len(res) < 1000 else (prefix + pd.Series(res, dtype="str")).to_numpy(dtype=object)
    return res


def _measure_text(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 byte length, non-ASCII flag) of each value of an object array (0 / False for missing)."""
    present = np.flatnonzero(~pd.isna(arr))
    vals = arr[present]
    n = np.zeros(len(arr), dtype=np.int64)
    non_ascii = np.zeros(len(arr), dtype=bool)
    try:  # map() over the values runs the str methods at C speed (no per-row Python frame)
        n[present] = np.fromiter(map(len, vals), dtype=np.int64, count=len(vals))
        non_ascii[present] = ~np.fromiter(map(str.isascii, vals), dtype=bool, count=len(vals))
    except TypeError:  # an object column holding non-text values: those count as 0 / ASCII
        t = pd.Series(arr, dtype=object)
        n = t.str.len().fillna(0).to_numpy(dtype=np.int64).copy()
        non_ascii = (t.str.isascii() == False).to_numpy(dtype=bool)  # noqa: E712  (NaN for non-text)
    if non_ascii.any():
        idx = np.flatnonzero(non_ascii)
        n[idx] = [len(arr[i].encode("utf-8")) for i in idx]
    return n, non_ascii


def distinct(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values as an object array) of a column, as ``pd.factorize`` gives them
    (missing: code -1; first-seen order for a factorized column); a held dataset's text column
    comes with them (``validate.data.known_distinct``), any other is factorized here."""
    known = known_distinct(s)
    if known is not None:
        return known
    codes, uniques = pd.factorize(s.to_numpy(dtype=object), use_na_sentinel=True)
    return codes, np.asarray(uniques, dtype=object)


def text_bytes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 byte length, non-ASCII flag) of each value (0 / False for missing): measured once per
    distinct value (:func:`distinct`) and broadcast back; character counts, re-measured in bytes
    only for the non-ASCII values."""
    codes, uniques = distinct(s)
    if len(uniques) == 0:
        return np.zeros(len(s), dtype=np.int64), np.zeros(len(s), dtype=bool)
    un, ua = _measure_text(np.asarray(uniques, dtype=object))
    at = np.maximum(codes, 0)
    missing = codes < 0
    return np.where(missing, 0, un[at]), np.where(missing, False, ua[at])


def group_codes(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """One integer per distinct combination of ``cols`` (missing is a value), numbered 0, 1, ... in
    order of first appearance; from the columns' codes (:func:`distinct` codes of held or read text
    columns, else factorized), combined arithmetically and factorized once."""
    gid = np.zeros(len(df), dtype=np.int64)
    size = 1  # an upper bound of gid
    for c in cols:
        known = known_distinct(df[c])
        codes, uniq = known if known is not None else pd.factorize(df[c], use_na_sentinel=True)
        n = len(uniq) + 1
        if size * n >= 2 ** 62:  # renumber before the product could overflow int64
            gid, first = pd.factorize(gid)
            size = len(first)
        gid = gid * n + (codes.astype(np.int64) + 1)
        size *= n
    return pd.factorize(gid)[0].astype(np.int64)


def first_of_group(gid: np.ndarray) -> np.ndarray:
    """True at the first record of each group of :func:`group_codes` numbers (groups are numbered
    in order of first appearance, so a record opens its group when its number exceeds every earlier
    one): ``~pd.Series(gid).duplicated()`` in one pass."""
    if not len(gid):
        return np.zeros(0, dtype=bool)
    seen = np.maximum.accumulate(gid)
    first = np.empty(len(gid), dtype=bool)
    first[0] = True
    first[1:] = gid[1:] > seen[:-1]
    return first


def outside_values(s: pd.Series, values: Any) -> np.ndarray:
    """True where ``s`` holds a value (not missing, not empty) whose text (:func:`as_text`) is not
    among ``values``; tested once per distinct value when the column's distinct values are known."""
    known = known_distinct(s)
    if known is not None:
        codes, uniques = known
        allowed = set(values)
        bad = np.fromiter((u not in allowed for u in uniques.tolist()), dtype=bool, count=len(uniques))
        return np.append(bad, False)[codes]  # code -1 (missing) takes the last entry
    return ~is_null(s) & ~as_text(s).isin(list(values)).to_numpy(dtype=bool)


def empty_hits() -> Hits:
    return Hits(np.zeros(0, dtype=np.int64), None)


def concat_hits(parts: list[Hits]) -> Hits:
    """One Hits from several (scalars broadcast to arrays)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_hits()
    if len(parts) == 1:
        return parts[0]

    def arr(x: Any, n: int) -> np.ndarray:
        if isinstance(x, np.ndarray) and x.shape == (n,):
            return x.astype(object)
        return np.full(n, x, dtype=object)
    rows = np.concatenate([p.rows for p in parts])
    return Hits(rows, *(np.concatenate([arr(getattr(p, a), len(p)) for p in parts])
                        for a in ("variable", "value", "detail", "usubjid", "dataset", "severity")))


# ---------------------------------------------------------------- vectorised helpers

def map_unique(s: pd.Series, fn: Callable[[pd.Series], np.ndarray], na: Any) -> np.ndarray:
    """Apply ``fn`` to the distinct non-missing values of ``s``; missing values get ``na``."""
    known = known_distinct(s)
    codes, uniques = known if known is not None else pd.factorize(s)
    if len(uniques) == 0:
        return np.full(len(s), na)
    res = np.asarray(fn(pd.Series(np.asarray(uniques, dtype=object), dtype="str")))
    out = res[np.maximum(codes, 0)]
    if (codes < 0).any():
        out = out.astype(object) if not isinstance(na, (bool, np.bool_, float, int)) else out
        out = np.where(codes < 0, na, out)
    return out


def is_null(s: pd.Series) -> np.ndarray:
    """Missing or empty text (readers already trim trailing blanks)."""
    if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.isna().to_numpy()
    known = known_distinct(s)
    if known is not None:  # a held text column: from its codes (its distinct values are never "")
        codes, uniques = known
        empty = np.flatnonzero(uniques == "")
        return (codes < 0) | np.isin(codes, empty) if len(empty) else codes < 0
    arr = s.to_numpy(dtype=object)  # numpy's object comparison: no pandas string-array NA bookkeeping
    return np.asarray(pd.isna(arr) | (arr == ""), dtype=bool)


def regex_full(s: pd.Series, pattern: str | re.Pattern) -> np.ndarray:
    """True where the value fully matches ``pattern``; missing values count as matching."""
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    return map_unique(s.astype("str"), lambda u: u.str.fullmatch(rx).fillna(False).to_numpy(dtype=bool),
                      True).astype(bool)


def as_text(s: pd.Series) -> pd.Series:
    """Values as text (numbers without a trailing .0) for findings and comparisons."""
    if isinstance(s.dtype, pd.StringDtype):
        return s
    if pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
        return s.astype("str")
    if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        codes, uniq = pd.factorize(s.astype("float64"))
        v = pd.Series(np.asarray(uniq, dtype="float64"))
        whole = v == np.round(v)
        txt = v.astype("str").where(~whole, v.round().astype("Int64").astype("str"))
        arr = np.asarray(txt, dtype=object)
        out = np.where(codes >= 0, arr[np.maximum(codes, 0)] if len(arr) else None, None)
        return pd.Series(out, index=s.index, dtype="str")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):  # formatted once per distinct value
        codes, uniq = pd.factorize(s)
        u = pd.DatetimeIndex(uniq)
        fmt = "%Y-%m-%d" if bool((u == u.normalize()).all()) else "%Y-%m-%dT%H:%M:%S"
        txt = np.asarray(u.strftime(fmt), dtype=object)
        out = np.where(codes >= 0, txt[np.maximum(codes, 0)] if len(txt) else None, None)
        return pd.Series(out, index=s.index, dtype="str")
    return s.astype("str")


DATE10 = re.compile(r"^\d{4}-\d{2}-\d{2}")


def complete_date(s: pd.Series) -> pd.Series:
    """datetime64 of the date part of complete ISO 8601 dates (``YYYY-MM-DD...``); NaT otherwise.

    Partial dates are never imputed (XPT-NOTES pitfall 7)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.dt.normalize()
    known = known_distinct(s)
    codes, uniques = known if known is not None else pd.factorize(s.astype("str"))
    if len(uniques) == 0:
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    u = pd.Series(np.asarray(uniques, dtype=object), dtype="str")
    head = u.str.slice(0, 10).where(u.str.match(DATE10), None)
    parsed = pd.to_datetime(head, format="%Y-%m-%d", errors="coerce").to_numpy()
    out = parsed[np.maximum(codes, 0)]
    out[codes < 0] = np.datetime64("NaT")
    return pd.Series(out, index=s.index)


def iso_compare_key(s: pd.Series) -> pd.Series:
    """ISO 8601 text for ordering comparisons (string order == time order for same precision)."""
    return s.astype("str")


def subject_lookup(df: pd.DataFrame, ref: pd.DataFrame, column: str,
                   per_subject: Callable[[pd.Series], pd.Series] | None = None) -> pd.Series:
    """``ref[column]`` for each record of ``df`` by USUBJID (ref has one record per subject; its first
    record counts).  ``per_subject``: a conversion applied to the subjects' values before they are
    given to the records (e.g. :func:`complete_date`: once per subject, not once per record).
    Looked up once per distinct USUBJID when the column's distinct values are known."""
    if "USUBJID" not in df.columns or "USUBJID" not in ref.columns:
        raise RuleSkipped("USUBJID absent")
    if column not in ref.columns:
        raise RuleSkipped(f"{column} absent from the reference dataset")
    m = ref.drop_duplicates("USUBJID").set_index("USUBJID")[column]
    if per_subject is not None:
        m = per_subject(m)
    known = known_distinct(df["USUBJID"])
    if known is not None and len(known[0]) and known[0].min() >= 0:  # every record has a USUBJID
        codes, uniques = known
        return pd.Series(m.reindex(pd.Index(uniques, dtype=object)).to_numpy()[codes], index=df.index)
    return pd.Series(df["USUBJID"].map(m).to_numpy(), index=df.index)
