"""Analyses: ADaM frames in, table/figure models out (pure; no I/O, no rendering).

A :class:`Table` carries its population, its ADaM source and its method, so every number can be
traced; ``data`` holds the unrounded values for the JSON output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cdisc_pipe.results import stats
from cdisc_pipe.results.plan import Analysis, Filter, ResultsPlan

OVERALL = "Overall"


@dataclass
class Table:
    id: str
    title: str
    population: str
    source: str
    method: str
    columns: list[str]
    rows: list[list[str]]
    data: list[dict[str, Any]] = field(default_factory=list)
    footnotes: list[str] = field(default_factory=list)


@dataclass
class KMSeries:
    group: str
    curve: stats.KMCurve
    at_risk: list[int]


@dataclass
class Figure:
    id: str
    title: str
    source: str
    kind: str  # "km" | "profile" | "waterfall" | "swimmer" | "event_timeline"
    payload: dict[str, Any]
    note: str = ""
    population: str = ""  # set by compute() from the analysis' population


@dataclass
class Results:
    title: str
    tables: list[Table]
    figures: list[Figure]
    problems: list[str]


# ---------------------------------------------------------------- helpers

def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "NE"
    return f"{x:.{digits}f}"


def _str(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _texts(s: pd.Series) -> pd.Series:
    """``s.map(_str)``, computed once per distinct value of a text or numeric column (a Python call
    per record over a million-record BDS dataset took most of a report's table time)."""
    if not (isinstance(s.dtype, pd.StringDtype) or pd.api.types.is_numeric_dtype(s.dtype)) \
            or pd.api.types.is_bool_dtype(s.dtype):
        return s.map(_str)
    codes, uniq = pd.factorize(s, use_na_sentinel=True)  # missing (NaN): code -1, shown as ""
    values = np.array([_str(u) for u in uniq] + [""], dtype=object)
    return pd.Series(values[codes], index=s.index, dtype="str")


def select(frame: pd.DataFrame, flt: Filter) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for var, values in flt.equals.items():
        if var not in frame.columns:
            raise KeyError(var)
        wanted = {_str(v) for v in values}
        mask &= _texts(frame[var]).isin(wanted)
    for var, low in flt.at_least.items():
        if var not in frame.columns:
            raise KeyError(var)
        mask &= pd.to_numeric(frame[var], errors="coerce") >= low
    return frame[mask]


def _shown(v: Any) -> str:
    """A filter value as text; the empty value (a blank variable) as "(blank)"."""
    return _str(v) or "(blank)"


def describe_filter(flt: Filter) -> str:
    parts = [f"{k} = {', '.join(_shown(v) for v in vals)}" if len(vals) == 1 else
             f"{k} in ({', '.join(_shown(v) for v in vals)})" for k, vals in flt.equals.items()]
    parts += [f"{k} >= {_str(float(v))}" for k, v in flt.at_least.items()]
    return " and ".join(parts)


class Context:
    """ADSL-based populations and groups shared by all analyses."""

    def __init__(self, plan: ResultsPlan, frames: dict[str, pd.DataFrame]):
        self.plan = plan
        self.frames = {k.upper(): v for k, v in frames.items()}
        self.adsl = self.frames["ADSL"]

    def population(self, key: str) -> pd.DataFrame:
        pop = self.plan.populations[key]
        s = self.adsl
        s = s[_texts(s[pop.flag]) == "Y"]
        by = self.plan.by
        out = s[["USUBJID"]].copy()
        out["_GROUP"] = _texts(s[by.variable])
        out["_ORDER"] = pd.to_numeric(s[by.order], errors="coerce") if by.order else 0
        return out

    def groups(self, pop: pd.DataFrame) -> list[str]:
        g = pop.sort_values(["_ORDER", "_GROUP"])["_GROUP"].drop_duplicates().tolist()
        return g + ([OVERALL] if self.plan.by.overall else [])

    @staticmethod
    def members(pop: pd.DataFrame, group: str) -> pd.DataFrame:
        return pop if group == OVERALL else pop[pop["_GROUP"] == group]

    def population_text(self, key: str, pop: pd.DataFrame) -> str:
        p = self.plan.populations[key]
        return f"{p.label} (ADSL.{p.flag} = Y; N = {len(pop)})"

    def records(self, a: Analysis, pop: pd.DataFrame) -> pd.DataFrame:
        df = self.frames[a.dataset.upper()]
        if a.paramcd and "PARAMCD" in df.columns:
            df = df[df["PARAMCD"].isin(a.paramcd)]
        df = select(df, a.where)
        df = df[df["USUBJID"].isin(pop["USUBJID"])]
        return df.merge(pop[["USUBJID", "_GROUP"]], on="USUBJID", how="left")

    def source_text(self, a: Analysis) -> str:
        s = a.dataset.upper()
        if a.paramcd:
            s += ", PARAMCD " + ("= " + a.paramcd[0] if len(a.paramcd) == 1 else "in (" + ", ".join(a.paramcd) + ")")
        w = describe_filter(a.where)
        return s + (f", where {w}" if w else "")


def _n_pct(n: int, N: int) -> str:
    return f"{n} ({100.0 * n / N:.1f}%)" if N else f"{n}"


# ---------------------------------------------------------------- analyses

def rate(ctx: Context, a: Analysis) -> Table:
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    wanted = {_str(v) for v in a.values}
    responders = set(recs.loc[_texts(recs[a.variable]).isin(wanted), "USUBJID"])
    rows, data = [], []
    for g in ctx.groups(pop):
        m = ctx.members(pop, g)
        r = stats.clopper_pearson(int(m["USUBJID"].isin(responders).sum()), len(m))
        rows.append([g, f"{r.n}/{r.N}", _fmt(r.pct), f"{_fmt(r.lower)}, {_fmt(r.upper)}"])
        data.append({"group": g, "n": r.n, "N": r.N, "pct": r.pct, "ci_lower": r.lower, "ci_upper": r.upper})
    vals = ", ".join(_str(v) for v in a.values)
    return Table(a.id, a.title, ctx.population_text(a.population, pop), ctx.source_text(a),
                 f"n = subjects with {a.variable} in ({vals}); N = subjects in the population (subjects without "
                 "a record count as not responding); exact (Clopper-Pearson) two-sided 95% CI, "
                 "scipy.stats.binomtest(...).proportion_ci(method='exact')",
                 [ctx.plan.by.label, "n/N", "%", "95% CI (%)"], rows, data)


def categories(ctx: Context, a: Analysis) -> Table:
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    groups = ctx.groups(pop)
    cats = list(a.categories) or sorted(_texts(recs[a.variable]).unique())
    rows, data = [], []
    for c in cats + ["Missing"]:
        row = [c]
        for g in groups:
            m = ctx.members(pop, g)
            sub = recs[recs["USUBJID"].isin(m["USUBJID"])]
            if c == "Missing":
                n = int((~m["USUBJID"].isin(sub["USUBJID"])).sum()) + int((_texts(sub[a.variable]) == "").sum())
            else:
                n = int(sub.loc[_texts(sub[a.variable]) == c, "USUBJID"].nunique())
            row.append(_n_pct(n, len(m)))
            data.append({"category": c, "group": g, "n": n, "N": len(m)})
        if c != "Missing" or any(d["n"] for d in data if d["category"] == "Missing"):
            rows.append(row)
    return Table(a.id, a.title, ctx.population_text(a.population, pop), ctx.source_text(a),
                 f"subjects by {a.variable}; percentages of the subjects in the population of each column",
                 ["Category"] + [f"{g} (N={len(ctx.members(pop, g))})" for g in groups], rows, data)


def continuous(ctx: Context, a: Analysis) -> Table:
    """n, mean (SD), median, min, max of each ``statistics_of`` variable, one record per subject
    (e.g. ADSL.AGE for a demographics table)."""
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    groups = ctx.groups(pop)
    rows, data = [], []
    for var in a.statistics_of:
        if var not in recs.columns:
            raise KeyError(var)
        per = {g: stats.describe(pd.to_numeric(recs.loc[recs["USUBJID"].isin(ctx.members(pop, g)["USUBJID"]), var],
                                               errors="coerce").tolist()) for g in groups}
        for label, cell in (("n", lambda s: str(s.n)), ("Mean (SD)", lambda s: f"{_fmt(s.mean)} ({_fmt(s.sd, 2)})"),
                            ("Median", lambda s: _fmt(s.median)), ("Min, max", lambda s: f"{_fmt(s.min)}, {_fmt(s.max)}")):
            rows.append([f"{var}: {label}"] + [cell(per[g]) if per[g].n else "" for g in groups])
        data += [{"variable": var, "group": g, **per[g].__dict__} for g in groups]
    return Table(a.id, a.title, ctx.population_text(a.population, pop), ctx.source_text(a),
                 "n, mean, SD (n-1 denominator), median, min, max of the non-missing values",
                 ["Statistic"] + [f"{g} (N={len(ctx.members(pop, g))})" for g in groups], rows, data)


def _retitle_unit(param: str, aval_unit: str, unit: str) -> str:
    """A parameter label's trailing "(<AVAL unit>)" (e.g. "Overall Survival (Days)") replaced by the
    unit the analysis reports in, so titles agree with the axes and columns ("... (months)")."""
    m = re.search(r"\s*\(([^()]*)\)\s*$", param)
    if m and m.group(1).strip().lower() == aval_unit.strip().lower():
        return f"{param[:m.start()]} ({unit})"
    return param


def tte(ctx: Context, a: Analysis) -> tuple[list[Table], list[Figure]]:
    pop = ctx.population(a.population)
    recs_all = ctx.records(a, pop)
    tables, figures = [], []
    for pcd in a.paramcd:
        recs = recs_all[recs_all["PARAMCD"] == pcd]
        aval_unit = (_str(recs["AVALU"].iloc[0]) if len(recs) and "AVALU" in recs else "") or "days"
        param = _str(recs["PARAM"].iloc[0]) if len(recs) and "PARAM" in recs else pcd
        param = _retitle_unit(param, aval_unit, a.time_unit)
        rows, data, series = [], [], []
        for g in ctx.groups(pop):
            sub = recs[recs["USUBJID"].isin(ctx.members(pop, g)["USUBJID"])]
            t = pd.to_numeric(sub["AVAL"], errors="coerce").to_numpy(float) / a.time_divisor
            ev = (pd.to_numeric(sub["CNSR"], errors="coerce").to_numpy(float) == 0).astype(int)
            ok = np.isfinite(t)
            t, ev = t[ok], ev[ok]
            c = stats.kaplan_meier(t, ev)
            med, lo, hi = stats.km_median(c)
            marks = [stats.km_at(c, x) for x in a.landmarks]
            row = [g, str(c.n), str(c.events), f"{_fmt(med)} ({_fmt(lo)}, {_fmt(hi)})"]
            row += [f"{_fmt(None if s is None else 100 * s)} ({_fmt(None if l is None else 100 * l)}, "
                    f"{_fmt(None if u is None else 100 * u)})" for s, l, u in marks]
            rows.append(row)
            data.append({"group": g, "n": c.n, "events": c.events, "median": med, "median_ci": [lo, hi],
                         "landmarks": {str(x): {"surv": s, "lower": l, "upper": u}
                                       for x, (s, l, u) in zip(a.landmarks, marks)}})
            series.append(KMSeries(g, c, stats.number_at_risk(t, a.risk_times)))
        unit = a.time_unit
        tables.append(Table(f"{a.id}-{pcd}", f"{a.title}: {param}", ctx.population_text(a.population, pop),
                            f"{a.dataset.upper()}, PARAMCD = {pcd}" + (
                                f", where {describe_filter(a.where)}" if describe_filter(a.where) else "")
                            + "; event CNSR = 0, censored CNSR > 0",
                            "Kaplan-Meier (scipy.stats.ecdf on right-censored data); pointwise 95% CI log-log "
                            "(Greenwood variance); median = smallest time with S(t) <= 0.5, its 95% CI by "
                            "Brookmeyer-Crowley on the log-log CI; NE = not estimable; "
                            f"AVAL ({aval_unit.lower()}) / {a.time_divisor:g} = {unit}",
                            [ctx.plan.by.label, "N", "Events", f"Median, {unit} (95% CI)"]
                            + [f"{x:g}-{unit[:-1] if unit.endswith('s') else unit} rate, % (95% CI)"
                               for x in a.landmarks], rows, data))
        if a.figure:
            figures.append(Figure(f"F-{a.id}-{pcd}", f"Kaplan-Meier: {param}", tables[-1].source, "km",
                                  {"series": series, "risk_times": list(a.risk_times), "unit": unit,
                                   "group_label": ctx.plan.by.label,
                                   "x_label": f"{a.x_label if 'x_label' in a.model_fields_set else 'Time'} ({unit})"}))
    return tables, figures


def ae_overview(ctx: Context, a: Analysis) -> Table:
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    groups = ctx.groups(pop)
    rows, data = [], []
    for r in a.rows:
        hit = set(select(recs, r.where)["USUBJID"])
        row = [r.label]
        for g in groups:
            m = ctx.members(pop, g)
            n = int(m["USUBJID"].isin(hit).sum())
            row.append(_n_pct(n, len(m)))
            data.append({"row": r.label, "group": g, "n": n, "N": len(m)})
        rows.append(row)
    foot = [f"{r.label}: {describe_filter(r.where) or 'any record'}" for r in a.rows]
    return Table(a.id, a.title, ctx.population_text(a.population, pop), ctx.source_text(a),
                 "subjects with at least one record meeting the row's condition, n (%) of the population "
                 "of each column", ["Subjects with"] + [f"{g} (N={len(ctx.members(pop, g))})" for g in groups],
                 rows, data, foot)


def ae_grade(ctx: Context, a: Analysis) -> Table:
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    groups = ctx.groups(pop)
    grade = pd.to_numeric(recs[a.grade_variable], errors="coerce")
    worst = grade.groupby(recs["USUBJID"]).max()
    rows, data = [], []
    labels = [("Any grade", None)] + [(f"Grade {k}", k) for k in range(1, 6)] + [("Grade >= 3", ">=3")]
    for label, k in labels:
        who = set(worst.index) if k is None else set(worst[worst >= 3].index) if k == ">=3" else set(worst[worst == k].index)
        row = [label + (" (worst per subject)" if isinstance(k, int) else "")]
        for g in groups:
            m = ctx.members(pop, g)
            n = int(m["USUBJID"].isin(who).sum())
            row.append(_n_pct(n, len(m)))
            data.append({"row": label, "group": g, "n": n, "N": len(m)})
        rows.append(row)
    for var, what in ((a.onset_variable, "Onset day, median (range)"), (a.duration_variable, "Duration, median (range)")):
        if var and var in recs.columns:
            row = [f"{what} [{var}]"]
            for g in groups:
                sub = recs[recs["USUBJID"].isin(ctx.members(pop, g)["USUBJID"])]
                s = stats.describe(pd.to_numeric(sub[var], errors="coerce").tolist())
                row.append("" if s.n == 0 else f"{_fmt(s.median)} ({_fmt(s.min, 0)}-{_fmt(s.max, 0)})")
                data.append({"row": what, "group": g, "n_events": s.n, "median": s.median, "min": s.min,
                             "max": s.max})
            rows.append(row)
    return Table(a.id, a.title, ctx.population_text(a.population, pop), ctx.source_text(a),
                 f"subjects by their worst {a.grade_variable}, n (%) of the population of each column; onset and "
                 "duration over the events", ["Subjects with"] + [f"{g} (N={len(ctx.members(pop, g))})" for g in groups],
                 rows, data)


def _visits(a: Analysis, recs: pd.DataFrame) -> list[str]:
    if a.visits:
        return list(a.visits)
    v = recs[["AVISIT", "AVISITN"]].drop_duplicates().sort_values(["AVISITN", "AVISIT"])
    return [x for x in _texts(v["AVISIT"]) if x]


def by_visit_categories(ctx: Context, a: Analysis) -> list[Table]:
    """Per PARAMCD, visit and group: subjects by category of ``variable`` (e.g. AVALC POSITIVE /
    NEGATIVE), n (%) of the subjects with a non-missing value at that visit (a subject with two
    records at one visit counts in each of their categories)."""
    pop = ctx.population(a.population)
    recs_all = ctx.records(a, pop)
    if a.variable not in recs_all.columns:
        raise KeyError(a.variable)
    groups = ctx.groups(pop)
    out = []
    for pcd in a.paramcd:
        recs = recs_all[recs_all["PARAMCD"] == pcd]
        param = _str(recs["PARAM"].iloc[0]) if len(recs) else pcd
        visits = _visits(a, recs)
        d = recs.assign(_C=_texts(recs[a.variable]), _V=_texts(recs["AVISIT"]))
        d = d[(d["_C"] != "") & d["_V"].isin(visits)]
        # the Overall group is every record once more
        d = pd.concat([d, d.assign(_GROUP=OVERALL)]) if OVERALL in groups else d
        d = d.drop_duplicates(["USUBJID", "_GROUP", "_V", "_C"])
        counts = d.groupby(["_V", "_GROUP", "_C"]).size()
        totals = d.drop_duplicates(["USUBJID", "_GROUP", "_V"]).groupby(["_V", "_GROUP"]).size()
        rows, data = [], []
        for vis in visits:
            for g in groups:
                N = int(totals.get((vis, g), 0))
                ns = [int(counts.get((vis, g, c), 0)) for c in a.categories]
                rows.append([vis, g, str(N)] + [_n_pct(n, N) if N else "" for n in ns])
                data += [{"visit": vis, "group": g, "category": c, "n": n, "N": N} for c, n in zip(a.categories, ns)]
        out.append(Table(f"{a.id}-{pcd}", f"{a.title}: {param}", ctx.population_text(a.population, pop),
                         f"{a.dataset.upper()}, PARAMCD = {pcd}" + (
                             f", where {describe_filter(a.where)}" if describe_filter(a.where) else ""),
                         f"subjects by {a.variable} per visit (AVISIT); n (%) of the subjects with a non-missing "
                         f"{a.variable} at the visit (N)", ["Visit", ctx.plan.by.label, "N"] + list(a.categories),
                         rows, data))
    return out


def by_visit(ctx: Context, a: Analysis) -> list[Table]:
    if a.categories:
        return by_visit_categories(ctx, a)
    pop = ctx.population(a.population)
    recs_all = ctx.records(a, pop)
    groups = ctx.groups(pop)
    # every record once per its group and once more for the overall column; one groupby per variable
    both = pd.concat([recs_all, recs_all.assign(_GROUP=OVERALL)]) if OVERALL in groups else recs_all
    keys = [both["PARAMCD"], _texts(both["AVISIT"]), both["_GROUP"]]
    summaries = {var: stats.describe_by(both[var], keys) if var in both else {} for var in a.statistics_of}
    empty = stats.describe([])
    out = []
    for pcd in a.paramcd:
        recs = recs_all[recs_all["PARAMCD"] == pcd]
        param = _str(recs["PARAM"].iloc[0]) if len(recs) else pcd
        visits = _visits(a, recs)
        rows, data = [], []
        for vis in visits:
            for g in groups:
                row = [vis, g]
                for var in a.statistics_of:
                    s = summaries[var].get((pcd, vis, g), empty)
                    row += [str(s.n), f"{_fmt(s.mean, 2)} ({_fmt(s.sd, 2)})", _fmt(s.median, 2),
                            f"{_fmt(s.min, 2)}, {_fmt(s.max, 2)}"] if s.n else [str(0), "", "", ""]
                    data.append({"visit": vis, "group": g, "variable": var, **s.__dict__})
                rows.append(row)
        cols = ["Visit", ctx.plan.by.label]
        for var in a.statistics_of:
            cols += [f"{var} n", f"{var} mean (SD)", f"{var} median", f"{var} min, max"]
        out.append(Table(f"{a.id}-{pcd}", f"{a.title}: {param}", ctx.population_text(a.population, pop),
                         f"{a.dataset.upper()}, PARAMCD = {pcd}" + (
                             f", where {describe_filter(a.where)}" if describe_filter(a.where) else ""),
                         "n, mean, SD (n-1 denominator), median, min, max of the non-missing values per visit "
                         "(AVISIT, ordered by AVISITN); CHG = change from baseline", cols, rows, data))
    return out


def pk_summary(ctx: Context, a: Analysis) -> Table:
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    rows, data = [], []
    for pcd in a.paramcd:
        sub_p = recs[recs["PARAMCD"] == pcd]
        param = _str(sub_p["PARAM"].iloc[0]) if len(sub_p) else pcd
        for g in ctx.groups(pop):
            sub = sub_p[sub_p["USUBJID"].isin(ctx.members(pop, g)["USUBJID"])]
            s = stats.describe_geometric(pd.to_numeric(sub["AVAL"], errors="coerce").tolist())
            rows.append([f"{param} [{pcd}]", g, str(s.n), _fmt(s.geomean, 3 if (s.geomean or 0) < 10 else 0),
                         _fmt(s.geocv), _fmt(s.median, 3 if (s.median or 0) < 10 else 0),
                         f"{_fmt(s.min, 3 if (s.min or 0) < 10 else 0)}, {_fmt(s.max, 3 if (s.max or 0) < 10 else 0)}"])
            data.append({"paramcd": pcd, "group": g, **s.__dict__})
    return Table(a.id, a.title, ctx.population_text(a.population, pop), ctx.source_text(a),
                 "n = non-missing AVAL; geometric mean = exp(mean(log AVAL)) and geometric CV% = "
                 "100*sqrt(exp(s^2)-1) (s: SD of log AVAL) over positive values; median, min, max of all values",
                 ["Parameter", ctx.plan.by.label, "n", "Geo. mean", "Geo. CV%", "Median", "Min, max"], rows, data)


class AnalysisProblem(Exception):
    """The data cannot support the analysis as planned (reported as a problem; the analysis is skipped)."""


def _digits(x: float | None) -> int:
    return 3 if (x or 0) < 10 else 1 if (x or 0) < 1000 else 0


def peak_values(recs: pd.DataFrame, variable: str, time_variable: str) -> pd.DataFrame:
    """Per subject and PARAMCD the maximum of ``variable`` over the post-baseline records and the
    ``time_variable`` of that maximum.

    Post-baseline: AVISITN greater than the AVISITN of the subject's baseline record (ABLFL = Y) of the
    same PARAMCD (so derived records without AVISITN, e.g. DTYPE = MAXIMUM, never count); records with
    a missing value or time are ignored.  Ties of the maximum: the earliest time wins.  A subject
    without a baseline record, or with more than one (select one BASETYPE with ``where``), raises
    :class:`AnalysisProblem` for the latter and contributes nothing for the former.
    Returns columns USUBJID, PARAMCD, _GROUP, peak, time (one row per subject and PARAMCD)."""
    for var in (variable, time_variable, "ABLFL", "AVISITN"):
        if var not in recs.columns:
            raise KeyError(var)
    d = recs.assign(_V=pd.to_numeric(recs[variable], errors="coerce"),
                    _T=pd.to_numeric(recs[time_variable], errors="coerce"),
                    _N=pd.to_numeric(recs["AVISITN"], errors="coerce"))
    key = ["USUBJID", "PARAMCD"]
    base = d[_texts(d["ABLFL"]) == "Y"]
    dup = base.duplicated(key, keep=False)
    if dup.any():
        first = base.loc[dup, key].iloc[0]
        raise AnalysisProblem(f"more than one baseline record (ABLFL = Y) per subject and PARAMCD (e.g. "
                              f"{first['USUBJID']}, {first['PARAMCD']}); select one BASETYPE with 'where'")
    d = d.merge(base[key + ["_N"]].rename(columns={"_N": "_BN"}), on=key, how="inner")
    post = d[(d["_N"] > d["_BN"]) & d["_V"].notna() & d["_T"].notna()]
    top = post.sort_values(key + ["_V", "_T"], ascending=[True, True, False, True], kind="mergesort")
    top = top.drop_duplicates(key, keep="first")
    return top.rename(columns={"_V": "peak", "_T": "time"})[key + ["_GROUP", "peak", "time"]].reset_index(drop=True)


def peak(ctx: Context, a: Analysis) -> Table:
    """Per PARAMCD and group: the subjects' post-baseline peak of ``variable`` (n, geometric mean,
    geometric CV%, median, range) and the time of the peak (n, median, range); see :func:`peak_values`."""
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    peaks = peak_values(recs, a.variable, a.time_variable)
    peaks["time"] = peaks["time"] / a.time_divisor
    rows, data = [], []
    unit = a.time_unit
    for pcd in a.paramcd:
        sub_p = peaks[peaks["PARAMCD"] == pcd]
        names = recs.loc[recs["PARAMCD"] == pcd, "PARAM"] if "PARAM" in recs else pd.Series(dtype=object)
        param = _str(names.iloc[0]) if len(names) else pcd
        for g in ctx.groups(pop):
            sub = sub_p[sub_p["USUBJID"].isin(ctx.members(pop, g)["USUBJID"])]
            p = stats.describe_geometric(sub["peak"].tolist())
            t = stats.describe(sub["time"].tolist())
            dg = _digits(p.median)
            rows.append([f"{param} [{pcd}]", g, str(p.n), _fmt(p.geomean, dg), _fmt(p.geocv),
                         _fmt(p.median, dg), f"{_fmt(p.min, dg)}, {_fmt(p.max, dg)}" if p.n else "",
                         f"{_fmt(t.median)} ({_fmt(t.min)}, {_fmt(t.max)})" if t.n else ""])
            data.append({"paramcd": pcd, "group": g, "peak": p.__dict__, "time_to_peak": t.__dict__})
    without = sorted(set(pop["USUBJID"]) - set(peaks["USUBJID"]))
    return Table(a.id, a.title, ctx.population_text(a.population, pop),
                 ctx.source_text(a) + "; post-baseline records: AVISITN after the baseline (ABLFL = Y) record's",
                 f"per subject and PARAMCD the maximum post-baseline {a.variable} (peak) and its {a.time_variable} "
                 f"(time to peak{'' if a.time_divisor == 1 else f', / {a.time_divisor:g}'}, {unit}); ties of the "
                 "maximum: the earliest time; peak: n, geometric mean = exp(mean(log)) and geometric CV% = "
                 "100*sqrt(exp(s^2)-1) over positive peaks, median, min, max; time to peak: median (min, max)",
                 ["Parameter", ctx.plan.by.label, "n", "Peak geo. mean", "Peak geo. CV%", "Peak median",
                  "Peak min, max", f"Time to peak ({unit}), median (min, max)"], rows, data,
                 [f"Subjects without a post-baseline value of any listed parameter: {', '.join(without)}"]
                 if without else [])


def geometric_mean_profile(recs: pd.DataFrame, by: str, lloq_variable: str | None, min_n: int = 3) -> pd.DataFrame:
    """Geometric mean of AVAL per group and value of ``by`` (a nominal time).

    BLQ samples (AVAL missing or <= 0) count as LLOQ/2 (``lloq_variable`` of the record; a BLQ sample
    without an LLOQ is left out); the mean is reported (``geomean``) only where at least ``min_n``
    samples are used and at least half of them are quantifiable, else it is missing.  Columns: group, x, n (samples used), n_quantifiable,
    geomean."""
    for var in [by, "AVAL"] + ([lloq_variable] if lloq_variable else []):
        if var not in recs.columns:
            raise KeyError(var)
    y = pd.to_numeric(recs["AVAL"], errors="coerce")
    lloq = pd.to_numeric(recs[lloq_variable], errors="coerce") if lloq_variable else pd.Series(np.nan, recs.index)
    quant = y > 0
    value = y.where(quant, lloq / 2)
    d = pd.DataFrame({"group": recs["_GROUP"], "x": pd.to_numeric(recs[by], errors="coerce"),
                      "quant": quant, "logv": np.log(value.where(value > 0))})
    d = d[d["x"].notna() & d["logv"].notna()]
    g = d.groupby(["group", "x"], sort=True).agg(n=("logv", "size"), n_quantifiable=("quant", "sum"),
                                                 mean_log=("logv", "mean")).reset_index()
    g["n_quantifiable"] = g["n_quantifiable"].astype(int)
    g["geomean"] = np.exp(g["mean_log"]).where((2 * g["n_quantifiable"] >= g["n"]) & (g["n"] >= min_n))
    return g.drop(columns="mean_log")


def profile(ctx: Context, a: Analysis) -> Figure:
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    groups = [g for g in ctx.groups(pop) if g != OVERALL]
    gm = None
    if a.mean_by:
        gm = geometric_mean_profile(recs, a.mean_by, a.lloq_variable, a.mean_min_n)
        gm = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
              for r in gm.to_dict("records")]
    # one line per subject: the records sorted once, converted once, then cut at each subject's
    # first record (a subject's records are together after the sort)
    d = recs.sort_values(["USUBJID", a.x_variable])
    d = d[d["USUBJID"].notna()]
    x = pd.to_numeric(d[a.x_variable], errors="coerce").to_numpy(float)
    y = pd.to_numeric(d["AVAL"], errors="coerce").to_numpy(float)
    blq = ~(y > 0) if a.log_scale else np.isnan(y)
    lloq = (pd.to_numeric(d[a.lloq_variable], errors="coerce").to_numpy(float)
            if a.lloq_variable and a.lloq_variable in d else np.full(len(d), np.nan))
    ids = d["USUBJID"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=int)
    ends = np.r_[starts[1:], len(ids)]
    xs, ys, blqs, lloqs, group = x.tolist(), y.tolist(), blq.tolist(), lloq.tolist(), d["_GROUP"].to_numpy(dtype=object)
    subjects = [{"usubjid": ids[i], "group": group[i], "x": xs[i:j], "y": ys[i:j], "blq": blqs[i:j],
                 "lloq": lloqs[i:j]} for i, j in zip(starts.tolist(), ends.tolist())]
    note = ("one line per subject, coloured by group; BLQ samples (AVAL missing or 0) drawn as open "
            "markers at the LLOQ" + (f" ({a.lloq_variable})" if a.lloq_variable else ""))
    if a.mean_by:
        note += (f"; thick line: geometric mean per {ctx.plan.by.label.lower()} at each {a.mean_by} (nominal time, "
                 "drawn at that time), BLQ samples counted as LLOQ/2"
                 + (f" ({a.lloq_variable}/2)" if a.lloq_variable else " (no LLOQ variable: BLQ samples left out)")
                 + f", shown only at times with at least {a.mean_min_n} samples of which at least half are "
                   "quantifiable")
    return Figure(a.id, a.title, ctx.source_text(a) + f"; x = {a.x_variable}"
                  + (f"; geometric mean by {a.mean_by}" if a.mean_by else ""), "profile",
                  {"subjects": subjects, "groups": groups, "x_label": a.x_label, "y_label": a.y_label,
                   "log": a.log_scale, "geometric_mean": gm}, note=note)


def waterfall(ctx: Context, a: Analysis) -> tuple[Table, Figure]:
    """Best (lowest) post-baseline ``variable`` (e.g. PCHG) per subject, from the first PARAMCD of the
    list the subject has a value for (a primary measure, else a fallback one)."""
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    if "ABLFL" in recs.columns:
        recs = recs[_texts(recs["ABLFL"]) != "Y"]
    val = pd.to_numeric(recs[a.variable], errors="coerce")
    recs = recs.assign(_V=val)[val.notna()]
    # per subject and PARAMCD the lowest value; then per subject the first PARAMCD in the plan's order
    recs = recs[recs["PARAMCD"].isin(a.paramcd)].assign(_P=lambda x: x["PARAMCD"].map(a.paramcd.index))
    best = recs.groupby(["USUBJID", "_P"], sort=True).agg(group=("_GROUP", "first"), paramcd=("PARAMCD", "first"),
                                                          value=("_V", "min")).reset_index()
    best = best.drop_duplicates("USUBJID", keep="first")
    bars = [{"usubjid": r.USUBJID, "group": r.group, "paramcd": r.paramcd, "value": float(r.value)}
            for r in best.itertuples(index=False)]
    bars.sort(key=lambda b: (-b["value"], b["usubjid"]))
    groups = [g for g in ctx.groups(pop) if g != OVERALL]
    rows = [[b["usubjid"], b["group"], b["paramcd"], _fmt(b["value"])] for b in bars]
    missing = sorted(set(pop["USUBJID"]) - {b["usubjid"] for b in bars})
    src = ctx.source_text(a) + f"; {a.variable} of post-baseline records (ABLFL not Y)"
    table = Table(a.id, a.title, ctx.population_text(a.population, pop), src,
                  f"per subject the lowest post-baseline {a.variable} of the first of {', '.join(a.paramcd)} with a "
                  "value; sorted from the largest to the smallest", ["Subject", ctx.plan.by.label, "PARAMCD",
                                                                   f"Best {a.variable}"], rows, bars,
                  [f"Subjects without a post-baseline value: {', '.join(missing)}"] if missing else [])
    figure = Figure(f"F-{a.id}", a.title, src, "waterfall",
                    {"bars": bars, "groups": groups, "y_label": a.y_label, "paramcd": list(a.paramcd)},
                    note=f"one bar per subject; hatched bars use {', '.join(a.paramcd[1:])}" if len(a.paramcd) > 1 else "")
    return table, figure


def shift(ctx: Context, a: Analysis) -> list[Table]:
    """Baseline (ABLFL = Y record) against the worst post-baseline value, subjects per cell.

    Numeric ``variable``: the values themselves.  With ``categories`` (e.g. AVALC NORMAL, ABNORMAL) the
    values are ranked by their position in that list (``worst: max`` = the later one is worse); a
    value not in the list counts as missing."""
    pop = ctx.population(a.population)
    recs_all = ctx.records(a, pop)
    if a.variable not in recs_all.columns:
        raise KeyError(a.variable)
    rank = {c: float(i) for i, c in enumerate(a.categories)}

    def label(v: Any) -> str:
        return a.categories[int(v)] if a.categories else _str(v)

    out = []
    for pcd in a.paramcd:
        recs = recs_all[recs_all["PARAMCD"] == pcd]
        param = _str(recs["PARAM"].iloc[0]) if len(recs) else pcd
        vals = _texts(recs[a.variable]).map(rank) if a.categories else pd.to_numeric(recs[a.variable], errors="coerce")
        recs = recs.assign(_V=vals)
        base = recs[_texts(recs["ABLFL"]) == "Y"].groupby("USUBJID")["_V"].first()
        bn = recs[_texts(recs["ABLFL"]) == "Y"].groupby("USUBJID")["AVISITN"].first()
        post = recs[recs["USUBJID"].map(bn).lt(pd.to_numeric(recs["AVISITN"], errors="coerce"))]
        worst = post.groupby("USUBJID")["_V"].agg(a.worst)
        levels = sorted(rank.values()) if a.categories else sorted(set(base.dropna()) | set(worst.dropna()))
        cols = [label(v) for v in levels] + ["Missing"]
        rows, data = [], []
        for g in ctx.groups(pop):
            ids = ctx.members(pop, g)["USUBJID"]
            for b in levels + [None]:
                bsel = ids[ids.map(base).isna()] if b is None else ids[ids.map(base) == b]
                counts = [int((bsel.map(worst) == v).sum()) for v in levels] + [int(bsel.map(worst).isna().sum())]
                if sum(counts) == 0 and b is None:
                    continue
                rows.append([g, "Missing" if b is None else label(b)] + [str(c) for c in counts] + [str(len(bsel))])
                data.append({"group": g, "baseline": b if b is None or not a.categories else label(b),
                             "counts": dict(zip(cols, counts)), "n": len(bsel)})
        out.append(Table(f"{a.id}-{pcd}", f"{a.title}: {param}", ctx.population_text(a.population, pop),
                         f"{a.dataset.upper()}, PARAMCD = {pcd}; baseline = the ABLFL = Y record; post-baseline = "
                         "records with AVISITN after the baseline's",
                         f"subjects by baseline {a.variable} (rows) and worst ({a.worst}imum) post-baseline "
                         f"{a.variable} (columns)" + (f"; categories ordered {' < '.join(a.categories)}"
                                                      if a.categories else ""), [ctx.plan.by.label, "Baseline"] + [f"Worst: {c}" for c in cols]
                         + ["Total"], rows, data))
    return out


def _source_records(ctx: Context, src, pop: pd.DataFrame) -> pd.DataFrame:
    df = ctx.frames[src.dataset.upper()]
    if src.paramcd and "PARAMCD" in df.columns:
        df = df[df["PARAMCD"].isin(src.paramcd)]
    df = select(df, src.where)
    return df[df["USUBJID"].isin(pop["USUBJID"])]


def _describe_source(src) -> str:
    s = src.dataset.upper() + (f", PARAMCD in ({', '.join(src.paramcd)})" if src.paramcd else "")
    w = describe_filter(src.where)
    return s + (f", where {w}" if w else "") + f" at {src.time_variable}"


def swimmer(ctx: Context, a: Analysis) -> Figure:
    """One bar per subject (length: the analysis record's ``time_variable``, arrow when censored),
    coloured segments from ``segments`` (category in effect from each record's time to the next),
    ``markers`` at their records' times; sorted by group then bar length."""
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    if a.paramcd:
        recs = recs[recs["PARAMCD"] == a.paramcd[0]]
    lengths = pd.to_numeric(recs.set_index("USUBJID")[a.time_variable], errors="coerce") / a.time_divisor
    censored = (pd.to_numeric(recs.set_index("USUBJID")["CNSR"], errors="coerce") > 0) if "CNSR" in recs else None
    order = {g: i for i, g in enumerate(ctx.groups(pop))}
    # segments: each record's category from its time to the subject's next record (or the bar's end)
    segs: dict[str, list[dict]] = {}
    if a.segments:
        d = _source_records(ctx, a.segments, pop)
        d = d.assign(_T=pd.to_numeric(d[a.segments.time_variable], errors="coerce") / a.time_divisor)
        d = d[d["_T"].notna() & d["USUBJID"].isin(lengths.index)].sort_values(["USUBJID", "_T"], kind="mergesort")
        nxt = d.groupby("USUBJID")["_T"].shift(-1).fillna(d["USUBJID"].map(lengths))
        d = d.assign(_E=np.maximum(d["_T"], nxt), _C=_texts(d[a.segments.variable]))
        for subj, g in d.groupby("USUBJID", sort=False):
            segs[subj] = [{"start": float(t), "end": float(e), "category": c}
                          for t, e, c in zip(g["_T"], g["_E"], g["_C"])]
    marks: dict[str, list[dict]] = {}
    for m in a.markers:
        d = _source_records(ctx, m, pop)
        d = d.assign(_T=pd.to_numeric(d[m.time_variable], errors="coerce") / a.time_divisor)
        for subj, t in zip(d["USUBJID"], d["_T"]):
            if pd.notna(t):
                marks.setdefault(subj, []).append({"label": m.label, "symbol": m.symbol, "time": float(t)})
    group_of = dict(zip(pop["USUBJID"], pop["_GROUP"]))
    subjects = [{"usubjid": subj, "group": group_of[subj], "length": float(lengths[subj]),
                 "ongoing": bool(censored[subj]) if censored is not None else False,
                 "segments": segs.get(subj, []), "markers": marks.get(subj, [])}
                for subj in pop["USUBJID"] if subj in lengths.index and pd.notna(lengths[subj])]
    subjects.sort(key=lambda r: (order.get(r["group"], 0), -r["length"], r["usubjid"]))
    parts = [ctx.source_text(a) + f" ({a.time_variable}; CNSR > 0: ongoing)"]
    if a.segments:
        parts.append("segments: " + _describe_source(a.segments) + f", {a.segments.variable}")
    parts += [f"{m.label}: {_describe_source(m)}" for m in a.markers]
    return Figure(a.id, a.title, "; ".join(parts), "swimmer",
                  {"subjects": subjects, "categories": list(a.categories), "unit": a.time_unit},
                  note="one bar per subject from time 0; colour = the category in effect from each assessment to "
                       "the next; arrow = ongoing (censored)")


def event_timeline(ctx: Context, a: Analysis) -> Figure:
    """One row per subject with at least one record (e.g. CRS or ICANS episodes in ADAE), one bar per
    record from ``onset_variable`` to ``end_variable``, coloured by ``grade_variable``; rows grouped by
    the plan's ``by`` groups (in their order), then by first onset.

    A bar covers the days onset..end inclusive, drawn from onset to end + 1, so its length is the
    duration (ADaM day durations count both ends: ADURN = AENDY - ASTDY + 1).  Without an end, the
    bar runs from onset for ``duration_variable`` days; with neither, the event is drawn as one
    hatched day with ``open_end`` set.  ``variable``, when the plan sets it (e.g. AEDECOD), names
    the event type (a hatch pattern per type)."""
    pop = ctx.population(a.population)
    recs = ctx.records(a, pop)
    needed = [a.onset_variable, a.grade_variable] + [v for v in (a.end_variable, a.duration_variable) if v]
    if "variable" in a.model_fields_set:
        needed.append(a.variable)
    for var in needed:
        if var not in recs.columns:
            raise KeyError(var)
    onset = pd.to_numeric(recs[a.onset_variable], errors="coerce")
    end = (pd.to_numeric(recs[a.end_variable], errors="coerce") + 1) if a.end_variable else pd.Series(np.nan, recs.index)
    if a.duration_variable:
        end = end.fillna(onset + pd.to_numeric(recs[a.duration_variable], errors="coerce"))
    ev = pd.DataFrame({"usubjid": recs["USUBJID"], "group": recs["_GROUP"], "start": onset,
                       "end": end.fillna(onset + 1), "open_end": end.isna(),
                       "grade": pd.to_numeric(recs[a.grade_variable], errors="coerce"),
                       "type": _texts(recs[a.variable]) if "variable" in a.model_fields_set else ""})
    ev = ev[ev["start"].notna()]
    order = {g: i for i, g in enumerate(ctx.groups(pop))}
    first = ev.groupby("usubjid")["start"].transform("min")
    ev = ev.assign(_o=ev["group"].map(order), _f=first).sort_values(["_o", "_f", "usubjid", "start", "end"],
                                                                    kind="mergesort")
    events = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
              for r in ev.drop(columns=["_o", "_f"]).to_dict("records")]
    groups = [g for g in ctx.groups(pop) if g != OVERALL and g in set(ev["group"])]
    skipped = int(recs[a.onset_variable].isna().sum())
    end_text = (f"{a.end_variable}" + (f", else onset + {a.duration_variable}" if a.duration_variable else "")
                if a.end_variable else f"onset + {a.duration_variable}" if a.duration_variable else "onset + 1 day")
    return Figure(a.id, a.title, ctx.source_text(a) + f"; bar from {a.onset_variable} to {end_text}; colour "
                  f"{a.grade_variable}", "event_timeline",
                  {"events": events, "groups": groups, "x_label": a.x_label,
                   "types": sorted({e["type"] for e in events if e["type"]})},
                  note=f"one row per subject with an event "
                       f"({ev['usubjid'].nunique()} subjects, {len(ev)} events), grouped by "
                       f"{ctx.plan.by.label.lower()}; a bar covers the days onset to end inclusive (length = "
                       "duration); hatched: end unknown" + (f"; {skipped} record(s) without onset not drawn"
                                                            if skipped else ""))


#: The function of each analysis kind (``Analysis.kind``).  Each returns a Table, a Figure, or a list or
#: tuple of them; :func:`compute` sorts what comes back into tables and figures.
ANALYSES = {"rate": rate, "categories": categories, "continuous": continuous, "tte": tte,
            "ae_overview": ae_overview, "ae_grade": ae_grade, "by_visit": by_visit, "pk_summary": pk_summary,
            "waterfall": waterfall, "shift": shift, "swimmer": swimmer, "profile": profile, "peak": peak,
            "event_timeline": event_timeline}


def _outputs(out: Table | Figure | list | tuple) -> tuple[list[Table], list[Figure]]:
    """The tables and the figures an analysis function returned, in their order."""
    if isinstance(out, Table):
        return [out], []
    if isinstance(out, Figure):
        return [], [out]
    tables: list[Table] = []
    figures: list[Figure] = []
    for part in out:
        t, f = _outputs(part)
        tables += t
        figures += f
    return tables, figures


def compute(plan: ResultsPlan, frames: dict[str, pd.DataFrame]) -> Results:
    """Every analysis of the plan; an analysis whose data is missing becomes a problem, not a crash."""
    ctx = Context(plan, frames)
    tables: list[Table] = []
    figures: list[Figure] = []
    problems: list[str] = []
    for a in plan.analyses:
        if a.dataset.upper() not in ctx.frames:
            problems.append(f"{a.id}: dataset {a.dataset.upper()} not found; analysis skipped")
            continue
        try:
            t, f = _outputs(ANALYSES[a.kind](ctx, a))
            for fig in f:
                fig.population = ctx.population_text(a.population, ctx.population(a.population))
        except AnalysisProblem as exc:
            problems.append(f"{a.id}: {exc}; analysis skipped")
            continue
        except KeyError as exc:
            problems.append(f"{a.id}: variable {exc.args[0]} not found in {a.dataset.upper()} or ADSL; analysis skipped")
            continue
        tables += t
        figures += f
    return Results(plan.title, tables, figures, problems)
