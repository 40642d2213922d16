"""The vocabulary of vectorised checks a YAML rule can use.

Each operator is a function ``(ctx: CheckContext, params) -> Hits`` registered with
:func:`operator` together with the pydantic model of its parameters (``extra="forbid"``), so a rule
file with a wrong parameter fails to load with a clear message.  Operators never loop over records:
they work on whole columns, on distinct values, or on groupby aggregates.

Variable names in parameters may use ``--`` for the domain prefix (``--DTC``) and globs (``*DTC``).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdisc_pipe.validate.context import (
    CheckContext, Hits, RuleSkipped, as_text, complete_date, concat_hits, empty_hits, first_of_group, group_codes,
    is_null, map_unique, regex_full, subject_lookup,
)
from cdisc_pipe.validate.model import Condition


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operator: str


OperatorFn = Callable[[CheckContext, Any], Hits]
OPERATORS: dict[str, tuple[type[Params], OperatorFn]] = {}


def operator(name: str, params: type[Params]) -> Callable[[OperatorFn], OperatorFn]:
    """Register ``fn`` as check operator ``name`` with parameter model ``params``."""
    def deco(fn: OperatorFn) -> OperatorFn:
        OPERATORS[name] = (params, fn)
        return fn
    return deco


# ------------------------------------------------------------------ ISO 8601 patterns
_D = r"(?:\d{4}|-)(?:-(?:\d{2}|-)(?:-(?:\d{2}|-))?)?"
_T = r"T(?:\d{2}|-)(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::\d{2})?)?"
# Right-truncated or with dashes for missing components (2019---15); validity of month/day checked apart.
ISO_DATETIME = re.compile(rf"^\d{{4}}(?:-(?:\d{{2}}|-)(?:-(?:\d{{2}}|-)(?:{_T})?)?)?$")
ISO_DURATION = re.compile(
    r"^-?P(?=\d|T\d)(?:\d+(?:[.,]\d+)?Y)?(?:\d+(?:[.,]\d+)?M)?(?:\d+(?:[.,]\d+)?W)?(?:\d+(?:[.,]\d+)?D)?"
    r"(?:T(?=\d)(?:\d+(?:[.,]\d+)?H)?(?:\d+(?:[.,]\d+)?M)?(?:\d+(?:[.,]\d+)?S)?)?$")


def _iso_valid(u: pd.Series) -> np.ndarray:
    """Distinct --DTC values: pattern, then month 01-12, day valid for the month, hour < 24, minute < 60."""
    ok = u.str.fullmatch(ISO_DATETIME).fillna(False).to_numpy(dtype=bool)
    year = pd.to_numeric(u.str.slice(0, 4), errors="coerce")
    month = pd.to_numeric(u.str.slice(5, 7), errors="coerce")
    day = pd.to_numeric(u.str.slice(8, 10), errors="coerce")
    hour = pd.to_numeric(u.str.slice(11, 13), errors="coerce")
    minute = pd.to_numeric(u.str.slice(14, 16), errors="coerce")
    sec = pd.to_numeric(u.str.slice(17, 19), errors="coerce")
    bad_m = month.notna() & ((month < 1) | (month > 12))
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    mdays = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    dim = pd.Series(mdays[(month.fillna(1).clip(1, 12).astype(int) - 1).to_numpy()], index=u.index)
    dim = dim + ((month == 2) & leap).astype(int)
    bad_d = day.notna() & ((day < 1) | (day > dim))
    bad_t = (hour.notna() & (hour > 23)) | (minute.notna() & (minute > 59)) | (sec.notna() & (sec > 59))
    return ok & ~(bad_m | bad_d | bad_t).to_numpy(dtype=bool)


def _iso_duration_valid(u: pd.Series) -> np.ndarray:
    return u.str.fullmatch(ISO_DURATION).fillna(False).to_numpy(dtype=bool)


def _iso_interval_valid(u: pd.Series) -> np.ndarray:
    parts = u.str.split("/", n=1, expand=True)
    if parts.shape[1] < 2:
        return _iso_valid(u) | _iso_duration_valid(u)
    a, b = parts[0].astype("str"), parts[1].astype("str")
    one = _iso_valid(u) | _iso_duration_valid(u)
    two = (_iso_valid(a) | _iso_duration_valid(a)) & (_iso_valid(b) | _iso_duration_valid(b)) & b.notna().to_numpy()
    return np.where(b.notna().to_numpy(), two, one)


# ------------------------------------------------------------------ conditions
def condition_mask(df: pd.DataFrame, cond: Condition, ctx: CheckContext) -> np.ndarray:
    """Vectorised evaluation of one ``when`` condition; an absent variable -> RuleSkipped, or no
    filter when the condition is ``optional`` (e.g. --STAT: a dataset without it has no NOT DONE record)."""
    try:
        col = ctx.one(cond.variable)
    except RuleSkipped:
        if cond.optional:
            return np.ones(len(df), dtype=bool)
        raise
    s = df[col]
    null = is_null(s)
    if cond.op == "isnull":
        return null
    if cond.op == "notnull":
        return ~null
    if cond.op in ("eq", "ne", "in", "notin"):
        vals = [str(v) for v in cond.values]
        isin = as_text(s).isin(vals).to_numpy(dtype=bool) & ~null
        return isin if cond.op in ("eq", "in") else ~isin
    if cond.op == "regex":
        return ~null & regex_full(as_text(s), str(cond.values[0]))
    num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    ref = float(cond.values[0])
    with np.errstate(invalid="ignore"):
        res = {"gt": num > ref, "ge": num >= ref, "lt": num < ref, "le": num <= ref}[cond.op]
    return np.asarray(res, dtype=bool)


# ------------------------------------------------------------------ record-level operators
class VarsParams(Params):
    variables: list[str]


@operator("not_null", VarsParams)
def not_null(ctx: CheckContext, p: VarsParams) -> Hits:
    """Each variable is populated (missing or blank values fire)."""
    parts = []
    for col in ctx.resolve_many(p.variables):
        parts.append(ctx.hits(is_null(ctx.df[col]), col, None))
    return concat_hits(parts)


@operator("is_null", VarsParams)
def must_be_null(ctx: CheckContext, p: VarsParams) -> Hits:
    """Each variable is empty (populated values fire)."""
    parts = []
    for col in ctx.resolve_many(p.variables):
        s = ctx.df[col]
        parts.append(ctx.hits(~is_null(s), col, s))
    return concat_hits(parts)


class LabelSelect(BaseModel):
    """Variables chosen by metadata: names matching ``variables`` (globs) whose label contains the
    regular expression ``label`` (case-insensitive; the label in the file, else define.xml's, else the
    spec's)."""

    model_config = ConfigDict(extra="forbid")
    variables: list[str] = Field(default_factory=lambda: ["*"])
    label: str

    @field_validator("label")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return v


class InValuesParams(Params):
    variables: list[str] = Field(default_factory=list)
    values: list[Any]
    allow_null: bool = True  # False: a missing value fires too
    # more variables, chosen by their labels (checked in addition to ``variables``)
    by_label: LabelSelect | None = None

    @model_validator(mode="after")
    def _some_variables(self) -> "InValuesParams":
        if not self.variables and self.by_label is None:
            raise ValueError("give variables or by_label")
        return self


def _variables(ctx: CheckContext, names: list[str], by_label: LabelSelect | None) -> list[str]:
    """``names`` (patterns) plus the variables ``by_label`` selects; RuleSkipped when none is present."""
    cols = ctx.resolve_many(names, required=False) if names else []
    if by_label is not None:
        cols += [c for c in ctx.resolve_by_label(by_label.variables, by_label.label) if c not in cols]
    if not cols:
        what = ", ".join(names) + (" or " if names and by_label else "") + \
            (f"variables {'/'.join(by_label.variables)} labelled /{by_label.label}/" if by_label else "")
        raise RuleSkipped(f"{ctx.dataset}: none of {what} present")
    return cols


@operator("in_values", InValuesParams)
def in_values(ctx: CheckContext, p: InValuesParams) -> Hits:
    """Populated values are among ``values`` (compared as text)."""
    allowed = [str(v) for v in p.values]
    parts = []
    for col in _variables(ctx, p.variables, p.by_label):
        t = as_text(ctx.df[col])
        null = is_null(ctx.df[col])
        bad = ~t.isin(allowed).to_numpy(dtype=bool) & (~null if p.allow_null else True)
        parts.append(ctx.hits(bad, col, t))
    return concat_hits(parts)


@operator("not_in_values", InValuesParams)
def not_in_values(ctx: CheckContext, p: InValuesParams) -> Hits:
    """Populated values equal to one of ``values`` fire (compared as text, numbers without .0)."""
    banned = [str(v) for v in p.values]
    parts = []
    for col in _variables(ctx, p.variables, p.by_label):
        t = as_text(ctx.df[col])
        parts.append(ctx.hits(t.isin(banned).to_numpy(dtype=bool), col, t))
    return concat_hits(parts)


class RegexParams(Params):
    variables: list[str]
    pattern: str
    must_match: bool = True


@operator("regex", RegexParams)
def regex(ctx: CheckContext, p: RegexParams) -> Hits:
    """Populated values match (or, with ``must_match: false``, do not contain) ``pattern``."""
    rx = re.compile(p.pattern)
    parts = []
    for col in ctx.resolve_many(p.variables):
        s = ctx.df[col]
        if p.must_match:
            bad = ~regex_full(s, rx)
        else:
            bad = map_unique(s.astype("str"), lambda u: u.str.contains(rx).fillna(False).to_numpy(dtype=bool),
                             False).astype(bool)
        parts.append(ctx.hits(bad & ~is_null(s), col, s))
    return concat_hits(parts)


class IsoParams(Params):
    variables: list[str]
    kind: Literal["datetime", "duration", "interval"] = "datetime"


@operator("iso8601", IsoParams)
def iso8601(ctx: CheckContext, p: IsoParams) -> Hits:
    """Populated values are ISO 8601 date/times (partial allowed), durations or intervals."""
    fn = {"datetime": _iso_valid, "duration": _iso_duration_valid, "interval": _iso_interval_valid}[p.kind]
    parts = []
    for col in ctx.resolve_many(p.variables):
        s = ctx.df[col]
        if not (pd.api.types.is_string_dtype(s.dtype) or s.dtype == object):
            continue  # numeric ADaM dates are not ISO text
        bad = ~map_unique(s, fn, True).astype(bool)
        parts.append(ctx.hits(bad, col, s))
    return concat_hits(parts)


class MaxBytesParams(Params):
    variables: list[str] = Field(default_factory=lambda: ["*"])
    max: int = 200


@operator("max_bytes", MaxBytesParams)
def max_bytes(ctx: CheckContext, p: MaxBytesParams) -> Hits:
    """Character values are at most ``max`` bytes in UTF-8."""
    parts = []
    for col in ctx.resolve_many(p.variables):
        s = ctx.df[col]
        if not (pd.api.types.is_string_dtype(s.dtype) or s.dtype == object):
            continue
        bound = ctx.byte_bound(col)
        if bound is not None and bound <= p.max:  # no value can be longer: nothing to measure
            continue
        n = ctx.text_bytes(col)[0]
        parts.append(ctx.hits(n > p.max, col, s, detail=n, detail_prefix="length "))
    return concat_hits(parts)


@operator("ascii", MaxBytesParams)
def ascii_only(ctx: CheckContext, p: MaxBytesParams) -> Hits:
    """Character values hold ASCII characters only."""
    parts = []
    for col in ctx.resolve_many(p.variables):
        s = ctx.df[col]
        if not (pd.api.types.is_string_dtype(s.dtype) or s.dtype == object):
            continue
        bad = ctx.text_bytes(col)[1]  # missing -> False
        parts.append(ctx.hits(bad, col, s))
    return concat_hits(parts)


class NumberRangeParams(Params):
    variables: list[str]
    min: float | None = None
    max: float | None = None
    integer: bool = False


@operator("number_range", NumberRangeParams)
def number_range(ctx: CheckContext, p: NumberRangeParams) -> Hits:
    """Populated values are numbers within [min, max] (and whole numbers if ``integer``)."""
    parts = []
    for col in ctx.resolve_many(p.variables):
        s = ctx.df[col]
        num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        pop = ~is_null(s)
        bad = pop & np.isnan(num)
        with np.errstate(invalid="ignore"):
            if p.min is not None:
                bad = bad | (num < p.min)
            if p.max is not None:
                bad = bad | (num > p.max)
            if p.integer:
                bad = bad | (pop & ~np.isnan(num) & (num != np.round(num)))
        parts.append(ctx.hits(bad, col, s))
    return concat_hits(parts)


class CompareParams(Params):
    left: str
    op: Literal["eq", "ne", "lt", "le", "gt", "ge"]
    right: str | None = None  # a variable
    value: Any = None  # or a constant
    numeric: bool = True


@operator("compare", CompareParams)
def compare(ctx: CheckContext, p: CompareParams) -> Hits:
    """Records where ``left op right`` does NOT hold fire (both sides populated)."""
    lcol = ctx.one(p.left)
    ls = ctx.df[lcol]
    if p.right is not None:
        rcol = ctx.one(p.right)
        rs = ctx.df[rcol]
    elif p.value is not None:
        rcol, rs = None, pd.Series(p.value, index=ctx.df.index)
    else:
        raise RuleSkipped("compare needs right or value")
    if p.numeric:
        a = pd.to_numeric(ls, errors="coerce").to_numpy(dtype=float)
        b = pd.to_numeric(rs, errors="coerce").to_numpy(dtype=float)
        both = ~np.isnan(a) & ~np.isnan(b)
    else:
        a, b = as_text(ls).to_numpy(dtype=object), as_text(rs).to_numpy(dtype=object)
        both = ~is_null(ls) & ~is_null(rs)
        a = np.where(both, a, ""); b = np.where(both, b, "")
    with np.errstate(invalid="ignore"):
        ok = {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[p.op]
    bad = both & ~np.asarray(ok, dtype=bool)
    return ctx.hits(bad, lcol, ls, None if rcol is None else rs, detail_prefix=f"{rcol}=")


class DateOrderParams(Params):
    start: str
    end: str


@operator("date_order", DateOrderParams)
def date_order(ctx: CheckContext, p: DateOrderParams) -> Hits:
    """Start <= end on the same record, comparing the precision both dates have (date, else date-time)."""
    scol, ecol = ctx.one(p.start), ctx.one(p.end)
    s, e = ctx.df[scol], ctx.df[ecol]
    sd, ed = complete_date(s), complete_date(e)
    bad = (sd > ed).to_numpy(dtype=bool).copy()
    if pd.api.types.is_string_dtype(s.dtype) and pd.api.types.is_string_dtype(e.dtype):
        # same calendar day, both with times of the same precision: compare the text
        st, et = s.astype("str"), e.astype("str")
        same_len = (st.str.len() == et.str.len()).fillna(False).to_numpy(dtype=bool)
        has_t = st.str.contains("T", regex=False).fillna(False).to_numpy(dtype=bool)
        eq_day = (sd == ed).to_numpy(dtype=bool)
        bad = bad | (eq_day & same_len & has_t & (st > et).fillna(False).to_numpy(dtype=bool))
    return ctx.hits(bad, scol, s, e, detail_prefix=f"{ecol}=")


class DateRefParams(Params):
    variables: list[str]
    ref_dataset: str = "DM"
    ref_variable: str
    op: Literal["le", "ge", "lt", "gt"] = "le"


@operator("date_vs_reference", DateRefParams)
def date_vs_reference(ctx: CheckContext, p: DateRefParams) -> Hits:
    """Each complete date satisfies ``date op ref`` with the subject's reference date (e.g. DM.DTHDTC)."""
    ref = subject_lookup(ctx.df, ctx.other(p.ref_dataset), p.ref_variable)
    rd = subject_lookup(ctx.df, ctx.other(p.ref_dataset), p.ref_variable, per_subject=complete_date)
    parts = []
    for col in ctx.resolve_many(p.variables):
        d = complete_date(ctx.df[col])
        with np.errstate(invalid="ignore"):
            ok = {"le": d <= rd, "ge": d >= rd, "lt": d < rd, "gt": d > rd}[p.op].to_numpy(dtype=bool)
        bad = d.notna().to_numpy() & rd.notna().to_numpy() & ~ok
        parts.append(ctx.hits(bad, col, ctx.df[col], ref, detail_prefix=f"{p.ref_dataset}.{p.ref_variable}="))
    return concat_hits(parts)


class StudyDayParams(Params):
    dtc: str
    dy: str
    ref_dataset: str = "DM"
    ref_variable: str = "RFSTDTC"


def study_day(dates: pd.Series, ref: pd.Series) -> np.ndarray:
    """SDTM study day: date - ref + 1 on or after ref, date - ref before (no day 0); NaN if incomplete."""
    d = complete_date(dates)
    r = complete_date(ref)
    diff = ((d - r).dt.days).to_numpy(dtype=float)
    return np.where(diff >= 0, diff + 1, diff)


@operator("study_day", StudyDayParams)
def study_day_check(ctx: CheckContext, p: StudyDayParams) -> Hits:
    """--DY equals the day computed from --DTC and the subject's RFSTDTC (when both dates are complete).
    A date after the package's data cut-off (TS DCUTDTC) has no study day by design (cdisc_pipe.cutoff)."""
    from cdisc_pipe.cutoff import after_cutoff, from_ts

    dtc, dy = ctx.one(p.dtc), ctx.one(p.dy)
    ref = subject_lookup(ctx.df, ctx.other(p.ref_dataset), p.ref_variable, per_subject=complete_date)
    expected = study_day(ctx.df[dtc], ref)
    cut = from_ts(ctx.data.datasets.get("TS"))
    if cut:
        expected = np.where(after_cutoff(ctx.df[dtc], cut).to_numpy(dtype=bool), np.nan, expected)
    actual = pd.to_numeric(ctx.df[dy], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isnan(expected) & (np.isnan(actual) | (actual != expected))
    return ctx.hits(bad, dy, ctx.df[dy], expected, detail_prefix="expected ")


class DerivedParams(Params):
    target: str
    expression: Literal["difference", "percent_change", "sum", "product", "ratio"]
    args: list[str] = Field(min_length=2, max_length=2)
    tolerance: float = 1e-6


@operator("derived", DerivedParams)
def derived(ctx: CheckContext, p: DerivedParams) -> Hits:
    """``target`` equals a value derived from two variables (e.g. CHG = AVAL - BASE), within tolerance."""
    t = ctx.one(p.target)
    a, b = (pd.to_numeric(ctx.df[ctx.one(x)], errors="coerce").to_numpy(dtype=float) for x in p.args)
    with np.errstate(divide="ignore", invalid="ignore"):
        exp = {"difference": a - b, "percent_change": (a - b) / b * 100, "sum": a + b, "product": a * b,
               "ratio": a / b}[p.expression]
    exp = np.where(np.isfinite(exp), exp, np.nan)
    act = pd.to_numeric(ctx.df[t], errors="coerce").to_numpy(dtype=float)
    tol = p.tolerance * np.maximum(1.0, np.abs(np.nan_to_num(exp)))
    # a null target is allowed (CHG/PCHG are often left null at and before baseline); a value must match
    bad = ~np.isnan(act) & ~np.isnan(exp) & (np.abs(act - np.nan_to_num(exp)) > tol)
    return ctx.hits(bad, t, ctx.df[t], np.round(exp, 6), detail_prefix="expected ")


# ------------------------------------------------------------------ group-level operators
class UniqueParams(Params):
    keys: list[str] | Literal["spec"]


@operator("unique", UniqueParams)
def unique(ctx: CheckContext, p: UniqueParams) -> Hits:
    """No two records share the key values (``keys: spec`` = the dataset's keys in the spec/define)."""
    if p.keys == "spec":
        keys: list[str] = []
        if ctx.spec is not None and ctx.dataset in ctx.spec.datasets:
            keys = list(ctx.spec.datasets[ctx.dataset].keys)
        else:
            dd = ctx.data.define_dataset(ctx.dataset or "")
            if dd is not None:
                keys = [v.name for v in sorted(dd.variables.values(), key=lambda v: v.key_sequence or 0)
                        if v.key_sequence]
        if not keys:
            raise RuleSkipped("no keys in spec or define.xml")
        missing = [k for k in keys if k not in ctx.df.columns]
        if missing:
            raise RuleSkipped(f"key variables absent: {', '.join(missing)}")
    else:
        keys = [ctx.one(k) for k in p.keys]
    dup = ~first_of_group(group_codes(ctx.df, keys))
    return ctx.hits(dup, ",".join(keys), tuple(ctx.df[k] for k in keys))


class ExistsParams(Params):
    variables: list[str]
    ref_dataset: str
    ref_variables: list[str]
    ref_when: list[Condition] = Field(default_factory=list)


@operator("exists_in", ExistsParams)
def exists_in(ctx: CheckContext, p: ExistsParams) -> Hits:
    """The combination of ``variables`` exists among ``ref_variables`` of ``ref_dataset``."""
    cols = [ctx.one(v) for v in p.variables]
    ref = ctx.other(p.ref_dataset)
    for rv in p.ref_variables:
        if rv not in ref.columns:
            raise RuleSkipped(f"{p.ref_dataset}.{rv} absent")
    if p.ref_when:
        sub = CheckContext(p.ref_dataset, ref, None, ctx.data, ctx.spec, ctx.settings)
        m = np.ones(len(ref), dtype=bool)
        for c in p.ref_when:
            m = m & (condition_mask(ref, c, sub))
        ref = ref.loc[m]
    populated = np.all([~is_null(ctx.df[c]) for c in cols], axis=0)
    if len(cols) == 1:
        found = as_text(ctx.df[cols[0]]).isin(as_text(ref[p.ref_variables[0]]).dropna().unique()).to_numpy(dtype=bool)
    else:
        left = pd.MultiIndex.from_arrays([as_text(ctx.df[c]) for c in cols])
        right = pd.MultiIndex.from_arrays([as_text(ref[c]) for c in p.ref_variables])
        found = left.isin(right)
    bad = populated & ~found
    return ctx.hits(bad, ",".join(cols), tuple(ctx.df[c] for c in cols))


class OneToOneParams(Params):
    left: str
    right: str


@operator("one_to_one", OneToOneParams)
def one_to_one(ctx: CheckContext, p: OneToOneParams) -> Hits:
    """``left`` and ``right`` map one to one (e.g. VISITNUM/VISIT, PARAMCD/PARAM); one finding per
    offending distinct pair."""
    l, r = ctx.one(p.left), ctx.one(p.right)
    both = ~is_null(ctx.df[l]) & ~is_null(ctx.df[r])  # a property of the pair of values
    lc, rc = group_codes(ctx.df, [l]), group_codes(ctx.df, [r])
    # the first record of each distinct pair (both populated): a value of either side in more than
    # one of these pairs breaks the one-to-one mapping
    pairs = first_of_group(group_codes(pd.DataFrame({"l": lc, "r": rc}, copy=False), ["l", "r"])) & both
    bad_l = np.bincount(lc[pairs], minlength=int(lc.max()) + 1 if len(lc) else 0) > 1
    bad_r = np.bincount(rc[pairs], minlength=int(rc.max()) + 1 if len(rc) else 0) > 1
    mask = pairs & (bad_l[lc] | bad_r[rc]) if len(lc) else pairs
    return ctx.hits(mask, f"{l},{r}", (ctx.df[l], ctx.df[r]))


class ConsistentParams(Params):
    variable: str
    by: list[str]
    optional_by: list[str] = Field(default_factory=list)


@operator("consistent_within", ConsistentParams)
def consistent_within(ctx: CheckContext, p: ConsistentParams) -> Hits:
    """``variable`` has one value within each ``by`` group (missing counts as a value); one finding
    per group and value."""
    v = ctx.one(p.variable)
    by = [ctx.one(b) for b in p.by] + ctx.resolve_many(p.optional_by, required=False)
    gid = group_codes(ctx.df, by)
    # the first record of each (group, value): counted per group
    first = first_of_group(group_codes(pd.DataFrame({"g": gid, "v": group_codes(ctx.df, [v])}, copy=False), ["g", "v"]))
    n_values = np.bincount(gid[first], minlength=int(gid.max()) + 1 if len(gid) else 0)
    bad = first & (n_values[gid] > 1) if len(gid) else first
    return ctx.hits(bad, v, ctx.df[v], tuple(ctx.df[b] for b in by), detail_prefix="in group ")


class MaxPerGroupParams(Params):
    by: list[str]
    optional_by: list[str] = Field(default_factory=list)  # used when present (e.g. --SPEC, --METHOD)
    max: int = 1


@operator("max_per_group", MaxPerGroupParams)
def max_per_group(ctx: CheckContext, p: MaxPerGroupParams) -> Hits:
    """At most ``max`` records (after ``when``) per ``by`` group; the extra records fire."""
    by = [ctx.one(b) for b in p.by] + ctx.resolve_many(p.optional_by, required=False)
    gid = group_codes(ctx.df, by)
    rank = pd.Series(gid).groupby(gid, sort=False).cumcount().to_numpy()
    return ctx.hits(rank >= p.max, ",".join(by), tuple(ctx.df[b] for b in by))


class GroupHasParams(Params):
    by: list[str]
    condition: list[Condition]
    min_records: int = 1


@operator("group_has", GroupHasParams)
def group_has(ctx: CheckContext, p: GroupHasParams) -> Hits:
    """Every ``by`` group has at least ``min_records`` records meeting ``condition`` (one finding per group)."""
    by = [ctx.one(b) for b in p.by]
    m = np.ones(len(ctx.df), dtype=bool)
    for c in p.condition:
        m = m & condition_mask(ctx.df, c, ctx)
    gid = group_codes(ctx.df, by)
    if not len(gid):
        return empty_hits()
    cnt = np.bincount(gid, weights=m.astype(float), minlength=int(gid.max()) + 1)
    first = first_of_group(gid)
    return ctx.hits(first & (cnt[gid] < p.min_records), ",".join(by), tuple(ctx.df[b] for b in by))


# ------------------------------------------------------------------ dataset / study level
class RequiredValuesParams(Params):
    variable: str
    values: list[str] = Field(default_factory=list)
    values_from_setting: str | None = None  # e.g. ts_required
    value_variable: str | None = None  # the record must also have this variable populated


@operator("required_values", RequiredValuesParams)
def required_values(ctx: CheckContext, p: RequiredValuesParams) -> Hits:
    """Each required value occurs in ``variable`` (with ``value_variable`` populated): TS parameters."""
    col = ctx.one(p.variable)
    wanted = list(p.values)
    if p.values_from_setting:
        wanted += list(getattr(ctx.settings, p.values_from_setting))
    present = ctx.df[col]
    if p.value_variable:
        vv = ctx.resolve(p.value_variable, required=False)
        if vv:
            present = present[~is_null(ctx.df[vv[0]])]
    have = set(as_text(present).dropna())
    missing = [w for w in wanted if w not in have]
    return ctx.dataset_hits([col] * len(missing), missing)


class DatasetsPresentParams(Params):
    datasets: list[str]
    purpose: Literal["Tabulation", "Analysis"] | None = None  # only when data of this purpose exists


@operator("datasets_present", DatasetsPresentParams)
def datasets_present(ctx: CheckContext, p: DatasetsPresentParams) -> Hits:
    """The study holds each of ``datasets`` (FDA technical rejection criteria)."""
    if p.purpose and p.purpose not in set(ctx.data.purpose.values()):
        raise RuleSkipped(f"no {p.purpose} data validated")
    missing = [d for d in p.datasets if d.upper() not in ctx.data.datasets]
    return ctx.dataset_hits(["(dataset)"] * len(missing), missing)


def apply_operator(ctx: CheckContext, check: dict[str, Any]) -> Hits:
    """Validate ``check`` against its operator's parameter model and run it."""
    name = check["operator"]
    params_model, fn = OPERATORS[name]
    return fn(ctx, params_model.model_validate(check))


__all__ = ["OPERATORS", "operator", "apply_operator", "condition_mask", "study_day", "empty_hits",
           "ISO_DATETIME", "ISO_DURATION"]
