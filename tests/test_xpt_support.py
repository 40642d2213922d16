"""Small, literal study specs and frames shared by the XPT and Dataset-JSON tests (no tests here)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdisc_pipe.spec.model import Dataset, Origin, Standard, Study, StudySpec, Variable

ORIGIN = Origin(type="Derived")


def var(name: str, label: str, data_type: str = "text", *, length: int | None = None, core: str = "Req",
        display_format: str | None = None) -> Variable:
    return Variable(name=name, label=label, data_type=data_type, length=length, core=core, origin=ORIGIN,
                    display_format=display_format)


def ae_dataset() -> Dataset:
    return Dataset(
        name="AE", label="Adverse Events", **{"class": "EVENTS"}, structure="One record per event per subject",
        keys=["STUDYID", "USUBJID", "AESEQ"], purpose="Tabulation", domain="AE",
        variables=[
            var("STUDYID", "Study Identifier", length=10),
            var("DOMAIN", "Domain Abbreviation", length=2),
            var("USUBJID", "Unique Subject Identifier", length=40),
            var("AESEQ", "Sequence Number", "integer", length=8),
            var("AETERM", "Reported Term for the Adverse Event", length=200),
            var("AEDECOD", "Dictionary-Derived Term", length=200, core="Exp"),
            var("AEBODSYS", "Body System or Organ Class", length=200, core="Exp"),
            var("AETOXGR", "Standard Toxicity Grade", length=1, core="Exp"),
            var("AESTDTC", "Start Date/Time of Adverse Event", "datetime", length=19, core="Exp"),
            var("AEENDY", "Study Day of End of Adverse Event", "integer", length=8, core="Perm"),
        ],
    )


def adsl_dataset() -> Dataset:
    return Dataset(
        name="ADSL", label="Subject-Level Analysis Dataset", **{"class": "SUBJECT LEVEL ANALYSIS DATASET"},
        structure="One record per subject", keys=["STUDYID", "USUBJID"], purpose="Analysis",
        variables=[
            var("STUDYID", "Study Identifier", length=10),
            var("USUBJID", "Unique Subject Identifier", length=40),
            var("AGE", "Age", "integer"),
            var("ARM", "Description of Planned Arm", length=200),
            var("WEIGHTBL", "Baseline Weight (kg)", "float", core="Perm"),
            var("TRTSDT", "Date of First Exposure to Treatment", "date", display_format="DATE9."),
            var("TRTSDTM", "Datetime of First Exposure to Treatment", "datetime", display_format="DATETIME20."),
            var("TRTSTM", "Time of First Exposure to Treatment", "time", display_format="TIME8.", core="Perm"),
        ],
    )


def make_spec(*datasets: Dataset) -> StudySpec:
    return StudySpec(
        study=Study(oid="STDY.T1", name="T1", protocol_name="T1", description="test", sponsor="Test Sponsor",
                    metadata_datetime="2025-06-30T08:15:42"),
        standards=[Standard(oid="STD.SDTMIG.3-4", name="SDTMIG", type="IG", version="3.4")],
        datasets={d.name: d for d in (datasets or (ae_dataset(), adsl_dataset()))},
    )


def ae_frame() -> pd.DataFrame:
    # Deliberately unsorted, with a missing Exp variable (AEBODSYS) and a trailing blank to drop.
    # Rows are longer than 80 bytes (94), so pandas.read_sas counts the records right.
    return pd.DataFrame(
        {
            "USUBJID": ["T1-101-1002", "T1-101-1001", "T1-101-1001"],
            "AESEQ": [1, 2, 1],
            "STUDYID": ["T1"] * 3,
            "DOMAIN": ["AE"] * 3,
            "AETERM": ["HEADACHE  ", "CYTOKINE RELEASE SYNDROME", ""],
            "AEDECOD": ["Headache", "Cytokine release syndrome", None],
            "AETOXGR": [1, 2, 3],
            "AESTDTC": ["2024-01-05", "2024-01", None],
        }
    )


def adsl_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "STUDYID": ["T1", "T1"],
            "USUBJID": ["T1-101-1002", "T1-101-1001"],
            "AGE": pd.array([61, None], dtype="Int64"),
            "ARM": ["DL2: 3.0x10^6 CAR-T cells/kg", "DL1: 1.0x10^6 CAR-T cells/kg"],
            "TRTSDT": pd.to_datetime(["2024-01-03", "1959-12-31"]),
            "TRTSDTM": pd.to_datetime(["2024-01-03 10:30:00", None]),
            "TRTSTM": pd.to_timedelta(["10:30:00", "00:00:01"]),
            "WEIGHTBL": [72.5, np.nan],
        }
    )
