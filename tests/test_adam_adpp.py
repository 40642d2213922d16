"""ADPP builder on a literal PP fixture; expected values worked by hand in the comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cdisc_pipe.adam import adpp
from cdisc_pipe.spec.model import Dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def settings_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("settings")
    shutil.copy(ROOT / "specs" / "settings" / "adam_bds.yaml", d / "adam_bds.yaml")
    return d


def _adsl() -> pd.DataFrame:
    return pd.DataFrame({"STUDYID": "S", "USUBJID": ["A", "B"], "TRT01P": ["DL1", "DL2"], "TRT01PN": [1.0, 2.0],
                         "TRT01A": ["DL1", "DL2"], "TRT01AN": [1.0, 2.0], "PKFL": ["Y", "N"]})


def _pp() -> pd.DataFrame:
    rows = [
        # USUBJID, PPSEQ, PPTESTCD, PPTEST, PPSPEC, PPSTRESC, PPSTRESN, PPSTRESU, PPSTINT, PPENINT
        ("A", 1, "CMAX", "Max Conc", "BLOOD", "80000", 80000.0, "copies/ug", None, None),
        ("A", 2, "TMAX", "Time of CMAX Observation", "BLOOD", "7", 7.0, "day", None, None),
        ("A", 3, "AUCINT", "AUC from T1 to T2", "BLOOD", "950000", 950000.0, "day*copies/ug", "P0D", "P28D"),
        ("A", 4, "CMAX", "Max Conc", "BONE MARROW", "3000", 3000.0, "copies/ug", None, None),
        ("B", 1, "AUCINT", "AUC from T1 to T2", "BLOOD", "NC", None, "day*copies/ug", "P0D", "P28D"),
    ]
    pp = pd.DataFrame(rows, columns=["USUBJID", "PPSEQ", "PPTESTCD", "PPTEST", "PPSPEC", "PPSTRESC", "PPSTRESN",
                                     "PPSTRESU", "PPSTINT", "PPENINT"])
    pp["STUDYID"], pp["PPCAT"] = "S", "BCMACAR"
    pp["PPSEQ"] = pp["PPSEQ"].astype("float64")
    return pp


def test_parameters_unique_per_specimen_and_interval(settings_dir):
    out, findings = adpp.build({"PP": _pp()}, _adsl(), settings_dir)
    a = out[out["USUBJID"].eq("A")].set_index("PARAMCD")
    assert sorted(a.index) == ["AUCINTB", "CMAXB", "CMAXM", "TMAXB"]
    assert a.loc["AUCINTB", "PARAM"] == "AUC from T1 to T2 from Day 0 to Day 28 in Blood (day*copies/ug)"
    assert a.loc["CMAXM", "PARAM"] == "Max Conc in Bone Marrow (copies/ug)"
    assert a.loc["CMAXM", "PARCAT1"] == "BONE MARROW" and a.loc["CMAXB", "AVAL"] == 80000.0
    assert (a.loc["AUCINTB", "PPSTINT"], a.loc["AUCINTB", "PPENINT"]) == ("P0D", "P28D")
    assert a.loc["TMAXB", "AVALU"] == "day" and a.loc["TMAXB", "PKFL"] == "Y"
    b = out[out["USUBJID"].eq("B")].iloc[0]
    assert np.isnan(b["AVAL"]) and b["AVALC"] == "NC" and b["SRCVAR"] == "PPSTRESC"
    # PARAMCD <-> PARAM one-to-one across subjects.
    assert out.groupby("PARAMCD")["PARAM"].nunique().eq(1).all()
    assert not [f for f in findings if f.severity == "Error"]


def test_two_intervals_of_one_parameter_are_reported(settings_dir):
    pp = _pp()
    extra = pp.iloc[[2]].assign(PPSEQ=9.0, PPENINT="P14D", PPSTRESN=500000.0)
    out, findings = adpp.build({"PP": pd.concat([pp, extra])}, _adsl(), settings_dir)
    rules = {f.rule for f in findings}
    assert "ADAM.ADPP.DUPKEY" in rules and "ADAM.BDS.PARAM11" in rules
    assert len(out) == 6  # records kept


def test_columns_follow_the_spec(settings_dir):
    out, _ = adpp.build({"PP": _pp()}, _adsl(), settings_dir)
    spec = Dataset.model_validate(yaml.safe_load((ROOT / "specs" / "adam" / "adpp.yaml").read_text()))
    assert list(out.columns) == spec.variable_names
