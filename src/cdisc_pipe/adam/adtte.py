"""ADTTE: time-to-event parameters (BDS-TTE) driven by ``tte:`` in ``specs/settings/adam.yaml``.

Each parameter is built by :func:`derive_param_tte` from event sources (CNSR 0) and censoring
sources (CNSR > 0, one code per reason), as in admiral's ``derive_param_tte``: per subject the
earliest event wins; without an event, the latest censoring date (ties: the source listed first).
A censoring source marked ``overrides`` (no baseline disease assessment) wins over everything.
AVAL = ADT - STARTDT + 1 in days (the start day counts as day 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.adam.conditions import condition_mask, where_variables
from cdisc_pipe.adam.derive import lookup
from cdisc_pipe.adam.settings import AdamSettings, TteParameter, TteSource, load_adam_settings
from cdisc_pipe.errors import Finding, InputError, Problem

REQUIRES: dict[str, list[str]] = {"ADRS": ["USUBJID", "PARAMCD", "AVALC", "ADT", "ASEQ"]}
CORE = False
DEPENDS = ["ADRS"]

ADSL_VARS = ["STUDYID", "USUBJID", "SUBJID", "SITEID", "TRT01P", "TRT01PN", "TRT01A", "TRT01AN", "TRTSDT",
             "SAFFL", "EFFFL"]
UNIT_DAYS = {"DAYS": 1.0, "WEEKS": 7.0, "MONTHS": 30.4375, "YEARS": 365.25}


def derive_vars_missed(events: pd.DataFrame, assessments: pd.DataFrame, schedule_days: Sequence[int],
                       window_days: int) -> pd.DataFrame:
    """Add to event records (USUBJID, ADT, TRTSDT) the last adequate assessment strictly before the
    event (``LADT``, its ``LASEQ``) and ``NMISS``: planned assessment days lying more than
    ``window_days`` after that assessment (or after day 1 without one) and more than
    ``window_days`` before the event.  ``assessments`` has USUBJID, ADT, ASEQ of adequate records.
    """
    ev = events[["USUBJID", "ADT"]].assign(__row=np.arange(len(events)))
    cand = ev[["__row", "USUBJID", "ADT"]].merge(
        assessments[["USUBJID", "ADT", "ASEQ"]].rename(columns={"ADT": "__adt", "ASEQ": "__seq"}), on="USUBJID")
    cand = cand[cand["__adt"] < cand["ADT"]].sort_values(["__row", "__adt", "__seq"], kind="mergesort")
    last = cand.drop_duplicates("__row", keep="last").set_index("__row")
    out = events.copy(deep=False)
    rows = pd.Series(np.arange(len(out)), index=out.index)
    out["LADT"] = lookup(rows, last["__adt"]).astype("datetime64[ns]").to_numpy()
    out["LASEQ"] = lookup(rows, last["__seq"]).astype("float64").to_numpy()
    trt = pd.to_datetime(out["TRTSDT"])
    last_day = ((out["LADT"] - trt).dt.days + 1).fillna(1.0).to_numpy(dtype="float64")
    event_day = ((pd.to_datetime(out["ADT"]) - trt).dt.days + 1).to_numpy(dtype="float64")
    planned = np.asarray(list(schedule_days), dtype="float64")
    if planned.size:
        missed = (planned[None, :] > last_day[:, None] + window_days) & (planned[None, :] < event_day[:, None] - window_days)
        n = missed.sum(axis=1).astype("float64")
    else:
        n = np.zeros(len(out))
    out["NMISS"] = np.where(np.isnan(event_day), np.nan, n)
    return out


def _candidates(sources: Sequence[TteSource], frames: dict[str, pd.DataFrame], start: pd.DataFrame,
                adsl: pd.DataFrame, paramcd: str) -> pd.DataFrame:
    """Records of every source meeting its conditions, as (USUBJID, ADT, CNSR, EVNTDESC, CNSDTDSC,
    SRCDOM, SRCVAR, SRCSEQ, __prio, __ov)."""
    parts = []
    for prio, src in enumerate(sources):
        if src.dataset not in frames:
            raise InputError(Problem("adam.yaml", f"tte {paramcd} source {src.id} names dataset {src.dataset}, which was not built",
                                     entry=f"tte[{paramcd}].{src.id}.dataset", value=src.dataset), stage="adam")
        df = frames[src.dataset]
        # Only the variables this source refers to are joined (not the whole of ADSL per source);
        # a variable absent everywhere still raises KeyError below, as before.
        used = {"USUBJID", src.date, *start.columns, *where_variables(src.where)}
        if src.srcseq:
            used.add(src.srcseq)
        extra = [c for c in adsl.columns if (c not in df.columns or c == "USUBJID") and c in used]
        df = df[[c for c in df.columns if c in used]]
        df = df.merge(adsl[extra], on="USUBJID", how="inner") if src.dataset != "ADSL" else df
        df = df.merge(start, on="USUBJID", how="inner")
        try:
            sel = df[condition_mask(df, src.where)]
            date = pd.to_datetime(sel[src.date])
            seq = sel[src.srcseq].astype("float64") if src.srcseq else pd.Series(np.nan, index=sel.index)
        except KeyError as exc:
            raise InputError(Problem("adam.yaml", f"tte {paramcd} source {src.id} refers to variable {exc.args[0]} "
                                     f"not in {src.dataset}", entry=f"tte[{paramcd}].{src.id}", value=str(exc.args[0])),
                             stage="adam") from None
        part = pd.DataFrame({
            "USUBJID": sel["USUBJID"].to_numpy(), "ADT": date.to_numpy(), "CNSR": float(src.cnsr),
            "EVNTDESC": src.evntdesc, "CNSDTDSC": src.cnsdtdsc, "SRCDOM": src.srcdom, "SRCVAR": src.srcvar,
            "SRCSEQ": seq.to_numpy(), "__prio": prio, "__ov": src.overrides,
        })
        parts.append(part[part["ADT"].notna()])
    if not parts:
        return pd.DataFrame(columns=["USUBJID", "ADT", "CNSR", "EVNTDESC", "CNSDTDSC", "SRCDOM", "SRCVAR", "SRCSEQ", "__prio",
                                     "__ov"])
    return pd.concat(parts, ignore_index=True)


def derive_param_tte(adsl: pd.DataFrame, frames: dict[str, pd.DataFrame], parameter: TteParameter) -> tuple[pd.DataFrame, list[Finding]]:
    """One ADTTE parameter for the subjects of ``parameter.population`` who have a start date.

    ``frames`` holds the source datasets by name (``ADSL``, ``ADRS``, ...).  Returns the records
    (USUBJID, PARAMCD, PARAM, STARTDT, ADT, AVAL, AVALU, CNSR, EVNTDESC, CNSDTDSC, SRCDOM, SRCVAR,
    SRCSEQ) and findings for subjects without any event or censoring date.
    """
    findings: list[Finding] = []
    pop = adsl[condition_mask(adsl, parameter.population)]
    if parameter.start_dataset == "ADSL":
        start = pop[["USUBJID", parameter.start_date]].rename(columns={parameter.start_date: "STARTDT"})
    else:
        sdf = frames[parameter.start_dataset]
        sdf = sdf[condition_mask(sdf, parameter.start_where)]
        start = sdf[["USUBJID", parameter.start_date]].rename(columns={parameter.start_date: "STARTDT"})
        start = start[start["USUBJID"].isin(pop["USUBJID"])]
    start = start[start["STARTDT"].notna()]
    start = start.assign(STARTDT=pd.to_datetime(start["STARTDT"])).sort_values("STARTDT", kind="mergesort")
    start = start.drop_duplicates("USUBJID")
    ev = _candidates(parameter.events, frames, start, adsl, parameter.paramcd)
    cn = _candidates(parameter.censors, frames, start, adsl, parameter.paramcd)
    # An overriding censoring (e.g. no baseline assessment) beats every event and other censoring.
    ov = cn[cn["__ov"].astype(bool)]
    ov = ov.sort_values(["USUBJID", "__prio", "ADT"], ascending=[True, True, False], kind="mergesort")
    ov = ov.drop_duplicates("USUBJID", keep="first")
    ev = ev[~ev["USUBJID"].isin(ov["USUBJID"])]
    cn = cn[~cn["__ov"].astype(bool)]
    first_ev = ev.sort_values(["USUBJID", "ADT", "__prio"], kind="mergesort").drop_duplicates("USUBJID", keep="first")
    cn = cn[~cn["USUBJID"].isin(first_ev["USUBJID"]) & ~cn["USUBJID"].isin(ov["USUBJID"])]
    last_cn = cn.sort_values(["USUBJID", "ADT", "__prio"], ascending=[True, False, True], kind="mergesort")
    last_cn = last_cn.drop_duplicates("USUBJID", keep="first")
    parts = [x for x in (ov, first_ev, last_cn) if len(x)]
    chosen = pd.concat(parts, ignore_index=True) if parts else last_cn.iloc[:0]
    chosen = chosen.drop(columns=["__prio", "__ov"])
    out = start.merge(chosen, on="USUBJID", how="inner")
    for u in sorted(set(start["USUBJID"]) - set(out["USUBJID"])):
        findings.append(Finding("ADTTE.NO.DATE", "Warning",
                                f"{parameter.paramcd}: no event and no censoring date; subject has no record",
                                dataset="ADTTE", usubjid=u, variable="ADT"))
    before = out[out["ADT"] < out["STARTDT"]]
    for row in before.itertuples():
        findings.append(Finding("ADTTE.ADT.BEFORE.START", "Error",
                                f"{parameter.paramcd}: ADT {row.ADT.date()} before STARTDT {row.STARTDT.date()}",
                                dataset="ADTTE", usubjid=row.USUBJID, variable="ADT"))
    out["PARAMCD"] = parameter.paramcd
    out["PARAM"] = parameter.param
    out["PARCAT1"] = parameter.parcat1
    days = (out["ADT"] - out["STARTDT"]).dt.days.astype("float64") + 1.0
    out["AVAL"] = days / UNIT_DAYS[parameter.unit]
    out["AVALU"] = parameter.unit
    out["CNSDTDSC"] = out["CNSDTDSC"].where(out["CNSR"] > 0, None)
    return out, findings


def prepare_sources(adsl: pd.DataFrame, adrs: pd.DataFrame, settings: AdamSettings) -> dict[str, pd.DataFrame]:
    """Source frames for the TTE engine: ADSL, and ADRS with NMISS/LADT/LASEQ on PD and DEATH
    records (from the adequate OVR assessments: ANL02FL, not NE)."""
    adrs = adrs.copy(deep=False)
    adequate = adrs[(adrs["PARAMCD"] == "OVR") & (adrs["ANL02FL"] == "Y") & ~adrs["AVALC"].isin(settings.not_evaluable)]
    is_ev = adrs["PARAMCD"].isin(["PD", "DEATH"]) & adrs["ADT"].notna()
    ev = adrs.loc[is_ev, ["USUBJID", "ADT", "TRTSDT"]]
    ev = derive_vars_missed(ev, adequate, settings.assessment_days, settings.assessment_window_days)
    for c in ("LADT", "LASEQ", "NMISS"):
        adrs[c] = ev[c].reindex(adrs.index)
    adrs["LADT"] = pd.to_datetime(adrs["LADT"]).astype("datetime64[ns]")
    return {"ADSL": adsl, "ADRS": adrs}


def build(sdtm: dict[str, pd.DataFrame], adsl: pd.DataFrame, settings_dir: Path) -> tuple[pd.DataFrame, list[Finding]]:
    """Build ADTTE: every parameter in ``tte:`` of adam.yaml, from ADSL and ADRS (in ``sdtm["ADRS"]``)."""
    settings = load_adam_settings(settings_dir)
    frames = prepare_sources(adsl, sdtm["ADRS"], settings)
    findings: list[Finding] = []
    parts = []
    for parameter in settings.tte:
        rec, f = derive_param_tte(adsl, frames, parameter)
        parts.append(rec)
        findings += f
    if not parts:
        raise InputError(Problem(str(Path(settings_dir) / "adam.yaml"), "no time-to-event parameters (tte:) defined",
                                 hint="Add tte: entries or remove specs/adam/adtte.yaml"), stage="adam")
    out = pd.concat(parts, ignore_index=True)
    out = out.merge(adsl[[c for c in ADSL_VARS if c in adsl.columns]], on="USUBJID", how="left")
    order = {p.paramcd: i for i, p in enumerate(settings.tte)}
    out["__p"] = out["PARAMCD"].map(order)
    out = out.sort_values(["USUBJID", "__p"], kind="mergesort").drop(columns="__p").reset_index(drop=True)
    out["ASEQ"] = out.groupby("USUBJID").cumcount().astype("float64") + 1
    for c in ("STARTDT", "ADT", "TRTSDT"):
        out[c] = pd.to_datetime(out[c]).astype("datetime64[ns]")
    for c in ("PARCAT1", "CNSDTDSC", "EVNTDESC", "SRCDOM", "SRCVAR"):
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out, findings
