"""The study metadata as a Pinnacle 21-style define specification workbook, and back.

Sheets: Study, Standards, Datasets, Variables, ValueLevel, WhereClauses, Codelists, Dictionaries,
Methods, Comments, Documents.  ``export_xlsx`` then ``import_xlsx`` gives back an equal
:class:`StudySpec` (tested), and ``write_yaml_specs`` turns a StudySpec into the ``specs/`` folder
layout, so a team can edit the workbook and re-import it.

Cell conventions: lists inside one cell (keys, values of an IN condition, document references) are
joined with ``|``; document references are ``DOC_OID:pages`` (``LF.acrf:12 14``).  Every text cell
is written as a string (never a formula, even when it starts with ``=``).  Booleans are ``Yes``/``No``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from openpyxl import Workbook, load_workbook
from openpyxl.utils import get_column_letter

from cdisc_pipe.errors import InputError, Problem
from cdisc_pipe.spec.load import validate_model
from cdisc_pipe.spec.model import (
    Codelist,
    Comment,
    Dataset,
    Dictionary,
    Document,
    Method,
    Standard,
    Study,
    StudySpec,
    ValueLevel,
    Variable,
    WhereClause,
)

SEP = "|"


def _yes(v: bool | None) -> str | None:
    return None if v is None else ("Yes" if v else "No")


def _bool(v: Any) -> bool | None:
    if v in (None, ""):
        return None
    return str(v).strip().lower() in ("yes", "y", "true", "1")


def _docs_str(docs) -> str | None:
    if not docs:
        return None
    return SEP.join(f"{d.document}:{d.pages or ''}:{d.page_type}" for d in docs)


def _docs_list(text: Any) -> list[dict]:
    if text in (None, ""):
        return []
    out = []
    for part in str(text).split(SEP):
        doc, pages, ptype = (part.split(":") + ["", ""])[:3]
        out.append({"document": doc, "pages": pages or None, "page_type": ptype or "PhysicalRef"})
    return out


def _split(text: Any) -> list[str]:
    return [] if text in (None, "") else str(text).split(SEP)


def _none(v: Any) -> Any:
    return None if v == "" else v


def _int(v: Any) -> int | None:
    return None if v in (None, "") else int(v)


def _float(v: Any) -> float | None:
    return None if v in (None, "") else float(v)


# Column definitions: (header, getter(object, owner) -> cell value, setter key for import).
SHEETS: dict[str, list[str]] = {
    "Study": ["Attribute", "Value"],
    "Standards": ["ID", "Name", "Type", "Version", "Publishing Set", "Status", "CT File"],
    "Datasets": ["Dataset", "Label", "Class", "SubClass", "Structure", "Key Variables", "Standard", "Purpose",
                 "Repeating", "Reference Data", "Domain", "Non Standard", "Comment"],
    "Variables": ["Order", "Dataset", "Variable", "Label", "Data Type", "Length", "Significant Digits", "Format",
                  "Mandatory", "Core", "Codelist", "Origin", "Source", "Origin Description", "Pages", "Method",
                  "Role", "Comment"],
    "ValueLevel": ["Order", "Dataset", "Variable", "Where Clause", "Label", "Data Type", "Length",
                   "Significant Digits", "Format", "Mandatory", "Codelist", "Origin", "Source",
                   "Origin Description", "Pages", "Method", "Comment"],
    "WhereClauses": ["ID", "Seq", "Dataset", "Variable", "Comparator", "Value", "Comment"],
    "Codelists": ["ID", "Name", "NCI Codelist Code", "Data Type", "Extensible", "Standard", "Dictionary",
                  "Comment", "Order", "Term", "NCI Term Code", "Decoded Value", "Extended", "Term Order", "Rank"],
    "Dictionaries": ["ID", "Name", "Data Type", "Dictionary", "Version", "Href"],
    "Methods": ["ID", "Name", "Type", "Description", "Expression Context", "Expression", "Documents",
                "Declared In"],
    "Comments": ["ID", "Description", "Documents", "Declared In"],
    "Documents": ["ID", "Title", "Href", "Kind", "Purpose"],
}


def _study_rows(spec: StudySpec) -> list[list[Any]]:
    return [[k, v] for k, v in spec.study.model_dump().items()]


def export_xlsx(spec: StudySpec, path: str | Path) -> None:
    """Write the study metadata as a P21-style specification workbook (deterministic content)."""
    rows: dict[str, list[list[Any]]] = {name: [] for name in SHEETS}
    rows["Study"] = _study_rows(spec)
    for s in spec.standards:
        rows["Standards"].append([s.oid, s.name, s.type, s.version, s.publishing_set, s.status, s.ct_file])
    declared: dict[str, str] = {}
    for ds in spec.datasets.values():
        rows["Datasets"].append([ds.name, ds.label, ds.dataset_class, ds.subclass, ds.structure, SEP.join(ds.keys),
                                 ds.standard, ds.purpose, _yes(ds.repeating), _yes(ds.reference_data), ds.domain,
                                 _yes(ds.non_standard), ds.comment])
        for v in ds.variables:
            o = v.origin
            rows["Variables"].append([v.order, ds.name, v.name, v.label, v.data_type, v.length, v.significant_digits,
                                      v.display_format, _yes(v.mandatory), v.core, v.codelist, o.type, o.source,
                                      o.description, _docs_str(o.documents), v.method, v.role, v.comment])
        for vl in ds.value_level:
            o = vl.origin
            rows["ValueLevel"].append([vl.order, ds.name, vl.variable, vl.where, vl.label, vl.data_type, vl.length,
                                       vl.significant_digits, vl.display_format, _yes(vl.mandatory), vl.codelist,
                                       o.type, o.source, o.description, _docs_str(o.documents), vl.method,
                                       vl.comment])
        for m in ds.methods:
            declared["M:" + m.oid] = ds.name
        for c in ds.comments:
            declared["C:" + c.oid] = ds.name
    for wc in spec.where_clauses.values():
        for i, c in enumerate(wc.conditions, start=1):
            rows["WhereClauses"].append([wc.oid, i, c.dataset, c.variable, c.comparator, SEP.join(c.values),
                                         wc.comment])
    for cl in spec.codelists.values():
        head = [cl.oid, cl.name, cl.nci_code, cl.data_type, _yes(cl.extensible), cl.standard, cl.dictionary, cl.comment]
        if not cl.terms:
            rows["Codelists"].append(head + [None] * 7)
        for i, t in enumerate(cl.terms, start=1):
            rows["Codelists"].append(head + [i, t.submission_value, t.nci_code, t.decode, _yes(t.extended), t.order,
                                             t.rank])
    for d in spec.dictionaries.values():
        rows["Dictionaries"].append([d.oid, d.name, d.data_type, d.dictionary, d.version, d.href])
    for m in spec.methods.values():
        rows["Methods"].append([m.oid, m.name, m.type, m.description, m.expression_context, m.expression,
                                _docs_str(m.documents), declared.get("M:" + m.oid)])
    for c in spec.comments.values():
        rows["Comments"].append([c.oid, c.description, _docs_str(c.documents), declared.get("C:" + c.oid)])
    for d in spec.documents.values():
        rows["Documents"].append([d.oid, d.title, d.href, d.kind, d.purpose])

    wb = Workbook()
    wb.remove(wb.active)
    for name, header in SHEETS.items():
        ws = wb.create_sheet(name)
        ws.append(header)
        for r in rows[name]:
            ws.append([None if v is None else v for v in r])
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                if isinstance(cell.value, str):
                    cell.data_type = "s"  # never a formula, whatever the text starts with
        ws.freeze_panes = "A2"
        if ws.max_row > 1:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{ws.max_row}"
        for i, h in enumerate(header, start=1):
            ws.column_dimensions[get_column_letter(i)].width = max(10, min(50, len(h) + 4))
    # Fixed document properties keep the file content independent of the wall clock.
    from datetime import datetime

    stamp = datetime.fromisoformat(spec.study.metadata_datetime)
    wb.properties.created = stamp
    wb.properties.modified = stamp
    wb.properties.creator = "cdisc-pipe"
    wb.save(str(path))


def _records(ws, file: str, problems: list[Problem]) -> list[dict[str, Any]]:
    it = ws.iter_rows(values_only=True)
    try:
        header = [str(h) if h is not None else "" for h in next(it)]
    except StopIteration:
        return []
    expected = SHEETS[ws.title]
    missing = [h for h in expected if h not in header]
    if missing:
        problems.append(Problem(file, "sheet lacks columns", entry=f"sheet {ws.title}", value=", ".join(missing)))
        return []
    out = []
    for n, row in enumerate(it, start=2):
        if all(v in (None, "") for v in row):
            continue
        rec = {h: (row[i] if i < len(row) else None) for i, h in enumerate(header) if h}
        rec["__row"] = n
        out.append(rec)
    return out


def import_xlsx(path: str | Path) -> StudySpec:
    """Read a specification workbook back into a StudySpec; all problems reported together."""
    file = str(path)
    problems: list[Problem] = []
    try:
        wb = load_workbook(file, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a bad file; report it as input
        raise InputError(Problem(file, f"cannot read workbook: {exc}", hint="Pass an .xlsx exported by cdisc-pipe spec export")) from None
    absent = [s for s in SHEETS if s not in wb.sheetnames]
    if absent:
        raise InputError(Problem(file, "workbook lacks sheets", value=", ".join(absent)))
    recs = {name: _records(wb[name], file, problems) for name in SHEETS}
    wb.close()

    def val(kind, data, sheet, row):
        return validate_model(kind, data, file, problems, f"sheet {sheet} row {row}")

    study = val(Study, {r["Attribute"]: _none(r["Value"]) for r in recs["Study"]}, "Study", 2)
    standards = [val(Standard, {"oid": r["ID"], "name": r["Name"], "type": r["Type"], "version": str(r["Version"]),
                                "publishing_set": _none(r["Publishing Set"]), "status": r["Status"] or "Final",
                                "ct_file": _none(r["CT File"])}, "Standards", r["__row"]) for r in recs["Standards"]]
    documents = [val(Document, {"oid": r["ID"], "title": r["Title"], "href": r["Href"], "kind": r["Kind"],
                               "purpose": _none(r["Purpose"])},
                     "Documents", r["__row"]) for r in recs["Documents"]]
    dictionaries = [val(Dictionary, {"oid": r["ID"], "name": r["Name"], "data_type": r["Data Type"] or "text",
                                     "dictionary": r["Dictionary"], "version": str(r["Version"]),
                                     "href": _none(r["Href"])}, "Dictionaries", r["__row"]) for r in recs["Dictionaries"]]
    methods, method_owner = [], {}
    for r in recs["Methods"]:
        m = val(Method, {"oid": r["ID"], "name": r["Name"], "type": r["Type"], "description": r["Description"],
                         "expression_context": _none(r["Expression Context"]), "expression": _none(r["Expression"]),
                         "documents": _docs_list(r["Documents"])}, "Methods", r["__row"])
        methods.append(m)
        if m is not None and r["Declared In"]:
            method_owner[m.oid] = r["Declared In"]
    comments, comment_owner = [], {}
    for r in recs["Comments"]:
        c = val(Comment, {"oid": r["ID"], "description": r["Description"], "documents": _docs_list(r["Documents"])},
                "Comments", r["__row"])
        comments.append(c)
        if c is not None and r["Declared In"]:
            comment_owner[c.oid] = r["Declared In"]

    where: dict[str, dict] = {}
    for r in recs["WhereClauses"]:
        wc = where.setdefault(r["ID"], {"oid": r["ID"], "conditions": [], "comment": _none(r["Comment"])})
        wc["conditions"].append({"dataset": _none(r["Dataset"]), "variable": r["Variable"],
                                 "comparator": r["Comparator"], "values": _split(r["Value"])})
    where_clauses = {k: val(WhereClause, v, "WhereClauses", k) for k, v in where.items()}

    codelists: dict[str, dict] = {}
    for r in recs["Codelists"]:
        cl = codelists.setdefault(r["ID"], {
            "oid": r["ID"], "name": r["Name"], "nci_code": _none(r["NCI Codelist Code"]),
            "data_type": r["Data Type"] or "text", "extensible": _bool(r["Extensible"]),
            "standard": _none(r["Standard"]), "dictionary": _none(r["Dictionary"]), "comment": _none(r["Comment"]),
            "terms": []})
        if r["Term"] not in (None, ""):
            cl["terms"].append({"submission_value": str(r["Term"]), "decode": _none(r["Decoded Value"]),
                                "nci_code": _none(r["NCI Term Code"]), "extended": bool(_bool(r["Extended"])),
                                "order": _int(r["Term Order"]), "rank": _float(r["Rank"])})

    def origin(r):
        return {"type": r["Origin"], "source": _none(r["Source"]), "description": _none(r["Origin Description"]),
                "documents": _docs_list(r["Pages"])}

    variables: dict[str, list] = {}
    bad_datasets: set[str] = set()
    for r in recs["Variables"]:
        data = {
            "name": r["Variable"], "label": r["Label"], "data_type": r["Data Type"], "length": _int(r["Length"]),
            "significant_digits": _int(r["Significant Digits"]), "display_format": _none(r["Format"]),
            "core": _none(r["Core"]), "origin": origin(r), "codelist": _none(r["Codelist"]),
            "method": _none(r["Method"]), "comment": _none(r["Comment"]), "role": _none(r["Role"]),
            "order": _int(r["Order"]), "mandatory": _bool(r["Mandatory"])}
        # Validate row by row so a problem is reported at its sheet row, not at the dataset.
        if val(Variable, data, "Variables", r["__row"]) is None:
            bad_datasets.add(r["Dataset"])
        variables.setdefault(r["Dataset"], []).append(data)
    value_level: dict[str, list] = {}
    for r in recs["ValueLevel"]:
        data = {
            "variable": r["Variable"], "where": r["Where Clause"], "label": _none(r["Label"]),
            "data_type": r["Data Type"], "length": _int(r["Length"]),
            "significant_digits": _int(r["Significant Digits"]), "display_format": _none(r["Format"]),
            "codelist": _none(r["Codelist"]), "origin": origin(r), "method": _none(r["Method"]),
            "comment": _none(r["Comment"]), "mandatory": bool(_bool(r["Mandatory"])), "order": _int(r["Order"])}
        if val(ValueLevel, data, "ValueLevel", r["__row"]) is None:
            bad_datasets.add(r["Dataset"])
        value_level.setdefault(r["Dataset"], []).append(data)
    datasets: dict[str, Dataset] = {}
    for r in recs["Datasets"]:
        name = r["Dataset"]
        if name in bad_datasets:
            continue
        ds = val(Dataset, {
            "name": name, "label": r["Label"], "class": r["Class"], "subclass": _none(r["SubClass"]),
            "structure": r["Structure"], "keys": _split(r["Key Variables"]), "purpose": r["Purpose"],
            "repeating": _bool(r["Repeating"]) if r["Repeating"] not in (None, "") else True,
            "reference_data": bool(_bool(r["Reference Data"])), "standard": _none(r["Standard"]),
            "domain": _none(r["Domain"]), "non_standard": bool(_bool(r["Non Standard"])),
            "comment": _none(r["Comment"]), "variables": variables.get(name, []),
            "value_level": value_level.get(name, []),
            "methods": [m.model_dump() for m in methods if m is not None and method_owner.get(m.oid) == name],
            "comments": [c.model_dump() for c in comments if c is not None and comment_owner.get(c.oid) == name],
        }, "Datasets", r["__row"])
        if ds is not None:
            datasets[ds.name] = ds
    cls = {k: val(Codelist, v, "Codelists", k) for k, v in codelists.items()}
    if problems:
        raise InputError(problems, stage="spec import")
    return StudySpec(
        study=study, standards=standards, datasets=datasets, codelists=cls,
        dictionaries={d.oid: d for d in dictionaries}, methods={m.oid: m for m in methods},
        comments={c.oid: c for c in comments}, documents={d.oid: d for d in documents},
        where_clauses=where_clauses,
    )


def _dump(obj) -> Any:
    """model_dump without defaults/None, so the YAML stays as small as a hand-written file."""
    return obj.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)


def write_yaml_specs(spec: StudySpec, out_dir: str | Path) -> list[Path]:
    """Write a StudySpec as a ``specs/`` folder (study.yaml, sdtm/, adam/, codelists/).

    Where clauses are written inline in the value-level entries that use them (as hand-written
    specs do); the loader derives the same OIDs again.
    """
    out = Path(out_dir)
    written: list[Path] = []
    owned = {m.oid for ds in spec.datasets.values() for m in ds.methods} | {
        c.oid for ds in spec.datasets.values() for c in ds.comments}
    study_doc = {
        "study": _dump(spec.study) | {"metadata_datetime": spec.study.metadata_datetime},
        "standards": [_dump(s) for s in spec.standards],
        "documents": [_dump(d) for d in spec.documents.values()],
        "dictionaries": [_dump(d) for d in spec.dictionaries.values()],
        "methods": [_dump(m) for m in spec.methods.values() if m.oid not in owned],
        "comments": [_dump(c) for c in spec.comments.values() if c.oid not in owned],
    }
    _write(out / "study.yaml", study_doc, written)
    for ds in spec.datasets.values():
        doc = _dump(ds)
        doc["keys"] = list(ds.keys)
        doc["variables"] = [_dump(v) | {"origin": _dump(v.origin)} for v in ds.variables]
        for v in doc["variables"]:
            v.pop("has_value_level", None)
        vls = []
        for vl in ds.value_level:
            d = _dump(vl) | {"origin": _dump(vl.origin)}
            wc = spec.where_clauses.get(vl.where) if isinstance(vl.where, str) else None
            if wc is not None and wc.comment is None:
                d["where"] = [_dump(c) | {"values": list(c.values)} for c in wc.conditions]
            vls.append(d)
        if vls:
            doc["value_level"] = vls
        folder = "sdtm" if ds.purpose == "Tabulation" else "adam"
        _write(out / folder / f"{ds.name.lower()}.yaml", doc, written)
    for cl in spec.codelists.values():
        name = cl.oid[3:] if cl.oid.startswith("CL.") else cl.oid
        _write(out / "codelists" / f"{name.lower()}.yaml", _dump(cl), written)
    return written


def _write(path: Path, doc: Any, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=False, width=110), encoding="utf-8")
    written.append(path)
