"""The documents define.xml links to (issue 19): the annotated CRF, the cSDRG and the ADRG.

The PDFs are read back with pypdf, as a reviewer's tool would: every define.xml PDFPageRef must land
on a page that holds the variable's annotation; every raw field of the data dictionary is on its
form's pages with its annotation or [NOT SUBMITTED]; every explained validation finding is in a
guide with its explanation, an unexplained one is marked TO EXPLAIN.  Unit tests on literal
mappings check the annotation wording and the page matching.
"""

from __future__ import annotations

import functools
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree

pypdf = pytest.importorskip("pypdf")

from cdisc_pipe.documents import document_hrefs  # noqa: E402
from cdisc_pipe.documents.acrf import build_acrf  # noqa: E402
from cdisc_pipe.documents.annotations import NOT_SUBMITTED, Target, field_annotations  # noqa: E402
from cdisc_pipe.documents.docx import render_docx  # noqa: E402
from cdisc_pipe.documents.model import Document, Para, Table, ToWrite  # noqa: E402
from cdisc_pipe.documents.pages import apply_acrf_pages, pages_for  # noqa: E402
from cdisc_pipe.documents.pdf import render_acrf, render_document  # noqa: E402
from cdisc_pipe.paths import default_mappings, default_specs  # noqa: E402
from cdisc_pipe.sdtm.mapping import load_mappings  # noqa: E402
from cdisc_pipe.spec import load_specs  # noqa: E402
from cdisc_pipe.spec.model import WhereCondition  # noqa: E402

ODM = "http://www.cdisc.org/ns/odm/v1.3"
DEF = "http://www.cdisc.org/ns/def/v2.1"


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def pdf_pages(path: Path) -> list[str]:
    """The text of every page, whitespace collapsed (read once per file and content)."""
    data = Path(path).read_bytes()
    return list(_pages_of(data))


@functools.lru_cache(maxsize=8)
def _pages_of(data: bytes) -> tuple[str, ...]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return tuple(norm(p.extract_text() or "") for p in reader.pages)


def page_refs(define: Path) -> list[tuple[str, str, list[int], list[tuple[str, list[str]]]]]:
    """(ItemDef OID, Name, pages, where conditions (variable, values)) of every aCRF PDFPageRef."""
    root = etree.parse(str(define)).getroot()
    ns = {"odm": ODM, "def": DEF}
    acrf = {el.get("leafID") for el in root.iterfind(".//def:AnnotatedCRF/def:DocumentRef", ns)}
    names = {i.get("OID"): i.get("Name") for i in root.iterfind(".//odm:ItemDef", ns)}
    where: dict[str, list[tuple[str, list[str]]]] = {}
    clauses = {}
    for wc in root.iterfind(".//def:WhereClauseDef", ns):
        clauses[wc.get("OID")] = [(names.get(rc.get(f"{{{DEF}}}ItemOID"), ""),
                                   [cv.text or "" for cv in rc.iterfind("odm:CheckValue", ns)])
                                  for rc in wc.iterfind("odm:RangeCheck", ns)]
    for ref in root.iterfind(".//def:ValueListDef/odm:ItemRef", ns):
        wcr = ref.find("def:WhereClauseRef", ns)
        if wcr is not None:
            where[ref.get("ItemOID")] = clauses.get(wcr.get("WhereClauseOID"), [])
    out = []
    for item in root.iterfind(".//odm:ItemDef", ns):
        for dref in item.iterfind("def:Origin/def:DocumentRef", ns):
            if dref.get("leafID") not in acrf:
                continue
            for pr in dref.iterfind("def:PDFPageRef", ns):
                if pr.get("PageRefs"):
                    pages = [int(x) for x in pr.get("PageRefs").split()]
                else:
                    pages = list(range(int(pr.get("FirstPage")), int(pr.get("LastPage")) + 1))
                out.append((item.get("OID"), item.get("Name"), pages, where.get(item.get("OID"), [])))
    return out


def check_page_refs(folder: Path) -> int:
    """Every aCRF PDFPageRef of ``folder/define.xml`` lands on a page holding the annotation."""
    pages = pdf_pages(folder / "acrf.pdf")
    refs = page_refs(folder / "define.xml")
    assert refs, "define.xml has no aCRF page reference"
    bad = []
    for oid, name, nums, conds in refs:
        for n in nums:
            if not 1 <= n <= len(pages):
                bad.append((oid, n, "no such page"))
                continue
            text = pages[n - 1]
            if not re.search(rf"(?<![A-Z0-9_]){re.escape(name)}(?![A-Z0-9_])", text):
                bad.append((oid, n, f"{name} not on the page"))
            for var, values in conds:  # the test or qualifier the value-level entry is about
                if (var.endswith("TESTCD") or var == "QNAM") and var in text and \
                        not any(v in text for v in values):
                    bad.append((oid, n, f"none of {var} {values} on the page"))
    assert not bad, bad[:10]
    return len(refs)


def outline(path: Path) -> list[tuple[str, int, list]]:
    reader = pypdf.PdfReader(str(path))

    def walk(items) -> list:
        out: list = []
        for it in items:
            if isinstance(it, list):
                out[-1][2].extend(walk(it))
            else:
                out.append((it.title, reader.get_destination_page_number(it) + 1, []))
        return out

    return walk(reader.outline)


# ------------------------------------------------------------------------------------------------
# the bundled study's run


def test_run_writes_the_documents_define_links(bundled_run: Path):
    spec = load_specs(default_specs())
    hrefs = document_hrefs(spec)
    assert hrefs == {"acrf": "acrf.pdf", "csdrg": "csdrg.pdf", "adrg": "adrg.pdf"}
    for rel in ("sdtm/acrf.pdf", "sdtm/csdrg.pdf", "sdtm/csdrg.docx", "adam/adrg.pdf", "adam/adrg.docx"):
        assert (bundled_run / rel).is_file(), rel
    manifest = json.loads((bundled_run / "manifest.json").read_text())
    for rel in ("sdtm/acrf.pdf", "sdtm/csdrg.pdf", "sdtm/csdrg.docx", "adam/adrg.pdf", "adam/adrg.docx",
                "sdtm/_stage/acrf_pages.json"):
        assert len(manifest["outputs"][rel]["sha256"]) == 64, rel
    for rel in ("sdtm/acrf.pdf", "sdtm/csdrg.pdf", "adam/adrg.pdf"):
        info = pypdf.PdfReader(str(bundled_run / rel)).metadata
        assert info["/CreationDate"] == info["/ModDate"] == "D:20250630000000+00'00'"  # the spec's date


def test_every_define_page_reference_lands_on_the_annotation(bundled_run: Path):
    n = check_page_refs(bundled_run / "sdtm")
    assert n >= 150  # every collected variable and value-level result of the bundled study
    # the pages are the generated PDF's, not the spec's placeholders: AETERM is on the AE form
    refs = {oid: nums for oid, _, nums, _ in page_refs(bundled_run / "sdtm" / "define.xml")}
    forms = {title.split(". ", 1)[1]: page for title, page, _ in
             next(kids for t, _, kids in outline(bundled_run / "sdtm" / "acrf.pdf") if t == "Forms")}
    assert refs["IT.AE.AETERM"] == [forms["Adverse events"]]


def test_every_raw_field_is_on_its_form_annotated_or_not_submitted(bundled_run: Path):
    from cdisc_pipe.raw import read_export

    raw = read_export(Path(__file__).resolve().parents[1] / "raw")
    pages = pdf_pages(bundled_run / "sdtm" / "acrf.pdf")
    marks = outline(bundled_run / "sdtm" / "acrf.pdf")
    top = [t for t, _, _ in marks]
    assert top[:4] == ["Annotated CRF", "Table of contents", "Forms", "Visits"]
    forms = next(kids for t, _, kids in marks if t == "Forms")
    titles = list(dict.fromkeys(raw.dictionary["form_title"]))
    assert [t.split(". ", 1)[1] for t, _, _ in forms] == titles
    starts = [p for _, p, _ in forms] + [len(pages) + 1]
    spec = load_specs(default_specs())
    annotated = field_annotations(raw.dictionary, load_mappings(default_mappings(), spec), spec)
    missing = []
    for i, (form, fa) in enumerate(annotated.items()):
        text = " ".join(pages[starts[i] - 1:starts[i + 1] - 1])
        for fld, anns in fa.fields.items():
            assert anns, (form, fld)
            if not re.search(rf"(?<![A-Z0-9_]){re.escape(fld)}(?![A-Z0-9_])", text):
                missing.append((form, fld))
            for a in anns:
                if norm(a.text) not in text:
                    missing.append((form, fld, a.text))
    assert not missing, missing[:10]
    assert sum(len(fa.fields) for fa in annotated.values()) == len(raw.dictionary)
    # visits bookmarks: the trial design's visits, each with the forms collected there
    visits = next(kids for t, _, kids in marks if t == "Visits")
    assert [t for t, _, _ in visits][:3] == ["SCREENING", "LEUKAPHERESIS", "LYMPHODEPLETION"]
    screening = [t for t, _, _ in visits[0][2]]
    assert any(t.endswith("Enrolment and informed consent") for t in screening)


def test_acrf_wording_follows_the_conventions(bundled_run: Path):
    pages = pdf_pages(bundled_run / "sdtm" / "acrf.pdf")
    text = " ".join(pages)
    for phrase in ("AE (Adverse Events)", "AETERM", "AESTDTC", "SUPPAE.QVAL when QNAM = 'AEDLT'",
                   "LBORRES when LBTESTCD = 'WBC'", "when EXYN = 'Y' then EX", "DS (Disposition)",
                   "RSORRES when RSTESTCD = 'OVRLRESP'", "VISIT / VISITNUM",
                   "ARMNRS = 'SCREEN FAILURE' when ELIGYN = 'N'",
                   "[NOT SUBMITTED] EDC metadata, not a question of the form"):
        assert phrase in text, phrase
    # a long findings form (test code collected): the codes it can hold, as submitted
    assert re.search(r"LBORRES when LBTESTCD in \([^)]*\bALT\b", text)


def test_guides_carry_every_finding_with_its_explanation(bundled_run: Path):
    report = json.loads((bundled_run / "reports" / "validation.json").read_text())
    guides = " ".join(pdf_pages(bundled_run / "sdtm" / "csdrg.pdf") + pdf_pages(bundled_run / "adam" / "adrg.pdf"))
    rows = report["by_rule_dataset"]
    assert rows
    for r in rows:
        assert r["rule"] in guides, r["rule"]
        if r.get("explanation"):
            assert norm(r["explanation"])[:60] in guides, r["rule"]
    unexplained = [r for r in rows if not r.get("explanation")]
    assert unexplained and "TO EXPLAIN" in guides
    csdrg = " ".join(pdf_pages(bundled_run / "sdtm" / "csdrg.pdf"))
    for heading in ("1 Introduction", "1.3 Study Data Standards and Dictionary Inventory", "2 Protocol Description",
                    "2.3 Trial Design Datasets", "3 Subject Data Description", "3.2 Annotated CRFs",
                    "3.3 SDTM Subject Domains", "4 Data Conformance Summary", "4.2 Issues Summary", "5 Traceability"):
        assert heading in csdrg, heading
    adrg = " ".join(pdf_pages(bundled_run / "adam" / "adrg.pdf"))
    for heading in ("3 Analysis Considerations Related to Multiple Analysis Datasets", "3.3 Analysis Populations",
                    "4.1 Data Dependencies", "5.2 Analysis Datasets", "6 Data Conformance Summary",
                    "7 Submission of Programs"):
        assert heading in adrg, heading
    assert "TO WRITE:" in csdrg and "TO WRITE:" in adrg
    assert "SAFFL" in adrg and "ADSL" in adrg


def test_docx_drafts_are_editable_and_dated_by_the_spec(bundled_run: Path):
    from datetime import datetime, timezone

    import docx

    d = docx.Document(str(bundled_run / "sdtm" / "csdrg.docx"))
    heads = [p.text for p in d.paragraphs if p.style.name.startswith("Heading")]
    assert "1 Introduction" in heads and "4.2 Issues Summary" in heads
    assert any(p.text.startswith("TO WRITE:") for p in d.paragraphs)
    # (python-docx 1.0 reads it back naive, later releases as UTC)
    assert d.core_properties.created.replace(tzinfo=timezone.utc) == datetime(2025, 6, 30, tzinfo=timezone.utc)
    assert len(d.tables) >= 5


def test_package_includes_the_documents(bundled_run: Path, tmp_path: Path):
    from cdisc_pipe.define import package

    res = package(bundled_run, tmp_path / "pkg")
    assert "m5/datasets/bcmacart01/tabulations/sdtm/acrf.pdf" in res.files
    assert "m5/datasets/bcmacart01/tabulations/sdtm/csdrg.pdf" in res.files
    assert "m5/datasets/bcmacart01/analysis/adam/datasets/adrg.pdf" in res.files
    assert not [m for m in res.missing if m.endswith(".pdf")]


# ------------------------------------------------------------------------------------------------
# determinism


def test_renders_are_byte_identical(bundled_run: Path):
    """A render in this process gives the bytes the pipeline's run wrote (same inputs, same bytes)."""
    from cdisc_pipe.raw import read_export

    spec = load_specs(default_specs())
    raw = read_export(Path(__file__).resolve().parents[1] / "raw")
    crf = build_acrf(raw.dictionary, load_mappings(default_mappings(), spec), spec, raw.forms)
    data, pages = render_acrf(crf)
    assert data == (bundled_run / "sdtm" / "acrf.pdf").read_bytes()
    stored = json.loads((bundled_run / "sdtm" / "_stage" / "acrf_pages.json").read_text())
    assert {f["form"]: f["page"] for f in stored["forms"]} == {f.name: pages[(f.name, "")] for f in crf.forms}
    doc = Document("Title", "Sub", "S1", "Sponsor", "2025-06-30T00:00:00",
                   sections=[])
    doc.section("One", Para("x"), Table(("a", "b"), (("1", "2"),)))
    assert render_document(doc) == render_document(doc)
    assert render_docx(doc) == render_docx(doc)


# ------------------------------------------------------------------------------------------------
# literal tables


DICTIONARY = pd.DataFrame([
    # form, form_title, field, label, type, codes, note
    ("ae", "Adverse events", "SUBJID", "Subject", "text", None, "EDC metadata"),
    ("ae", "Adverse events", "AETERM", "Term <b>& 'verbatim'</b>", "text", None, None),
    ("ae", "Adverse events", "AEDLT", "DLT?", "text", "Y=Yes|N=No", None),
    ("ae", "Adverse events", "AEOUT", "Outcome", "text", "1=Recovered|5=Fatal", None),
    ("ae", "Adverse events", "AENOTE", "Free note", "text", None, None),
    ("ae", "Adverse events", "AESCRAP", "Scrap", "text", None, None),
    ("vs", "Vital signs", "SUBJID", "Subject", "text", None, "EDC metadata"),
    ("vs", "Vital signs", "SYSBP", "Systolic", "integer", None, None),
    ("xx", "Unused form", "XFIELD", "Anything", "text", None, None),
], columns=["form", "form_title", "field", "label", "type", "codes", "note"]).assign(
    codelist=None, required="Y", unit=None)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    spec = load_specs(default_specs())
    tmp = tmp_path_factory.mktemp("maps")
    (tmp / "ae.yaml").write_text("""
dataset: AE
sources: [{form: ae}]
variables:
  AETERM: {copy: AETERM}
  AESDTH:
    when:
      - if: [{field: AEOUT, op: eq, value: "5"}]
        then: {value: "Y"}
supp:
  - {qnam: AEDLT, qlabel: Dose Limiting Toxicity, rule: {assign: {field: AEDLT, codelist: CL.NY}}}
not_submitted: {AENOTE: free text kept in the EDC only}
""")
    (tmp / "ds.yaml").write_text("""
dataset: DS
sources:
  - form: ae
    where: [{field: AEOUT, op: eq, value: "5"}]
    reason: only fatal events end the study
    variables: {DSTERM: {value: DEATH}, DSDECOD: {value: DEATH}, DSCAT: {value: DISPOSITION EVENT}}
""")
    (tmp / "vs.yaml").write_text("""
dataset: VS
sources:
  - form: vs
    transpose:
      present: [VSORRES]
      tests:
        - set: {VSTESTCD: SYSBP, VSTEST: Systolic Blood Pressure}
          variables: {VSORRES: {copy: SYSBP}, VSORRESU: {value: mmHg}}
""")
    return spec, load_mappings(tmp, spec)


def test_annotations_of_literal_mappings(small):
    spec, mappings = small
    fa = field_annotations(DICTIONARY, mappings, spec)
    texts = {(f, k): [a.text for a in v] for f, x in fa.items() for k, v in x.fields.items()}
    assert texts[("ae", "AETERM")] == ["AETERM"]
    assert texts[("ae", "AEDLT")] == ["SUPPAE.QVAL when QNAM = 'AEDLT'"]
    assert texts[("ae", "AEOUT")] == ["AESDTH = 'Y' when AEOUT = '5'", "when AEOUT = '5' then DS"]
    assert texts[("ae", "AENOTE")] == [f"{NOT_SUBMITTED} free text kept in the EDC only"]
    assert texts[("ae", "AESCRAP")] == [NOT_SUBMITTED]
    assert texts[("ae", "SUBJID")] == ["USUBJID"]
    assert texts[("vs", "SYSBP")] == ["VSORRES when VSTESTCD = 'SYSBP'"]
    assert texts[("xx", "XFIELD")] == [f"{NOT_SUBMITTED} form not mapped to SDTM"]
    assert fa["ae"].datasets == ["AE", "DS"]
    assert [a.text for a in fa["ae"].constants] == ["DSTERM = 'DEATH'", "DSDECOD = 'DEATH'",
                                                     "DSCAT = 'DISPOSITION EVENT'"]
    targets = {t for a in fa["vs"].fields["SYSBP"] for t in a.targets}
    assert targets == {Target("VS", "VSORRES", (("VSTESTCD", ("SYSBP",)),))}


def test_literal_acrf_escapes_text_and_records_pages(small):
    spec, mappings = small
    crf = build_acrf(DICTIONARY, mappings, spec, {"ae": pd.DataFrame({"FOLDER": ["AELOG"]})})
    data, pages = render_acrf(crf)
    reader = pypdf.PdfReader(io.BytesIO(data))
    text = norm(reader.pages[pages[("ae", "AETERM")] - 1].extract_text())
    assert "Term <b>& 'verbatim'</b>" in text and "AETERM" in text  # markup shown as text, not applied
    assert pages[("xx", "XFIELD")] > pages[("ae", "AETERM")]


def test_page_matching_prefers_the_stated_test():
    pages = {Target("LB", "LBORRES", (("LBTESTCD", ("WBC",)),)): [5],
             Target("LB", "LBORRES", (("LBTESTCD", ("ALT", "AST")),)): [7],
             Target("LB", "LBORRES"): [9],
             Target("SUPPAE", "QVAL", (("QNAM", ("AETERM*",)),)): [3]}
    eq = lambda var, *v: [WhereCondition(variable=var, comparator="EQ" if len(v) == 1 else "IN", values=list(v))]  # noqa: E731
    assert pages_for(pages, "LB", "LBORRES", eq("LBTESTCD", "WBC")) == [5]
    assert pages_for(pages, "LB", "LBORRES", eq("LBTESTCD", "AST")) == [7]
    assert pages_for(pages, "LB", "LBORRES", eq("LBTESTCD", "CRP")) == [9]  # only the plain annotation says it
    assert pages_for(pages, "LB", "LBORRES") == [5, 7, 9]
    assert pages_for(pages, "SUPPAE", "QVAL", eq("QNAM", "AETERM1", "AETERM2")) == [3]
    assert pages_for(pages, "SUPPAE", "QVAL", eq("QNAM", "AEDLT")) == []


def test_apply_acrf_pages_replaces_placeholders_and_drops_unannotated_ones():
    spec = load_specs(default_specs())
    new = apply_acrf_pages(spec, {Target("AE", "AETERM"): [21, 22]})
    docs = new.datasets["AE"].variable("AETERM").origin.documents
    assert [(d.document, d.pages) for d in docs] == [("LF.acrf", "21 22")]
    assert new.datasets["AE"].variable("AESER").origin.documents == []  # annotated nowhere
    assert new.datasets["ADSL"] == spec.datasets["ADSL"]  # analysis datasets untouched
    assert spec.datasets["AE"].variable("AETERM").origin.documents[0].pages == "14"  # the input is not changed


def test_guide_text_is_escaped_and_to_write_is_visible():
    doc = Document("Guide", "Draft", "S1", None, "2025-06-30T00:00:00")
    doc.section("Odd <text> & more", Para("a < b & c > d"), ToWrite("say why"))
    reader = pypdf.PdfReader(io.BytesIO(render_document(doc)))
    text = norm(" ".join(p.extract_text() for p in reader.pages))
    assert "1 Odd <text> & more" in text and "a < b & c > d" in text and "TO WRITE: say why" in text


def test_not_submitted_entries_that_say_nothing_true_are_reported(small, tmp_path):
    from cdisc_pipe.documents.annotations import not_submitted_problems

    spec, mappings = small
    ae = mappings.datasets["AE"].model_copy(update={"not_submitted": {"AENOTE": "ok", "AETERM": "wrong", "NOPE": "x"}})
    m = mappings.model_copy(update={"datasets": {**mappings.datasets, "AE": ae}})
    problems = not_submitted_problems(m, DICTIONARY, field_annotations(DICTIONARY, m, spec))
    assert len(problems) == 2
    assert "not_submitted.AETERM: ae.AETERM is read by a rule" in problems[0] + problems[1]
    assert "not_submitted.NOPE: no such field" in problems[0] + problems[1]


def test_guides_have_the_same_bytes_with_or_without_a_second_process_and_a_failure_writes_nothing(
        bundled_run, tmp_path, monkeypatch):
    """The PDFs are laid out in a second process while the DOCX files are made: the same bytes as
    in one process; a DOCX that fails stops the PDFs' process and no guide is written."""
    import shutil

    import cdisc_pipe.documents.docx as docx_module
    from cdisc_pipe import parallel
    from cdisc_pipe.documents import write_reviewer_guides

    out = tmp_path / "outputs"
    shutil.copytree(bundled_run, out)
    spec = load_specs(default_specs())

    def guides() -> dict[Path, bytes]:
        files = write_reviewer_guides(out, spec, default_specs(), default_mappings(), None, None)
        assert sorted(p.suffix for p in files) == [".docx", ".docx", ".pdf", ".pdf"]
        return {p: p.read_bytes() for p in files}
    two = guides()
    monkeypatch.setenv(parallel.PROCESSES_ENV, "1")
    assert guides() == two
    monkeypatch.delenv(parallel.PROCESSES_ENV)
    for p in two:
        p.unlink()

    def broken(doc):
        raise ValueError("no DOCX today")
    monkeypatch.setattr(docx_module, "render_docx", broken)
    with pytest.raises(ValueError, match="no DOCX today"):
        write_reviewer_guides(out, spec, default_specs(), default_mappings(), None, None)
    assert not any(p.exists() for p in two)
