"""Validation data model: rules as data, study settings, rule results.

A rule is a YAML entry validated by :class:`Rule` (``extra="forbid"``: a misspelt key is an error).
Its ``check`` names one operator of the vocabulary in :mod:`cdisc_pipe.validate.operators` with that
operator's parameters (each operator declares a pydantic parameter model, so wrong parameters are
reported with the rule id), or ``operator: python`` with the ``function`` name of a rule function
registered in :mod:`cdisc_pipe.validate.functions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Severity = Literal["Error", "Warning", "Notice"]
Status = Literal["SUCCESS", "ISSUE", "SKIPPED", "EXECUTION ERROR"]
SEVERITIES: tuple[str, ...] = ("Error", "Warning", "Notice")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleRefs(_Model):
    """Identifiers of the matching rule in other validators; only confirmed ones (else empty)."""

    p21: str | None = None  # Pinnacle 21 rule id, e.g. SD1082
    core: str | None = None  # CDISC CORE rule id, e.g. CORE-000547
    cdisc: str | None = None  # CDISC SDTM/ADaM conformance rule id, e.g. CG0665
    fda: str | None = None  # FDA validator rule or technical rejection id, e.g. FDAC036, TRC 1734


class Scope(_Model):
    """Which datasets a rule runs on.

    ``datasets`` and ``exclude`` are names or glob patterns (``SUPP*``); ``classes`` are define
    classes (``FINDINGS``, ``BASIC DATA STRUCTURE``...).  A dataset is in scope when it matches
    ``purpose`` (if given) and (``datasets`` or ``classes``; all datasets when both are empty) and
    does not match ``exclude``.
    """

    datasets: list[str] = Field(default_factory=list)
    classes: list[str] = Field(default_factory=list)
    purpose: Literal["Tabulation", "Analysis"] | None = None
    exclude: list[str] = Field(default_factory=list)
    study_level: bool = False  # run once, not per dataset (dataset presence, TS parameters...)


class Condition(_Model):
    """A record filter: ``variable`` ``op`` ``values``.  Conditions of a rule's ``when`` are AND-ed."""

    variable: str
    op: Literal["eq", "ne", "in", "notin", "isnull", "notnull", "gt", "ge", "lt", "le", "regex"] = "eq"
    values: list[Any] = Field(default_factory=list)
    optional: bool = False  # a dataset without the variable: the condition filters nothing (else the rule skips)

    @field_validator("values", mode="before")
    @classmethod
    def _scalar_to_list(cls, v: Any) -> Any:
        return v if isinstance(v, list) else [v]


class Rule(_Model):
    """One validation rule (see docs/VALIDATION.md for the operator vocabulary)."""

    id: str = Field(pattern=r"^[A-Z][A-Z0-9]*(\.[A-Z0-9_]+)+$")
    standard: str  # where the rule comes from: SDTMIG 3.4, ADaMIG 1.3, FDA TCG, XPT v5, Define-XML 2.1, Study
    refs: RuleRefs = Field(default_factory=RuleRefs)
    severity: Severity
    category: Literal["Structure", "XPT", "Dates", "CT", "Consistency", "Referential", "Trial design",
                      "ADaM", "Define", "Data quality"]
    scope: Scope = Field(default_factory=Scope)
    when: list[Condition] = Field(default_factory=list)
    message: str
    check: dict[str, Any]
    needs_spec: bool = False  # SKIPPED without a study spec
    description: str | None = None

    @field_validator("check")
    @classmethod
    def _has_operator(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "operator" not in v:
            raise ValueError("check needs an 'operator'")
        return v


def _text_list(v: Any) -> Any:
    """A scalar becomes a one-item list; numbers become text (``values: [10]`` means "10")."""
    if v is None:
        return v
    items = v if isinstance(v, list) else [v]
    return [str(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x for x in items]


class ExpectedRecord(_Model):
    """One record an explanation covers.

    Either the subject's record by sequence number (``usubjid`` + ``seq``; ``dataset`` here or on the
    entry: --SEQ is unique only within a subject and a domain), or the subject's finding on a variable
    and value (``usubjid`` + ``variable`` + ``value``).  All given keys must match the finding.
    """

    usubjid: str
    dataset: str | None = None
    seq: int | None = None
    variable: str | None = None
    value: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _value_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _identifies_a_record(self) -> "ExpectedRecord":
        if self.seq is None and (self.variable is None or self.value is None):
            raise ValueError("a record is usubjid + seq (with dataset), or usubjid + variable + value")
        return self

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.model_dump().items() if v is not None)


class ExpectedFinding(_Model):
    """A finding expected for this study, with the explanation the reviewer's guide will give.

    An explanation names what it covers, so a new finding of the same rule is never hidden by it:
    ``subjects`` (USUBJIDs), ``records`` (:class:`ExpectedRecord`) and/or ``values`` (the finding's
    value, as text); all given are AND-ed with ``rule`` and the optional ``dataset`` / ``variable``
    filters.  ``scope: all`` explains every finding of the rule (within ``dataset`` / ``variable``
    when given): a deliberate, rule-wide choice, exclusive with the lists.  A scope item that matches
    no finding makes the explanation stale (a VAL.EXPECTED.STALE finding).
    """

    rule: str
    dataset: str | None = None
    variable: str | None = None
    subjects: list[str] | None = None
    records: list[ExpectedRecord] | None = None
    values: list[str] | None = None
    scope: Literal["all"] | None = None
    explanation: str

    @model_validator(mode="before")
    @classmethod
    def _older_keys(cls, data: Any) -> Any:
        """The single ``usubjid`` / ``value`` keys of older settings files: say what replaces them."""
        if isinstance(data, dict):
            old = [k for k in ("usubjid", "value") if k in data]
            if old:
                raise ValueError(f"{' and '.join(old)}: no longer an expected-finding key; name what the "
                                 "explanation covers with subjects: [USUBJID, ...], values: [...] or records: "
                                 "[{usubjid: ..., seq: ...}] (docs/VALIDATION.md)")
        return data

    @field_validator("subjects", "values", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _text_list(v)

    @field_validator("explanation")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the explanation is empty: say why the finding is expected")
        return v

    @model_validator(mode="after")
    def _has_scope(self) -> "ExpectedFinding":
        lists = {k: getattr(self, k) for k in ("subjects", "records", "values")}
        empty = [k for k, v in lists.items() if v is not None and not v]
        if empty:
            raise ValueError(f"{', '.join(empty)}: an empty list covers nothing; list what the explanation "
                             "covers or remove the key")
        given = [k for k, v in lists.items() if v]
        if self.scope == "all" and given:
            raise ValueError(f"scope: all explains every finding of the rule; it cannot be combined with "
                             f"{', '.join(given)}")
        if self.scope is None and not given:
            raise ValueError("the explanation names no scope: give subjects, records or values (what it "
                             "covers), or scope: all to explain every finding of the rule deliberately")
        return self

    def describe(self) -> str:
        """The entry's matching keys, for messages (``FND.LB.UNIT.CHANGE dataset=LB subjects=...``)."""
        parts = [self.rule]
        for k in ("dataset", "variable", "scope"):
            if getattr(self, k) is not None:
                parts.append(f"{k}={getattr(self, k)}")
        for k in ("subjects", "values"):
            if getattr(self, k):
                parts.append(f"{k}={','.join(getattr(self, k))}")
        if self.records:
            parts.append(f"records={len(self.records)}")
        return " ".join(parts)


class ValidationSettings(_Model):
    """Study-level validation settings (``specs/settings/validation.yaml``)."""

    # CT folder: configuration; a relative path is taken relative to the settings file.
    ct_dir: str | None = None
    # The study's own rule files (same format as the package's rules/*.yaml), run in addition to the
    # package's generic rules.  Paths or glob patterns, relative to the settings file.
    rule_files: list[str] = Field(default_factory=list)
    expected: list[ExpectedFinding] = Field(default_factory=list)
    disabled_rules: list[str] = Field(default_factory=list)
    severity_overrides: dict[str, Severity] = Field(default_factory=dict)
    ts_required: list[str] = Field(
        default_factory=lambda: ["SSTDTC", "SDTIGVER", "SDTMVER", "TITLE", "TPHASE", "TTYPE", "INTMODEL",
                                 "TBLIND", "RANDOM", "TCNTRL", "INDIC", "TRT", "PLANSUB", "ACTSUB", "AGEMIN",
                                 "AGEMAX", "SEXPOP", "HLTSUBJI", "FCNTRY", "SPONSOR", "OBJPRIM"])
    # Findings per rule and dataset written into xlsx/html/json (counts are always complete).
    report_limit_per_rule: int = Field(default=2000, ge=1)
    # Rule run times make reports differ between runs: off by default, so reports are byte-identical
    # (the times are always in reports/_previous/rule_times.csv); true puts them in the reports.
    record_run_times: bool = False

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        """Keys of older settings files whose values now live in a study rule: a clear error."""
        if isinstance(data, dict):
            moved = [k for k in MOVED_SETTINGS if k in data]
            if moved:
                raise ValueError(f"{', '.join(moved)}: no longer a validation setting; the values are "
                                 "parameters of the study rule that calls the rule function "
                                 "response_vs_marker (baseline.min_value, marker.where) in the study's "
                                 "rule file (docs/VALIDATION.md)")
        return data


# Settings removed when the disease-specific rule function response_vs_mprotein became the generic
# response_vs_marker (its values moved into the study's rule file).
MOVED_SETTINGS = ("imwg_measurable_serum_mprotein", "mprotein_testcd", "mprotein_spec")


@dataclass
class RuleResult:
    """Outcome of one rule: status, reason (SKIPPED / EXECUTION ERROR), counts, run time."""

    rule: Rule
    status: Status
    reason: str | None = None
    findings: int = 0
    datasets: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self, with_time: bool = True) -> dict[str, Any]:
        d = {
            "rule": self.rule.id, "standard": self.rule.standard, "category": self.rule.category,
            "severity": self.rule.severity, "p21": self.rule.refs.p21, "core": self.rule.refs.core,
            "fda": self.rule.refs.fda, "cdisc": self.rule.refs.cdisc, "status": self.status, "reason": self.reason,
            "findings": self.findings, "datasets": ", ".join(self.datasets), "message": self.rule.message,
        }
        if with_time:
            d["seconds"] = round(self.seconds, 4)
        return d
