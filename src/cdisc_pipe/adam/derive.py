"""Shared ADaM derivations in admiral's verb grammar.

Every function here does one thing: it takes a DataFrame (and plain arguments naming variables)
and returns a *new* DataFrame with the derived variables added.  No hidden state, no frame
attributes, no per-record Python loops.

Date conventions (docs/ARCHITECTURE.md): SDTM ``--DTC`` values are ISO 8601 strings, possibly
right-truncated (``"2023-05"``) or with a missing middle component (``"2023---15"``).  ADaM numeric
dates are ``datetime64[ns]``.  Imputation follows admiral:

- ``highest_imputation`` is the highest component that may be imputed: ``"n"`` (none),
  ``"s"``/``"m"``/``"h"`` (seconds/minutes/hours, datetimes only), ``"D"`` (day) or ``"M"``
  (month and day).  A value missing a component above that level gives a missing date.
- ``date_imputation`` is ``"first"``, ``"mid"`` or ``"last"`` (day 1 / 15 / last day of the month;
  month 1 / 6 (mid: June 30) / 12).
- ``--DTF`` is ``"D"`` when the day was imputed, ``"M"`` when month (and day) were imputed;
  ``--TMF`` is ``"H"``, ``"M"`` or ``"S"`` for the highest imputed time component (ADaM CT
  DATEFL C81223 and TIMEFL C81226).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "parse_dtc",
    "impute_dtc_dt",
    "impute_dtc_dtm",
    "derive_vars_dt",
    "derive_vars_dtm",
    "derive_vars_dtm_to_dt",
    "derive_vars_dy",
    "derive_vars_merged",
    "derive_var_merged_exist_flag",
    "derive_var_extreme_flag",
    "filter_extreme",
    "derive_vars_duration",
    "derive_var_trtemfl_window",
    "derive_vars_ae_dt",
    "days_after",
    "in_day_window",
    "convert_blanks_to_na",
    "suppqual_wide",
    "lookup",
]

# ISO 8601 date/datetime, right-truncated, with "-" standing for a missing middle component.
_DTC_RE = (
    r"^(?P<year>\d{4})"
    r"(?:-(?P<month>\d{2}|-)"
    r"(?:-(?P<day>\d{2}|-)"
    r"(?:T(?P<hour>\d{2}|-)"
    r"(?::(?P<minute>\d{2}|-)"
    r"(?::(?P<second>\d{2})(?:\.\d+)?)?"
    r")?)?)?)?$"
)

_DATE_LEVELS = {"n": 0, "s": 1, "m": 2, "h": 3, "D": 4, "M": 5}


def lookup(keys: pd.Series, values: pd.Series) -> pd.Series:
    """``values[key]`` for every key of ``keys`` (missing when absent), keeping the dtype of
    ``values`` (``Series.map`` loses datetime64 on an empty mapping in pandas 3)."""
    vals = values[~values.index.duplicated(keep="first")]
    return pd.Series(vals.reindex(keys.to_numpy()).to_numpy(), index=keys.index, dtype=vals.dtype)


def convert_blanks_to_na(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``df`` where empty or all-blank strings in text columns are missing (NA).

    XPT files store missing character values as blanks; ADaM derivations test for missing values.
    Each distinct value is tested once (text columns repeat a lot); a column without blanks is
    left as it is (copy-on-write: the copy shares it with ``df``).
    """
    out = df.copy(deep=False)
    for col in out.columns:
        s = out[col]
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            uniques = pd.unique(s.to_numpy(dtype=object))
            blanks = [u for u in uniques if not _is_missing(u) and str(u).strip() == ""]
            if blanks:
                out[col] = s.mask(s.isin(blanks).to_numpy(), None)
    return out


def _is_missing(value: object) -> bool:
    """Scalar missing test matching ``astype("string")`` (None, NaN, NA, NaT)."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array value is not a missing scalar
        return False


def parse_dtc(dtc: pd.Series) -> pd.DataFrame:
    """Split ISO 8601 ``--DTC`` strings into numeric components.

    Returns a frame aligned with ``dtc`` holding float columns ``year month day hour minute
    second`` (NaN where the component is missing) and a boolean column ``valid`` (False for a
    value that is present but not ISO 8601, e.g. ``"2019/3/5"`` or ``"UNK"``).
    """
    names = ("year", "month", "day", "hour", "minute", "second")
    fast, comps = _parse_dtc_fixed(dtc.to_numpy(dtype=object))
    valid = np.ones(len(dtc), dtype=bool)
    slow = ~fast
    if slow.any():  # every other form (partial, "-" components, fractions, blanks, invalid text): the regex
        text = dtc[slow].astype("string").str.strip()
        parts = text.str.extract(_DTC_RE)
        for name in names:
            comps[name][slow] = pd.to_numeric(parts[name].where(parts[name] != "-"), errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan)
        present = text.notna() & text.ne("")
        valid[slow] = (~present | parts["year"].notna()).fillna(True).astype(bool).to_numpy()
    out = pd.DataFrame({name: comps[name] for name in names}, index=dtc.index)
    out["valid"] = valid
    # Range checks: month 13, hour 25 ... are invalid, not imputable.
    bad = (
        (out["month"].notna() & ~out["month"].between(1, 12))
        | (out["day"].notna() & ~out["day"].between(1, 31))
        | (out["hour"].notna() & ~out["hour"].between(0, 23))
        | (out["minute"].notna() & ~out["minute"].between(0, 59))
        | (out["second"].notna() & ~out["second"].between(0, 59))
    )
    out.loc[bad, ["year", "month", "day", "hour", "minute", "second"]] = np.nan
    out["valid"] = out["valid"] & ~bad
    return out


_FIXED_LENGTHS = (10, 16, 19)  # YYYY-MM-DD, YYYY-MM-DDThh:mm, YYYY-MM-DDThh:mm:ss


def _parse_dtc_fixed(values: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Vectorised parse of the complete ASCII forms ``YYYY-MM-DD[Thh:mm[:ss]]`` (the bulk of SDTM
    dates): returns which values had such a form and their components (NaN elsewhere).  The digit
    and separator positions are checked byte by byte, so a value is taken here exactly when
    :data:`_DTC_RE` would match it with every component present; the rest is left to the regex."""
    n = len(values)
    comps = {name: np.full(n, np.nan) for name in ("year", "month", "day", "hour", "minute", "second")}
    lengths = np.fromiter((len(v) if type(v) is str else 0 for v in values), dtype=np.int64, count=n)
    cand = np.flatnonzero(np.isin(lengths, _FIXED_LENGTHS))
    fast = np.zeros(n, dtype=bool)
    if cand.size == 0:
        return fast, comps
    try:
        raw = np.array(values[cand].tolist(), dtype="S19")
    except UnicodeEncodeError:  # non-ASCII text somewhere: leave everything to the regex
        return fast, comps
    b = raw.view(np.uint8).reshape(-1, 19).astype(np.int64)
    ln = lengths[cand]
    digit = (b >= ord("0")) & (b <= ord("9"))
    d = b - ord("0")
    ok = digit[:, [0, 1, 2, 3, 5, 6, 8, 9]].all(axis=1) & (b[:, 4] == ord("-")) & (b[:, 7] == ord("-"))
    timed = ln >= 16
    ok &= ~timed | ((b[:, 10] == ord("T")) & digit[:, [11, 12, 14, 15]].all(axis=1) & (b[:, 13] == ord(":")))
    secs = ln == 19
    ok &= ~secs | ((b[:, 16] == ord(":")) & digit[:, [17, 18]].all(axis=1))
    rows = cand[ok]
    d, timed, secs = d[ok], timed[ok], secs[ok]
    comps["year"][rows] = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    comps["month"][rows] = d[:, 5] * 10 + d[:, 6]
    comps["day"][rows] = d[:, 8] * 10 + d[:, 9]
    comps["hour"][rows] = np.where(timed, d[:, 11] * 10 + d[:, 12], np.nan)
    comps["minute"][rows] = np.where(timed, d[:, 14] * 10 + d[:, 15], np.nan)
    comps["second"][rows] = np.where(secs, d[:, 17] * 10 + d[:, 18], np.nan)
    fast[rows] = True
    return fast, comps


def _assemble(year: pd.Series, month: pd.Series, day: pd.Series) -> pd.Series:
    """Build datetime64 dates from float components; impossible dates (Feb 30) become NaT."""
    ok = year.notna() & month.notna() & day.notna()
    frame = pd.DataFrame({"year": year.where(ok, 2000), "month": month.where(ok, 1), "day": 1.0})
    first = pd.to_datetime(frame.astype("int64"), errors="coerce")
    dim = first.dt.days_in_month
    good = ok & (day.where(ok, 1) <= dim)
    result = first + pd.to_timedelta(day.where(good, 1) - 1, unit="D")
    return result.where(good).astype("datetime64[ns]")


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _on_distinct(dtc: pd.Series, core: Callable[[pd.Series], tuple[pd.Series, ...]]) -> tuple[pd.Series, ...]:
    """Run ``core`` once per distinct ``dtc`` value and spread the results back (dates repeat a lot
    in lab-sized data); a missing ``dtc`` gives missing results."""
    codes, uniques = pd.factorize(pd.Series(dtc.to_numpy(dtype=object), index=dtc.index), use_na_sentinel=True)
    results = core(pd.Series(np.append(np.asarray(uniques, dtype=object), None), dtype=object))
    # code -1 (missing) picks the appended None row, which every core maps to a missing result
    return tuple(pd.Series(r.to_numpy()[codes], index=dtc.index, dtype=r.dtype) for r in results)


def impute_dtc_dt(
    dtc: pd.Series,
    highest_imputation: str = "n",
    date_imputation: str = "first",
) -> tuple[pd.Series, pd.Series]:
    """Impute partial ISO 8601 dates; return ``(dates, flags)``.

    ``dates`` is datetime64[ns] (NaT when the value cannot be imputed under ``highest_imputation``
    or is invalid); ``flags`` is the --DTF value (``"D"``, ``"M"`` or missing).
    Times are ignored (only the date part is used).
    """
    _check_choice("highest_imputation", highest_imputation, ["n", "D", "M"])
    _check_choice("date_imputation", date_imputation, ["first", "mid", "last"])
    dates, flags = _on_distinct(dtc, lambda u: _impute_dt_core(u, highest_imputation, date_imputation))
    return dates.astype("datetime64[ns]"), flags


def _impute_dt_core(dtc: pd.Series, highest_imputation: str, date_imputation: str) -> tuple[pd.Series, pd.Series]:
    from cdisc_pipe.cutoff import active, after_cutoff

    cut = active()
    if cut:  # a date collected after the data cut-off takes part in no derivation
        dtc = dtc.where(~after_cutoff(dtc, cut))
    p = parse_dtc(dtc)
    level = _DATE_LEVELS[highest_imputation]
    has_year = p["year"].notna()
    miss_month = has_year & p["month"].isna()
    miss_day = has_year & p["day"].isna()
    # A missing month forces the day to be imputed as well (the "M" flag covers both).
    allowed = has_year & ~(miss_month & (level < _DATE_LEVELS["M"])) & ~(miss_day & (level < _DATE_LEVELS["D"]))
    month_fill = {"first": 1.0, "mid": 6.0, "last": 12.0}[date_imputation]
    month = p["month"].where(~miss_month, month_fill)
    if date_imputation == "first":
        day_value = pd.Series(1.0, index=dtc.index)
    elif date_imputation == "mid":
        # admiral: mid = 15th of a known month; June 30 when the month is missing too.
        day_value = pd.Series(np.where(miss_month, 30.0, 15.0), index=dtc.index)
    else:
        first_of_month = _assemble(p["year"], month, pd.Series(1.0, index=dtc.index))
        day_value = first_of_month.dt.days_in_month.astype("float64")
    day = p["day"].where(~miss_day, day_value)
    dates = _assemble(p["year"], month, day).where(allowed)
    flags = pd.Series(
        np.where(miss_month, "M", np.where(miss_day, "D", None)), index=dtc.index, dtype=object
    )
    flags = pd.Series(np.where(dates.notna(), flags, None), index=dtc.index, dtype=object)
    return dates.astype("datetime64[ns]"), flags


def impute_dtc_dtm(
    dtc: pd.Series,
    highest_imputation: str = "h",
    date_imputation: str = "first",
    time_imputation: str = "first",
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Impute partial ISO 8601 datetimes; return ``(datetimes, date_flags, time_flags)``.

    ``highest_imputation`` may be ``"n"``, ``"s"``, ``"m"``, ``"h"``, ``"D"`` or ``"M"``;
    ``time_imputation`` ``"first"`` (00:00:00) or ``"last"`` (23:59:59).  A value with seconds
    missing but hour and minute present needs at least ``"s"``.
    """
    _check_choice("highest_imputation", highest_imputation, list(_DATE_LEVELS))
    _check_choice("date_imputation", date_imputation, ["first", "mid", "last"])
    _check_choice("time_imputation", time_imputation, ["first", "last"])
    dtm, dflags, tflags = _on_distinct(
        dtc, lambda u: _impute_dtm_core(u, highest_imputation, date_imputation, time_imputation))
    return dtm.astype("datetime64[ns]"), dflags, tflags


def _impute_dtm_core(dtc: pd.Series, highest_imputation: str, date_imputation: str,
                     time_imputation: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    date_level = highest_imputation if highest_imputation in ("D", "M") else "n"
    dates, dflags = _impute_dt_core(dtc, date_level, date_imputation)
    p = parse_dtc(dtc)
    level = _DATE_LEVELS[highest_imputation]
    miss_h, miss_m, miss_s = p["hour"].isna(), p["minute"].isna(), p["second"].isna()
    need = np.select(
        [miss_h, miss_m, miss_s], [_DATE_LEVELS["h"], _DATE_LEVELS["m"], _DATE_LEVELS["s"]], default=0
    )
    allowed = pd.Series(need <= level, index=dtc.index)
    # Once a higher component is imputed, lower ones are imputed too (13:-:30 -> 13:00:00).
    last = time_imputation == "last"
    hour = p["hour"].where(~miss_h, 23.0 if last else 0.0)
    minute = p["minute"].where(~(miss_h | miss_m), 59.0 if last else 0.0)
    second = p["second"].where(~(miss_h | miss_m | miss_s), 59.0 if last else 0.0)
    # When the date itself was imputed, the time is imputed in the same direction.
    offset = pd.to_timedelta(hour * 3600 + minute * 60 + second, unit="s")
    dtm = (dates + offset).where(allowed & dates.notna())
    codes = np.select([miss_h, miss_m, miss_s], ["H", "M", "S"], default="")
    keep = (codes != "") & dtm.notna().to_numpy()
    tflags = pd.Series(np.where(keep, codes, None), index=dtc.index, dtype=object)
    dflags = pd.Series(np.where(dtm.notna(), dflags, None), index=dtc.index, dtype=object)
    return dtm.astype("datetime64[ns]"), dflags, tflags


def _clip_to_bounds(
    df: pd.DataFrame,
    dates: pd.Series,
    flags: pd.Series,
    dtc: pd.Series,
    min_dates: Sequence[str] | None,
    max_dates: Sequence[str] | None,
) -> pd.Series:
    """admiral's min_dates/max_dates: an imputed date is moved to a bound inside its possible range.

    E.g. an AE started "2023-05" and treatment started 2023-05-10: with ``min_dates=["TRTSDT"]``
    and first-day imputation the AE start becomes 2023-05-10, not 2023-05-01.
    """
    if not min_dates and not max_dates:
        return dates
    lo, _ = impute_dtc_dt(dtc, "M", "first")
    hi, _ = impute_dtc_dt(dtc, "M", "last")
    imputed = flags.notna()
    out = dates.copy(deep=False)
    for col in min_dates or []:
        bound = pd.to_datetime(df[col]).dt.normalize()
        inside = imputed & bound.notna() & (bound >= lo) & (bound <= hi)
        out = out.where(~(inside & (out < bound)), bound)
    for col in max_dates or []:
        bound = pd.to_datetime(df[col]).dt.normalize()
        inside = imputed & bound.notna() & (bound >= lo) & (bound <= hi)
        out = out.where(~(inside & (out > bound)), bound)
    return out.astype("datetime64[ns]")


def derive_vars_dt(
    dataset: pd.DataFrame,
    new_vars_prefix: str,
    dtc: str,
    highest_imputation: str = "n",
    date_imputation: str = "first",
    flag_imputation: str = "auto",
    min_dates: Sequence[str] | None = None,
    max_dates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Add ``<prefix>DT`` (datetime64, date part) and, when imputing, ``<prefix>DTF`` from ``dtc``.

    Args:
        dataset: input frame.
        new_vars_prefix: e.g. ``"A"`` -> ADT/ADTF, ``"AST"`` -> ASTDT/ASTDTF.
        dtc: the ISO 8601 character date variable (e.g. ``"RSDTC"``).
        highest_imputation: ``"n"``, ``"D"`` or ``"M"`` (see module docstring).
        date_imputation: ``"first"``, ``"mid"`` or ``"last"``.
        flag_imputation: ``"auto"`` (add --DTF when ``highest_imputation`` is not ``"n"``),
            ``"date"`` (always add it) or ``"none"``.
        min_dates / max_dates: variables (dates) bounding the imputation, as in admiral.

    Example: ``"2023-05"`` with ``highest_imputation="D"``, ``date_imputation="last"`` gives
    ADT 2023-05-31 and ADTF ``"D"``; ``"2023"`` with ``highest_imputation="D"`` gives NaT.
    """
    _check_choice("flag_imputation", flag_imputation, ["auto", "date", "none"])
    out = dataset.copy(deep=False)
    dates, flags = impute_dtc_dt(out[dtc], highest_imputation, date_imputation)
    dates = _clip_to_bounds(out, dates, flags, out[dtc], min_dates, max_dates)
    out[f"{new_vars_prefix}DT"] = dates
    if flag_imputation == "date" or (flag_imputation == "auto" and highest_imputation != "n"):
        out[f"{new_vars_prefix}DTF"] = flags
    return out


def derive_vars_dtm(
    dataset: pd.DataFrame,
    new_vars_prefix: str,
    dtc: str,
    highest_imputation: str = "h",
    date_imputation: str = "first",
    time_imputation: str = "first",
    flag_imputation: str = "auto",
    ignore_seconds_flag: bool = False,
) -> pd.DataFrame:
    """Add ``<prefix>DTM`` (datetime64) and the imputation flags ``<prefix>DTF``/``<prefix>TMF``.

    ``ignore_seconds_flag=True`` (admiral's option for studies that never collect seconds): a
    value with only the seconds missing gets no --TMF ``"S"``.

    ``flag_imputation``: ``"auto"`` adds --DTF when dates may be imputed (``"D"``/``"M"``) and
    --TMF when times may be imputed; ``"both"``, ``"date"``, ``"time"`` or ``"none"`` force it.

    Example: ``"2023-05-10T14"`` with ``highest_imputation="m"`` gives 2023-05-10 14:00:00, TMF
    ``"M"``; with ``highest_imputation="n"`` it gives NaT.
    """
    _check_choice("flag_imputation", flag_imputation, ["auto", "both", "date", "time", "none"])
    out = dataset.copy(deep=False)
    dtm, dflags, tflags = impute_dtc_dtm(out[dtc], highest_imputation, date_imputation, time_imputation)
    out[f"{new_vars_prefix}DTM"] = dtm
    if ignore_seconds_flag:
        tflags = tflags.where(tflags != "S", None)
    want_date = flag_imputation in ("both", "date") or (flag_imputation == "auto" and highest_imputation in ("D", "M"))
    want_time = flag_imputation in ("both", "time") or (flag_imputation == "auto" and highest_imputation != "n")
    if want_date:
        out[f"{new_vars_prefix}DTF"] = dflags
    if want_time:
        out[f"{new_vars_prefix}TMF"] = tflags
    return out


def derive_vars_dtm_to_dt(dataset: pd.DataFrame, source_vars: Sequence[str]) -> pd.DataFrame:
    """For each ``xxDTM`` in ``source_vars`` add ``xxDT`` = its date part (datetime64 at midnight)."""
    out = dataset.copy(deep=False)
    for var in source_vars:
        if not var.endswith("DTM"):
            raise ValueError(f"{var} is not a --DTM variable")
        out[var[:-1]] = pd.to_datetime(out[var]).dt.normalize()
    return out


def _dy_name(var: str) -> str:
    if var.endswith("DTM"):
        return var[:-3] + "DY"
    if var.endswith("DT"):
        return var[:-2] + "DY"
    raise ValueError(f"cannot name a study day for {var}: expected a --DT or --DTM variable")


def derive_vars_dy(
    dataset: pd.DataFrame, reference_date: str, source_vars: Sequence[str] | Mapping[str, str]
) -> pd.DataFrame:
    """Add study days (ADY, ASTDY, ...) relative to ``reference_date``; there is no day 0.

    ``dy = date - ref + 1`` when ``date >= ref``, else ``date - ref`` (both dates' date parts).
    ``source_vars`` is a list (``ADT -> ADY``, ``ASTDTM -> ASTDY``) or a mapping new -> source.
    """
    out = dataset.copy(deep=False)
    pairs = dict(source_vars) if isinstance(source_vars, Mapping) else {_dy_name(v): v for v in source_vars}
    ref = pd.to_datetime(out[reference_date]).dt.normalize()
    for new, src in pairs.items():
        date = pd.to_datetime(out[src]).dt.normalize()
        days = (date - ref).dt.days.astype("float64")
        out[new] = np.where(days >= 0, days + 1, days)
        out[new] = out[new].astype("float64")
    return out


def _sort(df: pd.DataFrame, order: Sequence[str] | None) -> pd.DataFrame:
    if not order:
        return df
    cols, asc = [], []
    for item in order:
        if item.startswith("-"):
            cols.append(item[1:])
            asc.append(False)
        else:
            cols.append(item)
            asc.append(True)
    return df.sort_values(cols, ascending=asc, kind="mergesort", na_position="last")


def filter_extreme(
    dataset: pd.DataFrame, by_vars: Sequence[str], order: Sequence[str], mode: str = "first"
) -> pd.DataFrame:
    """Keep the first (or last) record per ``by_vars`` group after sorting by ``order``.

    ``order`` lists variables; prefix a name with ``-`` for descending.  Missing values sort last
    in ascending order.  Ties keep the input order (stable sort).
    """
    _check_choice("mode", mode, ["first", "last"])
    ordered = _sort(dataset, order)
    return ordered.drop_duplicates(list(by_vars), keep=mode).sort_index()


class DuplicateRecordsError(ValueError):
    """``dataset_add`` has several records per by group and no ``mode`` says which one to take:
    bad input for a plan (the plan needs an order and mode, or the data a fix), not a bug."""


def derive_vars_merged(
    dataset: pd.DataFrame,
    dataset_add: pd.DataFrame,
    by_vars: Sequence[str] | Mapping[str, str],
    new_vars: Sequence[str] | Mapping[str, str] | None = None,
    filter_add: Callable[[pd.DataFrame], pd.Series] | None = None,
    order: Sequence[str] | None = None,
    mode: str | None = None,
    exist_flag: str | None = None,
) -> pd.DataFrame:
    """Merge variables from ``dataset_add`` onto ``dataset`` (left join, one record per by group).

    Args:
        by_vars: join keys; a mapping ``{dataset_var: dataset_add_var}`` renames keys.
        new_vars: variables to bring over; a mapping ``{new_name: add_name}`` renames them.
            Default: every non-key variable of ``dataset_add``.
        filter_add: a function returning a boolean mask over ``dataset_add`` (records to use).
        order / mode: when ``dataset_add`` has several records per group, sort by ``order`` and
            keep the ``"first"`` or ``"last"``.  Without ``mode`` duplicates are an error.
        exist_flag: name of a "Y"/missing flag telling whether a record was merged.
    """
    keys = dict(by_vars) if isinstance(by_vars, Mapping) else {k: k for k in by_vars}
    add = dataset_add
    if filter_add is not None:
        add = add[filter_add(add).fillna(False).astype(bool)]
    if new_vars is None:
        rename = {c: c for c in add.columns if c not in keys.values()}
    elif isinstance(new_vars, Mapping):
        rename = {src: new for new, src in new_vars.items()}
    else:
        rename = {c: c for c in new_vars}
    if mode is not None:
        add = filter_extreme(add, list(keys.values()), order or [], mode)
    elif add.duplicated(list(keys.values())).any():
        dup = add[add.duplicated(list(keys.values()), keep=False)][list(keys.values())].head(3)
        raise DuplicateRecordsError(
            f"dataset_add has several records per {', '.join(keys.values())} (e.g. {dup.to_dict('records')}); "
            "give order and mode"
        )
    sub = add[list(keys.values()) + list(rename)].rename(columns={**{v: k for k, v in keys.items()}, **rename})
    if exist_flag:
        sub = sub.assign(**{exist_flag: "Y"})
    clash = [c for c in sub.columns if c in dataset.columns and c not in keys]
    base = dataset.drop(columns=clash)
    out = base.merge(sub, how="left", on=list(keys), validate="many_to_one")
    out.index = dataset.index
    if exist_flag:
        out[exist_flag] = out[exist_flag].astype(object).where(out[exist_flag].notna(), None)
    return out


def derive_var_merged_exist_flag(
    dataset: pd.DataFrame,
    dataset_add: pd.DataFrame,
    by_vars: Sequence[str],
    new_var: str,
    condition: Callable[[pd.DataFrame], pd.Series] | None = None,
    true_value: str = "Y",
    false_value: str | None = "N",
    missing_value: str | None = None,
) -> pd.DataFrame:
    """Flag records of ``dataset`` by whether ``dataset_add`` has a matching record (meeting ``condition``).

    A group present in ``dataset_add`` with no record meeting the condition gets ``false_value``;
    a group absent from ``dataset_add`` gets ``missing_value``.
    """
    add = dataset_add[list(by_vars)].copy(deep=False)
    add["__hit"] = True if condition is None else condition(dataset_add).fillna(False).astype(bool).to_numpy()
    agg = add.groupby(list(by_vars), as_index=False)["__hit"].any()
    out = dataset.merge(agg, how="left", on=list(by_vars))
    out.index = dataset.index
    hit = out.pop("__hit")
    value = np.where(hit.isna(), missing_value, np.where(hit.fillna(False).astype(bool), true_value, false_value))
    out[new_var] = pd.Series(value, index=out.index, dtype=object).where(pd.notna(value), None)
    return out


def derive_var_extreme_flag(
    dataset: pd.DataFrame,
    by_vars: Sequence[str],
    order: Sequence[str],
    new_var: str,
    mode: str = "first",
    true_value: str = "Y",
    false_value: str | None = None,
    filter_mask: pd.Series | None = None,
) -> pd.DataFrame:
    """Flag the first/last record per ``by_vars`` group after sorting by ``order``.

    Only records where ``filter_mask`` is True are candidates (others get ``false_value``).
    Example: the baseline record is the last pre-treatment record per USUBJID/PARAMCD.
    """
    _check_choice("mode", mode, ["first", "last"])
    out = dataset.copy(deep=False)
    cand = out if filter_mask is None else out[filter_mask.reindex(out.index).fillna(False).astype(bool)]
    chosen = _sort(cand, order).drop_duplicates(list(by_vars), keep=mode).index
    hit = out.index.isin(chosen)
    out[new_var] = pd.Series(np.where(hit, true_value, np.full(len(out), false_value, dtype=object)),
                             index=out.index, dtype=object)
    return out


def derive_vars_duration(
    dataset: pd.DataFrame,
    new_var: str,
    start_date: str,
    end_date: str,
    out_unit: str = "days",
    add_one: bool = True,
) -> pd.DataFrame:
    """Add a duration ``end - start (+1)`` in ``out_unit`` (``days``, ``weeks``, ``months``, ``years``).

    Months and years use 30.4375 and 365.25 days (admiral's defaults).
    """
    divisors = {"days": 1.0, "weeks": 7.0, "months": 30.4375, "years": 365.25}
    _check_choice("out_unit", out_unit, list(divisors))
    out = dataset.copy(deep=False)
    start = pd.to_datetime(out[start_date]).dt.normalize()
    end = pd.to_datetime(out[end_date]).dt.normalize()
    days = (end - start).dt.days.astype("float64") + (1.0 if add_one else 0.0)
    out[new_var] = days / divisors[out_unit]
    return out


def derive_var_trtemfl_window(
    dataset: pd.DataFrame,
    new_var: str,
    start_date: str,
    trt_start: str,
    window_end: str | None = None,
) -> pd.DataFrame:
    """Flag ``"Y"`` records starting on/after ``trt_start`` and (when given) on/before ``window_end``."""
    out = dataset.copy(deep=False)
    start = pd.to_datetime(out[start_date])
    ok = start.notna() & (start >= pd.to_datetime(out[trt_start]))
    if window_end is not None:
        end = pd.to_datetime(out[window_end])
        ok &= end.isna() | (start <= end)
    out[new_var] = pd.Series(np.where(ok, "Y", None), index=out.index, dtype=object)
    return out


def derive_vars_ae_dt(
    dataset: pd.DataFrame,
    start_dtc: str = "AESTDTC",
    end_dtc: str = "AEENDTC",
    min_dates: Sequence[str] = ("TRTSDT",),
    death_date: str = "DTHDT",
) -> pd.DataFrame:
    """One rule for event dates: ASTDT/ASTDTF and AENDT/AENDTF (a plan uses it wherever the same
    onset date must be seen, e.g. an occurrence dataset and a subject-level flag built from it).

    - AENDT: a partial end date is imputed to the last day of the month (or year), never after
      death (``death_date``); AENDTF "D"/"M".
    - ASTDT: a partial start date is imputed to the first day of the month (or year); when one of
      ``min_dates`` (e.g. the first dose of each treatment) lies inside the partial date's
      period and after that day, the latest such date is used (admiral ``min_dates``: the worst
      case, emergent rather than not); never after AENDT nor after death (``max_dates``).

    Example: AESTDTC "2023-01", TRTSDT 2023-01-10 -> ASTDT 2023-01-10, ASTDTF "D".
    ``dataset`` must carry ``start_dtc`` and the date columns named; a missing ``end_dtc``
    column means no end dates.  ``min_dates``/``death_date`` columns absent from ``dataset`` are
    not used.
    """
    out = dataset.copy(deep=False)
    if end_dtc not in out.columns:
        out[end_dtc] = None
    death = [death_date] if death_date in out.columns else []
    out = derive_vars_dt(out, "AEN", end_dtc, highest_imputation="M", date_imputation="last", max_dates=death)
    out = derive_vars_dt(out, "AST", start_dtc, highest_imputation="M", date_imputation="first",
                         min_dates=[c for c in min_dates if c in out.columns], max_dates=["AENDT", *death])
    return out


def days_after(dataset: pd.DataFrame, date: str, reference_date: str) -> pd.Series:
    """Whole days from ``reference_date`` to ``date`` (both ADaM numeric dates; times ignored);
    missing when either is missing.  Day 0 is the reference day itself (no day-1 shift: this is a
    distance, not a study day)."""
    return (pd.to_datetime(dataset[date]).dt.normalize()
            - pd.to_datetime(dataset[reference_date]).dt.normalize()).dt.days


def in_day_window(days: pd.Series, window: tuple[int, int]) -> pd.Series:
    """True where ``window[0] <= days <= window[1]`` (bounds included); False where ``days`` is missing.

    The one window rule behind the subject-level ``derive_var_event_window_flag`` and the
    record-level ``derive_var_record_window_flag``."""
    return days.between(*window).fillna(False).astype(bool)


def suppqual_wide(parent: pd.DataFrame, supp: pd.DataFrame | None, qnams: Sequence[str] | None = None) -> pd.DataFrame:
    """Merge SUPP-- qualifiers onto their parent domain as columns named by QNAM.

    ``IDVAR``/``IDVARVAL`` link to the parent (``--SEQ`` compared numerically, other variables as
    text); a blank IDVAR links at subject level.  Unknown QNAMs in ``qnams`` become empty columns.
    """
    out = parent.copy(deep=False)
    wanted = list(qnams or [])
    if supp is None or supp.empty:
        for q in wanted:
            out[q] = None
        return out
    s = convert_blanks_to_na(supp)
    if wanted:
        s = s[s["QNAM"].isin(wanted)]
    if s.empty:
        for q in wanted:
            out[q] = None
        return out
    for idvar, grp in s.groupby(s["IDVAR"].fillna(""), sort=True):
        if idvar and idvar not in out.columns:
            continue  # qualifiers of a parent variable this frame does not carry
        index = ["USUBJID", "IDVARVAL"] if idvar else ["USUBJID"]
        wide = grp.pivot_table(index=index, columns="QNAM", values="QVAL", aggfunc="first").reset_index()
        wide.columns.name = None
        if idvar:
            if pd.api.types.is_numeric_dtype(out[idvar]):
                wide["__k"] = pd.to_numeric(wide["IDVARVAL"], errors="coerce")
                keys = out[["USUBJID", idvar]].rename(columns={idvar: "__k"})
            else:
                wide["__k"] = wide["IDVARVAL"].astype(str).str.strip()
                keys = pd.DataFrame({"USUBJID": out["USUBJID"], "__k": out[idvar].astype(object).where(
                    out[idvar].isna(), out[idvar].astype(str).str.strip())})
            wide = wide.drop(columns=["IDVARVAL"])
            merged = keys.merge(wide, how="left", on=["USUBJID", "__k"])
        else:
            merged = out[["USUBJID"]].merge(wide, how="left", on="USUBJID")
        for q in [c for c in wide.columns if c not in ("USUBJID", "__k")]:
            raw = merged[q].to_numpy(dtype=object)
            vals = pd.Series(np.where(pd.isna(raw), None, raw), index=out.index, dtype=object)
            out[q] = out[q].where(out[q].notna(), vals) if q in out.columns else vals
    for q in wanted:
        if q not in out.columns:
            out[q] = None
    return out
