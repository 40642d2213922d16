"""Record-keeping data checks and spec conformance: problems become findings, records are kept."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdisc_pipe.sdtm.algorithms import (
    FORM, ROW, SUBJ, Findings, byte_len_uniques, clean_uniques, compact_codes, distinct_rows, factorize_text, per_value, text_from_codes,
)
from cdisc_pipe.sdtm.dates import complete_date
from cdisc_pipe.spec.model import Dataset


def _dtc_vars(df: pd.DataFrame, dom: str) -> list[str]:
    return [c for c in df.columns if c.startswith(dom) and c.endswith("DTC")]


def data_checks(datasets: dict[str, pd.DataFrame], findings: Findings) -> None:
    """Record-keeping checks: subject not enrolled, end before start, records after death."""
    dm = datasets.get("DM")
    if dm is None:
        return
    enrolled = set(dm["USUBJID"].dropna())
    death = dm.set_index("USUBJID")["DTHDTC"] if "DTHDTC" in dm else pd.Series(dtype="str")
    for name, df in datasets.items():
        if name == "DM" or df.empty or "USUBJID" not in df or name.startswith("SUPP") or name == "RELREC":
            continue
        unknown = ~df["USUBJID"].isin(enrolled) & df["USUBJID"].notna()
        # the subject number is enrolled but the site (or study) part differs: an inconsistent id
        subj_of = dm.set_index(dm["USUBJID"].str.rsplit("-", n=1).str[-1])["USUBJID"]
        number = per_value(df["USUBJID"], lambda u: u.str.rsplit("-", n=1).str[-1])
        inconsistent = unknown & number.isin(subj_of.index)
        findings.add("SDTM.SUBJ.INCONSISTENT", "Error",
                     "subject number enrolled under another site/study id (USUBJID differs from DM); record kept",
                     name, "USUBJID", df, inconsistent, df["USUBJID"])
        findings.add("SDTM.SUBJ.NOTENROLLED", "Error", "subject not in DM (not enrolled); record kept",
                     name, "USUBJID", df, unknown & ~inconsistent, df["USUBJID"])
        st, en = f"{name}STDTC", f"{name}ENDTC"
        if st in df and en in df:
            # once per distinct (start, end) pair
            codes, rep = distinct_rows(df[st], df[en])
            a, b = df[st].iloc[rep].astype("str").reset_index(drop=True), df[en].iloc[rep].astype("str").reset_index(drop=True)
            n = np.minimum(a.str.len().fillna(0), b.str.len().fillna(0)).clip(upper=10).astype(int)
            comparable = a.notna() & b.notna()
            # compare at the common precision (date part): '2024-03' vs '2024-02-10' -> 2024-03 > 2024-02
            bad = comparable & (_prefix(a, n) > _prefix(b, n))
            findings.add("SDTM.DATE.ENDBEFORESTART", "Error", f"{en} before {st}; record kept", name, en, df,
                         pd.Series(bad.to_numpy(dtype=bool)[codes], index=df.index),
                         lambda st=st, en=en: df[st].astype("str").fillna("") + " > " + df[en].astype("str").fillna(""))
        if not death.empty and name not in ("DD", "DS", "SS", "SE", "SV"):
            dd = complete_date(df["USUBJID"].map(death))
            dates = [complete_date(df[c]) for c in _dtc_vars(df, name)]
            latest = pd.concat(dates, axis=1).max(axis=1) if dates else None  # NaT-skipping maximum
            if latest is not None:
                after = dd.notna() & latest.notna() & (latest > dd)
                findings.add("SDTM.DATE.AFTERDEATH", "Warning", "record dated after the subject's death (DM.DTHDTC); record kept",
                             name, None, df, after, lambda latest=latest: latest.dt.strftime("%Y-%m-%d"))


def _prefix(s: pd.Series, n: pd.Series) -> pd.Series:
    out = s.copy()
    for k in n.unique():  # a few precisions
        hit = n == k
        out.loc[hit] = s.loc[hit].str.slice(0, int(k))
    return out


def conform(df: pd.DataFrame, ds: Dataset, findings: Findings, keys_check: bool = True,
            coded_in: dict[str, tuple[np.ndarray, np.ndarray]] | None = None, consume: bool = False) -> pd.DataFrame:
    """The frame with exactly the spec's variables in spec order and types; problems as findings.

    Text: ``str`` dtype (missing = NA); numbers: float64.  Findings: Req variable null
    (``SDTM.REQ.NULL``), value longer than the spec length (``SDTM.LENGTH``), duplicate keys
    (``SDTM.KEY.DUPLICATE``).  Records are kept.

    Each text column is factorized once: trimming, byte lengths and the null check work on its
    distinct values, and the key check reuses the codes.  ``coded_in``: factorizations of columns
    of ``df`` already made (by :func:`~cdisc_pipe.sdtm.algorithms.ascii_policy` on this frame).
    ``consume``: the caller gives ``df`` (and ``coded_in``) up: each column is taken out of it as
    it is converted, so the frame is not held twice at its largest (a 2-million-record LB).
    """
    out = pd.DataFrame(index=df.index)
    coded: dict[str, tuple[np.ndarray, list[str | None]]] = {}
    for v in sorted(ds.variables, key=lambda v: v.order or 0):
        present = v.name in df
        col = (df.pop(v.name) if consume else df[v.name]) if present else pd.Series(np.nan, index=df.index)
        if v.is_numeric:
            out[v.name] = pd.to_numeric(col, errors="coerce").astype("float64")
        else:
            if pd.api.types.is_numeric_dtype(col):  # a number in a text variable (e.g. IDVARVAL): 3.0 -> "3"
                col = col.astype("float64").astype("str").str.replace(r"\.0$", "", regex=True).where(col.notna())
            if coded_in is not None and v.name in coded_in and present:
                codes, uniq = coded_in.pop(v.name) if consume else coded_in[v.name]
            else:
                codes, uniq = factorize_text(col)
            vals = clean_uniques(uniq)
            codes = compact_codes(codes, len(vals))
            coded[v.name] = (codes, vals)
            out[v.name] = text_from_codes(vals, codes, df.index)
    for extra in (FORM, ROW, SUBJ, "__source"):  # __source: the raw rows of the record (build.SRC)
        if extra in df:
            out[extra] = df[extra]
    for v in ds.variables:
        if v.is_mandatory:
            if v.name in coded:
                codes, vals = coded[v.name]
                null = pd.Series(np.append(np.array([x is None for x in vals], dtype=bool), True)[codes], index=out.index)
            else:
                null = out[v.name].isna()
            findings.add("SDTM.REQ.NULL", "Error", f"required variable {v.name} is null", ds.name, v.name, out,
                         null, None)
        if not v.is_numeric and v.length:
            codes, vals = coded[v.name]
            lens = byte_len_uniques(vals)
            if (lens > v.length).any():
                findings.add("SDTM.LENGTH", "Error", f"value longer than the spec length {v.length}", ds.name, v.name, out,
                             pd.Series(np.append(lens, 0)[codes] > v.length, index=out.index),
                             lambda name=v.name: out[name].str.slice(0, 40))
    if keys_check and ds.keys and not out.empty:
        dup = _duplicated(out, ds.keys, coded)
        findings.add("SDTM.KEY.DUPLICATE", "Warning", f"records not unique by the keys {', '.join(ds.keys)}; kept",
                     ds.name, None, out, dup, lambda: out[ds.keys[-1]].astype("str"))
    return out


def _duplicated(out: pd.DataFrame, keys: list[str], coded: dict[str, tuple[np.ndarray, list[str | None]]]) -> pd.Series:
    """``out.duplicated(subset=keys, keep=False)`` on integer codes (text keys are already coded;
    trimmed values that became equal are re-coded so that equal values share a code)."""
    parts = []
    for k in keys:
        if k in coded:
            codes, vals = coded[k]
            vcodes = pd.factorize(np.array(vals + [None], dtype=object), use_na_sentinel=True)[0]
            parts.append(vcodes[codes])  # codes -1 -> the appended None
        else:
            parts.append(pd.factorize(out[k].to_numpy(), use_na_sentinel=True)[0])
    frame = pd.DataFrame({i: p for i, p in enumerate(parts)}, index=out.index)
    return frame.duplicated(keep=False)
