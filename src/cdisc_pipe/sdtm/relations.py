"""SUPP--, SV (when not mapped) and record-level RELREC, built from already mapped datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdisc_pipe.sdtm.algorithms import FORM, ROW
from cdisc_pipe.sdtm.derive import derive_var_epoch
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
