"""Verbs for response and time-to-event analysis (oncology/haematology BDS), after admiralonco.

Records of assessments (per visit) and subject-level parameters derived from them:

- ``derive_var_response_aval``: AVAL from a response category (rank in an ordered list, or a map).
- ``derive_var_relative_flag``: flag the records before/after the first (last) record meeting a
  condition (admiral ``derive_var_relative_flag()``), e.g. "analysed up to the first PD".
- ``derive_param_confirmed_ovr``: per assessment, the confirmed overall response (IMWG style:
  a response is confirmed by the next evaluable assessment; PD by a next PD or being the last).
- ``derive_param_extreme_record``: one record per subject taking values of its first/last source
  record by an order, e.g. the best confirmed response or the last adequate assessment.
- ``derive_param_response``: Y/N per subject: has a record meeting a condition (admiralonco
  ``derive_param_response()``).
- ``derive_param_window_response``: Y/N per subject from the assessment closest to a target
  study day inside a window (e.g. response at month 3).
- ``derive_param_sustained``: Y/N per subject: records meeting a condition span at least N days
  without an interrupting record (e.g. sustained MRD negativity).
- ``derive_vars_crit_limit``: CRITy/CRITyFL: a qualifying result counts only when the same-day
  measurement of another dataset has a detection limit at or below a threshold.
- ``derive_vars_merged_within``: variables of other records of the dataset being built (e.g. the
  date a category was first reached), as ``derive_vars_merged`` does from another dataset.
- ``derive_vars_missed``: on event records of a source dataset, the last adequate assessment
  before the event and the number of planned assessments missed in between, for the time-to-event
  steps that follow ("event after >= 2 missed assessments is censored").

The TTE engine (``derive_param_tte``, used by the verb of that name) also lives here.  Nothing
here names a study, a test code or a category: the plan gives them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from cdisc_pipe.adam.conditions import condition_mask, describe_where, where_variables
from cdisc_pipe.adam.derive import _sort, derive_vars_merged, impute_dtc_dt, lookup
from cdisc_pipe.adam.settings import TteParameter, TteSource, Where
from cdisc_pipe.adam.verbs import _NAME, Context, StepArgs, Verb, _register, _value_text, _where_text
from cdisc_pipe.errors import Finding, InputError, Problem

__all__ = ["derive_param_tte", "derive_vars_missed", "confirmed_response", "UNIT_DAYS"]

_PARAMCD = r"^[A-Z][A-Z0-9_]{0,7}$"
Scalar = str | float | int | bool | None
UNIT_DAYS = {"DAYS": 1.0, "WEEKS": 7.0, "MONTHS": 30.4375, "YEARS": 365.25}


# --------------------------------------------------------------------------------------------
# helpers


def _mask(df: pd.DataFrame, where: Sequence[Any]) -> pd.Series:
    return condition_mask(df, where) if where else pd.Series(True, index=df.index)


def _append(df: pd.DataFrame, rec: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the records ``rec`` added after it (``rec`` alone when ``df`` is empty)."""
    if not len(df.columns):
        return rec.reset_index(drop=True)
    if not len(rec):  # no records: the variables still exist, so later steps can read them
        missing = [c for c in rec.columns if c not in df.columns]
        return df.assign(**{c: pd.Series(index=df.index, dtype=rec[c].dtype) for c in missing}) if missing else df
    return pd.concat([df, rec], ignore_index=True)


def _pick(src: pd.DataFrame, by: Sequence[str], order: Sequence[str], mode: str) -> pd.DataFrame:
    """First/last record per ``by`` group in ``order`` (stable: ties keep the input order)."""
    return _sort(src, list(order)).drop_duplicates(list(by), keep=mode)


def _group_value(df: pd.DataFrame, by: Sequence[str], values: pd.DataFrame, column: str) -> pd.Series:
    """``values[column]`` (one row per ``by`` group) looked up for every record of ``df``."""
    if not len(df):
        return pd.Series(index=df.index, dtype=values[column].dtype if column in values else object)
    key = df[list(by)].reset_index()
    got = key.merge(values[list(by) + [column]], on=list(by), how="left").set_index("index")[column]
    return got.reindex(df.index)


def _as_date(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).astype("datetime64[ns]")


class PopulationArgs(StepArgs):
    """Arguments of a subject-level parameter: one record per subject of the population."""

    paramcd: str = Field(pattern=_PARAMCD)
    population_dataset: str = "ADSL"
    population: Where = Field(default_factory=list)
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    set_values: dict[str, Scalar] = Field(default_factory=dict)  # constants on every new record

    @model_validator(mode="after")
    def _no_core_in_set(self) -> "PopulationArgs":
        if "PARAMCD" in self.set_values:
            raise ValueError("PARAMCD is given by paramcd, not set_values")
        return self


def _population(ctx: Context, a: PopulationArgs) -> pd.DataFrame:
    pop = ctx.frame(a.population_dataset)
    pop = pop[_mask(pop, a.population)]
    return pop[list(a.by_vars)].drop_duplicates().reset_index(drop=True)


def _pop_text(a: PopulationArgs) -> str:
    return f"one record per subject of {a.population_dataset}{_where_text(a.population)}"


def _finish(rec: pd.DataFrame, a: PopulationArgs) -> pd.DataFrame:
    rec.insert(len(a.by_vars), "PARAMCD", a.paramcd)
    for var, value in a.set_values.items():
        rec[var] = value
    return rec


def _pop_sources(a: Any) -> list[str]:
    names = [a.population_dataset.upper()]
    add = getattr(a, "dataset_add", None)
    if add:
        names.append(add.upper())
    return names


def _pop_outputs(a: PopulationArgs, written: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*a.by_vars, "PARAMCD", *written, *a.set_values]))


def _set_texts(a: PopulationArgs) -> dict[str, str]:
    texts = {"PARAMCD": f"Set to '{a.paramcd}' ({_pop_text(a)})"}
    texts.update({v: f"For PARAMCD {a.paramcd}: set to {_value_text(x)}" for v, x in a.set_values.items()})
    return texts


# --------------------------------------------------------------------------------------------
# derive_var_response_aval


class ResponseAvalArgs(StepArgs):
    """AVAL from a category: its position in ``order`` (1 = first) or its number in ``values``.

    Records where ``filter`` holds get the value (others keep theirs).  With ``report_unknown``, a
    category in neither is reported (Warning) and AVAL left missing; with ``report_missing_date``
    (a date variable), records without that date are reported (kept, but not analysable).
    """

    new_var: str = Field(default="AVAL", pattern=_NAME)
    source_var: str = "AVALC"
    filter: Where = Field(default_factory=list)
    order: list[str] = Field(default_factory=list)
    values: dict[str, float] = Field(default_factory=dict)
    report_unknown: bool = False
    report_missing_date: str | None = None

    @model_validator(mode="after")
    def _one_mapping(self) -> "ResponseAvalArgs":
        if bool(self.order) == bool(self.values):
            raise ValueError("give order (ranks 1, 2, ...) or values (a number per category), one of them")
        return self


def _run_response_aval(df: pd.DataFrame, a: ResponseAvalArgs, ctx: Context) -> pd.DataFrame:
    mapping = {c: float(i + 1) for i, c in enumerate(a.order)} if a.order else dict(a.values)
    sel = _mask(df, a.filter)
    out = df.copy(deep=False)
    old = out[a.new_var] if a.new_var in out.columns else pd.Series(np.nan, index=out.index)
    new = df[a.source_var].map(mapping).astype("float64")
    out[a.new_var] = pd.to_numeric(old, errors="coerce").astype("float64").where(~sel, new)
    seq = df["SRCSEQ"] if "SRCSEQ" in df.columns else pd.Series(np.nan, index=df.index)
    if a.report_unknown:
        bad = sel & df[a.source_var].notna() & new.isna()
        ctx.findings.extend(
            Finding(f"{ctx.dataset}.{a.source_var}.UNKNOWN", "Warning",
                    f"response {v!r} is not among the categories {', '.join(mapping)}; record kept, {a.new_var} missing",
                    dataset=ctx.dataset, usubjid=u, seq=s, variable=a.source_var, value=v)
            for u, s, v in zip(df.loc[bad, "USUBJID"], seq[bad], df.loc[bad, a.source_var]))
    if a.report_missing_date:
        bad = sel & df[a.report_missing_date].isna()
        ctx.findings.extend(
            Finding(f"{ctx.dataset}.{a.report_missing_date}.MISSING", "Warning",
                    "assessment date missing or not imputable; record kept, not analysed",
                    dataset=ctx.dataset, usubjid=u, seq=s, variable=a.report_missing_date)
            for u, s in zip(df.loc[bad, "USUBJID"], seq[bad]))
    return out


def _describe_response_aval(a: ResponseAvalArgs) -> dict[str, str]:
    if a.order:
        table = ", ".join(f"{c} {i + 1}" for i, c in enumerate(a.order))
        text = f"rank of {a.source_var} in the order {table} (lower is better)"
    else:
        table = ", ".join(f"{c} {v:g}" for c, v in a.values.items())
        text = f"{a.source_var} coded as {table}"
    text = f"For records where {describe_where(a.filter)}: {text}" if a.filter else text[0].upper() + text[1:]
    return {a.new_var: text + "; missing for any other value"}


_register(Verb(
    name="derive_var_response_aval", args=ResponseAvalArgs, run=_run_response_aval, outputs=lambda a: [a.new_var],
    describe=_describe_response_aval, admiral="admiralonco aval_resp() (in dplyr::mutate())",
    reads=lambda a: [a.source_var, *where_variables(a.filter)]
    + ([a.report_missing_date] if a.report_missing_date else [])))


# --------------------------------------------------------------------------------------------
# derive_var_relative_flag


class RelativeFlagArgs(StepArgs):
    """Flag, among the records where ``filter`` holds, those before (after) the first (last)
    record meeting ``condition`` in the same ``by_vars`` group, comparing the values of ``order``
    (a date, so records of the reference date count as on it).  Groups without a reference
    record are flagged entirely with ``flag_no_ref_groups``."""

    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    order: str
    new_var: str = Field(pattern=_NAME)
    condition: Where = Field(min_length=1)
    filter: Where = Field(default_factory=list)
    mode: Literal["first", "last"] = "first"
    selection: Literal["before", "after"] = "before"
    inclusive: bool = True
    flag_no_ref_groups: bool = True
    true_value: Scalar = "Y"
    false_value: Scalar = None


def _run_relative_flag(df: pd.DataFrame, a: RelativeFlagArgs, ctx: Context) -> pd.DataFrame:
    out = df.copy(deep=False)
    cand = _mask(df, a.filter)
    c = df[cand]
    refs = c[_mask(c, a.condition) & c[a.order].notna()]
    agg = refs.groupby(a.by_vars, dropna=False)[a.order].agg("min" if a.mode == "first" else "max")
    ref = _group_value(c, a.by_vars, agg.rename("__ref").reset_index(), "__ref")
    val = c[a.order]
    if a.selection == "before":
        hit = (val <= ref) if a.inclusive else (val < ref)
    else:
        hit = (val >= ref) if a.inclusive else (val > ref)
    hit = hit.fillna(False).astype(bool) & val.notna() & ref.notna()
    if a.flag_no_ref_groups:
        hit = hit | ref.isna()
    flag = pd.Series(np.full(len(df), a.false_value, dtype=object), index=df.index)
    flag[hit[hit].index] = a.true_value
    out[a.new_var] = flag
    return out


def _describe_relative_flag(a: RelativeFlagArgs) -> dict[str, str]:
    cmp = {("before", True): "on or before", ("before", False): "before", ("after", True): "on or after",
           ("after", False): "after"}[(a.selection, a.inclusive)]
    text = (f"{_value_text(a.true_value)} on records{_where_text(a.filter)} with {a.order} {cmp} the {a.mode} "
            f"record where {describe_where(a.condition)}, per {', '.join(a.by_vars)}")
    if a.flag_no_ref_groups:
        text += " (every such record when there is none)"
    if a.false_value is not None:
        text += f"; else {_value_text(a.false_value)}"
    return {a.new_var: text}


_register(Verb(
    name="derive_var_relative_flag", args=RelativeFlagArgs, run=_run_relative_flag, outputs=lambda a: [a.new_var],
    describe=_describe_relative_flag, admiral="derive_var_relative_flag()",
    reads=lambda a: [*a.by_vars, a.order, *where_variables(a.condition), *where_variables(a.filter)]))


# --------------------------------------------------------------------------------------------
# derive_param_confirmed_ovr


def confirmed_response(a: pd.DataFrame, by: Sequence[str], date: str, response: pd.Series, order: Sequence[str],
                       confirm: Sequence[str], not_evaluable: Sequence[str], pd_response: str,
                       sd_response: str | None, confirm_pd: bool) -> tuple[pd.Series, pd.Series]:
    """Confirmed category per record of ``a`` (sorted by ``by`` and ``date``) and the confirmed-PD mask.

    - A category in ``confirm`` is confirmed at the worse of it and the *next evaluable* record
      (``not_evaluable`` skipped) when that worse one is itself in ``confirm``; an unconfirmed one
      (or a response confirmed only to a level outside ``confirm``) counts as ``sd_response``.
    - ``pd_response`` is confirmed by a next evaluable ``pd_response`` or by being the last evaluable
      record (``confirm_pd``; otherwise every PD counts).
    - The subject keeps the best confirmed category reached so far until confirmed PD, after which
      every record is PD; not-evaluable records carry the current category (the first
      ``not_evaluable`` category before any).
    Returns (confirmed rank as float, 1 = first of ``order``; confirmed-PD mask).
    """
    ranks = {r: float(i + 1) for i, r in enumerate(order)}
    pd_rank, sd_rank = ranks[pd_response], ranks.get(sd_response) if sd_response else None
    conf_ranks = {ranks[r] for r in confirm if r in ranks}
    aval = response.map(ranks).astype("float64")
    keys = [a[b] for b in by]
    ev_mask = ~response.isin(list(not_evaluable))
    ev = aval[ev_mask]
    nxt = ev.groupby([k[ev_mask] for k in keys], sort=False).shift(-1)
    worse = pd.Series(np.fmax(ev.to_numpy(), nxt.to_numpy()), index=ev.index)  # no next -> the record itself
    needs = ev.isin(conf_ranks)
    confirmed = needs & nxt.notna() & worse.isin(conf_ranks)
    level = pd.Series(np.nan, index=ev.index)
    level[confirmed] = worse[confirmed]
    if sd_rank is not None:
        stable = (needs & ~confirmed) | (ev == sd_rank)
        level[stable & level.isna()] = sd_rank
    is_pd = ev == pd_rank
    pd_conf = is_pd & (nxt.isna() | (nxt == pd_rank)) if confirm_pd else is_pd
    lvl = level.reindex(a.index)
    pdm = pd_conf.reindex(a.index).fillna(False).astype(bool)
    best = lvl.groupby(keys, sort=False).cummin()
    best = best.groupby(keys, sort=False).ffill()  # cummin leaves NaN on NaN rows: carry the best forward
    pdcum = pdm.groupby(keys, sort=False).cummax().astype(bool)
    out = pd.Series(np.where(pdcum, pd_rank, best), index=a.index, dtype="float64")
    out = out.where(out.notna(), ranks[not_evaluable[0]] if not_evaluable else np.nan)
    return out, pdm


class ConfirmedOvrArgs(StepArgs):
    """Per assessment record (``source``), a new record ``paramcd`` with the confirmed response."""

    paramcd: str = Field(pattern=_PARAMCD)
    source: Where = Field(min_length=1)  # the analysed assessment records of the dataset being built
    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    date: str = "ADT"
    source_var: str = "AVALC"
    response_order: list[str] = Field(min_length=2)  # best first
    confirm_responses: list[str] = Field(min_length=1)
    not_evaluable: list[str] = Field(default_factory=list)
    pd_response: str
    sd_response: str | None = None  # what an unconfirmed response counts as
    confirm_pd: bool = True
    pd_flag: str | None = Field(default=None, pattern=_NAME)  # "Y" where confirmed PD starts
    analysis_flag: str | None = Field(default=None, pattern=_NAME)  # "Y" up to the first confirmed PD
    set_values: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> "ConfirmedOvrArgs":
        unknown = {*self.confirm_responses, *self.not_evaluable, self.pd_response,
                   *([self.sd_response] if self.sd_response else [])} - set(self.response_order)
        if unknown:
            raise ValueError(f"categories not in response_order: {sorted(unknown)}")
        return self


def _run_confirmed_ovr(df: pd.DataFrame, a: ConfirmedOvrArgs, ctx: Context) -> pd.DataFrame:
    src = df[_mask(df, a.source)]
    src = src.sort_values([*a.by_vars, a.date], kind="mergesort").copy(deep=False)
    aval, pdm = confirmed_response(src, a.by_vars, a.date, src[a.source_var], a.response_order,
                                   a.confirm_responses, a.not_evaluable, a.pd_response, a.sd_response, a.confirm_pd)
    cats = {float(i + 1): c for i, c in enumerate(a.response_order)}
    rec = src.copy(deep=False)
    rec["PARAMCD"] = a.paramcd
    rec["AVAL"] = aval
    rec["AVALC"] = aval.map(cats).astype(object)
    first_pd = src.loc[pdm].groupby(a.by_vars)[a.date].min().rename("__fp").reset_index()
    fp = _group_value(src, a.by_vars, first_pd, "__fp")
    if a.pd_flag:
        rec[a.pd_flag] = pd.Series(np.where(pdm & (src[a.date] == fp), "Y", None), index=src.index, dtype=object)
    if a.analysis_flag:
        rec[a.analysis_flag] = pd.Series(np.where(fp.isna() | (src[a.date] <= fp), "Y", None), index=src.index,
                                         dtype=object)
    for var, value in a.set_values.items():
        rec[var] = value
    return _append(df, rec)


def _describe_confirmed_ovr(a: ConfirmedOvrArgs) -> dict[str, str]:
    ne = f" ({', '.join(a.not_evaluable)} skipped)" if a.not_evaluable else ""
    sd = f"; an unconfirmed response counts as {a.sd_response}" if a.sd_response else ""
    pdt = (f"{a.pd_response} is confirmed by a next evaluable {a.pd_response} or when it is the last evaluable "
           "assessment" if a.confirm_pd else f"{a.pd_response} needs no confirmation")
    base = (f"For PARAMCD {a.paramcd}, one record per assessment where {describe_where(a.source)}: a response "
            f"{' or '.join(a.confirm_responses)} is confirmed at the worse of itself and the next evaluable "
            f"assessment{ne}{sd}; {pdt}; the subject keeps the best confirmed category reached so far until "
            f"confirmed {a.pd_response}; a not-evaluable assessment keeps the current category"
            + (f" ({a.not_evaluable[0]} before any)" if a.not_evaluable else ""))
    rank = ", ".join(f"{c} {i + 1}" for i, c in enumerate(a.response_order))
    texts = {"PARAMCD": f"Set to '{a.paramcd}' (one record per assessment where {describe_where(a.source)})",
             "AVALC": base, "AVAL": f"For PARAMCD {a.paramcd}: rank of AVALC in {rank}"}
    if a.pd_flag:
        texts[a.pd_flag] = f"For PARAMCD {a.paramcd}: 'Y' on the assessment where confirmed {a.pd_response} starts"
    if a.analysis_flag:
        texts[a.analysis_flag] = (f"For PARAMCD {a.paramcd}: 'Y' on assessments on or before the first confirmed "
                                  f"{a.pd_response} (all when there is none)")
    texts.update({v: f"For PARAMCD {a.paramcd}: set to {_value_text(x)}" for v, x in a.set_values.items()})
    return texts


_register(Verb(
    name="derive_param_confirmed_ovr", args=ConfirmedOvrArgs, run=_run_confirmed_ovr,
    outputs=lambda a: list(dict.fromkeys(["PARAMCD", "AVALC", "AVAL",
                                          *([a.pd_flag] if a.pd_flag else []),
                                          *([a.analysis_flag] if a.analysis_flag else []), *a.set_values])),
    describe=_describe_confirmed_ovr,
    admiral="admiralonco derive_param_confirmed_bor() / derive_param_confirmed_resp() (per assessment)",
    reads=lambda a: [*a.by_vars, a.date, a.source_var, *where_variables(a.source)]))


# --------------------------------------------------------------------------------------------
# derive_param_extreme_record


class ExtremeRecordArgs(PopulationArgs):
    """One record per subject: values of its first/last ``source`` record in ``order``."""

    source: Where = Field(min_length=1)
    dataset_add: str | None = None  # default: the dataset being built
    order: list[str] = Field(min_length=1)
    mode: Literal["first", "last"] = "first"
    new_vars: dict[str, str] = Field(min_length=1)  # {NEW: SOURCE VARIABLE}
    missing_values: dict[str, Scalar] = Field(default_factory=dict)  # subjects without such a record

    @model_validator(mode="after")
    def _known_missing(self) -> "ExtremeRecordArgs":
        extra = set(self.missing_values) - set(self.new_vars)
        if extra:
            raise ValueError(f"missing_values names variables not in new_vars: {sorted(extra)}")
        return self


def _run_extreme_record(df: pd.DataFrame, a: ExtremeRecordArgs, ctx: Context) -> pd.DataFrame:
    add = ctx.frame(a.dataset_add) if a.dataset_add else df
    rec = _population(ctx, a)
    if len(add.columns):
        src = add[_mask(add, a.source)]
        chosen = _pick(src, a.by_vars, a.order, a.mode)
        chosen = chosen[list(a.by_vars) + list(dict.fromkeys(a.new_vars.values()))]
        got = rec.merge(chosen, on=list(a.by_vars), how="left", indicator="__hit")
        hit = (got["__hit"] == "both").to_numpy()
    else:
        got, hit = rec, np.zeros(len(rec), dtype=bool)
    for new, old in a.new_vars.items():
        col = got[old] if old in got.columns else pd.Series(np.nan, index=got.index)
        if new in a.missing_values:
            col = col.where(hit, a.missing_values[new])
        rec[new] = col.to_numpy()
    return _append(df, _finish(rec, a))


def _describe_extreme_record(a: ExtremeRecordArgs) -> dict[str, str]:
    src = a.dataset_add or "this dataset"
    order = ", ".join(f"{o[1:]} descending" if o.startswith("-") else o for o in a.order)
    texts = _set_texts(a)
    for new, old in a.new_vars.items():
        text = (f"For PARAMCD {a.paramcd}: {old} of the {a.mode} record of {src} where {describe_where(a.source)} "
                f"(ordered by {order}), per {', '.join(a.by_vars)}")
        if new in a.missing_values:
            text += f"; {_value_text(a.missing_values[new])} when there is none"
        texts[new] = text
    return texts


_register(Verb(
    name="derive_param_extreme_record", args=ExtremeRecordArgs, run=_run_extreme_record,
    outputs=lambda a: _pop_outputs(a, list(a.new_vars)), describe=_describe_extreme_record,
    admiral="derive_extreme_records() / admiralonco derive_param_bor()", sources=_pop_sources,
    reads=lambda a: [] if a.dataset_add else [*where_variables(a.source), *(o.lstrip("-") for o in a.order),
                                              *a.new_vars.values()]))


# --------------------------------------------------------------------------------------------
# derive_param_response


class ResponseParamArgs(PopulationArgs):
    """Y/N per subject: Y when the subject has a ``source`` record; the first (``order``) such
    record gives ADT and the traceability variables."""

    source: Where = Field(min_length=1)
    dataset_add: str | None = None  # default: the dataset being built
    order: list[str] = Field(default_factory=lambda: ["ADT"])
    date: str = "ADT"  # the source variable giving ADT
    seq: str | None = "SRCSEQ"  # the source variable giving SRCSEQ (none: missing)
    srcdom: str | None = None  # default: the record's SRCDOM (from the dataset being built)
    srcvar: str | None = None
    yes: str = "Y"
    no: str = "N"
    aval_yes: float = 1.0
    aval_no: float = 0.0


_TRACE = ["SRCDOM", "SRCVAR", "SRCSEQ"]


def _trace(rec: pd.DataFrame, chosen: pd.DataFrame, hit: np.ndarray, a: Any, self_source: bool) -> None:
    """ADT, SRCDOM, SRCVAR, SRCSEQ of ``rec`` from the chosen records (``hit`` rows), else missing."""
    rec["ADT"] = _as_date(chosen[a.date].where(hit)) if a.date in chosen.columns else pd.NaT
    seq = chosen[a.seq] if a.seq and a.seq in chosen.columns else pd.Series(np.nan, index=chosen.index)
    rec["SRCSEQ"] = pd.to_numeric(seq, errors="coerce").where(hit).astype("float64").to_numpy()
    for var, given in (("SRCDOM", a.srcdom), ("SRCVAR", a.srcvar)):
        if given is None and self_source and var in chosen.columns:
            col = chosen[var]
        else:
            col = pd.Series(given, index=chosen.index, dtype=object)
        rec[var] = pd.Series(np.where(hit, col.to_numpy(dtype=object), None), dtype=object).to_numpy()


def _chosen(ctx: Context, df: pd.DataFrame, a: Any, rec: pd.DataFrame, src: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    if not len(src.columns):
        return rec.assign(__hit="left_only"), np.zeros(len(rec), dtype=bool)
    first = _pick(src, a.by_vars, a.order, "first")
    cols = list(dict.fromkeys([*a.by_vars, *[c for c in [a.date, a.seq, "SRCDOM", "SRCVAR", "AVALC"]
                                              if c and c in first.columns]]))
    got = rec[list(a.by_vars)].merge(first[cols], on=list(a.by_vars), how="left", indicator="__hit")
    return got, (got["__hit"] == "both").to_numpy()


def _run_response_param(df: pd.DataFrame, a: ResponseParamArgs, ctx: Context) -> pd.DataFrame:
    add = ctx.frame(a.dataset_add) if a.dataset_add else df
    rec = _population(ctx, a)
    src = add[_mask(add, a.source)] if len(add.columns) else add
    got, hit = _chosen(ctx, df, a, rec, src)
    rec["AVALC"] = np.where(hit, a.yes, a.no).astype(object)
    rec["AVAL"] = np.where(hit, a.aval_yes, a.aval_no).astype("float64")
    _trace(rec, got, hit, a, a.dataset_add is None)
    return _append(df, _finish(rec, a))


def _trace_texts(a: Any, src: str, which: str) -> dict[str, str]:
    dom = a.srcdom or "the record's SRCDOM"
    var = a.srcvar or "the record's SRCVAR"
    return {"ADT": f"For PARAMCD {a.paramcd}: {a.date} of {which} in {src}",
            "SRCDOM": f"For PARAMCD {a.paramcd}: {dom} when {which} exists",
            "SRCVAR": f"For PARAMCD {a.paramcd}: {var} when {which} exists",
            "SRCSEQ": f"For PARAMCD {a.paramcd}: " + (f"{a.seq} of {which}" if a.seq else "missing")}


def _describe_response_param(a: ResponseParamArgs) -> dict[str, str]:
    src = a.dataset_add or "this dataset"
    cond = f"{src} has a record where {describe_where(a.source)}"
    texts = _set_texts(a)
    texts["AVALC"] = f"For PARAMCD {a.paramcd}: '{a.yes}' when {cond}, else '{a.no}'"
    texts["AVAL"] = f"For PARAMCD {a.paramcd}: {a.aval_yes:g} when AVALC = '{a.yes}', {a.aval_no:g} otherwise"
    texts.update(_trace_texts(a, src, f"the first record (by {', '.join(a.order)}) where {describe_where(a.source)}"))
    return texts


_register(Verb(
    name="derive_param_response", args=ResponseParamArgs, run=_run_response_param,
    outputs=lambda a: _pop_outputs(a, ["AVALC", "AVAL", "ADT", *_TRACE]), describe=_describe_response_param,
    admiral="admiralonco derive_param_response()", sources=_pop_sources,
    reads=lambda a: [] if a.dataset_add else [*where_variables(a.source), *a.order, a.date]))


# --------------------------------------------------------------------------------------------
# derive_param_window_response


class WindowResponseArgs(PopulationArgs):
    """Y/N per subject from the ``source`` record whose study day (``date`` against
    ``reference_date``, no day 0) lies in [lower_day, upper_day] closest to ``target_day`` (ties:
    the earlier or the later): Y when its ``source_var`` is among ``responses``; N when it is not
    or when no record lies in the window.  ADT and traceability come from the record used."""

    source: Where = Field(min_length=1)
    reference_date: str
    date: str = "ADT"
    seq: str | None = "SRCSEQ"
    source_var: str = "AVALC"
    target_day: int
    lower_day: int
    upper_day: int
    tie: Literal["earlier", "later"] = "earlier"
    responses: list[str] = Field(min_length=1)
    srcdom: str | None = None
    srcvar: str | None = None

    @model_validator(mode="after")
    def _window(self) -> "WindowResponseArgs":
        if not self.lower_day <= self.target_day <= self.upper_day:
            raise ValueError("need lower_day <= target_day <= upper_day")
        return self


def _run_window_response(df: pd.DataFrame, a: WindowResponseArgs, ctx: Context) -> pd.DataFrame:
    rec = _population(ctx, a)
    if len(df.columns):
        src = df[_mask(df, a.source)].copy(deep=False)
        days = (_as_date(src[a.date]).dt.normalize() - _as_date(src[a.reference_date]).dt.normalize()).dt.days
        days = days.astype("float64")
        src["__day"] = np.where(days >= 0, days + 1, days)
        src = src[src["__day"].between(a.lower_day, a.upper_day)]
        src["__dist"] = (src["__day"] - a.target_day).abs()
        src["__tie"] = src["__day"] if a.tie == "earlier" else -src["__day"]
        a2 = a.model_copy(update={"order": ["__dist", "__tie"]})
        got, hit = _chosen(ctx, df, a2, rec, src)
    else:
        got, hit = rec.assign(AVALC=None), np.zeros(len(rec), dtype=bool)
    col = got[a.source_var] if a.source_var in got.columns else pd.Series(None, index=got.index, dtype=object)
    yes = hit & col.isin(a.responses).to_numpy()
    rec["AVALC"] = np.where(yes, "Y", "N").astype(object)
    rec["AVAL"] = np.where(yes, 1.0, 0.0)
    _trace(rec, got, hit, a, True)
    return _append(df, _finish(rec, a))


def _describe_window_response(a: WindowResponseArgs) -> dict[str, str]:
    pick = (f"the record where {describe_where(a.source)} with study day ({a.date} - {a.reference_date} + 1 "
            f"from {a.reference_date} on) from {a.lower_day} to {a.upper_day} closest to day {a.target_day} "
            f"(ties: the {a.tie})")
    texts = _set_texts(a)
    texts["AVALC"] = (f"For PARAMCD {a.paramcd}: 'Y' when {a.source_var} of {pick} is {', '.join(a.responses)}; "
                      "'N' when it is not or when no record lies in the window")
    texts["AVAL"] = f"For PARAMCD {a.paramcd}: 1 when AVALC = 'Y', 0 otherwise"
    texts.update(_trace_texts(a, "this dataset", f"the record where {describe_where(a.source)} closest to day "
                                                  f"{a.target_day} in the window"))
    return texts


_register(Verb(
    name="derive_param_window_response", args=WindowResponseArgs, run=_run_window_response,
    outputs=lambda a: _pop_outputs(a, ["AVALC", "AVAL", "ADT", *_TRACE]), describe=_describe_window_response,
    admiral="(no admiral counterpart: admiralonco derive_param_response() with a visit window)",
    sources=_pop_sources,
    reads=lambda a: [*where_variables(a.source), a.reference_date, a.date, a.source_var]))


# --------------------------------------------------------------------------------------------
# derive_param_sustained


class SustainedArgs(PopulationArgs):
    """Y/N per subject: the ``condition`` records among ``source`` (by date), from the first one
    up to the first ``interruption`` record after it, span at least ``min_days`` (last date -
    first date); ADT and traceability from the first ``condition`` record."""

    source: Where = Field(min_length=1)
    condition: Where = Field(min_length=1)
    interruption: Where = Field(min_length=1)
    min_days: int = Field(ge=0)
    date: str = "ADT"
    seq: str | None = "SRCSEQ"
    srcdom: str | None = None
    srcvar: str | None = None


def _run_sustained(df: pd.DataFrame, a: SustainedArgs, ctx: Context) -> pd.DataFrame:
    rec = _population(ctx, a)
    by = list(a.by_vars)
    if len(df.columns):
        src = df[_mask(df, a.source)].sort_values([*by, a.date], kind="mergesort")
        good = src[_mask(src, a.condition)]
        first = good.drop_duplicates(by).rename(columns={a.date: "__first"})[[*by, "__first"]]
        s2 = src.assign(__first=_group_value(src, by, first, "__first"))
        s2 = s2[s2["__first"].notna()]
        stop = s2[_mask(s2, a.interruption) & (s2[a.date] > s2["__first"])].groupby(by)[a.date].min()
        stop = stop.rename("__stop").reset_index()
        s2["__stop"] = _group_value(s2, by, stop, "__stop")
        run = s2[_mask(s2, a.condition) & (s2["__stop"].isna() | (s2[a.date] < s2["__stop"]))]
        g = run.groupby(by)[a.date]
        span = (g.max() - g.min()).dt.days
        ok = span[span >= a.min_days].rename("__ok").reset_index()
        firsts = good.drop_duplicates(by)
        firsts = firsts.merge(ok[by], on=by, how="inner") if len(ok) else firsts.iloc[:0]
        a2 = a.model_copy(update={"order": [a.date]})
        got, hit = _chosen(ctx, df, a2, rec, firsts)
    else:
        got, hit = rec, np.zeros(len(rec), dtype=bool)
    rec["AVALC"] = np.where(hit, "Y", "N").astype(object)
    rec["AVAL"] = np.where(hit, 1.0, 0.0)
    _trace(rec, got, hit, a, True)
    return _append(df, _finish(rec, a))


def _describe_sustained(a: SustainedArgs) -> dict[str, str]:
    texts = _set_texts(a)
    texts["AVALC"] = (f"For PARAMCD {a.paramcd}: 'Y' when, among records where {describe_where(a.source)}, those where "
                      f"{describe_where(a.condition)} from the first one up to the first later record where "
                      f"{describe_where(a.interruption)} span at least {a.min_days} days ({a.date}), else 'N'")
    texts["AVAL"] = f"For PARAMCD {a.paramcd}: 1 when AVALC = 'Y', 0 otherwise"
    texts.update(_trace_texts(a, "this dataset", f"the first record where {describe_where(a.condition)}"))
    return texts


_register(Verb(
    name="derive_param_sustained", args=SustainedArgs, run=_run_sustained,
    outputs=lambda a: _pop_outputs(a, ["AVALC", "AVAL", "ADT", *_TRACE]), describe=_describe_sustained,
    admiral="(no admiral counterpart: sustained response, cf. admiralonco derive_param_confirmed_resp())",
    sources=_pop_sources,
    reads=lambda a: [*where_variables(a.source), *where_variables(a.condition), *where_variables(a.interruption),
                     a.date]))


# --------------------------------------------------------------------------------------------
# derive_vars_crit_limit


class CritLimitArgs(StepArgs):
    """CRITy/CRITyFL on the records where ``filter`` holds: the flag is Y when the record meets
    ``condition`` and the same-day measurement of ``dataset_add`` (records ``filter_add``, date
    from ``add_dtc``; the smallest ``add_value`` of the day) is at most ``max_value`` (or there is
    none), else N.  A record meeting ``condition`` only at a larger value is reported (Notice)."""

    crit_var: str = Field(pattern=_NAME)
    crit_text: str = Field(max_length=200)
    flag_var: str = Field(pattern=_NAME)
    filter: Where = Field(default_factory=list)
    condition: Where = Field(min_length=1)
    date: str = "ADT"
    dataset_add: str
    filter_add: Where = Field(default_factory=list)
    add_dtc: str
    add_value: str
    max_value: float
    finding_rule: str | None = None  # default <DATASET>.<flag_var>.LIMIT


def _run_crit_limit(df: pd.DataFrame, a: CritLimitArgs, ctx: Context) -> pd.DataFrame:
    out = df.copy(deep=False)
    sel = _mask(df, a.filter)
    limit = pd.Series(np.nan, index=df.index)
    add = ctx.frame(a.dataset_add)
    needed = {a.add_dtc, a.add_value, "USUBJID", *where_variables(a.filter_add)}
    if needed <= set(add.columns) and len(df):
        add = add[_mask(add, a.filter_add)]
        day = impute_dtc_dt(add[a.add_dtc], "n", "first")[0] if not pd.api.types.is_datetime64_any_dtype(
            add[a.add_dtc]) else add[a.add_dtc].dt.normalize()
        m = pd.DataFrame({"USUBJID": add["USUBJID"].to_numpy(), "__d": _as_date(day).to_numpy(),
                          "__v": pd.to_numeric(add[a.add_value], errors="coerce").to_numpy()})
        m = m[m["__d"].notna() & m["__v"].notna()].groupby(["USUBJID", "__d"], as_index=False)["__v"].min()
        key = pd.DataFrame({"USUBJID": df["USUBJID"].to_numpy(), "__d": _as_date(df[a.date]).to_numpy(),
                            "__row": np.arange(len(df))})
        got = key.merge(m, on=["USUBJID", "__d"], how="left").sort_values("__row")["__v"].to_numpy()
        limit = pd.Series(got, index=df.index)
    qual = sel & _mask(df, a.condition)
    coarse = qual & limit.notna() & (limit > a.max_value)
    crit = out[a.crit_var].astype(object) if a.crit_var in out.columns else pd.Series(None, index=df.index, dtype=object)
    flag = out[a.flag_var].astype(object) if a.flag_var in out.columns else pd.Series(None, index=df.index, dtype=object)
    out[a.crit_var] = crit.where(~sel, a.crit_text)
    out[a.flag_var] = flag.where(~sel, pd.Series(np.where(qual & ~coarse, "Y", "N"), index=df.index, dtype=object))
    rule = a.finding_rule or f"{ctx.dataset}.{a.flag_var}.LIMIT"
    seq = df["SRCSEQ"] if "SRCSEQ" in df.columns else pd.Series(np.nan, index=df.index)
    ctx.findings.extend(
        Finding(rule, "Notice", f"{describe_where(a.condition)} at {a.add_value} {v:g}, larger than {a.max_value:g}: "
                                f"{a.flag_var} = N", dataset=ctx.dataset, usubjid=u, seq=s, variable=a.flag_var)
        for u, s, v in zip(df.loc[coarse, "USUBJID"], seq[coarse], limit[coarse]))
    return out


def _describe_crit_limit(a: CritLimitArgs) -> dict[str, str]:
    on = _where_text(a.filter, " on records where ")
    return {
        a.crit_var: f"Set to '{a.crit_text}'{on}",
        a.flag_var: (f"'Y'{on} when {describe_where(a.condition)} and the same-day {a.dataset_add} record"
                     f"{_where_text(a.filter_add)} (date of {a.add_dtc}) has {a.add_value} <= {a.max_value:g} "
                     f"(or there is no such record), else 'N'"),
    }


_register(Verb(
    name="derive_vars_crit_limit", args=CritLimitArgs, run=_run_crit_limit, outputs=lambda a: [a.crit_var, a.flag_var],
    describe=_describe_crit_limit, admiral="derive_vars_crit_flag()", sources=lambda a: [a.dataset_add.upper()],
    reads=lambda a: [a.date, *where_variables(a.filter), *where_variables(a.condition)]))


# --------------------------------------------------------------------------------------------
# derive_vars_merged_within


class MergedWithinArgs(StepArgs):
    """Variables of another record of the dataset being built (records ``filter_add``; the
    first/last by ``order`` when several), merged onto every record of the same ``by_vars``."""

    by_vars: list[str] = Field(default_factory=lambda: ["USUBJID"])
    new_vars: dict[str, str] = Field(min_length=1)  # {NEW: SOURCE}
    filter_add: Where = Field(min_length=1)
    order: list[str] = Field(default_factory=list)
    mode: Literal["first", "last"] | None = None

    @model_validator(mode="after")
    def _mode_needs_order(self) -> "MergedWithinArgs":
        if self.mode and not self.order:
            raise ValueError("mode first/last needs an order")
        return self


def _run_merged_within(df: pd.DataFrame, a: MergedWithinArgs, ctx: Context) -> pd.DataFrame:
    mask = _mask(df, a.filter_add)
    return derive_vars_merged(df, df, a.by_vars, new_vars=a.new_vars, filter_add=lambda x: mask,
                              order=a.order or None, mode=a.mode)


def _describe_merged_within(a: MergedWithinArgs) -> dict[str, str]:
    which = f"{a.mode} " if a.mode else ""
    order = f" (ordered by {', '.join(a.order)})" if a.order else ""
    return {new: f"{src} of the {which}record where {describe_where(a.filter_add)}{order}, per {', '.join(a.by_vars)}"
            for new, src in a.new_vars.items()}


_register(Verb(
    name="derive_vars_merged_within", args=MergedWithinArgs, run=_run_merged_within, outputs=lambda a: list(a.new_vars),
    describe=_describe_merged_within, admiral="derive_vars_joined() (dataset_add = the dataset itself)",
    reads=lambda a: [*a.by_vars, *a.new_vars.values(), *where_variables(a.filter_add), *(o.lstrip("-") for o in a.order)]))


# --------------------------------------------------------------------------------------------
# derive_vars_missed (engine function and the verb preparing a TTE source)


def derive_vars_missed(events: pd.DataFrame, assessments: pd.DataFrame, schedule_days: Sequence[int],
                       window_days: int, reference_date: str = "TRTSDT", seq: str = "ASEQ",
                       names: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Add to event records (USUBJID, ADT, ``reference_date``) the last adequate assessment strictly
    before the event (``LADT``, its ``LASEQ``) and ``NMISS``: planned assessment days (study day,
    ``reference_date`` = day 1) lying more than ``window_days`` after that assessment (or after
    day 1 without one) and more than ``window_days`` before the event.  ``assessments`` has
    USUBJID, ADT and ``seq`` of the adequate records.  ``names`` renames LADT/LASEQ/NMISS.
    """
    nm = {"LADT": "LADT", "LASEQ": "LASEQ", "NMISS": "NMISS", **(names or {})}
    ev = events[["USUBJID", "ADT"]].assign(__row=np.arange(len(events)))
    cand = ev[["__row", "USUBJID", "ADT"]].merge(
        assessments[["USUBJID", "ADT", seq]].rename(columns={"ADT": "__adt", seq: "__seq"}), on="USUBJID")
    cand = cand[cand["__adt"] < cand["ADT"]].sort_values(["__row", "__adt", "__seq"], kind="mergesort")
    last = cand.drop_duplicates("__row", keep="last").set_index("__row")
    out = events.copy(deep=False)
    rows = pd.Series(np.arange(len(out)), index=out.index)
    out[nm["LADT"]] = lookup(rows, last["__adt"]).astype("datetime64[ns]").to_numpy()
    out[nm["LASEQ"]] = lookup(rows, last["__seq"]).astype("float64").to_numpy()
    trt = pd.to_datetime(out[reference_date])
    last_day = ((out[nm["LADT"]] - trt).dt.days + 1).fillna(1.0).to_numpy(dtype="float64")
    event_day = ((pd.to_datetime(out["ADT"]) - trt).dt.days + 1).to_numpy(dtype="float64")
    planned = np.asarray(list(schedule_days), dtype="float64")
    if planned.size:
        missed = (planned[None, :] > last_day[:, None] + window_days) & (planned[None, :] < event_day[:, None] - window_days)
        n = missed.sum(axis=1).astype("float64")
    else:
        n = np.zeros(len(out))
    out[nm["NMISS"]] = np.where(np.isnan(event_day), np.nan, n)
    return out


class MissedArgs(StepArgs):
    """On the event records (``events``) of ``dataset``, add ``_NMISS`` (planned assessments
    missed before the event), ``_LADT``/``_LASEQ`` (the last adequate assessment before it, from
    the ``assessments`` records) - for the time-to-event steps of this plan that read ``dataset``
    (e.g. "PD after 2 or more missed assessments: censored at the last adequate assessment").
    The dataset itself is not changed outside this plan."""

    dataset: str
    events: Where = Field(min_length=1)
    assessments: Where = Field(min_length=1)
    schedule_days: list[int] = Field(min_length=1)  # planned assessment study days
    window_days: int = Field(ge=0)
    reference_date: str = "TRTSDT"  # study day 1
    seq: str = "ASEQ"
    # working variables (the dataset being built does not output them), described in define.xml
    # wherever the time-to-event conditions that read them are
    nmiss_var: str = Field(default="_NMISS", pattern=r"^_[A-Z][A-Z0-9_]{0,30}$")
    ladt_var: str = Field(default="_LADT", pattern=r"^_[A-Z][A-Z0-9_]{0,30}$")
    laseq_var: str = Field(default="_LASEQ", pattern=r"^_[A-Z][A-Z0-9_]{0,30}$")


def _run_missed(df: pd.DataFrame, a: MissedArgs, ctx: Context) -> pd.DataFrame:
    src = ctx.frame(a.dataset).copy(deep=False)
    adequate = src[_mask(src, a.assessments)]
    ev = src.loc[_mask(src, a.events) & src["ADT"].notna(), ["USUBJID", "ADT", a.reference_date]]
    names = {"LADT": a.ladt_var, "LASEQ": a.laseq_var, "NMISS": a.nmiss_var}
    ev = derive_vars_missed(ev, adequate, a.schedule_days, a.window_days, a.reference_date, a.seq, names)
    for c in names.values():
        src[c] = ev[c].reindex(src.index)
    src[a.ladt_var] = pd.to_datetime(src[a.ladt_var]).astype("datetime64[ns]")
    # later steps of this plan read the dataset with the new variables (the source frame is not changed)
    ctx.frames = {**ctx.frames, a.dataset.upper(): src}
    return df


def _describe_missed(a: MissedArgs) -> dict[str, str]:
    on = f"{a.dataset} records where {describe_where(a.events)}"
    last = (f"the last adequate assessment of {a.dataset} (a record where {describe_where(a.assessments)}) dated "
            "before the event")
    return {
        a.nmiss_var: (f"On {on}: the number of planned assessment study days ({', '.join(map(str, a.schedule_days))}; "
                      f"{a.reference_date} = day 1) lying more than {a.window_days} days after {last} (after day 1 "
                      f"without one) and more than {a.window_days} days before the event"),
        a.ladt_var: f"On {on}: ADT of {last}",
        a.laseq_var: f"On {on}: {a.seq} of {last}",
    }


_register(Verb(
    name="derive_vars_missed", args=MissedArgs, run=_run_missed,
    outputs=lambda a: [a.nmiss_var, a.ladt_var, a.laseq_var], describe=_describe_missed,
    admiral="(no admiral counterpart: the missed-assessment rule of FDA PFS censoring, for derive_param_tte())",
    sources=lambda a: [a.dataset.upper()],
    augments=lambda a: {a.dataset.upper(): [a.nmiss_var, a.ladt_var, a.laseq_var]}))


# --------------------------------------------------------------------------------------------
# the TTE engine (the derive_param_tte verb of verbs.py runs it)


def _candidates(sources: Sequence[TteSource], frames: dict[str, pd.DataFrame], start: pd.DataFrame,
                adsl: pd.DataFrame, paramcd: str) -> pd.DataFrame:
    """Records of every source meeting its conditions, as (USUBJID, ADT, CNSR, EVNTDESC, CNSDTDSC,
    SRCDOM, SRCVAR, SRCSEQ, __prio, __ov)."""
    parts = []
    for prio, src in enumerate(sources):
        if src.dataset not in frames:
            raise InputError(Problem("time-to-event parameter", f"tte {paramcd} source {src.id} names dataset {src.dataset}, which was not built",
                                     entry=f"tte[{paramcd}].{src.id}.dataset", value=src.dataset), stage="adam")
        df = frames[src.dataset]
        # Only the variables this source refers to are joined (not the whole subject dataset per
        # source); a variable absent everywhere still raises KeyError below.
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
            raise InputError(Problem("time-to-event parameter", f"tte {paramcd} source {src.id} refers to variable {exc.args[0]} "
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
    """One time-to-event parameter for the subjects of ``parameter.population`` with a start date.

    admiral ``derive_param_tte()``: per subject the earliest event (CNSR 0) wins; without one, the
    latest censoring date (ties: the source listed first); a censoring source marked ``overrides``
    wins over everything.  AVAL = (ADT - STARTDT + 1) in days, divided for other units.
    ``frames`` holds the source datasets by name; ``adsl`` is the subject-level dataset.  Returns
    the records (USUBJID, PARAMCD, PARAM, PARCAT1, STARTDT, ADT, AVAL, AVALU, CNSR, EVNTDESC,
    CNSDTDSC, SRCDOM, SRCVAR, SRCSEQ) and findings for subjects without any event or censoring date.
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
