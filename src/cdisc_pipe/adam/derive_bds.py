"""BDS and OCCDS derivations in admiral's verb grammar (baseline, change, ranges, toxicity, flags).

Every ``derive_*`` function takes a DataFrame plus plain arguments naming variables and returns a new
DataFrame; nothing is modified in place, nothing is kept between calls, and no function loops over
records or subjects in Python (loops run over grades, criteria and variables only).

Toxicity grading criteria (e.g. CTCAE v5.0 laboratory terms) are data in the format of
:class:`ToxicityCriteria`: given inline to a plan's grading step, or read from a file by
:func:`read_toxicity_criteria`.  The verbs of :mod:`cdisc_pipe.adam.verbs_bds` and
:mod:`cdisc_pipe.adam.verbs_occds` wrap these functions for derivation plans.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, field_validator, model_validator

from cdisc_pipe.adam.derive import derive_var_extreme_flag, filter_extreme
from cdisc_pipe.adam.settings import _Model
from cdisc_pipe.errors import Finding, InputError, Problem

__all__ = [
    "ToxicityCriteria",
    "read_toxicity_criteria",
    "derive_var_ablfl",
    "derive_var_base",
    "derive_var_chg",
    "derive_var_pchg",
    "derive_var_anrind",
    "derive_var_atoxgr_dir",
    "derive_param_extreme_record",
    "derive_var_trtemfl",
    "derive_var_aoccfl",
    "derive_var_period_flag",
    "check_bds",
    "parse_iso_duration_days",
    "y_flag",
    "require_sdtm",
    "require_adsl",
    "merge_adsl",
    "finalize",
    "dtc_has_time",
    "before_reference",
    "derive_on_unique",
]


def _read_model(model: type[BaseModel], path: Path) -> Any:
    """Read ``path`` with the spec loader's safe YAML reader and validate it; one InputError for all problems."""
    from cdisc_pipe.spec.load import read_yaml, validate_model

    problems: list[Problem] = []
    data = read_yaml(path, problems)
    result = None
    if not problems:
        result = validate_model(model, data if data is not None else {}, str(path), problems)
    if problems:
        raise InputError(problems, stage="adam")
    return result


# --------------------------------------------------------------------------------------------
# Toxicity grading criteria (data)
# --------------------------------------------------------------------------------------------

_BOUND_RE = re.compile(
    r"^\s*(?:(?P<num>\d+(?:\.\d+)?)\s*$|"
    r"(?:(?P<factor>\d+(?:\.\d+)?)\s*\*\s*)?(?P<ref>ULN|LLN|BASE)\s*(?:(?P<sign>[+-])\s*(?P<offset>\d+(?:\.\d+)?))?\s*$)"
)
_REF_VARS = {"ULN": "ANRHI", "LLN": "ANRLO", "BASE": "BASE"}
_POSITION = "__record_position__"  # a working column: a record's position in its dataset


class Bound(_Model):
    """A threshold: a number, or ``factor * reference + offset`` with reference ULN, LLN or BASE."""

    number: float | None = None
    ref: Literal["ULN", "LLN", "BASE"] | None = None
    factor: float = 1.0
    offset: float = 0.0

    @classmethod
    def parse(cls, text: str | float | int) -> "Bound":
        if isinstance(text, (int, float)):
            return cls(number=float(text))
        m = _BOUND_RE.match(str(text))
        if not m:
            raise ValueError(f"bound {text!r} is not NUMBER or [FACTOR*](ULN|LLN|BASE)[+-OFFSET]")
        if m.group("num") is not None:
            return cls(number=float(m.group("num")))
        offset = float(m.group("offset") or 0.0) * (-1 if m.group("sign") == "-" else 1)
        return cls(ref=m.group("ref"), factor=float(m.group("factor") or 1.0), offset=offset)

    def values(self, df: pd.DataFrame) -> pd.Series:
        if self.number is not None:
            return pd.Series(self.number, index=df.index, dtype="float64")
        ref = pd.to_numeric(df[_REF_VARS[self.ref]], errors="coerce").astype("float64")
        return ref * self.factor + self.offset


class Condition(_Model):
    """One alternative of a grade: ``AVAL <comparator> bound``, optionally only for some baselines.

    ``baseline``: ``high``/``not_high``/``low``/``not_low`` restrict the alternative by BNRIND
    (CTCAE "if baseline was normal/abnormal").  ``optional``: a missing reference (e.g. no BASE)
    makes the alternative false instead of making the grade undeterminable.
    """

    gt: str | float | None = None
    ge: str | float | None = None
    lt: str | float | None = None
    le: str | float | None = None
    baseline: Literal["high", "not_high", "low", "not_low"] | None = None
    optional: bool = False

    @model_validator(mode="after")
    def _one_comparator(self) -> "Condition":
        given = [k for k in ("gt", "ge", "lt", "le") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of gt, ge, lt, le")
        Bound.parse(getattr(self, given[0]))
        return self

    @property
    def comparator(self) -> str:
        return next(k for k in ("gt", "ge", "lt", "le") if getattr(self, k) is not None)

    @property
    def bound(self) -> Bound:
        return Bound.parse(getattr(self, self.comparator))


class GradeRule(_Model):
    """A grade and its alternatives (any one suffices)."""

    grade: int = Field(ge=1, le=4)
    any: list[Condition]


class ToxicityTerm(_Model):
    """One CTCAE term graded from one or more lab tests in one direction."""

    term: str
    testcd: list[str]
    direction: Literal["L", "H"]
    unit: str | None = None  # required unit of AVAL when absolute thresholds are used
    grades: list[GradeRule]
    note: str | None = None

    @field_validator("grades")
    @classmethod
    def _descending(cls, v: list[GradeRule]) -> list[GradeRule]:
        g = [r.grade for r in v]
        if g != sorted(g, reverse=True) or len(set(g)) != len(g):
            raise ValueError("grades must be listed from the highest to the lowest, each once")
        return v


class ToxicityCriteria(_Model):
    """A laboratory toxicity grading table, e.g. CTCAE v5.0 (``specs/settings/ctcae_v5_lab.yaml``)."""

    name: str
    version: str
    source: str | None = None
    signif_digits: int = 8
    terms: list[ToxicityTerm]

    @model_validator(mode="after")
    def _unique(self) -> "ToxicityCriteria":
        seen: set[tuple[str, str]] = set()
        for t in self.terms:
            for cd in t.testcd:
                if (cd, t.direction) in seen:
                    raise ValueError(f"test {cd} has two {t.direction} terms")
                seen.add((cd, t.direction))
        return self


def read_toxicity_criteria(path: Path) -> ToxicityCriteria:
    """Read a grading table (safe YAML, strict model); an InputError lists every problem."""
    if not Path(path).is_file():
        raise InputError(Problem(str(path), "toxicity grading table not found",
                                 hint="Check the path of the grading table"), stage="adam")
    return _read_model(ToxicityCriteria, Path(path))


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def y_flag(mask: pd.Series | np.ndarray, index: pd.Index | None = None) -> pd.Series:
    """A "Y"/missing flag column (object dtype, None for missing) from a boolean mask."""
    m = pd.Series(mask, index=index) if not isinstance(mask, pd.Series) else mask
    m = m.fillna(False).astype(bool)
    return pd.Series(np.where(m.to_numpy(), "Y", None), index=m.index, dtype=object)


def _signif(x: pd.Series, digits: int) -> pd.Series:
    """Round to ``digits`` significant digits (so 3*40.0 and 120.0 compare equal)."""
    v = x.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where((v == 0) | ~np.isfinite(v), 0, np.floor(np.log10(np.abs(v))))
        scale = 10.0 ** (digits - 1 - mag)
        out = np.where(np.isfinite(v), np.round(v * scale) / scale, np.nan)
    return pd.Series(out, index=x.index)


def _num(df: pd.DataFrame, var: str) -> pd.Series:
    return pd.to_numeric(df[var], errors="coerce").astype("float64")


# --------------------------------------------------------------------------------------------
# Baseline, change
# --------------------------------------------------------------------------------------------


def derive_var_ablfl(
    dataset: pd.DataFrame,
    by_vars: Sequence[str],
    order: Sequence[str],
    candidate: pd.Series,
    new_var: str = "ABLFL",
    value_vars: Sequence[str] = ("AVAL", "AVALC"),
) -> pd.DataFrame:
    """Flag the baseline record: the last candidate record with a non-missing value per ``by_vars``.

    Args:
        dataset: BDS frame.
        by_vars: e.g. ``["USUBJID", "PARAMCD", "BASETYPE"]``.
        order: sort order inside a group (e.g. ``["ADTM", "SRCSEQ"]``); the last one is baseline.
        candidate: boolean mask of records eligible as baseline (e.g. ``ADT <= LDSDT``).
        value_vars: a record needs at least one of these non-missing (present columns only).
    """
    has_value = pd.Series(False, index=dataset.index)
    for v in value_vars:
        if v in dataset.columns:
            has_value |= dataset[v].notna()
    mask = candidate.reindex(dataset.index).fillna(False).astype(bool) & has_value
    out = derive_var_extreme_flag(dataset, list(by_vars), list(order), new_var, mode="last", filter_mask=mask)
    out[new_var] = y_flag(out[new_var].eq("Y"))
    return out


def derive_var_base(
    dataset: pd.DataFrame,
    by_vars: Sequence[str],
    source_var: str = "AVAL",
    new_var: str = "BASE",
    flag_var: str = "ABLFL",
) -> pd.DataFrame:
    """Copy ``source_var`` of the ``flag_var == "Y"`` record onto every record of its ``by_vars`` group.

    BASE from AVAL, BASEC from AVALC, BNRIND from ANRIND, BTOXGRL from ATOXGRL, ...  Groups without a
    baseline record get a missing value.  More than one flagged record per group is a programming
    error (``ValueError``): :func:`derive_var_ablfl` never produces it.
    """
    flag = dataset[flag_var].eq("Y").fillna(False).astype(bool).to_numpy()
    group = _group_number(dataset, by_vars)
    out = dataset.drop(columns=[new_var], errors="ignore")
    if group is None:  # too many key combinations for one int64: join on the variables themselves
        flagged = dataset.loc[flag, list(by_vars) + [source_var]]
        keys = list(by_vars)
        left = out[keys]
    else:  # the same left join on one integer key (missing key values match each other, as in merge)
        flagged = pd.DataFrame({"__g": group[flag]}).assign(
            **{source_var: dataset.loc[flag, source_var].reset_index(drop=True)})
        keys = ["__g"]
        left = pd.DataFrame({"__g": group})
    if flagged.duplicated(keys).any():
        raise ValueError(f"more than one {flag_var} record per {', '.join(by_vars)}")
    flagged = flagged.rename(columns={source_var: "__base"})
    merged = left.merge(flagged, how="left", on=keys)
    values = merged["__base"].to_numpy()
    out[new_var] = pd.Series(values, index=out.index, dtype=dataset[source_var].dtype)
    if out[new_var].dtype == object:
        out[new_var] = out[new_var].where(out[new_var].notna(), None)
    return out


def _group_number(dataset: pd.DataFrame, by_vars: Sequence[str]) -> np.ndarray | None:
    """One int64 per record identifying its ``by_vars`` combination (missing values form their own
    level); None when the combinations do not fit in an int64."""
    group = np.zeros(len(dataset), dtype=np.int64)
    size = 1
    for v in by_vars:
        codes, uniques = pd.factorize(dataset[v])
        size *= len(uniques) + 1
        if size >= 2**62:
            return None
        group = group * (len(uniques) + 1) + (codes + 1)
    return group


def derive_var_chg(dataset: pd.DataFrame, post_baseline: pd.Series | None = None, new_var: str = "CHG") -> pd.DataFrame:
    """CHG = AVAL - BASE on post-baseline records (``post_baseline`` mask; all records when None)."""
    out = dataset.copy(deep=False)
    chg = _num(out, "AVAL") - _num(out, "BASE")
    if post_baseline is not None:
        chg = chg.where(post_baseline.reindex(out.index).fillna(False).astype(bool))
    out[new_var] = chg.astype("float64")
    return out


def derive_var_pchg(dataset: pd.DataFrame, post_baseline: pd.Series | None = None, new_var: str = "PCHG") -> pd.DataFrame:
    """PCHG = (AVAL - BASE) / |BASE| * 100; missing when BASE is 0 or missing."""
    out = dataset.copy(deep=False)
    base = _num(out, "BASE")
    pchg = (_num(out, "AVAL") - base) / base.abs() * 100.0
    pchg = pchg.where(base.ne(0) & base.notna())
    if post_baseline is not None:
        pchg = pchg.where(post_baseline.reindex(out.index).fillna(False).astype(bool))
    out[new_var] = pchg.astype("float64")
    return out


def derive_var_anrind(
    dataset: pd.DataFrame,
    source_var: str = "AVAL",
    low_var: str = "ANRLO",
    high_var: str = "ANRHI",
    new_var: str = "ANRIND",
) -> pd.DataFrame:
    """Reference range indicator: LOW (< ANRLO), HIGH (> ANRHI), NORMAL otherwise (CT NRIND C78736).

    Missing when AVAL is missing or no limit is known; with only one limit known, a value on the
    other side of it is NORMAL only when that side has no limit (e.g. CRP with only an upper limit).
    """
    out = dataset.copy(deep=False)
    aval, lo, hi = _num(out, source_var), _num(out, low_var), _num(out, high_var)
    low = aval.notna() & lo.notna() & (aval < lo)
    high = aval.notna() & hi.notna() & (aval > hi)
    known = aval.notna() & (lo.notna() | hi.notna())
    ind = np.select([low, high, known], ["LOW", "HIGH", "NORMAL"], default="")
    out[new_var] = pd.Series(ind, index=out.index, dtype=object).where(ind != "", None)
    return out


def derive_var_atoxgr_dir(
    dataset: pd.DataFrame,
    criteria: ToxicityCriteria,
    direction: Literal["L", "H"],
    test_var: str = "PARAMCD",
    unit_var: str | None = "AVALU",
    source_var: str = "AVAL",
) -> tuple[pd.DataFrame, list[Finding]]:
    """Grade ``source_var`` in one direction: adds ATOXDSCL/ATOXGRL (``"L"``) or ATOXDSCH/ATOXGRH (``"H"``).

    For each term of the table with this direction the grades are tested from the highest down; a
    record takes the first grade any of whose alternatives holds.  If an alternative cannot be
    evaluated (missing AVAL, ULN/LLN or, unless ``optional``, BASE) before a grade is reached, the
    grade is missing: a missing ULN must not read as "normal".  A record of a graded test that meets
    no grade is ``"0"``.  Tests without a term get missing ATOXDSC*/ATOXGR*.

    Comparisons use values rounded to the table's ``signif_digits`` so that a value exactly at a
    threshold (PLAT 50 x10^9/L, ALT 3.0 x ULN) falls in the grade CTCAE puts it in.

    When a term names a ``unit`` and ``unit_var`` holds another unit, the records are not graded and
    one finding per test and unit is returned.
    """
    suffix = direction
    dsc_var, grd_var = f"ATOXDSC{suffix}", f"ATOXGR{suffix}"
    out = dataset.copy(deep=False)
    n = len(out)
    # Filled per term on that term's records only (each test has at most one term per direction),
    # so the work is linear in the records, not records x terms.
    dsc = np.full(n, None, dtype=object)
    grade = np.full(n, None, dtype=object)
    findings: list[Finding] = []
    digits = criteria.signif_digits
    codes, tests = pd.factorize(out[test_var])
    needed = [c for c in dict.fromkeys([test_var, unit_var, source_var, "BNRIND", *_REF_VARS.values()])
              if c is not None and c in out.columns]
    for term in (t for t in criteria.terms if t.direction == direction):
        wanted = tests.isin(term.testcd)
        if not wanted.any():
            continue
        idx = np.flatnonzero(np.isin(codes, np.flatnonzero(wanted)))
        if len(idx) == 0:
            continue
        sub = out[needed].iloc[idx]
        rows = pd.Series(True, index=sub.index)
        if term.unit is not None and unit_var is not None and unit_var in sub.columns:
            bad_unit = rows & sub[unit_var].ne(term.unit).fillna(True).astype(bool) & sub[source_var].notna()
            if bad_unit.any():
                for (cd, unit), cnt in sub.loc[bad_unit].groupby([test_var, sub.loc[bad_unit, unit_var].fillna("(missing)")]).size().items():
                    findings.append(Finding(
                        rule="ADAM.ATOXGR.UNIT", severity="Warning", dataset=None, variable=grd_var, value=str(unit),
                        message=(f"{cnt} {cd} record(s) in unit {unit} not graded for '{term.term}': the "
                                 f"{criteria.name} thresholds are in {term.unit}"),
                    ))
                rows &= ~bad_unit
        aval = _signif(_num(sub, source_var), digits)
        bnrind = sub["BNRIND"] if "BNRIND" in sub.columns else pd.Series(None, index=sub.index, dtype=object)
        undecided = rows & aval.notna()
        result = pd.Series(None, index=sub.index, dtype=object)
        for rule in term.grades:
            hit = pd.Series(False, index=sub.index)
            unknown = pd.Series(False, index=sub.index)
            for cond in rule.any:
                bound = _signif(cond.bound.values(sub), digits)
                cmp = {"gt": aval > bound, "ge": aval >= bound, "lt": aval < bound, "le": aval <= bound}[cond.comparator]
                applies = pd.Series(True, index=sub.index)
                if cond.baseline is not None:
                    is_high, is_low = bnrind.eq("HIGH").fillna(False), bnrind.eq("LOW").fillna(False)
                    applies = {"high": is_high, "not_high": ~is_high, "low": is_low, "not_low": ~is_low}[cond.baseline]
                hit |= applies & bound.notna() & cmp
                if not cond.optional:
                    unknown |= applies & bound.isna()
            take = undecided & hit
            result = result.where(~take, str(rule.grade))
            undecided &= ~take
            stop = undecided & unknown  # cannot tell whether this grade is reached
            undecided &= ~stop
        result = result.where(~undecided, "0")
        keep = rows.to_numpy(dtype=bool)
        grade[idx[keep]] = result.to_numpy(dtype=object)[keep]
        dsc[idx[keep]] = term.term
    out[dsc_var] = pd.Series(dsc, index=out.index, dtype=object)
    grade_s = pd.Series(grade, index=out.index, dtype=object)
    out[grd_var] = grade_s.where(grade_s.notna(), None)
    return out, findings


# --------------------------------------------------------------------------------------------
# Derived records and flags
# --------------------------------------------------------------------------------------------


def derive_param_extreme_record(
    dataset: pd.DataFrame,
    by_vars: Sequence[str],
    order: Sequence[str],
    filter_mask: pd.Series,
    set_values: Mapping[str, Any],
    mode: str = "first",
    keep_vars: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Append one new record per ``by_vars`` group: a copy of its extreme record among ``filter_mask``.

    E.g. the peak post-dose value: ``order=["-AVAL", "ADTM"]``, ``mode="first"`` picks the highest
    value (the earliest one on ties) and ``set_values={"DTYPE": "MAXIMUM", "AVISIT": ...}`` marks the
    new record.  ``keep_vars`` limits the variables copied (the others are missing); default: all.
    Groups without a candidate get no record.  Returns the input records followed by the new ones.
    """
    mask = filter_mask.reindex(dataset.index).fillna(False).astype(bool)
    # the record is chosen among the candidates' sort variables only, then taken whole by its
    # position: a copy of every candidate would be as large as the dataset
    keys = list(dict.fromkeys([*by_vars, *(o.lstrip("-") for o in order)]))
    narrow = dataset.loc[mask, keys].assign(**{_POSITION: np.flatnonzero(mask.to_numpy())})
    chosen = filter_extreme(narrow, list(by_vars), list(order), mode=mode)
    picked = dataset.iloc[chosen[_POSITION].to_numpy()]
    new = picked.copy(deep=False)
    if keep_vars is not None:
        for col in new.columns:
            if col not in keep_vars and col not in by_vars:
                new[col] = None if new[col].dtype == object else np.nan
    for var, value in set_values.items():
        new[var] = value
    return pd.concat([dataset, new], ignore_index=True)


def derive_var_trtemfl(
    dataset: pd.DataFrame,
    start_date: str = "ASTDT",
    end_date: str | None = "AENDT",
    trt_start: str = "TRTSDT",
    trt_end: str | None = None,
    window_days: int | None = None,
    stop_date: str | None = None,
    new_var: str = "TRTEMFL",
) -> pd.DataFrame:
    """Treatment-emergent flag (admiral's ``derive_var_trtemfl`` rule), ``"Y"`` or missing.

    An event is treatment-emergent when treatment started (``trt_start`` known) and
    - its start is on/after ``trt_start`` (and, with ``trt_end``/``window_days``, on/before
      ``trt_end + window_days``; with ``stop_date`` e.g. NACTDT, before it), or
    - its start is unknown and its end is on/after ``trt_start`` or unknown (worst case).
    """
    out = dataset.copy(deep=False)
    start = pd.to_datetime(out[start_date])
    trt = pd.to_datetime(out[trt_start])
    end = pd.to_datetime(out[end_date]) if end_date else pd.Series(pd.NaT, index=out.index)
    emergent = trt.notna() & (
        (start.notna() & (start >= trt)) | (start.isna() & (end.isna() | (end >= trt)))
    )
    if trt_end is not None and window_days is not None:
        limit = pd.to_datetime(out[trt_end]) + pd.Timedelta(days=window_days)
        emergent &= ~(start.notna() & limit.notna() & (start > limit))
    if stop_date is not None:
        stop = pd.to_datetime(out[stop_date])
        emergent &= ~(start.notna() & stop.notna() & (start >= stop))
    out[new_var] = y_flag(emergent)
    return out


def derive_var_period_flag(
    dataset: pd.DataFrame, date_var: str, from_var: str, to_var: str, new_var: str, to_inclusive: bool = False
) -> pd.DataFrame:
    """``"Y"`` when ``from_var <= date_var < to_var`` (``<=`` with ``to_inclusive``); a missing
    ``to_var`` leaves the period open.  E.g. an event between a conditioning regimen and the study treatment.
    """
    out = dataset.copy(deep=False)
    d, lo, hi = (pd.to_datetime(out[v]) for v in (date_var, from_var, to_var))
    before_end = hi.isna() | ((d <= hi) if to_inclusive else (d < hi))
    out[new_var] = y_flag(d.notna() & lo.notna() & (d >= lo) & before_end)
    return out


def derive_var_aoccfl(
    dataset: pd.DataFrame,
    by_vars: Sequence[str],
    order: Sequence[str],
    new_var: str,
    filter_mask: pd.Series | None = None,
) -> pd.DataFrame:
    """First-occurrence flag (AOCCFL, AOCCSFL, AOCCPFL, AOCC01FL ...): ``"Y"`` on the first record per
    ``by_vars`` after sorting by ``order`` among ``filter_mask`` records (e.g. TRTEMFL = "Y")."""
    out = derive_var_extreme_flag(dataset, list(by_vars), list(order), new_var, mode="first", filter_mask=filter_mask)
    out[new_var] = y_flag(out[new_var].eq("Y"))
    return out


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

_DUR_RE = (
    r"^(?P<sign>-)?P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_iso_duration_days(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """ISO 8601 durations (``P7D``, ``PT4H``, ``-PT1H``, ``P1W``) in days; returns ``(days, invalid)``.

    Years and months are not accepted (their length in days is ambiguous); such values, and any
    other text, are ``invalid`` (days missing).  A leading ``-`` means before the reference.
    """
    text = values.astype("string").str.strip()
    parts = text.str.extract(_DUR_RE)
    comps = {k: pd.to_numeric(parts[k], errors="coerce").fillna(0.0) for k in ("w", "d", "h", "m", "s")}
    any_part = parts[["w", "d", "h", "m", "s"]].notna().any(axis=1)
    days = comps["w"] * 7 + comps["d"] + comps["h"] / 24 + comps["m"] / 1440 + comps["s"] / 86400
    days = days.where(parts["sign"].isna(), -days)
    ok = any_part & text.notna()
    invalid = (text.notna() & text.ne("") & ~ok).fillna(False).astype(bool)
    return days.where(ok).astype("float64"), invalid


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def check_bds(dataset: pd.DataFrame, name: str, baseline_by: Sequence[str] | None = None) -> list[Finding]:
    """ADaM BDS integrity checks as findings: PARAMCD<->PARAM 1:1, AVAL/AVALC both missing, and at
    most one ABLFL per ``baseline_by`` group."""
    findings: list[Finding] = []
    if {"PARAMCD", "PARAM"} <= set(dataset.columns):
        pairs = dataset[["PARAMCD", "PARAM"]].drop_duplicates()
        for col, other in (("PARAMCD", "PARAM"), ("PARAM", "PARAMCD")):
            dup = pairs[pairs.duplicated(col, keep=False)]
            for value, grp in dup.groupby(col):
                findings.append(Finding(
                    rule="ADAM.BDS.PARAM11", severity="Error", dataset=name, variable=col, value=str(value),
                    message=f"{col} {value} maps to several {other} values: {', '.join(map(str, grp[other]))}"))
    if "AVAL" in dataset.columns:
        none = dataset["AVAL"].isna()
        if "AVALC" in dataset.columns:
            none &= dataset["AVALC"].isna()
        if none.any():
            counts = dataset.loc[none].groupby("PARAMCD", dropna=False).size()
            findings.extend(
                Finding(rule="ADAM.BDS.NOVAL", severity="Notice", dataset=name, variable="AVAL", value=str(code),
                        message=f"{int(n)} {code} record(s) with both AVAL and AVALC missing (kept)")
                for code, n in counts.items()  # one finding per parameter
            )
    if baseline_by and "ABLFL" in dataset.columns:
        flagged = dataset[dataset["ABLFL"].eq("Y").fillna(False)]
        dup = flagged[flagged.duplicated(list(baseline_by), keep=False)]
        if not dup.empty:
            findings.append(Finding(rule="ADAM.BDS.ABLFL", severity="Error", dataset=name, variable="ABLFL",
                                    message=f"{len(dup)} records share a baseline group ({', '.join(baseline_by)})"))
    return findings


# --------------------------------------------------------------------------------------------
# Builder plumbing shared by the ADAE/ADLB/ADPC/ADPP/ADEX/ADECOG builders
# --------------------------------------------------------------------------------------------


def require_sdtm(
    sdtm: Mapping[str, pd.DataFrame], name: str, variables: Sequence[str], for_dataset: str
) -> pd.DataFrame:
    """Return SDTM dataset ``name``; InputError naming what is absent.

    ``build_adam`` has already turned blanks into missing values (docs/ADAM.md).  A shallow copy is
    returned (copy-on-write), so a builder adding or replacing columns never changes its input.
    """
    if name not in sdtm or sdtm[name] is None:
        raise InputError(Problem(f"SDTM {name}", f"{for_dataset} needs SDTM dataset {name}, which is missing",
                                 hint=f"Provide {name.lower()}.xpt or remove the {for_dataset} spec"), stage="adam")
    df = sdtm[name]
    missing = [v for v in variables if v not in df.columns]
    if missing:
        raise InputError([Problem(f"SDTM {name}", f"{for_dataset} needs variable {v}, which {name} lacks",
                                  column=v, hint=f"Add {v} to {name}") for v in missing], stage="adam")
    return df.copy(deep=False)


def require_adsl(adsl: pd.DataFrame, variables: Sequence[str], for_dataset: str) -> pd.DataFrame:
    """Check ADSL has ``variables``; InputError naming the missing ones."""
    missing = [v for v in variables if v not in adsl.columns]
    if missing:
        raise InputError([Problem("ADSL", f"{for_dataset} needs ADSL variable {v}", column=v) for v in missing],
                         stage="adam")
    return adsl


def merge_adsl(
    dataset: pd.DataFrame, adsl: pd.DataFrame, variables: Sequence[str], for_dataset: str
) -> tuple[pd.DataFrame, list[Finding]]:
    """Left-join ADSL ``variables`` by USUBJID; subjects absent from ADSL are kept and reported."""
    require_adsl(adsl, ["USUBJID", *variables], for_dataset)
    add = adsl[["USUBJID", *[v for v in variables if v != "USUBJID"]]].drop_duplicates("USUBJID")
    clash = [v for v in variables if v in dataset.columns and v != "USUBJID"]
    out = dataset.drop(columns=clash).merge(add, how="left", on="USUBJID")
    out.index = dataset.index
    findings = [
        Finding(rule="ADAM.ADSL.MISSING", severity="Error", dataset=for_dataset, usubjid=str(u), variable="USUBJID",
                message=f"subject has {for_dataset} records but no ADSL record (records kept)")
        for u in sorted(set(dataset["USUBJID"].dropna()) - set(adsl["USUBJID"].dropna()))
    ]
    return out, findings


def finalize(dataset: pd.DataFrame, columns: Sequence[str], sort_by: Sequence[str]) -> pd.DataFrame:
    """Keep ``columns`` in order (adding absent ones as missing), sort by ``sort_by``, reset the index,
    and store missing text as None (ARCHITECTURE data conventions)."""
    out = dataset.copy(deep=False)
    for c in columns:
        if c not in out.columns:
            out[c] = None
    out = out[list(columns)]
    out = out.sort_values(list(sort_by), kind="mergesort", na_position="first").reset_index(drop=True)
    for c in out.columns:
        s = out[c]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            present = s.notna()
            if s.dtype == object and present.all():
                continue  # already object text without missing values
            out[c] = s.astype(object).where(present, None)
        elif pd.api.types.is_datetime64_any_dtype(s):
            out[c] = s.astype("datetime64[ns]")
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_integer_dtype(s):
            out[c] = s.astype("float64")
    return out


def derive_on_unique(
    dataset: pd.DataFrame, source_var: str, derive: Callable[[pd.DataFrame], pd.DataFrame]
) -> pd.DataFrame:
    """Run ``derive`` (a date verb such as ``derive_vars_dtm``) on the distinct values of ``source_var``
    only and join the new columns back: many lab results share one collection date-time, and ISO 8601
    parsing is the costly step.  Missing ``source_var`` values are derived like any other value."""
    key = dataset[source_var].astype(object).where(dataset[source_var].notna(), None)
    uniq = pd.DataFrame({source_var: pd.unique(key)})
    derived = derive(uniq)
    new = [c for c in derived.columns if c != source_var]
    codes = pd.Index(uniq[source_var]).get_indexer(key)
    out = dataset.copy(deep=False)
    for c in new:
        values = derived[c].take(codes)
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            values = values.astype(object).where(values.notna(), None)
        out[c] = pd.Series(values.to_numpy(), index=out.index, dtype=values.dtype)
    return out


def dtc_has_time(dtc: pd.Series) -> pd.Series:
    """True where an ISO 8601 --DTC value carries at least hours and minutes."""
    codes, uniques = pd.factorize(dtc)  # each distinct value is matched once
    timed = (pd.Series(uniques, dtype=object).astype("string")
             .str.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}").fillna(False).astype(bool).to_numpy())
    timed = np.append(timed, False)  # code -1 (missing) -> False
    return pd.Series(timed[codes], index=dtc.index, dtype=bool)


def before_reference(
    adt: pd.Series, adtm: pd.Series, has_time: pd.Series, ref_dt: pd.Series, ref_dtm: pd.Series | None,
    same_day_counts: bool = True,
) -> pd.Series:
    """Is a record before a reference event (e.g. the first dose of a treatment)?

    With a known record time and a reference date-time: ``ADTM < ref_dtm``.  Otherwise by date:
    ``ADT <= ref_dt`` when ``same_day_counts`` (a same-day, untimed assessment is taken as pre-dose,
    the protocol's schedule), ``ADT < ref_dt`` otherwise.  Missing reference -> False.
    """
    adt, ref_dt = pd.to_datetime(adt), pd.to_datetime(ref_dt)
    by_date = (adt <= ref_dt) if same_day_counts else (adt < ref_dt)
    if ref_dtm is not None:
        ref_dtm = pd.to_datetime(ref_dtm)
        timed = has_time & ref_dtm.notna() & pd.to_datetime(adtm).notna()
        by_time = pd.to_datetime(adtm) < ref_dtm
        res = by_time.where(timed, by_date)
    else:
        res = by_date
    return (res & ref_dt.notna() & adt.notna()).fillna(False).astype(bool)
