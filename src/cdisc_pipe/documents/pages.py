"""define.xml's aCRF page references, taken from the generated aCRF.

:func:`variable_pages` turns "the page each field's annotations landed on" into "the pages each SDTM
variable (and value-level entry) is annotated on"; :func:`apply_acrf_pages` writes them into the
spec's origins (``documents: [{document: LF.acrf, pages: "21 22"}]``), which is where the define.xml
builder reads its ``def:PDFPageRef``.  The spec's own page numbers for the aCRF are replaced: the
generated PDF is the truth.  An origin that cites the aCRF, or a Collected origin, whose variable is
annotated nowhere loses its aCRF reference (define.xml then lists it as a metadata gap).

The page table is also written as JSON beside the datasets (``_stage/acrf_pages.json``), so that
``cdisc-pipe define`` re-renders define.xml with the same pages.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Iterable

from cdisc_pipe.documents.acrf import AnnotatedCrf
from cdisc_pipe.documents.annotations import Target
from cdisc_pipe.spec.model import DocumentRef, Origin, StudySpec, WhereCondition

PAGES_FILE = "acrf_pages.json"


def variable_pages(crf: AnnotatedCrf, field_pages: dict[tuple[str, str], int]) -> dict[Target, list[int]]:
    """``Target -> sorted pages`` over every annotation of every field."""
    out: dict[Target, set[int]] = {}
    for form in crf.forms:
        for a in form.constants:  # "VSORRESU = 'mmHg' when VSTESTCD = 'SYSBP'" under the form title
            for t in a.targets:
                out.setdefault(t, set()).add(field_pages[(form.name, "")])
        for f in form.fields:
            page = field_pages[(form.name, f.name)]
            for a in f.annotations:
                for t in a.targets:
                    out.setdefault(t, set()).add(page)
    return {t: sorted(p) for t, p in sorted(out.items())}


def pages_to_json(pages: dict[Target, list[int]]) -> str:
    rows = [{"dataset": t.dataset, "variable": t.variable, "where": {k: list(v) for k, v in t.where},
             "pages": p} for t, p in pages.items()]
    return json.dumps(rows, indent=1, sort_keys=True) + "\n"


def pages_from_json(text: str) -> dict[Target, list[int]]:
    rows = json.loads(text)
    return {Target(r["dataset"], r["variable"], tuple((k, tuple(v)) for k, v in sorted(r["where"].items()))):
            [int(x) for x in r["pages"]] for r in rows}


def _matches(value: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) if p.endswith("*") else value == p for p in patterns)


def _compatible(target: Target, conditions: list[WhereCondition]) -> bool | None:
    """True when the target names the value-level records (a condition it states matches), None when
    it states nothing about them (a plain variable annotation), False when it contradicts them."""
    stated = dict(target.where)
    said = False
    for c in conditions:
        values = stated.get(c.variable)
        if values is None:
            continue
        said = True
        hit = any(_matches(v, values) for v in c.values)
        if c.comparator in ("EQ", "IN") and not hit:
            return False
        if c.comparator in ("NE", "NOTIN") and all(any(_matches(v, [p]) for v in c.values) for p in values):
            return False
    return True if said else None


def pages_for(pages: dict[Target, list[int]], dataset: str, variable: str,
              conditions: list[WhereCondition] | None = None) -> list[int]:
    """The pages a variable (or a value-level entry with ``conditions``) is annotated on: targets
    that state matching conditions win over plain ones; a variable-level lookup takes them all."""
    mine = [(t, p) for t, p in pages.items() if t.dataset == dataset and t.variable == variable]
    if conditions is None:
        return sorted({x for _, p in mine for x in p})
    exact, plain_ = set(), set()
    for t, p in mine:
        ok = _compatible(t, conditions)
        if ok is True:
            exact.update(p)
        elif ok is None:
            plain_.update(p)
    return sorted(exact or plain_)


def _origin(origin: Origin, acrf: set[str], oid: str, pages: list[int]) -> Origin:
    cites = any(d.document in acrf for d in origin.documents)
    if not cites and origin.type != "Collected":
        return origin
    kept = [d for d in origin.documents if d.document not in acrf]
    if pages:
        kept.append(DocumentRef(document=oid, pages=" ".join(str(p) for p in pages), page_type="PhysicalRef"))
    if kept == origin.documents:
        return origin
    return origin.model_copy(update={"documents": kept})


def apply_acrf_pages(spec: StudySpec, pages: dict[Target, list[int]]) -> StudySpec:
    """A copy of ``spec`` whose tabulation origins cite the aCRF pages where each variable is annotated.

    Only origins of Tabulation datasets that cite the study's AnnotatedCRF document, or are
    Collected, change; a study without an AnnotatedCRF document is returned unchanged."""
    docs = sorted(d.oid for d in spec.documents.values() if d.kind == "AnnotatedCRF")
    if not docs:
        return spec
    oid, acrf = docs[0], set(docs)
    datasets = dict(spec.datasets)
    for name, ds in spec.datasets.items():
        if ds.purpose != "Tabulation":
            continue
        variables = [v.model_copy(update={"origin": _origin(v.origin, acrf, oid, pages_for(pages, name, v.name))})
                     for v in ds.variables]
        value_level = []
        for vl in ds.value_level:
            conds = vl.where if isinstance(vl.where, list) else \
                (spec.where_clauses[vl.where].conditions if vl.where in spec.where_clauses else [])
            conds = [c for c in conds if c.dataset in (None, name)]
            new = _origin(vl.origin, acrf, oid, pages_for(pages, name, vl.variable, conds))
            value_level.append(vl.model_copy(update={"origin": new}))
        datasets[name] = ds.model_copy(update={"variables": variables, "value_level": value_level})
    return spec.model_copy(update={"datasets": datasets})
