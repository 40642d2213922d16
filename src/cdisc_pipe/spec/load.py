"""Load the study metadata from a ``specs/`` folder, strictly.

Every problem (YAML syntax, unknown key, wrong type, dangling reference to a codelist, method,
comment, document or where clause, duplicate OIDs, ...) is collected with the file and the entry it
is in; one :class:`~cdisc_pipe.errors.InputError` carries all of them.  YAML is read with
``yaml.safe_load`` only: specs are data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cdisc_pipe.errors import InputError, Problem
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
    WhereClause,
    WhereCondition,
)

DATASET_FOLDERS = ("sdtm", "adam")


# libyaml's safe loader when present: the same safe subset, faster.  Never a full Loader.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, problems: list[Problem]) -> Any:
    """Read one YAML file (specs, mappings, settings) with the safe loader; a syntax error becomes a
    Problem (returns None)."""
    text = ""
    try:
        text = path.read_text(encoding="utf-8")  # the text is kept to show what an error mark points at
        return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        entry = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        what, hint = f"invalid YAML: {getattr(exc, 'problem', exc)}", "Fix the YAML syntax"
        lines = text.split("\n") if mark else []  # the C loader's marks carry no buffer: look it up
        line = lines[mark.line] if mark and mark.line < len(lines) else ""
        if mark and "\t" in line[:mark.column + 1]:
            what, hint = "invalid YAML: a tab character where YAML needs spaces", "indent with spaces, never tabs"
        elif "could not determine a constructor for the tag" in str(exc):
            what = f"invalid YAML: a tag the safe loader refuses ({getattr(exc, 'problem', exc)})"
            hint = "remove the '!' tag: specs are plain data (text, numbers, lists, mappings)"
        problems.append(Problem(str(path), what, entry=entry, hint=hint))
    except UnicodeDecodeError as exc:
        problems.append(Problem(str(path), f"not UTF-8 text: {exc.reason}", hint="Save the file as UTF-8"))
    except OSError as exc:
        problems.append(Problem(str(path), f"cannot read file: {exc.strerror}"))
    return None


def _loc(loc: tuple[Any, ...], data: Any) -> str:
    """Turn a pydantic error location into a readable entry, naming variables by their name."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and 0 <= item < len(node):
                node = node[item]
                if isinstance(node, dict) and isinstance(node.get("name") or node.get("oid") or node.get("variable"), str):
                    label = f"[{item}:{node.get('name') or node.get('oid') or node.get('variable')}]"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def validate_model(model: type, data: Any, file: str, problems: list[Problem], prefix: str = "") -> Any:
    """``model.model_validate(data)``, turning every validation error into a Problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            entry = _loc(tuple(err["loc"]), data)
            if prefix:
                entry = f"{prefix}.{entry}" if entry != "(top level)" else prefix
            value = err.get("input")
            shown = None if isinstance(value, (dict, list)) or value is None else str(value)
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (misspelt?)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            problems.append(Problem(file, msg, entry=entry, value=shown))
        return None


def where_clause_oid(dataset: str, conditions: list[WhereCondition]) -> str:
    """Deterministic OID for an inline where clause: readable when short, hashed when long."""
    parts = [f"{c.dataset or dataset}.{c.variable}.{c.comparator}.{'_'.join(c.values)}" for c in conditions]
    oid = "WC." + ".".join(parts)
    if len(oid) > 80 or not oid.replace(".", "").replace("_", "").replace("-", "").isalnum():
        oid = "WC." + dataset + "." + hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]
    return oid


def load_specs(specs_dir: str | Path) -> StudySpec:
    """Load and cross-check a specs folder.  Raises InputError listing every problem."""
    root = Path(specs_dir)
    problems: list[Problem] = []
    if not root.is_dir():
        raise InputError(Problem(str(root), "specs folder not found", hint="Pass --specs DIR pointing at the study's specs"))

    study_file = root / "study.yaml"
    top = read_yaml(study_file, problems) if study_file.exists() else None
    failed_files: list[str] = [] if top is not None else [str(study_file)]  # files that define nothing
    if not study_file.exists():
        problems.append(Problem(str(study_file), "missing study.yaml", hint="Create it with study: and standards:"))
    unreadable = top is None and study_file.exists()  # its YAML problem is already listed
    top = top or {}
    if not isinstance(top, dict):
        problems.append(Problem(str(study_file), "top level must be a mapping"))
        failed_files.append(str(study_file))
        top = {}
    allowed = {"study", "standards", "documents", "dictionaries", "methods", "comments"}
    for key in sorted(set(top) - allowed):
        problems.append(Problem(str(study_file), "unknown key (misspelt?)", entry=str(key)))

    study = validate_model(Study, top.get("study"), str(study_file), problems, "study") if "study" in top else None
    if "study" not in top and study_file.exists() and not unreadable:
        problems.append(Problem(str(study_file), "required key is missing", entry="study"))

    def collect(kind: type, items: Any, file: str, prefix: str, into: dict[str, Any]) -> None:
        if items is None:
            return
        if not isinstance(items, list):
            problems.append(Problem(file, "must be a list", entry=prefix))
            return
        for i, item in enumerate(items):
            obj = validate_model(kind, item, file, problems, f"{prefix}[{i}]")
            if obj is None:
                failed_files.append(f"{file} {prefix}[{i}]")
                continue
            key = obj.oid
            if key in into:
                problems.append(Problem(file, "duplicate OID (also defined earlier)", entry=f"{prefix}[{i}]", value=key))
            into[key] = obj

    standards: dict[str, Standard] = {}
    documents: dict[str, Document] = {}
    dictionaries: dict[str, Dictionary] = {}
    methods: dict[str, Method] = {}
    comments: dict[str, Comment] = {}
    collect(Standard, top.get("standards"), str(study_file), "standards", standards)
    collect(Document, top.get("documents"), str(study_file), "documents", documents)
    collect(Dictionary, top.get("dictionaries"), str(study_file), "dictionaries", dictionaries)
    collect(Method, top.get("methods"), str(study_file), "methods", methods)
    collect(Comment, top.get("comments"), str(study_file), "comments", comments)

    codelists: dict[str, Codelist] = {}
    codelist_files: dict[str, str] = {}
    for path in sorted((root / "codelists").glob("*.yaml")):
        data = read_yaml(path, problems)
        cl = None if data is None else validate_model(Codelist, data, str(path), problems)
        if cl is None:
            failed_files.append(str(path))
            continue
        if cl.oid in codelists:
            problems.append(Problem(str(path), f"duplicate codelist OID, also in {codelist_files[cl.oid]}", value=cl.oid))
        codelists[cl.oid] = cl
        codelist_files[cl.oid] = str(path)

    datasets: dict[str, Dataset] = {}
    dataset_files: dict[str, str] = {}
    for folder in DATASET_FOLDERS:
        for path in sorted((root / folder).glob("*.yaml")):
            data = read_yaml(path, problems)
            ds = None if data is None else validate_model(Dataset, data, str(path), problems)
            if ds is None:
                failed_files.append(str(path))
                continue
            if ds.name in datasets:
                problems.append(Problem(str(path), f"dataset defined twice, also in {dataset_files[ds.name]}", value=ds.name))
            if path.stem.upper() != ds.name:
                problems.append(Problem(str(path), "file name must be the dataset name in lower case",
                                        value=ds.name, hint=f"Rename the file to {ds.name.lower()}.yaml"))
            datasets[ds.name] = ds
            dataset_files[ds.name] = str(path)
            for i, m in enumerate(ds.methods):
                if m.oid in methods:
                    problems.append(Problem(str(path), "duplicate method OID", entry=f"methods[{i}]", value=m.oid))
                methods[m.oid] = m
            for i, c in enumerate(ds.comments):
                if c.oid in comments:
                    problems.append(Problem(str(path), "duplicate comment OID", entry=f"comments[{i}]", value=c.oid))
                comments[c.oid] = c

    # Inline where clauses become WhereClause objects with deterministic OIDs.
    where_clauses: dict[str, WhereClause] = {}
    for ds in datasets.values():
        for vl in ds.value_level:
            if isinstance(vl.where, list):
                oid = where_clause_oid(ds.name, vl.where)
                where_clauses[oid] = WhereClause(
                    oid=oid, conditions=[c.model_copy(update={"dataset": c.dataset or ds.name}) for c in vl.where]
                )
                vl.where = oid

    # A file that failed to load leaves its OIDs undefined: every reference to them would be one more
    # problem with the same root cause.  Then only the load failures are listed, with a count of the rest.
    failed = bool(failed_files)
    refs: list[Problem] = []
    _check_references(datasets, dataset_files, codelists, codelist_files, dictionaries, methods, comments,
                      documents, where_clauses, standards, str(study_file), refs)
    if failed and refs:
        problems.append(Problem(str(root), f"{len(refs)} more problem(s) not listed: references that may only "
                                "follow from the problems above (a file that failed to load defines nothing)",
                                hint="fix the problems above first, then run again"))
    else:
        problems.extend(refs)

    if problems or study is None:
        raise InputError(problems or [Problem(str(study_file), "study is missing")], stage="specs")
    return StudySpec(
        study=study,
        standards=list(standards.values()),
        datasets=datasets,
        codelists=codelists,
        dictionaries=dictionaries,
        methods=methods,
        comments=comments,
        documents=documents,
        where_clauses=where_clauses,
    )


def _check_references(datasets, dataset_files, codelists, codelist_files, dictionaries, methods, comments,
                      documents, where_clauses, standards, study_file, problems) -> None:
    def need(kind: str, oid: str | None, pool: dict, file: str, entry: str) -> None:
        if oid is not None and oid not in pool:
            problems.append(Problem(file, f"refers to an undefined {kind}", entry=entry, value=oid,
                                    hint=f"Define {kind} {oid} or correct the reference"))

    for name, ds in datasets.items():
        f = dataset_files[name]
        need("comment", ds.comment, comments, f, "comment")
        need("standard", ds.standard, standards, f, "standard")
        for i, v in enumerate(ds.variables):
            e = f"variables[{i}:{v.name}]"
            need("codelist", v.codelist, codelists, f, e + ".codelist")
            need("method", v.method, methods, f, e + ".method")
            need("comment", v.comment, comments, f, e + ".comment")
            for d in v.origin.documents:
                need("document", d.document, documents, f, e + ".origin.documents")
            # A Derived ADaM variable's method may come from the step of its derivation plan:
            # checked once plans are attached (cdisc_pipe.adam.plan.check_methods).
        for i, vl in enumerate(ds.value_level):
            e = f"value_level[{i}:{vl.variable}]"
            need("where clause", vl.where if isinstance(vl.where, str) else None, where_clauses, f, e + ".where")
            need("codelist", vl.codelist, codelists, f, e + ".codelist")
            need("method", vl.method, methods, f, e + ".method")
            need("comment", vl.comment, comments, f, e + ".comment")
    for oid, cl in codelists.items():
        need("dictionary", cl.dictionary, dictionaries, codelist_files[oid], "dictionary")
        need("standard", cl.standard, standards, codelist_files[oid], "standard")
        need("comment", cl.comment, comments, codelist_files[oid], "comment")
    for m in methods.values():
        for d in m.documents:
            need("document", d.document, documents, study_file, f"methods[{m.oid}].documents")
    for c in comments.values():
        for d in c.documents:
            need("document", d.document, documents, study_file, f"comments[{c.oid}].documents")
