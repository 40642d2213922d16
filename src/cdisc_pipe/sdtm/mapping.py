"""The mapping vocabulary: ``mappings/<dataset>.yaml`` files as pydantic models, loaded strictly.

Mappings are data.  There is no ``eval`` and no Python expression anywhere: a rule is one of a small
set of algorithms (see ``docs/MAPPINGS.md``), conditions are structured ``{field, op, value}``.
Loading validates every file, collects every problem with the file and the entry it is in, and
raises one :class:`~cdisc_pipe.errors.InputError` before any data is read.

A mapping file::

    dataset: AE
    sources:                                # raw forms, stacked ("combine forms")
      - form: ae
        where: [{field: AEYN, op: eq, value: "Y"}]
        reason: no adverse event recorded   # why rows failing ``where`` are not mapped
        variables: {...}                    # per-source rules, override the shared ones
    variables:                              # target variable -> rule
      AETERM: {copy: AETERM}
      AESER: {assign: {field: AESER, codelist: CL.NY}}
      AESTDTC: {dtc: {date: AESTDAT, time: AESTTIM}}
      AECAT: {value: ADVERSE EVENT}
    supp:
      - {qnam: AEDLT, qlabel: Dose Limiting Toxicity, rule: {assign: {field: AEDLT, codelist: CL.NY}}}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.spec.load import read_yaml as _read_yaml

from cdisc_pipe.spec.load import validate_model
from cdisc_pipe.spec.model import StudySpec

Op = Literal["eq", "ne", "in", "notin", "blank", "notblank", "lt", "le", "gt", "ge", "matches"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Condition(_M):
    """``{field, op, value}``: compares a raw field (or, after mapping, a target variable).

    ``eq/ne/lt/le/gt/ge`` take one value; ``in/notin`` a list; ``blank/notblank`` none; ``matches``
    a regular expression (full match, case-insensitive).  ``eq``/``in`` compare case-insensitively
    after trimming; ``lt..ge`` compare numbers.
    """

    field: str
    op: Op = "eq"
    value: str | float | list[str] | None = None

    @model_validator(mode="after")
    def _arity(self) -> "Condition":
        if self.op in ("blank", "notblank"):
            if self.value is not None:
                raise ValueError(f"op {self.op} takes no value")
        elif self.op in ("in", "notin"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"op {self.op} takes a non-empty list of values")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"op {self.op} takes exactly one value")
        return self


class AssignSpec(_M):
    """Assign through a codelist: raw code or decode -> CDISC submission value.

    ``synonyms`` names a table in ``mappings/synonyms.yaml`` (study-level raw -> submission value);
    ``map`` gives an inline one.  Without ``codelist`` the map itself is the vocabulary (sponsor
    values); a value neither covers is reported (``SDTM.CT.UNMAPPED``) and kept as collected.
    """

    field: str
    codelist: str | None = None
    synonyms: str | None = None
    map: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_vocabulary(self) -> "AssignSpec":
        if not self.codelist and not self.map and not self.synonyms:
            raise ValueError("assign needs a codelist, a synonyms table or a map")
        return self


class DtcSpec(_M):
    """Assemble an ISO 8601 date/time from a raw date field and an optional raw time field."""

    date: str
    time: str | None = None


class NumberSpec(_M):
    """A raw field as a number; text that is not a number is reported (``SDTM.NUM.INVALID``)."""

    field: str


class CaseSpec(_M):
    """One branch of a conditional rule: ``if`` all conditions hold, ``then`` this rule."""

    if_: list[Condition] = Field(alias="if")
    then: "Rule"

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConcatSpec(_M):
    """Join raw fields (blank ones skipped) with a separator."""

    fields: list[str]
    sep: str = " "


RULE_KINDS = ("copy", "value", "assign", "dtc", "number", "when", "concat", "duration_days")
#: (kind, Rule attribute) of each algorithm (``copy`` is held in ``copy_``)
_KIND_ATTRS = tuple((k, "copy_" if k == "copy" else k) for k in RULE_KINDS)


class Rule(_M):
    """Exactly one algorithm.  ``upper: true`` upper-cases the result (for text rules)."""

    copy_: str | None = Field(default=None, alias="copy")
    value: str | float | None = None
    assign: AssignSpec | None = None
    dtc: DtcSpec | None = None
    number: NumberSpec | str | None = None
    when: list[CaseSpec] | None = None
    else_: "Rule | None" = Field(default=None, alias="else")
    concat: ConcatSpec | None = None
    duration_days: str | None = None  # raw field holding a number of days -> ISO duration P<n>D
    upper: bool = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _exactly_one(self) -> "Rule":
        set_ = [k for k, attr in _KIND_ATTRS if getattr(self, attr) is not None]
        if len(set_) != 1:
            raise ValueError(f"a rule needs exactly one of {', '.join(RULE_KINDS)} (got {', '.join(set_) or 'none'})")
        if self.else_ is not None and self.when is None:
            raise ValueError("else is only allowed with when")
        return self

    @property
    def kind(self) -> str:
        """The algorithm's name (``copy``, ``value``, ``assign`` ...)."""
        for k, attr in _KIND_ATTRS:
            if getattr(self, attr) is not None:
                return k
        raise AssertionError("validated rule without a kind")

    def direct_fields(self) -> list[str]:
        """The raw fields the rule's own algorithm reads (not its ``when`` cases), in a stable order."""
        out: list[str] = []
        if self.copy_:
            out.append(self.copy_)
        if self.assign:
            out.append(self.assign.field)
        if self.dtc:
            out.append(self.dtc.date)
            if self.dtc.time:
                out.append(self.dtc.time)
        if self.number is not None:
            out.append(self.number if isinstance(self.number, str) else self.number.field)
        if self.concat:
            out.extend(self.concat.fields)
        if self.duration_days:
            out.append(self.duration_days)
        return out

    def fields(self) -> set[str]:
        """The raw fields this rule reads (to check them against the form before mapping)."""
        out = set(self.direct_fields())
        for case in self.when or []:
            out.update(c.field for c in case.if_)
            out.update(case.then.fields())
        if self.else_:
            out.update(self.else_.fields())
        return out


CaseSpec.model_rebuild()
Rule.model_rebuild()


class TestSpec(_M):
    """One test of a wide form: its target values (``TESTCD``-like constants) and its raw fields."""

    set: dict[str, str | float]  # target variable -> constant (e.g. LBTESTCD: IGG, LBTEST: ..., LBSPEC: SERUM)
    variables: dict[str, Rule] = Field(default_factory=dict)  # per-test rules (e.g. LBORRES: {copy: IGG})


class Transpose(_M):
    """Wide form -> one findings row per test; a test whose ``present`` fields are all blank is skipped."""

    tests: list[TestSpec]
    present: list[str] = Field(default_factory=list)  # target variables that make a row exist (e.g. LBORRES, LBSTAT)


class JoinKey(_M):
    """A key of a keyed join: ``field`` on the source rows equals ``joined`` on the joined form
    (default: the same name).  Compared as trimmed text; blank never matches."""

    field: str
    joined: str | None = None

    @property
    def other(self) -> str:
        """The joined form's field."""
        return self.joined or self.field


class JoinNearest(_M):
    """Nearest preceding join: the joined record whose date (and time) is the latest on or before
    the source row's.  Both sides are assembled like the ``dtc`` algorithm; a partial, invalid or
    missing date never matches (finding ``SDTM.JOIN.DATE``)."""

    date: DtcSpec  # the source row's date (and time) fields
    joined: DtcSpec  # the joined form's date (and time) fields


def _keys_before(v: Any) -> Any:
    """``[PERIOD]`` is short for ``[{field: PERIOD}]`` (same name on both sides)."""
    if isinstance(v, list):
        return [{"field": x} if isinstance(x, str) else x for x in v]
    return v


class Join(_M):
    """Another form joined onto the source rows; its fields are read as ``<name>.<FIELD>`` (``name``
    defaults to the form, e.g. ``dm.AGE``).

    - plain (no ``by``, ``nearest`` or ``where``): a one-record-per-subject form joined by subject;
      a second record of a subject is reported (``SDTM.RAW.DUPLICATE``) and the first is used;
    - ``by``: by subject and key fields (``[PERIOD]`` or ``[{field: PERIOD, joined: EXPER}]``);
    - ``nearest``: by subject (and ``by`` keys), the joined record dated latest on or before the row;
    - ``where``: only joined records matching these conditions (on the joined form's own fields).

    Keyed and nearest joins never pick silently: several joined records for a row's key (or at its
    latest date) give the row no joined values and an Error finding naming the joined form's rows
    (``SDTM.JOIN.MULTIPLE``); a row without a match keeps going with blank joined fields
    (``SDTM.JOIN.NOMATCH``, Notice); joined records no row uses are listed in the traceability with
    ``reason``."""

    form: str
    name: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    by: list[JoinKey] = Field(default_factory=list)  # (not "on": YAML 1.1 reads it as true)
    nearest: JoinNearest | None = None
    where: list[Condition] = Field(default_factory=list)
    reason: str = "no matching record on the main form of the dataset"

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, v: Any) -> Any:
        return _keys_before(v)

    @property
    def prefix(self) -> str:
        """The prefix of the joined fields (``<prefix>.<FIELD>``)."""
        return self.name or self.form

    @property
    def plain(self) -> bool:
        """True for the by-subject join of a one-record-per-subject form."""
        return not self.by and self.nearest is None and not self.where


class Source(_M):
    """A raw form feeding the dataset; several sources are stacked (combine forms)."""

    form: str
    join: list[Join] = Field(default_factory=list)
    where: list[Condition] = Field(default_factory=list)
    reason: str | None = None  # why rows failing ``where`` are not mapped (traceability)
    variables: dict[str, Rule] = Field(default_factory=dict)
    transpose: Transpose | None = None

    @model_validator(mode="after")
    def _reason(self) -> "Source":
        if self.where and not self.reason:
            raise ValueError("a source with where: needs a reason (shown in traceability)")
        return self


class Results(_M):
    """Standardise results: ``--ORRES/--ORRESU`` -> ``--STRESC/--STRESN/--STRESU`` via mappings/units.yaml."""

    testcd: str  # target variable holding the test code (e.g. LBTESTCD)
    by: list[str] = Field(default_factory=list)  # extra target variables that select a conversion (e.g. LBSPEC)
    lloq: bool = False  # put the number of a '<x' result into --LLOQ when the dataset has it
    blq: str | None = None  # --STRESC for a '<x' result (e.g. BLQ); default keeps '<x' in --STRESC
    ranges: bool = False  # convert --ORNRLO/--ORNRHI into --STNRLO/--STNRHI with the same factor


class Split(_M):
    """Text over 200 bytes: the rest into numbered variables (``COVAL1``...) or SUPP records (``AETERM1``)."""

    variable: str
    into: Literal["variables", "supp"] = "supp"
    qlabel: str | None = None


class Supp(_M):
    """A supplemental qualifier: one SUPP-- record per parent record where the rule gives a value."""

    qnam: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    qlabel: str = Field(max_length=40)
    rule: Rule
    qorig: Literal["CRF", "Derived", "Assigned", "Protocol", "eDT", "Predecessor"] = "CRF"
    qeval: str | None = None
    form: str | None = None  # only records from this source form (default: every source)


class Baseline(_M):
    """--LOBXFL (and --BLFL when present): last non-missing result before a reference date-time.

    ``reference`` names the variable holding the reference: a DM variable (``source: DM``, e.g.
    RFSTDTC or RFXSTDTC, per subject) or a variable of the record itself (``source: record``, e.g.
    a per-period reference such as the period's first dose set by a ``lookup``); ``groups``
    give other references to records matching conditions; ``by`` are the grouping variables
    (add a period variable such as EPOCH for one baseline per period)."""

    reference: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    source: Literal["DM", "record"] = "DM"
    by: list[str]
    groups: list["BaselineGroup"] = Field(default_factory=list)  # overrides for some records


class BaselineGroup(_M):
    """Records matching ``where`` take another reference variable (same ``source`` as the rule)."""

    where: list[Condition]
    reference: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")


Baseline.model_rebuild()


class Visit(_M):
    """How VISIT/VISITNUM are found: a target variable holding the raw visit name, matched to TV."""

    variable: str = "VISIT"  # target variable the mapping fills with the collected visit name
    date: str  # target --DTC used to place unscheduled visits
    unscheduled: str = "UNS"  # collected visit names starting with this (case-insensitive) are unscheduled


class FromDataset(_M):
    """A variable of another (already mapped) dataset, on records matching ``where``."""

    dataset: str
    variable: str
    where: list[Condition] = Field(default_factory=list)


class LookupKey(_M):
    """A key of a lookup: ``variable`` of this dataset's record equals ``other`` of the other
    dataset's record (default: the same name), e.g. EPOCH, VISITNUM or a --GRPID.  Numbers compare
    as numbers, text as trimmed text; a missing key never matches."""

    variable: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")
    other: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]{0,7}$")

    @property
    def other_variable(self) -> str:
        """The other dataset's key variable."""
        return self.other or self.variable


class LookupNearest(_M):
    """Nearest record by date: the other dataset's record whose ``other`` date is the latest on or
    before this record's ``date`` (``direction: before``, the default), or the earliest on or after
    it (``direction: after``, e.g. the start of the period a pre-dose record precedes); same
    subject and ``by`` keys.

    Date-times compare to the second when both have a time; otherwise by date (a record dated
    without a time is on or before / on or after every record of that day).  A partial or missing
    date never matches and is reported (``SDTM.LOOKUP.DATE``)."""

    date: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")  # this dataset's --DTC (e.g. PCDTC)
    other: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,7}$")  # the other dataset's --DTC (e.g. EXSTDTC)
    direction: Literal["before", "after"] = "before"


_PLACEHOLDER = r"\{([A-Z][A-Z0-9_]{0,7})\}"


class Lookup(_M):
    """Per-record values from another, already mapped dataset (mapping key ``lookup``).

    For each record of this dataset, the record of ``dataset`` (matching ``where``) of the same
    USUBJID and equal ``by`` keys is chosen, or with ``nearest`` the one dated latest on or before
    this record; ``copy`` sets target variables from its variables (``PCRFTDTC: EXSTDTC``) and
    ``text`` from templates naming them in braces (``PCTPTREF: "{EXTRT} DOSE, {EPOCH}"``; a
    template without braces is a constant set on matched records only).

    Several matching records (equal keys, or a tie at the latest date) are never picked silently:
    the record gets no value and an Error finding (``SDTM.LOOKUP.MULTIPLE``), unless ``pick``
    (first/last by the other's ``order_by`` date) says which one to take.  A record without a match
    keeps the value it had (``SDTM.LOOKUP.NOMATCH``, Notice), so a second lookup can fill the rest.

    ``working: true`` makes the targets working variables: available to later lookups and to
    ``baseline`` (``source: record``), not written to the dataset.
    """

    dataset: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,7}$")
    where: list[Condition] = Field(default_factory=list)  # on the other dataset's records
    by: list[LookupKey] = Field(default_factory=list)  # equal keys besides USUBJID
    nearest: LookupNearest | None = None
    pick: Literal["first", "last"] | None = None
    order_by: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]{0,7}$")  # the other's date for pick
    copy_: dict[str, str] = Field(default_factory=dict, alias="copy")  # target -> other dataset's variable
    text: dict[str, str] = Field(default_factory=dict)  # target -> template with {OTHERVAR} placeholders
    working: bool = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("by", mode="before")
    @classmethod
    def _by(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"variable": x} if isinstance(x, str) else x for x in v]
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Lookup":
        if not self.copy_ and not self.text:
            raise ValueError("a lookup needs copy: and/or text: (the target variables it sets)")
        both = set(self.copy_) & set(self.text)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} set by both copy and text")
        if self.nearest is not None and (self.pick or self.order_by):
            raise ValueError("nearest already chooses the latest preceding record: drop pick/order_by")
        if (self.pick is None) != (self.order_by is None):
            raise ValueError("pick and order_by go together (pick: first|last, order_by: the other's date)")
        for target, tpl in self.text.items():
            rest = re.sub(_PLACEHOLDER, "", tpl)
            if "{" in rest or "}" in rest:
                raise ValueError(f"text.{target}: braces must enclose a variable name in upper case, e.g. {{EXTRT}}")
        for name in list(self.copy_) + list(self.text) + list(self.copy_.values()):
            if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,7}", name):
                raise ValueError(f"{name!r} is not a variable name")
        return self

    def targets(self) -> list[str]:
        """The variables this lookup sets."""
        return list(self.copy_) + list(self.text)

    def other_variables(self) -> list[str]:
        """The other dataset's variables this lookup reads (keys, dates, conditions, values)."""
        out = [k.other_variable for k in self.by] + [c.field for c in self.where] + list(self.copy_.values())
        if self.nearest is not None:
            out.append(self.nearest.other)
        if self.order_by:
            out.append(self.order_by)
        for tpl in self.text.values():
            out += re.findall(_PLACEHOLDER, tpl)
        return list(dict.fromkeys(out))

    def own_variables(self) -> list[str]:
        """This dataset's variables the lookup reads (keys, date)."""
        out = [k.variable for k in self.by] + ([self.nearest.date] if self.nearest is not None else [])
        return list(dict.fromkeys(out))


class SubjectDate(_M):
    """A per-subject date picked across datasets (DM reference dates): earliest or latest value."""

    pick: Literal["first", "last"]
    sources: list[FromDataset]


class ActualArm(_M):
    """How ACTARMCD/ACTARM are derived (DM mapping key ``actual_arm``); a generic algorithm chosen
    by ``method``, the study's values in this mapping and the trial design's ``arms``.

    The treatment records are the records of ``dataset`` matching ``where``; a subject without
    any is not treated (ARMNRS ``ASSIGNED, NOT TREATED``).

    - ``dose``: the total of ``dose`` over the subject's records, matched to the arm whose planned
      ``dose`` (trial design) is nearest, within ``tolerance`` (relative difference).
    - ``sequence``: the treatments received in time order (``order_by``), one per period: with
      ``period`` the first record of each distinct period value, else consecutive records with the
      same treatment are one period.  The treatment is the value of ``treatment`` (translated by
      ``codes`` when given) and the sequence is matched to the arms' ``sequence`` (e.g. AB / BA).
      A sequence stopped early (a prefix of an arm's sequence) counts as that arm when
      ``partial: planned_prefix`` (the default) and it is the planned arm's prefix or only one
      arm's prefix; otherwise, and for any other sequence, UNPLANNED TREATMENT.
    - ``record``: the arm recorded on an allocation record (e.g. a randomisation or dispensing
      record): the value of ``variable`` on the subject's records, translated by ``codes`` (value
      -> ARMCD; without ``codes`` the value is the ARMCD).  Several different values: UNPLANNED
      TREATMENT (``SDTM.ARM.UNPLANNED``); a value that is no arm of the trial design: UNPLANNED
      TREATMENT (``SDTM.ARM.UNKNOWN``).  A ``codes`` target that is no arm is an input error.
    """

    method: Literal["dose", "sequence", "record"] = "dose"
    dataset: str = "EX"
    where: list[Condition] = Field(default_factory=list)
    # method dose
    dose: str = "EXDOSE"
    tolerance: float = Field(default=0.2, ge=0)
    # method sequence
    treatment: str = "EXTRT"
    codes: dict[str, str] = Field(default_factory=dict)  # treatment value -> the code used in arms' sequence
    order_by: str = "EXSTDTC"
    period: str | None = None  # variable identifying the period of a record (e.g. a --GRPID; not EPOCH, derived later)
    partial: Literal["planned_prefix", "unplanned"] = "planned_prefix"
    # method record
    variable: str | None = None  # the variable holding the allocated arm (e.g. DSTERM, a sponsor --TRT)

    @model_validator(mode="after")
    def _record_variable(self) -> "ActualArm":
        if self.method == "record" and not self.variable:
            raise ValueError("method record needs variable: (the variable holding the allocated arm)")
        if self.method != "record" and self.variable:
            raise ValueError("variable: is only used by method record")
        return self

    def reads(self) -> list[str]:
        """The variables of ``dataset`` the chosen method reads (conditions included)."""
        out = {"dose": [self.dose], "sequence": [self.treatment, self.order_by] + ([self.period] if self.period else []),
               "record": [self.variable or ""]}[self.method]
        return list(dict.fromkeys(out + [c.field for c in self.where]))


class Relation(_M):
    """RELREC between two datasets, record level: records whose ``link`` variables are equal."""

    relid: str
    left: str
    right: str
    link: str  # a target variable present in both (e.g. AELNKID in AE and FALNKID in FA: name pairs below)
    right_link: str | None = None
    reltype: Literal["ONE", "MANY"] | None = None


class DatasetMapping(_M):
    """One ``mappings/<dataset>.yaml``."""

    dataset: str = Field(pattern=r"^[A-Z][A-Z0-9]{1,7}$")
    sources: list[Source] = Field(default_factory=list)
    variables: dict[str, Rule] = Field(default_factory=dict)
    supp: list[Supp] = Field(default_factory=list)
    split: list[Split] = Field(default_factory=list)
    results: Results | None = None
    baseline: Baseline | None = None
    visit: Visit | None = None
    subject_field: str = "SUBJID"  # raw field holding the subject number
    site_field: str | None = "SITEID"
    subject_dates: dict[str, SubjectDate] = Field(default_factory=dict)  # DM: RFSTDTC, RFXSTDTC, ...
    actual_arm: ActualArm | None = None  # DM: ACTARMCD/ACTARM/ARMNRS
    from_dm: dict[str, str] = Field(default_factory=dict)  # target variable -> DM variable (e.g. PCRFTDTC: RFSTDTC)
    lookup: list[Lookup] = Field(default_factory=list)  # per-record values from other datasets (Lookup)
    relrec: list[Relation] = Field(default_factory=list)
    drop_blank: list[str] = Field(default_factory=list)  # rows where all these targets are blank are not records
    drop_reason: str | None = None
    description: str | None = None
    # Raw fields of this mapping's forms that no rule reads on purpose, with the reason the annotated
    # CRF prints beside "[NOT SUBMITTED]": FIELD (on every source form that has it) or form.FIELD.
    not_submitted: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _blank_reason(self) -> "DatasetMapping":
        if self.drop_blank and not self.drop_reason:
            raise ValueError("drop_blank needs drop_reason (shown in traceability)")
        return self


class UnitConversion(_M):
    """A row of the conversion table: a test's collected unit -> the standard unit by a factor."""

    testcd: str
    from_: str = Field(alias="from")
    to: str
    factor: float = 1.0
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class UnitsTable(_M):
    """``mappings/units.yaml``: the standard unit of each test and the conversions into it."""

    conversions: list[UnitConversion]


class Mappings(_M):
    """Everything in a mappings folder."""

    datasets: dict[str, DatasetMapping]
    synonyms: dict[str, dict[str, str]] = Field(default_factory=dict)
    units: UnitsTable = Field(default_factory=lambda: UnitsTable(conversions=[]))
    design: dict[str, Any] = Field(default_factory=dict)  # trial design data (trial_design.yaml), see design.py
    files: dict[str, str] = Field(default_factory=dict)  # dataset -> file path (for messages)


TABLE_FILES = {"synonyms.yaml", "units.yaml", "trial_design.yaml"}

# One YAML reader for specs and mappings (safe loader, problems with file/line).
read_yaml = _read_yaml


def _walk_rules(rule: Rule, where: str) -> list[tuple[str, Rule]]:
    out = [(where, rule)]
    for i, case in enumerate(rule.when or []):
        out += _walk_rules(case.then, f"{where}.when[{i}].then")
    if rule.else_:
        out += _walk_rules(rule.else_, f"{where}.else")
    return out


def load_mappings(mappings_dir: str | Path, spec: StudySpec) -> Mappings:
    """Read and check every mapping file against the spec; one InputError with all problems.

    Checks: YAML and model validity; the dataset exists in the spec; every target variable (and
    SUPP QNAM's parent) exists in the dataset's spec; codelists named exist in the spec; synonym
    tables named exist.  Raw field names are checked against the forms when data is read.
    """
    root = Path(mappings_dir)
    problems: list[Problem] = []
    if not root.is_dir():
        raise InputError(Problem(str(root), "mappings folder not found", hint="Pass the study's mappings/ folder"))
    synonyms: dict[str, dict[str, str]] = {}
    units = UnitsTable(conversions=[])
    design: dict[str, Any] = {}
    syn_path = root / "synonyms.yaml"
    if syn_path.exists():
        data = read_yaml(syn_path, problems) or {}
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            problems.append(Problem(str(syn_path), "must map table names to {raw value: submission value}"))
        else:
            synonyms = {str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.items()}
    units_path = root / "units.yaml"
    if units_path.exists():
        data = read_yaml(units_path, problems)
        u = validate_model(UnitsTable, data, str(units_path), problems)
        if u is not None:
            units = u
    td_path = root / "trial_design.yaml"
    if td_path.exists():
        data = read_yaml(td_path, problems)
        if isinstance(data, dict):
            design = data
        else:
            problems.append(Problem(str(td_path), "top level must be a mapping"))

    datasets: dict[str, DatasetMapping] = {}
    files: dict[str, str] = {}
    for path in sorted(root.glob("*.yaml")):
        if path.name in TABLE_FILES:
            continue
        data = read_yaml(path, problems)
        if data is None:
            continue
        m = validate_model(DatasetMapping, data, str(path), problems)
        if m is None:
            continue
        f = str(path)
        if path.stem.upper() != m.dataset:
            problems.append(Problem(f, "file name must be the dataset name in lower case", entry="dataset",
                                    value=m.dataset, hint=f"Rename the file to {m.dataset.lower()}.yaml"))
        if m.dataset not in spec.datasets:
            problems.append(Problem(f, "no spec for this dataset", entry="dataset", value=m.dataset,
                                    hint=f"Add specs/sdtm/{m.dataset.lower()}.yaml"))
            continue
        ds = spec.datasets[m.dataset]
        names = set(ds.variable_names)
        entries: list[tuple[str, str, Rule]] = [(f"variables.{k}", k, r) for k, r in m.variables.items()]
        for i, s in enumerate(m.sources):
            entries += [(f"sources[{i}:{s.form}].variables.{k}", k, r) for k, r in s.variables.items()]
            if s.transpose:
                for j, t in enumerate(s.transpose.tests):
                    for k in t.set:
                        if k not in names:
                            problems.append(Problem(f, f"{k} is not a variable of {m.dataset}",
                                                    entry=f"sources[{i}].transpose.tests[{j}].set", value=k))
                    entries += [(f"sources[{i}].transpose.tests[{j}].variables.{k}", k, r)
                                for k, r in t.variables.items()]
                for k in s.transpose.present:
                    if k not in names:
                        problems.append(Problem(f, f"{k} is not a variable of {m.dataset}",
                                                entry=f"sources[{i}].transpose.present", value=k))
        for entry, target, rule in entries:
            if target not in names:
                problems.append(Problem(f, f"{target} is not a variable of {m.dataset} in its spec", entry=entry,
                                        value=target, hint="Correct the name or add the variable to the spec"))
        all_rules = [(e, r) for e, _, r in entries] + [(f"supp[{i}:{s.qnam}].rule", s.rule) for i, s in enumerate(m.supp)]
        for entry, rule in all_rules:
            for where, r in _walk_rules(rule, entry):
                if r.assign is not None:
                    if r.assign.codelist and r.assign.codelist not in spec.codelists:
                        problems.append(Problem(f, "refers to a codelist not in the specs", entry=where + ".assign.codelist",
                                                value=r.assign.codelist, hint="Add specs/codelists/<name>.yaml"))
                    if r.assign.synonyms and r.assign.synonyms not in synonyms:
                        problems.append(Problem(f, "refers to a synonyms table not in mappings/synonyms.yaml",
                                                entry=where + ".assign.synonyms", value=r.assign.synonyms))
        for i, sp in enumerate(m.split):
            if sp.variable not in names:
                problems.append(Problem(f, f"{sp.variable} is not a variable of {m.dataset}", entry=f"split[{i}]"))
        if m.supp and f"SUPP{m.dataset}" not in spec.datasets:
            problems.append(Problem(f, f"supp: given but there is no spec for SUPP{m.dataset}", entry="supp",
                                    hint=f"Add specs/sdtm/supp{m.dataset.lower()}.yaml"))
        for sp in m.split:
            if sp.into == "supp" and f"SUPP{m.dataset}" not in spec.datasets:
                problems.append(Problem(f, f"split into supp needs a spec for SUPP{m.dataset}", entry="split"))
        if m.results and m.results.testcd not in names:
            problems.append(Problem(f, f"{m.results.testcd} is not a variable of {m.dataset}", entry="results.testcd"))
        for i, s in enumerate(m.sources):
            seen_prefix: set[str] = set()
            for j, jn in enumerate(s.join):
                if jn.prefix in seen_prefix:
                    problems.append(Problem(f, "two joins of one source read their fields under the same name",
                                            entry=f"sources[{i}].join[{j}]", value=jn.prefix,
                                            hint="Give the second join a name: (its fields are read as <name>.FIELD)"))
                seen_prefix.add(jn.prefix)
        datasets[m.dataset] = m
        files[m.dataset] = f
    problems += check_cross_references(datasets, files, spec, has_design=bool(design))
    if problems:
        raise InputError(problems, stage="mappings")
    return Mappings(datasets=datasets, synonyms=synonyms, units=units, design=design, files=files)


def lookup_order(datasets: dict[str, DatasetMapping]) -> tuple[list[str], list[str]]:
    """(datasets with lookups in an order where every dataset comes after the datasets it looks
    up, ties alphabetical; datasets that cannot be ordered because their lookups form a cycle)."""
    deps = {n: {lk.dataset for lk in m.lookup if lk.dataset in datasets and lk.dataset != n}
            for n, m in datasets.items() if m.lookup}
    done: list[str] = []
    pending = sorted(deps)
    while pending:
        ready = [n for n in pending if all(d in done or d not in deps for d in deps[n])]
        if not ready:
            return done, pending
        done.append(ready[0])
        pending.remove(ready[0])
    return done, []


def check_cross_references(datasets: dict[str, DatasetMapping], files: dict[str, str], spec: StudySpec,
                           has_design: bool) -> list[Problem]:
    """Checks that need every mapping: ``lookup`` (the other dataset is built, the variables exist
    in the specs, targets, no cycle), ``actual_arm`` (its dataset and variables) and ``baseline``
    with ``source: record`` (the reference is a variable of the record)."""
    problems: list[Problem] = []
    lookable = {n for n, m in datasets.items() if m.sources}
    if has_design and "SE" in spec.datasets:
        lookable.add("SE")

    def spec_vars(name: str) -> set[str]:
        return set(spec.datasets[name].variable_names) if name in spec.datasets else set()

    def lookup_targets(name: str) -> set[str]:
        m = datasets.get(name)
        return {t for lk in m.lookup for t in lk.targets()} if m is not None else set()

    for name, m in datasets.items():
        f = files.get(name, name)
        own = spec_vars(name)
        for i, lk in enumerate(m.lookup):
            entry = f"lookup[{i}]"
            if lk.dataset == name:
                problems.append(Problem(f, "a dataset cannot look up its own records", entry=f"{entry}.dataset",
                                        value=lk.dataset))
                continue
            if lk.dataset not in lookable:
                problems.append(Problem(f, "no mapping builds this dataset (a lookup reads an SDTM dataset mapped "
                                           "from raw forms, or SE)", entry=f"{entry}.dataset", value=lk.dataset,
                                        hint=f"Available: {', '.join(sorted(lookable))}"))
                continue
            other = spec_vars(lk.dataset) | lookup_targets(lk.dataset)
            for v in lk.other_variables():
                if v not in other:
                    problems.append(Problem(f, f"{v} is not a variable of {lk.dataset} (spec or its lookups)",
                                            entry=entry, value=v, hint=f"Correct the name or add {v} to {lk.dataset}"))
            mine = own | {t for lk2 in m.lookup[:i] for t in lk2.targets()}
            for v in lk.own_variables():
                if v not in mine:
                    problems.append(Problem(f, f"{v} is not a variable of {name} (spec or an earlier lookup)",
                                            entry=entry, value=v))
            for t in lk.targets():
                if lk.working and t in own:
                    problems.append(Problem(f, f"working variable {t} is a variable of {name}'s spec", entry=entry,
                                            value=t, hint="Drop working: true to write it, or choose another name"))
                elif not lk.working and t not in own:
                    problems.append(Problem(f, f"{t} is not a variable of {name} in its spec", entry=entry, value=t,
                                            hint="Add it to the spec, or set working: true for a working variable"))
        if m.baseline is not None and m.baseline.source == "record":
            refs = [("baseline.reference", m.baseline.reference)] + [
                (f"baseline.groups[{i}].reference", g.reference) for i, g in enumerate(m.baseline.groups)]
            have = own | lookup_targets(name)
            for entry, ref in refs:
                if ref not in have:
                    problems.append(Problem(f, f"{ref} is not a variable of {name} (source: record reads the record's "
                                               "own variable)", entry=entry, value=ref,
                                            hint="Set it with a lookup (working: true if it is not to be written)"))
        aa = m.actual_arm
        if aa is not None:
            if aa.dataset not in datasets or not datasets[aa.dataset].sources:
                problems.append(Problem(f, "no mapping builds this dataset", entry="actual_arm.dataset", value=aa.dataset))
            else:
                have = spec_vars(aa.dataset)
                for v in aa.reads():
                    if v not in have:
                        problems.append(Problem(f, f"{v} is not a variable of {aa.dataset} in its spec",
                                                entry="actual_arm", value=v))
    _, stuck = lookup_order(datasets)
    for name in stuck:
        reads = sorted({lk.dataset for lk in datasets[name].lookup if lk.dataset in stuck})
        if reads:
            problems.append(Problem(files.get(name, name), f"the lookups form a cycle: {name} looks up "
                                    f"{', '.join(reads)}, which look(s) up {name} in turn (directly or not)",
                                    entry="lookup", hint="Lookups run in dependency order; remove one direction"))
    return problems
