"""Record matching shared by keyed/nearest joins of raw forms (``Join``) and ``lookup`` between
SDTM datasets: for every record on the left, the one record on the right with the same subject
and keys, or the one dated latest on or before it.

Nothing is picked silently: several candidates (equal keys, or a tie at the chosen date) give the
left record no match and the status ``many``; a partial or missing date gives ``nodate``.  All of
it is vectorised: keys become integer codes (factorized once over both sides), the nearest
preceding record comes from ``pandas.merge_asof``; the only Python loops run over keys, lookups
and datasets, never over records.

Dates are ISO 8601 text.  :func:`moment` turns a date into a point in time: with a time, to the
second; a date without a time is the start of its day on the side that must come first and the
end of its day on the side that must come later (for "on or before": a dose dated ``2024-01-10``
counts from 00:00 and a sample dated ``2024-01-10`` follows every dose of that day), so that two
records compare by date unless both have a time.  Partial dates (``2024-01``) have no moment:
they never match and are reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.sdtm.algorithms import FORM, ROW, Findings, distinct_rows, evaluate, factorize_text
from cdisc_pipe.sdtm.dates import complete_date
from cdisc_pipe.sdtm.mapping import _PLACEHOLDER, Lookup, Mappings, lookup_order

OK, NOKEY, NONE, MANY, NODATE = 0, 1, 2, 3, 4
SE_COLUMNS = ["STUDYID", "DOMAIN", "USUBJID", "ETCD", "ELEMENT", "TAETORD", "EPOCH", "SESTDTC", "SEENDTC"]


def moment(dtc: pd.Series, date_only_at_end: bool) -> pd.Series:
    """An ISO 8601 --DTC as datetime64: date-time to the second (``T14:20`` or ``T14:20:05``), a
    date alone at 00:00 or, with ``date_only_at_end``, at 23:59:59; NaT for a partial or missing
    date.  A time without minutes (``T14``) counts as no time.  Computed once per distinct value."""
    codes, rep = distinct_rows(dtc)
    u = dtc.iloc[rep].reset_index(drop=True)
    d = complete_date(u).astype("datetime64[ns]")
    txt = u.astype("object").where(u.notna(), "").astype("str").str.strip()
    t16 = pd.to_datetime(txt.where(txt.str.len() == 16), format="%Y-%m-%dT%H:%M", errors="coerce")
    t19 = pd.to_datetime(txt.where(txt.str.len() >= 19).str.slice(0, 19), format="%Y-%m-%dT%H:%M:%S", errors="coerce")
    t = t19.astype("datetime64[ns]").where(t19.notna(), t16.astype("datetime64[ns]"))
    day = d + pd.Timedelta(hours=23, minutes=59, seconds=59) if date_only_at_end else d
    vals = t.where(t.notna() & d.notna(), day).to_numpy(dtype="datetime64[ns]")
    return pd.Series(vals[codes], index=dtc.index)


def number_text(s: pd.Series) -> pd.Series:
    """Numbers as text once per distinct value: a whole number without ``.0`` (``3``), others as
    Python shows them (``3.01``); missing stays missing."""
    codes, uniq = pd.factorize(s.to_numpy(dtype="float64"), use_na_sentinel=True)
    txt = [str(int(u)) if float(u).is_integer() else repr(float(u)) for u in uniq]
    return pd.Series(np.array(txt + [None], dtype=object)[codes], index=s.index, dtype="object")


def _comparable(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Key values of both sides in one vocabulary: numbers when both are numeric, else trimmed text
    (a whole number shown without ``.0``); blank -> missing."""
    if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
        return a.to_numpy(dtype="float64"), b.to_numpy(dtype="float64")

    def text(s: pd.Series) -> np.ndarray:
        if pd.api.types.is_numeric_dtype(s):
            s = number_text(s)
        codes, uniq = factorize_text(s)
        vals = np.array([str(u).strip() or None for u in uniq] + [None], dtype=object)
        return vals[codes]

    return text(a), text(b)


def key_codes(left: list[pd.Series], right: list[pd.Series]) -> tuple[np.ndarray, np.ndarray]:
    """One int64 code per row for the combination of its keys, shared by both sides; -1 where a
    key is missing (such a row never matches)."""
    nl = len(left[0]) if left else 0
    nr = len(right[0]) if right else 0
    key = np.zeros(nl + nr, dtype=np.int64)
    bad = np.zeros(nl + nr, dtype=bool)
    for a, b in zip(left, right):
        va, vb = _comparable(a, b)
        both = np.concatenate([va.astype(object), vb.astype(object)]) if va.dtype == object or vb.dtype == object \
            else np.concatenate([va, vb])
        codes, uniq = pd.factorize(both, use_na_sentinel=True)
        bad |= codes < 0
        key = pd.factorize(key * (len(uniq) + 1) + codes.astype(np.int64) + 1)[0].astype(np.int64)
    key[bad] = -1
    return key[:nl], key[nl:]


@dataclass
class Matched:
    """The result of a match.

    Attributes:
        pos: per left row, the position of the chosen right row, -1 when none.
        status: per left row, ``OK``, ``NOKEY`` (a key missing), ``NONE`` (no candidate),
            ``MANY`` (several candidates, none chosen) or ``NODATE`` (partial/missing date).
        group: per left row with status ``MANY``, the id of the tied right rows (else -1).
        right_group: per right row, the id of its tie (-1 when the row ties with no other).
        right_nodate: per right row, a partial/missing date (only for date matches).
        right_used: per right row, chosen by some left row.
    """

    pos: np.ndarray
    status: np.ndarray
    group: np.ndarray
    right_group: np.ndarray
    right_nodate: np.ndarray
    right_used: np.ndarray


def _finish(nr: int, pos: np.ndarray, status: np.ndarray, group: np.ndarray, right_group: np.ndarray,
            right_nodate: np.ndarray) -> Matched:
    used = np.zeros(nr, dtype=bool)
    used[pos[pos >= 0]] = True
    return Matched(pos, status, group, right_group, right_nodate, used)


def match_keys(lk: np.ndarray, rk: np.ndarray) -> Matched:
    """Equal keys: the one right row with the left row's key; several -> ``MANY``."""
    nr = len(rk)
    valid = rk >= 0
    counts = pd.Series(rk[valid]).value_counts()
    first = pd.Series(np.arange(nr)[valid]).groupby(rk[valid]).first() if valid.any() else pd.Series(dtype="int64")
    n = pd.Series(lk).map(counts).fillna(0).to_numpy(dtype=np.int64)
    p = pd.Series(lk).map(first).fillna(-1).to_numpy(dtype=np.int64)
    status = np.where(lk < 0, NOKEY, np.where(n == 0, NONE, np.where(n > 1, MANY, OK)))
    pos = np.where(status == OK, p, -1)
    group = np.where(status == MANY, lk, -1)
    right_group = np.where(valid & (pd.Series(rk).map(counts).fillna(0).to_numpy() > 1), rk, -1)
    return _finish(nr, pos, status, group, right_group, np.zeros(nr, dtype=bool))


def _tie_ids(rk: np.ndarray, rt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(id of each right row's (key, moment) pair, number of right rows sharing it)."""
    if not len(rk):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ids = distinct_rows(pd.Series(rk), pd.Series(rt))[0].astype(np.int64)
    return ids, np.bincount(ids)[ids]


def match_pick(lk: np.ndarray, rk: np.ndarray, rt: pd.Series, pick: str) -> Matched:
    """Equal keys, the first/last right row by date; a tie at that date -> ``MANY``.  Right rows
    with a partial/missing date cannot be picked (``right_nodate``)."""
    nr = len(rk)
    t = rt.to_numpy(dtype="datetime64[ns]")
    ok = (rk >= 0) & ~np.isnat(t)
    ids, n_tie = _tie_ids(rk, t)
    r = pd.DataFrame({"k": rk[ok], "t": t[ok], "i": np.arange(nr)[ok]}).sort_values(["k", "t", "i"], kind="mergesort")
    chosen = (r.groupby("k").head(1) if pick == "first" else r.groupby("k").tail(1)).set_index("k")["i"]
    p = pd.Series(lk).map(chosen).fillna(-1).to_numpy(dtype=np.int64)
    has_key_rows = pd.Series(lk).isin(rk[rk >= 0]).to_numpy()
    tie = np.where(p >= 0, n_tie[np.maximum(p, 0)] if nr else 0, 0) > 1
    status = np.where(lk < 0, NOKEY, np.where(p < 0, np.where(has_key_rows, NODATE, NONE), np.where(tie, MANY, OK)))
    group = np.where(status == MANY, ids[np.maximum(p, 0)] if nr else -1, -1)
    right_group = np.where(ok & (n_tie > 1), ids, -1) if nr else np.zeros(0, dtype=np.int64)
    pos = np.where(status == OK, p, -1)
    return _finish(nr, pos, status, group, right_group, (rk >= 0) & np.isnat(t) & np.isin(rk, lk[lk >= 0]))


def match_nearest(lk: np.ndarray, rk: np.ndarray, lt: pd.Series, rt: pd.Series, after: bool = False) -> Matched:
    """Same key, the right row with the latest moment on or before the left row's (``after``: the
    earliest on or after it); a tie at that moment -> ``MANY``; a left row without a moment ->
    ``NODATE``."""
    nl, nr = len(lk), len(rk)
    lt_ = lt.to_numpy(dtype="datetime64[ns]")
    rt_ = rt.to_numpy(dtype="datetime64[ns]")
    ids, n_tie = _tie_ids(rk, rt_)
    rok = (rk >= 0) & ~np.isnat(rt_)
    lok = (lk >= 0) & ~np.isnat(lt_)
    p = np.full(nl, -1, dtype=np.int64)
    if lok.any() and rok.any():
        left = pd.DataFrame({"k": lk[lok], "t": lt_[lok], "li": np.arange(nl)[lok]}).sort_values("t", kind="mergesort")
        right = pd.DataFrame({"k": rk[rok], "t": rt_[rok], "ri": np.arange(nr)[rok]}).sort_values(["t", "ri"], kind="mergesort")
        got = pd.merge_asof(left, right, on="t", by="k", direction="forward" if after else "backward",
                            allow_exact_matches=True)
        p[got["li"].to_numpy()] = got["ri"].fillna(-1).to_numpy(dtype=np.int64)
    tie = np.zeros(nl, dtype=bool)
    if nr:
        tie = (p >= 0) & (n_tie[np.maximum(p, 0)] > 1)
    status = np.where(lk < 0, NOKEY, np.where(np.isnat(lt_), NODATE, np.where(p < 0, NONE, np.where(tie, MANY, OK))))
    group = np.where(status == MANY, ids[np.maximum(p, 0)] if nr else -1, -1)
    right_group = np.where(rok & (n_tie > 1), ids, -1) if nr else np.zeros(0, dtype=np.int64)
    pos = np.where(status == OK, p, -1)
    # a right row with an unusable date matters only for subjects/keys that have left rows
    right_nodate = (rk >= 0) & np.isnat(rt_) & np.isin(rk, lk[lk >= 0])
    return _finish(nr, pos, status, group, right_group, right_nodate)


def tie_text(m: Matched, right: pd.DataFrame, label: str = "") -> pd.Series:
    """Per left row with status ``MANY``: ``[<label> ]<form> rows r1, r2`` naming the tied right
    rows (text built once per tie, not per row); empty elsewhere."""
    out = pd.Series("", index=range(len(m.status)), dtype="object")
    many = m.status == MANY
    if not many.any():
        return out
    sel = m.right_group >= 0

    def txt(col: str) -> np.ndarray:
        s = right[col] if col in right else pd.Series(np.nan, index=right.index)
        return s.astype("object").where(s.notna(), "").astype("str").to_numpy(dtype=object)[sel]

    t = pd.DataFrame({"g": m.right_group[sel], "f": txt(FORM), "r": txt(ROW)})
    t["r"] = t["r"].where(t["r"] != "", "?")
    t["fr"] = np.where(t["f"] == "", "records ", t["f"] + " rows ")
    rows = t.groupby("g", sort=False)["r"].agg(", ".join)  # once per tie
    head = t.groupby("g", sort=False)["fr"].first()
    text = ((label + " " if label else "") + head + rows).astype("object")
    out[many] = pd.Series(m.group[many]).map(text).to_numpy()
    return out


# ------------------------------------------------------------------------------------------------
# lookups between SDTM datasets


def _template(tpl: str, other: pd.DataFrame, pos: np.ndarray) -> np.ndarray:
    """A ``text`` template filled from the chosen other records (missing if a named value is)."""
    parts = re.split(_PLACEHOLDER, tpl)  # literal, VAR, literal, VAR, ...
    acc = np.full(len(pos), parts[0], dtype=object)
    missing = pos < 0
    for i in range(1, len(parts), 2):  # loop over placeholders
        col = other[parts[i]].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(col):
            col = number_text(col)
        vals = col.reindex(pos).astype("object")
        missing |= vals.isna().to_numpy()
        acc = acc + vals.fillna("").astype("str").to_numpy(dtype=object) + parts[i + 1]
    acc[missing] = None
    return acc


def lookup_problems(datasets: dict[str, pd.DataFrame], mappings: Mappings) -> list[Problem]:
    """Every variable a lookup reads must be on the frames when lookups run (after VISITNUM, DM,
    SE and EPOCH; before --DY, --SEQ, --LOBXFL and --NRIND): one problem per missing variable."""
    problems: list[Problem] = []
    for name, m in mappings.datasets.items():
        if not m.lookup or name not in datasets:
            continue
        f = mappings.files.get(name, name)
        mine = set(datasets[name].columns)
        for i, lk in enumerate(m.lookup):
            other = datasets.get(lk.dataset)
            if other is None:
                problems.append(Problem(f, f"{lk.dataset} is not built in this run", entry=f"lookup[{i}].dataset",
                                        value=lk.dataset))
                continue
            have = set(other.columns)
            om = mappings.datasets.get(lk.dataset)
            if om is not None:  # its own lookups run first (dependency order)
                have |= {t for o in om.lookup for t in o.targets()}
            for v in lk.other_variables():
                if v not in have:
                    problems.append(Problem(f, f"{lk.dataset} has no {v} when lookups run", entry=f"lookup[{i}]",
                                            value=v, hint=f"Map {v} in {lk.dataset.lower()}.yaml; --SEQ, --DY, --LOBXFL "
                                                          "and --NRIND are derived after lookups"))
            for v in lk.own_variables():
                if v not in mine:
                    problems.append(Problem(f, f"{name} has no {v} when lookups run", entry=f"lookup[{i}]", value=v,
                                            hint=f"Map {v} in {name.lower()}.yaml"))
            mine |= set(lk.targets())
    return problems


def apply_lookup(df: pd.DataFrame, name: str, other_all: pd.DataFrame, lk: Lookup, findings: Findings,
                 entry: str) -> pd.DataFrame:
    """One ``lookup`` of dataset ``name``: the targets set on matched records (others keep their
    value); findings for ties, records without a match and unusable dates."""
    other = (other_all.loc[evaluate(other_all, lk.where)] if lk.where else other_all).reset_index(drop=True)
    left = [df["USUBJID"]] + [df[k.variable] for k in lk.by]
    right = [other["USUBJID"]] + [other[k.other_variable] for k in lk.by]
    lkc, rkc = key_codes(left, right)
    date_var = None
    if lk.nearest is not None:
        after = lk.nearest.direction == "after"  # a date alone: the side that must be later covers its whole day
        m = match_nearest(lkc, rkc, moment(df[lk.nearest.date], not after), moment(other[lk.nearest.other], after),
                          after=after)
        date_var = lk.nearest.other
    elif lk.pick is not None:
        m = match_pick(lkc, rkc, moment(other[lk.order_by], False), lk.pick)  # type: ignore[arg-type]
        date_var = lk.order_by
    else:
        m = match_keys(lkc, rkc)
    out = df.copy(deep=False)
    hit = m.pos >= 0
    for target, var in lk.copy_.items():  # loop over target variables
        col = other[var].reset_index(drop=True)
        vals = pd.Series(col.reindex(m.pos).to_numpy(), index=df.index)
        if target in out:
            cur = out[target]
            if pd.api.types.is_numeric_dtype(cur) and not pd.api.types.is_numeric_dtype(vals):
                cur = cur.astype("object")
            vals = vals.where(hit, cur)
        out[target] = vals if pd.api.types.is_numeric_dtype(vals) else vals.where(vals.notna()).astype("str")
    for target, tpl in lk.text.items():
        vals = pd.Series(_template(tpl, other, m.pos), index=df.index, dtype="object")
        if target in out:
            vals = vals.where(hit, out[target].astype("object"))
        out[target] = vals.where(vals.notna()).astype("str")
    var = lk.targets()[0]
    keys = ", ".join(["USUBJID"] + [k.variable for k in lk.by])
    if lk.nearest is not None:
        how = (f"{lk.dataset} record with the earliest {lk.nearest.other} on or after {lk.nearest.date}"
               if lk.nearest.direction == "after" else
               f"{lk.dataset} record with the latest {lk.nearest.other} on or before {lk.nearest.date}")
        how += f" (same {keys})"
    else:
        how = f"{lk.dataset} record with the same {keys}"
    st = pd.Series(m.status, index=df.index)
    ties = pd.Series(tie_text(m, other, lk.dataset).to_numpy(), index=df.index)
    findings.add("SDTM.LOOKUP.MULTIPLE", "Error", f"{entry}: more than one {how}{' (pick: ' + lk.pick + ' ties)' if lk.pick else ''}; "
                 f"none used, {', '.join(lk.targets())} left as they were. Make the match unique (where:, by:) or "
                 "correct the data", name, var, df, st == MANY, ties)
    none = (st == NONE) | (st == NOKEY) | ((st == NODATE) & (lk.nearest is None))
    findings.add("SDTM.LOOKUP.NOMATCH", "Notice", f"{entry}: no {how}; {', '.join(lk.targets())} left as they were",
                 name, var, df, none, None)
    if lk.nearest is not None:
        findings.add("SDTM.LOOKUP.DATE", "Warning", f"{entry}: {lk.nearest.date} is partial or missing; a partial date "
                     "is never compared (no value)", name, var, df, (st == NODATE) & (lkc >= 0), df[lk.nearest.date])
    if date_var is not None:
        findings.add("SDTM.LOOKUP.DATE", "Warning", f"{entry}: {lk.dataset}.{date_var} is partial or missing; this "
                     f"{lk.dataset} record cannot be chosen for {name}", lk.dataset, date_var, other,
                     pd.Series(m.right_nodate, index=other.index), other[date_var])
    return out


def run_lookups(datasets: dict[str, pd.DataFrame], mappings: Mappings, findings: Findings) -> dict[str, pd.DataFrame]:
    """Every dataset's ``lookup`` entries, datasets in dependency order (a dataset after the ones
    it looks up), entries in file order.  InputError (before any lookup) when a variable is not
    on the frames."""
    order, stuck = lookup_order(mappings.datasets)
    if stuck:  # load_mappings reports cycles; a Mappings built by hand may still have one
        raise InputError([Problem(mappings.files.get(n, n), "the lookups form a cycle", entry="lookup") for n in stuck],
                         stage="sdtm")
    frames = dict(datasets)
    if "SE" not in frames:  # no subject reached an element: SE is looked up as empty, never written
        frames["SE"] = pd.DataFrame({c: pd.Series(dtype="str") for c in SE_COLUMNS})
    problems = lookup_problems(frames, mappings)
    if problems:
        raise InputError(problems, stage="sdtm")
    for name in order:
        if name not in datasets:
            continue
        df = frames[name]
        for i, lk in enumerate(mappings.datasets[name].lookup):
            df = apply_lookup(df, name, frames[lk.dataset], lk, findings,
                              f"{mappings.files.get(name, name)} lookup[{i}]")
        frames[name] = df
    return {name: frames[name] for name in datasets}


def working_variables(mappings: Mappings) -> dict[str, list[str]]:
    """Dataset -> its working variables (targets of ``working: true`` lookups), dropped after use."""
    return {n: [t for lk in m.lookup if lk.working for t in lk.targets()] for n, m in mappings.datasets.items()
            if any(lk.working for lk in m.lookup)}
