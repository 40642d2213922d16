"""Verbs for pharmacokinetic analysis datasets (ADaMIG NCA: ADPC, ADPP) and the text/record
building blocks they need; every one is generic and takes the study's values from the plan.

- ``derive_var_concat``: a text variable built from variables and literal text (PARAM, PARAMCD, ...);
- ``derive_var_iso_duration``: an ISO 8601 duration (PCELTM, PPSTINT, ...) as a number of days/hours;
- ``derive_var_relative_time``: the time between two date-times, fractions kept (ARRLT, AFRLT);
- ``derive_vars_exclusion_reason``: the first reason that applies, and its flag (NCAXFL/NCAwXRS);
- ``derive_param_dtype_copy``: a copy of selected records with DTYPE and new values (BLQ imputation);
- ``derive_vars_period``: the period (APERIOD) a record's date falls in, from the subject's period
  dates (ADSL APxxSDTM/APxxEDTM), and that period's variables (TRTP = TRTxxP, TRTA = TRTxxA, ...).

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
from cdisc_pipe.adam.verbs import _NAME, Context, StepArgs, Verb, _needs, _register
from cdisc_pipe.errors import Finding

__all__ = [
    "derive_var_concat", "derive_var_iso_duration", "derive_var_relative_time", "derive_vars_exclusion_reason",
    "derive_param_dtype_copy", "derive_vars_period",
]

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


def period_template(template: str, period: int) -> str:
    """A variable name for one period: ``{xx}`` -> the two-digit number (``TRT{xx}A`` -> ``TRT01A``),
    ``{x}`` -> the number as written (``1``)."""
    return template.replace("{xx}", f"{period:02d}").replace("{x}", str(period))


def derive_vars_period(dataset: pd.DataFrame, periods_frame: pd.DataFrame, date: str, periods: list[int],
                       start: str, end: str | None, period_var: str, new_vars: dict[str, str],
                       period_text: dict[str, str], by_vars: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """Add ``period_var``: the period whose start (``start`` with ``{xx}`` = the period) is the latest
    on or before the record's ``date`` (and, with ``end``, whose end is on or after it), from the
    record's ``by_vars`` group of ``periods_frame`` (one record per group, e.g. ADSL per USUBJID);
    ``new_vars`` {target: template} copy that period's variables (``TRTA: TRT{xx}A``) and
    ``period_text`` {target: text} write a text with ``{xx}``/``{x}`` (``APERIODC: PERIOD {xx}``).

    Dates compare as stored (a date is its midnight).  A record without ``date``, or whose date is in
    no period, gets missing values; the second returned value flags the latter (date present, no
    period).  admiral: ``derive_vars_joined()`` on ``create_period_dataset()`` (APxxSDT/APxxEDT).
    """
    wanted = list(dict.fromkeys([*by_vars] + [period_template(t, p) for p in periods
                                              for t in [start, *([end] if end else []), *new_vars.values()]]))
    ref = periods_frame.loc[:, wanted].drop_duplicates(by_vars)
    joined = dataset.loc[:, by_vars].merge(ref, on=by_vars, how="left", sort=False)
    when = pd.to_datetime(dataset[date]).to_numpy(dtype="datetime64[ns]")
    n = len(dataset)
    chosen = np.zeros(n, dtype="int64")  # 0 = no period
    best = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    for p in periods:  # a handful of periods: one vectorised pass each
        s = pd.to_datetime(joined[period_template(start, p)]).to_numpy(dtype="datetime64[ns]")
        hit = ~np.isnat(s) & ~np.isnat(when) & (s <= when)
        if end:
            e = pd.to_datetime(joined[period_template(end, p)]).to_numpy(dtype="datetime64[ns]")
            hit &= np.isnat(e) | (when <= e)
        hit &= np.isnat(best) | (s >= best)
        chosen[hit], best[hit] = p, s[hit]
    out = dataset.copy(deep=False)
    out[period_var] = pd.Series(np.where(chosen > 0, chosen, np.nan), index=dataset.index, dtype="float64")
    for target, template in new_vars.items():
        cols = {p: joined[period_template(template, p)] for p in periods}
        numeric = all(pd.api.types.is_numeric_dtype(c) and not pd.api.types.is_bool_dtype(c) for c in cols.values())
        dates = all(pd.api.types.is_datetime64_any_dtype(c) for c in cols.values())
        if numeric or dates:
            value = pd.Series(np.nan if numeric else pd.NaT, index=dataset.index,
                              dtype="float64" if numeric else "datetime64[ns]")
        else:
            value = pd.Series(None, index=dataset.index, dtype=object)
        for p, col in cols.items():
            m = chosen == p
            value[m] = col.to_numpy()[m]
        out[target] = value if (numeric or dates) else value.where(value.notna(), None)
    for target, text in period_text.items():
        table = np.array([None] + [period_template(text, p) for p in periods], dtype=object)
        index = np.zeros(n, dtype="int64")
        for i, p in enumerate(periods, start=1):
            index[chosen == p] = i
        out[target] = _text_column(table[index], dataset.index)
    unmatched = pd.Series(~np.isnat(when) & (chosen == 0), index=dataset.index)
    return out, unmatched


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


class PeriodArgs(StepArgs):
    date: str  # the record's date-time (or date), e.g. PCRFTDTM: the reference dose of a PK profile
    periods: list[int] = Field(min_length=1)  # the period numbers xx, e.g. [1, 2]
    dataset_add: str = "ADSL"  # one record per by_vars group holding the period variables
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    start: str = "AP{xx}SDTM"  # the period start variable, {xx} = 01, 02, ...
    end: str | None = "AP{xx}EDTM"  # the period end variable; null: a period lasts until a later one starts
    period_var: str = Field(default="APERIOD", pattern=_NAME)
    new_vars: dict[str, str] = Field(default_factory=dict)  # {TRTA: TRT{xx}A}: that period's variable
    period_text: dict[str, str] = Field(default_factory=dict)  # {APERIODC: "PERIOD {xx}"}

    @model_validator(mode="after")
    def _templates(self) -> "PeriodArgs":
        if len(set(self.periods)) != len(self.periods) or min(self.periods) < 1 or max(self.periods) > 99:
            raise ValueError("periods must be distinct numbers from 1 to 99")
        for what, template in [("start", self.start), ("end", self.end or "{xx}"),
                               *[(f"new_vars.{k}", v) for k, v in self.new_vars.items()]]:
            if "{xx}" not in template and "{x}" not in template:
                raise ValueError(f"{what} must name the period with {{xx}} or {{x}} (e.g. TRT{{xx}}A), not {template!r}")
        clash = {self.period_var} & (set(self.new_vars) | set(self.period_text)) or set(self.new_vars) & set(self.period_text)
        if clash:
            raise ValueError(f"a variable is written twice: {sorted(clash)}")
        return self


def _run_period(df: pd.DataFrame, a: PeriodArgs, ctx: Context) -> pd.DataFrame:
    out, unmatched = derive_vars_period(df, ctx.frame(a.dataset_add), a.date, a.periods, a.start, a.end,
                                        a.period_var, a.new_vars, a.period_text, a.by_vars)
    if unmatched.any():
        ctx.findings.append(Finding(
            rule=f"ADAM.{ctx.dataset}.{a.period_var}", severity="Warning", dataset=ctx.dataset, variable=a.period_var,
            value=str(int(unmatched.sum())),
            message=f"{int(unmatched.sum())} record(s) whose {a.date} falls in no period of {a.dataset_add.upper()} "
                    f"({', '.join(period_template(a.start, p) for p in a.periods)}): {a.period_var} missing"))
    return out


def _describe_period(a: PeriodArgs) -> dict[str, str]:
    span = f"{a.start} (xx = {', '.join(f'{p:02d}' for p in a.periods)})"
    rule = (f"the period of {a.dataset_add.upper()} (per {', '.join(a.by_vars)}) whose {span} is the latest on or "
            f"before {a.date}" + (f" and whose {a.end} is missing or on or after {a.date}" if a.end else ""))
    texts = {a.period_var: f"The number xx of {rule}; missing when {a.date} is missing or in no period"}
    for target, template in a.new_vars.items():
        texts[target] = f"{a.dataset_add.upper()}.{template} with xx = {a.period_var} ({rule})"
    for target, text in a.period_text.items():
        texts[target] = f"{_quote(text)} with xx = {a.period_var} (two digits); missing when {a.period_var} is missing"
    return texts


_register(Verb(
    name="derive_vars_period", args=PeriodArgs, run=_run_period,
    outputs=lambda a: [a.period_var, *a.new_vars, *a.period_text], describe=_describe_period,
    admiral="derive_vars_joined() on create_period_dataset() (APxxSDT/APxxEDT)",
    sources=lambda a: [a.dataset_add.upper()], reads=lambda a: [a.date, *a.by_vars],
    needs=lambda a: _needs(a.dataset_add, a.by_vars, [period_template(t, p) for p in a.periods
                                                      for t in [a.start, *([a.end] if a.end else []),
                                                                *a.new_vars.values()]])))
