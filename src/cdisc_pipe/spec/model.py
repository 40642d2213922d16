"""The study metadata model (Define-XML 2.1 concepts, Pinnacle 21 specification vocabulary).

Everything downstream (SDTM mapping, ADaM, writers, define.xml, validation) reads the study through
these classes.  They are plain pydantic v2 models: no I/O, no hidden state.  ``extra="forbid"``
everywhere so that a misspelt key in a spec file is an error, not a silently ignored setting.

On-disk layout (see ``docs/SPECS.md``):

- ``specs/study.yaml``: ``study``, ``standards``, ``documents``, ``dictionaries``, ``methods``,
  ``comments`` (global ones).
- ``specs/sdtm/<name>.yaml`` and ``specs/adam/<name>.yaml``: one :class:`Dataset` each (its
  ``variables`` and ``value_level`` inline; dataset-specific ``methods`` and ``comments`` may be
  declared in the same file and are merged into the study-wide lists).
- ``specs/codelists/<name>.yaml``: one :class:`Codelist` each.
- ``specs/settings/<stage>.yaml``: stage settings (NCA options, censoring rules, windows), each
  parsed by the stage's own model, not by this module.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DataType = Literal[
    "text",
    "integer",
    "float",
    "date",
    "datetime",
    "time",
    "partialDate",
    "partialTime",
    "partialDatetime",
    "incompleteDatetime",
    "durationDatetime",
    "intervalDatetime",
]
Core = Literal["Req", "Exp", "Perm", "Cond"]
OriginType = Literal["Collected", "Derived", "Assigned", "Protocol", "Predecessor", "Not Available", "Other"]
OriginSource = Literal["Subject", "Investigator", "Vendor", "Sponsor"]
Comparator = Literal["EQ", "NE", "IN", "NOTIN", "LT", "LE", "GT", "GE"]
Purpose = Literal["Tabulation", "Analysis"]
MethodType = Literal["Computation", "Imputation"]
DatasetClass = Literal[
    "SPECIAL PURPOSE",
    "TRIAL DESIGN",
    "INTERVENTIONS",
    "EVENTS",
    "FINDINGS",
    "FINDINGS ABOUT",
    "RELATIONSHIP",
    "STUDY REFERENCE",
    "SUBJECT LEVEL ANALYSIS DATASET",
    "BASIC DATA STRUCTURE",
    "OCCURRENCE DATA STRUCTURE",
    "ADAM OTHER",
    "REFERENCE DATA STRUCTURE",
]
DatasetSubClass = Literal[
    "TIME-TO-EVENT", "NON-COMPARTMENTAL ANALYSIS", "ADVERSE EVENT", "POPULATION PHARMACOKINETIC ANALYSIS"
]

NAME_PATTERN = r"^[A-Z][A-Z0-9_]{0,7}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)


class Study(_Model):
    """Study-level identification (ODM Study / GlobalVariables)."""

    oid: str
    name: str  # StudyName, also STUDYID
    protocol_name: str
    description: str
    sponsor: str | None = None
    # Date used for reproducible file headers (XPT created/modified, Dataset-JSON creation
    # date-time, define.xml CreationDateTime).  Never the wall clock.
    metadata_datetime: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


class Standard(_Model):
    """A standard the study declares (def:Standard): an IG or a CT package."""

    oid: str
    name: Literal["SDTMIG", "ADaMIG", "ADaMIG-NCA", "ADaM-OCCDSIG", "CDISC/NCI"]
    type: Literal["IG", "CT"]
    version: str
    publishing_set: Literal["SDTM", "ADaM", "DEFINE-XML"] | None = None
    status: Literal["Final", "Draft", "Provisional"] = "Final"
    # For CT: the file name of the NCI EVS export this package corresponds to (looked up in the
    # CT folder given at run time; the product does not ship the CT files).
    ct_file: str | None = None

    @model_validator(mode="after")
    def _ct_has_publishing_set(self) -> "Standard":
        if self.type == "CT" and self.publishing_set is None:
            raise ValueError("a CT standard needs publishing_set (SDTM, ADaM or DEFINE-XML)")
        return self


class Document(_Model):
    """A document define.xml points to (def:leaf): the aCRF or a supplemental document."""

    oid: str  # e.g. LF.acrf
    title: str
    href: str
    kind: Literal["AnnotatedCRF", "SupplementalDoc", "Other"]
    # Which define.xml lists it: Tabulation (aCRF, SDRG), Analysis (ADRG), or None for both.
    purpose: Literal["Tabulation", "Analysis"] | None = None


class DocumentRef(_Model):
    """A reference from a method, comment or origin to (pages of) a document."""

    document: str  # Document.oid
    pages: str | None = None  # e.g. "12 14" (PhysicalRef page list) or "12-14"
    page_type: Literal["PhysicalRef", "NamedDestination"] = "PhysicalRef"


class Dictionary(_Model):
    """An external dictionary (ExternalCodeList), e.g. MedDRA, WHODrug."""

    oid: str
    name: str
    dictionary: str  # MEDDRA, WHODRUG, ...
    version: str
    href: str | None = None
    data_type: DataType = "text"


class Method(_Model):
    """A derivation method (MethodDef)."""

    oid: str  # MT.<...>
    name: str
    type: MethodType = "Computation"
    description: str
    expression_context: str | None = None
    expression: str | None = None
    documents: list[DocumentRef] = Field(default_factory=list)


class Comment(_Model):
    """A comment (def:CommentDef)."""

    oid: str  # COM.<...>
    description: str
    documents: list[DocumentRef] = Field(default_factory=list)


class CodelistTerm(_Model):
    """One term of a codelist."""

    submission_value: str
    decode: str | None = None
    nci_code: str | None = None  # C-code of the term; None for a sponsor term
    extended: bool = False  # def:ExtendedValue="Yes": sponsor term added to an extensible list
    order: int | None = None
    rank: float | None = None


class Codelist(_Model):
    """A codelist (CodeList): CDISC CT subset or sponsor list, or a pointer to a dictionary."""

    oid: str  # CL.<...>
    name: str
    data_type: Literal["text", "integer", "float"] = "text"
    nci_code: str | None = None  # C-code of the CDISC codelist this one subsets
    extensible: bool | None = None
    standard: str | None = None  # Standard.oid of the CT package
    dictionary: str | None = None  # Dictionary.oid when this is an ExternalCodeList
    comment: str | None = None
    terms: list[CodelistTerm] = Field(default_factory=list)

    @model_validator(mode="after")
    def _terms_or_dictionary(self) -> "Codelist":
        if self.dictionary and self.terms:
            raise ValueError("a codelist is either an external dictionary or a list of terms, not both")
        if not self.dictionary and not self.terms:
            raise ValueError("a codelist needs terms (or a dictionary)")
        values = [t.submission_value for t in self.terms]
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ValueError(f"duplicate submission values: {', '.join(dupes)}")
        return self

    def values(self) -> list[str]:
        return [t.submission_value for t in self.terms]


class WhereCondition(_Model):
    """One condition of a where clause (a RangeCheck); conditions of one clause are AND-ed."""

    dataset: str | None = None  # defaults to the dataset of the value-level entry
    variable: str
    comparator: Comparator = "EQ"
    values: list[str]

    @model_validator(mode="after")
    def _arity(self) -> "WhereCondition":
        if self.comparator in ("EQ", "NE", "LT", "LE", "GT", "GE") and len(self.values) != 1:
            raise ValueError(f"comparator {self.comparator} takes exactly one value")
        if not self.values:
            raise ValueError("a condition needs at least one value")
        return self


class WhereClause(_Model):
    """A def:WhereClauseDef: an AND-group of conditions."""

    oid: str  # WC.<...>
    conditions: list[WhereCondition]
    comment: str | None = None


class Origin(_Model):
    """def:Origin."""

    type: OriginType
    source: OriginSource | None = None
    # For Predecessor: the source variable ("DM.AGE"); for Collected: free text or None.
    description: str | None = None
    documents: list[DocumentRef] = Field(default_factory=list)


class ValueLevel(_Model):
    """A value-level metadata entry: the attributes of ``variable`` where ``where`` holds."""

    variable: str
    where: str | list[WhereCondition]  # WhereClause.oid, or the conditions inline
    label: str | None = None
    data_type: DataType
    length: int | None = None
    significant_digits: int | None = None
    display_format: str | None = None
    codelist: str | None = None
    origin: Origin
    method: str | None = None
    comment: str | None = None
    mandatory: bool = False
    order: int | None = None


class Variable(_Model):
    """A dataset variable (ItemRef + ItemDef)."""

    name: str = Field(pattern=NAME_PATTERN)
    label: str = Field(max_length=40)
    data_type: DataType
    # Spec length: the upper bound the data must fit.  The written length (and the length in
    # define.xml) is the longest value actually present, per the FDA rule.
    length: int | None = Field(default=None, ge=1, le=200)
    significant_digits: int | None = None
    display_format: str | None = None  # SAS format, e.g. DATE9. for numeric ADaM dates
    core: Core | None = None  # SDTM Req/Exp/Perm; ADaM Req/Cond/Perm
    origin: Origin
    codelist: str | None = None  # Codelist.oid
    method: str | None = None  # Method.oid
    comment: str | None = None  # Comment.oid
    role: str | None = None  # Identifier, Topic, Timing, ... (SDTM only)
    order: int | None = None  # set from position in the file when omitted
    mandatory: bool | None = None  # defaults from core (Req -> Yes)
    has_value_level: bool = False  # set by the loader when value_level entries name this variable

    @field_validator("label")
    @classmethod
    def _ascii_label(cls, v: str) -> str:
        if not v.isascii():
            raise ValueError("label must be ASCII")
        return v

    @property
    def is_numeric(self) -> bool:
        return self.data_type in ("integer", "float") or (
            self.data_type in ("date", "datetime", "time") and self.display_format is not None
        )

    @property
    def is_mandatory(self) -> bool:
        return self.mandatory if self.mandatory is not None else self.core == "Req"


class Dataset(_Model):
    """A dataset (ItemGroupDef) with its variables and value-level metadata."""

    name: str = Field(pattern=NAME_PATTERN)
    label: str = Field(max_length=40)
    dataset_class: DatasetClass = Field(alias="class")
    subclass: DatasetSubClass | None = None
    structure: str
    keys: list[str]
    purpose: Purpose
    repeating: bool = True
    reference_data: bool = False
    standard: str | None = None  # Standard.oid (IG)
    domain: str | None = None  # the DOMAIN value for SDTM domains (e.g. "AE"); None for SUPP--, ADaM
    comment: str | None = None
    non_standard: bool = False
    variables: list[Variable]
    value_level: list[ValueLevel] = Field(default_factory=list)
    # Methods and comments declared in this file; merged into the study-wide lists by the loader.
    methods: list[Method] = Field(default_factory=list)
    comments: list[Comment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _variables_consistent(self) -> "Dataset":
        names = [v.name for v in self.variables]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate variables: {', '.join(dupes)}")
        missing = [k for k in self.keys if k not in names]
        if missing:
            raise ValueError(f"keys not among the variables: {', '.join(missing)}")
        for i, var in enumerate(self.variables, start=1):
            if var.order is None:
                var.order = i
        vl_vars = {vl.variable for vl in self.value_level}
        unknown = sorted(vl_vars - set(names))
        if unknown:
            raise ValueError(f"value_level names unknown variables: {', '.join(unknown)}")
        for var in self.variables:
            var.has_value_level = var.name in vl_vars
        return self

    def variable(self, name: str) -> Variable:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(f"{self.name} has no variable {name}")

    @property
    def variable_names(self) -> list[str]:
        return [v.name for v in sorted(self.variables, key=lambda v: v.order or 0)]

    def key_sequence(self, name: str) -> int | None:
        return self.keys.index(name) + 1 if name in self.keys else None


class StudySpec(_Model):
    """The whole study metadata: what ``load_specs`` returns."""

    study: Study
    standards: list[Standard]
    datasets: dict[str, Dataset]  # by dataset name, upper case
    codelists: dict[str, Codelist] = Field(default_factory=dict)  # by OID
    dictionaries: dict[str, Dictionary] = Field(default_factory=dict)
    methods: dict[str, Method] = Field(default_factory=dict)
    comments: dict[str, Comment] = Field(default_factory=dict)
    documents: dict[str, Document] = Field(default_factory=dict)
    where_clauses: dict[str, WhereClause] = Field(default_factory=dict)

    def dataset(self, name: str) -> Dataset:
        try:
            return self.datasets[name.upper()]
        except KeyError:
            raise KeyError(f"no spec for dataset {name.upper()}") from None

    def by_purpose(self, purpose: Purpose) -> list[Dataset]:
        return [d for d in self.datasets.values() if d.purpose == purpose]

    def standard(self, type_: str, publishing_set: str | None = None, name: str | None = None) -> Standard | None:
        for s in self.standards:
            if s.type == type_ and (publishing_set is None or s.publishing_set == publishing_set) and (
                name is None or s.name == name
            ):
                return s
        return None
