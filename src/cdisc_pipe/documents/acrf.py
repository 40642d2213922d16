"""The annotated CRF (``acrf.pdf``) as a document model: pure functions from the raw export's data
dictionary, the mappings, the trial design and the spec; rendering is :mod:`cdisc_pipe.documents.pdf`.

One section per form of the dictionary (its order), each a blank CRF page - the form title, every
field's prompt, response type, choices and unit - with its annotations: a domain box per dataset
the form feeds (``AE (Adverse Events)``), the constants its records get, and beside every field the
SDTM variable(s) it becomes or ``[NOT SUBMITTED]`` (:mod:`cdisc_pipe.documents.annotations`).
Forms are also listed by visit: the visits of the trial design (TV) at which each form was
collected, read from the export's ``FOLDER`` column and the visits' ``aliases``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from cdisc_pipe.documents.annotations import Annotation, FormAnnotations, field_annotations
from cdisc_pipe.sdtm.mapping import Mappings
from cdisc_pipe.spec.model import StudySpec

FOLDER = "FOLDER"  # the export's visit (folder) column, on every form (docs/RAW.md)
UNSCHEDULED = "Unscheduled visits"
NOT_IN_PLAN = "Not in the visit plan (logs and events)"


@dataclass(frozen=True)
class CrfField:
    """One question of a form: its prompt and response as the dictionary gives them."""

    name: str
    prompt: str
    response_type: str
    choices: tuple[tuple[str, str], ...]
    required: bool
    unit: str | None
    note: str | None
    annotations: tuple[Annotation, ...]


@dataclass(frozen=True)
class CrfForm:
    name: str
    title: str
    domains: tuple[tuple[str, str], ...]  # (dataset, label) per domain box
    constants: tuple[Annotation, ...]
    selections: tuple[str, ...]  # "when EXYN = 'Y' then EX: otherwise ..."
    fields: tuple[CrfField, ...]
    visits: tuple[str, ...]  # where it was collected (TV visit names, then the other groups)


@dataclass(frozen=True)
class VisitForms:
    """A bookmark group: a TV visit (or unscheduled / not in the plan) and the forms collected at it."""

    title: str
    forms: tuple[str, ...]


@dataclass(frozen=True)
class AnnotatedCrf:
    study: str
    title: str
    sponsor: str | None
    date: str  # the spec's metadata date-time (never the wall clock)
    forms: tuple[CrfForm, ...]
    visits: tuple[VisitForms, ...]


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return None
    s = str(value).strip()
    return s or None


def _choices(codes: str | None) -> tuple[tuple[str, str], ...]:
    if not codes:
        return ()
    out = []
    for part in codes.split("|"):
        if not part.strip():
            continue
        code, _, decode = part.partition("=")
        out.append((code.strip(), decode.strip() or code.strip()))
    return tuple(out)


def visit_groups(forms: dict[str, pd.DataFrame], visits: list[dict], unscheduled_prefix: str = "UNS"
                 ) -> dict[str, list[str]]:
    """``visit title -> forms`` in visit plan order, from the folders each form's records were
    collected in: a folder is a TV visit when it is one of its ``aliases`` or its name; folders
    starting with ``unscheduled_prefix`` are unscheduled; others (logs, events) are not in the plan."""
    by_alias: dict[str, str] = {}
    order = sorted(visits, key=lambda v: float(v.get("visitnum", 0)))
    for v in order:
        for a in [v.get("visit"), *(v.get("aliases") or [])]:
            if a is not None:
                by_alias[str(a).strip().upper()] = str(v["visit"])
    groups: dict[str, list[str]] = {str(v["visit"]): [] for v in order}
    groups[UNSCHEDULED] = []
    groups[NOT_IN_PLAN] = []
    for name, frame in forms.items():
        if FOLDER not in frame:
            continue
        folders = sorted({str(x).strip().upper() for x in frame[FOLDER].dropna().unique() if str(x).strip()})
        for folder in folders:
            if folder in by_alias:
                key = by_alias[folder]
            elif folder.startswith(unscheduled_prefix.upper()):
                key = UNSCHEDULED
            else:
                key = NOT_IN_PLAN
            if name not in groups[key]:
                groups[key].append(name)
    return {k: v for k, v in groups.items() if v}


def build_acrf(dictionary: pd.DataFrame, mappings: Mappings, spec: StudySpec,
               forms: dict[str, pd.DataFrame] | None = None) -> AnnotatedCrf:
    """The annotated CRF of a study.

    Args:
        dictionary: the raw export's data dictionary (``RawExport.dictionary``).
        mappings: the loaded mappings (their rules, ``not_submitted`` reasons and trial design visits).
        spec: the study spec (dataset labels for the domain boxes, study name, metadata date).
        forms: the raw forms (``RawExport.forms``), read only for the folders (visits) each form was
            collected in; None: no visit bookmarks.
    """
    annotated = field_annotations(dictionary, mappings, spec)
    groups = visit_groups(forms or {}, list(mappings.design.get("visits") or []))
    form_visits: dict[str, list[str]] = {}
    for title, names in groups.items():
        for n in names:
            form_visits.setdefault(n, []).append(title)
    crf_forms = []
    titles = {}
    for row in dictionary.itertuples(index=False):
        titles.setdefault(str(row.form), _text(getattr(row, "form_title", None)) or str(row.form))
    rows = {(str(r.form), str(r.field)): r for r in dictionary.itertuples(index=False)}
    for form, fa in annotated.items():
        crf_forms.append(_form(form, titles[form], fa, rows, spec, tuple(form_visits.get(form, []))))
    visits = tuple(VisitForms(t, tuple(n for n in annotated if n in names)) for t, names in groups.items())
    st = spec.study
    return AnnotatedCrf(study=st.name, title=f"Annotated Case Report Form - Study {st.name}", sponsor=st.sponsor,
                        date=st.metadata_datetime, forms=tuple(crf_forms), visits=visits)


def _form(form: str, title: str, fa: FormAnnotations, rows: dict, spec: StudySpec, visits: tuple[str, ...]) -> CrfForm:
    fields = []
    for name, anns in fa.fields.items():
        r = rows[(form, name)]
        fields.append(CrfField(
            name=name, prompt=_text(r.label) or name, response_type=_text(r.type) or "text",
            choices=_choices(_text(getattr(r, "codes", None))),
            required=(_text(getattr(r, "required", None)) or "").upper() == "Y",
            unit=_text(getattr(r, "unit", None)), note=_text(getattr(r, "note", None)), annotations=tuple(anns)))
    domains = []
    for ds in fa.datasets:
        if ds.startswith("SUPP") and ds[4:] in spec.datasets:
            continue
        label = spec.datasets[ds].label if ds in spec.datasets else ds
        domains.append((ds, label))
    return CrfForm(name=form, title=title, domains=tuple(domains), constants=tuple(fa.constants),
                   selections=tuple(fa.reasons), fields=tuple(fields), visits=visits)


def domain_box(dataset: str, label: str) -> str:
    """``AE (Adverse Events)``: the text of a domain box."""
    return f"{dataset} ({label})"


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def anchor(*parts: str) -> str:
    """A PDF destination name made of safe characters."""
    return "_".join(_SAFE.sub("_", p) for p in parts)
