"""Vectorised formatting of simulated numbers into the text sites type into an EDC."""

from __future__ import annotations

import numpy as np
import pandas as pd

MONTHS = np.array(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], dtype=object)


def _parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(days, dtype=float)
    ok = np.isfinite(d)
    dt = pd.DatetimeIndex(np.where(ok, d, 0).astype("int64").astype("datetime64[D]"))
    return ok, np.asarray(dt.year), np.asarray(dt.month), np.asarray(dt.day)


def _format_unique_days(days: np.ndarray) -> np.ndarray:
    ok, y, m, d = _parts(days)
    return (
        pd.Series(d).astype(str).str.zfill(2) + " " + pd.Series(MONTHS[m - 1]) + " " + pd.Series(y).astype(str)
    ).to_numpy(dtype=object)


def fmt_date(days: np.ndarray) -> np.ndarray:
    """Day numbers (days since 1970-01-01, NaN = none) -> ``DD MON YYYY`` (None when missing).

    A study has far fewer distinct dates than records: format each distinct day once.
    """
    d = np.asarray(days, dtype=float)
    ok = np.isfinite(d)
    uniq, inv = np.unique(np.where(ok, d, 0.0), return_inverse=True)
    out = _format_unique_days(uniq)[inv.ravel()]
    out[~ok] = None
    return out


def partial_date(days: np.ndarray, rng: np.random.Generator, p_day: float, p_month: float) -> np.ndarray:
    """Like :func:`fmt_date` but some dates lose the day (``UN MAR 2024``) or day and month (``UN UNK 2023``)."""
    ok, y, m, d = _parts(days)
    n = len(ok)
    u = rng.random(n)
    day = pd.Series(d).astype(str).str.zfill(2).to_numpy(dtype=object)
    mon = MONTHS[m - 1].astype(object)
    day[u < p_day + p_month] = "UN"
    mon[u < p_month] = "UNK"
    out = (pd.Series(day) + " " + pd.Series(mon) + " " + pd.Series(y).astype(str)).to_numpy(dtype=object)
    out[~ok] = None
    return out


def fmt_time(minutes: np.ndarray) -> np.ndarray:
    """Minutes after midnight -> ``HH:MM`` (None when missing)."""
    x = np.asarray(minutes, dtype=float)
    ok = np.isfinite(x)
    mi = np.where(ok, x, 0).astype(int) % 1440
    out = (pd.Series(mi // 60).astype(str).str.zfill(2) + ":" + pd.Series(mi % 60).astype(str).str.zfill(2)).to_numpy(
        dtype=object
    )
    out[~ok] = None
    return out


def fmt_dtm(days: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Day number + seconds of day -> ``YYYY-MM-DD HH:MM:SS`` (EDC audit timestamp)."""
    d = np.asarray(days, dtype=float)
    sec = np.where(np.isfinite(np.asarray(seconds, dtype=float)), seconds, 0).astype("int64") % 86400
    ok = np.isfinite(d)
    ud, di = np.unique(np.where(ok, d, 0).astype("int64"), return_inverse=True)
    dates = pd.DatetimeIndex(ud.astype("datetime64[D]")).strftime("%Y-%m-%d").to_numpy(dtype=object)
    us, si = np.unique(sec, return_inverse=True)
    hh, mm, ss = us // 3600, us % 3600 // 60, us % 60
    times = (pd.Series(hh).astype(str).str.zfill(2) + ":" + pd.Series(mm).astype(str).str.zfill(2) + ":"
             + pd.Series(ss).astype(str).str.zfill(2)).to_numpy(dtype=object)
    out = dates[di.ravel()] + " " + times[si.ravel()]
    out[~ok] = None
    return out


def fmt_num(x: np.ndarray, decimals: int) -> np.ndarray:
    """Numbers -> fixed-decimal text (None when missing)."""
    v = np.asarray(x, dtype=float)
    ok = np.isfinite(v)
    out = np.char.mod(f"%.{decimals}f", np.where(ok, v, 0.0)).astype(object)
    out[~ok] = None
    return out


def fmt_sci(x: np.ndarray, digits: int = 1) -> np.ndarray:
    """Numbers -> scientific text ``3.2E-04`` (None when missing)."""
    v = np.asarray(x, dtype=float)
    ok = np.isfinite(v)
    out = np.char.mod(f"%.{digits}E", np.where(ok, v, 1.0)).astype(object)
    out[~ok] = None
    return out


def fmt_result(x: np.ndarray, decimals: int, lloq: float | None = None, uloq: float | None = None) -> np.ndarray:
    """Lab result text with ``<LLOQ`` / ``>ULOQ`` qualifiers as laboratories report them."""
    v = np.asarray(x, dtype=float)
    out = fmt_num(v, decimals)
    if lloq is not None:
        low = np.isfinite(v) & (v < lloq)
        out[low] = "<" + fmt_num(np.array([lloq]), decimals)[0]
    if uloq is not None:
        high = np.isfinite(v) & (v > uloq)
        out[high] = ">" + fmt_num(np.array([uloq]), decimals)[0]
    return out


def pick(rng: np.random.Generator, options: list[str] | tuple[str, ...], n: int) -> np.ndarray:
    """``n`` random choices among ``options`` as an object array."""
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]
