"""BDS verbs a plan may name: parameters from a findings domain, derived parameters, baseline types,
baseline flag / value / change, reference range indicator, toxicity grades, added records and checks.

Each verb wraps a function of :mod:`cdisc_pipe.adam.derive_bds` (or a small vectorised function
here) behind a pydantic model of its arguments, in admiral's grammar (``derive_var_*`` one variable,
``derive_vars_*`` several, ``derive_param_*`` / ``derive_*_records`` records).  Every study value
(test codes, categories, baseline types, reference dates, grading criteria) comes from the plan;
nothing here names a study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from cdisc_pipe.adam.conditions import condition_mask, describe_where, where_variables
from cdisc_pipe.adam.derive import _sort
from cdisc_pipe.adam.derive_bds import (
    ToxicityCriteria,
    before_reference,
    check_bds,
    derive_param_extreme_record,
    derive_var_ablfl,
    derive_var_anrind,
    derive_var_atoxgr_dir,
    derive_var_base,
    derive_var_chg,
    _group_number,
    derive_var_pchg,
    dtc_has_time,
)
from cdisc_pipe.adam.settings import Where, _Model
from cdisc_pipe.adam.verbs import (
    _NAME,
    arithmetic,
    Context,
    Scalar,
    StepArgs,
    Verb,
    _column,
    _order_text,
    _register,
    _value_text,
    _where_text,
)
from cdisc_pipe.errors import Finding

__all__ = [
    "derive_vars_params_from_findings",
    "derive_var_before_reference",
    "derive_param_computed",
    "derive_basetype_records",
    "derive_extreme_event",
]

_PARAMCD = r"^[A-Z][A-Z0-9_]{0,7}$"


def _order_vars(order: Sequence[str]) -> list[str]:
    return [o.lstrip("-") for o in order]


def _mask(df: pd.DataFrame, where: Sequence[Any]) -> pd.Series:
    return condition_mask(df, where) if where else pd.Series(True, index=df.index)


def _constant(value: Scalar, n: int, like: pd.Series | None = None) -> pd.Series | np.ndarray:
    """A column holding ``value`` on ``n`` rows: numbers as float64, missing as NaN in a numeric or
    date column (``like``), text as object."""
    if value is None:
        if like is not None and pd.api.types.is_datetime64_any_dtype(like):
            return np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        if like is not None and pd.api.types.is_numeric_dtype(like) and not pd.api.types.is_bool_dtype(like):
            return np.full(n, np.nan)
        return np.full(n, None, dtype=object)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.full(n, float(value))
    return np.full(n, value, dtype=object)


def _append(df: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """``df`` followed by ``new`` (columns of either; missing where a frame lacks one)."""
    if new.empty:
        return df
    return pd.concat([df, new], ignore_index=True)


# --------------------------------------------------------------------------------------------
# derive_vars_params_from_findings: PARAMCD / PARAM / AVAL / AVALC / unit from a findings domain


class ParamRow(_Model):
    """One row of the parameter table: records of ``testcd`` (and ``where``, e.g. one specimen or
    method) get ``paramcd`` and ``param``.  Without ``param``: the test name, `` in <qualifier>``
    (title case, when the step names a qualifier) and the unit in parentheses."""

    testcd: str
    where: Where = Field(default_factory=list)
    paramcd: str = Field(pattern=_PARAMCD)
    param: str | None = Field(default=None, max_length=200)


class ParamsFromFindingsArgs(StepArgs):
    """PARAMCD, PARAM, AVAL, AVALC and the unit from a findings domain's --TESTCD, --TEST,
    --STRESN, --STRESC and --STRESU (``domain`` gives the prefix), with a parameter table.

    Rows of ``parameters`` are tried in order; the first one matching a record applies.  Records
    matching none keep PARAMCD = --TESTCD and PARAM = --TEST (unit), e.g. 'Platelets (10^9/L)'.
    """

    domain: str = Field(pattern=r"^[A-Z]{2}$")
    parameters: list[ParamRow] = Field(default_factory=list)
    param_qualifier: str | None = None  # e.g. LBSPEC: "<test> in <Specimen> (<unit>)" for rows without param
    unit_var: str | None = Field(default="AVALU", pattern=_NAME)  # e.g. _AVALU when the spec has no AVALU
    # AVALC: --STRESC where --STRESN is missing ("character"), on every record ("always"), or not written
    avalc: Literal["character", "always", "none"] = "character"


def derive_vars_params_from_findings(
    dataset: pd.DataFrame,
    domain: str,
    parameters: Sequence[ParamRow] = (),
    param_qualifier: str | None = None,
    unit_var: str | None = "AVALU",
    avalc: str = "character",
) -> pd.DataFrame:
    """Parameters of a findings domain (admiral: ``derive_vars_merged_lookup()`` of a parameter table,
    then ``AVAL = --STRESN``).  The loop runs over table rows, never over records.

    The unit of a parameter is the test's: a record without a standard unit (a text result such as
    'ABC' in a numeric test, --STRESN null) takes the one standard unit of the other records of its
    test (and qualifier), so one text cell never makes a second PARAM for the PARAMCD."""
    d = domain
    out = dataset.copy(deep=False)
    unit = out[f"{d}STRESU"].astype(object)  # the record's unit (AVALU)
    punit = _unit_of_test(out, f"{d}TESTCD", f"{d}STRESU", param_qualifier)  # the parameter's (PARAM)
    # PARAMCD and PARAM depend only on the variables below: worked out once per distinct combination
    # of them (a few hundred), then given to every record of it
    keys = [f"{d}TESTCD", f"{d}TEST"] + ([param_qualifier] if param_qualifier and param_qualifier in out.columns else [])
    for v in where_variables([c for row in parameters for c in row.where]):
        if v in out.columns and v not in keys:
            keys.append(v)
    work = out[keys].assign(__punit=punit.astype(object))
    group = _group_number(work, [*keys, "__punit"])
    if group is None:  # too many combinations to number: record by record
        paramcd, param = _param_texts(work, d, parameters, param_qualifier)
    else:
        inv, _ = pd.factorize(group)  # groups numbered in order of first appearance
        first = np.unique(inv, return_index=True)[1]  # each group's first record
        pc, pt = _param_texts(work.iloc[first].reset_index(drop=True), d, parameters, param_qualifier)
        paramcd = pd.Series(pc.to_numpy(dtype=object)[inv], index=out.index, dtype=object)
        param = pd.Series(pt.to_numpy(dtype=object)[inv], index=out.index, dtype=object)
    out["PARAMCD"] = paramcd
    out["PARAM"] = param
    out["AVAL"] = pd.to_numeric(out[f"{d}STRESN"], errors="coerce").astype("float64")
    if avalc != "none":
        stresc = out[f"{d}STRESC"].astype(object)
        stresc = stresc.where(stresc.notna(), None)
        out["AVALC"] = stresc.where(out["AVAL"].isna(), None) if avalc == "character" else stresc
    if unit_var:
        out[unit_var] = unit.where(unit.notna(), None)
    return out


def _param_texts(frame: pd.DataFrame, d: str, parameters: Sequence[ParamRow], param_qualifier: str | None
                 ) -> tuple[pd.Series, pd.Series]:
    """PARAMCD and PARAM of each record of ``frame`` (--TESTCD, --TEST, the qualifier, the variables
    of the table's conditions and ``__punit``, the parameter's unit): the table's rows in order, the
    first row that matches a record gives its parameter; other records keep --TESTCD and --TEST."""
    testcd = frame[f"{d}TESTCD"]
    test = frame[f"{d}TEST"].astype(object)
    punit = frame["__punit"]
    with_unit = (" (" + punit.where(punit.notna(), "") + ")").where(punit.notna(), "")
    paramcd = testcd.astype(object).copy()
    param = (test + with_unit).where(test.notna(), None)
    if param_qualifier is not None and param_qualifier in frame.columns:
        qual = frame[param_qualifier].astype(object)
        qualified = (" in " + qual.where(qual.notna(), "").astype(str).str.title()).where(qual.notna(), "")
    else:
        qualified = pd.Series("", index=frame.index, dtype=object)
    done = pd.Series(False, index=frame.index)
    for row in parameters:
        hit = testcd.eq(row.testcd).fillna(False).astype(bool) & ~done
        if row.where:
            hit &= condition_mask(frame, row.where)
        if not hit.any():
            continue
        done |= hit
        paramcd = paramcd.where(~hit, row.paramcd)
        text = row.param if row.param is not None else test + qualified + with_unit
        param = param.where(~hit, text)
    return paramcd, param


def _unit_of_test(out: pd.DataFrame, testcd: str, stresu: str, qualifier: str | None) -> pd.Series:
    """--STRESU, missing values filled with the single standard unit of the same test (and qualifier)."""
    unit = out[stresu].astype(object)
    missing = unit.isna()
    if not missing.any() or missing.all():
        return unit.where(unit.notna(), None)
    keys = [testcd] + ([qualifier] if qualifier and qualifier in out.columns else [])
    frame = out[keys].astype(object).where(out[keys].notna(), "").assign(__u=unit)
    per = frame.dropna(subset=["__u"]).groupby(keys, sort=False)["__u"].agg(["nunique", "first"])
    per = per[per["nunique"] == 1]["first"]
    if per.empty:
        return unit.where(unit.notna(), None)
    idx = pd.MultiIndex.from_frame(frame[keys]) if len(keys) > 1 else pd.Index(frame[keys[0]])
    fill = pd.Series(per.reindex(idx).to_numpy(), index=out.index, dtype=object)
    return unit.where(~missing, fill).where(lambda s: s.notna(), None)


def _outputs_params(a: ParamsFromFindingsArgs) -> list[str]:
    return ["PARAMCD", "PARAM", "AVAL"] + (["AVALC"] if a.avalc != "none" else []) + ([a.unit_var] if a.unit_var else [])


def _describe_params(a: ParamsFromFindingsArgs) -> dict[str, str]:
    d = a.domain
    rows_cd = "; ".join(f"{r.paramcd} for {d}TESTCD = '{r.testcd}'{_where_text(r.where, ' and ')}" for r in a.parameters)
    rows_p = "; ".join(
        f"'{r.param}' for {r.paramcd}" if r.param is not None else
        f"{d}TEST{' in ' + a.param_qualifier + ' (title case)' if a.param_qualifier else ''} ({d}STRESU) for {r.paramcd}"
        for r in a.parameters)
    first = " (the first matching row applies)" if len(a.parameters) > 1 else ""
    texts = {
        "PARAMCD": f"{d}TESTCD" + (f", except: {rows_cd}{first}" if a.parameters else ""),
        "PARAM": f"{d}TEST followed by the standard unit {d}STRESU in parentheses when present"
                 + (f"; except: {rows_p}" if a.parameters else ""),
        "AVAL": f"{d}STRESN",
    }
    if a.avalc == "character":
        texts["AVALC"] = f"{d}STRESC for character results ({d}STRESN missing); missing for numeric results"
    elif a.avalc == "always":
        texts["AVALC"] = f"{d}STRESC"
    if a.unit_var:
        texts[a.unit_var] = f"{d}STRESU"
    return texts


_register(Verb(
    name="derive_vars_params_from_findings", args=ParamsFromFindingsArgs,
    run=lambda df, a, ctx: derive_vars_params_from_findings(df, a.domain, a.parameters, a.param_qualifier,
                                                            a.unit_var, a.avalc),
    outputs=_outputs_params, describe=_describe_params,
    admiral="derive_vars_merged_lookup() (parameter lookup table by --TESTCD), then AVAL = --STRESN",
    reads=lambda a: [f"{a.domain}{v}" for v in ("TESTCD", "TEST", "STRESN", "STRESU")]
    + ([f"{a.domain}STRESC"] if a.avalc != "none" else [])
    + where_variables([c for r in a.parameters for c in r.where])))


# --------------------------------------------------------------------------------------------
# derive_var_before_reference: a record's timing relative to a reference date (baseline windows)


class BeforeReferenceArgs(StepArgs):
    """``true_value`` on records before a reference date (e.g. first dose), ``false_value`` on records
    on/after it, missing when the record's date or the reference is unknown.

    With ``datetime`` and ``reference_datetime``: ``datetime < reference_datetime`` where both times
    are known (with ``dtc``: only where that ISO 8601 date carries hours and minutes); otherwise by
    date, a record on the reference day counting as before (``same_day: before``, an untimed
    same-day assessment taken as pre-dose) or not (``same_day: after``).
    """

    new_var: str = Field(pattern=_NAME)
    date: str = "ADT"
    reference_date: str
    datetime: str | None = None
    reference_datetime: str | None = None
    dtc: str | None = None
    same_day: Literal["before", "after"] = "before"
    where: Where = Field(default_factory=list)  # only these records get a value (others keep theirs / missing)
    true_value: Scalar = "Y"
    false_value: Scalar = "N"

    @model_validator(mode="after")
    def _pairs(self) -> "BeforeReferenceArgs":
        if (self.datetime is None) != (self.reference_datetime is None):
            raise ValueError("give datetime and reference_datetime together")
        if self.dtc and not self.datetime:
            raise ValueError("dtc needs datetime and reference_datetime")
        return self


def derive_var_before_reference(dataset: pd.DataFrame, a: BeforeReferenceArgs) -> pd.DataFrame:
    """See :class:`BeforeReferenceArgs` (uses :func:`~cdisc_pipe.adam.derive_bds.before_reference`)."""
    out = dataset.copy(deep=False)
    if a.datetime:
        has_time = dtc_has_time(out[a.dtc]) if a.dtc else pd.to_datetime(out[a.datetime]).notna()
        before = before_reference(out[a.date], out[a.datetime], has_time, out[a.reference_date],
                                  out[a.reference_datetime], a.same_day == "before")
    else:
        before = before_reference(out[a.date], out[a.date], pd.Series(False, index=out.index),
                                  out[a.reference_date], None, a.same_day == "before")
    known = pd.to_datetime(out[a.date]).notna() & pd.to_datetime(out[a.reference_date]).notna()
    values = [a.true_value, a.false_value]
    numeric = all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)
    col = pd.Series(np.where(before, a.true_value, a.false_value), index=out.index,
                    dtype="float64" if numeric else object)
    col = col.where(known.to_numpy(), np.nan if numeric else None)
    if a.where:
        sel = condition_mask(out, a.where)
        old = out[a.new_var] if a.new_var in out.columns else pd.Series(np.nan if numeric else None, index=out.index,
                                                                         dtype="float64" if numeric else object)
        col = col.where(sel, old)
    if not numeric:
        col = col.astype(object).where(col.notna(), None)
    out[a.new_var] = col
    return out


def _describe_before(a: BeforeReferenceArgs) -> dict[str, str]:
    day = "on or before" if a.same_day == "before" else "before"
    if a.datetime:
        timed = f" and {a.dtc} has a time" if a.dtc else ""
        rule = (f"{a.datetime} < {a.reference_datetime} (when both are known{timed}), otherwise when "
                f"{a.date} {day} {a.reference_date}")
    else:
        rule = f"{a.date} {day} {a.reference_date}"
    text = (f"{_value_text(a.true_value)} when {rule}; {_value_text(a.false_value)} otherwise; missing when "
            f"{a.date} or {a.reference_date} is missing")
    if a.where:
        text = f"For records where {describe_where(a.where)}: {text[0].lower()}{text[1:]}"
    return {a.new_var: text}


_register(Verb(
    name="derive_var_before_reference", args=BeforeReferenceArgs,
    run=lambda df, a, ctx: derive_var_before_reference(df, a), outputs=lambda a: [a.new_var],
    describe=_describe_before,
    admiral="none (admiral writes the condition, e.g. ADT <= TRTSDT, as a filter of restrict_derivation())",
    reads=lambda a: [v for v in (a.date, a.reference_date, a.datetime, a.reference_datetime, a.dtc) if v]
    + where_variables(a.where)))


# --------------------------------------------------------------------------------------------
# derive_param_computed: a parameter computed from two or more others


class Orient(_Model):
    """Order the two operands per ``by_vars`` (e.g. per subject) so that the one with the larger
    value at a reference pair comes first (e.g. involved minus uninvolved free light chain).

    The reference pair is the ``mode`` (last/first) pair, in the step's ``by_vars`` order, whose
    first-parameter record meets ``reference``; without one, the ``fallback`` pair (a Notice per
    group), or no orientation (the plan's order) with ``fallback: none``.
    """

    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    reference: Where = Field(default_factory=list)
    mode: Literal["first", "last"] = "last"
    fallback: Literal["first", "last", "none"] = "first"
    label: str | None = None  # the reference in words, e.g. "pre-dose" (findings and method text)

    def text(self) -> str:
        return self.label or describe_where(self.reference)


class ParamComputedArgs(StepArgs):
    """Adds one record per ``by_vars`` group where every parameter of ``parameters`` has a record:
    AVAL = the operation over their AVALs (in the order listed).  With several records of a parameter
    in a group, the last in ``order`` is used.  The new record copies ``by_vars`` and ``keep_vars``
    from the first parameter's record and sets ``set_values`` (PARAMCD at least)."""

    parameters: list[str] = Field(min_length=2)
    by_vars: list[str] = Field(min_length=1)
    operation: Literal["sum", "difference", "product", "ratio"]
    order: list[str] = Field(default_factory=list)
    filter: Where = Field(default_factory=list)  # source records (always: AVAL not missing)
    keep_vars: list[str] = Field(default_factory=list)
    set_values: dict[str, Scalar]
    orient: Orient | None = None

    @model_validator(mode="after")
    def _check(self) -> "ParamComputedArgs":
        if not isinstance(self.set_values.get("PARAMCD"), str):
            raise ValueError("set_values must give the new PARAMCD")
        if self.orient is not None and (len(self.parameters) != 2 or self.operation not in ("difference", "ratio")):
            raise ValueError("orient applies to a difference or ratio of two parameters")
        return self


def derive_param_computed(dataset: pd.DataFrame, a: ParamComputedArgs, ctx: Context | None = None) -> pd.DataFrame:
    """Derived-parameter records (admiral ``derive_param_computed()``); input records unchanged."""
    by = list(a.by_vars)
    # only the variables used: a copy of every column of the selected records would be as large
    # as the dataset
    used = [*by, "AVAL", "PARAMCD", *_order_vars(a.order), *a.keep_vars,
            *(where_variables(a.orient.reference) if a.orient is not None else [])]
    src = dataset.loc[_mask(dataset, a.filter) & dataset["AVAL"].notna(), list(dict.fromkeys(used))]
    picked = []
    for i, code in enumerate(a.parameters):
        recs = src[src["PARAMCD"].eq(code).fillna(False).astype(bool)]
        recs = _sort(recs, list(a.order)) if a.order else recs
        recs = recs.drop_duplicates(by, keep="last")
        cols = by + ["AVAL"] + ([c for c in dict.fromkeys(a.keep_vars) if c not in by] if i == 0 else [])
        if i == 0 and a.orient is not None:
            ref = condition_mask(recs, a.orient.reference) if a.orient.reference else pd.Series(True, index=recs.index)
            recs = recs.assign(__ref=ref)
            cols = cols + ["__ref"]
        picked.append(recs[cols].rename(columns={"AVAL": f"__v{i}"}))
    pairs = picked[0]
    for other in picked[1:]:
        pairs = pairs.merge(other, on=by, how="inner")
    if pairs.empty:
        return dataset
    pairs = pairs.sort_values(by, kind="mergesort").reset_index(drop=True)
    vals = [pairs[f"__v{i}"].to_numpy(dtype="float64") for i in range(len(a.parameters))]
    if a.orient is not None:
        grp = list(a.orient.by_vars)
        first_larger = pd.Series(vals[0] >= vals[1], index=pairs.index)
        ref = pairs[pairs["__ref"].astype(bool)].drop_duplicates(grp, keep=a.orient.mode)
        chosen = ref[grp].assign(__swap=~first_larger[ref.index])
        if a.orient.fallback != "none":
            fb = pairs.drop_duplicates(grp, keep=a.orient.fallback)
            fb = fb[~fb.set_index(grp).index.isin(ref.set_index(grp).index)]
            if ctx is not None:
                for key in fb[grp].itertuples(index=False):  # one Notice per group without a reference pair
                    usubjid = key[grp.index("USUBJID")] if "USUBJID" in grp else None
                    ctx.findings.append(Finding(
                        rule=f"ADAM.{ctx.dataset}.{a.set_values['PARAMCD']}", severity="Notice", dataset=ctx.dataset,
                        usubjid=usubjid, variable="AVAL",
                        message=(f"no {a.orient.label or 'reference'} {a.parameters[0]}/{a.parameters[1]} pair"
                                 + ("" if a.orient.label else f" ({describe_where(a.orient.reference)})")
                                 + f": operands ordered at the {a.orient.fallback} pair")))
            chosen = pd.concat([chosen, fb[grp].assign(__swap=~first_larger[fb.index])], ignore_index=True)
        swap = pairs[grp].merge(chosen, on=grp, how="left")["__swap"].fillna(False).astype(bool).to_numpy()
        vals = [np.where(swap, vals[1], vals[0]), np.where(swap, vals[0], vals[1])]
    acc = arithmetic(a.operation, vals)
    keep = by + [c for c in dict.fromkeys(a.keep_vars) if c not in by]
    new = pairs[keep].copy()
    new["AVAL"] = acc.astype("float64")
    for var, value in a.set_values.items():
        new[var] = _constant(value, len(new), dataset[var] if var in dataset.columns else None)
    return _append(dataset, new)


_OPS = {"sum": "+", "difference": "-", "product": "x", "ratio": "/"}


def _describe_param_computed(a: ParamComputedArgs) -> dict[str, str]:
    code = a.set_values["PARAMCD"]
    per = ", ".join(a.by_vars)
    expr = f" {_OPS[a.operation]} ".join(f"AVAL of {p}" for p in a.parameters)
    several = f"; the last record of a parameter by {_order_text(a.order)} when several" if a.order else ""
    among = _where_text(a.filter, " among records where ")
    text = f"Records added for PARAMCD '{code}', one per {per} where {', '.join(a.parameters)} all have a value{among}"
    aval = f"For PARAMCD '{code}': {expr}, per {per}{several}"
    if a.orient is not None:
        o = a.orient
        fb = {"none": "", "first": "; the first pair when none does", "last": "; the last pair when none does"}[o.fallback]
        aval += (f"; the two are ordered per {', '.join(o.by_vars)} so that the one larger at the reference pair comes "
                 f"first (the {o.mode} pair where {describe_where(o.reference)}"
                 + (f", i.e. {o.label}" if o.label else "") + f"{fb})")
    texts = {var: f"{_value_text(v)} on the {text[0].lower()}{text[1:]}" for var, v in a.set_values.items()}
    texts["AVAL"] = aval
    if a.keep_vars:
        for var in a.keep_vars:
            texts.setdefault(var, f"For PARAMCD '{code}': {var} of the {a.parameters[0]} record")
    return texts


_register(Verb(
    name="derive_param_computed", args=ParamComputedArgs,
    run=lambda df, a, ctx: derive_param_computed(df, a, ctx),
    outputs=lambda a: ["AVAL", *a.set_values], describe=_describe_param_computed, admiral="derive_param_computed()",
    reads=lambda a: ["PARAMCD", "AVAL", *a.by_vars, *_order_vars(a.order), *a.keep_vars, *where_variables(a.filter)]
    + (where_variables(a.orient.reference) + a.orient.by_vars if a.orient else [])))


# --------------------------------------------------------------------------------------------
# derive_basetype_records


class BasetypeItem(_Model):
    basetype: str = Field(min_length=1)
    where: Where = Field(default_factory=list)  # empty: every record


class BasetypeArgs(StepArgs):
    """One copy of each record per baseline type whose ``where`` it meets, BASETYPE set to that
    type (copies of a record stay together, in the order listed).  Records meeting none are kept
    once with BASETYPE ``otherwise`` (missing by default, as admiral)."""

    basetypes: list[BasetypeItem] = Field(min_length=1)
    otherwise: str | None = None
    new_var: str = Field(default="BASETYPE", pattern=_NAME)


def derive_basetype_records(dataset: pd.DataFrame, a: BasetypeArgs) -> pd.DataFrame:
    """Records repeated per baseline type (admiral ``derive_basetype_records()``), vectorised."""
    n = len(dataset)
    masks = np.column_stack([_mask(dataset, b.where).to_numpy(dtype=bool) for b in a.basetypes] + [np.zeros(n, bool)])
    masks[:, -1] = ~masks[:, :-1].any(axis=1)  # records of no listed type: kept once
    rows, cols = np.nonzero(masks)  # row-major: a record's copies together, types in the order listed
    names = np.array([b.basetype for b in a.basetypes] + [a.otherwise], dtype=object)
    out = dataset.take(rows).reset_index(drop=True)
    out[a.new_var] = pd.Series(names[cols], dtype=object)
    return out


def _describe_basetype(a: BasetypeArgs) -> dict[str, str]:
    parts = [f"'{b.basetype}'" + (f" for records where {describe_where(b.where)}" if b.where else " for every record")
             for b in a.basetypes]
    rest = f"; {_value_text(a.otherwise)} for other records" if len(a.basetypes) else ""
    return {a.new_var: "; ".join(parts) + rest + "; a record meeting several conditions appears once per baseline type"}


_register(Verb(
    name="derive_basetype_records", args=BasetypeArgs, run=lambda df, a, ctx: derive_basetype_records(df, a),
    outputs=lambda a: [a.new_var], describe=_describe_basetype, admiral="derive_basetype_records()",
    reads=lambda a: where_variables([c for b in a.basetypes for c in b.where])))


# --------------------------------------------------------------------------------------------
# baseline flag, baseline value, change, percent change, reference range indicator


class AblflArgs(StepArgs):
    """``'Y'`` on the last record per ``by_vars`` (in ``order``) among records meeting ``filter``
    (the baseline window) that have a value in one of ``value_vars``."""

    by_vars: list[str] = Field(min_length=1)
    order: list[str] = Field(min_length=1)
    filter: Where = Field(default_factory=list)
    new_var: str = Field(default="ABLFL", pattern=_NAME)
    value_vars: list[str] = Field(default_factory=lambda: ["AVAL", "AVALC"])


_register(Verb(
    name="derive_var_ablfl", args=AblflArgs,
    run=lambda df, a, ctx: derive_var_ablfl(df, a.by_vars, a.order, _mask(df, a.filter), a.new_var, a.value_vars),
    outputs=lambda a: [a.new_var],
    describe=lambda a: {a.new_var: f"'Y' on the last record per {', '.join(a.by_vars)} (ordered by "
                                   f"{_order_text(a.order)}) with a non-missing {' or '.join(a.value_vars)}"
                                   f"{_where_text(a.filter, ' among records where ')}"},
    admiral="derive_var_extreme_flag(mode = \"last\") within restrict_derivation(filter = baseline window)",
    reads=lambda a: [*a.by_vars, *_order_vars(a.order), *where_variables(a.filter)]))


class BaseArgs(StepArgs):
    """``source_var`` of the baseline record (``flag_var`` = 'Y') on every record of its group."""

    by_vars: list[str] = Field(min_length=1)
    source_var: str = "AVAL"
    new_var: str = Field(default="BASE", pattern=_NAME)
    flag_var: str = "ABLFL"


_register(Verb(
    name="derive_var_base", args=BaseArgs,
    run=lambda df, a, ctx: derive_var_base(df, a.by_vars, a.source_var, a.new_var, a.flag_var),
    outputs=lambda a: [a.new_var],
    describe=lambda a: {a.new_var: f"{a.source_var} of the {a.flag_var} = 'Y' record of the same "
                                   f"{', '.join(a.by_vars)}; missing when there is none"},
    admiral="derive_var_base()", reads=lambda a: [*a.by_vars, a.source_var, a.flag_var]))


class ChgArgs(StepArgs):
    """Change from baseline on the records meeting ``filter`` (e.g. post-baseline); missing elsewhere."""

    filter: Where = Field(default_factory=list)
    new_var: str = Field(default="CHG", pattern=_NAME)


class PchgArgs(ChgArgs):
    """Percent change from baseline on the records meeting ``filter``; missing when BASE is 0 or missing."""

    new_var: str = Field(default="PCHG", pattern=_NAME)


_register(Verb(
    name="derive_var_chg", args=ChgArgs,
    run=lambda df, a, ctx: derive_var_chg(df, _mask(df, a.filter) if a.filter else None, a.new_var),
    outputs=lambda a: [a.new_var],
    describe=lambda a: {a.new_var: "AVAL - BASE" + (f" for records where {describe_where(a.filter)}; missing on other "
                                                    "records" if a.filter else "")},
    admiral="derive_var_chg()", reads=lambda a: ["AVAL", "BASE", *where_variables(a.filter)]))

_register(Verb(
    name="derive_var_pchg", args=PchgArgs,
    run=lambda df, a, ctx: derive_var_pchg(df, _mask(df, a.filter) if a.filter else None, a.new_var),
    outputs=lambda a: [a.new_var],
    describe=lambda a: {a.new_var: "(AVAL - BASE) / |BASE| x 100" + (
        f" for records where {describe_where(a.filter)}" if a.filter else "") + "; missing when BASE is 0 or missing"
        + ("; missing on other records" if a.filter else "")},
    admiral="derive_var_pchg()", reads=lambda a: ["AVAL", "BASE", *where_variables(a.filter)]))


class AnrindArgs(StepArgs):
    """Reference range indicator: 'LOW' below the lower limit, 'HIGH' above the upper, else 'NORMAL'."""

    source_var: str = "AVAL"
    low_var: str = "ANRLO"
    high_var: str = "ANRHI"
    new_var: str = Field(default="ANRIND", pattern=_NAME)


_register(Verb(
    name="derive_var_anrind", args=AnrindArgs,
    run=lambda df, a, ctx: derive_var_anrind(df, a.source_var, a.low_var, a.high_var, a.new_var),
    outputs=lambda a: [a.new_var],
    describe=lambda a: {a.new_var: f"'LOW' when {a.source_var} < {a.low_var}, 'HIGH' when {a.source_var} > "
                                   f"{a.high_var}, otherwise 'NORMAL' when at least one limit is known; missing when "
                                   f"{a.source_var} or both limits are missing"},
    admiral="derive_var_anrind()", reads=lambda a: [a.source_var, a.low_var, a.high_var]))


# --------------------------------------------------------------------------------------------
# derive_var_atoxgr_dir: toxicity grade from criteria given as data


class AtoxgrArgs(StepArgs):
    """Toxicity grade in one direction from grading criteria given in the plan (format:
    :class:`~cdisc_pipe.adam.derive_bds.ToxicityCriteria`, e.g. CTCAE v5.0 laboratory terms).

    Terms are matched on ``test_var``; grades are tested from the highest down and the first grade
    one of whose alternatives holds is taken, else '0'; missing when a limit needed before a grade
    is reached is missing, or the unit (``unit_var``) differs from the term's (a Warning).
    """

    criteria: ToxicityCriteria
    direction: Literal["L", "H"]
    test_var: str = "PARAMCD"
    unit_var: str | None = "AVALU"
    source_var: str = "AVAL"
    new_var: str | None = Field(default=None, pattern=_NAME)  # default ATOXGRL / ATOXGRH
    dsc_var: str | None = Field(default=None, pattern=_NAME)  # default ATOXDSCL / ATOXDSCH

    def names(self) -> tuple[str, str]:
        return self.new_var or f"ATOXGR{self.direction}", self.dsc_var or f"ATOXDSC{self.direction}"


def _run_atoxgr(df: pd.DataFrame, a: AtoxgrArgs, ctx: Context) -> pd.DataFrame:
    grd, dsc = a.names()
    out, findings = derive_var_atoxgr_dir(df, a.criteria, a.direction, a.test_var, a.unit_var, a.source_var)
    for default, name in ((f"ATOXGR{a.direction}", grd), (f"ATOXDSC{a.direction}", dsc)):
        if default != name:  # other names asked for: the default columns are left as they were
            out[name] = out[default]
            out = out.assign(**{default: df[default]}) if default in df.columns else out.drop(columns=[default])
    ctx.findings.extend(Finding(**{**f.to_dict(), "dataset": ctx.dataset, "variable": grd}) for f in findings)
    return out


def _atoxgr_reads(a: AtoxgrArgs) -> list[str]:
    refs = {c.bound.ref for t in a.criteria.terms if t.direction == a.direction for g in t.grades for c in g.any}
    reads = [a.test_var, a.source_var] + ([a.unit_var] if a.unit_var else [])
    reads += [v for r, v in (("LLN", "ANRLO"), ("ULN", "ANRHI"), ("BASE", "BASE")) if r in refs]
    if any(c.baseline for t in a.criteria.terms if t.direction == a.direction for g in t.grades for c in g.any):
        reads.append("BNRIND")
    return reads


def _describe_atoxgr(a: AtoxgrArgs) -> dict[str, str]:
    grd, dsc = a.names()
    c = a.criteria
    word = "low" if a.direction == "L" else "high"
    terms = "; ".join(f"{t.term} ({', '.join(t.testcd)})" for t in c.terms if t.direction == a.direction)
    text = (f"{c.name} v{c.version} grade, {word} direction, of {a.source_var} for the {a.test_var} values of each "
            f"term ({terms}). Grades are tested from the highest down: the first grade one of whose alternatives "
            f"holds is taken ({a.source_var} compared with a number in the term's unit, or with a multiple of "
            "ULN = ANRHI, LLN = ANRLO or BASE; baseline-abnormal alternatives use BNRIND), otherwise '0'. Values are "
            f"compared at {c.signif_digits} significant digits. Missing when {a.source_var} is missing, when a limit "
            "needed before a grade is reached is missing, or when the unit differs from the term's unit")
    return {dsc: f"Name of the {c.name} term graded in {grd} ({word} direction), for tests that have one", grd: text}


_register(Verb(
    name="derive_var_atoxgr_dir", args=AtoxgrArgs, run=_run_atoxgr, outputs=lambda a: list(reversed(a.names())),
    describe=_describe_atoxgr, admiral="derive_var_atoxgr_dir()", reads=_atoxgr_reads))


# --------------------------------------------------------------------------------------------
# derive_extreme_records: a copy of the first/last record per group, as a new record


def _set_none_typed(df: pd.DataFrame, values: Mapping[str, Scalar]) -> dict[str, Any]:
    """Missing values as the column's missing (NaN for numbers, NaT for dates)."""
    out: dict[str, Any] = {}
    for var, value in values.items():
        if value is None and var in df.columns:
            if pd.api.types.is_datetime64_any_dtype(df[var]):
                value = pd.NaT
            elif pd.api.types.is_numeric_dtype(df[var]) and not pd.api.types.is_bool_dtype(df[var]):
                value = np.nan
        elif isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[var] = value
    return out


class ExtremeRecordsArgs(StepArgs):
    """One new record per ``by_vars`` group: a copy of its first/last record (in ``order``) among those
    meeting ``filter``, with ``set_values`` (e.g. DTYPE 'MAXIMUM').  ``keep_vars``: the variables
    copied (others missing); default all."""

    by_vars: list[str] = Field(min_length=1)
    order: list[str] = Field(min_length=1)
    mode: Literal["first", "last"] = "first"
    filter: Where = Field(default_factory=list)
    set_values: dict[str, Scalar] = Field(min_length=1)
    keep_vars: list[str] | None = None


def _run_extreme_records(df: pd.DataFrame, a: ExtremeRecordsArgs, ctx: Context) -> pd.DataFrame:
    return derive_param_extreme_record(df, a.by_vars, a.order, _mask(df, a.filter), _set_none_typed(df, a.set_values),
                                       a.mode, a.keep_vars)


def _describe_extreme_records(a: ExtremeRecordsArgs) -> dict[str, str]:
    how = (f"records added, one per {', '.join(a.by_vars)}: a copy of the {a.mode} record ordered by "
           f"{_order_text(a.order)}{_where_text(a.filter, ' among records where ')}")
    return {var: f"{_value_text(v)} on the {how}" for var, v in a.set_values.items()}


_register(Verb(
    name="derive_extreme_records", args=ExtremeRecordsArgs, run=_run_extreme_records,
    outputs=lambda a: list(a.set_values), describe=_describe_extreme_records, admiral="derive_extreme_records()",
    reads=lambda a: [*a.by_vars, *_order_vars(a.order), *where_variables(a.filter), *(a.keep_vars or [])]))


# --------------------------------------------------------------------------------------------
# derive_extreme_event: a new parameter from the first/last event among several kinds


class EventItem(_Model):
    """An event: candidate records meeting ``condition`` give the new record ``set_values``."""

    condition: Where = Field(default_factory=list)  # empty: every candidate record
    set_values: dict[str, Scalar] = Field(min_length=1)


class ExtremeEventArgs(StepArgs):
    """One new record per ``by_vars`` group from its candidate records (``filter``): each event of
    ``events`` a record meets makes it a candidate event; the ``mode`` (first/last) one in ``order``
    is chosen, the earlier-listed event winning ties (``priority: order``), or the earliest-listed
    event that any record meets, then ``order`` (``priority: event``).  The new record copies
    ``by_vars`` and ``keep_vars`` from the chosen record and takes the event's ``set_values``,
    then ``set_values``; other variables are missing.  Groups without a candidate get no record."""

    by_vars: list[str] = Field(min_length=1)
    filter: Where = Field(default_factory=list)
    order: list[str] = Field(min_length=1)
    mode: Literal["first", "last"] = "first"
    priority: Literal["order", "event"] = "order"
    events: list[EventItem] = Field(min_length=1)
    keep_vars: list[str] = Field(default_factory=list)
    set_values: dict[str, Scalar] = Field(default_factory=dict)


def derive_extreme_event(dataset: pd.DataFrame, a: ExtremeEventArgs) -> pd.DataFrame:
    """Records added per :class:`ExtremeEventArgs` (admiral ``derive_extreme_event()``)."""
    used = [*a.by_vars, *a.keep_vars, *_order_vars(a.order), *(v for e in a.events for v in where_variables(e.condition))]
    cand = dataset.loc[_mask(dataset, a.filter), list(dict.fromkeys(used))]  # the variables used, not a copy of all
    idx, ev = [], []
    for i, event in enumerate(a.events):  # loop over events, not records
        hit = np.flatnonzero(_mask(cand, event.condition).to_numpy(dtype=bool))
        idx.append(hit)
        ev.append(np.full(len(hit), i))
    rows = np.concatenate(idx)
    if len(rows) == 0:
        return dataset
    events = np.concatenate(ev)
    # the earlier-listed event is preferred: with mode "last" it must sort last
    sel = cand.iloc[rows].assign(__ev=events if a.mode == "first" else -events)
    sel = sel.reset_index(drop=True)
    order = [*a.order, "__ev"] if a.priority == "order" else ["__ev", *a.order]
    chosen = _sort(sel, order).drop_duplicates(list(a.by_vars), keep=a.mode)
    keep = list(dict.fromkeys([*a.by_vars, *a.keep_vars]))
    new = chosen[keep].reset_index(drop=True)
    nr = np.abs(chosen["__ev"].to_numpy())
    for var in dict.fromkeys(v for e in a.events for v in e.set_values):
        # the chosen event's value; missing where that event does not set the variable
        new[var] = _column([e.set_values.get(var) for e in a.events], nr, new.index)
    for var, value in a.set_values.items():
        new[var] = _constant(value, len(new), dataset[var] if var in dataset.columns else None)
    return _append(dataset, new)


def _describe_extreme_event(a: ExtremeEventArgs) -> dict[str, str]:
    per = ", ".join(a.by_vars)
    among = _where_text(a.filter, " among records where ")
    prio = (f"the {a.mode} record ordered by {_order_text(a.order)}" if a.priority == "order" else
            f"the first event listed that a record meets, then its {a.mode} record ordered by {_order_text(a.order)}")
    lead = f"Records added, one per {per} with a candidate record{among}; the record chosen is {prio}"
    texts: dict[str, str] = {}
    for var, v in a.set_values.items():
        texts[var] = f"{_value_text(v)} on the {lead[0].lower()}{lead[1:]}"
    for var in dict.fromkeys(v for e in a.events for v in e.set_values):
        if var in texts:
            continue
        parts = [f"{_value_text(e.set_values[var])} " + (f"when {describe_where(e.condition)}" if e.condition else
                                                         "otherwise")
                 for e in a.events if var in e.set_values]
        texts[var] = f"{lead}: {'; '.join(parts)} (on that record)"
    return texts


_register(Verb(
    name="derive_extreme_event", args=ExtremeEventArgs, run=lambda df, a, ctx: derive_extreme_event(df, a),
    outputs=lambda a: list(dict.fromkeys([v for e in a.events for v in e.set_values] + list(a.set_values))),
    describe=_describe_extreme_event, admiral="derive_extreme_event()",
    reads=lambda a: [*a.by_vars, *_order_vars(a.order), *a.keep_vars, *where_variables(a.filter),
                     *where_variables([c for e in a.events for c in e.condition])]))


# --------------------------------------------------------------------------------------------
# checks (findings, no variables): BDS integrity, agreement of a flag with a source flag


class CheckBdsArgs(StepArgs):
    """BDS integrity findings: PARAMCD <-> PARAM one to one (Error), records with AVAL and AVALC
    both missing (Notice per parameter), at most one ABLFL = 'Y' per ``baseline_by`` group (Error)."""

    baseline_by: list[str] = Field(default_factory=list)


def _run_check_bds(df: pd.DataFrame, a: CheckBdsArgs, ctx: Context) -> pd.DataFrame:
    ctx.findings.extend(check_bds(df, ctx.dataset, a.baseline_by or None))
    return df


_register(Verb(
    name="check_bds", args=CheckBdsArgs, run=_run_check_bds, outputs=lambda a: [], describe=lambda a: {},
    admiral="none (admiral's assert_one_to_one() / signal_duplicate_records() checks)",
    reads=lambda a: list(a.baseline_by)))


class FlagAgreementArgs(StepArgs):
    """Compare ``flag_var`` with a source flag (e.g. ABLFL with SDTM --LOBXFL) on the records meeting
    ``filter``: a Notice per ``by_vars`` value (e.g. PARAMCD) where the flags differ, with the
    number of differing records; with ``best_of`` (e.g. BASETYPE) the value is reported only when
    no level of it agrees, with the smallest count."""

    flag_var: str = "ABLFL"
    source_flag_var: str
    filter: Where = Field(default_factory=list)
    by_vars: list[str] = Field(default_factory=lambda: ["PARAMCD"], min_length=1)
    best_of: list[str] = Field(default_factory=list)
    rule: str = Field(default="FLAGCHECK", pattern=r"^[A-Z][A-Z0-9_]*$")  # finding rule ADAM.<DATASET>.<rule>


def _run_flag_agreement(df: pd.DataFrame, a: FlagAgreementArgs, ctx: Context) -> pd.DataFrame:
    used = [a.source_flag_var, a.flag_var, *a.by_vars, *a.best_of]
    obs = df.loc[_mask(df, a.filter), list(dict.fromkeys(used))]  # the variables compared, not a copy of all
    differ = (obs[a.source_flag_var].eq("Y").fillna(False).astype(bool)
              != obs[a.flag_var].eq("Y").fillna(False).astype(bool))
    keys = [obs[v] for v in [*a.by_vars, *a.best_of]]
    counts = differ.groupby(keys, dropna=False).sum()
    if a.best_of:
        counts = counts.groupby(level=list(range(len(a.by_vars))), dropna=False).min()
    for key, n in counts[counts > 0].items():
        value = key if not isinstance(key, tuple) else ", ".join(map(str, key))
        ctx.findings.append(Finding(rule=f"ADAM.{ctx.dataset}.{a.rule}", severity="Notice", dataset=ctx.dataset,
                                    variable=a.flag_var, value=str(value),
                                    message=f"{int(n)} {value} record(s) where {a.flag_var} differs from "
                                            f"{a.source_flag_var}"))
    return df


_register(Verb(
    name="check_flag_agreement", args=FlagAgreementArgs, run=_run_flag_agreement, outputs=lambda a: [],
    describe=lambda a: {}, admiral="none (a cross-check of the derived flag with the SDTM flag)",
    reads=lambda a: [a.flag_var, a.source_flag_var, *a.by_vars, *a.best_of, *where_variables(a.filter)]))


class FilterCountedArgs(StepArgs):
    """Keep only the records where ``where`` holds; the number of records dropped is reported (a
    Notice with ``message``), so the run log says what was left out."""

    where: Where = Field(min_length=1)
    message: str = "record(s) not meeting the selection are not analysed"


def _run_filter_counted(df: pd.DataFrame, a: FilterCountedArgs, ctx: Context) -> pd.DataFrame:
    keep = condition_mask(df, a.where)
    dropped = int((~keep).sum())
    if dropped:
        ctx.findings.append(Finding(rule=f"ADAM.{ctx.dataset}.FILTERED", severity="Notice", dataset=ctx.dataset,
                                    message=f"{dropped} {a.message}"))
    return df[keep]


_register(Verb(
    name="filter_records_counted", args=FilterCountedArgs, run=_run_filter_counted, outputs=lambda a: [],
    describe=lambda a: {}, admiral="dplyr::filter() (with the count of records dropped reported)",
    reads=lambda a: where_variables(a.where)))
