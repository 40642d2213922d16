"""The define view model: plain records the Jinja2 templates render (define.xml and define.html).

The builder (:mod:`cdisc_pipe.define.builder`) turns a :class:`~cdisc_pipe.spec.model.StudySpec` plus
the writers' :class:`~cdisc_pipe.written.WrittenDataset` facts into one :class:`DefineView`; both
templates read only this view, so the HTML shows exactly what the XML says.  Every field is already
decided (OIDs, order numbers, lengths): the templates contain no logic beyond loops and ``if``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PageRefView:
    """def:PDFPageRef: either a page list (``page_refs``) or a ``first``..``last`` range."""

    type: str  # PhysicalRef | NamedDestination
    page_refs: str | None = None
    first: int | None = None
    last: int | None = None


@dataclass
class DocRefView:
    """def:DocumentRef to a def:leaf, optionally with pages."""

    leaf_id: str
    pages: list[PageRefView] = field(default_factory=list)


@dataclass
class OriginView:
    """def:Origin."""

    type: str
    source: str | None = None
    description: str | None = None
    documents: list[DocRefView] = field(default_factory=list)


@dataclass
class ItemRefView:
    """ItemRef inside an ItemGroupDef or a def:ValueListDef."""

    item_oid: str
    order: int
    mandatory: bool
    key_sequence: int | None = None
    role: str | None = None
    method_oid: str | None = None
    where_clause_oid: str | None = None  # value-level ItemRefs only


@dataclass
class ItemDefView:
    """ItemDef (a variable, or a value-level definition of one)."""

    oid: str
    name: str
    data_type: str
    length: int | None
    sas_field_name: str
    description: str | None
    origin: OriginView | None
    significant_digits: int | None = None
    display_format: str | None = None
    codelist_oid: str | None = None
    value_list_oid: str | None = None
    comment_oid: str | None = None
    dataset: str = ""  # for the HTML view
    where_clause_oid: str | None = None  # value-level definitions: the clause that selects them


@dataclass
class ItemGroupView:
    """ItemGroupDef (a dataset) with its archive leaf."""

    oid: str
    name: str
    domain: str | None
    label: str
    structure: str
    purpose: str
    repeating: bool
    reference_data: bool
    class_name: str
    subclass: str | None
    standard_oid: str | None
    non_standard: bool
    has_no_data: bool
    comment_oid: str | None
    leaf_id: str
    href: str
    records: int
    keys: list[str]
    item_refs: list[ItemRefView]


@dataclass
class RangeCheckView:
    """One RangeCheck of a where clause: ``dataset.variable comparator values``."""

    comparator: str
    item_oid: str
    values: list[str]
    dataset: str
    variable: str


@dataclass
class WhereClauseView:
    """def:WhereClauseDef (its RangeChecks are AND-ed)."""

    oid: str
    checks: list[RangeCheckView]
    comment_oid: str | None = None


@dataclass
class ValueListView:
    """def:ValueListDef for one variable of one dataset."""

    oid: str
    dataset: str
    variable: str
    item_refs: list[ItemRefView]


@dataclass
class TermView:
    """CodeListItem (with decode) or EnumeratedItem (without)."""

    coded_value: str
    decode: str | None
    nci_code: str | None
    extended: bool
    order: int | None
    rank: float | None


@dataclass
class ExternalView:
    """ExternalCodeList (MedDRA, WHODrug, ...)."""

    dictionary: str
    version: str
    href: str | None


@dataclass
class CodeListView:
    """CodeList: CT subset, sponsor list or external dictionary."""

    oid: str
    name: str
    data_type: str
    standard_oid: str | None
    non_standard: bool
    comment_oid: str | None
    nci_code: str | None
    enumerated: bool  # EnumeratedItem (no decodes) rather than CodeListItem
    terms: list[TermView]
    external: ExternalView | None
    used_by: list[str] = field(default_factory=list)  # "DS.VAR" names, for the HTML view


@dataclass
class ExpressionView:
    """FormalExpression of a method."""

    context: str
    text: str


@dataclass
class MethodView:
    """MethodDef."""

    oid: str
    name: str
    type: str
    description: str
    expressions: list[ExpressionView]
    documents: list[DocRefView]
    used_by: list[str] = field(default_factory=list)


@dataclass
class CommentView:
    """def:CommentDef."""

    oid: str
    description: str
    documents: list[DocRefView]
    used_by: list[str] = field(default_factory=list)


@dataclass
class LeafView:
    """def:leaf for a document."""

    id: str
    href: str
    title: str
    kind: str


@dataclass
class StandardView:
    """def:Standard."""

    oid: str
    name: str
    type: str
    version: str
    status: str
    publishing_set: str | None
    comment_oid: str | None = None


@dataclass
class DefineView:
    """Everything one define.xml (and its define.html) says."""

    file_oid: str
    creation_datetime: str
    originator: str | None
    source_system: str
    source_system_version: str
    study_oid: str
    study_name: str
    study_description: str
    protocol_name: str
    mdv_oid: str
    mdv_name: str
    mdv_description: str
    purpose: str
    standards: list[StandardView]
    acrf_leaf_ids: list[str]
    supplemental_leaf_ids: list[str]
    value_lists: list[ValueListView]
    where_clauses: list[WhereClauseView]
    item_groups: list[ItemGroupView]
    item_defs: list[ItemDefView]
    codelists: list[CodeListView]
    methods: list[MethodView]
    comments: list[CommentView]
    leaves: list[LeafView]

    def lookups(self) -> dict[str, dict]:
        """OID-indexed lookups for the HTML template (item defs, codelists, methods, ...)."""
        return {
            "item_defs": {i.oid: i for i in self.item_defs},
            "codelists": {c.oid: c for c in self.codelists},
            "methods": {m.oid: m for m in self.methods},
            "comments": {c.oid: c for c in self.comments},
            "leaves": {leaf.id: leaf for leaf in self.leaves},
            "where_clauses": {w.oid: w for w in self.where_clauses},
            "value_lists": {v.oid: v for v in self.value_lists},
            "standards": {s.oid: s for s in self.standards},
        }
