"""Statistics of the results report: pure functions on numbers, from scipy where scipy has them.

- exact (Clopper-Pearson) binomial CI: ``scipy.stats.binomtest(...).proportion_ci(method="exact")``;
- Kaplan-Meier: ``scipy.stats.ecdf`` on ``CensoredData.right_censored``, its survival function and
  the log-log (Kalbfleisch-Prentice, Greenwood variance) pointwise CI;
- KM median and its CI by Brookmeyer-Crowley on that log-log CI (scipy has no median CI): the
  median is the smallest time with S(t) <= 0.5; the CI is the set of times whose pointwise CI
  contains 0.5: lower = smallest event time with lower CI <= 0.5, upper = smallest event time with
  upper CI < 0.5 (not estimable when the upper CI never drops below 0.5) - the SAS PROC LIFETEST
  convention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Rate:
    n: int
    N: int
    pct: float | None
    lower: float | None
    upper: float | None


def clopper_pearson(n: int, N: int, level: float = 0.95) -> Rate:
    """n/N with its exact two-sided CI (percent).  N == 0: no estimate."""
    if N == 0:
        return Rate(n, N, None, None, None)
    ci = stats.binomtest(int(n), int(N)).proportion_ci(confidence_level=level, method="exact")
    return Rate(int(n), int(N), 100.0 * n / N, 100.0 * float(ci.low), 100.0 * float(ci.high))


@dataclass(frozen=True)
class KMCurve:
    times: list[float]  # distinct event times
    surv: list[float]  # S(t) just after each event time
    lower: list[float | None]  # log-log CI (None where undefined, e.g. S = 0)
    upper: list[float | None]
    n: int
    events: int
    censor_times: list[float]


def kaplan_meier(time: np.ndarray, event: np.ndarray, level: float = 0.95) -> KMCurve:
    """Kaplan-Meier estimate with log-log pointwise CI.  ``event``: 1 event, 0 censored."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    n, d = len(time), int(event.sum())
    cens = sorted(float(t) for t in time[event == 0])
    if n == 0 or d == 0:
        return KMCurve([], [], [], [], n, d, cens)
    data = stats.CensoredData.right_censored(time, event == 0)
    res = stats.ecdf(data)
    sf = res.sf
    t = np.asarray(sf.quantiles, dtype=float)
    s = np.asarray(sf.probabilities, dtype=float)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = sf.confidence_interval(confidence_level=level, method="log-log")
    lo = ci.low.evaluate(t)
    hi = ci.high.evaluate(t)
    # only event times (ecdf on censored data also lists censoring times in quantiles)
    ev_times = np.unique(time[event == 1])
    keep = np.isin(t, ev_times)

    def clean(a):
        return [None if not np.isfinite(x) else float(x) for x in a[keep]]

    return KMCurve([float(x) for x in t[keep]], [float(x) for x in s[keep]], clean(lo), clean(hi), n, d, cens)


def km_at(curve: KMCurve, t: float) -> tuple[float | None, float | None, float | None]:
    """S(t), lower, upper at time ``t`` (step function, right-continuous).  None beyond the last
    observation (not estimable)."""
    last_obs = max(curve.times + curve.censor_times) if (curve.times or curve.censor_times) else 0.0
    if t > last_obs:
        return None, None, None
    idx = [i for i, x in enumerate(curve.times) if x <= t]
    if not idx:
        return 1.0, None, None
    i = idx[-1]
    return curve.surv[i], curve.lower[i], curve.upper[i]


def km_median(curve: KMCurve) -> tuple[float | None, float | None, float | None]:
    """Median survival and its Brookmeyer-Crowley CI (see the module docstring)."""
    med = next((t for t, s in zip(curve.times, curve.surv) if s <= 0.5 + 1e-12), None)
    lo = next((t for t, l in zip(curve.times, curve.lower) if l is not None and l <= 0.5 + 1e-12), None)
    if lo is None and med is not None:  # the lower CI became undefined (S=0) at or before the median
        lo = med
    hi = next((t for t, s, u in zip(curve.times, curve.surv, curve.upper)
               if (u if u is not None else s) < 0.5 - 1e-12), None)
    return med, lo, hi


def number_at_risk(time: np.ndarray, at: list[float]) -> list[int]:
    time = np.asarray(time, dtype=float)
    return [int((time >= t).sum()) for t in at]


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    sd: float | None
    median: float | None
    min: float | None
    max: float | None


def describe(values) -> Summary:
    """n, mean, SD (n-1), median, min, max of the non-missing values."""
    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], dtype=float)
    if len(v) == 0:
        return Summary(0, None, None, None, None, None)
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else None
    return Summary(len(v), float(v.mean()), sd, float(np.median(v)), float(v.min()), float(v.max()))


def describe_by(values, keys: list) -> dict[tuple, Summary]:
    """:func:`describe` of ``values`` (a numeric pandas Series) per combination of ``keys`` (Series
    aligned with it), in one groupby; combinations without a non-missing value are absent."""
    import pandas as pd

    v = pd.to_numeric(values, errors="coerce")
    ok = v.notna()
    if not ok.any():
        return {}
    g = v[ok].groupby([k[ok] for k in keys], sort=False).agg(["count", "mean", "std", "median", "min", "max"])

    def num(x) -> float | None:
        return None if pd.isna(x) else float(x)

    return {(k if isinstance(k, tuple) else (k,)): Summary(int(r["count"]), num(r["mean"]), num(r["std"]),
                                                           num(r["median"]), num(r["min"]), num(r["max"]))
            for k, r in g.iterrows()}


@dataclass(frozen=True)
class GeoSummary:
    n: int
    geomean: float | None
    geocv: float | None  # percent: 100 * sqrt(exp(s^2) - 1), s the SD of the logs
    median: float | None
    min: float | None
    max: float | None


def describe_geometric(values) -> GeoSummary:
    """n, geometric mean and CV% (positive values only), median, min, max of the non-missing values."""
    v = np.asarray([x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))], dtype=float)
    if len(v) == 0:
        return GeoSummary(0, None, None, None, None, None)
    pos = v[v > 0]
    gm = float(np.exp(np.log(pos).mean())) if len(pos) else None
    cv = float(100.0 * math.sqrt(math.expm1(float(np.var(np.log(pos), ddof=1))))) if len(pos) > 1 else None
    return GeoSummary(len(v), gm, cv, float(np.median(v)), float(v.min()), float(v.max()))
