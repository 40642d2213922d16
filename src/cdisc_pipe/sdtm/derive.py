"""Shared SDTM derivations, driven by the dataset spec instead of repeated per domain.

Each function takes frames and returns a new frame (or Series); none mutates its input.  Which
derivations run for a dataset follows from the variables its spec declares: a spec with ``LBDY``
and ``LBDTC`` gets :func:`derive_var_dy`, one with ``EPOCH`` gets :func:`derive_var_epoch`, and so on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdisc_pipe.sdtm.algorithms import Findings, blank, distinct_rows, evaluate, factorize_text, per_value
from cdisc_pipe.sdtm.dates import complete_date, study_day
from cdisc_pipe.sdtm.mapping import Baseline


def derive_var_usubjid(studyid: str, siteid: pd.Series, subjid: pd.Series) -> pd.Series:
    """USUBJID = ``<STUDYID>-<SITEID>-<SUBJID>`` (ARCHITECTURE.md conventions)."""
    return (studyid + "-" + siteid.astype("str").str.strip() + "-" + subjid.astype("str").str.strip()).astype("str")


def derive_var_seq(df: pd.DataFrame, seq_var: str, keys: list[str]) -> pd.DataFrame:
    """--SEQ: 1..n per USUBJID in the order of the dataset's keys (stable for the same input).

    Keys that are --SEQ itself or absent are ignored; ties keep the incoming (source) order.
    """
    by = [k for k in keys if k in df.columns and k != seq_var]
    if "USUBJID" not in by:
        by = ["USUBJID"] + by
    order = df.reset_index(drop=True)
    # sort on order-preserving integer codes of each key (missing first), ties by source position:
    # the same order as sort_values(by + [position], na_position="first"), without sorting text per row
    keys = [pd.factorize(order[k].to_numpy(), sort=True, use_na_sentinel=True)[0] for k in by]
    idx = np.lexsort([np.arange(len(order))] + keys[::-1]) if len(order) else np.arange(0)
    order = order.iloc[idx]
    order[seq_var] = (order.groupby("USUBJID", sort=False).cumcount() + 1).astype("float64")
    return order.reset_index(drop=True)


def derive_var_dy(df: pd.DataFrame, dm: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """--DY/--STDY/--ENDY from the matching --DTC and DM.RFSTDTC (no day 0; complete dates only).

    Args:
        pairs: ``(dtc_variable, dy_variable)``, e.g. ``[("LBDTC", "LBDY")]``.
    """
    if not pairs or df.empty:
        return df
    ref = _dm_value(df, dm, "RFSTDTC").reset_index(drop=True)
    out = df.copy(deep=False)
    for dtc, dy in pairs:
        out[dy] = study_day(out[dtc].reset_index(drop=True), ref).to_numpy()
    return out


def _dm_value(df: pd.DataFrame, dm: pd.DataFrame, var: str) -> pd.Series:
    """DM ``var`` of each record's subject (first DM record of the subject), aligned with ``df``."""
    lut = dm[["USUBJID", var]].drop_duplicates("USUBJID").set_index("USUBJID")[var]
    return pd.Series(df["USUBJID"].map(lut).to_numpy(), index=df.index)


def _moment(dtc: pd.Series, date_only_at_end: bool) -> pd.Series:
    """A --DTC as a point in time: the date-time when a time is present, otherwise the date at the
    start (``00:00``) or, with ``date_only_at_end``, the end of the day; NaT for partial dates.
    Computed once per distinct value."""
    codes, rep = distinct_rows(dtc)
    m = _moment_distinct(dtc.iloc[rep].reset_index(drop=True), date_only_at_end)
    return pd.Series(m.to_numpy()[codes], index=dtc.index)


def _moment_distinct(dtc: pd.Series, date_only_at_end: bool) -> pd.Series:
    d = complete_date(dtc)
    txt = dtc.astype("object").where(dtc.notna(), "").astype("str")
    has_t = per_value(txt, lambda u: u.str.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")).fillna(False).astype(bool)
    t = pd.to_datetime(txt.where(has_t).str.slice(0, 16), format="%Y-%m-%dT%H:%M", errors="coerce")
    day_end = d + pd.Timedelta(hours=23, minutes=59, seconds=59) if date_only_at_end else d
    return t.where(has_t, day_end)


def derive_var_epoch(df: pd.DataFrame, se: pd.DataFrame, dtc: str) -> pd.Series:
    """EPOCH of each record from SE: the element whose start is the latest on or before the record.

    Date-times are compared when both have a time (a lab at 08:00 before a 09:30 first dose is
    still in the screening epoch); a record without a time on an element's start day belongs to the
    new element.  Records with a partial or missing date, or before the subject's first element,
    get no EPOCH.  The last element is open-ended.
    """
    when = _moment(df[dtc], date_only_at_end=True).reset_index(drop=True)
    rec = pd.DataFrame({"USUBJID": df["USUBJID"].astype("str").to_numpy(), "d": when.to_numpy(), "pos": np.arange(len(df))})
    starts = se.assign(d=_moment(se["SESTDTC"], date_only_at_end=False))[["USUBJID", "d", "EPOCH"]].dropna(subset=["d"])
    starts = starts.astype({"USUBJID": "str"}).sort_values("d", kind="mergesort")
    left = rec.loc[rec["d"].notna()].sort_values("d", kind="mergesort")
    if left.empty or starts.empty:
        return pd.Series(np.nan, index=df.index, dtype="str")
    left["d"] = left["d"].astype(starts["d"].dtype)
    merged = pd.merge_asof(left, starts, on="d", by="USUBJID", direction="backward")
    out = pd.Series(np.nan, index=np.arange(len(df)), dtype="object")
    out.loc[merged["pos"].to_numpy()] = merged["EPOCH"].to_numpy()
    out.index = df.index
    return out.where(out.notna()).astype("str")


def derive_var_visitnum(frames: dict[str, tuple[pd.DataFrame, str, str, str]], tv: pd.DataFrame,
                        aliases: dict[str, str], ctx_findings: Findings) -> dict[str, pd.DataFrame]:
    """VISITNUM/VISIT for every dataset at once, from the trial visit plan (TV).

    Args:
        frames: dataset -> (frame, target variable holding the collected visit name, --DTC variable,
            prefix of unscheduled visit names).
        tv: TV rows (VISITNUM, VISIT); one per visit (arms share the plan here).
        aliases: upper-cased collected visit name -> TV VISIT (study synonyms, incl. TV names themselves).

    Scheduled visits take VISITNUM from TV.  Unscheduled visits (collected name starting
    with the dataset's unscheduled prefix) take the number of the subject's last scheduled visit on or before their date plus
    .01, .02 ... by distinct date (across all datasets, so the same day is the same visit
    everywhere), VISIT ``UNSCHEDULED <n.nn>``.  A name matching nothing is ``SDTM.VISIT.UNKNOWN``:
    VISIT keeps the collected text, VISITNUM stays missing.
    """
    tvmap = tv.drop_duplicates("VISIT").set_index("VISIT")["VISITNUM"]
    stacked = []
    for name, (df, vcol, dtc, uprefix) in frames.items():
        # once per distinct collected name: the TV name, its number, unscheduled or not
        codes, uniq = factorize_text(df[vcol])
        raw_u = pd.Series(uniq, dtype="object").astype("str").str.strip().str.upper()
        visit_u = raw_u.map(aliases)
        num_u = visit_u.map(tvmap)
        uns_u = raw_u.str.startswith(uprefix.upper()).fillna(False).astype(bool) & num_u.isna()
        visit = pd.Series(np.append(visit_u.to_numpy(dtype=object), np.nan)[codes], index=df.index, dtype="object")
        num = pd.Series(np.append(num_u.to_numpy(dtype="float64"), np.nan)[codes], index=df.index)
        uns = pd.Series(np.append(uns_u.to_numpy(dtype=bool), False)[codes], index=df.index)
        stacked.append(pd.DataFrame({"ds": name, "pos": np.arange(len(df)), "USUBJID": df["USUBJID"].astype("str").to_numpy(),
                                     "raw": df[vcol].to_numpy(), "VISIT": visit.to_numpy(), "VISITNUM": num.to_numpy(),
                                     "uns": uns.to_numpy(), "d": complete_date(df[dtc]).to_numpy()}))
    allv = pd.concat(stacked, ignore_index=True) if stacked else pd.DataFrame()
    if allv.empty:
        return {k: v[0] for k, v in frames.items()}
    allv = allv.reset_index(drop=True)
    sched = allv[allv["VISITNUM"].notna() & allv["d"].notna()].groupby(["USUBJID", "VISITNUM"], as_index=False)["d"].min()
    sched = sched.sort_values("d", kind="mergesort")
    u = allv[allv["uns"] & allv["d"].notna()][["USUBJID", "d"]].drop_duplicates().sort_values("d", kind="mergesort")
    if not u.empty:
        base = pd.merge_asof(u, sched.rename(columns={"VISITNUM": "base"}), on="d", by="USUBJID", direction="backward")
        base["base"] = base["base"].fillna(0.0)
        base = base.sort_values(["USUBJID", "base", "d"], kind="mergesort")
        base["n"] = base.groupby(["USUBJID", "base"]).cumcount() + 1
        base["unum"] = (base["base"] + base["n"] / 100).round(2)
        # only the unscheduled dated rows can take a number: merge those, not every row
        sel = (allv["uns"] & allv["d"].notna()).to_numpy()
        got = allv.loc[sel, ["USUBJID", "d"]].merge(base[["USUBJID", "d", "unum"]], on=["USUBJID", "d"], how="left",
                                                     validate="many_to_one")
        unum = np.full(len(allv), np.nan)
        unum[sel] = got["unum"].to_numpy(dtype="float64")
        allv["unum"] = unum
        is_u = allv["uns"] & allv["unum"].notna()
        allv.loc[is_u, "VISITNUM"] = allv.loc[is_u, "unum"]
        allv.loc[is_u, "VISIT"] = "UNSCHEDULED " + allv.loc[is_u, "unum"].map("{:.2f}".format)
    unknown = allv["VISITNUM"].isna() & allv["raw"].notna() & ~allv["uns"]
    result: dict[str, pd.DataFrame] = {}
    start = 0
    for name, (df, vcol, dtc, _) in frames.items():
        # the stacked rows of a dataset are one block in source order (the left merge keeps the order)
        part = allv.iloc[start:start + len(df)]
        start += len(df)
        out = df.copy(deep=False)
        visit = pd.Series(part["VISIT"].to_numpy(), index=df.index, dtype="object")
        collected = df[vcol]
        out["VISITNUM"] = pd.to_numeric(pd.Series(part["VISITNUM"].to_numpy(), index=df.index), errors="coerce").astype("float64")
        out["VISIT"] = visit.where(visit.notna(), collected).where(collected.notna()).astype("str")
        bad = pd.Series(unknown.iloc[start - len(df):start].to_numpy(), index=df.index)
        ctx_findings.add("SDTM.VISIT.UNKNOWN", "Warning", "collected visit name not in the trial visit plan (TV) nor its aliases",
                         name, "VISIT", df, bad, collected)
        undated = pd.Series((part["uns"] & part["d"].isna()).to_numpy(), index=df.index)
        ctx_findings.add("SDTM.VISIT.UNSCHEDNODATE", "Warning", "unscheduled visit without a complete date: VISITNUM left missing",
                         name, "VISITNUM", df, undated, collected)
        result[name] = out
    return result


def _ref_compare(dtc: pd.Series, ref: pd.Series) -> pd.Series:
    """True where the record is before the reference: date-times when both have a time (strictly
    before), else by date (on or before the reference date counts as pre-dose).  Computed once
    per distinct (date, reference) pair."""
    codes, rep = distinct_rows(dtc, ref)
    b = _ref_compare_distinct(dtc.iloc[rep].reset_index(drop=True), ref.iloc[rep].reset_index(drop=True))
    return pd.Series(b.to_numpy(dtype=bool)[codes], index=dtc.index)


def _ref_compare_distinct(dtc: pd.Series, ref: pd.Series) -> pd.Series:
    d = complete_date(dtc)
    r = complete_date(ref)
    dt_has_t = dtc.astype("str").str.len().gt(10).fillna(False).astype(bool)
    rf_has_t = ref.astype("str").str.len().gt(10).fillna(False).astype(bool)
    both = dt_has_t & rf_has_t
    dts = pd.to_datetime(dtc.astype("str").where(both).str.slice(0, 16), format="%Y-%m-%dT%H:%M", errors="coerce")
    rfs = pd.to_datetime(ref.astype("str").where(both).str.slice(0, 16), format="%Y-%m-%dT%H:%M", errors="coerce")
    by_time = both & dts.notna() & rfs.notna()
    return ((by_time & (dts < rfs)) | (~by_time & (d <= r))).fillna(False).astype(bool)


def derive_var_lobxfl(df: pd.DataFrame, dm: pd.DataFrame, rule: Baseline, prefix: str, flag_vars: list[str]) -> pd.DataFrame:
    """--LOBXFL (and --BLFL when asked): ``Y`` on the last non-missing result before the reference.

    The reference is the variable the mapping's ``baseline`` rule names, per group of records
    (``groups``): a DM variable of the subject (``source: DM``, for example RFXSTDTC = first
    exposure for one group of tests and RFSTDTC for another) or a variable of the record itself
    (``source: record``).  A reference variable that does not exist gives no baseline.  Among
    candidate records of a subject x ``by`` group the latest date wins; ties keep the last in
    --SEQ order.
    """
    out = df.copy(deep=False)
    for v in flag_vars:
        out[v] = pd.Series(np.nan, index=out.index, dtype="str")
    if df.empty:
        return out
    names = list(dict.fromkeys([rule.reference] + [g.reference for g in rule.groups]))
    table = dm if rule.source == "DM" else df
    refs = {v: (_dm_value(df, dm, v) if rule.source == "DM" else df[v]) if v in table
            else pd.Series(np.nan, index=df.index, dtype="object") for v in names}
    which = pd.Series(rule.reference, index=df.index)
    for g in rule.groups:
        which = which.mask(evaluate(df, g.where), g.reference)
    ref = refs[names[0]]
    for v in names[1:]:  # loop over reference variables
        ref = ref.where(which != v, refs[v])
    dtc = df[f"{prefix}DTC"]
    has_result = df[f"{prefix}ORRES"].notna() if f"{prefix}ORRES" in df else pd.Series(True, index=df.index)
    if f"{prefix}STAT" in df:
        has_result &= df[f"{prefix}STAT"].isna()
    cand = has_result & complete_date(dtc).notna() & _ref_compare(dtc, ref)
    if not cand.any():
        return out
    c = df.loc[cand, ["USUBJID"] + rule.by].copy()
    c["__d"] = dtc.loc[cand].astype("str")
    c["__i"] = np.arange(len(c))
    c = c.sort_values(["__d", "__i"], kind="mergesort")
    last = c.groupby(["USUBJID"] + rule.by, dropna=False).tail(1).index
    for v in flag_vars:
        out.loc[last, v] = "Y"
    return out


def derive_var_nrind(df: pd.DataFrame, prefix: str) -> pd.Series:
    """--NRIND from --STRESN and --STNRLO/--STNRHI: LOW, HIGH, NORMAL; missing without a range or number."""
    n = df[f"{prefix}STRESN"]
    lo = df[f"{prefix}STNRLO"] if f"{prefix}STNRLO" in df else pd.Series(np.nan, index=df.index)
    hi = df[f"{prefix}STNRHI"] if f"{prefix}STNRHI" in df else pd.Series(np.nan, index=df.index)
    out = pd.Series(np.nan, index=df.index, dtype="object")
    ranged = n.notna() & (lo.notna() | hi.notna())
    out[ranged] = "NORMAL"
    out[n.notna() & lo.notna() & (n < lo)] = "LOW"
    out[n.notna() & hi.notna() & (n > hi)] = "HIGH"
    return out.where(out.notna()).astype("str")


def first_last(df: pd.DataFrame, value: str, pick: str) -> pd.Series:
    """Per USUBJID, the smallest (``first``) or largest (``last``) non-missing ISO value of ``value``.

    ISO 8601 strings sort chronologically at equal precision; a partial date sorts before the full
    dates of the same month, which is the conservative choice for "first" and documented for "last".
    """
    s = df[["USUBJID", value]].dropna()
    s = s[~blank(s[value]).to_numpy()]
    g = s.groupby("USUBJID")[value]
    return (g.min() if pick == "first" else g.max()).astype("str")


__all__ = ["derive_var_usubjid", "derive_var_seq", "derive_var_dy", "derive_var_epoch", "derive_var_visitnum",
           "derive_var_lobxfl", "derive_var_nrind", "first_last"]
