"""Conform a frame to its dataset spec, and check the FDA transport rules before anything is written.

``conform`` (order, presence, types, sort, unique keys) and ``check_frame`` (FDA XPT v5 rules)
return their problems as values; ``write_datasets`` collects them for every dataset and raises one
:class:`~cdisc_pipe.errors.InputError`.  Every problem names the dataset, the variable, the value
and where it is: the row number after sorting (1-based) plus USUBJID and --SEQ when the dataset
has them.
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import Iterable

import numpy as np
import pandas as pd

from cdisc_pipe.errors import Problem, raise_if
from cdisc_pipe.spec.model import Dataset, StudySpec, Variable
from cdisc_pipe.xpt.v5 import factorize_objects, factorize_values, low_cardinality, parse_format

#: At most this many offending rows are listed per dataset, variable and rule; the rest are
#: counted in one closing problem (a 1M-row dataset must not produce a 1M-line error report).
MAX_LISTED = 25
MAX_TEXT_BYTES = 200
NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")
SAS_EPOCH = np.datetime64("1960-01-01T00:00:00", "ns")
# IBM 370 doubles hold binary exponents -260..248 (TS-140); outside, values would change on writing.
IBM_MAX = 2.0**249
IBM_MIN = 2.0**-260

# SAS formats that make a number a date, a date-time or a time.
DATE_FORMATS = frozenset(
    ["DATE", "E8601DA", "IS8601DA", "YYMMDD", "MMDDYY", "DDMMYY", "DAY", "WEEKDATE", "WORDDATE", "MONYY", "YYMMDDN", "B8601DA"]
)
DATETIME_FORMATS = frozenset(["DATETIME", "E8601DT", "IS8601DT", "DATEAMPM", "B8601DT", "DTDATE"])
TIME_FORMATS = frozenset(["TIME", "E8601TM", "IS8601TM", "TOD", "HHMM", "HOUR", "B8601TM"])


def format_kind(display_format: str | None) -> str | None:
    """``"date"``, ``"datetime"``, ``"time"`` for a SAS date-like format, else ``None``."""
    if not display_format:
        return None
    try:
        name = parse_format(display_format).name.upper()
    except ValueError:
        return None
    if name in DATE_FORMATS:
        return "date"
    if name in DATETIME_FORMATS:
        return "datetime"
    if name in TIME_FORMATS:
        return "time"
    return None


def is_numeric_date(var: Variable) -> bool:
    """A numeric ADaM date/datetime/time: date-like data type with a SAS display format."""
    return var.data_type in ("date", "datetime", "time") and var.display_format is not None


# --------------------------------------------------------------------------------------------
# locations


def seq_variable(df: pd.DataFrame, dataset: Dataset) -> str | None:
    """The --SEQ variable used to locate records (``AESEQ``, ``ASEQ``, ...), if the frame has one."""
    candidates = [f"{dataset.domain}SEQ"] if dataset.domain else []
    candidates += ["ASEQ"] + [c for c in df.columns if isinstance(c, str) and c.endswith("SEQ")]
    for c in candidates:
        if c in df.columns:
            return c
    return None


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def locate(df: pd.DataFrame, dataset: Dataset, rows: np.ndarray, row_word: str = "row") -> list[str]:
    """``"row 12 (USUBJID=..., AESEQ=3)"`` for each 0-based position in ``rows``."""
    seq = seq_variable(df, dataset)
    usub = df["USUBJID"].to_numpy(dtype=object)[rows] if "USUBJID" in df.columns else None
    seqv = df[seq].to_numpy(dtype=object)[rows] if seq else None
    out = []
    for i, r in enumerate(rows):
        extra = []
        if usub is not None:
            extra.append(f"USUBJID={_fmt(usub[i])}")
        if seqv is not None:
            extra.append(f"{seq}={_fmt(seqv[i])}")
        out.append(f"{row_word} {int(r) + 1}" + (f" ({', '.join(extra)})" if extra else ""))
    return out


def row_problems(
    df: pd.DataFrame,
    dataset: Dataset,
    variable: str,
    mask: np.ndarray,
    message: str,
    hint: str | None = None,
    values: np.ndarray | None = None,
    row_word: str = "row",
) -> list[Problem]:
    """One problem per offending row (at most :data:`MAX_LISTED`, then a count of the rest).

    ``row_word`` is ``"row"`` for positions after sorting (the FDA checks) and ``"input row"``
    for positions in the frame as given (conform's type problems, found before sorting).
    """
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        return []
    listed = rows[:MAX_LISTED]
    vals = (values if values is not None else df[variable].to_numpy(dtype=object))[listed]
    problems = [
        Problem(file=dataset.name, entry=where, column=variable, value=_fmt(v), message=message, hint=hint)
        for where, v in zip(locate(df, dataset, listed, row_word), vals)
    ]
    if len(rows) > MAX_LISTED:
        problems.append(
            Problem(
                file=dataset.name,
                column=variable,
                message=f"{message}: {len(rows) - MAX_LISTED} more row(s) not listed ({len(rows)} in all)",
                hint=hint,
            )
        )
    return problems


# --------------------------------------------------------------------------------------------
# type conversion


def _strip_trailing_blanks(values: np.ndarray) -> np.ndarray:
    """``str.rstrip(" ")`` on an object array of ``str``; only values ending in a blank are touched."""
    ends = np.fromiter(map(str.endswith, values, repeat(" ")), dtype=bool, count=len(values))
    if ends.any():
        values = values.copy()
        values[ends] = [v.rstrip(" ") for v in values[ends]]
    return values


def factorized(arr: np.ndarray, *, by_value: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes, distinct values) of a low-cardinality object array (missing -> code -1), else None.

    Per-value work (type checks, trailing blanks, byte lengths) is then done once per distinct
    value and broadcast back by code; only speed depends on which path is taken.  ``by_value``
    for incoming data (equal strings may be distinct objects); by object identity for conformed
    frames, which hold one object per distinct value.
    """
    if not low_cardinality(arr):
        return None
    return factorize_values(arr) if by_value else factorize_objects(arr)


def _clean_text(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Non-missing values -> (text or None, is-not-text flags, inferred kind)."""
    kind = pd.api.types.infer_dtype(values, skipna=False) if len(values) else "empty"
    bad = np.zeros(len(values), dtype=bool)
    if kind in ("string", "empty"):
        text = values
    elif kind == "integer":
        # Integers in a text variable (e.g. a grade 1..5) are written as their decimal text.
        text = np.array([str(int(v)) for v in values], dtype=object)
    else:
        bad = ~np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
        text = values.copy()
        text[bad] = ""
    # XPT cannot store trailing blanks (values are blank-padded), so drop them here: what is
    # written is what reads back.  Leading blanks are kept.  Empty text is missing.
    text = _strip_trailing_blanks(text)
    out = np.where(text == "", None, text).astype(object)
    return out, bad, kind


def _to_text(s: pd.Series, dataset: Dataset, var: Variable, frame: pd.DataFrame) -> tuple[pd.Series, list[Problem]]:
    """Character variable: Python ``str`` or ``None``; trailing blanks dropped ('' -> None)."""
    n = len(s)
    arr = s.to_numpy(dtype=object)
    f = factorized(arr, by_value=True)
    if f is not None:
        codes, uniques = f
        clean, bad_u, kind = _clean_text(uniques)
        out = np.append(clean, None)[codes]  # code -1 (missing) takes the appended None
        bad = np.append(bad_u, False)[codes]
    else:
        keep = np.flatnonzero(~pd.isna(arr))
        clean, bad_k, kind = _clean_text(arr[keep])
        out = np.full(n, None, dtype=object)
        out[keep] = clean
        bad = np.zeros(n, dtype=bool)
        bad[keep] = bad_k
    problems = row_problems(
        frame, dataset, var.name, bad, f"{var.data_type} variable holds non-text values ({kind})",
        "give text values (ISO 8601 strings for dates); the writer does not guess a format",
        values=arr, row_word="input row",
    )
    return pd.Series(out, index=s.index, dtype=object), problems


def _to_number(s: pd.Series, dataset: Dataset, var: Variable, frame: pd.DataFrame) -> tuple[pd.Series, list[Problem]]:
    """integer/float variable: float64 with NaN for missing."""
    problems: list[Problem] = []
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        out = pd.Series(s.to_numpy(dtype=np.float64, na_value=np.nan), index=s.index)
    elif pd.api.types.is_datetime64_any_dtype(s.dtype) or pd.api.types.is_timedelta64_dtype(s.dtype):
        problems.append(
            Problem(file=dataset.name, column=var.name, value=str(s.dtype),
                    message=f"{var.data_type} variable holds date/time values",
                    hint="a numeric date needs data_type date/datetime/time and a display_format in the spec")
        )
        return pd.Series(np.nan, index=s.index, dtype="float64"), problems
    else:
        obj = s.astype(object)
        blank = obj.map(lambda v: isinstance(v, str) and v.strip() == "", na_action="ignore").fillna(False).astype(bool)
        obj = obj.where(~blank, None)
        out = pd.to_numeric(obj, errors="coerce").astype("float64")
        bad = (out.isna() & obj.notna()).to_numpy()
        problems += row_problems(frame, dataset, var.name, bad, f"{var.data_type} variable holds a non-numeric value",
                                 "fix the value or the variable's data_type in the spec", row_word="input row")
    if var.data_type == "integer":
        arr = out.to_numpy()
        frac = np.isfinite(arr) & (np.floor(arr) != arr)
        problems += row_problems(frame, dataset, var.name, frac, "integer variable holds a non-integer value",
                                 "round deliberately or declare data_type float", values=arr.astype(object),
                                 row_word="input row")
    return out, problems


def _to_sas_date(s: pd.Series, dataset: Dataset, var: Variable, frame: pd.DataFrame) -> tuple[pd.Series, list[Problem]]:
    """Numeric date/datetime/time: SAS days (date) or seconds (datetime, time) as float64.

    Accepts datetime64 (date, datetime), timedelta64 (time), ``datetime.date/datetime/time``
    objects, or numbers already on the SAS scale.  Text is refused: partial ISO dates must not be
    completed silently (XPT-NOTES pitfall 7).
    """
    problems: list[Problem] = []
    kind = var.data_type
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64"), problems
    values = s
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        inferred = pd.api.types.infer_dtype(s, skipna=True)
        if inferred == "empty":
            return pd.Series(np.nan, index=s.index, dtype="float64"), problems
        if kind == "time" and inferred == "time":
            secs = s.map(lambda t: t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6, na_action="ignore")
            return secs.astype("float64"), problems
        if inferred in ("date", "datetime", "datetime64"):
            values = pd.to_datetime(s.astype(object))
        elif inferred in ("timedelta", "timedelta64"):
            values = pd.to_timedelta(s.astype(object))
        else:
            bad = s.notna().to_numpy()
            problems += row_problems(frame, dataset, var.name, bad,
                                     f"numeric {kind} variable ({var.display_format}) holds {inferred} values",
                                     "give datetime64/timedelta64 values (or SAS numbers); text dates are not parsed",
                                     row_word="input row")
            return pd.Series(np.nan, index=s.index, dtype="float64"), problems
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        if getattr(values.dtype, "tz", None) is not None:
            problems.append(Problem(file=dataset.name, column=var.name, value=str(values.dtype),
                                    message="time-zone aware date-times cannot be written to XPT",
                                    hint="convert to local (naive) date-times first"))
            return pd.Series(np.nan, index=s.index, dtype="float64"), problems
        ns = values.to_numpy(dtype="datetime64[ns]")
        delta = (ns - SAS_EPOCH).astype("timedelta64[ns]").astype(np.int64).astype(np.float64)
        nat = np.isnat(ns)
        if kind == "date":
            days = np.floor(delta / 86_400e9)
            has_time = ~nat & (days * 86_400e9 != delta)
            problems += row_problems(frame, dataset, var.name, has_time, "date variable holds a time of day",
                                     "declare data_type datetime (DATETIME20.) or drop the time part",
                                     values=ns.astype(object), row_word="input row")
            out = days
        elif kind == "datetime":
            out = delta / 1e9
        else:  # time held as datetime64: the time of day
            out = (delta / 1e9) % 86_400
        out[nat] = np.nan
        return pd.Series(out, index=s.index, dtype="float64"), problems
    if pd.api.types.is_timedelta64_dtype(values.dtype):
        td = values.to_numpy(dtype="timedelta64[ns]")
        out = td.astype(np.int64).astype(np.float64) / 1e9
        out[np.isnat(td)] = np.nan
        if kind != "time":
            problems.append(Problem(file=dataset.name, column=var.name, value=str(values.dtype),
                                    message=f"{kind} variable holds durations", hint="durations fit data_type time only"))
        return pd.Series(out, index=s.index, dtype="float64"), problems
    problems.append(Problem(file=dataset.name, column=var.name, value=str(s.dtype),
                            message=f"numeric {kind} variable has unsupported type {s.dtype}"))
    return pd.Series(np.nan, index=s.index, dtype="float64"), problems


# --------------------------------------------------------------------------------------------
# conform


def conform_frame(df: pd.DataFrame, dataset: Dataset, spec: StudySpec | None = None, consume: bool = False
                  ) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Conform ``df`` to ``dataset``; return the conformed frame (or None) and the problems.

    - variables in spec order; a frame column not in the spec is a problem; a missing Req
      variable (or key variable) is a problem; a missing Exp variable is added, all null; absent
      Perm/Cond variables are left out;
    - types: integer/float -> float64; date/datetime/time with a display_format -> SAS number
      (float64); text and ISO 8601 types -> ``str``/``None`` (trailing blanks dropped);
    - sorted by the dataset keys (missing first, like SAS), stable; duplicate keys are a problem.

    ``spec`` is accepted for symmetry with the other stage functions (value-level lookups may use
    it); the dataset carries everything needed today.  ``consume``: the caller gives ``df`` up; each
    column is taken out of it as it is converted (a 2-million-record dataset is not held twice).
    """
    problems: list[Problem] = []
    spec_names = dataset.variable_names
    extra = [c for c in df.columns if c not in spec_names]
    for c in extra:
        problems.append(Problem(file=dataset.name, column=str(c), message="column is not a variable of the dataset spec",
                                hint=f"add it to specs for {dataset.name} or drop it (names are upper case)"))
    if len(set(df.columns)) != len(df.columns):
        dup = sorted({str(c) for c in df.columns if list(df.columns).count(c) > 1})
        problems.append(Problem(file=dataset.name, message="duplicate column names", value=", ".join(dup)))
        return None, problems
    keep: list[str] = []
    for name in spec_names:
        var = dataset.variable(name)
        if name in df.columns:
            keep.append(name)
        elif var.core == "Req" or var.mandatory or name in dataset.keys:
            what = "required variable" if var.core == "Req" or var.mandatory else "key variable"
            problems.append(Problem(file=dataset.name, column=name, message=f"{what} is missing from the data",
                                    hint="derive it, or correct core/keys in the spec"))
        elif var.core == "Exp":
            keep.append(name)
    if problems:
        return None, problems
    n = len(df)
    if consume:  # the caller's frame itself: its columns go as they are converted
        df.index = pd.RangeIndex(n)
        frame = df
    else:
        frame = df.reset_index(drop=True)
    # what locates a record in a problem (USUBJID, the --SEQ variable), kept apart from the columns
    # taken out of a consumed frame
    where = frame[[c for c in ("USUBJID", seq_variable(frame, dataset)) if c is not None and c in frame.columns]]
    cols: dict[str, pd.Series] = {}
    for name in keep:
        var = dataset.variable(name)
        if name not in frame.columns:  # expected variable, absent: present and all null
            cols[name] = (pd.Series(np.nan, index=frame.index, dtype="float64") if var.is_numeric
                          else pd.Series([None] * n, index=frame.index, dtype=object))
            continue
        s = frame.pop(name) if consume else frame[name]
        located = where.assign(**{name: s})
        if is_numeric_date(var):
            out, probs = _to_sas_date(s, dataset, var, located)
        elif var.is_numeric:
            out, probs = _to_number(s, dataset, var, located)
        else:
            out, probs = _to_text(s, dataset, var, located)
        del s, located
        cols[name] = out
        problems += probs
    index = frame.index
    del frame, where
    out = pd.DataFrame(cols, index=index, copy=False)  # the converted columns, not copied again
    del cols
    if problems:
        return None, problems
    if dataset.keys:
        # sorted column by column, each unsorted column let go once taken (not the frame twice)
        order = out[dataset.keys].sort_values(dataset.keys, kind="stable", na_position="first").index.to_numpy()
        names = list(out.columns)
        taken = {}
        for name in names:
            col = out.pop(name)
            taken[name] = col.take(order).reset_index(drop=True)
            del col
        out = pd.DataFrame(taken, columns=names, copy=False)
        del taken
        dup = out.duplicated(dataset.keys, keep=False).to_numpy()
        if dup.any():
            problems += duplicate_key_problems(out, dataset, dup)
            return None, problems
    return out, problems


def duplicate_key_problems(df: pd.DataFrame, dataset: Dataset, dup: np.ndarray) -> list[Problem]:
    """One problem per duplicated key combination: the key values and the rows holding them."""
    problems = []
    sub = df.loc[dup, dataset.keys]
    rows = np.flatnonzero(dup)
    groups = sub.assign(__row=rows + 1).groupby(dataset.keys, dropna=False, sort=False)["__row"].apply(list)
    for i, (key, rws) in enumerate(groups.items()):
        if i >= MAX_LISTED:
            problems.append(Problem(file=dataset.name, message=f"{len(groups) - MAX_LISTED} more duplicated key value(s) not listed"))
            break
        key = key if isinstance(key, tuple) else (key,)
        value = ", ".join(f"{k}={_fmt(v)}" for k, v in zip(dataset.keys, key))
        problems.append(Problem(file=dataset.name, entry=f"rows {', '.join(map(str, rws))}", column=", ".join(dataset.keys),
                                value=value, message="duplicate key values",
                                hint="the dataset keys in the spec must identify each record"))
    return problems


def conform(df: pd.DataFrame, dataset: Dataset, spec: StudySpec | None = None) -> pd.DataFrame:
    """Conform ``df`` to its dataset spec (see :func:`conform_frame`); raise ``InputError`` on problems."""
    out, problems = conform_frame(df, dataset, spec)
    raise_if(problems, stage="xpt")
    assert out is not None
    return out


# --------------------------------------------------------------------------------------------
# FDA checks


def check_metadata(dataset: Dataset, names: Iterable[str]) -> list[Problem]:
    """Dataset and variable names (<= 8, A-Z 0-9 _), labels (<= 40, ASCII), date formats."""
    problems = []
    if not NAME_RE.match(dataset.name):
        problems.append(Problem(file=dataset.name, message="dataset name must be 1-8 upper-case letters, digits or _, starting with a letter",
                                value=dataset.name))
    for where, label in [(None, dataset.label)] + [(n, dataset.variable(n).label) for n in names]:
        if len(label) > 40:
            problems.append(Problem(file=dataset.name, column=where, value=label,
                                    message=f"label is {len(label)} characters; XPT v5 allows 40",
                                    hint="shorten the label in the spec"))
        if not label.isascii():
            problems.append(Problem(file=dataset.name, column=where, value=label, message="label is not ASCII",
                                    hint="use ASCII characters only"))
    for n in names:
        var = dataset.variable(n)
        if not NAME_RE.match(n):
            problems.append(Problem(file=dataset.name, column=n, value=n,
                                    message="variable name must be 1-8 upper-case letters, digits or _, starting with a letter"))
        if is_numeric_date(var) and format_kind(var.display_format) != var.data_type:
            problems.append(Problem(file=dataset.name, column=n, value=var.display_format,
                                    message=f"numeric {var.data_type} variable needs a {var.data_type.upper()} display format",
                                    hint={"date": "e.g. DATE9.", "datetime": "e.g. DATETIME20.", "time": "e.g. TIME8."}[var.data_type]))
    return problems


def _byte_lengths(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 byte length, is-ASCII) of non-missing ``str`` values."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64), np.ones(0, dtype=bool)
    try:
        # numpy's ASCII conversion fails on the first non-ASCII value: one C loop when all is ASCII
        return np.strings.str_len(values.astype(np.bytes_)).astype(np.int64), np.ones(len(values), dtype=bool)
    except UnicodeEncodeError:
        is_ascii = np.fromiter(map(str.isascii, values), dtype=bool, count=len(values))
        nbytes = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        nbytes[~is_ascii] = [len(v.encode("utf-8")) for v in values[~is_ascii]]
        return nbytes, is_ascii


def text_byte_lengths(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 byte length, is-ASCII) per value of a text series; missing values have length 0."""
    arr = s.to_numpy(dtype=object)
    f = factorized(arr)
    if f is not None:
        codes, uniques = f
        nb, asc = _byte_lengths(uniques)
        return np.append(nb, 0)[codes], np.append(asc, True)[codes]
    keep = np.flatnonzero(~pd.isna(arr))
    nbytes = np.zeros(len(arr), dtype=np.int64)
    ascii_ = np.ones(len(arr), dtype=bool)
    nbytes[keep], ascii_[keep] = _byte_lengths(arr[keep])
    return nbytes, ascii_


# --- ASCII for XPT v5 ---------------------------------------------------------------------------

#: Explicit, documented replacements applied before the ASCII check (typographic -> ASCII).
ASCII_REPLACEMENTS = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
    "\u00b5": "u", "\u03bc": "u", "\u00b0": " deg ", "\u00a0": " ", "\u2264": "<=", "\u2265": ">=",
    "\uff08": "(", "\uff09": ")", "\uff0c": ",", "\u3000": " ", "\u00d7": "x",
}
_SPACES = re.compile(r"\s+")


def transliterate(value: str) -> str:
    """The ASCII text of one value for XPT v5: typographic characters with an obvious ASCII twin
    are replaced (:data:`ASCII_REPLACEMENTS`), accents dropped (NFKD, marks removed), anything else
    (e.g. Chinese text) becomes ``?`` per character; blanks collapsed and stripped.  ASCII text is
    returned unchanged."""
    if value.isascii():
        return value
    import unicodedata

    for k, v in ASCII_REPLACEMENTS.items():
        value = value.replace(k, v)
    value = "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))
    value = "".join(c if c.isascii() else "?" for c in value)
    return _SPACES.sub(" ", value).strip()


def ascii_frame(df: pd.DataFrame, dataset: Dataset) -> tuple[pd.DataFrame, dict[str, int]]:
    """The frame the XPT v5 writer takes: every text value made ASCII with :func:`transliterate`
    (the Dataset-JSON writer takes the original, UTF-8 frame).  Returns the frame (``df`` itself
    when all text is ASCII) and ``{variable: rows changed}``.  Works on distinct values."""
    out, changed = df, {}
    for name in df.columns:
        var = dataset.variable(name)
        if var.is_numeric:
            continue
        arr = df[name].to_numpy(dtype=object)
        f = factorized(arr)
        if f is None:
            keep = ~pd.isna(arr)
            if "".join(arr[keep]).isascii():  # the usual case: one C-level pass
                continue
            codes, uniques = pd.factorize(arr[keep])
            full = np.full(len(arr), -1, dtype=np.int64)
            full[keep] = codes
            codes, uniques = full, np.asarray(uniques, dtype=object)
        else:
            codes, uniques = f
        if "".join(uniques).isascii():
            continue
        fixed = np.array([transliterate(u) or None for u in uniques] + [None], dtype=object)
        bad = np.append(np.fromiter((not u.isascii() for u in uniques), dtype=bool, count=len(uniques)), False)
        if out is df:
            out = df.copy(deep=False)  # the changed columns are replaced, none is written into
        out[name] = pd.Series(fixed[codes], index=df.index, dtype=object)
        changed[name] = int(bad[codes].sum())
    return out, changed


def check_frame(df: pd.DataFrame, dataset: Dataset) -> list[Problem]:
    """FDA XPT v5 rules on a conformed frame; every violation with its location.

    Character values: ASCII only (never transliterated), at most 200 bytes, at most the spec
    length.  Numerics: finite and within the IBM 370 range.  A dataset with no numeric variable
    must not have records that are entirely blank (XPT v5 cannot tell them from the padding;
    XPT-NOTES pitfall 5).
    """
    problems = check_metadata(dataset, df.columns)
    text_cols = []
    for name in df.columns:
        var = dataset.variable(name)
        s = df[name]
        if var.is_numeric:
            arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
            mag = np.abs(arr)
            bad = np.isinf(arr) | (mag >= IBM_MAX) | ((mag > 0) & (mag < IBM_MIN))
            problems += row_problems(df, dataset, name, bad,
                                     "numeric value is outside the IBM 370 range of XPT v5 (it would change on writing)",
                                     "values must be finite with magnitude between 2**-260 and 2**249",
                                     values=arr.astype(object))
            if is_numeric_date(var) and var.data_type == "date":
                part = np.isfinite(arr) & (np.floor(arr) != arr)
                problems += row_problems(df, dataset, name, part, "numeric date is not a whole SAS day number",
                                         "a DATE value counts whole days since 1960-01-01", values=arr.astype(object))
            continue
        text_cols.append(name)
        nbytes, ascii_ = text_byte_lengths(s)
        problems += row_problems(df, dataset, name, ~ascii_, "value is not ASCII",
                                 "XPT v5 takes ASCII only: correct the source value (nothing is transliterated)")
        problems += row_problems(df, dataset, name, nbytes > MAX_TEXT_BYTES,
                                 f"value is longer than {MAX_TEXT_BYTES} bytes",
                                 "split long text (e.g. into COVAL1..n or SUPP--) - nothing is truncated")
        if var.length is not None:
            problems += row_problems(df, dataset, name, (nbytes > var.length) & (nbytes <= MAX_TEXT_BYTES),
                                     f"value is longer than the spec length {var.length}",
                                     "raise the length in the spec or correct the value")
    if text_cols and len(text_cols) == df.shape[1] and len(df):
        blank = df[text_cols].isna().all(axis=1).to_numpy()
        if blank.any():
            rows = np.flatnonzero(blank)
            problems.append(Problem(file=dataset.name, entry=", ".join(f"row {r + 1}" for r in rows[:MAX_LISTED]),
                                    message="record with every variable blank in a dataset without numeric variables: "
                                            "XPT v5 readers drop such records",
                                    hint="remove the empty record(s)"))
    return problems
