"""Record selection without ``eval``: AND-ed conditions, with OR-groups, and their readable text.

A ``where`` list (plans, settings) holds :class:`~cdisc_pipe.adam.settings.Condition` items
(``{variable, comparator, values}`` or ``{variable, comparator, other}``) and :class:`AnyOf` items
(``{any: [[conditions], [conditions]]}``: true when one of its AND-groups holds).  The list is the
AND of its items.  Comparators are a fixed set; nothing in a spec is ever executed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from cdisc_pipe.adam.settings import AnyOf, Condition

__all__ = ["AnyOf", "Condition", "condition_mask", "describe_where", "where_variables"]

_OPS = {"EQ": "eq", "NE": "ne", "LT": "lt", "LE": "le", "GT": "gt", "GE": "ge"}
_TEXT = {"EQ": "=", "NE": "^=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">="}


def _coerce(values: Sequence[str], like: pd.Series) -> list:
    """Literal condition values as the type of the column they are compared with."""
    if pd.api.types.is_datetime64_any_dtype(like):
        return [pd.Timestamp(v) for v in values]
    if pd.api.types.is_numeric_dtype(like) and not pd.api.types.is_bool_dtype(like):
        return [float(v) for v in values]
    return list(values)


def _one(df: pd.DataFrame, c: Condition) -> pd.Series:
    if c.variable not in df.columns:
        raise KeyError(c.variable)
    col = df[c.variable]
    if c.comparator == "ISNULL":
        m = col.isna()
    elif c.comparator == "NOTNULL":
        m = col.notna()
    elif c.other is not None:
        if c.other not in df.columns:
            raise KeyError(c.other)
        other = df[c.other]
        m = getattr(col, _OPS[c.comparator])(other) & col.notna() & other.notna()
        if c.other_missing_true:
            m = m | (col.notna() & other.isna())
    elif c.comparator == "CONTAINS":
        codes, uniq = pd.factorize(col, use_na_sentinel=True)  # once per distinct text, not per row
        hit = np.array([any(v in str(u) for v in c.values) for u in uniq] + [False], dtype=bool)
        m = pd.Series(hit[codes], index=df.index)
    elif c.comparator in ("IN", "NOTIN"):
        m = col.isin(_coerce(c.values, col))
        if c.comparator == "NOTIN":
            m = ~m
    else:
        val = _coerce(c.values, col)[0]
        m = getattr(col, _OPS[c.comparator])(val)
        m = (m | col.isna()) if c.comparator == "NE" else (m & col.notna())
    return m.fillna(False).astype(bool)


def condition_mask(df: pd.DataFrame, conditions: Sequence[Condition | AnyOf]) -> pd.Series:
    """AND of ``conditions`` over ``df`` (an :class:`AnyOf` item is the OR of its AND-groups).

    A comparison with a missing value is False, except ``NE``/``NOTIN`` where a missing variable
    is True.  Raises KeyError naming the variable when a condition refers to a column ``df`` lacks.
    """
    mask = pd.Series(True, index=df.index)
    for c in conditions:
        if isinstance(c, AnyOf):
            group = pd.Series(False, index=df.index)
            for conds in c.any:
                group |= condition_mask(df, conds)
            mask &= group
        else:
            mask &= _one(df, c)
    return mask


def where_variables(conditions: Sequence[Condition | AnyOf]) -> list[str]:
    """Every variable a ``where`` list reads, in order of appearance, once each."""
    out: list[str] = []
    for c in conditions:
        items = [x for group in c.any for x in group] if isinstance(c, AnyOf) else [c]
        for x in items:
            for v in (x.variable, x.other):
                if v and v not in out:
                    out.append(v)
    return out


def _quote(v: str) -> str:
    try:
        float(v)
        return v
    except ValueError:
        return "'" + v.replace("'", "''") + "'"


def _text(c: Condition) -> str:
    if c.comparator == "ISNULL":
        return f"{c.variable} is missing"
    if c.comparator == "NOTNULL":
        return f"{c.variable} is not missing"
    if c.other is not None:
        tail = f" (or {c.other} is missing)" if c.other_missing_true else ""
        return f"{c.variable} {_TEXT[c.comparator]} {c.other}{tail}"
    if c.comparator == "CONTAINS":
        return f"{c.variable} contains " + " or ".join(_quote(v) for v in c.values)
    if c.comparator in ("IN", "NOTIN"):
        word = "in" if c.comparator == "IN" else "not in"
        return f"{c.variable} {word} ({', '.join(_quote(v) for v in c.values)})"
    return f"{c.variable} {_TEXT[c.comparator]} {_quote(c.values[0])}"


def describe_where(conditions: Sequence[Condition | AnyOf]) -> str:
    """The conditions as a reader would write them: ``EXDOSE > 0 and EXTRT = 'PLACEBO'``."""
    parts = []
    for c in conditions:
        if isinstance(c, AnyOf):
            alts = [" and ".join(_text(x) for x in group) for group in c.any]
            text = " or ".join(alts)
            parts.append(f"({text})" if len(conditions) > 1 else text)
        else:
            parts.append(_text(c))
    return " and ".join(parts)
