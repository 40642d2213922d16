"""The results plan (``specs/results.yaml``): which tables and figures, on which ADaM data.

Data only, validated by pydantic; nothing in it is evaluated.  Format (every key is described by
the models below; ``docs/RESULTS.md`` has a worked example):

    title: ...
    by: {variable: TRT01A, order: TRT01AN, label: Treatment, overall: true}
    populations: {SAF: {flag: SAFFL, label: Safety population}, ...}
    analyses:
      - {id: ..., kind: rate | categories | continuous | tte | ae_overview | ae_grade | by_visit | pk_summary
               | profile | waterfall | shift | swimmer | peak | event_timeline, ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.spec.load import SAFE_LOADER

Scalar = str | int | float


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ByVariable(_Model):
    variable: str = Field(description="ADSL variable whose values are the columns/groups (e.g. the actual treatment)")
    order: str | None = Field(None, description="numeric ADSL variable ordering the groups")
    label: str = "Group"
    overall: bool = True


class Population(_Model):
    flag: str = Field(description="ADSL flag; subjects with the value 'Y' are the population")
    label: str


class Filter(_Model):
    """Record selection: every ``equals`` variable has one of its values and every ``at_least``
    variable is >= its number."""

    equals: dict[str, list[Scalar]] = Field(default_factory=dict)
    at_least: dict[str, float] = Field(default_factory=dict)


class Analysis(_Model):
    id: str
    kind: Literal["rate", "categories", "continuous", "tte", "ae_overview", "ae_grade", "by_visit", "pk_summary",
                  "profile", "waterfall", "shift", "swimmer", "peak", "event_timeline"]
    title: str
    population: str
    dataset: str
    paramcd: list[str] = Field(default_factory=list)
    where: Filter = Field(default_factory=Filter)
    # rate / categories
    variable: str = "AVALC"
    values: list[Scalar] = Field(default_factory=list, description="rate: the values that count as a response")
    categories: list[str] = Field(default_factory=list, description="categories: the values, in display order")
    # tte
    time_divisor: float = 1.0
    time_unit: str = "days"
    landmarks: list[float] = Field(default_factory=list)
    risk_times: list[float] = Field(default_factory=list)
    # ae_overview
    rows: list["AERow"] = Field(default_factory=list)
    # ae_grade
    grade_variable: str = "ATOXGRN"
    onset_variable: str | None = None
    duration_variable: str | None = None
    # event_timeline: a bar per record from ``onset_variable`` to ``end_variable`` (else onset + duration)
    end_variable: str | None = Field(None, description="event_timeline: the end day of an event (e.g. AENDY)")
    # by_visit
    visits: list[str] = Field(default_factory=list)
    statistics_of: list[str] = Field(default_factory=lambda: ["AVAL", "CHG"])
    # profile
    x_variable: str = "AFRLT"
    x_label: str = "Time"
    y_label: str = "Value"
    lloq_variable: str | None = None
    log_scale: bool = True
    mean_by: str | None = Field(None, description="profile: add the geometric mean per group at each value of this "
                                                  "(nominal time) variable, e.g. NFRLT")
    mean_min_n: int = Field(3, ge=1, description="profile: the geometric mean is shown only at times with at least "
                                                 "this many samples")
    figure: bool = Field(True, description="tte: draw the Kaplan-Meier plot")
    # waterfall: per subject the best (lowest) post-baseline value of ``variable`` of the first PARAMCD
    # (in the order listed) the subject has one for; shift: baseline vs worst post-baseline value
    worst: Literal["max", "min"] = Field("max", description="shift: the worst post-baseline value is the max/min")
    # swimmer: one bar per subject, its length the ``time_variable`` of the ``dataset``/``paramcd``
    # record (an arrow when censored, CNSR > 0); ``variable`` of ``categories`` colour segments read
    # from ``markers``-like sources; ``markers`` are events drawn at their time
    time_variable: str = "AVAL"
    segments: "Source | None" = None
    markers: list["Marker"] = Field(default_factory=list)

    @model_validator(mode="after")
    def _needs(self):
        if self.kind == "rate" and not self.values:
            raise ValueError("a rate needs 'values' (the values of 'variable' that count as a response)")
        if self.kind in ("tte", "by_visit", "pk_summary", "profile", "waterfall", "shift", "peak") and not self.paramcd:
            raise ValueError(f"a {self.kind} analysis needs 'paramcd'")
        if self.kind == "continuous" and not self.statistics_of:
            raise ValueError("a continuous summary needs 'statistics_of' (the numeric variables)")
        if self.kind == "peak" and not {"variable", "time_variable"} <= self.model_fields_set:
            raise ValueError("a peak analysis needs 'variable' (numeric, e.g. AVAL) and 'time_variable' (e.g. ADY)")
        if self.kind == "event_timeline" and not self.onset_variable:
            raise ValueError("an event_timeline needs 'onset_variable' (e.g. ASTDY)")
        if self.kind == "ae_overview" and not self.rows:
            raise ValueError("an ae_overview needs 'rows'")
        return self


class Source(_Model):
    """Records of another dataset: ``time_variable`` gives the time (same unit as the bar, before
    ``time_divisor``), ``variable`` the category."""

    dataset: str
    paramcd: list[str] = Field(default_factory=list)
    where: Filter = Field(default_factory=Filter)
    time_variable: str = "ADY"
    variable: str = "AVALC"


class Marker(Source):
    label: str
    symbol: Literal["x", "v", "^", "D", "s", "o", "*", "|"] = "x"


class AERow(_Model):
    label: str
    where: Filter = Field(default_factory=Filter)


Analysis.model_rebuild()


class ResultsPlan(_Model):
    title: str
    by: ByVariable
    populations: dict[str, Population]
    analyses: list[Analysis]
    path: str | None = None

    @model_validator(mode="after")
    def _refs(self):
        ids = [a.id for a in self.analyses]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"analysis ids used twice: {', '.join(dup)}")
        for a in self.analyses:
            if a.population not in self.populations:
                raise ValueError(f"analysis {a.id}: population {a.population!r} is not one of "
                                 f"{', '.join(sorted(self.populations))}")
        return self


PLAN_FILE = "results.yaml"


def load_results_plan(path: str | Path) -> ResultsPlan:
    """Read and validate a results plan; every problem is an :class:`InputError` naming the file."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise InputError(Problem(str(path), f"not valid YAML: {exc}")) from None
    if not isinstance(data, dict):
        raise InputError(Problem(str(path), "a results plan is a mapping with title, by, populations, analyses"))
    try:
        return ResultsPlan.model_validate({**data, "path": str(path)})
    except ValidationError as exc:
        problems = [Problem(str(path), e["msg"], entry=".".join(str(x) for x in e["loc"]) or None,
                            hint="see docs/RESULTS.md for the format") for e in exc.errors()]
        raise InputError(problems) from None
