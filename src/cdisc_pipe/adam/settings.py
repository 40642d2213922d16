"""ADaM stage settings (``specs/settings/adam.yaml``), parsed by this module's own pydantic model.

The settings hold the analysis decisions that a SAP makes and that should be data, not code:
the ORR-at-month-3 window, the response hierarchy, the measurable-disease thresholds, the DLT
window, and the time-to-event event/censor sources (admiral ``derive_param_tte`` style).

Other ADaM builders (ADAE, ADLB, ...) keep their options under ``builders: {<NAME>: {...}}``; that
mapping is passed through untouched and each builder validates its own part with its own model
(:func:`builder_options`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.spec.load import read_yaml, validate_model

__all__ = [
    "Condition",
    "TteSource",
    "TteParameter",
    "MeasurableRule",
    "OrrWindow",
    "AdamSettings",
    "load_adam_settings",
    "builder_options",
]

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


class MeasurableRule(_Model):
    """IMWG measurable-disease rule on the baseline (pre-infusion) disease markers in LB.

    The subject's value is the maximum of the baseline ``lbtestcd`` values (with ``lbspec``);
    measurable when it is >= ``min_value`` in ``unit`` (LBSTRESU) and, when ``ratio_testcd`` is
    given, the baseline ratio lies outside ``ratio_normal``.  Rules are tried in order; the first
    one met names the measurable-disease type.
    """

    type: str
    lbtestcd: list[str]
    lbspec: str | None = None
    min_value: float
    unit: str
    # Other standard units accepted, with the factor converting them to ``unit`` (g/dL -> g/L: 10).
    unit_factors: dict[str, float] = Field(default_factory=dict)
    ratio_testcd: str | None = None
    ratio_normal: tuple[float, float] | None = None


class OrrWindow(_Model):
    """ORR at month 3: the assessment with study day in [lower, upper] closest to ``target_day``."""

    paramcd: str = "RSPM3"
    target_day: int = 91
    lower_day: int = 76
    upper_day: int = 105
    responses: list[str] = Field(default_factory=lambda: ["sCR", "CR", "VGPR", "PR"])
    # Ties in distance to target (e.g. days 88 and 94): take the earlier assessment.
    tie: Literal["earlier", "later"] = "earlier"

    @model_validator(mode="after")
    def _window(self) -> "OrrWindow":
        if not self.lower_day <= self.target_day <= self.upper_day:
            raise ValueError("target_day must lie inside [lower_day, upper_day]")
        return self


class AdamSettings(_Model):
    """Everything in ``specs/settings/adam.yaml``."""

    # Response categories best to worst; AVAL of OVR/COVR/CBOR is the rank with the best = highest.
    response_order: list[str] = Field(default_factory=lambda: ["sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE"])
    # Responses that need confirmation by a second consecutive assessment (biochemical responses).
    confirm_responses: list[str] = Field(default_factory=lambda: ["sCR", "CR", "VGPR", "PR", "MR"])
    confirm_pd: bool = True
    not_evaluable: list[str] = Field(default_factory=lambda: ["NE"])
    pd_response: str = "PD"
    orr_month3: OrrWindow = Field(default_factory=OrrWindow)
    dlt_window_days: int = 28
    mrd_sensitivity: float = 1e-5
    sustained_mrd_days: int = 365
    # Planned disease-assessment study days, for the "event after >= N missed assessments" rule.
    assessment_days: list[int] = Field(default_factory=list)
    missed_assessments: int = 2
    assessment_window_days: int = 14
    # Planned dose per arm (ARMCD -> 10^6 cells/kg) and the relative tolerance for TRT01A.
    planned_dose: dict[str, float] = Field(default_factory=dict)
    dose_tolerance: float = 0.2
    dose_unit: str = "10^6/kg"
    measurable_disease: list[MeasurableRule] = Field(default_factory=list)
    high_risk_cytogenetics_qnam: str = "HRCYTO"
    tte: list[TteParameter] = Field(default_factory=list)
    builders: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> "AdamSettings":
        unknown = [r for r in self.orr_month3.responses + self.confirm_responses + self.not_evaluable
                   if r not in self.response_order]
        if unknown:
            raise ValueError(f"responses not in response_order: {', '.join(sorted(set(unknown)))}")
        if self.pd_response not in self.response_order:
            raise ValueError("pd_response must be in response_order")
        codes = [p.paramcd for p in self.tte]
        if len(codes) != len(set(codes)):
            raise ValueError("duplicate tte paramcd")
        return self

    def tte_parameter(self, paramcd: str) -> TteParameter:
        for p in self.tte:
            if p.paramcd == paramcd:
                return p
        raise KeyError(f"no tte parameter {paramcd}")


def _read_settings_yaml(path: Path, problems: list[Problem]) -> Any:
    """Safe YAML with the C loader when libyaml is present (the settings are read by every
    builder); the pure-Python safe loader otherwise (``read_yaml``, which reports errors)."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return read_yaml(path, problems)
    try:
        with path.open("r", encoding="utf-8") as fh:
            return yaml.load(fh, Loader=loader)  # noqa: S506 - CSafeLoader is the safe loader
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return read_yaml(path, problems)  # re-read with the reporting reader for a located message


def load_adam_settings(settings_dir: str | Path) -> AdamSettings:
    """Read ``<settings_dir>/adam.yaml`` (safe YAML); raise one InputError listing every problem.

    A missing file gives the defaults (no TTE parameters), so a study without ADTTE needs no file.
    """
    path = Path(settings_dir) / "adam.yaml"
    if not path.exists():
        return AdamSettings()
    problems: list[Problem] = []
    data = _read_settings_yaml(path, problems)
    if problems:
        raise InputError(problems, stage="adam")
    settings = validate_model(AdamSettings, data or {}, str(path), problems)
    if problems or settings is None:
        raise InputError(problems or [Problem(str(path), "invalid settings")], stage="adam")
    return settings


def builder_options(settings: AdamSettings, name: str, model: type[BaseModel], settings_dir: str | Path) -> BaseModel:
    """Validate ``builders.<name>`` with the builder's own pydantic ``model`` (defaults when absent)."""
    problems: list[Problem] = []
    raw = settings.builders.get(name.upper(), {})
    obj = validate_model(model, raw, str(Path(settings_dir) / "adam.yaml"), problems, f"builders.{name.upper()}")
    if problems or obj is None:
        raise InputError(problems or [Problem(str(settings_dir), f"invalid builders.{name.upper()}")], stage="adam")
    return obj
