"""ADPP: the bundled study's plan (specs/plans/adpp.yaml) on a literal PP/EX/ADSL fixture; expected
values worked by hand in the comments.  The verbs it uses are tested in test_adam_adpc.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.adam import conform_to_spec
from cdisc_pipe.adam.derive import convert_blanks_to_na
from cdisc_pipe.adam.plan import load_plans, run_plan
from cdisc_pipe.spec.load import load_specs

ROOT = Path(__file__).resolve().parents[1]


def _adsl() -> pd.DataFrame:
    return pd.DataFrame({"STUDYID": "S", "USUBJID": ["A", "B"], "TRT01P": ["DL1", "DL2"], "TRT01PN": [1.0, 2.0],
                         "TRT01A": ["DL1", "DL2"], "TRT01AN": [1.0, 2.0], "PKFL": ["Y", "N"]})


EX = pd.DataFrame({"USUBJID": ["A", "A", "B"], "EXCAT": ["LYMPHODEPLETION", "CAR-T", "CAR-T"],
                   "EXDOSE": [30.0, 0.95, 0.0], "EXDOSU": ["mg/m2", "10^6/kg", "10^6/kg"],
                   "EXSTDTC": ["2024-01-05", "2024-01-10", "2024-01-11"]})


def _pp() -> pd.DataFrame:
    rows = [
        # USUBJID, PPSEQ, PPTESTCD, PPTEST, PPSPEC, PPSTRESC, PPSTRESN, PPSTRESU, PPSTINT, PPENINT
        ("A", 1, "CMAX", "Max Conc", "BLOOD", "80000", 80000.0, "copies/ug", None, None),
        ("A", 2, "TMAX", "Time of CMAX Observation", "BLOOD", "7", 7.0, "day", None, None),
        ("A", 3, "AUCINT", "AUC from T1 to T2", "BLOOD", "950000", 950000.0, "day*copies/ug", "P0D", "P28D"),
        ("A", 4, "CMAX", "Max Conc", "BONE MARROW", "3000", 3000.0, "copies/ug", None, None),
        ("A", 5, "AUCINT", "AUC from T1 to T2", "BONE MARROW", "9000", 9000.0, "day*copies/ug", "P0D", "PT12H"),
        ("B", 1, "AUCINT", "AUC from T1 to T2", "BLOOD", "NC", None, "day*copies/ug", "P0D", "P28D"),
    ]
    pp = pd.DataFrame(rows, columns=["USUBJID", "PPSEQ", "PPTESTCD", "PPTEST", "PPSPEC", "PPSTRESC", "PPSTRESN",
                                     "PPSTRESU", "PPSTINT", "PPENINT"])
    pp["STUDYID"], pp["PPCAT"] = "S", "BCMACAR"
    pp["PPSEQ"] = pp["PPSEQ"].astype("float64")
    return pp


@pytest.fixture(scope="module")
def spec():
    return load_specs(ROOT / "specs")


@pytest.fixture(scope="module")
def plan(spec, tmp_path_factory):
    d = tmp_path_factory.mktemp("plans")
    shutil.copy(ROOT / "specs" / "plans" / "adpp.yaml", d / "adpp.yaml")
    return load_plans(d, spec)["ADPP"]


def _run(plan, spec, pp):
    frames = {k: convert_blanks_to_na(v) for k, v in {"PP": pp, "EX": EX, "ADSL": _adsl()}.items()}
    df, findings = run_plan(plan, frames)
    out, more = conform_to_spec(df, spec.dataset("ADPP"))
    return out, findings + more


def test_parameters_unique_per_specimen_and_interval(plan, spec):
    out, findings = _run(plan, spec, _pp())
    a = out[out["USUBJID"].eq("A")].set_index("PARAMCD")
    assert sorted(a.index) == ["AUCINTB", "AUCINTM", "CMAXB", "CMAXM", "TMAXB"]
    # P0D / P28D -> " from Day 0 to Day 28"; PT12H = 0.5 day
    assert a.loc["AUCINTB", "PARAM"] == "AUC from T1 to T2 from Day 0 to Day 28 in Blood (day*copies/ug)"
    assert a.loc["AUCINTM", "PARAM"] == "AUC from T1 to T2 from Day 0 to Day 0.5 in Bone Marrow (day*copies/ug)"
    assert a.loc["CMAXM", "PARAM"] == "Max Conc in Bone Marrow (copies/ug)"  # no interval: no interval text
    assert a.loc["CMAXM", "PARCAT1"] == "BONE MARROW" and a.loc["CMAXB", "AVAL"] == 80000.0
    assert (a.loc["AUCINTB", "PPSTINT"], a.loc["AUCINTB", "PPENINT"]) == ("P0D", "P28D")
    assert a.loc["TMAXB", "AVALU"] == "day" and a.loc["TMAXB", "PKFL"] == "Y"
    assert a.loc["CMAXB", "SRCDOM"] == "PP" and a.loc["CMAXB", "SRCVAR"] == "PPSTRESN" and a.loc["CMAXM", "SRCSEQ"] == 4
    assert a.loc["CMAXB", "AVALC"] is None
    # the administered CAR-T dose (not the lymphodepletion dose); B's CAR-T dose is 0: no dose
    assert (a.loc["CMAXB", "DOSEA"], a.loc["CMAXB", "DOSEU"]) == (0.95, "10^6/kg")
    b = out[out["USUBJID"].eq("B")].iloc[0]
    assert np.isnan(b["AVAL"]) and b["AVALC"] == "NC" and b["SRCVAR"] == "PPSTRESC"
    assert np.isnan(b["DOSEA"]) and b["DOSEU"] is None and b["PKFL"] == "N"
    # PARAMCD <-> PARAM one-to-one across subjects.
    assert out.groupby("PARAMCD")["PARAM"].nunique().eq(1).all()
    assert not [f for f in findings if f.severity == "Error"]


def test_two_intervals_of_one_parameter_are_reported(plan, spec):
    pp = _pp()
    extra = pp.iloc[[2]].assign(PPSEQ=9.0, PPENINT="P14D", PPSTRESN=500000.0)
    out, findings = _run(plan, spec, pd.concat([pp, extra]))
    # AUCINTB now names two PARAMs (Day 0 to 28, Day 0 to 14): a BDS error, and the spec keys
    # (STUDYID, USUBJID, PARAMCD) repeat, which validation's key check reports
    assert "ADAM.BDS.PARAM11" in {f.rule for f in findings if f.severity == "Error"}
    assert out.duplicated(spec.dataset("ADPP").keys).sum() == 1
    assert len(out) == 7  # records kept


def test_columns_follow_the_spec(plan, spec):
    out, findings = _run(plan, spec, _pp())
    assert list(out.columns) == spec.dataset("ADPP").variable_names
    assert not [f for f in findings if f.rule in ("ADAM.SPEC.NOTDERIVED", "ADAM.SPEC.EXTRA")]
    assert out[["USUBJID", "PARAMCD"]].apply(tuple, axis=1).is_monotonic_increasing  # sorted by the keys


def test_method_text_names_no_file(plan):
    assert "pk.specimen_suffix" not in plan.methods["PARAMCD"] and ".yaml" not in plan.methods["PARAM"]
    assert plan.methods["PARAMCD"].startswith("Concatenation of PPTESTCD + _SPECSFX")
    assert "[_SPECSFX: 'B' when PPSPEC = 'BLOOD'; 'M' when PPSPEC = 'BONE MARROW']" in plan.methods["PARAMCD"]
