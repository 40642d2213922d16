"""NCA cut-off events come from the settings (data), not from Python: CM/PR records that start a new
anti-cancer therapy end the NCA window, so PP agrees with ADPC's NCAXFL."""

from __future__ import annotations

import pandas as pd

from cdisc_pipe.nca import load_nca_settings
from cdisc_pipe.sdtm.build import _cutoff_events


def test_cutoff_events_from_settings(root):
    settings = load_nca_settings(root / "specs" / "settings" / "nca.yaml")
    cm = pd.DataFrame({"USUBJID": ["S1", "S1", "S2"], "CMCAT": ["CONCOMITANT MEDICATION", "SUBSEQUENT ANTI-CANCER THERAPY",
                                                                  "SUBSEQUENT ANTI-CANCER THERAPY"],
                       "CMSTDTC": ["2024-01-01", "2024-03-05", "2024-02"]})
    pr = pd.DataFrame({"USUBJID": ["S3", "S3"], "PRCAT": ["PRIOR THERAPY", "SUBSEQUENT THERAPY"],
                       "PRSTDTC": ["2020-01-01", "2024-04-01"]})
    ev = _cutoff_events({"CM": cm, "PR": pr}, settings)
    assert ev[["USUBJID", "DTC"]].values.tolist() == [["S1", "2024-03-05"], ["S2", "2024-02"], ["S3", "2024-04-01"]]
    assert set(ev["REASON"]) == {"taken on or after the start of a new anti-cancer therapy"}


def test_no_cutoff_datasets_means_none(root):
    settings = load_nca_settings(root / "specs" / "settings" / "nca.yaml")
    assert _cutoff_events({}, settings) is None
