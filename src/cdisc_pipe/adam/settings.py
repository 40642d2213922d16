"""Models shared by the derivation plans' verbs: record conditions and time-to-event sources.

- :class:`Condition` / :class:`AnyOf` / ``Where``: the ``where`` lists of plan steps (evaluated by
  :mod:`cdisc_pipe.adam.conditions`, never as code);
- :class:`TteSource` / :class:`TteParameter`: event and censoring sources of a time-to-event
  parameter (admiral ``event_source`` / ``censor_source`` / ``derive_param_tte``).

The analysis decisions themselves (windows, hierarchies, thresholds, sources) are arguments of
the plan steps in ``specs/plans/*.yaml``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


__all__ = ["AnyOf", "Condition", "TteParameter", "TteSource", "Where"]

ConditionOp = Literal["EQ", "NE", "IN", "NOTIN", "LT", "LE", "GT", "GE", "ISNULL", "NOTNULL", "CONTAINS"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Condition(_Model):
    """One condition on a source record; the conditions of a ``where`` list are AND-ed.

    Compare ``variable`` with literal ``values`` (text; compared numerically when the variable is
    numeric) or with another variable of the same record (``other``, e.g. ``ADT LE NACTDT``).
    A comparison with a missing value is False, except ``NE``/``NOTIN`` where a missing
    ``variable`` is True (the value is not among those listed).  ``CONTAINS`` holds where the text
    contains any of ``values`` (case-sensitive substrings).
    """

    variable: str
    comparator: ConditionOp = "EQ"
    values: list[str] = Field(default_factory=list)
    other: str | None = None
    # With ``other``: also True when the other variable is missing (``ADT LE NACTDT`` or no NACTDT).
    other_missing_true: bool = False

    @model_validator(mode="after")
    def _arity(self) -> "Condition":
        if self.comparator in ("ISNULL", "NOTNULL"):
            if self.values or self.other:
                raise ValueError(f"{self.comparator} takes no values and no other variable")
        elif self.other is not None:
            if self.values or self.comparator in ("IN", "NOTIN"):
                raise ValueError("a comparison with another variable takes EQ/NE/LT/LE/GT/GE and no values")
        elif self.comparator in ("IN", "NOTIN", "CONTAINS"):
            if not self.values:
                raise ValueError(f"{self.comparator} needs at least one value")
        elif len(self.values) != 1:
            raise ValueError(f"{self.comparator} takes exactly one value (or other: VARIABLE)")
        return self


class AnyOf(_Model):
    """An OR of AND-groups: ``{any: [[A, B], [C]]}`` holds where (A and B) or C holds."""

    any: list[list[Condition]] = Field(min_length=1)


#: A ``where`` list: the AND of its items (conditions, or OR-groups of conditions).
Where = list[Condition | AnyOf]


class TteSource(_Model):
    """An event or censoring source (admiral ``event_source`` / ``censor_source``).

    Records of ``dataset`` meeting ``where`` are candidates; their date is ``date``.  For events
    the earliest candidate per subject counts, for censorings the latest one.
    """

    id: str
    dataset: str  # ADSL, ADRS, or another ADaM dataset built before ADTTE
    where: Where = Field(default_factory=list)
    date: str
    cnsr: int = Field(ge=0)
    evntdesc: str = Field(max_length=200)
    cnsdtdsc: str | None = Field(default=None, max_length=200)
    srcdom: str
    srcvar: str
    srcseq: str | None = None  # variable of ``dataset`` holding the sequence number, if any
    # Censoring only: a subject matching this source is censored here whatever else happened
    # (FDA: "no baseline assessment -> censored at the start date", even with a later PD or death).
    overrides: bool = False


class TteParameter(_Model):
    """One ADTTE parameter: start date, population, events (CNSR 0) and censorings (CNSR > 0)."""

    paramcd: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    param: str = Field(max_length=200)
    parcat1: str | None = None
    start_date: str  # variable of ADSL or, with start_dataset, of that dataset
    start_dataset: str = "ADSL"
    start_where: Where = Field(default_factory=list)  # which start record (e.g. first response)
    population: Where = Field(default_factory=list)  # ADSL conditions
    events: list[TteSource]
    censors: list[TteSource]
    unit: Literal["DAYS", "WEEKS", "MONTHS", "YEARS"] = "DAYS"

    @model_validator(mode="after")
    def _codes(self) -> "TteParameter":
        if any(e.cnsr != 0 for e in self.events):
            raise ValueError("event sources must have cnsr 0")
        if any(c.cnsr <= 0 for c in self.censors):
            raise ValueError("censor sources need a positive cnsr")
        if any(e.overrides for e in self.events):
            raise ValueError("overrides is for censor sources only")
        # One code per censoring reason: a code names one (EVNTDESC, CNSDTDSC) pair and a reason
        # (EVNTDESC) has one code.
        reason_of: dict[int, tuple[str, str | None]] = {}
        code_of: dict[str, int] = {}
        for c in self.censors:
            if not c.cnsdtdsc:
                raise ValueError(f"censor source {c.id} needs cnsdtdsc (the censoring date description)")
            if reason_of.setdefault(c.cnsr, (c.evntdesc, c.cnsdtdsc)) != (c.evntdesc, c.cnsdtdsc):
                raise ValueError(f"cnsr {c.cnsr} is used for two different censoring reasons")
            if code_of.setdefault(c.evntdesc, c.cnsr) != c.cnsr:
                raise ValueError(f"censoring reason {c.evntdesc!r} has two codes ({code_of[c.evntdesc]}, {c.cnsr})")
        if not self.censors:
            raise ValueError("a time-to-event parameter needs at least one censor source")
        return self
