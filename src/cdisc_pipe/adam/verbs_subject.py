"""Subject-level verbs (ADSL and any one-record-per-subject dataset): dates chosen across
several datasets, dose levels, SUPP-- qualifiers, lines of therapy, measurable disease, a flag
for an event inside a window, and data checks that report findings.

Every name of a dataset, test code, category or term comes from the plan's arguments; the
defaults are SDTM variable names only.  Each verb is a pure function of the dataset being built
and the datasets of :class:`~cdisc_pipe.adam.verbs.Context` (DataFrame in, DataFrame out).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from cdisc_pipe.adam.conditions import condition_mask, describe_where, where_variables
from cdisc_pipe.adam.derive import (
    _sort,
    days_after,
    derive_vars_ae_dt,
    derive_vars_merged,
    impute_dtc_dt,
    impute_dtc_dtm,
    in_day_window,
    suppqual_wide,
)
from cdisc_pipe.adam.settings import Where, _Model
from cdisc_pipe.adam.verbs import _NAME, Context, StepArgs, Verb, _register
from cdisc_pipe.errors import Finding

__all__ = [
    "EventDate",
    "derive_vars_extreme_event",
    "derive_vars_dose_level",
    "derive_vars_measurable_disease",
    "derive_var_event_window_flag",
    "check_records",
]



def _text(where: Where, lead: str = " where ") -> str:
    return f"{lead}{describe_where(where)}" if where else ""


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _yn(mask: np.ndarray | pd.Series, index: pd.Index, yes: Any = "Y", no: Any = "N") -> pd.Series:
    m = np.asarray(pd.Series(mask).fillna(False), dtype=bool)
    return pd.Series(np.where(m, yes, no), index=index, dtype=object).where(pd.notna(np.where(m, yes, no)), None)


def _merge_back(df: pd.DataFrame, per: pd.DataFrame, by_vars: list[str]) -> pd.DataFrame:
    """Left-join ``per`` (one row per ``by_vars``) onto ``df``, replacing columns of the same name."""
    new = [c for c in per.columns if c not in by_vars]
    out = df.drop(columns=[c for c in new if c in df.columns]).merge(per, how="left", on=by_vars, validate="many_to_one")
    out.index = df.index
    return out


# --------------------------------------------------------------------------------------------
# derive_vars_extreme_event: the first/last date over events of several datasets


class EventDate(_Model):
    """One source of candidate dates: the records of ``dataset`` where ``where`` holds, dated by
    ``dtc`` (ISO 8601 text; a list is tried in order, the first that gives a date counts)."""

    dataset: str
    where: Where = Field(default_factory=list)
    dtc: str | list[str]
    highest_imputation: Literal["n", "s", "m", "h", "D", "M"] = "n"
    date_imputation: Literal["first", "mid", "last"] = "first"
    time_imputation: Literal["first", "last"] = "first"
    ignore_seconds_flag: bool = False  # datetimes: no time flag 'S' when only seconds are missing
    # Tie-break among this source's records of the same date (input order after that).
    order: list[str] = Field(default_factory=list)
    # Variables of the chosen record to carry: {NEW: SOURCE}.
    set_values_to: dict[str, str] = Field(default_factory=dict)
    # A dataset (or variable) that may be absent: the source is then skipped.
    optional: bool = False

    def dtcs(self) -> list[str]:
        return [self.dtc] if isinstance(self.dtc, str) else list(self.dtc)

    def needs(self) -> list[str]:
        return [*self.dtcs(), *where_variables(self.where), *self.set_values_to.values(),
                *(o.lstrip("-") for o in self.order)]


class ExtremeEventArgs(StepArgs):
    """The first (``mode: first``) or last date per subject over several sources (admiral
    ``derive_vars_extreme_event`` / ``derive_var_extreme_dt``).  Records without a date (after
    imputation) are never chosen; ties go to the source listed first (``first``) or last (``last``)."""

    new_var: str = Field(pattern=_NAME)
    type: Literal["date", "datetime"] = "date"
    mode: Literal["first", "last"]
    events: list[EventDate] = Field(min_length=1)
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    # Conditions on a candidate together with the dataset's own variables: ``new_var`` names the
    # candidate's date, e.g. [{variable: NACTDT, comparator: GE, other: TRTSDT}].
    filter_join: Where = Field(default_factory=list)
    date_flag_var: str | None = Field(default=None, pattern=_NAME)  # --DTF of the chosen date
    time_flag_var: str | None = Field(default=None, pattern=_NAME)  # --TMF (datetimes)

    @model_validator(mode="after")
    def _consistent(self) -> "ExtremeEventArgs":
        for i, ev in enumerate(self.events):
            if self.type == "date" and ev.highest_imputation not in ("n", "D", "M"):
                raise ValueError(f"events[{i}]: a date imputes n, D or M only")
            clash = set(ev.set_values_to) & {self.new_var, self.date_flag_var, self.time_flag_var}
            if clash:
                raise ValueError(f"events[{i}].set_values_to writes {sorted(clash)}, written by the step itself")
        if self.time_flag_var and self.type != "datetime":
            raise ValueError("time_flag_var needs type: datetime")
        return self

    def carried(self) -> list[str]:
        return list(dict.fromkeys(v for ev in self.events for v in ev.set_values_to))


def _event_dates(frame: pd.DataFrame, ev: EventDate, kind: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Date (or datetime), date flag and time flag of each record: the first ``dtc`` giving one."""
    date = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    dflag = pd.Series(None, index=frame.index, dtype=object)
    tflag = pd.Series(None, index=frame.index, dtype=object)
    for dtc in ev.dtcs():
        if kind == "date":
            d, df_ = impute_dtc_dt(frame[dtc], ev.highest_imputation, ev.date_imputation)
            tf = pd.Series(None, index=frame.index, dtype=object)
        else:
            d, df_, tf = impute_dtc_dtm(frame[dtc], ev.highest_imputation, ev.date_imputation, ev.time_imputation)
            if ev.ignore_seconds_flag:
                tf = tf.where(tf != "S", None)
        take = date.isna() & d.notna()
        date = date.where(~take, d)
        dflag = dflag.where(~take, df_)
        tflag = tflag.where(~take, tf)
    return date.astype("datetime64[ns]"), dflag, tflag


def derive_vars_extreme_event(df: pd.DataFrame, a: ExtremeEventArgs, frames: dict[str, pd.DataFrame] | Any,
                              findings: list[Finding] | None = None, dataset: str | None = None) -> pd.DataFrame:
    """Add ``a.new_var`` (and flags, carried variables): per ``by_vars`` group, the first/last
    dated record over ``a.events``; see :class:`ExtremeEventArgs`.  An optional source that is
    absent is skipped with a Notice ``ADAM.INPUT.OPTIONAL`` in ``findings`` (never silently)."""
    carried = a.carried()
    parts = []
    noted: set[tuple[str, str]] = set()
    for i, ev in enumerate(a.events):
        frame = frames.get(ev.dataset.upper())
        if frame is None or any(v not in frame.columns for v in [*a.by_vars, *ev.needs()]):
            if ev.optional:
                what = "is absent" if frame is None else "lacks " + ", ".join(
                    v for v in [*a.by_vars, *ev.needs()] if v not in frame.columns)
                if findings is not None and (ev.dataset.upper(), what) not in noted:
                    noted.add((ev.dataset.upper(), what))
                    findings.append(Finding("ADAM.INPUT.OPTIONAL", "Notice",
                                            f"{ev.dataset.upper()} {what}: {a.new_var} derived without it",
                                            dataset=dataset, variable=a.new_var))
                continue
            if frame is None:
                raise KeyError(ev.dataset.upper())
            raise KeyError(next(v for v in [*a.by_vars, *ev.needs()] if v not in frame.columns))
        rec = frame[condition_mask(frame, ev.where)] if ev.where else frame
        rec = _sort(rec, ev.order)
        date, dflag, tflag = _event_dates(rec, ev, a.type)
        part = rec[a.by_vars].copy()
        part["__date"], part["__dtf"], part["__tmf"] = date, dflag, tflag
        for new in carried:
            part[new] = rec[ev.set_values_to[new]] if new in ev.set_values_to else None
        part["__ev"] = i
        part["__pos"] = np.arange(len(part))
        parts.append(part[part["__date"].notna()])
    cols = [*a.by_vars, "__date", "__dtf", "__tmf", *carried, "__ev", "__pos"]
    cand = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    if a.filter_join and len(cand):
        joined = cand.rename(columns={"__date": a.new_var})
        need = [v for v in where_variables(a.filter_join) if v not in joined.columns]
        joined = joined.merge(df[[*a.by_vars, *need]].drop_duplicates(a.by_vars), how="left", on=a.by_vars)
        cand = cand[condition_mask(joined, a.filter_join).to_numpy()]
    cand = cand.sort_values(["__date", "__ev", "__pos"], kind="mergesort")
    cand = cand.drop_duplicates(a.by_vars, keep=a.mode)
    per = cand[a.by_vars].copy()
    per[a.new_var] = pd.to_datetime(cand["__date"]).astype("datetime64[ns]")
    if a.date_flag_var:
        per[a.date_flag_var] = cand["__dtf"]
    if a.time_flag_var:
        per[a.time_flag_var] = cand["__tmf"]
    for new in carried:
        per[new] = cand[new]
    out = _merge_back(df, per, a.by_vars)
    out[a.new_var] = pd.to_datetime(out[a.new_var]).astype("datetime64[ns]")
    for v in [a.date_flag_var, a.time_flag_var, *carried]:
        if v and not pd.api.types.is_numeric_dtype(out[v]) and not pd.api.types.is_datetime64_any_dtype(out[v]):
            out[v] = out[v].astype(object).where(out[v].notna(), None)  # text: missing is None
    return out


_IMP = {"n": "", "D": "a missing day imputed", "M": "a missing day or month imputed",
        "h": "a missing time imputed", "m": "missing minutes imputed", "s": "missing seconds imputed"}


def _event_text(ev: EventDate, kind: str) -> str:
    dtc = " (else ".join(f"{ev.dataset}.{d}" for d in ev.dtcs()) + ")" * (len(ev.dtcs()) - 1)
    text = f"{dtc}{_text(ev.where)}"
    if ev.highest_imputation != "n":
        what = _IMP[ev.highest_imputation]
        if ev.highest_imputation in ("D", "M"):
            what += f" to the {ev.date_imputation} day"
        else:
            what += f" to {'00:00:00' if ev.time_imputation == 'first' else '23:59:59'}"
        text += f" ({what})"
    elif kind == "date":
        text += " (complete dates only)"
    if ev.optional:
        text += " (when collected)"
    return text


def _describe_extreme_event(a: ExtremeEventArgs) -> dict[str, str]:
    what = "earliest" if a.mode == "first" else "latest"
    per = ", ".join(a.by_vars)
    sources = "; ".join(_event_text(ev, a.type) for ev in a.events)
    cond = _text(a.filter_join, "; only candidates where ")
    texts = {a.new_var: f"The {what} {'date-time' if a.type == 'datetime' else 'date'} per {per} among: {sources}{cond}"}
    if a.date_flag_var:
        texts[a.date_flag_var] = f"Date imputation flag of {a.new_var} ('D' day, 'M' month imputed)"
    if a.time_flag_var:
        texts[a.time_flag_var] = f"Time imputation flag of {a.new_var} ('H' hour, 'M' minute, 'S' second imputed)"
    for new in a.carried():
        src = [f"{ev.dataset}.{ev.set_values_to[new]}" for ev in a.events if new in ev.set_values_to]
        texts[new] = f"{' or '.join(src)} of the record that gives {a.new_var}"
    return texts


def _extreme_event_needs(a: ExtremeEventArgs) -> dict[str, list[str]]:
    """Each required source's first date variable and the variables its conditions test (a condition's
    ``other`` side may be the subject's own variable, so it is not required of the source)."""
    out: dict[str, list[str]] = {}
    for ev in a.events:
        if ev.optional:
            continue
        tested = [x.variable for c in ev.where for x in ([y for g in c.any for y in g] if hasattr(c, "any") else [c])]
        names = out.setdefault(ev.dataset.upper(), [])
        names += [v for v in [*a.by_vars, ev.dtcs()[0], *tested] if v not in names]
    return out


_register(Verb(
    name="derive_vars_extreme_event", args=ExtremeEventArgs,
    run=lambda df, a, ctx: derive_vars_extreme_event(df, a, ctx.frames, ctx.findings, ctx.dataset),
    outputs=lambda a: [a.new_var, *[v for v in (a.date_flag_var, a.time_flag_var) if v], *a.carried()],
    describe=_describe_extreme_event, admiral="derive_vars_extreme_event() / derive_var_extreme_dt()",
    sources=lambda a: list(dict.fromkeys(ev.dataset.upper() for ev in a.events if not ev.optional)),
    reads=lambda a: [*a.by_vars, *[v for v in where_variables(a.filter_join)
                                   if v != a.new_var and v not in a.carried()]],
    needs=_extreme_event_needs))


# --------------------------------------------------------------------------------------------
# derive_vars_dtm_to_dt


class DtmToDtArgs(StepArgs):
    source_vars: list[str] = Field(min_length=1)  # each --DTM gives --DT

    @model_validator(mode="after")
    def _dtm(self) -> "DtmToDtArgs":
        bad = [v for v in self.source_vars if not v.endswith("DTM")]
        if bad:
            raise ValueError(f"not --DTM variables: {bad}")
        return self


def _run_dtm_to_dt(df: pd.DataFrame, a: DtmToDtArgs, ctx: Context) -> pd.DataFrame:
    out = df.copy(deep=False)
    for v in a.source_vars:
        out[v[:-1]] = pd.to_datetime(out[v]).dt.normalize().astype("datetime64[ns]")
    return out


_register(Verb(
    name="derive_vars_dtm_to_dt", args=DtmToDtArgs, run=_run_dtm_to_dt,
    outputs=lambda a: [v[:-1] for v in a.source_vars],
    describe=lambda a: {v[:-1]: f"Date part of {v}" for v in a.source_vars},
    admiral="derive_vars_dtm_to_dt()", reads=lambda a: list(a.source_vars)))


# --------------------------------------------------------------------------------------------
# derive_vars_dose_level: a level from its code, or matched from a dose within a tolerance


class LabelSource(_Model):
    """Pairs (code, label) naming the levels; ``dataset`` omitted: the dataset being built."""

    dataset: str | None = None
    code: str
    label: str
    optional: bool = False


class DoseLevelArgs(StepArgs):
    """Treatment level variables from an ordered list of levels ``{code: planned dose}``.

    With ``code_var`` the level is the record's code (planned treatment); with ``dose_var`` it is
    the level whose planned dose is within ``tolerance`` (relative: |dose - planned| / planned) of
    the dose, the nearest when several (actual treatment); a dose matching none gives no level and
    a Warning.  ``number_var`` = the level's position (1, 2, ...), ``planned_dose_var`` its dose,
    ``label_var`` its label: ``label_prefer`` where not missing, else the first label given to the
    code by ``label_sources``, else (``label_code_fallback``) the code itself.
    """

    levels: dict[str, float] = Field(min_length=1)
    code_var: str | None = None
    dose_var: str | None = None
    tolerance: float = Field(default=0.0, ge=0)
    label_var: str | None = Field(default=None, pattern=_NAME)
    number_var: str | None = Field(default=None, pattern=_NAME)
    planned_dose_var: str | None = Field(default=None, pattern=_NAME)
    code_out: str | None = Field(default=None, pattern=_NAME)  # the level's code
    label_prefer: str | None = None
    label_sources: list[LabelSource] = Field(default_factory=list)
    label_code_fallback: bool = False
    compare_var: str | None = None  # Warning where the label differs from this variable

    @model_validator(mode="after")
    def _one_way(self) -> "DoseLevelArgs":
        if (self.code_var is None) == (self.dose_var is None):
            raise ValueError("give code_var (the level is known) or dose_var (matched from a dose), not both")
        if not any((self.label_var, self.number_var, self.planned_dose_var, self.code_out)):
            raise ValueError("name at least one of label_var, number_var, planned_dose_var, code_out")
        if self.label_var and not (self.label_sources or self.label_prefer or self.label_code_fallback):
            raise ValueError("label_var needs label_prefer, label_sources or label_code_fallback")
        return self


def _labels(df: pd.DataFrame, a: DoseLevelArgs, frames: Any) -> dict[str, Any]:
    pairs = []
    for s in a.label_sources:
        frame = df if s.dataset is None else frames.get(s.dataset.upper())
        if frame is None or s.code not in frame.columns or s.label not in frame.columns:
            if s.optional:
                continue
            raise KeyError(s.dataset.upper() if frame is None else (s.code if s.code not in frame.columns else s.label))
        pairs.append(frame[[s.code, s.label]].set_axis(["code", "label"], axis=1))
    if not pairs:
        return {}
    allp = pd.concat(pairs, ignore_index=True).dropna()
    return allp.drop_duplicates("code").set_index("code")["label"].to_dict()


def derive_vars_dose_level(df: pd.DataFrame, a: DoseLevelArgs, frames: Any,
                           dataset: str = "") -> tuple[pd.DataFrame, list[Finding]]:
    """See :class:`DoseLevelArgs`; returns the dataset and the Warnings."""
    findings: list[Finding] = []
    out = df.copy(deep=False)
    codes_list = list(a.levels)
    number = {cd: float(i + 1) for i, cd in enumerate(codes_list)}
    if a.code_var:
        code = out[a.code_var].astype(object).where(out[a.code_var].isin(codes_list), None)
    else:
        dose = pd.to_numeric(out[a.dose_var], errors="coerce").to_numpy(dtype="float64")
        planned = np.array([a.levels[c] for c in codes_list], dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = np.abs(dose[:, None] - planned[None, :])
            rel = np.where(planned[None, :] == 0, np.where(diff == 0, 0.0, np.inf), diff / planned[None, :])
        rel = np.where(rel <= a.tolerance + 1e-12, rel, np.inf)
        best = np.argmin(rel, axis=1)
        matched = np.isfinite(rel[np.arange(len(dose)), best]) & ~np.isnan(dose)
        code = pd.Series(np.where(matched, np.array(codes_list, dtype=object)[best], None), index=out.index, dtype=object)
        for row in out[~np.isnan(dose) & ~matched].itertuples():  # findings only: one per problem record
            value = getattr(row, a.dose_var)
            findings.append(Finding(f"{dataset}.{a.label_var or a.number_var or a.code_out}.NOLEVEL", "Warning",
                                    f"{a.dose_var} {value} matches no dose level within {a.tolerance:.0%}",
                                    dataset=dataset, usubjid=getattr(row, "USUBJID", None),
                                    variable=a.label_var or a.number_var, value=str(value)))
    if a.code_out:
        out[a.code_out] = code
    if a.number_var:
        out[a.number_var] = code.map(number).astype("float64")
    if a.planned_dose_var:
        out[a.planned_dose_var] = code.map(a.levels).astype("float64")
    if a.label_var:
        label = code.map(_labels(df, a, frames)).astype(object)
        if a.label_code_fallback:
            label = label.where(label.notna() | code.isna(), code)
        if a.label_prefer:
            prefer = out[a.label_prefer]
            lacking = out[prefer.isna() & out[a.code_var or a.label_prefer].notna()] if a.code_var else out.iloc[0:0]
            if len(lacking):
                findings.append(Finding(f"{dataset}.{a.label_var}.LABEL", "Warning",
                                        f"{a.label_prefer} is missing for {len(lacking)} record(s) with {a.code_var}; "
                                        f"{a.label_var} takes the label of {a.code_var}", dataset=dataset,
                                        usubjid=lacking["USUBJID"].iloc[0] if "USUBJID" in lacking else None,
                                        variable=a.label_prefer))
            label = prefer.astype(object).where(prefer.notna(), label)
        out[a.label_var] = label.where(label.notna(), None)
        if a.compare_var:
            differs = out[out[a.label_var].notna() & out[a.compare_var].notna() & (out[a.label_var] != out[a.compare_var])]
            for row in differs.itertuples():
                lab, cmp_ = getattr(row, a.label_var), getattr(row, a.compare_var)
                findings.append(Finding(f"{dataset}.{a.label_var}.{a.compare_var}", "Warning",
                                        f"{a.label_var} {lab!r} differs from {a.compare_var} {cmp_!r}",
                                        dataset=dataset, usubjid=getattr(row, "USUBJID", None), variable=a.label_var,
                                        value=lab))
    return out, findings


def _run_dose_level(df: pd.DataFrame, a: DoseLevelArgs, ctx: Context) -> pd.DataFrame:
    out, findings = derive_vars_dose_level(df, a, ctx.frames, ctx.dataset)
    ctx.findings.extend(findings)
    return out


def _describe_dose_level(a: DoseLevelArgs) -> dict[str, str]:
    levels = ", ".join(f"{c} ({d:g})" for c, d in a.levels.items())
    if a.code_var:
        level, how = f"the level {a.code_var}", f"levels (planned dose): {levels}"
    else:
        level = f"the dose level matched to {a.dose_var}"
        how = (f"matched = the level whose planned dose is within {a.tolerance:.0%} of {a.dose_var} "
               f"(|{a.dose_var} - planned| / planned), the nearest when several, none when no level is that close; "
               f"levels (planned dose): {levels}")
    texts = {}
    if a.code_out:
        texts[a.code_out] = f"Code of {level} ({how})"
    if a.number_var:
        texts[a.number_var] = f"Position of {level} in the ordered levels {', '.join(a.levels)} (1, 2, ...) ({how})"
    if a.planned_dose_var:
        texts[a.planned_dose_var] = f"Planned dose of {level} ({how})"
    if a.label_var:
        src = " or ".join(f"{s.dataset + '.' if s.dataset else ''}{s.label} of the same {s.code}" for s in a.label_sources)
        text = f"Label of {level}" + (f": {src}" if src else "")
        if a.label_code_fallback:
            text += "; the level code when no label is found"
        if a.label_prefer:
            text = f"{a.label_prefer}; where missing, {text[0].lower()}{text[1:]}"
        texts[a.label_var] = f"{text} ({how})"
    return texts


_register(Verb(
    name="derive_vars_dose_level", args=DoseLevelArgs, run=_run_dose_level,
    outputs=lambda a: [v for v in (a.code_out, a.label_var, a.number_var, a.planned_dose_var) if v],
    describe=_describe_dose_level, admiral="(none: dose-level matching of the actual treatment)",
    sources=lambda a: list(dict.fromkeys(s.dataset.upper() for s in a.label_sources if s.dataset and not s.optional)),
    reads=lambda a: [v for v in (a.code_var, a.dose_var, a.label_prefer, a.compare_var) if v]
    + [x for s in a.label_sources if s.dataset is None for x in (s.code, s.label)]))


# --------------------------------------------------------------------------------------------
# derive_vars_merged_suppqual: derive_vars_merged from a parent domain with its SUPP-- qualifiers


class MergedSuppArgs(StepArgs):
    """Variables of one record of ``dataset_add`` and of its SUPP-- qualifiers (by QNAM)."""

    dataset_add: str
    supp_dataset: str
    qnams: dict[str, str] = Field(default_factory=dict)  # {NEW: QNAM}
    new_vars: dict[str, str] = Field(default_factory=dict)  # {NEW: parent variable}
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    filter_add: Where = Field(default_factory=list)  # may use the QNAMs
    order: list[str] = Field(default_factory=list)
    mode: Literal["first", "last"] | None = None

    @model_validator(mode="after")
    def _check(self) -> "MergedSuppArgs":
        if not self.qnams and not self.new_vars:
            raise ValueError("give qnams and/or new_vars")
        if self.mode and not self.order:
            raise ValueError("mode first/last needs an order")
        both = set(self.qnams) & set(self.new_vars)
        if both:
            raise ValueError(f"{sorted(both)} in both qnams and new_vars")
        return self


def _run_merged_supp(df: pd.DataFrame, a: MergedSuppArgs, ctx: Context) -> pd.DataFrame:
    parent = ctx.frame(a.dataset_add)
    wide = suppqual_wide(parent, ctx.frames.get(a.supp_dataset.upper()), list(dict.fromkeys(a.qnams.values())))
    mask = condition_mask(wide, a.filter_add) if a.filter_add else None
    return derive_vars_merged(df, wide, a.by_vars, new_vars={**a.qnams, **a.new_vars},
                              filter_add=(lambda x: mask) if mask is not None else None,
                              order=a.order or None, mode=a.mode)


def _describe_merged_supp(a: MergedSuppArgs) -> dict[str, str]:
    which = f"{a.mode} " if a.mode else ""
    rec = f"the {which}{a.dataset_add} record{_text(a.filter_add)} per {', '.join(a.by_vars)}"
    if a.order:
        rec += f" (ordered by {', '.join(a.order)})"
    texts = {new: f"{a.supp_dataset}.QVAL where QNAM = '{q}' of {rec}" for new, q in a.qnams.items()}
    texts.update({new: f"{a.dataset_add}.{src} of {rec}" for new, src in a.new_vars.items()})
    return texts


_register(Verb(
    name="derive_vars_merged_suppqual", args=MergedSuppArgs, run=_run_merged_supp,
    outputs=lambda a: [*a.qnams, *a.new_vars], describe=_describe_merged_supp,
    admiral="derive_vars_merged() with metatools::combine_supp()",
    sources=lambda a: [a.dataset_add.upper(), a.supp_dataset.upper()], reads=lambda a: list(a.by_vars)))


# --------------------------------------------------------------------------------------------
# derive_vars_therapy_lines: number of prior lines and the status of the last line


class TherapyLinesArgs(StepArgs):
    """``count_var``: number of distinct line numbers (SUPP-- ``line_qnam``) on the records of
    ``dataset_add`` where ``filter_add`` holds, a record without a line number counting as a line
    of its own, 0 without records.  ``status_var``: ``true_value`` when a record of the highest
    line number has ``status_qnam`` = ``true_value``, ``false_value`` when its records say
    ``false_value`` only, missing without line numbers or status."""

    dataset_add: str
    supp_dataset: str
    filter_add: Where = Field(default_factory=list)
    line_qnam: str
    count_var: str = Field(pattern=_NAME)
    status_qnam: str | None = None
    status_var: str | None = Field(default=None, pattern=_NAME)
    true_value: str = "Y"
    false_value: str = "N"
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])

    @model_validator(mode="after")
    def _pair(self) -> "TherapyLinesArgs":
        if (self.status_qnam is None) != (self.status_var is None):
            raise ValueError("give status_qnam and status_var together")
        return self


def _run_lines(df: pd.DataFrame, a: TherapyLinesArgs, ctx: Context) -> pd.DataFrame:
    parent = ctx.frame(a.dataset_add)
    rec = parent[condition_mask(parent, a.filter_add)] if a.filter_add else parent
    qn = [a.line_qnam] + ([a.status_qnam] if a.status_qnam else [])
    rec = suppqual_wide(rec, ctx.frames.get(a.supp_dataset.upper()), qn).reset_index(drop=True)
    line = rec[a.line_qnam]
    keyed = line.astype(object).where(line.notna(), "\x00rec" + rec.index.astype(str))
    lines = pd.concat([rec[a.by_vars], keyed.rename("__l")], axis=1).drop_duplicates()
    counts = lines.groupby(a.by_vars).size().rename(a.count_var).reset_index()
    out = _merge_back(df, counts, a.by_vars)
    out[a.count_var] = out[a.count_var].fillna(0).astype("float64")
    if a.status_var:
        num = pd.to_numeric(line, errors="coerce")
        last = num.groupby([rec[b] for b in a.by_vars]).transform("max")
        st = rec[a.status_qnam]
        on_last = rec[num.notna() & (num == last) & st.isin([a.true_value, a.false_value])]
        flag = (on_last[a.status_qnam] == a.true_value).groupby([on_last[b] for b in a.by_vars]).any()
        flag = flag.map({True: a.true_value, False: a.false_value}).rename(a.status_var).reset_index()
        out = _merge_back(out, flag, a.by_vars)
        out[a.status_var] = out[a.status_var].astype(object).where(out[a.status_var].notna(), None)
    return out


def _describe_lines(a: TherapyLinesArgs) -> dict[str, str]:
    recs = f"{a.dataset_add} records{_text(a.filter_add)}"
    texts = {a.count_var: f"Number of distinct {a.supp_dataset} {a.line_qnam} values on {recs} (a record without "
                          f"{a.line_qnam} counts as one line), per {', '.join(a.by_vars)}; 0 without such records"}
    if a.status_var:
        texts[a.status_var] = (f"'{a.true_value}' when a record of the highest {a.line_qnam} among {recs} has "
                               f"{a.supp_dataset} {a.status_qnam} = '{a.true_value}'; '{a.false_value}' when the records "
                               f"of that line have {a.status_qnam} = '{a.false_value}'; missing without line numbers "
                               f"or {a.status_qnam}")
    return texts


_register(Verb(
    name="derive_vars_therapy_lines", args=TherapyLinesArgs, run=_run_lines,
    outputs=lambda a: [a.count_var] + ([a.status_var] if a.status_var else []), describe=_describe_lines,
    admiral="(none: lines of prior therapy from SUPP-- line numbers)",
    sources=lambda a: [a.dataset_add.upper(), a.supp_dataset.upper()], reads=lambda a: list(a.by_vars)))


# --------------------------------------------------------------------------------------------
# derive_vars_measurable_disease: the first measurable-disease rule met at baseline


class MeasurableRuleArgs(_Model):
    """A rule: the subject's value is the largest baseline result of ``testcd`` (with ``spec``),
    converted to ``unit`` (``unit_factors``: other units and their factors); the rule is met when it
    is >= ``min_value`` and, with ``ratio_testcd``, the baseline ratio lies outside ``ratio_normal``."""

    type: str
    testcd: list[str] = Field(min_length=1)
    spec: str | None = None
    min_value: float
    unit: str
    unit_factors: dict[str, float] = Field(default_factory=dict)
    ratio_testcd: str | None = None
    ratio_normal: tuple[float, float] | None = None


class MeasurableArgs(StepArgs):
    """``new_var``: the ``type`` of the first rule met at baseline (missing when none);
    ``assessed_var``: 'Y' when any test a rule names (or its ratio test) has a baseline result
    (numeric or text, e.g. "<0.10"), else 'N'.  Baseline records: ``baseline_flag`` = 'Y' when the
    dataset has that variable, else the last complete-dated result per test (and specimen) on or
    before ``reference_date``.  Results in a unit no rule converts are not used (a Warning each)."""

    dataset_add: str
    rules: list[MeasurableRuleArgs] = Field(min_length=1)
    new_var: str = Field(pattern=_NAME)
    assessed_var: str | None = Field(default=None, pattern=_NAME)
    baseline_flag: str = "LBLOBXFL"
    reference_date: str = "TRTSDT"
    testcd_var: str = "LBTESTCD"
    spec_var: str = "LBSPEC"
    result_var: str = "LBSTRESN"
    result_text_var: str = "LBSTRESC"
    unit_var: str = "LBSTRESU"
    dtc_var: str = "LBDTC"
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])


def _baseline_records(df: pd.DataFrame, lb: pd.DataFrame, a: MeasurableArgs) -> pd.DataFrame:
    if a.baseline_flag in lb.columns:
        return lb[lb[a.baseline_flag] == "Y"]
    base = lb.assign(__adt=impute_dtc_dt(lb[a.dtc_var], "n", "first")[0])
    base = base.merge(df[[*a.by_vars, a.reference_date]], on=a.by_vars)
    base = base[base["__adt"].notna() & (base["__adt"] <= base[a.reference_date])]
    keys = [*a.by_vars, a.testcd_var] + ([a.spec_var] if a.spec_var in base.columns else [])
    return base.sort_values("__adt", kind="mergesort").drop_duplicates(keys, keep="last")


def _rule_records(base: pd.DataFrame, rule: MeasurableRuleArgs, a: MeasurableArgs) -> pd.DataFrame:
    sel = base[base[a.testcd_var].isin(rule.testcd)]
    if rule.spec is not None and a.spec_var in sel.columns:
        sel = sel[sel[a.spec_var] == rule.spec]
    return sel


def derive_vars_measurable_disease(df: pd.DataFrame, lb: pd.DataFrame, a: MeasurableArgs,
                                   dataset: str = "") -> tuple[pd.DataFrame, list[Finding]]:
    """See :class:`MeasurableArgs`; returns the dataset and the unit Warnings."""
    findings: list[Finding] = []
    out = df.copy(deep=False)
    base = _baseline_records(df, lb, a)
    base = base.assign(__v=pd.to_numeric(base[a.result_var], errors="coerce"))
    key = out[a.by_vars[0]] if len(a.by_vars) == 1 else pd.MultiIndex.from_frame(out[a.by_vars])

    def per_subject(s: pd.Series) -> pd.Series:
        return pd.Series(key.map(s) if len(a.by_vars) == 1 else s.reindex(key).to_numpy(), index=out.index)

    met = pd.Series(None, index=out.index, dtype=object)
    for rule in a.rules:
        sel = _rule_records(base, rule, a)
        known = {rule.unit: 1.0, **rule.unit_factors}
        bad = sel[sel["__v"].notna() & ~sel[a.unit_var].isin(list(known))].drop_duplicates([a.testcd_var, a.unit_var])
        for row in bad.to_dict("records"):  # findings only: one per test and unit
            findings.append(Finding(f"{dataset}.{a.new_var}.UNIT", "Warning",
                                    f"baseline {row[a.testcd_var]} in unit {row[a.unit_var]!r} not convertible for the "
                                    f"{rule.type} rule (expects {sorted(known)}); not used for {a.new_var}",
                                    dataset=a.dataset_add.upper(), usubjid=row.get("USUBJID"), variable=a.unit_var,
                                    value=str(row[a.unit_var])))
        factor = sel[a.unit_var].map(known)
        sel = sel.assign(__v=sel["__v"] * factor)[factor.notna()]
        value = sel.groupby(a.by_vars)["__v"].max()
        ok = per_subject(value) >= rule.min_value
        if rule.ratio_testcd and rule.ratio_normal:
            ratio = per_subject(base[base[a.testcd_var] == rule.ratio_testcd].groupby(a.by_vars)["__v"].max())
            ok &= (ratio < rule.ratio_normal[0]) | (ratio > rule.ratio_normal[1])
        ok = ok.fillna(False).astype(bool)
        met = met.where(~(met.isna() & ok), rule.type)
    out[a.new_var] = met.where(met.notna(), None)
    if a.assessed_var:
        has = base["__v"].notna()
        if a.result_text_var in base.columns:
            has |= base[a.result_text_var].notna() & base[a.result_text_var].astype(str).str.strip().ne("")
        done = base[has]
        parts = [_rule_records(done, r, a) for r in a.rules]
        parts += [done[done[a.testcd_var] == r.ratio_testcd] for r in a.rules if r.ratio_testcd]
        assessed = pd.concat(parts, ignore_index=True)[a.by_vars].drop_duplicates().assign(__y=True)
        flag = out[a.by_vars].merge(assessed, how="left", on=a.by_vars)["__y"].notna().to_numpy()
        out[a.assessed_var] = _yn(flag, out.index)
    return out, findings


def _run_measurable(df: pd.DataFrame, a: MeasurableArgs, ctx: Context) -> pd.DataFrame:
    out, findings = derive_vars_measurable_disease(df, ctx.frame(a.dataset_add), a, ctx.dataset)
    ctx.findings.extend(findings)
    return out


def _rule_text(r: MeasurableRuleArgs, a: MeasurableArgs) -> str:
    spec = f" ({a.spec_var} = '{r.spec}')" if r.spec else ""
    text = f"'{r.type}' when the largest of {' / '.join(r.testcd)}{spec} >= {r.min_value:g} {r.unit}"
    if r.unit_factors:
        text += " (" + ", ".join(f"{u} x {f:g}" for u, f in r.unit_factors.items()) + ")"
    if r.ratio_testcd and r.ratio_normal:
        text += f" and {r.ratio_testcd} outside {r.ratio_normal[0]:g}-{r.ratio_normal[1]:g}"
    return text


def _describe_measurable(a: MeasurableArgs) -> dict[str, str]:
    base = (f"baseline {a.dataset_add} results ({a.baseline_flag} = 'Y'; without {a.baseline_flag}, the last "
            f"complete-dated result per test on or before {a.reference_date})")
    texts = {a.new_var: f"The first rule met by the {base}, in order: " + "; ".join(_rule_text(r, a) for r in a.rules)
             + "; missing when none (results in other units are not used)"}
    if a.assessed_var:
        tests = list(dict.fromkeys([t for r in a.rules for t in r.testcd] + [r.ratio_testcd for r in a.rules
                                                                              if r.ratio_testcd]))
        texts[a.assessed_var] = (f"'Y' when the subject has a {base[:-1]}) with a result ({a.result_var} or "
                                 f"{a.result_text_var}) for any of {', '.join(tests)}; else 'N'")
    return texts


_register(Verb(
    name="derive_vars_measurable_disease", args=MeasurableArgs, run=_run_measurable,
    outputs=lambda a: [a.new_var] + ([a.assessed_var] if a.assessed_var else []), describe=_describe_measurable,
    admiral="(none: measurable disease at baseline, rules as data)",
    sources=lambda a: [a.dataset_add.upper()], reads=lambda a: [*a.by_vars, a.reference_date]))


# --------------------------------------------------------------------------------------------
# derive_var_event_window_flag: a subject flag for an event whose onset lies in a window


class OnsetRule(_Model):
    """The onset date of an event record: ``start_dtc`` with the adverse-event date rule (a partial
    date imputed to the first day of its period, moved to the latest of ``min_dates`` inside that
    period, never after the end date ``end_dtc`` - itself imputed to the last day - nor after
    ``death_date``).  ``min_dates`` and ``death_date`` are variables of the dataset being built."""

    start_dtc: str = "AESTDTC"
    end_dtc: str = "AEENDTC"
    min_dates: list[str] = Field(default_factory=list)
    death_date: str | None = None


class WindowFlagArgs(StepArgs):
    """``new_var`` = ``true_value`` when the subject has a record of ``dataset_add`` (with its SUPP--
    qualifiers ``qnams``) where ``filter_add`` holds whose onset (:class:`OnsetRule`) lies from
    ``window[0]`` to ``window[1]`` days after ``reference_date``; ``false_value`` otherwise;
    missing when ``reference_date`` is missing."""

    dataset_add: str
    supp_dataset: str | None = None
    qnams: list[str] = Field(default_factory=list)
    filter_add: Where = Field(default_factory=list)
    onset: OnsetRule = Field(default_factory=OnsetRule)
    reference_date: str
    window: tuple[int, int]
    new_var: str = Field(pattern=_NAME)
    true_value: str = "Y"
    false_value: str | None = "N"
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])

    @model_validator(mode="after")
    def _window(self) -> "WindowFlagArgs":
        if self.window[0] > self.window[1]:
            raise ValueError("window: [first day, last day], first <= last")
        if self.qnams and not self.supp_dataset:
            raise ValueError("qnams need supp_dataset")
        return self


def derive_var_event_window_flag(df: pd.DataFrame, events: pd.DataFrame, supp: pd.DataFrame | None,
                                 a: WindowFlagArgs) -> pd.DataFrame:
    """See :class:`WindowFlagArgs` (onset by :func:`cdisc_pipe.adam.derive.derive_vars_ae_dt`)."""
    ev = suppqual_wide(events, supp, a.qnams) if a.qnams else events
    subj = list(dict.fromkeys([*a.by_vars, a.reference_date, *a.onset.min_dates,
                               *([a.onset.death_date] if a.onset.death_date else [])]))
    ev = ev.drop(columns=[c for c in subj if c in ev.columns and c not in a.by_vars])
    ev = ev.merge(df[subj].drop_duplicates(a.by_vars), on=a.by_vars, how="inner")
    ev = derive_vars_ae_dt(ev, a.onset.start_dtc, a.onset.end_dtc, a.onset.min_dates,
                           a.onset.death_date or "")
    if a.filter_add:
        ev = ev[condition_mask(ev, a.filter_add).to_numpy()]
    hit = ev[in_day_window(days_after(ev, "ASTDT", a.reference_date), a.window).to_numpy()]
    hit = hit[a.by_vars].drop_duplicates().assign(__hit=True)
    out = df.copy(deep=False)
    flag = out[a.by_vars].merge(hit, how="left", on=a.by_vars)["__hit"].notna().to_numpy()
    col = _yn(flag, out.index, a.true_value, a.false_value)
    out[a.new_var] = col.where(out[a.reference_date].notna(), None)
    return out


def _describe_window(a: WindowFlagArgs) -> dict[str, str]:
    o = a.onset
    onset = f"{o.start_dtc} (a partial date imputed to the first day"
    if o.min_dates:
        onset += f", or to the latest of {', '.join(o.min_dates)} when inside the same period"
    onset += f"; never after {o.end_dtc} imputed to the last day" + (f" nor after {o.death_date}" if o.death_date else "")
    onset += ")"
    recs = f"record of {a.dataset_add}" + (f" (with {a.supp_dataset} qualifiers {', '.join(a.qnams)})" if a.qnams else "")
    text = (f"'{a.true_value}' when the subject has a {recs}{_text(a.filter_add)} whose onset {onset} lies "
            f"{a.window[0]} to {a.window[1]} days after {a.reference_date}")
    if a.false_value is not None:
        text += f"; else '{a.false_value}'"
    return {a.new_var: text + f"; missing when {a.reference_date} is missing"}


def _run_window(df: pd.DataFrame, a: WindowFlagArgs, ctx: Context) -> pd.DataFrame:
    supp = ctx.frames.get(a.supp_dataset.upper()) if a.supp_dataset else None
    return derive_var_event_window_flag(df, ctx.frame(a.dataset_add), supp, a)


_register(Verb(
    name="derive_var_event_window_flag", args=WindowFlagArgs, run=_run_window, outputs=lambda a: [a.new_var],
    describe=_describe_window, admiral="derive_var_merged_exist_flag() over derive_vars_dt() onsets",
    sources=lambda a: [a.dataset_add.upper()] + ([a.supp_dataset.upper()] if a.supp_dataset else []),
    reads=lambda a: list(dict.fromkeys([*a.by_vars, a.reference_date, *a.onset.min_dates,
                                        *([a.onset.death_date] if a.onset.death_date else [])]))))


# --------------------------------------------------------------------------------------------
# check_records: findings for records of the dataset being built (nothing derived)


class CheckArgs(StepArgs):
    """A finding per record where ``where`` holds (or, with ``duplicated_by``, per record whose
    key repeats an earlier record's).  Writes nothing."""

    rule: str = Field(min_length=1)
    severity: Literal["Error", "Warning", "Notice"] = "Warning"
    message: str = Field(min_length=1)
    where: Where = Field(default_factory=list)
    duplicated_by: list[str] = Field(default_factory=list)
    finding_dataset: str | None = None  # the dataset the finding names (default: the one built)
    variable: str | None = None

    @model_validator(mode="after")
    def _something(self) -> "CheckArgs":
        if not self.where and not self.duplicated_by:
            raise ValueError("give where and/or duplicated_by")
        return self


def check_records(df: pd.DataFrame, a: CheckArgs, dataset: str = "") -> list[Finding]:
    """The findings of :class:`CheckArgs` over ``df``."""
    hit = condition_mask(df, a.where) if a.where else pd.Series(True, index=df.index)
    if a.duplicated_by:
        hit &= df.duplicated(a.duplicated_by, keep="first")
    rows = df[hit]
    users = rows["USUBJID"].tolist() if "USUBJID" in rows.columns else [None] * len(rows)
    values = rows[a.variable].tolist() if a.variable and a.variable in rows.columns else [None] * len(rows)
    return [Finding(a.rule, a.severity, a.message, dataset=a.finding_dataset or dataset, usubjid=u,
                    variable=a.variable, value=None if pd.isna(v) else str(v)) for u, v in zip(users, values)]


def _run_check(df: pd.DataFrame, a: CheckArgs, ctx: Context) -> pd.DataFrame:
    ctx.findings.extend(check_records(df, a, ctx.dataset))
    return df


_register(Verb(
    name="check_records", args=CheckArgs, run=_run_check, outputs=lambda a: [], describe=lambda a: {},
    admiral="(none; for duplicates: signal_duplicate_records())",
    reads=lambda a: [*where_variables(a.where), *a.duplicated_by]))
