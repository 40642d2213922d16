"""The data cut-off: the date after which no collected date takes part in a derivation.

Where it comes from, first that applies (docs/VALIDATION.md "Data cut-off"):

1. ``--cutoff YYYY-MM-DD`` on the command line;
2. ``cutoff:`` in the study's ``specs/settings/data_cutoff.yaml``;
3. the export's own date: ODM ``ODM/@AsOfDateTime``, else ``ODM/@CreationDateTime``;
4. the latest EDC audit date-time of the export (the raw columns the settings file lists as
   ``audit_columns``, e.g. the record entry / modification date-times): no date can have been
   collected after the last record was entered or changed;
5. none: no date is refused.

Never the wall clock: the same inputs give the same outputs.  A collected date after the cut-off is
an Error finding; the record and its collected value are kept, but SDTM (reference dates, SE, EPOCH,
study days, baseline) and ADaM (every date imputed from a --DTC) ignore it.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from cdisc_pipe.errors import InputError, Problem

SETTINGS_FILE = "data_cutoff.yaml"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PREFIX = re.compile(r"^(\d{4})(-\d{2})?(-\d{2})?")


@dataclass(frozen=True)
class Cutoff:
    """The run's cut-off date (``YYYY-MM-DD``, or None) and where it came from."""

    date: str | None
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"date": self.date, "source": self.source}


def check_date(text: str, where: str, entry: str) -> str:
    """``text`` as a valid ``YYYY-MM-DD`` date, else an InputError naming ``where``/``entry``."""
    text = str(text).strip()
    ok = bool(_DATE.match(text))
    if ok:
        try:
            pd.Timestamp(text)
        except ValueError:
            ok = False
    if not ok:
        raise InputError(Problem(where, "the data cut-off is not a date YYYY-MM-DD", entry=entry, value=text,
                                 hint="give the cut-off as an ISO 8601 date, e.g. 2024-06-30"))
    return text


def load_settings(specs_dir: Path | None) -> dict[str, Any]:
    """``specs/settings/data_cutoff.yaml`` as a dict (empty when the file is absent)."""
    if specs_dir is None:
        return {}
    path = Path(specs_dir) / "settings" / SETTINGS_FILE
    if not path.is_file():
        return {}
    from cdisc_pipe.spec.load import read_yaml

    problems: list[Problem] = []
    data = read_yaml(path, problems)
    if problems:
        raise InputError(problems, stage="specs")
    if data is None:
        return {}
    if not isinstance(data, dict) or set(data) - {"cutoff", "audit_columns"}:
        raise InputError(Problem(str(path), "expected a mapping with the keys cutoff and audit_columns",
                                 value=", ".join(sorted(map(str, data))) if isinstance(data, dict) else type(data).__name__,
                                 hint="see docs/VALIDATION.md 'Data cut-off'"))
    cols = data.get("audit_columns") or []
    if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
        raise InputError(Problem(str(path), "audit_columns must be a list of raw column names", entry="audit_columns"))
    out: dict[str, Any] = {"audit_columns": cols, "file": str(path)}
    if data.get("cutoff") not in (None, ""):
        out["cutoff"] = check_date(str(data["cutoff"]), str(path), "cutoff")
    return out


def latest_audit_date(forms: dict[str, pd.DataFrame], columns: list[str]) -> tuple[str | None, str | None]:
    """The latest date (``YYYY-MM-DD``) in the named audit columns of any form, and ``form.column``."""
    best: tuple[str | None, str | None] = (None, None)
    for form in sorted(forms):
        frame = forms[form]
        for col in columns:
            if col not in frame:
                continue
            heads = _distinct_heads(frame[col])
            dates = [h for h in heads if _DATE10.match(h)]
            if dates:
                top = max(dates)
                if best[0] is None or top > best[0]:
                    best = (top, f"{form}.{col}")
    return best


_DATE10 = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _distinct_heads(s: pd.Series) -> list[str]:
    """The distinct first 10 characters of the values of a column (missing values left out):
    numpy cuts text to 10 characters in one pass, then only the distinct heads are looked at."""
    values = s.dropna().astype("str").to_numpy(dtype=object)
    return np.unique(values.astype("U10")).tolist() if len(values) else []


def resolve(option: str | None, specs_dir: Path | None, raw: Any) -> Cutoff:
    """The run's cut-off (see the module docstring for the order)."""
    if option:
        return Cutoff(check_date(option, "command line", "--cutoff"), "--cutoff")
    settings = load_settings(specs_dir)
    if settings.get("cutoff"):
        return Cutoff(settings["cutoff"], f"{settings['file']}: cutoff")
    exported = getattr(raw, "export_date", None)
    if exported:
        return Cutoff(str(exported)[:10], "the export's date (ODM AsOfDateTime / CreationDateTime)")
    cols = settings.get("audit_columns") or []
    if cols:
        date, where = latest_audit_date(getattr(raw, "forms", {}) or {}, cols)
        if date:
            return Cutoff(date, f"the latest EDC audit date of the export ({where})")
    return Cutoff(None, "none (no --cutoff, no cutoff setting, no export date, no audit date)")


def after_cutoff(dtc: pd.Series, cutoff: str | None) -> pd.Series:
    """True where an ISO 8601 (possibly partial) date is surely after ``cutoff``: compared at the
    value's own precision (``2099-03`` is after 2024-06-30; ``2024-06`` is not)."""
    if not cutoff or dtc.empty:
        return pd.Series(False, index=dtc.index)
    codes, uniq = pd.factorize(dtc.astype("str"), use_na_sentinel=True)
    flags = np.zeros(len(uniq) + 1, dtype=bool)
    for i, v in enumerate(uniq):
        m = _PREFIX.match(str(v))
        if m:
            part = m.group(0)
            flags[i] = part > cutoff[: len(part)]
    return pd.Series(flags[codes], index=dtc.index)  # code -1 (missing) -> the last slot (False)


# ADaM: the cut-off in force while datasets are derived (set by build_adam; read where a --DTC is
# turned into a date, so every date verb ignores dates after it)
_ACTIVE: contextvars.ContextVar[str | None] = contextvars.ContextVar("cdisc_pipe_cutoff", default=None)


def active() -> str | None:
    return _ACTIVE.get()


@contextlib.contextmanager
def in_force(cutoff: str | None) -> Iterator[None]:
    token = _ACTIVE.set(cutoff)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def from_ts(ts: pd.DataFrame | None) -> str | None:
    """The cut-off an SDTM package records: TS TSPARMCD ``DCUTDTC`` (None when absent)."""
    if ts is None or ts.empty or "TSPARMCD" not in ts or "TSVAL" not in ts:
        return None
    val = ts.loc[ts["TSPARMCD"].astype("str") == "DCUTDTC", "TSVAL"].dropna()
    if val.empty:
        return None
    text = str(val.iloc[0]).strip()[:10]
    return text if _DATE.match(text) else None
