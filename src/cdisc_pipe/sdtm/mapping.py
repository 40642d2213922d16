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

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
        set_ = [k for k, attr in (("copy", "copy_"), ("value", "value"), ("assign", "assign"), ("dtc", "dtc"),
                                  ("number", "number"), ("when", "when"), ("concat", "concat"),
                                  ("duration_days", "duration_days"))
                if getattr(self, attr) is not None]
        if len(set_) != 1:
            raise ValueError(f"a rule needs exactly one of {', '.join(RULE_KINDS)} (got {', '.join(set_) or 'none'})")
        if self.else_ is not None and self.when is None:
            raise ValueError("else is only allowed with when")
        return self

    @property
    def kind(self) -> str:
        """The algorithm's name (``copy``, ``value``, ``assign`` ...)."""
        for k, attr in (("copy", "copy_"), ("value", "value"), ("assign", "assign"), ("dtc", "dtc"),
                        ("number", "number"), ("when", "when"), ("concat", "concat"),
                        ("duration_days", "duration_days")):
            if getattr(self, attr) is not None:
                return k
        raise AssertionError("validated rule without a kind")

    def fields(self) -> set[str]:
        """The raw fields this rule reads (to check them against the form before mapping)."""
        out: set[str] = set()
        if self.copy_:
            out.add(self.copy_)
        if self.assign:
            out.add(self.assign.field)
        if self.dtc:
            out.add(self.dtc.date)
            if self.dtc.time:
                out.add(self.dtc.time)
        if self.number is not None:
            out.add(self.number if isinstance(self.number, str) else self.number.field)
        if self.concat:
            out.update(self.concat.fields)
        if self.duration_days:
            out.add(self.duration_days)
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


class Join(_M):
    """Another one-record-per-subject form joined onto the source rows by subject; its fields are
    read as ``<form>.<FIELD>`` (e.g. ``dm.AGE``)."""

    form: str
    reason: str = "no matching record on the main form of the dataset"


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
    a per-period reference such as the period's first dose joined with ``from_dataset``); ``groups``
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
    """

    method: Literal["dose", "sequence"] = "dose"
    dataset: str = "EX"
    where: list[Condition] = Field(default_factory=list)
    # method dose
    dose: str = "EXDOSE"
    tolerance: float = Field(default=0.2, ge=0)
    # method sequence
    treatment: str = "EXTRT"
    codes: dict[str, str] = Field(default_factory=dict)  # treatment value -> the code used in arms' sequence
    order_by: str = "EXSTDTC"
    period: str | None = None  # variable identifying the period of a record (e.g. EPOCH, a --GRPID)
    partial: Literal["planned_prefix", "unplanned"] = "planned_prefix"


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
        datasets[m.dataset] = m
        files[m.dataset] = f
    if problems:
        raise InputError(problems, stage="mappings")
    return Mappings(datasets=datasets, synonyms=synonyms, units=units, design=design, files=files)
