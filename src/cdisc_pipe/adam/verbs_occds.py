"""Verbs for occurrence data (OCCDS: events such as adverse events) and for the BDS parameters
built from exposure and from repeated assessments, with the study's values given by the plan.

- ``derive_vars_suppqual``: SUPP-- qualifiers (QNAM) as variables of their parent records.
- ``derive_vars_event_dt``: analysis start/end dates of an event with partial-date imputation
  bounded by reference dates and death (the one rule ADSL and ADAE share).
- ``derive_var_record_window_flag``: an adjudicated event (e.g. dose-limiting toxicity) flagged
  when its onset lies in a window after a reference date; those outside are reported.
- ``derive_vars_toxgr_collected``: analysis toxicity grade (text and number) from a collected grade.
- ``derive_param_exposure``: one parameter per subject summarising records (sum, first, ...).
- ``derive_param_ratio``: a parameter from two others (numerator / denominator x factor).
- ``derive_vars_base_ref_date``: baseline flag, baseline values and change, the baseline being the
  last assessment on or before a reference date (e.g. first dose of a conditioning regimen).

Nothing here names a study, its datasets' terms or its test codes: the plan supplies them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from cdisc_pipe.adam.conditions import condition_mask, describe_where, where_variables
from cdisc_pipe.adam.derive import (
    _sort,
    days_after,
    derive_vars_ae_dt,
    in_day_window,
    suppqual_wide,
)
from cdisc_pipe.adam.derive_bds import (
    before_reference,
    derive_var_ablfl,
    derive_var_base,
    derive_var_chg,
    y_flag,
)
from cdisc_pipe.adam.settings import Where
from cdisc_pipe.adam.verbs import _NAME, Context, StepArgs, Verb, _register
from cdisc_pipe.errors import Finding

Scalar = str | float | int | bool | None


def _q(v: object) -> str:
    if v is None:
        return "missing"
    if isinstance(v, str):
        return "'" + v + "'"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _where_text(where: Where, lead: str = " where ") -> str:
    return f"{lead}{describe_where(where)}" if where else ""


def _rename(new_vars: list[str] | dict[str, str]) -> dict[str, str]:
    """{new name: source name}."""
    return dict(new_vars) if isinstance(new_vars, dict) else {v: v for v in new_vars}


def _seq(df: pd.DataFrame, var: str | None, mask: pd.Series) -> list[float | None]:
    if not var or var not in df.columns:
        return [None] * int(mask.sum())
    return [None if pd.isna(x) else float(x) for x in pd.to_numeric(df.loc[mask, var], errors="coerce")]


# --------------------------------------------------------------------------------------------
# derive_vars_suppqual


class SuppqualArgs(StepArgs):
    """SUPP-- qualifiers as variables: QVAL of each QNAM, linked by USUBJID and IDVAR/IDVARVAL.

    ``new_vars`` lists QNAMs (``[QNAM1]``) or maps new names to QNAMs (``{_Q2: QNAM2}``, a working variable).
    A QNAM absent from the SUPP-- dataset, or the whole dataset absent when ``required`` is false,
    gives a missing variable.
    """

    dataset_add: str
    new_vars: list[str] | dict[str, str] = Field(min_length=1)
    required: bool = False


def _run_suppqual(df: pd.DataFrame, a: SuppqualArgs, ctx: Context) -> pd.DataFrame:
    supp = ctx.frames.get(a.dataset_add.upper())
    names = _rename(a.new_vars)
    wide = suppqual_wide(df, supp, list(dict.fromkeys(names.values())))
    out = df.copy(deep=False)
    for new, qnam in names.items():
        out[new] = wide[qnam]
    return out


_register(Verb(
    name="derive_vars_suppqual", args=SuppqualArgs, run=_run_suppqual, outputs=lambda a: list(_rename(a.new_vars)),
    describe=lambda a: {new: f"{a.dataset_add}.QVAL where QNAM = '{q}' (linked to the parent record by USUBJID "
                             "and IDVAR/IDVARVAL)" for new, q in _rename(a.new_vars).items()},
    admiral="metatools::combine_supp() (SUPP-- qualifiers merged onto the parent domain)",
    sources=lambda a: [a.dataset_add.upper()] if a.required else [],
    reads=lambda a: ["USUBJID"]))


# --------------------------------------------------------------------------------------------
# derive_vars_event_dt


class EventDtArgs(StepArgs):
    """ASTDT/ASTDTF and AENDT/AENDTF of an event (e.g. an adverse event) from its --STDTC/--ENDTC.

    End: a partial date imputed to the last day of the month (31 December when the month is missing
    too), never after ``death_date``.  Start: imputed to the first day of the month (1 January),
    but when one of ``min_dates`` lies in the period the partial date allows and after that day,
    the latest such date (admiral ``min_dates``: the worst case, emergent rather than not); never
    after AENDT nor after ``death_date``.  A missing year gives a missing date.
    """

    start_dtc: str
    end_dtc: str
    min_dates: list[str] = Field(default_factory=list)
    death_date: str | None = None
    report_invalid: bool = True  # a start --DTC that is not ISO 8601 is reported (Warning)


def _run_event_dt(df: pd.DataFrame, a: EventDtArgs, ctx: Context) -> pd.DataFrame:
    out = derive_vars_ae_dt(df, a.start_dtc, a.end_dtc, min_dates=tuple(a.min_dates),
                            death_date=a.death_date or "")
    if a.report_invalid:
        bad = out[a.start_dtc].notna() & out["ASTDT"].isna()
        if bad.any():
            seqvar = next((c for c in out.columns if str(c).endswith("SEQ") and len(str(c)) == 5), None)
            ctx.findings.extend(
                Finding(rule=f"ADAM.{ctx.dataset}.ASTDT", severity="Warning", dataset=ctx.dataset, usubjid=u, seq=s,
                        variable="ASTDT", value=str(dtc),
                        message=f"{a.start_dtc} cannot be converted to a date (not ISO 8601); ASTDT missing")
                for u, s, dtc in zip(out.loc[bad, "USUBJID"], _seq(out, seqvar, bad), out.loc[bad, a.start_dtc]))
    return out


def _describe_event_dt(a: EventDtArgs) -> dict[str, str]:
    death = f", but not after {a.death_date} when it lies in that period" if a.death_date else ""
    bounds = ""
    if a.min_dates:
        bounds = (f"; if {' and/or '.join(a.min_dates)} lie within the period the partial date allows and after "
                  "that first day, the latest of them is used instead (worst case)")
    start = (f"Date part of {a.start_dtc}; a missing day is imputed to the first day of the month and a missing month "
             f"and day to 1 January{bounds}; the imputed date is moved back to AENDT"
             + (f" or {a.death_date}" if a.death_date else "")
             + " when it would be after it and it lies within the period. A missing year gives a missing date")
    end = (f"Date part of {a.end_dtc}; a missing day is imputed to the last day of the month and a missing month and "
           f"day to 31 December{death}. A missing year gives a missing date")
    flag = "Imputation flag of {0}: 'D' day imputed, 'M' month (and day) imputed"
    return {"ASTDT": start, "ASTDTF": flag.format("ASTDT"), "AENDT": end, "AENDTF": flag.format("AENDT")}


_register(Verb(
    name="derive_vars_event_dt", args=EventDtArgs, run=_run_event_dt,
    outputs=lambda a: ["AENDT", "AENDTF", "ASTDT", "ASTDTF"], describe=_describe_event_dt,
    admiral="derive_vars_dt() twice (highest_imputation 'M', min_dates / max_dates)",
    reads=lambda a: [a.start_dtc, a.end_dtc, *a.min_dates, *([a.death_date] if a.death_date else [])]))


# --------------------------------------------------------------------------------------------
# derive_var_record_window_flag (e.g. dose-limiting toxicity)


class RecordWindowArgs(StepArgs):
    """``'Y'`` where ``source_flag`` = ``'Y'`` (an adjudicated event, e.g. a dose-limiting
    toxicity) and ``start_date`` - ``reference_date`` is from ``window[0]`` to ``window[1]`` days
    (the record-level counterpart of the subject-level ``derive_var_event_window_flag``).

    Adjudicated events outside the window keep no flag and are reported (Warning).  With
    ``subject_dataset``/``subject_flag`` (e.g. ADSL.DLTFL) subjects whose subject-level flag
    disagrees with the records flagged here are reported too.
    """

    new_var: str = Field(pattern=_NAME)
    source_flag: str
    window: tuple[int, int]
    start_date: str = "ASTDT"
    reference_date: str = "TRTSDT"
    term_var: str | None = None  # shown in the findings (e.g. AEDECOD)
    seq_var: str | None = None
    event_name: str = "adjudicated event"
    subject_dataset: str | None = None
    subject_flag: str | None = None

    @model_validator(mode="after")
    def _both(self) -> "RecordWindowArgs":
        if self.window[0] > self.window[1]:
            raise ValueError("window: [first day, last day], first <= last")
        if (self.subject_dataset is None) != (self.subject_flag is None):
            raise ValueError("give subject_dataset and subject_flag together")
        return self


def _run_record_window(df: pd.DataFrame, a: RecordWindowArgs, ctx: Context) -> pd.DataFrame:
    # the rule of ADSL's subject-level flag: adjudicated, onset window[0]..window[1] days after the reference
    adjudicated = df[a.source_flag].eq("Y").fillna(False).astype(bool)
    days = days_after(df, a.start_date, a.reference_date)
    flag = adjudicated & in_day_window(days, a.window)
    out = df.copy(deep=False)
    out[a.new_var] = y_flag(flag)
    outside = adjudicated & ~flag
    if outside.any():
        bad = df.loc[outside]
        why = np.where(bad[a.reference_date].isna(), f"{a.reference_date} missing",
                       np.where(bad[a.start_date].isna(), "onset date unknown",
                                "onset " + days[outside].astype("Int64").astype(str)
                                + f" days after {a.reference_date}"))
        terms = bad[a.term_var] if a.term_var else pd.Series(None, index=bad.index)
        ctx.findings.extend(
            Finding(rule=f"ADAM.{ctx.dataset}.OUTWINDOW", severity="Warning", dataset=ctx.dataset, usubjid=u, seq=s,
                    variable=a.new_var, value=None if t is None or pd.isna(t) else str(t),
                    message=f"{a.event_name} ({a.source_flag} = Y) outside the window of {a.window[0]} to "
                            f"{a.window[1]} days after {a.reference_date} ({w}); {a.new_var} not set")
            for u, s, t, w in zip(bad["USUBJID"], _seq(df, a.seq_var, outside), terms, why))
    if a.subject_dataset and a.subject_flag:
        subj = ctx.frame(a.subject_dataset)
        if a.subject_flag in subj.columns:
            here = set(out.loc[out[a.new_var].eq("Y").fillna(False), "USUBJID"])
            there = set(subj.loc[subj[a.subject_flag].eq("Y").fillna(False), "USUBJID"])
            ctx.findings.extend(
                Finding(rule=f"ADAM.{ctx.dataset}.SUBJFLAG", severity="Warning", dataset=ctx.dataset, usubjid=u,
                        variable=a.new_var,
                        message=(f"{ctx.dataset} has a {a.new_var} record but {a.subject_dataset}.{a.subject_flag} "
                                 "is not Y" if u in here else
                                 f"{a.subject_dataset}.{a.subject_flag} is Y but no {ctx.dataset} record has "
                                 f"{a.new_var} = Y") + f" ({a.subject_dataset} built from other data?)")
                for u in sorted(here ^ there))
    return out


_register(Verb(
    name="derive_var_record_window_flag", args=RecordWindowArgs, run=_run_record_window, outputs=lambda a: [a.new_var],
    describe=lambda a: {a.new_var: f"'Y' when {a.source_flag} = 'Y' and {a.window[0]} <= {a.start_date} - "
                                   f"{a.reference_date} <= {a.window[1]} days; an event with {a.source_flag} = 'Y' "
                                   "outside that window keeps no flag"},
    admiral="(no admiral counterpart: dplyr::mutate() with a date window)",
    sources=lambda a: [a.subject_dataset.upper()] if a.subject_dataset else [],
    reads=lambda a: ["USUBJID", a.source_flag, a.start_date, a.reference_date,
                     *[v for v in (a.term_var, a.seq_var) if v]]))


# --------------------------------------------------------------------------------------------
# derive_vars_toxgr_collected


class ToxgrCollectedArgs(StepArgs):
    """Analysis toxicity grade from a collected grade (e.g. AETOXGR): ``new_var`` its text,
    ``new_var_n`` its number; a grade outside ``grades`` gets no number and is reported (Error)."""

    source_var: str
    new_var: str = Field(default="ATOXGR", pattern=_NAME)
    new_var_n: str = Field(default="ATOXGRN", pattern=_NAME)
    grades: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1)


def _run_toxgr(df: pd.DataFrame, a: ToxgrCollectedArgs, ctx: Context) -> pd.DataFrame:
    out = df.copy(deep=False)
    src = df[a.source_var]
    out[a.new_var] = src.astype(object).where(src.notna(), None)
    n = pd.to_numeric(df[a.source_var], errors="coerce").astype("float64")
    bad = df[a.source_var].notna() & ~n.isin([float(g) for g in a.grades])
    if bad.any():
        ctx.findings.append(Finding(
            rule=f"ADAM.{ctx.dataset}.{a.new_var}", severity="Error", dataset=ctx.dataset, variable=a.new_var,
            value=", ".join(sorted(map(str, df.loc[bad, a.source_var].unique()))),
            message=f"{int(bad.sum())} record(s) with {a.source_var} outside {min(a.grades)}-{max(a.grades)}"))
        n = n.where(~bad)
    out[a.new_var_n] = n
    return out


_register(Verb(
    name="derive_vars_toxgr_collected", args=ToxgrCollectedArgs, run=_run_toxgr,
    outputs=lambda a: [a.new_var, a.new_var_n],
    describe=lambda a: {a.new_var: f"Equal to {a.source_var}",
                        a.new_var_n: f"Numeric value of {a.source_var} (missing when it is not one of "
                                     f"{', '.join(map(str, a.grades))})"},
    admiral="(no admiral counterpart: a collected grade copied; derive_var_atoxgr() grades lab values)",
    reads=lambda a: [a.source_var]))


# --------------------------------------------------------------------------------------------
# derive_param_exposure


class ExposureParamArgs(StepArgs):
    """One parameter record per ``by_vars`` group summarising the records meeting ``filter``.

    Records come from ``dataset_add`` (any dataset, e.g. ADSL) or, without it, from the dataset
    being built (e.g. its exposure records; parameter records already added are skipped as they
    fail the filter).  AVAL = ``function`` of ``source_var`` (text converted to numbers) over the
    records where it is present: ``sum`` / ``mean`` / ``min`` / ``max``, the value of the
    ``first`` / ``last`` record by ``order``, or ``value``: the group's one record (e.g. a
    subject-level variable; several records are reported and the first is taken).  ASTDT /
    AENDT = earliest ``start_date`` / latest ``end_date`` of those records (when given).
    ``set_values`` sets constants (PARCAT1, ...).
    """

    paramcd: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    param: str = Field(max_length=200)
    source_var: str
    function: Literal["sum", "mean", "min", "max", "first", "last", "value"]
    dataset_add: str | None = None
    filter: Where = Field(default_factory=list)
    by_vars: list[str] = Field(default_factory=lambda: ["STUDYID", "USUBJID"])
    order: list[str] = Field(default_factory=list)
    start_date: str | None = None
    end_date: str | None = None
    set_values: dict[str, Scalar] = Field(default_factory=dict)
    # a record in the summary whose unit_var is not unit is reported (Error); the value still counts
    unit_var: str | None = None
    unit: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "ExposureParamArgs":
        if self.function in ("first", "last") and not self.order:
            raise ValueError(f"function {self.function} needs an order")
        if (self.unit_var is None) != (self.unit is None):
            raise ValueError("give unit_var and unit together")
        clash = {"PARAMCD", "PARAM", "AVAL", "ASTDT", "AENDT"} & set(self.set_values)
        if clash:
            raise ValueError(f"set_values may not set {sorted(clash)}")
        return self


def _exposure_outputs(a: ExposureParamArgs) -> list[str]:
    dates = [v for v, given in (("ASTDT", a.start_date), ("AENDT", a.end_date)) if given]
    return [*a.by_vars, "PARAMCD", "PARAM", "AVAL", *dates, *a.set_values]


def _run_exposure(df: pd.DataFrame, a: ExposureParamArgs, ctx: Context) -> pd.DataFrame:
    src = ctx.frame(a.dataset_add) if a.dataset_add else df
    mask = condition_mask(src, a.filter) if a.filter else pd.Series(True, index=src.index)
    value = pd.to_numeric(src[a.source_var], errors="coerce").astype("float64")
    sub = src.loc[mask & value.notna()].assign(__v=value)
    if a.unit_var:
        wrong = mask & src[a.unit_var].ne(a.unit).fillna(True).astype(bool)
        if wrong.any():
            ctx.findings.append(Finding(
                rule=f"ADAM.{ctx.dataset}.UNIT", severity="Error", dataset=ctx.dataset, variable="AVAL",
                value=a.paramcd,
                message=f"{int(wrong.sum())} record(s) of {a.paramcd} with {a.unit_var} not {a.unit} "
                        f"summarised as {a.unit}"))
    cols = [*a.by_vars, "PARAMCD", "PARAM", "AVAL"] + (["ASTDT"] if a.start_date else []) + (
        ["AENDT"] if a.end_date else [])
    if a.function in ("first", "last", "value"):
        several = sub.duplicated(a.by_vars, keep=False)
        if several.any():
            n = sub.loc[several, a.by_vars].drop_duplicates().shape[0]
            ctx.findings.append(Finding(
                rule=f"ADAM.{ctx.dataset}.SEVERAL", severity="Warning", dataset=ctx.dataset, variable="AVAL",
                value=a.paramcd,
                message=f"{n} group(s) of {', '.join(a.by_vars)} with several records for {a.paramcd}: "
                        f"the first by {', '.join(a.order) or 'record order'} is analysed"))
        sub = _sort(sub, a.order) if a.order else sub
    g = sub.groupby(a.by_vars, sort=True, dropna=False)
    if a.function in ("first", "last", "value"):  # the first/last record in order (its value present: filtered)
        aval = sub.drop_duplicates(a.by_vars, keep="last" if a.function == "last" else "first").set_index(
            a.by_vars)["__v"]
    else:
        aval = g["__v"].agg(a.function)
    rec = pd.DataFrame({"AVAL": aval})
    if a.start_date:
        rec["ASTDT"] = g[a.start_date].min().reindex(rec.index)
    if a.end_date:
        rec["AENDT"] = g[a.end_date].max().reindex(rec.index)
    rec = rec.reset_index()
    rec["PARAMCD"], rec["PARAM"] = a.paramcd, a.param
    for var, val in a.set_values.items():
        rec[var] = val
    rec = rec[cols + list(a.set_values)]
    if rec.empty:
        return df if len(df.columns) else rec
    if not len(df.columns):
        return rec.reset_index(drop=True)
    return pd.concat([df, rec], ignore_index=True)


def _describe_exposure(a: ExposureParamArgs) -> dict[str, str]:
    records = f"{a.dataset_add} records" if a.dataset_add else "records"
    how = {"sum": "sum of {v} over the {r}", "mean": "mean of {v} over the {r}",
           "min": "smallest {v} of the {r}", "max": "largest {v} of the {r}",
           "first": "{v} of the first of the {r}", "last": "{v} of the last of the {r}",
           "value": "{v} of the {r}"}[a.function].format(v=a.source_var, r=records)
    order = f" (ordered by {', '.join(a.order)})" if a.function in ("first", "last") else ""
    per = ", ".join(a.by_vars)
    base = f"For PARAMCD {a.paramcd}: "
    texts = {
        "AVAL": f"{base}{how}{_where_text(a.filter)}{order} with {a.source_var} present, per {per}",
        "PARAMCD": f"Set to '{a.paramcd}' for {a.param}", "PARAM": f"Set to '{a.param}'",
    }
    if a.start_date:
        texts["ASTDT"] = f"{base}earliest {a.start_date} of the records summarised in AVAL"
    if a.end_date:
        texts["AENDT"] = f"{base}latest {a.end_date} of the records summarised in AVAL"
    for var, val in a.set_values.items():
        texts[var] = f"{base}set to {_q(val)}"
    return texts


_register(Verb(
    name="derive_param_exposure", args=ExposureParamArgs, run=_run_exposure, outputs=_exposure_outputs,
    describe=_describe_exposure, admiral="derive_param_exposure()",
    sources=lambda a: [a.dataset_add.upper()] if a.dataset_add else [],
    reads=lambda a: [] if a.dataset_add else [
        *a.by_vars, a.source_var, *where_variables(a.filter), *(o.lstrip("-") for o in a.order),
        *[v for v in (a.start_date, a.end_date, a.unit_var) if v]]))


# --------------------------------------------------------------------------------------------
# derive_param_ratio


class RatioParamArgs(StepArgs):
    """A parameter from two others of the same ``by_vars`` group: AVAL = AVAL of ``numerator`` /
    AVAL of ``denominator`` x ``factor`` (missing when the denominator is 0), for groups having
    both; the other variables (dates, categories) are those of the numerator record."""

    paramcd: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    param: str = Field(max_length=200)
    numerator: str
    denominator: str
    factor: float = 1.0
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])


def _run_ratio(df: pd.DataFrame, a: RatioParamArgs, ctx: Context) -> pd.DataFrame:
    num = df[df["PARAMCD"].eq(a.numerator).fillna(False)]
    den = df.loc[df["PARAMCD"].eq(a.denominator).fillna(False), [*a.by_vars, "AVAL"]]
    den = den.rename(columns={"AVAL": "__den"}).drop_duplicates(a.by_vars)
    rec = num.merge(den, on=a.by_vars, how="inner")
    with np.errstate(divide="ignore", invalid="ignore"):
        d = rec["__den"].astype("float64")
        rec["AVAL"] = np.where(d == 0, np.nan, rec["AVAL"].astype("float64") / d * a.factor)
    rec = rec.drop(columns="__den")
    rec["PARAMCD"], rec["PARAM"] = a.paramcd, a.param
    return pd.concat([df, rec], ignore_index=True) if len(rec) else df


_register(Verb(
    name="derive_param_ratio", args=RatioParamArgs, run=_run_ratio, outputs=lambda a: ["PARAMCD", "PARAM", "AVAL"],
    describe=lambda a: {"AVAL": f"For PARAMCD {a.paramcd}: AVAL of {a.numerator} / AVAL of {a.denominator}"
                                + (f" x {a.factor:g}" if a.factor != 1 else "")
                                + f" per {', '.join(a.by_vars)} (subjects with both; other variables from "
                                  f"the {a.numerator} record)",
                        "PARAMCD": f"Set to '{a.paramcd}' for {a.param}", "PARAM": f"Set to '{a.param}'"},
    admiral="derive_param_computed()", reads=lambda a: [*a.by_vars, "PARAMCD", "AVAL"]))


# --------------------------------------------------------------------------------------------
# derive_vars_base_ref_date


class BaseRefDateArgs(StepArgs):
    """Baseline relative to a reference date (e.g. the first dose of a conditioning regimen).

    ``flag_var`` (ABLFL) = 'Y' on the last record by ``order`` per ``by_vars`` with ``date`` on or
    before ``reference_date`` (before it when ``same_day`` is false) and a value in one of
    ``value_vars``; none when the reference date is missing.  ``base_vars`` ({BASE: AVAL, ...})
    copy the flagged record's values to every record of the group; ``chg_var`` = AVAL - BASE on
    records after the reference (missing on the baseline and earlier ones).
    """

    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID", "PARAMCD"])
    order: list[str] = Field(min_length=1)
    date: str = "ADT"
    reference_date: str
    same_day: bool = True
    flag_var: str = Field(default="ABLFL", pattern=_NAME)
    base_vars: dict[str, str] = Field(default_factory=lambda: {"BASE": "AVAL"})
    chg_var: str | None = Field(default="CHG", pattern=_NAME)
    value_vars: list[str] = Field(default_factory=lambda: ["AVAL", "AVALC"])

    @model_validator(mode="after")
    def _chg_needs_base(self) -> "BaseRefDateArgs":
        if self.chg_var and "BASE" not in self.base_vars:
            raise ValueError("chg_var (AVAL - BASE) needs BASE among base_vars")
        return self


def _run_base_ref(df: pd.DataFrame, a: BaseRefDateArgs, ctx: Context) -> pd.DataFrame:
    date = df[a.date]
    cand = before_reference(date, date, pd.Series(False, index=df.index), df[a.reference_date], None, a.same_day)
    post = pd.to_datetime(df[a.reference_date]).notna() & pd.to_datetime(date).notna() & ~cand
    if not a.same_day:  # with a strict "before", an assessment on the reference day is neither
        post &= pd.to_datetime(date) > pd.to_datetime(df[a.reference_date])
    out = derive_var_ablfl(df, a.by_vars, list(a.order), cand, a.flag_var, a.value_vars)
    for new, src in a.base_vars.items():
        out = derive_var_base(out, a.by_vars, src, new, a.flag_var)
    if a.chg_var:
        out = derive_var_chg(out, post, a.chg_var)
    return out


def _describe_base_ref(a: BaseRefDateArgs) -> dict[str, str]:
    on = "on or before" if a.same_day else "before"
    per = ", ".join(a.by_vars)
    texts = {a.flag_var: f"'Y' on the last record (by {', '.join(a.order)}) per {per} with {a.date} {on} "
                         f"{a.reference_date} and {' or '.join(a.value_vars)} not missing; none when "
                         f"{a.reference_date} is missing"}
    for new, src in a.base_vars.items():
        texts[new] = f"{src} of the {a.flag_var} = 'Y' record of the same {per}"
    if a.chg_var:
        texts[a.chg_var] = (f"AVAL - BASE on records with {a.date} after {a.reference_date}; missing on the baseline "
                            "and earlier records")
    return texts


_register(Verb(
    name="derive_vars_base_ref_date", args=BaseRefDateArgs, run=_run_base_ref,
    outputs=lambda a: [a.flag_var, *a.base_vars, *([a.chg_var] if a.chg_var else [])],
    describe=_describe_base_ref,
    admiral="derive_var_extreme_flag() (ABLFL), derive_var_base(), derive_var_chg()",
    reads=lambda a: [*a.by_vars, *(o.lstrip("-") for o in a.order), a.date, a.reference_date,
                     *a.base_vars.values(), *(["AVAL"] if a.chg_var else [])]))

