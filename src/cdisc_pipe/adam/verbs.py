"""The derivation verbs a plan may name, with string-named arguments (the plan's vocabulary).

Each verb wraps one function of the derivation library (admiral grammar: ``derive_var_*`` adds one
variable, ``derive_vars_*`` several, ``derive_param_*`` records) behind a pydantic model of its
arguments, so a plan file is checked entry by entry before any data is read.  A verb also says,
without data, which variables it writes (:meth:`Verb.outputs`), which datasets it reads
(:meth:`Verb.sources`) and, in words a reviewer reads in define.xml, how each variable it writes
is derived (:meth:`Verb.describe`).

Nothing here names a study, a dataset of one study or a term: the plan supplies every name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdisc_pipe.adam.conditions import condition_mask, describe_where, where_variables
from cdisc_pipe.adam.derive import (
    derive_var_extreme_flag,
    derive_var_merged_exist_flag,
    derive_vars_dt,
    derive_vars_dtm,
    derive_vars_duration,
    derive_vars_dy,
    derive_vars_merged,
    filter_extreme,
)
from cdisc_pipe.adam.derive_bds import derive_var_trtemfl
from cdisc_pipe.adam.settings import TteSource, Where
from cdisc_pipe.errors import Finding

__all__ = ["VERBS", "Verb", "Context", "StepArgs"]

Scalar = str | float | int | bool | None
_NAME = r"^_?[A-Z][A-Z0-9_]{0,31}$"  # a variable (working variables start with "_")


class StepArgs(BaseModel):
    """Arguments common to every step: the verb's name and an optional reviewer-facing text."""

    model_config = ConfigDict(extra="forbid")
    verb: str
    # Replaces the generated method text of every variable this step writes (define.xml).
    description: str | None = None


@dataclass
class Context:
    """What a step may read: every SDTM dataset and every ADaM dataset built before this one."""

    frames: Mapping[str, pd.DataFrame]
    dataset: str
    findings: list[Finding] = field(default_factory=list)

    def frame(self, name: str) -> pd.DataFrame:
        return self.frames[name.upper()]


@dataclass(frozen=True)
class Verb:
    """One verb: its argument model, what it runs, and what it says about itself without data."""

    name: str
    args: type[StepArgs]
    run: Callable[[pd.DataFrame, Any, Context], pd.DataFrame]
    outputs: Callable[[Any], list[str]]
    describe: Callable[[Any], dict[str, str]]
    admiral: str
    sources: Callable[[Any], list[str]] = lambda a: []
    reads: Callable[[Any], list[str]] = lambda a: []  # variables of the dataset being built
    # Variables the step needs in each dataset it reads ({dataset: [variables]}), checked against
    # the SDTM (and the plans of ADaM inputs) before anything is derived, all gaps at once.
    needs: Callable[[Any], dict[str, list[str]]] = lambda a: {}
    # Variables the step adds to another dataset as later steps of the same plan see it
    # ({dataset: [variables]}; e.g. the last adequate assessment on event records).
    augments: Callable[[Any], dict[str, list[str]]] = lambda a: {}


VERBS: dict[str, Verb] = {}


def _register(verb: Verb) -> Verb:
    VERBS[verb.name] = verb
    return verb


def sas_round(values: np.ndarray, decimals: int) -> np.ndarray:
    """Round half away from zero, as SAS ROUND does (numpy rounds half to even), with SAS's small
    fuzz so that 0.285 (stored as 0.28499999...) rounds to 0.29."""
    scale = 10.0 ** decimals
    return np.sign(values) * np.floor(np.abs(values) * scale + 0.5 + 1e-9) / scale


# --------------------------------------------------------------------------------------------
# text helpers (define.xml method text)


def _order_text(order: Sequence[str]) -> str:
    return ", ".join(f"{o[1:]} descending" if o.startswith("-") else o for o in order)


def _where_text(where: Sequence[Any], lead: str = " where ") -> str:
    return f"{lead}{describe_where(where)}" if where else ""


def _keys(by: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    return dict(by) if isinstance(by, Mapping) else {k: k for k in by}


def _rename(new_vars: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """{new name: source name}."""
    return dict(new_vars) if isinstance(new_vars, Mapping) else {v: v for v in new_vars}


def _value_text(v: Scalar) -> str:
    if v is None:
        return "missing"
    if isinstance(v, str):
        return "'" + v + "'"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _order_vars(order: Sequence[str]) -> list[str]:
    return [o.lstrip("-") for o in order]


def _needs(dataset: str, *groups: Sequence[str]) -> dict[str, list[str]]:
    return {dataset.upper(): list(dict.fromkeys(v for g in groups for v in g if v))}


# --------------------------------------------------------------------------------------------
# derive_vars_merged


class MergedArgs(StepArgs):
    dataset_add: str
    by_vars: list[str] | dict[str, str] = Field(default_factory=lambda: ["USUBJID"])
    new_vars: list[str] | dict[str, str]  # {NEW: SOURCE} or [NAME]
    filter_add: Where = Field(default_factory=list)
    order: list[str] = Field(default_factory=list)
    mode: Literal["first", "last"] | None = None
    exist_flag: str | None = None
    missing_values: dict[str, Scalar] = Field(default_factory=dict)  # for by groups without a record

    @model_validator(mode="after")
    def _mode_needs_order(self) -> "MergedArgs":
        if self.mode and not self.order:
            raise ValueError("mode first/last needs an order")
        unknown = set(self.missing_values) - set(_rename(self.new_vars)) - {self.exist_flag}
        if unknown:
            raise ValueError(f"missing_values names variables the step does not write: {sorted(unknown)}")
        return self


def _run_merged(df: pd.DataFrame, a: MergedArgs, ctx: Context) -> pd.DataFrame:
    add = ctx.frame(a.dataset_add)
    mask = condition_mask(add, a.filter_add) if a.filter_add else None
    out = derive_vars_merged(df, add, a.by_vars, new_vars=a.new_vars,
                             filter_add=(lambda x: mask) if mask is not None else None,
                             order=a.order or None, mode=a.mode, exist_flag=a.exist_flag)
    for var, value in a.missing_values.items():
        matched = out[a.exist_flag].notna() if a.exist_flag else None
        if matched is None:  # no flag asked for: a group without a record is one with the value missing
            out[var] = out[var].where(out[var].notna(), value)
        else:
            out[var] = out[var].where(matched, value)
    return out


def _describe_merged(a: MergedArgs) -> dict[str, str]:
    keys = _keys(a.by_vars)
    per = ", ".join(keys.values())
    which = {"first": "first", "last": "last"}.get(a.mode or "", "")
    order = f" (records ordered by {_order_text(a.order)})" if a.order else ""
    texts = {}
    for new, src in _rename(a.new_vars).items():
        lead = f"{which} " if which else ""
        text = f"{lead}{a.dataset_add}.{src}{_where_text(a.filter_add)}, per {per}{order}"
        if new in a.missing_values:
            text += f"; {_value_text(a.missing_values[new])} when there is no such record"
        texts[new] = text[0].upper() + text[1:]
    if a.exist_flag:
        texts[a.exist_flag] = (f"'Y' when {a.dataset_add} has a record{_where_text(a.filter_add)} for the same {per}"
                               + (f", else {_value_text(a.missing_values[a.exist_flag])}"
                                  if a.exist_flag in a.missing_values else ""))
    return texts


_register(Verb(
    name="derive_vars_merged", args=MergedArgs, run=_run_merged,
    outputs=lambda a: list(_rename(a.new_vars)) + ([a.exist_flag] if a.exist_flag else []),
    describe=_describe_merged, admiral="derive_vars_merged()", sources=lambda a: [a.dataset_add.upper()],
    reads=lambda a: list(_keys(a.by_vars)),
    needs=lambda a: _needs(a.dataset_add, _keys(a.by_vars).values(), _rename(a.new_vars).values(),
                           where_variables(a.filter_add), _order_vars(a.order))))


# --------------------------------------------------------------------------------------------
# derive_var_merged_exist_flag


class ExistFlagArgs(StepArgs):
    dataset_add: str
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    new_var: str = Field(pattern=_NAME)
    condition: Where = Field(default_factory=list)
    true_value: Scalar = "Y"
    false_value: Scalar = "N"
    missing_value: Scalar = None


def _run_exist(df: pd.DataFrame, a: ExistFlagArgs, ctx: Context) -> pd.DataFrame:
    add = ctx.frame(a.dataset_add)
    cond = (lambda x: condition_mask(x, a.condition)) if a.condition else None
    return derive_var_merged_exist_flag(df, add, a.by_vars, a.new_var, condition=cond, true_value=a.true_value,
                                        false_value=a.false_value, missing_value=a.missing_value)


def _describe_exist(a: ExistFlagArgs) -> dict[str, str]:
    per = ", ".join(a.by_vars)
    text = (f"{_value_text(a.true_value)} when {a.dataset_add} has a record{_where_text(a.condition)} for the same "
            f"{per}; {_value_text(a.false_value)} when it has records but none such")
    if a.missing_value != a.false_value:
        text += f"; {_value_text(a.missing_value)} when it has no record"
    return {a.new_var: text}


_register(Verb(
    name="derive_var_merged_exist_flag", args=ExistFlagArgs, run=_run_exist, outputs=lambda a: [a.new_var],
    describe=_describe_exist, admiral="derive_var_merged_exist_flag()", sources=lambda a: [a.dataset_add.upper()],
    reads=lambda a: list(a.by_vars), needs=lambda a: _needs(a.dataset_add, a.by_vars, where_variables(a.condition))))


# --------------------------------------------------------------------------------------------
# derive_var_merged_summary


_SUMMARY = {"sum": "sum", "mean": "mean", "min": "min", "max": "max", "count": "size", "n_distinct": "nunique"}


class SummaryArgs(StepArgs):
    dataset_add: str
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    new_var: str = Field(pattern=_NAME)
    source_var: str | None = None  # not needed for count
    function: Literal["sum", "mean", "min", "max", "count", "n_distinct"]
    filter_add: Where = Field(default_factory=list)
    missing_value: Scalar = None  # for groups without a record

    @model_validator(mode="after")
    def _needs_source(self) -> "SummaryArgs":
        if self.function != "count" and not self.source_var:
            raise ValueError(f"function {self.function} needs source_var")
        return self


def _run_summary(df: pd.DataFrame, a: SummaryArgs, ctx: Context) -> pd.DataFrame:
    add = ctx.frame(a.dataset_add)
    if a.filter_add:
        add = add[condition_mask(add, a.filter_add)]
    grouped = add.groupby(a.by_vars, dropna=False, sort=False)
    if a.function == "count":
        agg = grouped.size()
    else:
        values = add[a.source_var]
        if a.function in ("sum", "mean") and not pd.api.types.is_numeric_dtype(values):
            values = pd.to_numeric(values, errors="coerce")
        agg = values.groupby([add[b] for b in a.by_vars], dropna=False, sort=False).agg(_SUMMARY[a.function])
        if a.function == "sum":  # a group whose values are all missing sums to missing, not 0
            any_present = values.notna().groupby([add[b] for b in a.by_vars], dropna=False, sort=False).any()
            agg = agg.where(any_present)
    agg = agg.rename(a.new_var).reset_index()
    out = df.drop(columns=[a.new_var], errors="ignore").merge(agg, on=a.by_vars, how="left", validate="many_to_one")
    out.index = df.index
    if a.missing_value is not None:
        out[a.new_var] = out[a.new_var].where(out[a.new_var].notna(), a.missing_value)
    return out


def _describe_summary(a: SummaryArgs) -> dict[str, str]:
    what = "number of records" if a.function == "count" else f"{a.function} of {a.source_var}"
    text = f"{what[0].upper() + what[1:]} in {a.dataset_add}{_where_text(a.filter_add)}, per {', '.join(a.by_vars)}"
    if a.missing_value is not None:
        text += f"; {_value_text(a.missing_value)} when there is no such record"
    return {a.new_var: text}


_register(Verb(
    name="derive_var_merged_summary", args=SummaryArgs, run=_run_summary, outputs=lambda a: [a.new_var],
    describe=_describe_summary, admiral="derive_var_merged_summary()", sources=lambda a: [a.dataset_add.upper()],
    reads=lambda a: list(a.by_vars),
    needs=lambda a: _needs(a.dataset_add, a.by_vars, [a.source_var or ""], where_variables(a.filter_add))))


# --------------------------------------------------------------------------------------------
# dates: derive_vars_dt, derive_vars_dtm, derive_vars_dy, derive_vars_duration


class DtArgs(StepArgs):
    dtc: str
    new_vars_prefix: str = Field(pattern=r"^_?[A-Z][A-Z0-9]{0,5}$")  # "_X": working variables _XDT, _XDTF
    highest_imputation: Literal["n", "D", "M"] = "n"
    date_imputation: Literal["first", "mid", "last"] = "first"
    flag_imputation: Literal["auto", "date", "none"] = "auto"
    min_dates: list[str] = Field(default_factory=list)
    max_dates: list[str] = Field(default_factory=list)


_IMPUTE = {"n": "no imputation", "D": "a missing day imputed", "M": "a missing day or month imputed"}
_WHICH = {"first": "to the first day (month)", "mid": "to the middle of the period", "last": "to the last day (month)"}


def _describe_dt(a: DtArgs) -> dict[str, str]:
    how = _IMPUTE[a.highest_imputation]
    if a.highest_imputation != "n":
        how += f" {_WHICH[a.date_imputation]}"
        if a.min_dates:
            how += f", but not before {' or '.join(a.min_dates)} when that lies in the same period"
        if a.max_dates:
            how += f", never after {' or '.join(a.max_dates)}"
    texts = {f"{a.new_vars_prefix}DT": f"Date part of {a.dtc} ({how})"}
    if a.flag_imputation == "date" or (a.flag_imputation == "auto" and a.highest_imputation != "n"):
        texts[f"{a.new_vars_prefix}DTF"] = f"Imputation flag of {a.new_vars_prefix}DT: 'D' day imputed, 'M' month imputed"
    return texts


_register(Verb(
    name="derive_vars_dt", args=DtArgs,
    run=lambda df, a, ctx: derive_vars_dt(df, a.new_vars_prefix, a.dtc, a.highest_imputation, a.date_imputation,
                                          a.flag_imputation, a.min_dates or None, a.max_dates or None),
    outputs=lambda a: list(_describe_dt(a)), describe=_describe_dt, admiral="derive_vars_dt()",
    reads=lambda a: [a.dtc, *a.min_dates, *a.max_dates]))


class DtmArgs(StepArgs):
    dtc: str
    new_vars_prefix: str = Field(pattern=r"^_?[A-Z][A-Z0-9]{0,4}$")
    highest_imputation: Literal["n", "s", "m", "h", "D", "M"] = "h"
    date_imputation: Literal["first", "mid", "last"] = "first"
    time_imputation: Literal["first", "last"] = "first"
    flag_imputation: Literal["auto", "both", "date", "time", "none"] = "auto"
    ignore_seconds_flag: bool = False


def _dtm_outputs(a: DtmArgs) -> list[str]:
    want_date = a.flag_imputation in ("both", "date") or (a.flag_imputation == "auto" and a.highest_imputation in ("D", "M"))
    want_time = a.flag_imputation in ("both", "time") or (a.flag_imputation == "auto" and a.highest_imputation != "n")
    return [f"{a.new_vars_prefix}DTM"] + ([f"{a.new_vars_prefix}DTF"] if want_date else []) + (
        [f"{a.new_vars_prefix}TMF"] if want_time else [])


def _describe_dtm(a: DtmArgs) -> dict[str, str]:
    texts = {f"{a.new_vars_prefix}DTM": f"Date-time of {a.dtc} (missing components up to level "
                                        f"'{a.highest_imputation}' imputed: date {a.date_imputation}, time {a.time_imputation})"}
    for v in _dtm_outputs(a)[1:]:
        texts[v] = f"Imputation flag of {a.new_vars_prefix}DTM"
    return texts


_register(Verb(
    name="derive_vars_dtm", args=DtmArgs,
    run=lambda df, a, ctx: derive_vars_dtm(df, a.new_vars_prefix, a.dtc, a.highest_imputation, a.date_imputation,
                                           a.time_imputation, a.flag_imputation, a.ignore_seconds_flag),
    outputs=_dtm_outputs, describe=_describe_dtm, admiral="derive_vars_dtm()", reads=lambda a: [a.dtc]))


class DyArgs(StepArgs):
    reference_date: str
    source_vars: dict[str, str]  # {new study day: date}


_register(Verb(
    name="derive_vars_dy", args=DyArgs,
    run=lambda df, a, ctx: derive_vars_dy(df, a.reference_date, a.source_vars),
    outputs=lambda a: list(a.source_vars),
    describe=lambda a: {new: f"{src} - {a.reference_date} + 1 when {src} >= {a.reference_date}, else "
                             f"{src} - {a.reference_date} (in days; there is no day 0)" for new, src in a.source_vars.items()},
    admiral="derive_vars_dy()", reads=lambda a: [a.reference_date, *a.source_vars.values()]))


class DurationArgs(StepArgs):
    new_var: str = Field(pattern=_NAME)
    start_date: str
    end_date: str
    out_unit: Literal["days", "weeks", "months", "years"] = "days"
    add_one: bool = True
    new_var_unit: str | None = None  # e.g. ADURU: set where the duration exists
    unit_value: str | None = None  # the unit text in new_var_unit (default: out_unit in upper case)
    floor: bool = False  # whole units (e.g. age in completed years)
    round: int | None = None  # decimals, half away from zero (SAS ROUND)

    @model_validator(mode="after")
    def _one_rounding(self) -> "DurationArgs":
        if self.floor and self.round is not None:
            raise ValueError("give floor or round, not both")
        return self


def _run_duration(df: pd.DataFrame, a: DurationArgs, ctx: Context) -> pd.DataFrame:
    out = derive_vars_duration(df, a.new_var, a.start_date, a.end_date, a.out_unit, a.add_one)
    if a.floor:
        out[a.new_var] = np.floor(out[a.new_var])
    if a.round is not None:
        out[a.new_var] = sas_round(out[a.new_var].to_numpy(dtype="float64"), a.round)
    if a.new_var_unit:
        unit = a.unit_value or a.out_unit.upper()
        out[a.new_var_unit] = pd.Series(np.where(out[a.new_var].notna(), unit, None), index=out.index, dtype=object)
    return out


def _describe_duration(a: DurationArgs) -> dict[str, str]:
    text = f"{a.end_date} - {a.start_date}{' + 1' if a.add_one else ''}"
    if a.out_unit != "days":
        divisor = {"weeks": "7", "months": "30.4375", "years": "365.25"}[a.out_unit]
        text = f"({text}) / {divisor}"
    text += f" ({a.out_unit})"
    if a.floor:
        text = f"whole part of {text}"
    if a.round is not None:
        text += f", rounded to {a.round} decimal place(s)"
    texts = {a.new_var: text[0].upper() + text[1:]}
    if a.new_var_unit:
        texts[a.new_var_unit] = f"'{a.unit_value or a.out_unit.upper()}' where {a.new_var} is not missing"
    return texts


_register(Verb(
    name="derive_vars_duration", args=DurationArgs, run=_run_duration,
    outputs=lambda a: [a.new_var] + ([a.new_var_unit] if a.new_var_unit else []),
    describe=_describe_duration, admiral="derive_vars_duration()", reads=lambda a: [a.start_date, a.end_date]))


# --------------------------------------------------------------------------------------------
# values: derive_vars_cat, derive_vars_assigned, derive_var_computed


class VarRef(BaseModel):
    """A value taken from another variable of the same record: ``{variable: TRTEDT}``."""

    model_config = ConfigDict(extra="forbid")
    variable: str


Value = Scalar | VarRef


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid")
    where: Where
    values: dict[str, Value]


class CatArgs(StepArgs):
    """The first category whose conditions hold gives its values; ``otherwise`` the rest."""

    new_vars: list[str] = Field(min_length=1)
    categories: list[Category] = Field(min_length=1)
    otherwise: dict[str, Value] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _same_vars(self) -> "CatArgs":
        for i, cat in enumerate(self.categories):
            extra = set(cat.values) - set(self.new_vars)
            if extra:
                raise ValueError(f"categories[{i}] sets {sorted(extra)}, not among new_vars")
        extra = set(self.otherwise) - set(self.new_vars)
        if extra:
            raise ValueError(f"otherwise sets {sorted(extra)}, not among new_vars")
        return self


def _column(values: list[Scalar], n_rows_codes: np.ndarray, index: pd.Index) -> pd.Series:
    """Values chosen per row (``codes`` index ``values``; -1 = missing): float64 when all numeric."""
    numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)
    table = np.array([np.nan if v is None else float(v) for v in values] + [np.nan]) if numeric else \
        np.array(list(values) + [None], dtype=object)
    col = pd.Series(table[n_rows_codes], index=index)
    return col.astype("float64") if numeric else col.astype(object).where(col.notna(), None)


def _run_cat(df: pd.DataFrame, a: CatArgs, ctx: Context) -> pd.DataFrame:
    out = df.copy(deep=False)
    choice = np.full(len(df), -1)
    for i, cat in enumerate(a.categories):
        hit = condition_mask(df, cat.where).to_numpy() & (choice < 0)
        choice[hit] = i
    if a.otherwise:
        choice[choice < 0] = len(a.categories)
    for var in a.new_vars:
        values = [cat.values.get(var) for cat in a.categories] + [a.otherwise.get(var)]
        if not any(isinstance(x, VarRef) for x in values):
            out[var] = _column(values, choice, df.index)
            continue
        # some categories copy another variable: the column takes the copied variables' type
        literal = [None if isinstance(x, VarRef) else x for x in values]
        copied = [df[x.variable] for x in values if isinstance(x, VarRef)]
        if all(pd.api.types.is_datetime64_any_dtype(c) for c in copied) and all(x is None for x in literal):
            col = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
        else:
            col = _column(literal, choice, df.index)
            numeric = all(pd.api.types.is_numeric_dtype(c) and not pd.api.types.is_bool_dtype(c) for c in copied)
            if not (numeric and pd.api.types.is_numeric_dtype(col)):
                col = col.astype(object)
        for i, x in enumerate(values):
            if isinstance(x, VarRef):
                col = col.where(choice != i, df[x.variable])
        out[var] = col
    return out


def _value_or_ref(x: Value) -> str:
    return x.variable if isinstance(x, VarRef) else _value_text(x)


def _describe_cat(a: CatArgs) -> dict[str, str]:
    texts = {}
    for var in a.new_vars:
        parts = [f"{_value_or_ref(cat.values.get(var))} when {describe_where(cat.where)}" for cat in a.categories]
        if a.otherwise:
            parts.append(f"else {_value_or_ref(a.otherwise.get(var))}")
        texts[var] = "; ".join(parts)
    return texts


_register(Verb(
    name="derive_vars_cat", args=CatArgs, run=_run_cat, outputs=lambda a: list(a.new_vars), describe=_describe_cat,
    admiral="derive_vars_cat()",
    reads=lambda a: where_variables([c for cat in a.categories for c in cat.where]) + [
        x.variable for x in [*(v for cat in a.categories for v in cat.values.values()), *a.otherwise.values()]
        if isinstance(x, VarRef)]))


class AssignedArgs(StepArgs):
    """Constants (``values``) and copies of other variables of the same record (``copies``)."""

    values: dict[str, Scalar] = Field(default_factory=dict)
    copies: dict[str, str] = Field(default_factory=dict)  # {NEW: SOURCE}

    @model_validator(mode="after")
    def _something(self) -> "AssignedArgs":
        if not self.values and not self.copies:
            raise ValueError("give values and/or copies")
        both = set(self.values) & set(self.copies)
        if both:
            raise ValueError(f"{sorted(both)} in both values and copies")
        return self


def _run_assigned(df: pd.DataFrame, a: AssignedArgs, ctx: Context) -> pd.DataFrame:
    out = df.copy(deep=False)
    for var, value in a.values.items():
        out[var] = _column([value], np.zeros(len(df), dtype=int), df.index)
    for new, src in a.copies.items():
        out[new] = df[src]
    return out


_register(Verb(
    name="derive_vars_assigned", args=AssignedArgs, run=_run_assigned,
    outputs=lambda a: [*a.values, *a.copies],
    describe=lambda a: {**{v: f"Set to {_value_text(x)}" for v, x in a.values.items()},
                        **{v: f"Equal to {s}" for v, s in a.copies.items()}},
    admiral="dplyr::mutate() (constants and copies)", reads=lambda a: list(a.copies.values())))


_ARITH = {"sum": " + ", "difference": " - ", "product": " * ", "ratio": " / "}


class ComputedArgs(StepArgs):
    """Arithmetic over variables of the record and numbers.

    ``sum``, ``difference``, ``product``, ``ratio`` (missing if any operand is missing), ``min`` and
    ``max`` (of the operands present, as SAS MIN/MAX).  Dates take part as day numbers, so the
    difference of two dates is a number of days.
    """

    new_var: str = Field(pattern=_NAME)
    operation: Literal["sum", "difference", "product", "ratio", "min", "max"]
    operands: list[str | float] = Field(min_length=2)
    round: int | None = None  # decimals (half away from zero), after the operation


def arithmetic(operation: str, vals: Sequence[np.ndarray]) -> np.ndarray:
    """Element-wise ``sum``/``difference``/``product``/``ratio`` (left to right; missing when any
    operand is missing, and a ratio with a 0 divisor is missing) or ``min``/``max`` of the operands
    present (missing only when all are, as SAS MIN/MAX)."""
    if operation in ("min", "max"):
        stack = np.vstack(vals)
        present = ~np.isnan(stack)
        filled = np.where(present, stack, np.inf if operation == "min" else -np.inf)
        acc = filled.min(axis=0) if operation == "min" else filled.max(axis=0)
        return np.where(present.any(axis=0), acc, np.nan)
    acc = np.asarray(vals[0], dtype="float64").copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for v in vals[1:]:
            if operation == "sum":
                acc = acc + v
            elif operation == "difference":
                acc = acc - v
            elif operation == "product":
                acc = acc * v
            elif operation == "ratio":
                acc = np.where(v == 0, np.nan, acc / v)
            else:
                raise ValueError(f"unknown operation {operation!r}")
    return acc


def _operand(df: pd.DataFrame, o: str | float) -> np.ndarray:
    if not isinstance(o, str):
        return np.full(len(df), float(o))
    col = df[o]
    if pd.api.types.is_datetime64_any_dtype(col):  # days since 1960-01-01, as SAS dates
        return ((col - pd.Timestamp("1960-01-01")).dt.total_seconds() / 86400.0).to_numpy(dtype="float64")
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64")


def _run_computed(df: pd.DataFrame, a: ComputedArgs, ctx: Context) -> pd.DataFrame:
    acc = arithmetic(a.operation, [_operand(df, o) for o in a.operands])
    if a.round is not None:
        acc = sas_round(acc, a.round)
    out = df.copy(deep=False)
    out[a.new_var] = acc
    return out


def _describe_computed(a: ComputedArgs) -> dict[str, str]:
    names = [o if isinstance(o, str) else f"{o:g}" for o in a.operands]
    if a.operation in ("min", "max"):
        text = f"{'Smallest' if a.operation == 'min' else 'Largest'} of {', '.join(names)} (those not missing)"
    else:
        text = names[0]
        for o, name in zip(a.operands[1:], names[1:]):
            op = _ARITH[a.operation]
            if a.operation in ("sum", "difference") and not isinstance(o, str) and o < 0:  # "- -1" reads "+ 1"
                op, name = (" - " if a.operation == "sum" else " + "), f"{-o:g}"
            text += op + name
    if a.operation == "ratio":
        text += " (missing when a divisor is 0)"
    if a.round is not None:
        text = f"{text}, rounded to {a.round} decimal place(s)"
    return {a.new_var: text}


_register(Verb(
    name="derive_var_computed", args=ComputedArgs, run=_run_computed, outputs=lambda a: [a.new_var],
    describe=_describe_computed, admiral="dplyr::mutate() (arithmetic)",
    reads=lambda a: [o for o in a.operands if isinstance(o, str)]))


class PooledArgs(StepArgs):
    """Pool small groups: a ``group_var`` value with fewer than ``min_count`` records (in any level of
    ``within``, when given: e.g. per planned treatment) becomes ``pooled_value``; others keep their value."""

    new_var: str = Field(pattern=_NAME)
    group_var: str
    within: list[str] = Field(default_factory=list)
    min_count: int = Field(ge=1)
    pooled_value: str
    filter: Where = Field(default_factory=list)  # the records that count (all by default)


def _run_pooled(df: pd.DataFrame, a: PooledArgs, ctx: Context) -> pd.DataFrame:
    counted = df[condition_mask(df, a.filter)] if a.filter else df
    if a.within:
        # every level of ``within`` seen in the counted records: a group absent from a level has 0
        table = counted.groupby([a.group_var, *a.within], dropna=False).size().unstack(a.within, fill_value=0)
        smallest = table.min(axis=1)
    else:
        smallest = counted.groupby(a.group_var, dropna=False).size()
    small = set(smallest.index[smallest < a.min_count])
    out = df.copy(deep=False)
    group = df[a.group_var]
    out[a.new_var] = group.astype(object).where(~group.isin(small), a.pooled_value).where(group.notna(), None)
    return out


def _describe_pooled(a: PooledArgs) -> dict[str, str]:
    per = f" in any {', '.join(a.within)} group" if a.within else ""
    among = _where_text(a.filter, " among records where ")
    return {a.new_var: f"{a.group_var}, except '{a.pooled_value}' for a {a.group_var} with fewer than {a.min_count} "
                       f"records{per}{among}"}


_register(Verb(
    name="derive_var_pooled", args=PooledArgs, run=_run_pooled, outputs=lambda a: [a.new_var],
    describe=_describe_pooled, admiral="(no admiral counterpart: pooling of small groups, e.g. sites)",
    reads=lambda a: [a.group_var, *a.within, *where_variables(a.filter)]))


# --------------------------------------------------------------------------------------------
# flags and records: derive_var_extreme_flag, derive_var_trtemfl, derive_var_obs_number, filter


class ExtremeFlagArgs(StepArgs):
    by_vars: list[str]
    order: list[str] = Field(min_length=1)
    new_var: str = Field(pattern=_NAME)
    mode: Literal["first", "last"] = "first"
    filter: Where = Field(default_factory=list)  # only these records are candidates
    true_value: Scalar = "Y"
    false_value: Scalar = None


_register(Verb(
    name="derive_var_extreme_flag", args=ExtremeFlagArgs,
    run=lambda df, a, ctx: derive_var_extreme_flag(df, a.by_vars, a.order, a.new_var, a.mode, a.true_value,
                                                   a.false_value, condition_mask(df, a.filter) if a.filter else None),
    outputs=lambda a: [a.new_var],
    describe=lambda a: {a.new_var: f"{_value_text(a.true_value)} on the {a.mode} record per {', '.join(a.by_vars)}"
                                   f"{_where_text(a.filter, ' among records where ')}, records ordered by "
                                   f"{_order_text(a.order)}"
                                   + (f"; else {_value_text(a.false_value)}" if a.false_value is not None else "")},
    admiral="derive_var_extreme_flag()",
    reads=lambda a: [*a.by_vars, *(o.lstrip("-") for o in a.order), *where_variables(a.filter)]))


class TrtemflArgs(StepArgs):
    new_var: str = Field(default="TRTEMFL", pattern=_NAME)
    start_date: str = "ASTDT"
    end_date: str | None = "AENDT"
    trt_start: str = "TRTSDT"
    trt_end: str | None = None
    window_days: int | None = Field(default=None, ge=0)


def _describe_trtemfl(a: TrtemflArgs) -> dict[str, str]:
    text = f"'Y' when {a.trt_start} is not missing and {a.start_date} >= {a.trt_start}"
    if a.trt_end and a.window_days is not None:
        text += f" and {a.start_date} <= {a.trt_end} + {a.window_days} days"
    if a.end_date:
        text += (f", or when {a.start_date} is missing and {a.end_date} is missing or >= {a.trt_start}"
                 " (worst case)")
    return {a.new_var: text}


_register(Verb(
    name="derive_var_trtemfl", args=TrtemflArgs,
    run=lambda df, a, ctx: derive_var_trtemfl(df, a.start_date, a.end_date, a.trt_start, a.trt_end, a.window_days,
                                              None, a.new_var),
    outputs=lambda a: [a.new_var], describe=_describe_trtemfl, admiral="derive_var_trtemfl()",
    reads=lambda a: [v for v in (a.start_date, a.end_date, a.trt_start, a.trt_end) if v]))


class ObsNumberArgs(StepArgs):
    new_var: str = Field(default="ASEQ", pattern=_NAME)
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    order: list[str] = Field(min_length=1)


def _run_obs_number(df: pd.DataFrame, a: ObsNumberArgs, ctx: Context) -> pd.DataFrame:
    from cdisc_pipe.adam.derive import _sort

    ordered = _sort(df, a.order)
    number = ordered.groupby(a.by_vars, dropna=False, sort=False).cumcount() + 1
    out = df.copy(deep=False)
    out[a.new_var] = number.reindex(df.index).astype("float64")
    return out


_register(Verb(
    name="derive_var_obs_number", args=ObsNumberArgs, run=_run_obs_number, outputs=lambda a: [a.new_var],
    describe=lambda a: {a.new_var: f"1, 2, ... per {', '.join(a.by_vars)} in the order of {_order_text(a.order)}"},
    admiral="derive_var_obs_number()", reads=lambda a: [*a.by_vars, *(o.lstrip("-") for o in a.order)]))


class FilterArgs(StepArgs):
    """Keep only the records where ``where`` holds (the plan states every record it drops)."""

    where: Where = Field(min_length=1)


_register(Verb(
    name="filter_records", args=FilterArgs, run=lambda df, a, ctx: df[condition_mask(df, a.where)],
    outputs=lambda a: [], describe=lambda a: {}, admiral="dplyr::filter()",
    reads=lambda a: where_variables(a.where)))


class ExtremeRecordsArgs(StepArgs):
    """Keep the first/last record per group (admiral ``filter_extreme``)."""

    by_vars: list[str]
    order: list[str] = Field(min_length=1)
    mode: Literal["first", "last"] = "first"


_register(Verb(
    name="filter_extreme", args=ExtremeRecordsArgs,
    run=lambda df, a, ctx: filter_extreme(df, a.by_vars, a.order, a.mode),
    outputs=lambda a: [], describe=lambda a: {}, admiral="filter_extreme()",
    reads=lambda a: [*a.by_vars, *(o.lstrip("-") for o in a.order)]))


# --------------------------------------------------------------------------------------------
# derive_param_tte


class TteArgs(StepArgs):
    """One time-to-event parameter (records added), events and censorings from any dataset."""

    paramcd: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    param: str = Field(max_length=200)
    parcat1: str | None = None
    start_date: str
    start_dataset: str = "ADSL"
    start_where: Where = Field(default_factory=list)
    population: Where = Field(default_factory=list)
    events: list[TteSource] = Field(min_length=1)
    censors: list[TteSource] = Field(min_length=1)
    unit: Literal["DAYS", "WEEKS", "MONTHS", "YEARS"] = "DAYS"
    subject_dataset: str = "ADSL"  # the subject-level dataset holding the population variables
    # Optional variables to write besides the BDS-TTE core (PARCAT1 needs parcat1).
    also_write: list[Literal["PARCAT1", "AVALU", "CNSDTDSC"]] = Field(default_factory=list)

    def parameter(self) -> Any:
        from cdisc_pipe.adam.settings import TteParameter

        return TteParameter(paramcd=self.paramcd, param=self.param, parcat1=self.parcat1, start_date=self.start_date,
                            start_dataset=self.start_dataset, start_where=self.start_where,
                            population=self.population, events=self.events, censors=self.censors, unit=self.unit)

    @model_validator(mode="after")
    def _valid_parameter(self) -> "TteArgs":
        self.parameter()  # the engine's own rules (cnsr codes, one code per reason)
        return self


_TTE_VARS = ["PARAMCD", "PARAM", "STARTDT", "ADT", "AVAL", "CNSR", "EVNTDESC", "SRCDOM", "SRCVAR", "SRCSEQ"]


def _tte_outputs(a: "TteArgs") -> list[str]:
    return ["USUBJID", *_TTE_VARS, *a.also_write]


def _as_dates(frame: pd.DataFrame, columns: set[str]) -> pd.DataFrame:
    """ISO 8601 text date columns (e.g. RFSTDTC) as dates; only complete dates count (a partial
    date is missing, never guessed)."""
    from cdisc_pipe.adam.derive import impute_dtc_dt

    text = [c for c in columns if c in frame.columns and not pd.api.types.is_datetime64_any_dtype(frame[c])
            and not pd.api.types.is_numeric_dtype(frame[c])]
    if not text:
        return frame
    out = frame.copy(deep=False)
    for c in text:
        out[c] = impute_dtc_dt(out[c], "n", "first")[0]
    return out


def _run_tte(df: pd.DataFrame, a: TteArgs, ctx: Context) -> pd.DataFrame:
    from cdisc_pipe.adam.verbs_response import derive_param_tte

    dates: dict[str, set[str]] = {}
    dates.setdefault(a.start_dataset.upper(), set()).add(a.start_date)
    for src in [*a.events, *a.censors]:
        dates.setdefault(src.dataset.upper(), set()).add(src.date)
    frames = {name: _as_dates(f, dates.get(name, set())) for name, f in ctx.frames.items()}
    rec, findings = derive_param_tte(frames[a.subject_dataset.upper()], frames, a.parameter())
    ctx.findings.extend(dataclasses.replace(f, dataset=ctx.dataset) for f in findings)
    rec = rec[_tte_outputs(a)]
    if not len(df.columns):
        return rec.reset_index(drop=True)
    return pd.concat([df, rec], ignore_index=True)


def _describe_tte(a: TteArgs) -> dict[str, str]:
    pop = f" for subjects where {describe_where(a.population)}" if a.population else ""
    start_src = a.start_dataset + (_where_text(a.start_where) if a.start_where else "")
    ev = "; ".join(f"{s.dataset}.{s.date}{_where_text(s.where)} ({s.evntdesc})" for s in a.events)
    cn = "; ".join(f"CNSR {s.cnsr}: {s.dataset}.{s.date}{_where_text(s.where)} ({s.evntdesc})" for s in a.censors)
    unit = {"DAYS": "", "WEEKS": " / 7", "MONTHS": " / 30.4375", "YEARS": " / 365.25"}[a.unit]
    base = f"PARAMCD {a.paramcd}{pop}: "
    return {
        "STARTDT": f"{base}{a.start_date} of {start_src}",
        "ADT": f"{base}the earliest event date ({ev}); without an event, the latest censoring date ({cn})",
        "AVAL": f"{base}(ADT - STARTDT + 1){unit}",
        "CNSR": f"{base}0 for an event; otherwise the code of the censoring source that gave ADT ({cn})",
        "EVNTDESC": f"{base}the description of the source that gave ADT",
        "SRCDOM": f"{base}the dataset of the source record that gave ADT",
        "SRCVAR": f"{base}the variable of the source record that gave ADT",
        "SRCSEQ": f"{base}the sequence number of the source record that gave ADT",
        "PARAMCD": f"Set to '{a.paramcd}' for {a.param}", "PARAM": f"Set to '{a.param}'",
        "PARCAT1": f"Set to {_value_text(a.parcat1)}", "AVALU": f"Set to '{a.unit}'",
        "CNSDTDSC": f"{base}the censoring date description of the censoring source that gave ADT",
    }


def _tte_needs(a: TteArgs) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}

    def add(ds: str, names: Sequence[str]) -> None:
        out.setdefault(ds.upper(), [])
        out[ds.upper()] += [n for n in names if n and n not in out[ds.upper()]]

    add(a.subject_dataset, ["USUBJID", *where_variables(a.population)])
    add(a.start_dataset, ["USUBJID", a.start_date, *where_variables(a.start_where)])
    for src in [*a.events, *a.censors]:
        # a source condition may also name subject-level variables (joined from the subject dataset)
        add(src.dataset, ["USUBJID", src.date, src.srcseq or ""])
    return out


def _tte_sources(a: TteArgs) -> list[str]:
    names = [a.subject_dataset.upper(), a.start_dataset.upper()]
    names += [s.dataset.upper() for s in [*a.events, *a.censors]]
    return list(dict.fromkeys(names))


_register(Verb(
    name="derive_param_tte", args=TteArgs, run=_run_tte, outputs=_tte_outputs,
    describe=_describe_tte, admiral="derive_param_tte()", sources=_tte_sources, needs=_tte_needs))


# --------------------------------------------------------------------------------------------
# Verbs of the library's other modules (``cdisc_pipe/adam/verbs_*.py``) register themselves on
# import; importing them here makes ``VERBS`` complete wherever it is used.  They live in the
# package, reviewed and tested like the rest; a study's own verbs never do (docs/ADAM.md).


def _import_verb_modules() -> None:
    import importlib
    import pkgutil

    import cdisc_pipe.adam as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("verbs_"):
            importlib.import_module(f"cdisc_pipe.adam.{info.name}")


_import_verb_modules()
