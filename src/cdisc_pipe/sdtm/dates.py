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
    return s.isna() | (s.astype("str").str.strip() == "")


def assemble_dtc(date: pd.Series, time: pd.Series | None = None) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Assemble ISO 8601 --DTC strings from a raw date column and an optional time column.

    Args:
        date: raw dates (``12 MAR 2024``, ``UN MAR 2024``, ``2024-03-12`` ...); blank = missing.
        time: raw times (``14:20``, ``14:UN``, ``UN:UN``); blank = no time.

    Returns:
        ``(dtc, invalid, time_dropped)``: the ISO strings (missing where blank or invalid), a boolean
        mask of non-blank dates that are not dates (``31 FEB 2024``, ``2024-13-01``, free text), and
        a mask of rows whose time was not written because the date is partial.
    """
    raw = date.astype("str").str.upper()
    blank = _blank(date)
    edc = raw.str.extract(_EDC)
    iso = raw.str.extract(_ISO)
    use_iso = edc["y"].isna() & iso["y"].notna()
    y_txt = edc["y"].where(~use_iso, iso["y"])
    m_txt = edc["m"].where(~use_iso, iso["m"])
    d_txt = edc["d"].where(~use_iso, iso["d"])

    def part(txt: pd.Series, names: dict[str, int] | None) -> tuple[pd.Series, pd.Series]:
        """(numeric value or NaN, 'unknown' mask); a text that is neither is NaN and not unknown."""
        t = txt.astype("str")
        unknown = txt.isna() | t.isin(UNKNOWN) | t.str.fullmatch(r"-+").fillna(False).astype(bool)
        num = pd.to_numeric(t.where(t.str.fullmatch(r"\d+").fillna(False).astype(bool)), errors="coerce")
        if names is not None:
            num = num.fillna(t.map(names).astype("float64"))
        return num, unknown & ~num.notna()

    y, y_unk = part(y_txt, None)
    m, m_unk = part(m_txt, MONTHS)
    d, d_unk = part(d_txt, None)
    parsed = (edc["y"].notna() | use_iso)
    # a part that is neither a number nor an 'unknown' token makes the date invalid (e.g. month 'FOO')
    bad_part = (m.isna() & ~m_unk) | (d.isna() & ~d_unk) | y.isna()
    bad_range = (m.notna() & ((m < 1) | (m > 12))) | (d.notna() & ((d < 1) | (d > 31)))
    full = y.notna() & m.notna() & d.notna()
    ymd = pd.DataFrame({"year": y.where(full), "month": m.where(full), "day": d.where(full)})
    real = pd.to_datetime(ymd.fillna({"year": 2000, "month": 1, "day": 1}).astype("int64"), errors="coerce")
    bad_day = full & ~bad_range & real.isna()
    invalid = ~blank & (~parsed | bad_part | bad_range | bad_day)

    ys, ms, ds = _zpad(y, 4), _zpad(m, 2), _zpad(d, 2)
    dtc = pd.Series(np.nan, index=date.index, dtype="str")
    has_y = y.notna()
    # year, month, day all known
    dtc = dtc.mask(full, ys + "-" + ms + "-" + ds)
    # year and month, day unknown
    dtc = dtc.mask(has_y & m.notna() & d.isna(), ys + "-" + ms)
    # year only
    dtc = dtc.mask(has_y & m.isna() & d.isna(), ys)
    # year and day known, month unknown: ISO 8601 'YYYY---DD' (SDTMIG 4.4.3)
    dtc = dtc.mask(has_y & m.isna() & d.notna(), ys + "---" + ds)
    dtc = dtc.mask(invalid | blank)

    dropped = pd.Series(False, index=date.index)
    if time is not None:
        t = time.astype("str").str.upper().str.extract(_TIME)
        h = pd.to_numeric(t["h"], errors="coerce")
        mi = pd.to_numeric(t["mi"], errors="coerce")
        sec = pd.to_numeric(t["s"], errors="coerce")
        t_blank = _blank(time)
        t_bad = ~t_blank & (t["h"].isna() | (h > 23) | (mi > 59) | (sec > 59))
        hs, mis, ss = _zpad(h, 2, "T"), _zpad(mi, 2, ":"), _zpad(sec, 2, ":")
        tpart = hs.where(h.notna())
        tpart = tpart.mask(h.notna() & mi.notna(), hs + mis)
        tpart = tpart.mask(h.notna() & mi.notna() & sec.notna(), hs + mis + ss)
        complete = dtc.str.len().eq(10).fillna(False).astype(bool)
        add = complete & tpart.notna() & ~t_bad
        dtc = dtc.mask(add, dtc + tpart)
        dropped = (~t_blank & ~complete & dtc.notna()) | (t_bad & dtc.notna())
        invalid = invalid | (t_bad & ~blank)
    return dtc.astype("str"), invalid.astype(bool), dropped.astype(bool)


def complete_date(dtc: pd.Series) -> pd.Series:
    """The date part of a --DTC as datetime64 where the date is complete, NaT otherwise."""
    s = dtc.astype("str")
    ok = s.str.match(r"^\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)
    return pd.to_datetime(s.str.slice(0, 10).where(ok), format="%Y-%m-%d", errors="coerce")


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
