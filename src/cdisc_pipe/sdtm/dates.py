"""ISO 8601 date/times for SDTM: assembly from raw EDC date and time fields, study days.

Raw EDC dates look like ``12 MAR 2024``; unknown parts are written ``UN``/``UK``/``UNK``/``UNKN``
(``UN MAR 2024``, ``UN UNK 2023``).  ISO input (``2024-03-12``, ``2024-03``) is accepted as well.
SDTM keeps partial dates partial and never imputes: ``UN MAR 2024`` -> ``2024-03``,
``UN UNK 2023`` -> ``2023``, ``15 UNK 2024`` -> ``2024---15`` (the day is known, the month is not).
A time is appended only to a complete date (``2024-03-12T14:20``); a time given with a partial date
cannot be written as valid ISO 8601 and is reported, not invented.

Everything here is vectorised: a whole column is parsed with regular expressions at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
UNKNOWN = {"UN", "UK", "UNK", "UNKN", "NK", "XX", "XXXX", "--", "----"}

_EDC = r"^\s*(?P<d>\d{1,2}|[A-Z]{2,4}|-{1,2})[\s\-/]+(?P<m>[A-Z]{2,4}|\d{1,2}|-{1,2})[\s\-/]+(?P<y>\d{4}|[A-Z]{2,4}|-{4})\s*$"
_ISO = r"^\s*(?P<y>\d{4})(?:-(?P<m>\d{2}|-)(?:-(?P<d>\d{2}))?)?\s*$"
_TIME = r"^\s*(?P<h>\d{1,2}|UN|UK|--)(?::(?P<mi>\d{2}|UN|UK|--)(?::(?P<s>\d{2}|UN|UK|--))?)?\s*$"


def _zpad(num: pd.Series, width: int, prefix: str = "") -> pd.Series:
    """Whole numbers as zero-padded text (NaN stays missing), without a per-row Python call."""
    txt = num.astype("Int64").astype("str").str.zfill(width)
    return (prefix + txt).where(num.notna())


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.astype("object").fillna("").astype("str").str.strip() == "")


def assemble_dtc(date: pd.Series, time: pd.Series | None = None) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Assemble ISO 8601 --DTC strings (see :func:`_assemble`), computed once per distinct
    (date, time) pair: EDC columns repeat few values, so this is where the time goes."""
    from cdisc_pipe.sdtm.algorithms import distinct_rows, text_from_codes  # noqa: PLC0415 - algorithms imports dates

    codes, rep = distinct_rows(date) if time is None else distinct_rows(date, time)
    if len(rep) == len(date):
        return _assemble(date, time)
    d_u = date.iloc[rep].reset_index(drop=True)
    t_u = time.iloc[rep].reset_index(drop=True) if time is not None else None
    dtc, invalid, dropped = _assemble(d_u, t_u)
    return (text_from_codes(dtc.to_numpy(), codes, date.index),
            pd.Series(invalid.to_numpy()[codes], index=date.index, dtype=bool),
            pd.Series(dropped.to_numpy()[codes], index=date.index, dtype=bool))


def _num_part(txt: np.ndarray, names: dict[str, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """(number or NaN, 'unknown' mask) of one date part given as text (object array, None = absent)."""
    t = pd.Series(txt, dtype="object")
    is_digit = t.str.fullmatch(r"\d+").fillna(False).to_numpy(dtype=bool)
    num = pd.to_numeric(t.where(is_digit), errors="coerce").to_numpy(dtype="float64")
    if names is not None:
        named = t.map(names).to_numpy(dtype="float64")
        num = np.where(np.isnan(num), named, num)
    unknown = (t.isna() | t.isin(UNKNOWN) | t.str.fullmatch(r"-+").fillna(False)).to_numpy(dtype=bool)
    return num, unknown & np.isnan(num)


def _pad(num: np.ndarray, width: int, prefix: str = "") -> np.ndarray:
    """Whole numbers as zero-padded text (object array; NaN -> None), vectorised with numpy."""
    if len(num) == 0:
        return np.array([], dtype=object)
    ok = ~np.isnan(num)
    txt = np.char.zfill(np.where(ok, num, 0).astype("int64").astype(str), width).astype(object)
    return np.where(ok, prefix + txt, None)


def _assemble(date: pd.Series, time: pd.Series | None = None) -> tuple[pd.Series, pd.Series, pd.Series]:
    """The work of :func:`assemble_dtc` on (usually distinct) values: the date part is parsed once
    per distinct date, the time part once per distinct time, then combined with numpy."""
    from cdisc_pipe.sdtm.algorithms import distinct_rows  # noqa: PLC0415 - algorithms imports dates

    dc, drep = distinct_rows(date)
    d_dtc, d_invalid, d_blank, d_full = _date_part(date.iloc[drep].reset_index(drop=True))
    dtc, invalid, blank, full = d_dtc[dc], d_invalid[dc], d_blank[dc], d_full[dc]
    dropped = np.zeros(len(date), dtype=bool)
    if time is not None:
        tc, trep = distinct_rows(time)
        t_txt, t_bad_u, t_blank_u, t_has_h = _time_part(time.iloc[trep].reset_index(drop=True))
        t_txt, t_bad, t_blank, has_h = t_txt[tc], t_bad_u[tc], t_blank_u[tc], t_has_h[tc]
        complete = full & ~invalid & ~blank
        add = complete & has_h & ~t_bad
        dtc[add] = dtc[add] + t_txt[add]
        has_dtc = ~pd.isna(dtc)
        dropped = (~t_blank & ~complete & has_dtc) | (t_bad & has_dtc)
        invalid = invalid | (t_bad & ~blank)
    return (pd.Series(dtc, index=date.index, dtype="str"), pd.Series(invalid, index=date.index, dtype=bool),
            pd.Series(dropped, index=date.index, dtype=bool))


def _date_part(date: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ISO date text or None, invalid, blank, complete) of raw dates; numpy after one regex pass."""
    raw = date.astype("object").str.upper()
    blank = _blank(date).to_numpy(dtype=bool)
    edc = raw.str.extract(_EDC)
    iso = raw.str.extract(_ISO)
    use_iso = (edc["y"].isna() & iso["y"].notna()).to_numpy(dtype=bool)
    y_txt = np.where(use_iso, iso["y"].to_numpy(dtype=object), edc["y"].to_numpy(dtype=object))
    m_txt = np.where(use_iso, iso["m"].to_numpy(dtype=object), edc["m"].to_numpy(dtype=object))
    d_txt = np.where(use_iso, iso["d"].to_numpy(dtype=object), edc["d"].to_numpy(dtype=object))
    y, _ = _num_part(y_txt, None)
    m, m_unk = _num_part(m_txt, MONTHS)
    d, d_unk = _num_part(d_txt, None)
    parsed = edc["y"].notna().to_numpy(dtype=bool) | use_iso
    bad_part = (np.isnan(m) & ~m_unk) | (np.isnan(d) & ~d_unk) | np.isnan(y)
    with np.errstate(invalid="ignore"):
        bad_range = (~np.isnan(m) & ((m < 1) | (m > 12))) | (~np.isnan(d) & ((d < 1) | (d > 31)))
    full = ~np.isnan(y) & ~np.isnan(m) & ~np.isnan(d)
    # a real calendar day? (31 FEB is not): rebuild the date and compare its parts
    yy = np.where(full & ~bad_range, y, 2000).astype("int64")
    mm = np.where(full & ~bad_range, m, 1).astype("int64")
    dd = np.where(full & ~bad_range, d, 1).astype("int64")
    days = (yy - 1970).astype("datetime64[Y]") + (mm - 1).astype("timedelta64[M]")
    real = days.astype("datetime64[D]") + (dd - 1).astype("timedelta64[D]")
    bad_day = full & ~bad_range & (real.astype("datetime64[M]") != days)
    invalid = ~blank & (~parsed | bad_part | bad_range | bad_day)

    ys, ms, ds = _pad(y, 4), _pad(m, 2), _pad(d, 2)
    has_y, has_m, has_d = ~np.isnan(y), ~np.isnan(m), ~np.isnan(d)
    dtc = np.full(len(date), None, dtype=object)
    sel = full
    dtc[sel] = ys[sel] + "-" + ms[sel] + "-" + ds[sel]
    sel = has_y & has_m & ~has_d
    dtc[sel] = ys[sel] + "-" + ms[sel]
    sel = has_y & ~has_m & ~has_d
    dtc[sel] = ys[sel]
    sel = has_y & ~has_m & has_d  # year and day known, month unknown: 'YYYY---DD' (SDTMIG 4.4.3)
    dtc[sel] = ys[sel] + "---" + ds[sel]
    dtc[invalid | blank] = None
    return dtc, invalid, blank, full


def _time_part(time: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(``Thh[:mm[:ss]]`` text, invalid, blank, has an hour) of raw times."""
    t = time.astype("object").str.upper().str.extract(_TIME)
    h = pd.to_numeric(t["h"], errors="coerce").to_numpy(dtype="float64")
    mi = pd.to_numeric(t["mi"], errors="coerce").to_numpy(dtype="float64")
    sec = pd.to_numeric(t["s"], errors="coerce").to_numpy(dtype="float64")
    t_blank = _blank(time).to_numpy(dtype=bool)
    with np.errstate(invalid="ignore"):
        t_bad = ~t_blank & (t["h"].isna().to_numpy(dtype=bool) | (h > 23) | (mi > 59) | (sec > 59))
    hs = np.where(np.isnan(h), "", _pad(h, 2, "T"))
    mis = np.where(np.isnan(h) | np.isnan(mi), "", _pad(mi, 2, ":"))
    ss = np.where(np.isnan(h) | np.isnan(mi) | np.isnan(sec), "", _pad(sec, 2, ":"))
    txt = (hs.astype(object) + mis.astype(object) + ss.astype(object)) if len(time) else np.array([], dtype=object)
    return txt, t_bad, t_blank, ~np.isnan(h)


def complete_date(dtc: pd.Series) -> pd.Series:
    """The date part of a --DTC as datetime64 where the date is complete, NaT otherwise
    (parsed once per distinct value)."""
    arr = dtc.to_numpy(dtype=object, na_value=None) if (dtc.dtype != object and dtc.dtype != "str") else dtc.to_numpy()
    codes, uniq = pd.factorize(arr, use_na_sentinel=True)
    u = pd.Series(uniq, dtype="object").astype("str")
    # date-times of one day share their first 10 characters: parse each distinct date once
    c10, u10 = pd.factorize(u.str.slice(0, 10).to_numpy(), use_na_sentinel=True)
    d10 = pd.Series(u10, dtype="object").astype("str")
    ok = d10.str.match(r"^\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)
    p10 = pd.to_datetime(d10.where(ok), format="%Y-%m-%d", errors="coerce").to_numpy()
    p10 = np.append(p10, np.datetime64("NaT")).astype(p10.dtype if len(p10) else "datetime64[ns]")
    parsed = p10[c10]
    vals = np.append(parsed, np.datetime64("NaT")).astype(parsed.dtype if len(parsed) else "datetime64[ns]")
    return pd.Series(vals[codes], index=dtc.index)


def study_day(dtc: pd.Series, rfstdtc: pd.Series) -> pd.Series:
    """--DY per SDTMIG: date - RFSTDTC (+1 on or after RFSTDTC); no day 0; only complete dates.

    Both arguments are aligned Series of ISO strings; the result is float64 (NaN where either date
    is partial or missing).
    """
    a = complete_date(dtc)
    b = complete_date(rfstdtc)
    diff = (a - b).dt.days.astype("float64")
    return diff.where(diff < 0, diff + 1)


def iso_duration_days(days: pd.Series) -> pd.Series:
    """Whole days as an ISO 8601 duration: 7 -> ``P7D``, -1 -> ``-P1D``, 0 -> ``P0D``."""
    v = pd.to_numeric(days, errors="coerce")
    txt = "P" + v.abs().astype("Int64").astype("str") + "D"
    return txt.where(v >= 0, "-" + txt).where(v.notna()).astype("str")
