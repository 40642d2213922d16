"""PP spec, PP codelists and NCA settings against the CT file and the engine's own text.

The CT checks read ``../shared/ct/sdtm-ct-2025-03-28.txt`` and skip cleanly when it is absent.
"""

from __future__ import annotations

import csv

import pytest
import yaml

from cdisc_pipe.nca import describe_method, describe_parameters, load_nca_settings
from cdisc_pipe.nca.pp import PP_COLUMNS
from cdisc_pipe.paths import default_ct, default_specs
from cdisc_pipe.spec.model import Codelist, Dataset

SPECS = default_specs()
SETTINGS = load_nca_settings(SPECS / "settings" / "nca.yaml")
PP_FILES = ["pptestcd", "pptest", "ppunit", "ppspec", "ppstat"]


def ct_rows() -> list[dict[str, str]]:
    ct = default_ct()
    path = ct / "sdtm-ct-2025-03-28.txt" if ct else None
    if path is None or not path.is_file():
        pytest.skip("CT file not available")
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def load_dataset() -> Dataset:
    return Dataset.model_validate(yaml.safe_load((SPECS / "sdtm" / "pp.yaml").read_text(encoding="utf-8")))


def test_pp_spec_matches_build_pp_columns():
    ds = load_dataset()
    cols = PP_COLUMNS[:3] + ["PPSEQ"] + PP_COLUMNS[3:]
    # the bundled PC carries PCTPTREF, so the spec declares the optional PPTPTREF before PPRFTDTC
    cols.insert(cols.index("PPRFTDTC"), "PPTPTREF")
    assert ds.variable_names == cols
    assert all(len(v.label) <= 40 for v in ds.variables)
    vl_codes = {vl.where[0].values[0] for vl in ds.value_level}
    assert vl_codes == {p.testcd for p in SETTINGS.parameters}


def test_pp_spec_methods_are_the_engine_text():
    ds = load_dataset()
    methods = {m.oid: m.description for m in ds.methods}
    assert methods["MT.PP.NCA"] == describe_method(SETTINGS)
    for code, text in describe_parameters(SETTINGS).items():
        assert methods[f"MT.PP.{code}"] == text


@pytest.mark.parametrize("name", PP_FILES)
def test_pp_codelists_against_ct(name: str):
    rows = ct_rows()
    cl = Codelist.model_validate(yaml.safe_load((SPECS / "codelists" / f"{name}.yaml").read_text(encoding="utf-8")))
    header = {r["Code"]: r for r in rows if not r["Codelist Code"]}
    assert cl.nci_code in header
    assert cl.extensible == (header[cl.nci_code]["Codelist Extensible (Yes/No)"] == "Yes")
    terms = {r["CDISC Submission Value"]: r["Code"] for r in rows if r["Codelist Code"] == cl.nci_code}
    for term in cl.terms:
        if term.extended:
            assert term.submission_value not in terms, f"{term.submission_value} is in CT: not an extension"
            assert cl.extensible
        else:
            assert terms.get(term.submission_value) == term.nci_code, term.submission_value


def test_settings_parameter_names_and_units_are_ct_terms():
    rows = ct_rows()
    pkparmcd = {r["CDISC Submission Value"]: r["Code"] for r in rows if r["Codelist Code"] == "C85839"}
    pkparm = {r["Code"]: r["CDISC Submission Value"] for r in rows if r["Codelist Code"] == "C85493"}
    for p in SETTINGS.parameters:
        assert pkparm[pkparmcd[p.testcd]] == p.test
    units = yaml.safe_load((SPECS / "codelists" / "ppunit.yaml").read_text(encoding="utf-8"))
    values = {t["submission_value"] for t in units["terms"]}
    assert {SETTINGS.units.conc, SETTINGS.units.time, SETTINGS.units.auc} <= values
