"""Verbs for pharmacokinetic analysis datasets (ADaMIG NCA: ADPC, ADPP) and the text/record
building blocks they need; every one is generic and takes the study's values from the plan.

- ``derive_var_concat``: a text variable built from variables and literal text (PARAM, PARAMCD, ...);
- ``derive_var_iso_duration``: an ISO 8601 duration (PCELTM, PPSTINT, ...) as a number of days/hours;
- ``derive_var_relative_time``: the time between two date-times, fractions kept (ARRLT, AFRLT);
- ``derive_vars_exclusion_reason``: the first reason that applies, and its flag (NCAXFL/NCAwXRS);
- ``derive_param_dtype_copy``: a copy of selected records with DTYPE and new values (BLQ imputation).

Nothing here names a study, a test code or a term: the plan supplies them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdisc_pipe.adam.conditions import condition_mask, describe_where, where_variables
from cdisc_pipe.adam.derive_bds import parse_iso_duration_days
from cdisc_pipe.adam.settings import Where
from cdisc_pipe.adam.verbs import Context, StepArgs, Verb, _register
from cdisc_pipe.errors import Finding

__all__ = [
    "derive_var_concat", "derive_var_iso_duration", "derive_var_relative_time", "derive_vars_exclusion_reason",
    "derive_param_dtype_copy",
]

_NAME = r"^_?[A-Z][A-Z0-9_]{0,31}$"
Scalar = str | float | int | bool | None


def _quote(v: Scalar) -> str:
    if v is None:
        return "missing"
    if isinstance(v, str):
        return "'" + v + "'"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _text_column(values: np.ndarray, index: pd.Index) -> pd.Series:
    """Object column with None for missing."""
    col = pd.Series(values, index=index, dtype=object)
    return col.where(col.notna(), None)


# --------------------------------------------------------------------------------------------
# pure functions (DataFrame in, DataFrame out)


def _format_numbers(col: pd.Series) -> pd.Series:
    """Numbers as text: whole numbers without decimals (28.0 -> '28'), others as Python writes them."""
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64")
    codes, uniq = pd.factorize(values, use_na_sentinel=True)  # once per distinct value
    table = np.array([str(int(u)) if float(u).is_integer() else str(float(u)) for u in uniq] + [None], dtype=object)
    return pd.Series(table[codes], index=col.index, dtype=object)


_CASE = {"upper": "upper", "lower": "lower", "title": "title"}


def derive_var_concat(dataset: pd.DataFrame, new_var: str, parts: list["ConcatPart"],
                      max_length: int | None = None) -> pd.DataFrame:
    """Add ``new_var``: the parts joined in order.

    A literal part (``text``) is always written; a variable part is written with its ``prefix`` and
    ``suffix`` when the variable is not missing and left out (with them) when it is missing, unless
    ``required``: then the whole result is missing.  Numbers are written without trailing ``.0``.
    ``max_length`` keeps the first characters (e.g. 8 for PARAMCD).  admiral: none (``paste0()``).
    """
    n = len(dataset)
    acc = np.full(n, "", dtype=object)
    missing = np.zeros(n, dtype=bool)
    for part in parts:
        if part.text is not None:
            acc = acc + part.text
            continue
        col = dataset[part.variable]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            text = _format_numbers(col)
        else:
            text = col.astype(object).where(col.notna(), None)
            text = text.where(text.isna(), text.astype(str))
        if part.case != "none":
            text = text.where(text.isna(), getattr(text.astype("string").str, _CASE[part.case])().astype(object))
        present = text.notna().to_numpy()
        if part.required:
            missing |= ~present
        piece = np.where(present, part.prefix + text.fillna("").astype(str) + part.suffix, "")
        acc = acc + piece.astype(object)
    result = pd.Series(acc, index=dataset.index, dtype=object)
    if max_length is not None:
        result = result.str.slice(0, max_length)
    result = result.where(~missing, None)
    out = dataset.copy(deep=False)
    out[new_var] = result
    return out


_SECONDS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "weeks": 604800.0}


def derive_var_iso_duration(dataset: pd.DataFrame, new_var: str, source: str,
                            out_unit: str = "days") -> tuple[pd.DataFrame, pd.Series]:
    """Add ``new_var``: the ISO 8601 duration in ``source`` (``P7D``, ``PT4H``, ``-PT1H``, ``P1W``,
    ``P1DT12H``) as a number of ``out_unit``; a leading ``-`` gives a negative number.

    Years and months (ambiguous lengths) and other text are invalid: ``new_var`` missing.  Returns
    the frame and the mask of invalid values.  admiral: none (ADaMIG NCA nominal times).
    """
    days, invalid = parse_iso_duration_days(dataset[source])
    out = dataset.copy(deep=False)
    out[new_var] = (days * (86400.0 / _SECONDS[out_unit])).astype("float64")
    return out, invalid


def derive_var_relative_time(dataset: pd.DataFrame, new_var: str, start: str, end: str,
                             out_unit: str = "days") -> pd.DataFrame:
    """Add ``new_var`` = ``end`` - ``start`` in ``out_unit``, fractions kept (date-times, no +1).

    Negative before the reference (a pre-dose sample).  admiral: ``derive_vars_duration(floor_in =
    FALSE, add_one = FALSE)`` as in the ADPC template (AFRLT, ARRLT).
    """
    out = dataset.copy(deep=False)
    delta = pd.to_datetime(out[end]) - pd.to_datetime(out[start])
    out[new_var] = (delta.dt.total_seconds() / _SECONDS[out_unit]).astype("float64")
    return out


def derive_vars_exclusion_reason(dataset: pd.DataFrame, new_var: str, reasons: list["Reason"],
                                 flag_var: str | None = None, flag_value: str = "Y") -> pd.DataFrame:
    """Add ``new_var``: the first of ``reasons`` whose conditions hold (its ``reason_var`` value
    when given and not missing, else its ``reason`` text); missing when none holds.  ``flag_var``
    is ``flag_value`` where a reason was given.  admiral: none (ADaMIG NCA ``NCAXFL``/``NCAwXRS``).
    """
    n = len(dataset)
    chosen = np.full(n, -1)
    for i, r in enumerate(reasons):
        hit = condition_mask(dataset, r.where).to_numpy() & (chosen < 0)
        chosen[hit] = i
    table = np.array([r.reason for r in reasons] + [None], dtype=object)
    value = pd.Series(table[chosen], index=dataset.index, dtype=object)
    for i, r in enumerate(reasons):
        if r.reason_var:
            own = dataset[r.reason_var]
            use = (chosen == i) & own.notna().to_numpy()
            value = value.where(~use, own.astype(object))
    out = dataset.copy(deep=False)
    out[new_var] = value.where(value.notna(), None)
    if flag_var:
        out[flag_var] = _text_column(np.where(chosen >= 0, flag_value, None), dataset.index)
    return out


def derive_param_dtype_copy(dataset: pd.DataFrame, filter_mask: pd.Series, dtype: str,
                            set_values_to: dict[str, "CopyValue"], dtype_var: str = "DTYPE") -> pd.DataFrame:
    """Append a copy of the records selected by ``filter_mask``, with ``dtype_var`` = ``dtype`` and
    the variables of ``set_values_to`` set (a constant, another variable, or another variable times
    a factor); the original records keep their values (``dtype_var`` missing when it did not exist).

    The copies follow the original records (stable order).  admiral: the record-adding verbs
    (``derive_extreme_records()``, ``derive_param_*``) with ``set_values_to``; ADaMIG DTYPE.
    """
    out = dataset.copy(deep=False)
    if dtype_var not in out.columns:
        out[dtype_var] = pd.Series(None, index=out.index, dtype=object)
    for var, v in set_values_to.items():  # a variable new to the dataset is missing on the original records
        if var not in out.columns:
            numeric = (isinstance(v, CopyFrom) and (v.factor is not None or pd.api.types.is_numeric_dtype(
                out[v.variable]))) or (isinstance(v, (int, float)) and not isinstance(v, bool))
            out[var] = pd.Series(np.nan, index=out.index, dtype="float64") if numeric else \
                pd.Series(None, index=out.index, dtype=object)
    mask = filter_mask.reindex(out.index).fillna(False).astype(bool)
    if not mask.any():
        return out
    copies = out[mask].copy()
    copies[dtype_var] = dtype
    for var, v in set_values_to.items():
        if isinstance(v, CopyFrom):
            src = copies[v.variable]
            copies[var] = src if v.factor is None else pd.to_numeric(src, errors="coerce") * v.factor
        elif v is None:
            copies[var] = np.nan if pd.api.types.is_float_dtype(out[var]) else None
        else:
            copies[var] = v
    combined = pd.concat([out, copies], ignore_index=True)
    for c in combined.columns:  # keep text as object with None for missing
        col = combined[c]
        if col.dtype == object or pd.api.types.is_string_dtype(col):
            combined[c] = col.astype(object).where(col.notna(), None)
    return combined


# --------------------------------------------------------------------------------------------
# verbs (plan arguments, method text)


class ConcatPart(BaseModel):
    """One piece: literal ``text``, or a ``variable`` with optional ``prefix``/``suffix`` and case."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    variable: str | None = None
    prefix: str = ""
    suffix: str = ""
    case: Literal["none", "upper", "lower", "title"] = "none"
    required: bool = False  # a missing value makes the whole result missing

    @model_validator(mode="after")
    def _one(self) -> "ConcatPart":
        if (self.text is None) == (self.variable is None):
            raise ValueError("give text or variable (one of them)")
        if self.text is not None and (self.prefix or self.suffix or self.case != "none" or self.required):
            raise ValueError("prefix, suffix, case and required apply to a variable part")
        return self


class ConcatArgs(StepArgs):
    new_var: str = Field(pattern=_NAME)
    parts: list[ConcatPart] = Field(min_length=1)
    max_length: int | None = Field(default=None, ge=1)


def _describe_concat(a: ConcatArgs) -> dict[str, str]:
    pieces, optional, required = [], [], []
    for p in a.parts:
        if p.text is not None:
            pieces.append(_quote(p.text))
            continue
        name = p.variable + ("" if p.case == "none" else f" in {p.case} case")
        around = [x for x in (_quote(p.prefix) if p.prefix else "", name, _quote(p.suffix) if p.suffix else "") if x]
        pieces.append(" + ".join(around))
        (required if p.required else optional).append(p.variable)
    text = "Concatenation of " + " + ".join(pieces)
    if optional:
        text += f"; a missing {' or '.join(optional)} is left out with its surrounding text"
    if required:
        text += f"; missing when {' or '.join(required)} is missing"
    if a.max_length:
        text += f"; the first {a.max_length} characters"
    return {a.new_var: text}


_register(Verb(
    name="derive_var_concat", args=ConcatArgs,
    run=lambda df, a, ctx: derive_var_concat(df, a.new_var, a.parts, a.max_length),
    outputs=lambda a: [a.new_var], describe=_describe_concat, admiral="(no admiral counterpart: paste0())",
    reads=lambda a: [p.variable for p in a.parts if p.variable]))


class IsoDurationArgs(StepArgs):
    new_var: str = Field(pattern=_NAME)
    source: str  # ISO 8601 duration text, e.g. PCELTM
    out_unit: Literal["days", "hours", "minutes", "weeks"] = "days"


def _run_iso(df: pd.DataFrame, a: IsoDurationArgs, ctx: Context) -> pd.DataFrame:
    out, invalid = derive_var_iso_duration(df, a.new_var, a.source, a.out_unit)
    if invalid.any():
        bad = sorted(df.loc[invalid, a.source].astype(str).unique())[:5]
        ctx.findings.append(Finding(
            rule=f"ADAM.{ctx.dataset}.{a.source.lstrip('_')}", severity="Warning", dataset=ctx.dataset,
            variable=a.new_var, value=", ".join(bad),
            message=f"{int(invalid.sum())} {a.source} value(s) are not ISO 8601 day/time durations; "
                    f"{a.new_var} missing"))
    return out


_register(Verb(
    name="derive_var_iso_duration", args=IsoDurationArgs, run=_run_iso, outputs=lambda a: [a.new_var],
    describe=lambda a: {a.new_var: f"{a.source} (an ISO 8601 duration such as P7D or -PT1H; negative before the "
                                   f"reference) in {a.out_unit}; missing when {a.source} is missing or gives years "
                                   f"or months"},
    admiral="(no admiral counterpart: ISO 8601 durations)", reads=lambda a: [a.source]))


class RelativeTimeArgs(StepArgs):
    new_var: str = Field(pattern=_NAME)
    start: str  # the reference date-time (e.g. the dose)
    end: str  # the analysis date-time
    out_unit: Literal["days", "hours", "minutes", "weeks"] = "days"


_register(Verb(
    name="derive_var_relative_time", args=RelativeTimeArgs,
    run=lambda df, a, ctx: derive_var_relative_time(df, a.new_var, a.start, a.end, a.out_unit),
    outputs=lambda a: [a.new_var],
    describe=lambda a: {a.new_var: f"({a.end} - {a.start}) in {a.out_unit}, with fractions (negative when {a.end} "
                                   f"is before {a.start}); missing when either is missing"},
    admiral="derive_vars_duration(floor_in = FALSE, add_one = FALSE)", reads=lambda a: [a.start, a.end]))


class Reason(BaseModel):
    """One reason: the conditions, its text, and optionally a variable holding a more precise text."""

    model_config = ConfigDict(extra="forbid")
    where: Where = Field(min_length=1)
    reason: str
    reason_var: str | None = None  # its value when not missing, else ``reason``


class ExclusionArgs(StepArgs):
    new_var: str = Field(pattern=_NAME)  # the reason, e.g. NCA1XRS
    flag_var: str | None = Field(default=None, pattern=_NAME)  # e.g. NCAXFL
    flag_value: str = "Y"
    reasons: list[Reason] = Field(min_length=1)


def _describe_exclusion(a: ExclusionArgs) -> dict[str, str]:
    parts = []
    for r in a.reasons:
        what = (f"{r.reason_var} ({_quote(r.reason)} when {r.reason_var} is missing)" if r.reason_var
                else _quote(r.reason))
        parts.append(f"{what} when {describe_where(r.where)}")
    texts = {a.new_var: "The first reason that applies: " + "; ".join(parts) + "; missing when none applies"}
    if a.flag_var:
        texts[a.flag_var] = f"{_quote(a.flag_value)} when {a.new_var} is not missing (a reason applies)"
    return texts


_register(Verb(
    name="derive_vars_exclusion_reason", args=ExclusionArgs,
    run=lambda df, a, ctx: derive_vars_exclusion_reason(df, a.new_var, a.reasons, a.flag_var, a.flag_value),
    outputs=lambda a: [a.new_var] + ([a.flag_var] if a.flag_var else []), describe=_describe_exclusion,
    admiral="(no admiral counterpart: ADaMIG NCA exclusion flag and reason)",
    reads=lambda a: [*where_variables([c for r in a.reasons for c in r.where]),
                     *[r.reason_var for r in a.reasons if r.reason_var]]))


class CopyFrom(BaseModel):
    """A value from another variable of the copied record, optionally times ``factor``."""

    model_config = ConfigDict(extra="forbid")
    variable: str
    factor: float | None = None


CopyValue = CopyFrom | Scalar


class DtypeCopyArgs(StepArgs):
    filter: Where = Field(min_length=1)  # the records copied
    dtype: str = Field(min_length=1, max_length=8)
    dtype_var: str = Field(default="DTYPE", pattern=_NAME)
    set_values_to: dict[str, CopyValue] = Field(default_factory=dict)
    # records meeting ``filter`` with one of these missing are not copied (a Warning counts them)
    require: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_dtype(self) -> "DtypeCopyArgs":
        if self.dtype_var in self.set_values_to:
            raise ValueError(f"{self.dtype_var} is set by dtype, not set_values_to")
        return self


def _run_dtype_copy(df: pd.DataFrame, a: DtypeCopyArgs, ctx: Context) -> pd.DataFrame:
    wanted = condition_mask(df, a.filter)
    complete = pd.Series(True, index=df.index)
    for v in a.require:
        complete &= df[v].notna()
    lacking = wanted & ~complete
    if lacking.any():
        ctx.findings.append(Finding(
            rule=f"ADAM.{ctx.dataset}.{a.dtype_var}", severity="Warning", dataset=ctx.dataset, variable=a.dtype_var,
            value=a.dtype, message=f"{int(lacking.sum())} record(s) where {describe_where(a.filter)} lack "
                                   f"{' or '.join(a.require)}: no {a.dtype} record"))
    return derive_param_dtype_copy(df, wanted & complete, a.dtype, a.set_values_to, a.dtype_var)


def _copy_value_text(v: CopyValue) -> str:
    if isinstance(v, CopyFrom):
        return v.variable + (f" x {v.factor:g}" if v.factor is not None else "")
    return _quote(v)


def _describe_dtype_copy(a: DtypeCopyArgs) -> dict[str, str]:
    cond = describe_where(a.filter) + (f" and {' and '.join(r + ' is not missing' for r in a.require)}"
                                       if a.require else "")
    texts = {a.dtype_var: f"'{a.dtype}' on a record added as a copy of each record where {cond}; "
                          f"missing on the other records"}
    for var, v in a.set_values_to.items():
        texts[var] = f"on the {a.dtype_var} '{a.dtype}' records: {_copy_value_text(v)}"
    return texts


_register(Verb(
    name="derive_param_dtype_copy", args=DtypeCopyArgs, run=_run_dtype_copy,
    outputs=lambda a: [a.dtype_var, *a.set_values_to], describe=_describe_dtype_copy,
    admiral="derive_extreme_records() / derive_param_*() with set_values_to (records added, ADaMIG DTYPE)",
    reads=lambda a: [*where_variables(a.filter), *a.require,
                     *[v.variable for v in a.set_values_to.values() if isinstance(v, CopyFrom)]]))
