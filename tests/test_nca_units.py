"""The units table, the parameter catalog against CDISC CT, and the settings checks that use them.

The CT checks read ``../shared/ct/sdtm-ct-2025-03-28.txt`` and skip cleanly when it is absent.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from pydantic import ValidationError

from cdisc_pipe.nca import NcaSettings
from cdisc_pipe.nca import units as U
from cdisc_pipe.nca.catalog import CATALOG
from tests.test_nca_specs import ct_rows


def test_pkunit_terms_are_the_ct_codelist():
    rows = ct_rows()
    assert U.PKUNIT_TERMS == {r["CDISC Submission Value"] for r in rows if r["Codelist Code"] == "C85494"}


def test_catalog_codes_and_names_are_ct_terms():
    rows = ct_rows()
    code = {r["Code"]: r["CDISC Submission Value"] for r in rows if r["Codelist Code"] == "C85839"}
    name = {r["Code"]: r["CDISC Submission Value"] for r in rows if r["Codelist Code"] == "C85493"}
    for e in CATALOG:
        if e.nci is None:  # sponsor extension (CLSTP): not in CT under any code
            assert e.code not in code.values()
            continue
        assert (code[e.nci], name[e.nci]) == (e.code, e.name)


def test_every_derived_unit_is_a_pkunit_term():
    # the units a BA study in h and ng/mL (dose in mg) writes need no extension
    r = U.result_units("h", "ng/mL", dose="mg")
    assert U.check_terms(r.unit, []) == []
    assert r.unit["auc"] == "h*ng/mL" and r.unit["aumc"] == "h2*ng/mL" and r.unit["per_time"] == "/h"
    # mg / (h * ng/mL) = 1e-3 g * 1e-3 L / (h * 1e-9 g) = 1000 L/h; mg / (ng/mL) = 1000 L
    assert r.factor["clearance"] == 1000 and r.factor["volume"] == 1000
    # the bundled cellular-kinetics units: day*copies/ug (and day2*copies/ug) are not PKUNIT terms
    cell = U.result_units("day", "copies/ug", kinds={"conc", "time", "auc", "aumc", "per_time"}).unit
    assert U.check_terms(cell, []) == [("auc", "day*copies/ug"), ("aumc", "day2*copies/ug")]
    assert U.check_terms(cell, ["day*copies/ug", "day2*copies/ug"]) == []


@pytest.mark.parametrize(("src", "dst", "factor"), [
    ("ng/mL", "ug/L", Fraction(1)), ("ng/mL", "mg/L", Fraction(1, 1000)), ("mg/L", "ug/mL", Fraction(1)),
    ("pg/mL", "ng/mL", Fraction(1, 1000)), ("ug/mL", "ng/mL", Fraction(1000)), ("nmol/L", "umol/L", Fraction(1, 1000)),
    ("copies/ug", "copies/ug", Fraction(1)), ("ng/g", "ug/kg", Fraction(1)),
])
def test_concentration_factors(src, dst, factor):
    assert U.conc_factor(src, dst) == factor


@pytest.mark.parametrize(("src", "dst"), [("ng/mL", "nmol/L"), ("copies/ug", "copies/mL"), ("ng/mL", "ng/g"),
                                          ("cells/uL", "ng/mL")])
def test_concentrations_that_do_not_convert(src, dst):
    with pytest.raises(U.UnitError):
        U.conc_factor(src, dst)


def test_scale_rounds_once_and_keeps_factor_one_exact():
    x = np.array([0.1, 3.0, 1e-300])
    assert U.scale(x, Fraction(1)) is not None and (U.scale(x, Fraction(1)) == x).all()
    assert U.scale(np.array([1.0]), Fraction(1, 1000))[0] == 1.0 / 1000.0
    assert U.scale(np.array([2.0]), Fraction(24))[0] == 48.0
    assert U.time_factor("day", "h") == 24 and U.time_factor("h", "min") == 60 and U.time_factor("week", "day") == 7


def test_result_units_errors():
    with pytest.raises(U.UnitError, match="per volume"):
        U.result_units("day", "copies/ug", dose="mg", kinds={"clearance"})
    with pytest.raises(U.UnitError, match="dose unit"):
        U.result_units("h", "ng/mL", kinds={"volume"})
    with pytest.raises(U.UnitError, match="AUMC unit"):
        U.result_units("h", "ng/mL", aumc="h*ng/mL", kinds={"aumc"})
    # an unknown concentration unit still gives Cmax and AUCs in the derived units (no conversion needed)
    r = U.result_units("h", "cells/uL", kinds={"conc", "auc"})
    assert r.unit["auc"] == "h*cells/uL" and r.factor["auc"] == 1


@pytest.mark.parametrize(("kw", "match"), [
    ({"parameters": [{"testcd": "CMAX", "test": "Maximum Concentration"}]}, "Max Conc"),
    ({"parameters": ["CLSTP"]}, "extended: true"),
    ({"parameters": ["CLFO", "CLO"]}, "route"),
    ({"route": "extravascular", "parameters": ["CLO"]}, "intravascular"),
    ({"route": "extravascular", "parameters": ["C0"]}, "intravascular_bolus"),
    ({"parameters": ["AUCTAU"]}, "multiple_dose"),
    ({"group_id": "{PCSPEC}-{VISIT}"}, "VISIT"),
    ({"group_id": "fixed"}, "template"),
    ({"parameters": [{"testcd": "XYZ", "test": "x", "quantity": "cmax"}]}, "extended"),
    ({"lambda_z": {"manual": [{"usubjid": "S1", "reason": "r"}]}}, "points, start/end or exclude"),
])
def test_settings_refuse_inconsistent_choices(kw, match):
    with pytest.raises(ValidationError, match=match):
        NcaSettings(**kw)


def test_settings_accept_codes_extensions_and_imply_the_route():
    s = NcaSettings(parameters=["CMAX", "CLFO", {"testcd": "CLSTP", "extended": True}])
    assert s.effective_route == "extravascular" and s.parameter("CLSTP").quantity == "clast_pred"
    assert s.parameter("CLFO").test == "Total CL Obs by F"
    assert NcaSettings(parameters=["C0", "CLO"]).effective_route == "intravascular_bolus"
    assert NcaSettings().effective_route is None and NcaSettings().words["post"] == "post-dose"
