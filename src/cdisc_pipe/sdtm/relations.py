"""SUPP--, SV (when not mapped) and record-level RELREC, built from already mapped datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdisc_pipe.sdtm.algorithms import FORM, ROW, per_value
from cdisc_pipe.sdtm.derive import derive_var_dy, derive_var_epoch
from cdisc_pipe.sdtm.mapping import Mappings


def build_supp(parent: pd.DataFrame, domain: str, qvals: dict[str, tuple[str, str, str | None, pd.Series]],
               studyid: str) -> pd.DataFrame:
    """SUPP-- rows: one per parent record and QNAM with a value; IDVAR = --SEQ (blank for DM)."""
    rows = []
    seq_var = f"{domain}SEQ"
    for qnam, (qlabel, qorig, qeval, values) in qvals.items():  # loop over QNAMs
        has = values.notna() & (values.astype("str").str.strip() != "")
        if not has.any():
            continue
        p = parent.loc[has]
        rows.append(pd.DataFrame({
            "STUDYID": studyid, "RDOMAIN": domain, "USUBJID": p["USUBJID"].to_numpy(),
            "IDVAR": None if domain == "DM" else seq_var,
            "IDVARVAL": None if domain == "DM" else p[seq_var].astype("Int64").astype("str").to_numpy(),
            "QNAM": qnam, "QLABEL": qlabel, "QVAL": values.loc[has].astype("str").to_numpy(), "QORIG": qorig,
            "QEVAL": qeval, FORM: p[FORM].to_numpy() if FORM in p else None, ROW: p[ROW].to_numpy() if ROW in p else None}))
    if not rows:
        return pd.DataFrame(columns=["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL", "QORIG", "QEVAL"])
    out = pd.concat(rows, ignore_index=True)
    key = pd.to_numeric(out["IDVARVAL"], errors="coerce")
    order = np.lexsort((out["QNAM"].astype("str").to_numpy(), key.fillna(-1).to_numpy(), out["USUBJID"].astype("str").to_numpy()))
    return out.iloc[order].reset_index(drop=True)


def build_sv(datasets: dict[str, pd.DataFrame], tv: pd.DataFrame, studyid: str, se: pd.DataFrame) -> pd.DataFrame:
    """SV: one record per subject visit seen in any dataset; start/end = earliest/latest date there."""
    parts = []
    for name, df in datasets.items():
        if "VISITNUM" not in df or df.empty:
            continue
        dom = name
        dtc = next((c for c in (f"{dom}DTC", f"{dom}STDTC") if c in df), None)
        if dtc is None:
            continue
        parts.append(pd.DataFrame({"USUBJID": df["USUBJID"], "VISITNUM": df["VISITNUM"], "VISIT": df["VISIT"],
                                   "d": df[dtc].astype("str").str.slice(0, 10)}))
    if not parts:
        return pd.DataFrame()
    a = pd.concat(parts, ignore_index=True).dropna(subset=["VISITNUM"])
    a = a[a["d"].str.match(r"^\d{4}-\d{2}-\d{2}$").fillna(False).astype(bool)]
    g = a.groupby(["USUBJID", "VISITNUM"], as_index=False).agg(VISIT=("VISIT", "first"), SVSTDTC=("d", "min"), SVENDTC=("d", "max"))
    g = g.merge(tv[["VISITNUM", "VISITDY"]].drop_duplicates("VISITNUM"), on="VISITNUM", how="left")
    g["STUDYID"], g["DOMAIN"] = studyid, "SV"
    g["SVUPDES"] = pd.Series(np.where(g["VISITDY"].isna(), "Unscheduled assessment", None), index=g.index).astype("str")
    g["EPOCH"] = derive_var_epoch(g, se, "SVSTDTC") if not se.empty else np.nan
    return g


def _day(u: pd.Series) -> pd.Series:
    """The first ten characters of each value that starts with a complete date (``YYYY-MM-DD``), else None."""
    head = u.astype("str").str.slice(0, 10)
    return head.where(head.str.match(r"^\d{4}-\d{2}-\d{2}$").fillna(False).astype(bool), None)


def _complete_day(values: pd.Series) -> np.ndarray:
    """:func:`_day` of each value, worked out once per distinct value (dates repeat across records)."""
    return per_value(values, _day).to_numpy(dtype=object)


def _visit_dates(datasets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """USUBJID, VISITNUM, VISIT, first and last date of every record with a VISITNUM (any dataset but SV/SE/TV):
    the start date (--DTC, else --STDTC) and the end date (--ENDTC, else the start); undated records count too."""
    parts = []
    for name, df in datasets.items():
        if name in ("SV", "SE", "TV") or name.startswith("SUPP") or "VISITNUM" not in df or "USUBJID" not in df or df.empty:
            continue
        dom = str(df["DOMAIN"].dropna().iloc[0]) if "DOMAIN" in df and df["DOMAIN"].notna().any() else name
        st = next((c for c in (f"{dom}DTC", f"{dom}STDTC") if c in df), None)
        en = f"{dom}ENDTC" if f"{dom}ENDTC" in df else st
        none = np.full(len(df), None, dtype=object)
        s = _complete_day(df[st]) if st else none
        e = _complete_day(df[en]) if en else none
        e = np.where(pd.isna(e), s, e)  # an end that is not a complete date: the start's
        parts.append(pd.DataFrame({"USUBJID": df["USUBJID"], "VISITNUM": pd.to_numeric(df["VISITNUM"], errors="coerce"),
                                   "VISIT": df["VISIT"] if "VISIT" in df else None,
                                   "s": pd.Series(s, index=df.index, dtype="str"),
                                   "e": pd.Series(e, index=df.index, dtype="str")}))
    if not parts:
        return pd.DataFrame(columns=["USUBJID", "VISITNUM", "VISIT", "first", "last"])
    a = pd.concat(parts, ignore_index=True).dropna(subset=["VISITNUM"])
    # earliest and latest date by their rank in text order (ISO dates sort as text): a grouped
    # min/max of numbers, where one of text runs a Python loop per group
    s_rank, s_values = _text_ranks(a["s"])
    e_rank, e_values = _text_ranks(a["e"])
    out = a.assign(s=s_rank, e=e_rank).groupby(["USUBJID", "VISITNUM"], as_index=False, dropna=False).agg(
        VISIT=("VISIT", "first"), first=("s", "min"), last=("e", "max"))
    return out.assign(first=_from_ranks(out["first"], s_values), last=_from_ranks(out["last"], e_values))


def _text_ranks(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(each value's rank among the distinct values in text order, NaN when missing; those values)."""
    codes, uniques = pd.factorize(values, sort=True)
    return np.where(codes < 0, np.nan, codes), np.asarray(uniques, dtype=object)


def _from_ranks(ranks: pd.Series, values: np.ndarray) -> pd.Series:
    """The values at ``ranks`` (:func:`_text_ranks`), missing where the rank is."""
    r = ranks.to_numpy(dtype=float)
    have = ~np.isnan(r)
    out = np.full(len(r), None, dtype=object)
    out[have] = values[r[have].astype(np.intp)]
    return pd.Series(out, index=ranks.index, dtype="str")


def complete_sv(sv: pd.DataFrame, datasets: dict[str, pd.DataFrame], tv: pd.DataFrame, studyid: str,
                se: pd.DataFrame, dm: pd.DataFrame) -> pd.DataFrame:
    """SV holds every visit (USUBJID, VISITNUM) used in any other dataset, its start/end spanning the visit's records.

    A visit the visit form lacks (an unscheduled lab sample dated another day than the unscheduled visit: unscheduled
    visits are numbered by date) gets its own SV record from those records' dates; a visit whose records fall
    before or after its visit-form date (a 24-hour urine collection started the day before, a treatment given over days)
    has SVSTDTC/SVENDTC widened to them.  EPOCH and the study days follow the new dates."""
    used = _visit_dates(datasets)
    if used.empty:
        return sv
    out = sv.copy(deep=False)
    if out.empty:
        out = pd.DataFrame(columns=["STUDYID", "DOMAIN", "USUBJID", "VISITNUM", "VISIT", "SVSTDTC", "SVENDTC"])
    key = ["USUBJID", "VISITNUM"]
    m = out[key].merge(used, on=key, how="left")
    st, en = out["SVSTDTC"].astype("object"), out["SVENDTC"].astype("object")
    st_d = st.where(st.notna(), None).astype("str").str.slice(0, 10)
    en_d = en.where(en.notna(), None).astype("str").str.slice(0, 10)
    first = pd.Series(m["first"].to_numpy(dtype=object), index=out.index)
    last = pd.Series(m["last"].to_numpy(dtype=object), index=out.index)
    earlier = first.notna() & (st.isna() | (first < st_d).fillna(False))
    later = last.notna() & (en.isna() | (last > en_d).fillna(False))
    changed = earlier | later
    out.loc[earlier, "SVSTDTC"] = first[earlier]
    out.loc[later, "SVENDTC"] = last[later]
    have = pd.MultiIndex.from_frame(out[key].astype({"VISITNUM": "float64"}))
    new = used[~pd.MultiIndex.from_frame(used[key].astype({"VISITNUM": "float64"})).isin(have)]
    if not new.empty:
        add = pd.DataFrame({"STUDYID": studyid, "DOMAIN": "SV", "USUBJID": new["USUBJID"].to_numpy(),
                            "VISITNUM": new["VISITNUM"].to_numpy(dtype="float64"), "VISIT": new["VISIT"].to_numpy(),
                            "SVSTDTC": new["first"].to_numpy(), "SVENDTC": new["last"].to_numpy()})
        add = add.merge(tv[["VISITNUM", "VISITDY"]].drop_duplicates("VISITNUM"), on="VISITNUM", how="left") \
            if "VISITDY" in tv else add
        if "SVUPDES" in out or "VISITDY" in add:
            planned = add["VISITNUM"].isin(tv["VISITNUM"]) if "VISITNUM" in tv else pd.Series(False, index=add.index)
            add["SVUPDES"] = pd.Series(np.where(planned, None, "Unscheduled visit"), index=add.index, dtype="object")
        out = pd.concat([out, add], ignore_index=True)
        changed = pd.concat([changed.reset_index(drop=True), pd.Series(True, index=range(len(add)))], ignore_index=True)
        out.index = changed.index
    if not changed.any():
        return sv
    if "EPOCH" in out and se is not None and not se.empty:
        out.loc[changed, "EPOCH"] = derive_var_epoch(out.loc[changed], se, "SVSTDTC")
    dy = [(a, b) for a, b in (("SVSTDTC", "SVSTDY"), ("SVENDTC", "SVENDY")) if b in out]
    if dy and dm is not None and not dm.empty:
        redo = derive_var_dy(out.loc[changed].drop(columns=[b for _, b in dy]), dm, dy)
        for _, b in dy:
            out.loc[changed, b] = redo[b].to_numpy()
    out = out.sort_values(key, kind="mergesort").reset_index(drop=True)
    return out


def clear_single_links(datasets: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """--LNKID / --LNKGRP link records of two or more datasets: a value (per subject) no other dataset
    holds links nothing and is cleared (e.g. AELNKID of an AE without CRS/ICANS detail or medication)."""
    out = dict(datasets)
    for suffix in ("LNKID", "LNKGRP"):
        cols = {n: c for n, df in datasets.items() for c in df.columns
                if c.endswith(suffix) and len(c) == len(suffix) + 2 and "USUBJID" in df}
        if not cols:
            continue
        keys = {n: pd.MultiIndex.from_arrays([datasets[n]["USUBJID"].astype("str").to_numpy(dtype=object),
                                              datasets[n][c].astype("str").to_numpy(dtype=object)])
                for n, c in cols.items()}
        for n, c in cols.items():
            df = out[n]
            val = df[c]
            pop = val.notna() & (val.astype("str").str.strip() != "")
            found = np.zeros(len(df), dtype=bool)
            for m, k in keys.items():
                if m != n:
                    found |= keys[n].isin(k)
            lone = pop.to_numpy(dtype=bool) & ~found
            if lone.any():
                out[n] = df.assign(**{c: val.where(~lone, None)})
    return out


def build_relrec(datasets: dict[str, pd.DataFrame], mappings: Mappings, studyid: str) -> pd.DataFrame:
    """RELREC rows for record-level relations declared in the mappings (``relrec:``)."""
    parts = []
    for m in mappings.datasets.values():
        for r in m.relrec:
            a, b = datasets.get(r.left), datasets.get(r.right)
            if a is None or b is None or a.empty or b.empty:
                continue
            rl = r.right_link or r.link
            if r.link not in a or rl not in b:
                continue
            la = a[["USUBJID", r.link, f"{r.left}SEQ"]].dropna(subset=[r.link])
            lb = b[["USUBJID", rl, f"{r.right}SEQ"]].dropna(subset=[rl])
            pairs = la.merge(lb, left_on=["USUBJID", r.link], right_on=["USUBJID", rl])
            if pairs.empty:
                continue
            pairs = pairs.sort_values(["USUBJID", f"{r.left}SEQ"], kind="mergesort")
            relid = r.relid + pairs.groupby(["USUBJID", f"{r.left}SEQ"], sort=False).ngroup().add(1).astype("str")
            left_rows = pairs.drop_duplicates(["USUBJID", f"{r.left}SEQ"])
            parts.append(pd.DataFrame({"USUBJID": left_rows["USUBJID"].to_numpy(), "RDOMAIN": r.left, "IDVAR": f"{r.left}SEQ",
                                       "IDVARVAL": left_rows[f"{r.left}SEQ"].astype("Int64").astype("str").to_numpy(),
                                       "RELTYPE": None, "RELID": relid.loc[left_rows.index].to_numpy()}))
            parts.append(pd.DataFrame({"USUBJID": pairs["USUBJID"].to_numpy(), "RDOMAIN": r.right, "IDVAR": f"{r.right}SEQ",
                                       "IDVARVAL": pairs[f"{r.right}SEQ"].astype("Int64").astype("str").to_numpy(),
                                       "RELTYPE": None, "RELID": relid.to_numpy()}))
    if not parts:
        return pd.DataFrame(columns=["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "RELTYPE", "RELID"])
    out = pd.concat(parts, ignore_index=True)
    out["STUDYID"] = studyid
    return out
