"""Traceability: for every raw form, records in and out per dataset, and every raw record that did
not become a record listed with its reason (``SdtmResult.traceability``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdisc_pipe.sdtm.algorithms import FORM, ROW, SUBJ
from cdisc_pipe.sdtm.mapping import Mappings

TRACE_COLUMNS = ["form", "dataset", "records_in", "records_out", "source_row", "usubjid", "reason"]


def trace_rows(f: pd.DataFrame, dataset: str, reason: str) -> pd.DataFrame:
    """Traceability rows for the raw records of ``f`` that are not records of ``dataset``."""
    return pd.DataFrame({"form": f[FORM].to_numpy(), "dataset": dataset, "records_in": np.nan, "records_out": np.nan,
                         "source_row": pd.to_numeric(f[ROW], errors="coerce").to_numpy(),
                         "usubjid": f[SUBJ].to_numpy(), "reason": reason})


def traceability(final: dict[str, pd.DataFrame], forms: dict[str, pd.DataFrame], mappings: Mappings,
                  trace: list[pd.DataFrame], joined_used: list[tuple]) -> pd.DataFrame:
    """Per (form, dataset): records in/out; then every raw record not mapped, with its reason.

    A form no mapping reads is listed record by record with reason 'form not mapped to SDTM'.
    """
    rows = []
    used: set[str] = set()
    for name, m in mappings.datasets.items():
        for src in m.sources:
            used.add(src.form)
            df = final.get(name)
            n_out = int((df[FORM] == src.form).sum()) if df is not None and FORM in df else 0
            rows.append({"form": src.form, "dataset": name, "records_in": len(forms[src.form]), "records_out": n_out,
                         "source_row": np.nan, "usubjid": None, "reason": None})
    for form, name, n, *how in joined_used:  # (form, dataset, records used[, how they were joined])
        used.add(form)
        rows.append({"form": form, "dataset": name, "records_in": len(forms[form]), "records_out": n,
                     "source_row": np.nan, "usubjid": None, "reason": how[0] if how else "joined by subject"})
    for name, df in final.items():
        if name.startswith("SUPP") and FORM in df and not df.empty:
            for form, n in df[FORM].value_counts().items():
                rows.append({"form": form, "dataset": name, "records_in": len(forms[form]), "records_out": int(n),
                             "source_row": np.nan, "usubjid": None, "reason": None})
    summary = pd.DataFrame(rows, columns=TRACE_COLUMNS)
    unused = []
    for form, f in forms.items():
        if form in used:
            continue
        unused.append(pd.DataFrame({"form": form, "dataset": None, "records_in": np.nan, "records_out": np.nan,
                                    "source_row": pd.to_numeric(f[ROW], errors="coerce").to_numpy(), "usubjid": None,
                                    "reason": "form not mapped to SDTM"}))
        summary = pd.concat([summary, pd.DataFrame([{"form": form, "dataset": None, "records_in": len(f), "records_out": 0,
                                                      "source_row": np.nan, "usubjid": None, "reason": "form not mapped to SDTM"}])],
                            ignore_index=True)
    # every raw record of a mapped (form, dataset) pair is either behind an output record or listed
    # with a reason; anything else would be a silent loss, so it is listed as such (tests assert none)
    listed = pd.concat([t for t in trace if not t.empty], ignore_index=True) if trace else pd.DataFrame(columns=TRACE_COLUMNS)
    lost = []
    for name, m in mappings.datasets.items():
        df = final.get(name)
        for form in dict.fromkeys(src.form for src in m.sources):
            rows_in = pd.to_numeric(forms[form][ROW], errors="coerce")
            out_rows = pd.to_numeric(df.loc[df[FORM] == form, ROW], errors="coerce") if df is not None and FORM in df else pd.Series(dtype=float)
            why = pd.to_numeric(listed.loc[(listed["form"] == form) & (listed["dataset"] == name), "source_row"], errors="coerce")
            missing = ~rows_in.isin(out_rows) & ~rows_in.isin(why)
            if missing.any():
                f = forms[form].loc[missing].assign(**{FORM: form, SUBJ: None})
                lost.append(trace_rows(f, name, "UNACCOUNTED: not mapped and no reason recorded"))
    out = pd.concat([summary] + [t for t in trace if not t.empty] + unused + lost, ignore_index=True)
    out = out.drop_duplicates(subset=["form", "dataset", "source_row", "reason"]).reset_index(drop=True)
    # summary rows first, then the records not mapped; each by form, dataset, row
    out = out.assign(__detail=out["source_row"].notna(), __ds=out["dataset"].fillna(""))
    out = out.sort_values(["__detail", "form", "__ds", "source_row"], kind="mergesort").drop(columns=["__detail", "__ds"])
    out = out.reset_index(drop=True)
    out["records_in"] = out["records_in"].astype("Int64")
    out["records_out"] = out["records_out"].astype("Int64")
    out["source_row"] = out["source_row"].astype("Int64")
    return out[TRACE_COLUMNS]
