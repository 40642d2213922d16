"""Build define.xml (Define-XML 2.1 on ODM 1.3.2) and define.html from the spec and the written data.

The spec says what each dataset and variable *means* (class, structure, keys, origin, method,
codelist, value-level metadata); the writers' :class:`~cdisc_pipe.written.WrittenDataset` records
say what was actually *written* (which datasets and variables, their order, labels, types and
lengths).  define.xml must agree with the files, so:

- only written datasets appear; a spec variable that was not written is left out (its value-level
  metadata too); a written variable or dataset with no spec is a problem;
- ItemRef OrderNumber is the written position, ItemDef Length the written length, Description the
  written label (a label that differs from the spec is a problem);
- codelists, methods, comments and where clauses are emitted only when something emitted refers to
  them.

Everything that is wrong or missing is collected as :class:`~cdisc_pipe.errors.Problem` values and
returned with the result; rendering never stops half-way.  Both templates are Jinja2 with
autoescaping on, so every text taken from specs or data is escaped; characters XML 1.0 cannot carry
(control characters) are replaced and reported.  No wall clock: CreationDateTime is the spec's
``study.metadata_datetime``; the bytes are a pure function of the inputs.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable, Literal
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined

from cdisc_pipe import __version__
from cdisc_pipe.errors import Problem
from cdisc_pipe.spec.load import where_clause_oid
from cdisc_pipe.spec.model import (
    Codelist,
    Dataset,
    DocumentRef,
    Method,
    Origin,
    StudySpec,
    ValueLevel,
    Variable,
    WhereClause,
)
from cdisc_pipe.written import WrittenColumn, WrittenDataset
from cdisc_pipe.define.view import (
    CodeListView,
    CommentView,
    DefineView,
    DocRefView,
    ExpressionView,
    ExternalView,
    ItemDefView,
    ItemGroupView,
    ItemRefView,
    LeafView,
    MethodView,
    OriginView,
    PageRefView,
    RangeCheckView,
    StandardView,
    TermView,
    ValueListView,
    WhereClauseView,
)

PurposeName = Literal["Tabulation", "Analysis"]

DEFINE_VERSION = "2.1.0"
STYLESHEET = "define2-1.xsl"

# Datasets are listed by class (the order reviewers expect: trial design and special purpose first,
# then the general observation classes, relationships last), then by name.  ADSL's class comes
# first among ADaM classes.
CLASS_ORDER = [
    "TRIAL DESIGN",
    "SPECIAL PURPOSE",
    "INTERVENTIONS",
    "EVENTS",
    "FINDINGS",
    "FINDINGS ABOUT",
    "RELATIONSHIP",
    "STUDY REFERENCE",
    "SUBJECT LEVEL ANALYSIS DATASET",
    "OCCURRENCE DATA STRUCTURE",
    "BASIC DATA STRUCTURE",
    "REFERENCE DATA STRUCTURE",
    "ADAM OTHER",
]

# The IG each purpose is described by when a dataset does not name its standard.
PURPOSE_IG = {"Tabulation": ("SDTMIG",), "Analysis": ("ADaMIG", "ADaMIG-NCA", "ADaM-OCCDSIG")}
# CT publishing sets relevant to each define (ADaM datasets also carry SDTM terms).
PURPOSE_CT = {"Tabulation": ("SDTM", "DEFINE-XML"), "Analysis": ("ADaM", "SDTM", "DEFINE-XML")}

# ExternalCodeList/@Dictionary values from the Define-XML CT codelist C66788 (Dictionary Name);
# spec dictionary codes are matched case-insensitively, WHODrug's usual names map to WHODD, ISO 3166-1 (alpha-3)
# to ISO 3166.
DICTIONARY_NAMES = {
    "CDISC CT": "CDISC CT", "COSTART": "COSTART", "CTCAE": "CTCAE", "D-U-N-S NUMBER": "D-U-N-S NUMBER",
    "ICD": "ICD", "ICD-O": "ICD-O", "ISO 21090": "ISO 21090", "ISO 3166": "ISO 3166", "LOINC": "LOINC",
    "MED-RT": "MED-RT", "MEDDRA": "MedDRA", "SNOMED": "SNOMED", "UNII": "UNII",
    "WHO ATC CLASSIFICATION SYSTEM": "WHO ATC CLASSIFICATION SYSTEM", "WHOART": "WHOART", "WHODD": "WHODD",
    "WHODRUG": "WHODD", "WHODRUG GLOBAL": "WHODD", "WHO DRUG": "WHODD",
    "ISO 3166-1": "ISO 3166", "ISO 3166-1 ALPHA-3": "ISO 3166", "ISO3166": "ISO 3166",
}

# Characters XML 1.0 cannot represent at all (C0 controls other than TAB, LF, CR; lone surrogates;
# U+FFFE/U+FFFF).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class DefineResult:
    """A rendered define: ``xml`` (define.xml bytes), ``html`` (define.html bytes) and the problems
    found on the way (spec gaps, spec/data mismatches).  Schema validity is checked separately by
    :func:`cdisc_pipe.define.validate_define`."""

    xml: bytes
    html: bytes
    problems: list[Problem]
    view: DefineView


def _env() -> Environment:
    # autoescape=True for every template: XML and HTML alike; StrictUndefined turns a template
    # typo into an error instead of an empty attribute.
    env = Environment(
        loader=PackageLoader("cdisc_pipe.define", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["yn"] = lambda b: "Yes" if b else "No"
    return env


_ENV: Environment | None = None


def environment() -> Environment:
    """The (lazily created, stateless) Jinja2 environment of the define templates."""
    global _ENV
    if _ENV is None:
        _ENV = _env()
    return _ENV


def build_define(
    spec: StudySpec,
    written: list[WrittenDataset],
    purpose: PurposeName,
    ct_dir: Path | None = None,
    extra_methods: list[Method] | None = None,
) -> DefineResult:
    """Render define.xml and define.html for the ``purpose`` datasets in ``written``.

    Args:
        spec: the study metadata.
        written: what the writers wrote (datasets of other purposes are ignored).
        purpose: ``"Tabulation"`` (SDTM) or ``"Analysis"`` (ADaM).
        ct_dir: folder with the CDISC CT files; when given, every emitted codelist is checked
            against the CT package it declares (problems are added).  Without it CT is not checked.
        extra_methods: methods known only at run time (e.g. the NCA method description); they
            replace spec methods of the same OID.

    Returns:
        :class:`DefineResult` with the bytes of both files and every problem found.
    """
    view, problems = build_view(spec, written, purpose, extra_methods=extra_methods)
    if ct_dir is not None:
        problems.extend(_check_ct(spec, view, Path(ct_dir)))
    return DefineResult(xml=render_xml(view), html=render_html(view), problems=problems, view=view)


def render_xml(view: DefineView) -> bytes:
    """define.xml bytes (UTF-8) for a view."""
    text = environment().get_template("define.xml.j2").render(d=view, stylesheet=STYLESHEET)
    return text.encode("utf-8")


def render_html(view: DefineView) -> bytes:
    """define.html bytes (UTF-8, self-contained) for a view."""
    text = environment().get_template("define.html.j2").render(d=view, lk=view.lookups())
    return text.encode("utf-8")


def write_define(result: DefineResult, folder: Path) -> list[Path]:
    """Write ``define.xml`` and ``define.html`` into ``folder`` (each via a temporary file renamed
    into place).  Returns the two paths."""
    folder = Path(folder)
    out = []
    for name, data in (("define.xml", result.xml), ("define.html", result.html)):
        path = folder / name
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(path)
        out.append(path)
    return out


# ---------------------------------------------------------------------------------------------
# view building
# ---------------------------------------------------------------------------------------------


def _spec_file(ds: Dataset) -> str:
    return f"specs/{'sdtm' if ds.purpose == 'Tabulation' else 'adam'}/{ds.name.lower()}.yaml"


def _leaf_href(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def _pages(ref: DocumentRef) -> list[PageRefView]:
    if not ref.pages:
        return []
    text = ref.pages.strip()
    m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
    if ref.page_type == "PhysicalRef" and m:
        return [PageRefView(type="PhysicalRef", first=int(m.group(1)), last=int(m.group(2)))]
    return [PageRefView(type=ref.page_type, page_refs=" ".join(text.split()))]


def _doc_refs(refs: Iterable[DocumentRef]) -> list[DocRefView]:
    return [DocRefView(leaf_id=r.document, pages=_pages(r)) for r in refs]


# def:Origin/@Source (Define-XML CT C170450 Origin Source: Investigator, Sponsor, Subject, Vendor) when
# the spec names none: whoever assigns, derives, copies (Predecessor) or takes a value from the protocol
# is the sponsor.  A Collected origin needs the spec's source (who recorded it: Subject, Investigator or
# Vendor; reported when missing); Not Available and Other have no responsible party.
DEFAULT_ORIGIN_SOURCE = {"Assigned": "Sponsor", "Derived": "Sponsor", "Predecessor": "Sponsor", "Protocol": "Sponsor"}


def _origin(origin: Origin) -> OriginView:
    return OriginView(type=origin.type, source=origin.source or DEFAULT_ORIGIN_SOURCE.get(origin.type),
                      description=origin.description, documents=_doc_refs(origin.documents))


def _where_suffix(oid: str, dataset: str) -> str:
    """The part of a where clause OID that names its condition (``WC.LB.LBTESTCD.EQ.ALB`` ->
    ``LBTESTCD.EQ.ALB``), used to build the value-level ItemDef OID."""
    for prefix in (f"WC.{dataset}.", "WC."):
        if oid.startswith(prefix):
            return oid[len(prefix):]
    return oid


# Key variables that identify a subject (or a pool of subjects) and the study: a dataset keyed by
# these alone holds one record per subject.
_SUBJECT_KEYS = {"USUBJID", "SUBJID", "POOLID"}
_NON_REPEATING_KEYS = _SUBJECT_KEYS | {"STUDYID"}


def repeating_from_keys(keys: Iterable[str]) -> bool | None:
    """Define-XML ItemGroupDef/@Repeating from a dataset's key variables.

    ``No`` when the dataset holds at most one record per subject (keys: the study and subject
    identifiers only, e.g. DM, ADSL) or no subject data at all (no subject identifier among the
    keys: trial design and other reference data, e.g. TS, TA); ``Yes`` when a subject can have
    several records (another key besides the identifiers: AE, LB, BDS, SUPP--, RELREC).  ``None``
    without keys (then the spec's ``repeating`` is used).
    """
    names = {k.strip().upper() for k in keys if k and k.strip()}
    if not names:
        return None
    if not names & _SUBJECT_KEYS:
        return False
    return bool(names - _NON_REPEATING_KEYS)


def _define_data_type(var_type: str, numeric: bool) -> str:
    # A numeric (SAS) date/datetime/time is a number with a display format; Define-XML's date types
    # are for ISO 8601 text, so the number is an integer.
    if numeric and var_type in ("date", "datetime", "time"):
        return "integer"
    return var_type


class _Builder:
    """One define being built: collects emitted OIDs and problems."""

    def __init__(self, spec: StudySpec, purpose: PurposeName, extra_methods: list[Method] | None):
        self.spec = spec
        self.purpose = purpose
        self.problems: list[Problem] = []
        self.methods: dict[str, Method] = dict(spec.methods)
        self.extra_oids = [m.oid for m in extra_methods or []]
        for m in extra_methods or []:
            self.methods[m.oid] = m
        self.used_codelists: dict[str, list[str]] = {}
        self.codelist_item_types: dict[str, set[str]] = {}  # codelist OID -> DataTypes of its items
        self.used_methods: dict[str, list[str]] = {}
        self.used_comments: dict[str, list[str]] = {}
        self.used_where: dict[str, str] = {}  # where clause OID -> dataset of the value list
        self.where_defs: dict[str, WhereClause] = dict(spec.where_clauses)
        self.written_columns: dict[str, dict[str, WrittenColumn]] = {}
        self.generated_comments: dict[str, str] = {}  # comment OID -> text made here (standards)

    def problem(self, file: str, message: str, entry: str | None = None, value: str | None = None,
                hint: str | None = None) -> None:
        self.problems.append(Problem(file, message, entry=entry, value=value, hint=hint))

    def safe_href(self, href: str, file: str, entry: str) -> str:
        """``href`` if it is a relative path or an http(s) URL; anything else (``javascript:``,
        ``file:``, ``data:`` ...) would be a live link in define.html and the stylesheet's view, so it
        is replaced by ``#`` and reported."""
        scheme = urlsplit(href.strip()).scheme.lower()
        if scheme in ("", "http", "https"):
            return href
        self.problem(file, "link with a scheme other than http(s) or a relative path: replaced by '#'",
                     entry=entry, value=href)
        return "#"

    def _use(self, pool: dict[str, list[str]], oid: str | None, who: str) -> None:
        if oid is not None:
            pool.setdefault(oid, []).append(who)

    # -- datasets --------------------------------------------------------------------------

    def datasets(self, written: list[WrittenDataset]) -> list[tuple[Dataset, WrittenDataset]]:
        chosen: list[tuple[Dataset, WrittenDataset]] = []
        seen: set[str] = set()
        for w in written:
            if w.purpose != self.purpose:
                continue
            name = w.name.upper()
            if name in seen:
                self.problem(w.xpt_path, "dataset written twice", value=name)
                continue
            seen.add(name)
            ds = self.spec.datasets.get(name)
            if ds is None:
                self.problem(w.xpt_path, "written dataset has no spec: left out of define.xml", value=name,
                             hint=f"Add specs/{'sdtm' if self.purpose == 'Tabulation' else 'adam'}/{name.lower()}.yaml")
                continue
            if ds.purpose != self.purpose:
                self.problem(_spec_file(ds), f"spec purpose is {ds.purpose} but the dataset was written as "
                             f"{self.purpose}", entry="purpose", value=name)
            chosen.append((ds, w))
            self.written_columns[name] = {c.name.upper(): c for c in w.columns}
        rank = {c: i for i, c in enumerate(CLASS_ORDER)}
        chosen.sort(key=lambda p: (rank.get(p[0].dataset_class, len(rank)), p[0].name))
        return chosen

    def standard_oid(self, ds: Dataset) -> str | None:
        if ds.non_standard:
            return None
        if ds.standard:
            return ds.standard
        for name in PURPOSE_IG[self.purpose]:
            std = self.spec.standard("IG", name=name)
            if std is not None:
                return std.oid
        self.problem(_spec_file(ds), "no implementation guide standard for this dataset", entry="standard",
                     hint="Set standard: or declare the IG in specs/study.yaml standards")
        return None

    def item_group(self, ds: Dataset, w: WrittenDataset) -> tuple[ItemGroupView, list[ItemDefView]]:
        f = _spec_file(ds)
        spec_vars = {v.name: v for v in ds.variables}
        columns = sorted(w.columns, key=lambda c: (c.order or 0))
        if any(c.order == 0 for c in w.columns):
            columns = list(w.columns)  # order not recorded: the tuple order is the file order
        written_names = [c.name.upper() for c in columns]
        keys = [k for k in ds.keys if k in written_names]
        for k in ds.keys:
            if k not in written_names:
                self.problem(f, "key variable not written: left out of the keys", entry="keys", value=k)
        if w.label != ds.label:
            self.problem(w.xpt_path, "dataset label differs from the spec (define.xml shows the written one)",
                         entry=ds.name, value=f"{w.label!r} vs spec {ds.label!r}")
        refs: list[ItemRefView] = []
        items: list[ItemDefView] = []
        for pos, col in enumerate(columns, start=1):
            order = col.order or pos
            name = col.name.upper()
            oid = f"IT.{ds.name}.{name}"
            var = spec_vars.get(name)
            who = f"{ds.name}.{name}"
            if var is None:
                self.problem(w.xpt_path, "written variable is not in the spec: no origin, method or codelist in "
                             "define.xml", entry=ds.name, value=name, hint=f"Add {name} to {f}")
                refs.append(ItemRefView(item_oid=oid, order=order, mandatory=False))
                items.append(ItemDefView(
                    oid=oid, name=name, data_type="text" if col.type == "text" else "float", length=col.length,
                    sas_field_name=name, description=col.label, origin=None, display_format=col.display_format,
                    dataset=ds.name))
                continue
            refs.append(self.item_ref(ds, var, oid, order, keys))
            items.append(self.item_def(ds, var, col, oid, who,
                                       transliterated=int((w.extra or {}).get("transliterated", {}).get(name, 0)),
                                       json_file=Path(w.json_path).name if w.json_path else None))
        self._check_crf_pages(ds, [spec_vars[c.name.upper()] for c in columns if c.name.upper() in spec_vars])
        floats = [i.name for i in items if i.data_type == "float" and i.significant_digits is None]
        if floats:
            self.problem(f, "float variables without significant_digits (define.xml SignificantDigits)",
                         entry="variables", value=", ".join(floats))
        return ItemGroupView(
            oid=f"IG.{ds.name}", name=ds.name, domain=ds.domain, label=w.label, structure=ds.structure,
            purpose=self.purpose, repeating=self.repeating(ds), reference_data=ds.reference_data,
            class_name=ds.dataset_class, subclass=ds.subclass, standard_oid=self.standard_oid(ds),
            non_standard=ds.non_standard, has_no_data=w.records == 0, comment_oid=ds.comment,
            leaf_id=f"LF.{ds.name}", href=_leaf_href(w.xpt_path), records=w.records, keys=keys, item_refs=refs,
        ), items

    def repeating(self, ds: Dataset) -> bool:
        """ItemGroupDef/@Repeating from the dataset's keys (:func:`repeating_from_keys`); a ``repeating:``
        the spec states explicitly and that the keys contradict is reported, and the keys win."""
        derived = repeating_from_keys(ds.keys)
        if derived is None:
            return ds.repeating
        if "repeating" in ds.model_fields_set and ds.repeating != derived:
            self.problem(_spec_file(ds), f"repeating: {str(ds.repeating).lower()} contradicts the keys "
                         f"({', '.join(ds.keys)}): define.xml says Repeating=\"{'Yes' if derived else 'No'}\"",
                         entry="repeating", hint="Remove repeating: (it follows from the keys) or fix the keys")
        return derived

    def _check_crf_pages(self, ds: Dataset, variables: list[Variable]) -> None:
        # Define-XML 2.1: Collected SDTM items carry their aCRF pages.  Only asked for when the
        # study declares an aCRF and the data were collected on it (Investigator/Subject), and
        # reported once per dataset to keep the list readable.
        if self.purpose != "Tabulation" or not any(d.kind == "AnnotatedCRF" for d in self.spec.documents.values()):
            return
        bare = [v.name for v in variables if v.origin.type == "Collected" and v.origin.source in
                ("Investigator", "Subject") and not v.origin.documents and not v.has_value_level]
        if bare:
            self.problem(_spec_file(ds), "Collected variables without aCRF page references (origin.documents)",
                         entry="variables", value=", ".join(bare),
                         hint="Add documents: [{document: LF.acrf, pages: \"N\"}] to each origin")

    def item_ref(self, ds: Dataset, var: Variable, oid: str, order: int, keys: list[str]) -> ItemRefView:
        f = _spec_file(ds)
        who = f"{ds.name}.{var.name}"
        if var.origin.type == "Derived" and var.method is None:
            self.problem(f, "Derived variable has no method (define.xml needs a MethodDef)",
                         entry=f"variables[{var.name}]", hint="Add method: MT.<...> and define the method")
        self._use(self.used_methods, var.method, who)
        return ItemRefView(
            item_oid=oid, order=order, mandatory=var.is_mandatory,
            key_sequence=keys.index(var.name) + 1 if var.name in keys else None,
            role=var.role if self.purpose == "Tabulation" else None, method_oid=var.method,
        )

    def item_def(self, ds: Dataset, var: Variable, col: WrittenColumn, oid: str, who: str, *,
                 transliterated: int = 0, json_file: str | None = None) -> ItemDefView:
        """``transliterated``: rows whose text the XPT file holds transliterated to ASCII (the
        Dataset-JSON file ``json_file`` keeps the original): said in the variable's comment."""
        f = _spec_file(ds)
        entry = f"variables[{var.name}]"
        numeric = col.type == "numeric"
        if numeric != var.is_numeric:
            self.problem(f, f"written type is {col.type} but the spec says {var.data_type}"
                         + (f" with display format {var.display_format}" if var.display_format else ""),
                         entry=who)
        if col.label != var.label:
            self.problem(f, "written label differs from the spec (define.xml shows the written one)",
                         entry=who, value=f"{col.label!r} vs spec {var.label!r}")
        if not numeric and var.length is not None and col.length > var.length:
            self.problem(f, f"written length {col.length} exceeds the spec length {var.length}",
                         entry=who)
        self._check_origin(f, entry, var.origin)
        self._use(self.used_codelists, var.codelist, who)
        if var.codelist:
            self.codelist_item_types.setdefault(var.codelist, set()).add(_define_data_type(var.data_type, numeric))
        comment = var.comment
        if transliterated:
            comment = f"COM.{ds.name}.{var.name}.ASCII"
            base = self.spec.comments.get(var.comment) if var.comment else None
            note = (f"{transliterated} value(s) of {var.name} hold non-ASCII text: the XPT file ({ds.name.lower()}.xpt) "
                    f"holds them transliterated to ASCII (SAS transport v5 is ASCII only; characters without an "
                    f"ASCII equivalent became '?')"
                    + (f"; the Dataset-JSON file ({json_file}) keeps the original UTF-8 text." if json_file else "."))
            self.generated_comments[comment] = f"{base.description} {note}" if base else note
        self._use(self.used_comments, comment, who)
        return ItemDefView(
            oid=oid, name=var.name, data_type=_define_data_type(var.data_type, numeric), length=col.length,
            sas_field_name=var.name, description=col.label, origin=_origin(var.origin),
            significant_digits=var.significant_digits,
            display_format=col.display_format or var.display_format, codelist_oid=var.codelist,
            comment_oid=comment, dataset=ds.name,
        )

    def _check_origin(self, file: str, entry: str, origin: Origin) -> None:
        if origin.type == "Collected" and origin.source is None:
            self.problem(file, "Collected origin without a source (Subject, Investigator or Vendor)",
                         entry=entry + ".origin")
        if origin.type == "Predecessor" and not origin.description:
            self.problem(file, "Predecessor origin must name its source variable in description",
                         entry=entry + ".origin", hint="e.g. description: DM.AGE")

    # -- value-level metadata --------------------------------------------------------------

    def value_lists(self, ds: Dataset, items: dict[str, ItemDefView]) -> tuple[list[ValueListView], list[ItemDefView]]:
        f = _spec_file(ds)
        by_var: dict[str, list[ValueLevel]] = {}
        for vl in ds.value_level:
            by_var.setdefault(vl.variable, []).append(vl)
        written = self.written_columns[ds.name]
        lists: list[ValueListView] = []
        vl_items: list[ItemDefView] = []
        for var in sorted(ds.variables, key=lambda v: v.order or 0):
            if var.name not in by_var or var.name not in written:
                continue
            parent = written[var.name]
            refs: list[ItemRefView] = []
            seen: set[str] = set()
            for i, vl in enumerate(by_var[var.name], start=1):
                entry = f"value_level[{var.name}#{i}]"
                wc = self._where(ds, vl, f, entry)
                if wc is None:
                    continue
                oid = f"IT.{ds.name}.{var.name}.{_where_suffix(wc.oid, ds.name)}"
                if oid in seen:
                    self.problem(f, "two value-level entries with the same where clause", entry=entry, value=wc.oid)
                    continue
                seen.add(oid)
                who = f"{ds.name}.{var.name} [{wc.oid}]"
                self._check_origin(f, entry, vl.origin)
                if vl.origin.type == "Derived" and vl.method is None:
                    self.problem(f, "Derived value-level entry has no method", entry=entry)
                self._use(self.used_methods, vl.method, who)
                self._use(self.used_codelists, vl.codelist, who)
                if vl.codelist:
                    self.codelist_item_types.setdefault(vl.codelist, set()).add(vl.data_type)
                self._use(self.used_comments, vl.comment, who)
                self.used_where[wc.oid] = ds.name
                length = self._vl_length(vl, parent, f, entry)
                # Mandatory: as the spec says; otherwise that of the variable (a variable present on
                # every record is present on every record of a subset).
                mandatory = vl.mandatory if "mandatory" in vl.model_fields_set else var.is_mandatory
                refs.append(ItemRefView(item_oid=oid, order=vl.order or i, mandatory=mandatory,
                                        method_oid=vl.method, where_clause_oid=wc.oid))
                vl_items.append(ItemDefView(
                    oid=oid, name=var.name, data_type=vl.data_type, length=length, sas_field_name=var.name,
                    description=vl.label or self._vl_description(ds, var, wc),
                    origin=_origin(vl.origin), significant_digits=vl.significant_digits,
                    display_format=vl.display_format, codelist_oid=vl.codelist, comment_oid=vl.comment,
                    dataset=ds.name, where_clause_oid=wc.oid))
            if refs:
                vl_oid = f"VL.{ds.name}.{var.name}"
                orders = [r.order for r in refs]
                if len(set(orders)) != len(orders):
                    self.problem(f, "value-level order numbers repeat", entry=f"value_level[{var.name}]")
                    for n, r in enumerate(refs, start=1):
                        r.order = n
                lists.append(ValueListView(oid=vl_oid, dataset=ds.name, variable=var.name, item_refs=refs))
                items[var.name].value_list_oid = vl_oid
        return lists, vl_items

    def _vl_description(self, ds: Dataset, var: Variable, wc: WhereClause) -> str:
        """Description of a value-level ItemDef the spec gives no ``label``: what its where clause
        selects, in words.  Values are shown by their codelist decode when the tested variable has one
        (``LBTESTCD EQ MCPROT``, ``LBSPEC EQ SERUM`` -> "Monoclonal Protein Measurement (Serum)"),
        else as they are; the first condition names the subject, the others qualify it.  Without any
        decode the variable's label is the subject: "Result or Finding in Original Units where RSTESTCD
        = OVRLRESP"."""
        words: list[str] = []
        decoded_first = False
        for n, cond in enumerate(wc.conditions):
            dsname = (cond.dataset or ds.name).upper()
            tested_ds = self.spec.datasets.get(dsname)
            tested = next((v for v in tested_ds.variables if v.name == cond.variable), None) if tested_ds else None
            cl = self.spec.codelists.get(tested.codelist) if tested is not None and tested.codelist else None
            decodes = {t.submission_value: t.decode for t in cl.terms if t.decode} if cl else {}
            shown = [decodes.get(v, v) for v in cond.values]
            if n == 0:
                decoded_first = bool(decodes) and all(v in decodes for v in cond.values)
            prefix = "" if dsname == ds.name else f"{dsname}."
            if cond.comparator in ("EQ", "IN") and (n > 0 or decoded_first):
                words.append(", ".join(shown))
            elif cond.comparator in ("EQ", "IN"):
                words.append(f"{prefix}{cond.variable} {'=' if len(shown) == 1 else 'in'} {', '.join(shown)}")
            elif cond.comparator in ("NE", "NOTIN"):
                words.append(f"{prefix}{cond.variable} not {', '.join(shown)}")
            else:
                sym = {"LT": "<", "LE": "<=", "GT": ">", "GE": ">="}[cond.comparator]
                words.append(f"{prefix}{cond.variable} {sym} {shown[0]}")
        if decoded_first:
            return words[0] + (f" ({', '.join(words[1:])})" if len(words) > 1 else "")
        return f"{var.label} where {' and '.join(words)}"

    def _vl_length(self, vl: ValueLevel, parent: WrittenColumn, f: str, entry: str) -> int | None:
        if parent.type == "text":
            # The spec length is an upper bound, like a variable's; a subset can never be longer than
            # the column it lives in, so the written length caps it.
            return min(vl.length, parent.length) if vl.length is not None else parent.length
        return vl.length if vl.length is not None else parent.length

    def _where(self, ds: Dataset, vl: ValueLevel, f: str, entry: str) -> WhereClause | None:
        if isinstance(vl.where, list):
            oid = where_clause_oid(ds.name, vl.where)
            wc = WhereClause(oid=oid, conditions=[c.model_copy(update={"dataset": c.dataset or ds.name})
                                                  for c in vl.where])
            self.where_defs.setdefault(oid, wc)
        else:
            wc = self.where_defs.get(vl.where)
            if wc is None:
                self.problem(f, "refers to an undefined where clause", entry=entry, value=vl.where)
                return None
        for cond in wc.conditions:
            dsname = (cond.dataset or ds.name).upper()
            if cond.variable not in self.written_columns.get(dsname, {}):
                self.problem(f, "where clause tests a variable that was not written: value-level entry left out",
                             entry=entry, value=f"{dsname}.{cond.variable}")
                return None
        return wc

    def where_clause_views(self) -> list[WhereClauseView]:
        out = []
        for oid, ds_name in self.used_where.items():
            wc = self.where_defs[oid]
            self._use(self.used_comments, wc.comment, oid)
            checks = []
            for c in wc.conditions:
                dsname = (c.dataset or ds_name).upper()
                checks.append(RangeCheckView(comparator=c.comparator, item_oid=f"IT.{dsname}.{c.variable}",
                                             values=list(c.values), dataset=dsname, variable=c.variable))
            out.append(WhereClauseView(oid=oid, checks=checks, comment_oid=wc.comment))
        return out

    # -- codelists, methods, comments, documents, standards -----------------------------------

    def codelist_views(self) -> list[CodeListView]:
        out = []
        for oid in sorted(self.used_codelists):
            users = self.used_codelists[oid]
            cl = self.spec.codelists.get(oid)
            if cl is None and oid in self.spec.dictionaries:
                # A variable pointing straight at a dictionary: the dictionary is the codelist.
                d = self.spec.dictionaries[oid]
                cl = Codelist(oid=oid, name=d.name, dictionary=oid,
                              data_type=d.data_type if d.data_type in ("text", "integer", "float") else "text")
            if cl is None:
                self.problem("specs/codelists", "codelist referred to but not defined", value=oid,
                             entry=", ".join(users))
                continue
            self._use(self.used_comments, cl.comment, oid)
            numeric_items = sorted(t for t in self.codelist_item_types.get(oid, ()) if t in ("integer", "float"))
            text_items = sorted(t for t in self.codelist_item_types.get(oid, ()) if t not in ("integer", "float"))
            if (cl.data_type == "text" and numeric_items) or (cl.data_type != "text" and text_items):
                self.problem("specs/codelists", f"codelist DataType {cl.data_type} does not match the DataType of "
                             "items using it", entry=oid, value=", ".join(numeric_items or text_items),
                             hint="Give the codelist the data_type of its variables")
            external = None
            if cl.dictionary:
                d = self.spec.dictionaries.get(cl.dictionary)
                if d is None:
                    self.problem("specs/codelists", "codelist refers to an undefined dictionary", entry=oid,
                                 value=cl.dictionary)
                    continue
                name = DICTIONARY_NAMES.get(d.dictionary.strip().upper())
                if name is None:
                    self.problem("specs/study.yaml", "dictionary name is not in the Define-XML Dictionary Name "
                                 "codelist (C66788)", entry=f"dictionaries[{d.oid}]", value=d.dictionary)
                    name = d.dictionary
                href = self.safe_href(d.href, "specs/study.yaml", f"dictionaries[{d.oid}]") if d.href else None
                external = ExternalView(dictionary=name, version=d.version, href=href)
            enumerated = all(t.decode is None for t in cl.terms)
            # OrderNumber: the spec's when it numbers any term, else the position in the spec's list
            # (the order a reviewer should read them in); Rank only where the spec ranks an ordinal list.
            numbered = any(t.order is not None for t in cl.terms)
            terms = [TermView(coded_value=t.submission_value, decode=t.decode if t.decode is not None else
                              t.submission_value, nci_code=t.nci_code, extended=t.extended,
                              order=t.order if numbered else n,
                              rank=int(t.rank) if t.rank is not None and float(t.rank).is_integer() else t.rank)
                     for n, t in enumerate(cl.terms, start=1)]
            out.append(CodeListView(
                oid=cl.oid, name=cl.name, data_type=cl.data_type, standard_oid=cl.standard,
                non_standard=cl.standard is None, comment_oid=cl.comment, nci_code=cl.nci_code,
                enumerated=enumerated, terms=terms, external=external, used_by=sorted(set(users))))
        return out

    def method_views(self) -> list[MethodView]:
        out = []
        for oid in sorted(self.used_methods):
            m = self.methods.get(oid)
            if m is None:
                self.problem("specs", "method referred to but not defined", value=oid,
                             entry=", ".join(self.used_methods[oid]))
                continue
            exprs = []
            if m.expression:
                if not m.expression_context:
                    self.problem("specs", "method expression without expression_context (e.g. Python, SAS)",
                                 entry=f"methods[{oid}]")
                exprs.append(ExpressionView(context=m.expression_context or "Python", text=m.expression))
            out.append(MethodView(oid=m.oid, name=m.name, type=m.type, description=m.description,
                                  expressions=exprs, documents=_doc_refs(m.documents),
                                  used_by=sorted(set(self.used_methods[oid]))))
        for oid in self.extra_oids:
            if oid not in self.used_methods:
                self.problem("define", "run-time method given but no variable refers to it", value=oid)
        return out

    def standard_comments(self, standards: list[StandardView], groups: list[ItemGroupView],
                          codelists: list[CodeListView]) -> None:
        """A def:CommentOID on every def:Standard (the "Documentation" of the standards table): the spec's
        comment ``COM.<standard OID>`` when there is one, else what this define.xml takes from it - the
        datasets following an implementation guide, the codelists subset from a CT package."""
        for s in standards:
            oid = f"COM.{s.oid}"
            s.comment_oid = oid
            self._use(self.used_comments, oid, s.oid)
            if oid in self.spec.comments:
                continue
            if s.type == "IG":
                names = [g.name for g in groups if g.standard_oid == s.oid]
                text = (f"{s.name} {s.version}: the implementation guide "
                        + (f"all {len(names)} datasets of this define.xml follow."
                           if len(names) == len(groups) else
                           f"{len(names)} dataset(s) of this define.xml follow ({', '.join(names)})."))
            else:
                used = [c.name for c in codelists if c.standard_oid == s.oid]
                what = {"SDTM": "SDTM", "ADaM": "ADaM", "DEFINE-XML": "Define-XML"}.get(s.publishing_set or "",
                                                                                        s.publishing_set or "")
                text = f"CDISC Controlled Terminology for {what}, release {s.version} (NCI EVS)"
                if used:
                    text += (f": {len(used)} codelist(s) of this define.xml are subsets of it ({', '.join(used)}); "
                             "terms carry their NCI codes, sponsor terms added to an extensible codelist are "
                             "marked as extended values.")
                elif s.publishing_set == "DEFINE-XML":
                    text += (": the values of the Define-XML attributes of this define.xml (standard names, types "
                             "and status, dataset classes and subclasses, origin types and sources, dictionary "
                             "names) are from it.")
                else:
                    text += ": declared for the study; no codelist of this define.xml is taken from it."
            self.generated_comments[oid] = text

    def comment_views(self) -> list[CommentView]:
        out = []
        for oid in sorted(self.used_comments):
            if oid in self.generated_comments and oid not in self.spec.comments:
                out.append(CommentView(oid=oid, description=self.generated_comments[oid], documents=[],
                                       used_by=sorted(set(self.used_comments[oid]))))
                continue
            c = self.spec.comments.get(oid)
            if c is None:
                self.problem("specs", "comment referred to but not defined", value=oid,
                             entry=", ".join(self.used_comments[oid]))
                continue
            out.append(CommentView(oid=c.oid, description=c.description, documents=_doc_refs(c.documents),
                                   used_by=sorted(set(self.used_comments[oid]))))
        return out

    def leaves(self) -> tuple[list[LeafView], list[str], list[str]]:
        docs = sorted((d for d in self.spec.documents.values() if d.purpose in (None, self.purpose)),
                      key=lambda d: d.oid)
        leaves = [LeafView(id=d.oid, href=self.safe_href(d.href, "specs/study.yaml", f"documents[{d.oid}]"),
                           title=d.title, kind=d.kind) for d in docs]
        acrf = [d.oid for d in docs if d.kind == "AnnotatedCRF"]
        supp = [d.oid for d in docs if d.kind == "SupplementalDoc"]
        return leaves, acrf, supp

    def standards(self, groups: list[ItemGroupView], codelists: list[CodeListView]) -> list[StandardView]:
        wanted: set[str] = {g.standard_oid for g in groups if g.standard_oid}
        wanted |= {c.standard_oid for c in codelists if c.standard_oid}
        for s in self.spec.standards:
            if s.type == "CT" and s.publishing_set in PURPOSE_CT[self.purpose]:
                wanted.add(s.oid)
        known = {s.oid for s in self.spec.standards}
        for oid in sorted(wanted - known):
            self.problem("specs/study.yaml", "standard referred to but not declared", value=oid)
        order = {"IG": 0, "CT": 1}
        chosen = [s for s in self.spec.standards if s.oid in wanted]
        chosen.sort(key=lambda s: (order.get(s.type, 2), s.name, s.publishing_set or "", s.version, s.oid))
        return [StandardView(oid=s.oid, name=s.name, type=s.type, version=s.version, status=s.status,
                             publishing_set=s.publishing_set) for s in chosen]


def build_view(
    spec: StudySpec,
    written: list[WrittenDataset],
    purpose: PurposeName,
    extra_methods: list[Method] | None = None,
) -> tuple[DefineView, list[Problem]]:
    """The :class:`DefineView` of one define and the problems found building it."""
    if purpose not in ("Tabulation", "Analysis"):
        raise ValueError(f"purpose must be Tabulation or Analysis, not {purpose!r}")
    b = _Builder(spec, purpose, extra_methods)
    pairs = b.datasets(written)
    groups: list[ItemGroupView] = []
    item_defs: list[ItemDefView] = []
    vl_item_defs: list[ItemDefView] = []
    value_lists: list[ValueListView] = []
    for ds, w in pairs:
        group, items = b.item_group(ds, w)
        b._use(b.used_comments, ds.comment, ds.name)
        lists, vl_items = b.value_lists(ds, {i.name: i for i in items})
        groups.append(group)
        item_defs.extend(items)
        value_lists.extend(lists)
        vl_item_defs.extend(vl_items)
    where = b.where_clause_views()
    codelists = b.codelist_views()
    methods = b.method_views()
    leaves, acrf, supp = b.leaves()
    standards = b.standards(groups, codelists)
    b.standard_comments(standards, groups, codelists)
    comments = b.comment_views()
    ig = next((s for s in standards if s.type == "IG"), None)
    st = spec.study
    label = "Tabulation (SDTM)" if purpose == "Tabulation" else "Analysis (ADaM)"
    view = DefineView(
        file_oid=f"{st.oid}.{purpose}.Define-XML_{DEFINE_VERSION}",
        creation_datetime=st.metadata_datetime,
        originator=st.sponsor,
        source_system="cdisc-pipe",
        source_system_version=__version__,
        study_oid=st.oid,
        study_name=st.name,
        study_description=st.description,
        protocol_name=st.protocol_name,
        mdv_oid=f"MDV.{st.name}.{purpose}" + (f".{ig.name}.{ig.version}" if ig else ""),
        mdv_name=f"Study {st.name}, {label} Data Definitions",
        mdv_description=f"{label} data definitions for study {st.name}",
        purpose=purpose,
        standards=standards,
        acrf_leaf_ids=acrf,
        supplemental_leaf_ids=supp,
        value_lists=value_lists,
        where_clauses=where,
        item_groups=groups,
        item_defs=item_defs + vl_item_defs,
        codelists=codelists,
        methods=methods,
        comments=comments,
        leaves=leaves,
    )
    _sanitize(view, "define", b.problems)
    return view, b.problems


def _sanitize(obj: object, path: str, problems: list[Problem]) -> None:
    """Replace characters XML 1.0 cannot carry in every text of the view (in place), reporting each."""
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            where = f"{path}.{f.name}"
            if isinstance(value, str):
                if _XML_ILLEGAL.search(value):
                    problems.append(Problem("define", "text contains characters XML cannot carry; replaced by '?'",
                                            entry=where, value=value.encode("unicode_escape").decode("ascii")))
                    setattr(obj, f.name, _XML_ILLEGAL.sub("?", value))
            else:
                _sanitize(value, where, problems)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            if isinstance(item, str):
                if _XML_ILLEGAL.search(item):
                    problems.append(Problem("define", "text contains characters XML cannot carry; replaced by '?'",
                                            entry=f"{path}[{i}]", value=item.encode("unicode_escape").decode("ascii")))
                    obj[i] = _XML_ILLEGAL.sub("?", item)
            else:
                _sanitize(item, f"{path}[{i}]", problems)


def _check_ct(spec: StudySpec, view: DefineView, ct_dir: Path) -> list[Problem]:
    """Check the emitted codelists against their CT packages (``cdisc_pipe.ct.check_codelists``)."""
    from cdisc_pipe.ct import check_codelists
    from cdisc_pipe.errors import InputError

    used = {c.oid: spec.codelists[c.oid] for c in view.codelists if c.oid in spec.codelists}
    try:
        return check_codelists(SimpleNamespace(standards=spec.standards, codelists=used), ct_dir)
    except InputError as exc:
        return list(exc.problems)
