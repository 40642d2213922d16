"""What the reviewer's guides are made from, and the parts the cSDRG and the ADRG share.

:class:`GuideInputs` holds metadata and tables only (no paths, no I/O): the pipeline gathers them
at the edge (:func:`cdisc_pipe.documents.write_reviewer_guides`).  The sections the PHUSE
templates give both guides - standards inventory, protocol number and title, conformance summary -
are built here once.  Every validation finding of a guide's datasets becomes a row of its issues
table, grouped by rule, dataset and explanation; a group without an explanation says ``TO EXPLAIN``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cdisc_pipe import __version__
from cdisc_pipe.documents.model import TO_EXPLAIN, Para, Section, Table, ToWrite
from cdisc_pipe.spec.model import StudySpec

SEVERITY_ORDER = {"Error": 0, "Warning": 1, "Notice": 2}


@dataclass
class DatasetInfo:
    """A dataset as written: name, label, class, records (from the written files)."""

    name: str
    label: str
    dataset_class: str
    records: int
    structure: str = ""


@dataclass
class GuideInputs:
    """Everything a reviewer's guide is filled from.

    Attributes:
        spec: the study spec (plans' methods attached).
        tabulation, analysis: the datasets written, in define.xml order.
        frames: the SDTM/ADaM datasets the guides quote (TS, TA, TE, TV, TI, DM, ADSL), by name.
        design: the trial design (``mappings/trial_design.yaml``, as read).
        mapping_descriptions: SDTM dataset -> (description, source forms) from the mappings.
        traceability: ``sdtm/_stage/traceability.csv`` (form, dataset, records in/out, reasons).
        findings: every validation finding (rule, severity, dataset, usubjid, message, explanation, source).
        summary: the validation summary (counts, CT packages, rules run).
        plans: ADaM dataset -> {"sources": [...], "methods": {variable: text}, "path": file name}.
        raw_format: how the raw export was read (e.g. "CSV folder", "ODM-XML 1.3.2 file").
        forms: raw forms of the data dictionary (name -> title), for the aCRF section.
        acrf_href, define_hrefs: the file names define.xml links (relative to define.xml).
    """

    spec: StudySpec
    tabulation: list[DatasetInfo]
    analysis: list[DatasetInfo]
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    design: dict[str, Any] = field(default_factory=dict)
    mapping_descriptions: dict[str, tuple[str | None, list[str]]] = field(default_factory=dict)
    traceability: pd.DataFrame | None = None
    findings: pd.DataFrame | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw_format: str | None = None
    forms: dict[str, str] = field(default_factory=dict)
    acrf_href: str | None = "acrf.pdf"


def text(value: object) -> str:
    """A cell value as text ("" for missing); whole floats without ".0"."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def ts_values(inputs: GuideInputs) -> dict[str, list[str]]:
    ts = inputs.frames.get("TS")
    out: dict[str, list[str]] = {}
    if ts is None or "TSPARMCD" not in ts:
        return out
    for code, val in zip(ts["TSPARMCD"], ts.get("TSVAL", pd.Series([None] * len(ts)))):
        out.setdefault(text(code), []).append(text(val))
    return out


def acronyms(extra: list[tuple[str, str]] = ()) -> Table:
    rows = [("aCRF", "Annotated Case Report Form"), ("ADaM", "Analysis Data Model"),
            ("CDISC", "Clinical Data Interchange Standards Consortium"), ("CRF", "Case Report Form"),
            ("CT", "Controlled Terminology"), ("EDC", "Electronic Data Capture"),
            ("MedDRA", "Medical Dictionary for Regulatory Activities"), ("ODM", "Operational Data Model"),
            ("SDTM", "Study Data Tabulation Model"), ("TS", "Trial Summary"),
            ("WHODrug", "WHO Drug Dictionary"), *extra]
    return Table(("Acronym", "Meaning"), tuple(sorted(rows, key=lambda r: r[0].lower())), (1, 4))


def standards_table(spec: StudySpec, purpose: str) -> Table:
    """Standards and dictionaries the datasets use (spec ``standards`` and ``dictionaries``)."""
    rows = []
    for s in spec.standards:
        if s.type == "IG" and ((purpose == "Tabulation") != s.name.startswith("ADaM")):
            rows.append(("Data standard", f"{s.name}", s.version))
        elif s.type == "CT" and (purpose == "Analysis" or s.publishing_set != "ADaM"):
            rows.append(("Controlled Terminology", f"CDISC/NCI {s.publishing_set} CT", s.version))
    rows.append(("Data definitions", "Define-XML", "2.1"))
    for d in sorted(spec.dictionaries.values(), key=lambda d: d.oid):
        rows.append(("Dictionary", d.name, d.version))
    return Table(("Kind", "Standard or dictionary", "Version"), tuple(rows), (2, 3, 2))


def protocol_number_and_title(inputs: GuideInputs) -> list:
    ts = ts_values(inputs)
    st = inputs.spec.study
    title = "; ".join(ts.get("TITLE", [])) or st.description
    rows = [("Protocol number", st.protocol_name), ("Protocol title", title),
            ("Study identifier (STUDYID)", st.name)]
    for code, label in (("TPHASE", "Trial phase"), ("INDIC", "Indication"), ("TRT", "Investigational therapy")):
        if ts.get(code):
            rows.append((label, ", ".join(ts[code])))
    return [Table(("Item", "Value"), tuple(rows), (1, 3)),
            ToWrite("Protocol versions and the amendments that changed data collection or interpretation.")]


def findings_for(inputs: GuideInputs, purpose: str) -> pd.DataFrame:
    """The validation findings a guide reports: those on its datasets (stage findings of the ADaM
    stage go to the ADRG; findings naming no dataset go to the cSDRG unless their value names an
    analysis dataset)."""
    f = inputs.findings
    if f is None or not len(f):
        return pd.DataFrame(columns=["severity", "rule", "dataset", "usubjid", "message", "explanation"])
    analysis = {d.name for d in inputs.spec.by_purpose("Analysis")}
    ds = f["dataset"].astype("object").where(f["dataset"].notna(), None)
    value = f["value"].astype("object") if "value" in f else pd.Series([None] * len(f), index=f.index)
    source = f["source"].astype("object") if "source" in f else pd.Series([""] * len(f), index=f.index)
    is_adam = ds.isin(analysis) | (source == "stage:adam") | (ds.isna() & value.isin(analysis))
    return f[is_adam] if purpose == "Analysis" else f[~is_adam]


def issues_table(found: pd.DataFrame) -> Table:
    """One row per (severity, rule, dataset, explanation): message, count, subjects, explanation."""
    if not len(found):
        return Table(("Rule", "Dataset", "Severity", "Message", "Count", "Explanation"), ())
    f = found.copy()
    f["explanation"] = f["explanation"].astype("object").where(f["explanation"].notna(), None)
    for c in ("dataset", "usubjid", "message"):
        f[c] = f[c].astype("object").where(f[c].notna(), None) if c in f else None
    groups: dict[tuple, dict[str, Any]] = {}
    for row in f.itertuples(index=False):
        key = (SEVERITY_ORDER.get(row.severity, 9), row.rule, row.dataset or "", row.explanation or "")
        g = groups.setdefault(key, {"severity": row.severity, "message": row.message, "count": 0, "subjects": set()})
        g["count"] += 1
        if row.usubjid:
            g["subjects"].add(row.usubjid)
    rows = []
    for (_, rule, dataset, expl), g in sorted(groups.items()):
        n = f"{g['count']}" + (f" ({len(g['subjects'])} subj.)" if g["subjects"] else "")
        rows.append((rule, dataset, g["severity"], text(g["message"]), n, expl or f"{TO_EXPLAIN}"))
    return Table(("Rule", "Dataset", "Severity", "Message", "Count", "Explanation"), tuple(rows),
                 (2.2, 1, 1.1, 3.2, 1, 4.5))


def conformance_sections(parent: Section, inputs: GuideInputs, purpose: str) -> None:
    """"Conformance Inputs" and "Issues Summary" under ``parent``."""
    s = inputs.summary or {}
    ct = s.get("ct") or {}
    rows = [("Validator", f"cdisc-pipe {__version__} (its generic rules and the study's own rules)"),
            ("Rules run", f"{s.get('rules_run', '?')} of {s.get('rules_total', '?')} "
                          f"({s.get('rules_skipped', 0)} skipped, {s.get('rules_execution_error', 0)} failed to run)"),
            ("Controlled Terminology", ", ".join(f"{k}: {v}" for k, v in sorted(ct.items())) or
             f"not checked ({s.get('ct_reason') or 'no CT files given'})"),
            ("define.xml", "Define-XML 2.1, checked against the CDISC schema and against the datasets")]
    parent.sub("Conformance Inputs", Table(("Item", "Value"), tuple(rows), (1, 3)),
               ToWrite("If the datasets were also checked with another validator (e.g. the FDA's), name it, "
                       "its version and its rule set here, and reconcile its findings with the table below."))
    found = findings_for(inputs, purpose)
    table = issues_table(found)
    unexplained = sum(1 for r in table.rows if r[-1] == TO_EXPLAIN)
    lead = (f"{len(found)} finding(s) in {len(table.rows)} group(s): Errors "
            f"{int((found['severity'] == 'Error').sum()) if len(found) else 0}, Warnings "
            f"{int((found['severity'] == 'Warning').sum()) if len(found) else 0}, Notices "
            f"{int((found['severity'] == 'Notice').sum()) if len(found) else 0}. Explanations come from the "
            "study's validation settings (expected findings); a group without one is marked "
            f"{TO_EXPLAIN}.")
    sec = parent.sub("Issues Summary", Para(lead), table)
    if unexplained:
        sec.add(ToWrite(f"Explain the {unexplained} group(s) marked {TO_EXPLAIN} (or fix their cause), then "
                        "add the explanation to specs/settings/validation.yaml (expected) so that the next run "
                        "carries it."))
    elif not table.rows:
        sec.add(Para("The validation found no issue in these datasets."))
