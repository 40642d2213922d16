"""Every codelist term in specs/ exists in its declared CT package, or is a sponsor extension."""

from __future__ import annotations

from cdisc_pipe.ct import check_codelists, codelist_yaml, load_ct
from cdisc_pipe.spec import load_specs
from tests.test_spec import make_specs


def test_bundled_codelists_match_ct(root, shared):
    spec = load_specs(root / "specs")
    problems = check_codelists(spec, shared / "ct")
    assert problems == [], "\n".join(map(str, problems))


def test_check_catches_wrong_code_and_unmarked_sponsor_term(tmp_path, shared):
    bad = """
oid: CL.LBTESTCD
name: Laboratory Test Code
nci_code: C65047
extensible: true
standard: STD.CT
terms:
  - {submission_value: ALB, decode: Albumin, nci_code: C99999}
  - {submission_value: ZZZTEST, decode: made up}
  - {submission_value: HGB, decode: Hemoglobin}
"""
    spec = load_specs(make_specs(tmp_path, **{"codelists/lbtestcd.yaml": bad}))
    text = "\n".join(map(str, check_codelists(spec, shared / "ct")))
    assert "term/code pair not in the CT codelist" in text and "ALB=C99999" in text
    assert "ZZZTEST" in text and "not marked extended" in text
    assert "HGB" in text and "lacks its NCI code" in text


def test_codelist_yaml_from_ct(shared):
    ct = load_ct(shared / "ct" / "sdtm-ct-2025-03-28.txt")
    text = codelist_yaml(ct, "SEX", ["F", "M"], "CL.SEX", "STD.SDTM.CT.2025-03-28")
    assert "nci_code: C66731" in text and "C16576" in text and "C20197" in text
