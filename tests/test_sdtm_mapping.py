"""Mapping files are validated before any data is read: every problem named with file and entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.paths import default_mappings, default_specs
from cdisc_pipe.sdtm.mapping import load_mappings
from cdisc_pipe.spec import load_specs


@pytest.fixture(scope="module")
def spec():
    return load_specs(default_specs())


def write(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).write_text(text, encoding="utf-8")
    return tmp


def test_bundled_mappings_load(spec):
    m = load_mappings(default_mappings(), spec)
    assert {"DM", "EX", "AE", "LB", "RS", "PC", "DS", "CM", "MH", "PR", "VS", "PE", "FA", "DD", "SS", "SV"} <= set(m.datasets)
    assert m.synonyms["lbtestcd"]["IL6"] == "INTLK6"
    assert m.design["arms"][0]["armcd"] == "DL1"


def test_all_problems_collected_with_file_and_entry(spec, tmp_path):
    write(tmp_path, "ae.yaml", """
dataset: AE
sources: [{form: ae}]
variables:
  AETERM: {copy: AETERM, value: X}          # two algorithms
  AENOPE: {copy: X}                         # not a variable of AE
  AESER: {assign: {field: AESER, codelist: CL.NOPE}}
  AEOUT: {when: [{if: [{field: A, op: in, value: Y}], then: {value: Z}}]}   # 'in' needs a list
supp:
  - {qnam: TOOLONGQNAM, qlabel: x, rule: {copy: A}}
""")
    write(tmp_path, "vs.yaml", "dataset: VS\nsources: [{form: vs, where: [{field: A, op: eq, value: N}]}]\n")  # no reason
    write(tmp_path, "broken.yaml", "dataset: [unclosed\n")
    with pytest.raises(InputError) as exc:
        load_mappings(tmp_path, spec)
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "ae.yaml, variables.AETERM" in text and "exactly one" in text
    assert "ae.yaml, variables.AEOUT" in text and "non-empty list" in text
    assert "ae.yaml, supp[0].qnam" in text
    assert "vs.yaml, sources[0]" in text and "reason" in text
    assert "broken.yaml" in text and "invalid YAML" in text
    # model errors stop the file before the spec checks; a valid file gets its spec checks
    write(tmp_path, "ae.yaml", "dataset: AE\nsources: [{form: ae}]\nvariables:\n  AENOPE: {copy: X}\n"
                               "  AESER: {assign: {field: AESER, codelist: CL.NOPE}}\n")
    (tmp_path / "vs.yaml").unlink()
    (tmp_path / "broken.yaml").unlink()
    with pytest.raises(InputError) as exc:
        load_mappings(tmp_path, spec)
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "ae.yaml, variables.AENOPE" in text and "not a variable of AE" in text
    assert "ae.yaml, variables.AESER.assign.codelist" in text and "CL.NOPE" in text


def test_unknown_dataset_and_wrong_file_name(spec, tmp_path):
    write(tmp_path, "zz.yaml", "dataset: ZZ\n")
    write(tmp_path, "cm.yaml", "dataset: AE\n")
    with pytest.raises(InputError) as exc:
        load_mappings(tmp_path, spec)
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "zz.yaml" in text and "no spec for this dataset" in text
    assert "cm.yaml" in text and "file name must be the dataset name" in text


def test_no_python_expressions_accepted(spec, tmp_path):
    write(tmp_path, "ae.yaml", "dataset: AE\nvariables:\n  AETERM: {eval: \"__import__('os')\"}\n")
    with pytest.raises(InputError) as exc:
        load_mappings(tmp_path, spec)
    assert any("unknown key" in p.message or "exactly one" in p.message for p in exc.value.problems)


def test_raw_forms_and_fields_checked_before_mapping(spec):
    """A mapping naming a form or field the export lacks: one InputError naming file, entry, field."""
    from cdisc_pipe.raw import RawExport
    from cdisc_pipe.sdtm import build_sdtm
    import pandas as pd

    forms = {"enrol": pd.DataFrame({"SUBJID": ["1"], "__row": ["2"]}, dtype="str")}
    with pytest.raises(InputError) as exc:
        build_sdtm(RawExport(forms=forms, dictionary=pd.DataFrame(), source={}), spec, default_mappings())
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "dm.yaml, sources[0].join" in text and "no such form" in text           # the joined dm form
    assert "dm.yaml, variables.RFICDTC, column RFICDAT: form enrol has no field RFICDAT" in text
    assert "ae.yaml, sources[0].form" in text                                     # a missing form
