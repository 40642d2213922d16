"""ADPC builder on literal PC/EX/SUPPPC fixtures; expected values worked by hand in the comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cdisc_pipe.adam import adpc
from cdisc_pipe.spec.model import Dataset

ROOT = Path(__file__).resolve().parents[1]
T = pd.Timestamp


@pytest.fixture(scope="module")
def settings_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("settings")
    shutil.copy(ROOT / "specs" / "settings" / "adam_bds.yaml", d / "adam_bds.yaml")
    return d


def _adsl() -> pd.DataFrame:
    return pd.DataFrame({
        "STUDYID": "S", "USUBJID": ["A", "B"], "TRT01P": ["DL1", "DL2"], "TRT01PN": [1.0, 2.0],
        "TRT01A": ["DL1", "DL2"], "TRT01AN": [1.0, 2.0], "PKFL": ["Y", "Y"],
        "TRTSDT": [T("2024-01-10"), T("2024-01-11")], "TRTSDTM": [T("2024-01-10 10:00"), T("2024-01-11 09:00")],
        "NACTDT": [T("2024-02-01"), pd.NaT],
    })


PC_ROWS = [
    # USUBJID, PCSEQ, PCSTRESC, PCSTRESN, PCDTC, PCELTM, PCSPEC
    ("A", 1, "BLQ", None, "2024-01-10T09:00", "-PT1H", "BLOOD"),
    ("A", 2, "1000", 1000.0, "2024-01-11T16:00", "P1D", "BLOOD"),
    ("A", 3, "80000", 80000.0, "2024-01-17T10:00", "P7D", "BLOOD"),
    ("A", 4, "BLQ", None, "2024-01-24T10:00", "P14D", "BLOOD"),
    ("A", 5, "500", 500.0, "2024-02-07T10:00", "P28D", "BLOOD"),      # after new therapy 02-01
    ("A", 6, "3000", 3000.0, "2024-01-24T11:00", "P14D", "BONE MARROW"),
    ("A", 7, None, None, "2024-01-31T10:00", "P21D", "BLOOD"),          # no result
    ("B", 1, "2000", 2000.0, "2024-01-18T09:00", "P7D", "BLOOD"),
    ("B", 2, "1500", 1500.0, "2024-01-21T09:00", "P10D", "BLOOD"),      # excluded by the NCA (SUPPPC)
]


@pytest.fixture(scope="module")
def built(settings_dir):
    pc = pd.DataFrame(PC_ROWS, columns=["USUBJID", "PCSEQ", "PCSTRESC", "PCSTRESN", "PCDTC", "PCELTM", "PCSPEC"])
    pc["STUDYID"] = "S"
    pc["PCSEQ"] = pc["PCSEQ"].astype("float64")
    pc["PCTESTCD"], pc["PCTEST"], pc["PCSTRESU"] = "BCMACAR", "Anti-BCMA CAR Transgene", "copies/ug"
    pc["PCLLOQ"] = 50.0
    pc["PCRFTDTC"] = np.where(pc["USUBJID"].eq("A"), "2024-01-10T10:00", "2024-01-11T09:00")
    pc["VISIT"] = "V"
    ex = pd.DataFrame({"USUBJID": ["A", "A", "B"], "EXCAT": ["LYMPHODEPLETION", "CAR-T", "CAR-T"],
                       "EXDOSE": [30.0, 0.95, 3.1], "EXDOSU": ["mg/m2", "10^6/kg", "10^6/kg"],
                       "EXSTDTC": ["2024-01-05", "2024-01-10T10:00", "2024-01-11T09:00"]})
    supppc = pd.DataFrame({"STUDYID": "S", "RDOMAIN": "PC", "USUBJID": ["B", "B"], "IDVAR": "PCSEQ",
                           "IDVARVAL": ["2", "2"], "QNAM": ["NCAXFL", "NCAXRS"], "QLABEL": ["x", "y"],
                           "QVAL": ["Y", "BLQ BETWEEN QUANTIFIABLE VALUES"]})
    return adpc.build({"PC": pc, "EX": ex, "SUPPPC": supppc}, _adsl(), settings_dir)


def _rec(out, usubjid, seq, dtype=None, paramcd=None):
    sel = out["USUBJID"].eq(usubjid) & out["SRCSEQ"].eq(seq)
    sel &= out["DTYPE"].isna() if dtype is None else out["DTYPE"].eq(dtype)
    rows = out[sel]
    assert len(rows) == 1
    return rows.iloc[0]


def test_blq_record_keeps_aval_missing_and_gets_an_imputed_copy(built):
    out, _ = built
    blq = _rec(out, "A", 4.0)
    assert np.isnan(blq["AVAL"]) and blq["AVALC"] == "BLQ" and blq["ANL01FL"] == "Y" and blq["ANL02FL"] is None
    imp = _rec(out, "A", 4.0, dtype="HALFLLOQ")
    # LLOQ 50 copies/ug -> 25 for summaries; not an NCA record, no baseline flag.
    assert imp["AVAL"] == 25.0 and imp["AVALC"] is None and imp["ANL01FL"] is None and imp["ANL02FL"] == "Y"
    assert imp["SRCVAR"] == "PCLLOQ" and imp["ARRLT"] == blq["ARRLT"]


def test_relative_times_and_dose(built):
    out, _ = built
    pre = _rec(out, "A", 1.0)
    assert pre["ARRLT"] == pytest.approx(-1 / 24)  # 09:00 vs infusion 10:00
    assert pre["NRRLT"] == pytest.approx(-1 / 24) and pre["RRLTU"] == "DAYS"
    d1 = _rec(out, "A", 2.0)
    assert d1["ARRLT"] == pytest.approx(1.25)  # 2024-01-11 16:00 - 2024-01-10 10:00 = 30 h
    assert d1["AFRLT"] == d1["ARRLT"] and d1["NRRLT"] == 1.0 and d1["NFRLT"] == 1.0
    assert d1["PCRFTDTM"] == T("2024-01-10 10:00") and d1["ADY"] == 2.0
    assert (d1["DOSEA"], d1["DOSEU"], d1["AVALU"]) == (0.95, "10^6/kg", "copies/ug")


def test_baseline_is_the_pre_infusion_sample_even_when_blq(built):
    out, _ = built
    assert _rec(out, "A", 1.0)["ABLFL"] == "Y"
    assert out.loc[out["USUBJID"].eq("A") & out["PARAMCD"].eq("BCMACARB"), "ABLFL"].eq("Y").sum() == 1
    assert out.loc[out["USUBJID"].eq("B"), "ABLFL"].isna().all()  # B has no pre-infusion sample


def test_nca_exclusions(built):
    out, _ = built
    after = _rec(out, "A", 5.0)
    assert after["NCAXFL"] == "Y" and after["NCA1XRS"] == adpc.REASON_NEW_THERAPY and after["ANL01FL"] is None
    missing = _rec(out, "A", 7.0)
    assert missing["NCA1XRS"] == adpc.REASON_NO_RESULT
    assert not out["SRCSEQ"].eq(7.0).sum() > 1  # no imputed copy for a missing result
    nca = _rec(out, "B", 2.0)
    assert nca["NCAXFL"] == "Y" and nca["NCA1XRS"] == "BLQ BETWEEN QUANTIFIABLE VALUES"
    assert nca["ANL01FL"] is None and nca["ANL02FL"] == "Y"  # still a concentration for summaries
    assert _rec(out, "B", 1.0)["NCAXFL"] is None
    assert after["ANL02FL"] is None


def test_parameters_by_specimen(built):
    out, findings = built
    marrow = _rec(out, "A", 6.0)
    assert marrow["PARAMCD"] == "BCMACARM" and marrow["PARCAT1"] == "BONE MARROW"
    assert marrow["PARAM"] == "Anti-BCMA CAR Transgene in Bone Marrow (copies/ug)"
    assert _rec(out, "A", 2.0)["PARAMCD"] == "BCMACARB"
    assert not [f for f in findings if f.severity == "Error"]


def test_columns_follow_the_spec(built):
    out, _ = built
    spec = Dataset.model_validate(yaml.safe_load((ROOT / "specs" / "adam" / "adpc.yaml").read_text()))
    assert list(out.columns) == spec.variable_names
    assert not out.duplicated(spec.keys).any()
