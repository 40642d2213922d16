"""The documents define.xml links to: the annotated CRF, the cSDRG and the ADRG.

One module per document builds a document model from metadata with pure functions
(:mod:`~cdisc_pipe.documents.acrf`, :mod:`~cdisc_pipe.documents.csdrg`,
:mod:`~cdisc_pipe.documents.adrg`); rendering is at the edges (:mod:`~cdisc_pipe.documents.pdf` with
reportlab, :mod:`~cdisc_pipe.documents.docx` with python-docx).  The two functions here are the
pipeline's edge: they read what the documents need and write the files.

- :func:`write_acrf` (SDTM stage, before define.xml): ``acrf.pdf`` beside the SDTM define.xml and
  ``_stage/acrf_pages.json``, the pages each variable's annotation is on, which define.xml's
  PDFPageRefs take (:mod:`~cdisc_pipe.documents.pages`).
- :func:`write_reviewer_guides` (after validation): ``csdrg.pdf``/``.docx`` beside the SDTM
  define.xml and ``adrg.pdf``/``.docx`` beside the ADaM one.

File names are the ``href`` of the study's documents (``specs/study.yaml``), relative to the
define.xml that links them; without such a document the usual names are used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cdisc_pipe.documents.model import Document
from cdisc_pipe.spec.model import StudySpec

STAGE = "_stage"
DEFAULT_HREFS = {"acrf": "acrf.pdf", "csdrg": "csdrg.pdf", "adrg": "adrg.pdf"}
_GUIDE = {"csdrg": re.compile(r"sdrg|study data reviewer", re.IGNORECASE),
          "adrg": re.compile(r"adrg|analysis data reviewer", re.IGNORECASE)}

__all__ = ["document_hrefs", "write_acrf", "write_reviewer_guides", "AcrfWritten", "Document"]


def document_hrefs(spec: StudySpec) -> dict[str, str]:
    """Where each document goes, relative to its define.xml: the spec's AnnotatedCRF href, and the
    SupplementalDoc whose href or title names the reviewer's guide (Tabulation: cSDRG, Analysis: ADRG)."""
    out = dict(DEFAULT_HREFS)
    docs = sorted(spec.documents.values(), key=lambda d: d.oid)
    acrf = [d for d in docs if d.kind == "AnnotatedCRF"]
    if acrf:
        out["acrf"] = acrf[0].href
    for key, purpose in (("csdrg", "Tabulation"), ("adrg", "Analysis")):
        for d in docs:
            if d.kind == "SupplementalDoc" and d.purpose in (None, purpose) and \
                    (_GUIDE[key].search(d.href) or _GUIDE[key].search(d.title)):
                out[key] = d.href
                break
    return out


def _target(folder: Path, href: str) -> Path:
    """``folder/href`` when it stays inside the output root (the folder's parent); else the file name
    alone in ``folder``."""
    path = (folder / href).resolve()
    root = folder.resolve().parent
    if root in path.parents and "#" not in href:
        return path
    return folder / Path(href.split("#", 1)[0]).name


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


@dataclass(frozen=True)
class AcrfWritten:
    path: Path
    pages_file: Path
    forms: int
    pages: int
    problems: list[str]  # not_submitted entries that name no field or a field a rule reads


def write_acrf(raw: Any, spec: StudySpec, mappings_dir: Path, folder: Path, raw_format: str | None = None
               ) -> AcrfWritten:
    """Render the aCRF of ``raw`` (a :class:`~cdisc_pipe.raw.RawExport`) into ``folder`` (the SDTM
    folder holding define.xml) and the page table into ``folder/_stage/acrf_pages.json``."""
    from cdisc_pipe.documents.acrf import build_acrf
    from cdisc_pipe.documents.annotations import field_annotations, not_submitted_problems
    from cdisc_pipe.documents.pages import pages_to_json, variable_pages
    from cdisc_pipe.documents.pdf import render_acrf
    from cdisc_pipe.sdtm.mapping import load_mappings

    mappings = load_mappings(mappings_dir, spec)
    crf = build_acrf(raw.dictionary, mappings, spec, raw.forms)
    problems = not_submitted_problems(mappings, raw.dictionary,
                                      field_annotations(raw.dictionary, mappings, spec))
    data, field_pages = render_acrf(crf)
    path = _target(Path(folder), document_hrefs(spec)["acrf"])
    _atomic_write(path, data)
    pages = variable_pages(crf, field_pages)
    first = {f.name: field_pages[(f.name, "")] for f in crf.forms}
    info = {"raw_format": raw_format, "file": path.name,
            "forms": [{"form": f.name, "title": f.title, "page": first.get(f.name)} for f in crf.forms],
            "targets": json.loads(pages_to_json(pages))}
    pages_file = Path(folder) / STAGE / "acrf_pages.json"
    _atomic_write(pages_file, (json.dumps(info, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return AcrfWritten(path=path, pages_file=pages_file, forms=len(crf.forms), pages=max(field_pages.values(), default=0),
                       problems=problems)


def read_acrf_pages(folder: Path) -> dict | None:
    """The page table :func:`write_acrf` left in ``folder/_stage`` (None when there is none)."""
    path = Path(folder) / STAGE / "acrf_pages.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def spec_with_acrf_pages(spec: StudySpec, folder: Path) -> StudySpec:
    """``spec`` with the aCRF pages of ``folder/_stage/acrf_pages.json`` in its origins (unchanged when
    the folder has no aCRF page table)."""
    from cdisc_pipe.documents.pages import apply_acrf_pages, pages_from_json

    info = read_acrf_pages(folder)
    if info is None:
        return spec
    return apply_acrf_pages(spec, pages_from_json(json.dumps(info["targets"])))


def _dataset_infos(folder: Path, spec: StudySpec, purpose: str, written: list | None = None) -> list:
    """The datasets of a folder for a guide: from the writer's records of this run (``written``),
    else read from the folder's files."""
    from cdisc_pipe.define.consistency import written_from_folder
    from cdisc_pipe.documents.guides import DatasetInfo

    if not Path(folder).is_dir():
        return []
    out = []
    for w in written if written is not None else written_from_folder(folder, purpose):
        ds = spec.datasets.get(w.name.upper())
        out.append(DatasetInfo(name=w.name.upper(), label=w.label, records=w.records,
                               dataset_class=ds.dataset_class if ds else "", structure=ds.structure if ds else ""))
    order = {n: i for i, n in enumerate(spec.datasets)}
    return sorted(out, key=lambda d: (order.get(d.name, len(order)), d.name))


def _read(folder: Path, name: str) -> pd.DataFrame | None:
    from cdisc_pipe.xpt import read_xpt

    path = Path(folder) / f"{name.lower()}.xpt"
    return read_xpt(path) if path.is_file() else None


def guide_inputs(out_dir: Path, spec: StudySpec, specs_dir: Path | None, mappings_dir: Path | None,
                 findings: pd.DataFrame | None, summary: dict | None, written: dict[str, list] | None = None):
    """Read what the guides are filled from (the edge): written datasets (``written``: the writers'
    records by purpose, when the caller has them), trial design, mappings, traceability, plans."""
    from cdisc_pipe.documents.guides import GuideInputs

    out_dir = Path(out_dir)
    sdtm, adam = out_dir / "sdtm", out_dir / "adam"
    frames = {n: f for n in ("TS", "TA", "TE", "TV", "TI", "DM", "RELREC") if (f := _read(sdtm, n)) is not None}
    adsl = _read(adam, "ADSL")
    if adsl is not None:
        frames["ADSL"] = adsl
    design: dict = {}
    descriptions: dict[str, tuple[str | None, list[str]]] = {}
    if mappings_dir is not None and Path(mappings_dir).is_dir():
        from cdisc_pipe.sdtm.mapping import load_mappings

        m = load_mappings(mappings_dir, spec)
        design = m.design
        for name, dm in m.datasets.items():
            forms = list(dict.fromkeys([s.form for s in dm.sources] + [j.form for s in dm.sources for j in s.join]))
            descriptions[name] = (dm.description, forms)
    trace_path = sdtm / STAGE / "traceability.csv"
    trace = pd.read_csv(trace_path, dtype=str, keep_default_na=False) if trace_path.is_file() else None
    plans: dict[str, dict] = {}
    if specs_dir is not None and (Path(specs_dir) / "plans").is_dir():
        from cdisc_pipe.adam.plan import load_plans

        for name, p in load_plans(Path(specs_dir) / "plans", spec).items():
            plans[name] = {"sources": p.sources(), "methods": dict(p.methods), "path": Path(p.path).name,
                           "sha256": p.sha256}
    acrf = read_acrf_pages(sdtm) or {}
    return GuideInputs(
        spec=spec, tabulation=_dataset_infos(sdtm, spec, "Tabulation", (written or {}).get("Tabulation")),
        analysis=_dataset_infos(adam, spec, "Analysis", (written or {}).get("Analysis")),
        frames=frames, design=design, mapping_descriptions=descriptions, traceability=trace, findings=findings,
        summary=dict(summary or {}), plans=plans, raw_format=_FORMATS.get(acrf.get("raw_format"), acrf.get("raw_format")),
        forms={f["form"]: f["title"] for f in acrf.get("forms", [])}, acrf_href=acrf.get("file") or document_hrefs(spec)["acrf"])


_FORMATS = {"csv": "a folder of CSV files with a data dictionary", "xlsx": "an xlsx workbook with a data dictionary",
            "odm": "a CDISC ODM-XML 1.3.2 file", "sas": "a folder of SAS datasets"}


def write_reviewer_guides(out_dir: Path, spec: StudySpec, specs_dir: Path | None, mappings_dir: Path | None,
                          findings: pd.DataFrame | None, summary: dict | None,
                          written: dict[str, list] | None = None) -> list[Path]:
    """Write the cSDRG (beside ``sdtm/define.xml``) and the ADRG (beside ``adam/define.xml``) as PDF
    and DOCX; a guide whose dataset folder does not exist is not written.  Returns the files written.

    ``written``: the writers' records (``WrittenDataset``) by purpose, when the caller just wrote the
    datasets; a purpose not given is described from its folder's files."""
    from cdisc_pipe.documents.adrg import build_adrg
    from cdisc_pipe.documents.csdrg import build_csdrg
    from cdisc_pipe.documents.docx import render_docx
    from cdisc_pipe.parallel import Forked

    inputs = guide_inputs(out_dir, spec, specs_dir, mappings_dir, findings, summary, written)
    hrefs = document_hrefs(spec)
    guides = [(_target(Path(out_dir) / sub, hrefs[key]), build(inputs))
              for key, sub, build, have in (("csdrg", "sdtm", build_csdrg, inputs.tabulation),
                                            ("adrg", "adam", build_adrg, inputs.analysis)) if have]
    # the PDFs are laid out in a second process while the DOCX files are made here (the same bytes
    # either way: cdisc_pipe.parallel.Forked); the files are written here, in order
    pdfs = Forked(_render_pdfs, [doc for _, doc in guides]) if guides else None
    try:
        docxs = [render_docx(doc) for _, doc in guides]
    except BaseException:
        if pdfs is not None:
            pdfs.cancel()
        raise
    files = []
    for (pdf, _), pdf_bytes, docx_bytes in zip(guides, pdfs.result() if pdfs else [], docxs):
        _atomic_write(pdf, pdf_bytes)
        _atomic_write(pdf.with_suffix(".docx"), docx_bytes)
        files += [pdf, pdf.with_suffix(".docx")]
    return files


def _render_pdfs(docs: list) -> list[bytes]:
    from cdisc_pipe.documents.pdf import render_document

    return [render_document(doc) for doc in docs]
