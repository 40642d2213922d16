"""Spec model, strict loader and P21 workbook round trip."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.spec import load_specs
from cdisc_pipe.spec.xlsx import export_xlsx, import_xlsx, write_yaml_specs

STUDY = """
study: {oid: STDY.T, name: T01, protocol_name: T01, description: test study, metadata_datetime: "2025-01-01T00:00:00"}
standards:
  - {oid: STD.SDTMIG.3-4, name: SDTMIG, type: IG, version: "3.4"}
  - {oid: STD.CT, name: CDISC/NCI, type: CT, publishing_set: SDTM, version: "2025-03-28", ct_file: sdtm-ct-2025-03-28.txt}
documents:
  - {oid: LF.acrf, title: Annotated CRF, href: acrf.pdf, kind: AnnotatedCRF}
dictionaries:
  - {oid: DICT.MEDDRA, name: MedDRA, dictionary: MEDDRA, version: "27.0"}
methods:
  - {oid: MT.DY, name: Study day, description: "=date - RFSTDTC + 1 when on or after RFSTDTC", documents: [{document: LF.acrf, pages: "3 4"}]}
comments:
  - {oid: COM.X, description: "a comment, with | bars and 'quotes' <and> markup"}
"""

LB = """
name: LB
label: Laboratory Test Results
class: FINDINGS
structure: One record per test per visit per subject
keys: [STUDYID, USUBJID, LBTESTCD, VISITNUM]
purpose: Tabulation
standard: STD.SDTMIG.3-4
domain: LB
comment: COM.X
variables:
  - {name: STUDYID, label: Study Identifier, data_type: text, length: 10, core: Req, role: Identifier, origin: {type: Assigned, source: Sponsor}}
  - {name: USUBJID, label: Unique Subject Identifier, data_type: text, length: 30, core: Req, origin: {type: Collected, source: Investigator, documents: [{document: LF.acrf, pages: "1"}]}}
  - {name: LBTESTCD, label: Lab Test Short Name, data_type: text, length: 8, core: Req, codelist: CL.LBTESTCD, origin: {type: Assigned, source: Sponsor}}
  - {name: LBORRES, label: Result or Finding in Original Units, data_type: text, length: 200, core: Exp, origin: {type: Collected, source: Vendor}}
  - {name: VISITNUM, label: Visit Number, data_type: float, significant_digits: 2, core: Exp, origin: {type: Derived}, method: MT.LOCAL}
  - {name: LBDY, label: Study Day of Specimen Collection, data_type: integer, core: Perm, origin: {type: Derived}, method: MT.DY}
value_level:
  - {variable: LBORRES, where: [{variable: LBTESTCD, comparator: EQ, values: [ALB]}], data_type: float, length: 8, origin: {type: Collected, source: Vendor}}
  - {variable: LBORRES, where: [{variable: LBTESTCD, comparator: IN, values: [HGB, "A, B"]}, {variable: VISITNUM, comparator: NE, values: ["1"]}], data_type: text, length: 20, origin: {type: Collected, source: Vendor}}
methods:
  - {oid: MT.LOCAL, name: Visit number, description: From the visit plan}
"""

CL = """
oid: CL.LBTESTCD
name: Laboratory Test Code
nci_code: C65047
extensible: true
standard: STD.CT
terms:
  - {submission_value: ALB, decode: Albumin, nci_code: C64431}
  - {submission_value: "=HYPERLINK(1)", decode: "-sponsor +term @x", extended: true}
"""

MEDDRA = """
oid: CL.AEDECOD
name: MedDRA preferred terms
dictionary: DICT.MEDDRA
"""


def make_specs(tmp: Path, **overrides: str) -> Path:
    files = {"study.yaml": STUDY, "sdtm/lb.yaml": LB, "codelists/lbtestcd.yaml": CL, "codelists/aedecod.yaml": MEDDRA}
    files.update(overrides)
    for rel, text in files.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text), encoding="utf-8")
    return tmp


def test_fixture_spec_loads(tmp_path):
    spec = load_specs(make_specs(tmp_path))
    lb = spec.dataset("LB")
    assert lb.variable_names == ["STUDYID", "USUBJID", "LBTESTCD", "LBORRES", "VISITNUM", "LBDY"]
    assert lb.key_sequence("LBTESTCD") == 3
    assert lb.variable("LBORRES").has_value_level
    assert "MT.LOCAL" in spec.methods  # declared in the dataset file, merged study-wide
    assert len(spec.where_clauses) == 2
    assert all(isinstance(vl.where, str) for vl in lb.value_level)


def test_bundled_specs_load(root):
    spec = load_specs(root / "specs")
    assert spec.study.name == "BCMACART01"


@pytest.mark.parametrize(
    "override, file, entry, words",
    [
        ({"sdtm/lb.yaml": LB.replace("purpose: Tabulation", "purpose: Tabulation\ncolour: red")}, "lb.yaml", "colour", "unknown key"),
        ({"sdtm/lb.yaml": LB.replace("label: Study Identifier", "label: " + "X" * 41)}, "lb.yaml", "variables[0:STUDYID].label", "40"),
        ({"sdtm/lb.yaml": LB.replace("data_type: integer", "data_type: int")}, "lb.yaml", "variables[5:LBDY].data_type", "Input should be"),
        ({"sdtm/lb.yaml": LB.replace("codelist: CL.LBTESTCD", "codelist: CL.NOPE")}, "lb.yaml", "variables[2:LBTESTCD].codelist", "undefined codelist"),
        ({"sdtm/lb.yaml": LB.replace("method: MT.DY", "method: MT.NOPE")}, "lb.yaml", "variables[5:LBDY].method", "undefined method"),
        ({"sdtm/lb.yaml": LB.replace("keys: [STUDYID,", "keys: [STUDYID, LBSEQ,")}, "lb.yaml", None, "keys not among the variables"),
        ({"sdtm/lb.yaml": LB.replace("name: LBDY", "name: LBTESTCD")}, "lb.yaml", None, "duplicate variables"),
        ({"sdtm/lb.yaml": LB + "\n  - {name: lbx\n"}, "lb.yaml", "line", "invalid YAML"),
        ({"sdtm/lb.yaml": LB.replace("name: LB\n", "name: LBX\n")}, "lb.yaml", None, "file name must be"),
        ({"codelists/lbtestcd.yaml": CL.replace("terms:", "terms:\n  - {submission_value: ALB}")}, "lbtestcd.yaml", None, "duplicate submission values"),
        ({"study.yaml": STUDY.replace('metadata_datetime: "2025-01-01T00:00:00"', "metadata_datetime: now")}, "study.yaml", "study.metadata_datetime", "pattern"),
        ({"study.yaml": STUDY.replace("publishing_set: SDTM, ", "")}, "study.yaml", "standards[1", "publishing_set"),
        ({"sdtm/lb.yaml": LB.replace("values: [ALB]", "values: [ALB, HGB]")}, "lb.yaml", "value_level[0:LBORRES].where", "exactly one value"),
    ],
)
def test_malformed_spec_names_file_entry_and_problem(tmp_path, override, file, entry, words):
    with pytest.raises(InputError) as info:
        load_specs(make_specs(tmp_path, **override))
    text = str(info.value)
    assert file in text and words in text, text
    if entry:
        assert entry in text, text


def test_all_problems_reported_at_once(tmp_path):
    broken = LB.replace("codelist: CL.LBTESTCD", "codelist: CL.NOPE").replace("method: MT.DY", "method: MT.NOPE")
    with pytest.raises(InputError) as info:
        load_specs(make_specs(tmp_path, **{"sdtm/lb.yaml": broken}))
    assert len(info.value.problems) == 2


def test_missing_specs_folder_is_input_error(tmp_path):
    with pytest.raises(InputError, match="specs folder not found"):
        load_specs(tmp_path / "nope")


def _same(a, b) -> None:
    assert a.model_dump() == b.model_dump()


def test_xlsx_round_trip_is_lossless(tmp_path):
    spec = load_specs(make_specs(tmp_path / "in"))
    export_xlsx(spec, tmp_path / "spec.xlsx")
    back = import_xlsx(tmp_path / "spec.xlsx")
    _same(spec, back)


def test_xlsx_cells_are_never_formulas(tmp_path):
    from openpyxl import load_workbook

    spec = load_specs(make_specs(tmp_path / "in"))
    export_xlsx(spec, tmp_path / "spec.xlsx")
    wb = load_workbook(tmp_path / "spec.xlsx")
    types = {c.data_type for ws in wb for row in ws.iter_rows() for c in row if c.value is not None}
    assert "f" not in types
    values = [c.value for row in wb["Codelists"].iter_rows() for c in row]
    assert "=HYPERLINK(1)" in values


def test_bundled_specs_xlsx_round_trip(root, tmp_path):
    spec = load_specs(root / "specs")
    export_xlsx(spec, tmp_path / "spec.xlsx")
    _same(spec, import_xlsx(tmp_path / "spec.xlsx"))


def test_yaml_writer_round_trip(tmp_path):
    spec = load_specs(make_specs(tmp_path / "in"))
    write_yaml_specs(spec, tmp_path / "out")
    _same(spec, load_specs(tmp_path / "out"))


def test_import_reports_bad_rows(tmp_path):
    from openpyxl import load_workbook

    spec = load_specs(make_specs(tmp_path / "in"))
    export_xlsx(spec, tmp_path / "spec.xlsx")
    wb = load_workbook(tmp_path / "spec.xlsx")
    ws = wb["Variables"]
    ws.cell(row=3, column=5).value = "number"  # Data Type of the second variable
    wb.save(tmp_path / "bad.xlsx")
    with pytest.raises(InputError) as info:
        import_xlsx(tmp_path / "bad.xlsx")
    assert "sheet Variables row 3.data_type" in str(info.value) and "number" in str(info.value)


# --- one YAML mistake, one root cause reported (#16 item 8)
def _broken_specs(tmp_path, file: str, old: str, new: str):
    import shutil

    specs = tmp_path / "specs"
    shutil.copytree(Path(__file__).resolve().parents[1] / "specs", specs)
    path = specs / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_specs(specs)
    return [str(p) for p in exc.value.problems]


def test_a_tab_in_a_spec_is_one_problem_plus_a_count_of_what_follows(tmp_path):
    problems = _broken_specs(tmp_path, "sdtm/dm.yaml", "\n  - ", "\n\t- ")
    assert len(problems) == 2
    assert "dm.yaml, line" in problems[0] and "a tab character where YAML needs spaces" in problems[0]
    assert "more problem(s) not listed" in problems[1]


def test_a_python_tag_in_study_yaml_is_refused_once(tmp_path):
    problems = _broken_specs(tmp_path, "study.yaml", "\nstudy:", "\nstudy: !!python/object:os.system")
    assert len(problems) == 2 and "a tag the safe loader refuses" in problems[0]
    assert "required key is missing" not in " ".join(problems)


def test_an_unknown_key_in_a_dataset_spec_names_the_key_not_its_consequences(tmp_path):
    problems = _broken_specs(tmp_path, "sdtm/ae.yaml", "\nlabel:", "\nlabell:")
    assert any("labell: unknown key (misspelt?)" in p for p in problems)
    assert not any("refers to an undefined" in p for p in problems)
