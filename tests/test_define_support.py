"""A small, readable study for the define tests: spec files as literal YAML and frames as literal tables.

It covers what define.xml must render: SDTM datasets of several classes (DM, AE, LB, SUPPAE), ADaM
ADSL and a time-to-event BDS (ADTTE, numeric dates with DATE9.), value-level metadata (LBORRES by
LBTESTCD, SUPPAE.QVAL by QNAM, ADTTE.AVAL by PARAMCD), CDISC CT subsets with NCI codes, a sponsor
term in an extensible list, a sponsor codelist, MedDRA as an external dictionary, methods, comments
and documents, and text needing escaping (``<``, ``&``, quotes) in labels, comments and values.

The helpers write the frames as XPT with the project's writer (``cdisc_pipe.xpt.write_datasets``)
and return its :class:`~cdisc_pipe.written.WrittenDataset` records.  This module holds no tests.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from cdisc_pipe.spec import StudySpec, load_specs
from cdisc_pipe.written import WrittenDataset

FILES: dict[str, str] = {
    "study.yaml": """
        study:
          oid: STDY.TINY01
          name: TINY01
          protocol_name: TINY-01
          description: A tiny study for define tests <with markup & "quotes">
          sponsor: Test Sponsor & Co
          metadata_datetime: "2025-06-30T00:00:00"
        standards:
          - {oid: STD.SDTMIG.3-4, name: SDTMIG, type: IG, version: "3.4"}
          - {oid: STD.ADAMIG.1-3, name: ADaMIG, type: IG, version: "1.3"}
          - {oid: STD.SDTM.CT.2025-03-28, name: CDISC/NCI, type: CT, publishing_set: SDTM, version: "2025-03-28", ct_file: sdtm-ct-2025-03-28.txt}
          - {oid: STD.ADAM.CT.2025-03-28, name: CDISC/NCI, type: CT, publishing_set: ADaM, version: "2025-03-28", ct_file: adam-ct-2025-03-28.csv}
          - {oid: STD.DEFINE.CT.2025-03-28, name: CDISC/NCI, type: CT, publishing_set: DEFINE-XML, version: "2025-03-28", ct_file: define-xml-ct-2025-03-28.csv}
        documents:
          - {oid: LF.acrf, title: Annotated Case Report Form, href: acrf.pdf, kind: AnnotatedCRF}
          - {oid: LF.csdrg, title: Clinical Study Data Reviewer's Guide, href: csdrg.pdf, kind: SupplementalDoc}
          - {oid: LF.adrg, title: Analysis Data Reviewer's Guide, href: adrg.pdf, kind: SupplementalDoc}
        dictionaries:
          - {oid: CL.MEDDRA, name: MedDRA, dictionary: MEDDRA, version: "27.0"}
        methods:
          - {oid: MT.DY, name: Study day, type: Computation, description: "--DY = date - RFSTDTC + 1 if date >= RFSTDTC, else date - RFSTDTC"}
          - {oid: MT.SAFFL, name: Safety flag, description: "Y if the subject received any dose, else N"}
          - {oid: MT.TRTSDT, name: Treatment start, description: Date part of DM.RFXSTDTC,
             documents: [{document: LF.adrg, pages: "4-5"}]}
          - {oid: MT.OS, name: Overall survival, description: "AVAL = ADT - STARTDT + 1 (days) & censored at last contact",
             expression_context: Python, expression: "(adt - startdt).days + 1"}
          - {oid: MT.SEQ, name: Sequence, description: Sequential number per subject by the natural keys}
        comments:
          - {oid: COM.RFSTDTC, description: "RFSTDTC is the infusion date (Day 1) <see CSDRG>", documents: [{document: LF.csdrg, pages: "3 7"}]}
          - {oid: COM.LB, description: Lab data from the central lab & local labs}
    """,
    "sdtm/dm.yaml": """
        name: DM
        label: Demographics
        class: SPECIAL PURPOSE
        structure: One record per subject
        keys: [STUDYID, USUBJID]
        purpose: Tabulation
        standard: STD.SDTMIG.3-4
        domain: DM
        repeating: false
        variables:
          - {name: STUDYID, label: Study Identifier, data_type: text, length: 20, core: Req, role: Identifier, origin: {type: Protocol}}
          - {name: DOMAIN, label: Domain Abbreviation, data_type: text, length: 2, core: Req, role: Identifier, origin: {type: Assigned, source: Sponsor}}
          - {name: USUBJID, label: Unique Subject Identifier, data_type: text, length: 40, core: Req, role: Identifier, origin: {type: Derived, source: Sponsor}, method: MT.SEQ}
          - {name: RFSTDTC, label: Subject Reference Start Date/Time, data_type: datetime, length: 19, core: Exp, role: Record Qualifier, origin: {type: Derived, source: Sponsor}, method: MT.DY, comment: COM.RFSTDTC}
          - {name: AGE, label: Age, data_type: integer, core: Exp, role: Record Qualifier, origin: {type: Collected, source: Investigator, documents: [{document: LF.acrf, pages: "2"}]}}
          - {name: AGEU, label: Age Units, data_type: text, length: 10, core: Exp, role: Variable Qualifier, codelist: CL.AGEU, origin: {type: Assigned, source: Sponsor}}
          - {name: SEX, label: Sex, data_type: text, length: 2, core: Req, role: Record Qualifier, codelist: CL.SEX, origin: {type: Collected, source: Investigator, documents: [{document: LF.acrf, pages: "2"}]}}
          - {name: ARMNRS, label: Reason Arm and/or Actual Arm is Null, data_type: text, length: 200, core: Exp, role: Record Qualifier, origin: {type: Assigned, source: Sponsor}}
    """,
    "sdtm/ae.yaml": """
        name: AE
        label: Adverse Events
        class: EVENTS
        structure: One record per adverse event per subject
        keys: [STUDYID, USUBJID, AEDECOD, AESTDTC]
        purpose: Tabulation
        standard: STD.SDTMIG.3-4
        domain: AE
        variables:
          - {name: STUDYID, label: Study Identifier, data_type: text, length: 20, core: Req, role: Identifier, origin: {type: Protocol}}
          - {name: DOMAIN, label: Domain Abbreviation, data_type: text, length: 2, core: Req, role: Identifier, origin: {type: Assigned, source: Sponsor}}
          - {name: USUBJID, label: Unique Subject Identifier, data_type: text, length: 40, core: Req, role: Identifier, origin: {type: Derived, source: Sponsor}, method: MT.SEQ}
          - {name: AESEQ, label: Sequence Number, data_type: integer, core: Req, role: Identifier, origin: {type: Derived, source: Sponsor}, method: MT.SEQ}
          - {name: AETERM, label: Reported Term for the Adverse Event, data_type: text, length: 200, core: Req, role: Topic, origin: {type: Collected, source: Investigator, documents: [{document: LF.acrf, pages: "5"}]}}
          - {name: AEDECOD, label: Dictionary-Derived Term, data_type: text, length: 200, core: Req, role: Synonym Qualifier, codelist: CL.AEDECOD, origin: {type: Assigned, source: Sponsor}}
          - {name: AESER, label: Serious Event, data_type: text, length: 1, core: Exp, role: Record Qualifier, codelist: CL.NY, origin: {type: Collected, source: Investigator, documents: [{document: LF.acrf, pages: "5"}]}}
          - {name: AESTDTC, label: Start Date/Time of Adverse Event, data_type: partialDatetime, length: 19, core: Exp, role: Timing, origin: {type: Collected, source: Investigator}}
          - {name: AESTDY, label: Study Day of Start of Adverse Event, data_type: integer, core: Perm, role: Timing, origin: {type: Derived, source: Sponsor}, method: MT.DY}
          - {name: AEENRF, label: End Relative to Reference Period, data_type: text, length: 10, core: Perm, role: Timing, origin: {type: Derived, source: Sponsor}, method: MT.DY}
    """,
    "sdtm/lb.yaml": """
        name: LB
        label: Laboratory Test Results
        class: FINDINGS
        structure: One record per lab test per time point per visit per subject
        keys: [STUDYID, USUBJID, LBTESTCD, LBDTC]
        purpose: Tabulation
        standard: STD.SDTMIG.3-4
        domain: LB
        comment: COM.LB
        variables:
          - {name: STUDYID, label: Study Identifier, data_type: text, length: 20, core: Req, role: Identifier, origin: {type: Protocol}}
          - {name: DOMAIN, label: Domain Abbreviation, data_type: text, length: 2, core: Req, role: Identifier, origin: {type: Assigned, source: Sponsor}}
          - {name: USUBJID, label: Unique Subject Identifier, data_type: text, length: 40, core: Req, role: Identifier, origin: {type: Derived, source: Sponsor}, method: MT.SEQ}
          - {name: LBSEQ, label: Sequence Number, data_type: integer, core: Req, role: Identifier, origin: {type: Derived, source: Sponsor}, method: MT.SEQ}
          - {name: LBTESTCD, label: Lab Test or Examination Short Name, data_type: text, length: 8, core: Req, role: Topic, codelist: CL.LBTESTCD, origin: {type: Assigned, source: Sponsor}}
          - {name: LBORRES, label: Result or Finding in Original Units, data_type: text, length: 20, core: Exp, role: Result Qualifier, origin: {type: Collected, source: Vendor}}
          - {name: LBNAM, label: Vendor Name, data_type: text, length: 20, core: Perm, role: Record Qualifier, origin: {type: Assigned, source: Vendor}}
          - {name: LBSTRESN, label: Numeric Result/Finding in Standard Units, data_type: float, significant_digits: 2, core: Exp, role: Result Qualifier, origin: {type: Derived, source: Sponsor}, method: MT.SEQ}
          - {name: LBDTC, label: Date/Time of Specimen Collection, data_type: datetime, length: 19, core: Exp, role: Timing, origin: {type: Collected, source: Vendor}}
        value_level:
          - variable: LBORRES
            where: [{variable: LBTESTCD, comparator: EQ, values: [ALB]}]
            label: Albumin result
            data_type: float
            length: 5
            significant_digits: 1
            origin: {type: Collected, source: Vendor}
          - variable: LBORRES
            where: [{variable: LBTESTCD, comparator: IN, values: [HGB, PLAT]}]
            data_type: float
            length: 12
            origin: {type: Collected, source: Vendor}
          - variable: LBORRES
            where: [{variable: LBNAM, comparator: EQ, values: [CENTRAL]}]
            data_type: text
            origin: {type: Collected, source: Vendor}
    """,
    "sdtm/suppae.yaml": """
        name: SUPPAE
        label: Supplemental Qualifiers for AE
        class: RELATIONSHIP
        structure: One record per IDVAR, IDVARVAL, and QNAM value per subject
        keys: [STUDYID, RDOMAIN, USUBJID, IDVAR, IDVARVAL, QNAM]
        purpose: Tabulation
        standard: STD.SDTMIG.3-4
        variables:
          - {name: STUDYID, label: Study Identifier, data_type: text, length: 20, core: Req, role: Identifier, origin: {type: Protocol}}
          - {name: RDOMAIN, label: Related Domain Abbreviation, data_type: text, length: 2, core: Req, role: Identifier, origin: {type: Assigned, source: Sponsor}}
          - {name: USUBJID, label: Unique Subject Identifier, data_type: text, length: 40, core: Req, role: Identifier, origin: {type: Derived, source: Sponsor}, method: MT.SEQ}
          - {name: IDVAR, label: Identifying Variable, data_type: text, length: 8, core: Exp, role: Identifier, origin: {type: Assigned, source: Sponsor}}
          - {name: IDVARVAL, label: Identifying Variable Value, data_type: text, length: 40, core: Exp, role: Identifier, origin: {type: Assigned, source: Sponsor}}
          - {name: QNAM, label: Qualifier Variable Name, data_type: text, length: 8, core: Req, role: Topic, origin: {type: Assigned, source: Sponsor}}
          - {name: QLABEL, label: Qualifier Variable Label, data_type: text, length: 40, core: Req, role: Synonym Qualifier, origin: {type: Assigned, source: Sponsor}}
          - {name: QVAL, label: Data Value, data_type: text, length: 200, core: Req, role: Result Qualifier, origin: {type: Collected, source: Investigator}}
          - {name: QORIG, label: Origin, data_type: text, length: 20, core: Req, role: Record Qualifier, origin: {type: Assigned, source: Sponsor}}
        value_level:
          - variable: QVAL
            where: [{variable: QNAM, comparator: EQ, values: [AEDLT]}]
            label: Dose-limiting toxicity
            data_type: text
            length: 1
            codelist: CL.NY
            origin: {type: Collected, source: Investigator, documents: [{document: LF.acrf, pages: "6"}]}
    """,
    "adam/adsl.yaml": """
        name: ADSL
        label: Subject-Level Analysis Dataset
        class: SUBJECT LEVEL ANALYSIS DATASET
        structure: One record per subject
        keys: [STUDYID, USUBJID]
        purpose: Analysis
        standard: STD.ADAMIG.1-3
        repeating: false
        variables:
          - {name: STUDYID, label: Study Identifier, data_type: text, length: 20, core: Req, origin: {type: Predecessor, description: DM.STUDYID}}
          - {name: USUBJID, label: Unique Subject Identifier, data_type: text, length: 40, core: Req, origin: {type: Predecessor, description: DM.USUBJID}}
          - {name: AGE, label: Age, data_type: integer, core: Req, origin: {type: Predecessor, description: DM.AGE}}
          - {name: SAFFL, label: Safety Population Flag, data_type: text, length: 1, core: Cond, codelist: CL.NY, origin: {type: Derived, source: Sponsor}, method: MT.SAFFL}
          - {name: TRTSDT, label: Date of First Exposure to Treatment, data_type: date, display_format: DATE9., core: Cond, origin: {type: Derived, source: Sponsor}, method: MT.TRTSDT}
    """,
    "adam/adtte.yaml": """
        name: ADTTE
        label: Time-to-Event Analysis Dataset
        class: BASIC DATA STRUCTURE
        subclass: TIME-TO-EVENT
        structure: One record per subject per parameter
        keys: [STUDYID, USUBJID, PARAMCD]
        purpose: Analysis
        standard: STD.ADAMIG.1-3
        variables:
          - {name: STUDYID, label: Study Identifier, data_type: text, length: 20, core: Req, origin: {type: Predecessor, description: ADSL.STUDYID}}
          - {name: USUBJID, label: Unique Subject Identifier, data_type: text, length: 40, core: Req, origin: {type: Predecessor, description: ADSL.USUBJID}}
          - {name: PARAMCD, label: Parameter Code, data_type: text, length: 8, core: Req, codelist: CL.PARAMCD, origin: {type: Assigned, source: Sponsor}}
          - {name: PARAM, label: Parameter, data_type: text, length: 200, core: Req, origin: {type: Assigned, source: Sponsor}}
          - {name: AVAL, label: Analysis Value, data_type: float, significant_digits: 1, core: Cond, origin: {type: Derived, source: Sponsor}, method: MT.OS}
          - {name: STARTDT, label: Time-to-Event Origin Date for Subject, data_type: date, display_format: DATE9., core: Cond, origin: {type: Derived, source: Sponsor}, method: MT.TRTSDT}
          - {name: CNSR, label: Censor, data_type: integer, core: Cond, origin: {type: Derived, source: Sponsor}, method: MT.OS}
        value_level:
          - variable: AVAL
            where: [{variable: PARAMCD, comparator: EQ, values: [OS]}]
            label: Overall survival (days)
            data_type: integer
            origin: {type: Derived, source: Sponsor}
            method: MT.OS
    """,
    "codelists/sex.yaml": """
        oid: CL.SEX
        name: Sex
        nci_code: C66731
        extensible: false
        standard: STD.SDTM.CT.2025-03-28
        terms:
          - {submission_value: F, decode: Female, nci_code: C16576}
          - {submission_value: M, decode: Male, nci_code: C20197}
    """,
    "codelists/ny.yaml": """
        oid: CL.NY
        name: No Yes Response
        nci_code: C66742
        extensible: false
        standard: STD.SDTM.CT.2025-03-28
        terms:
          - {submission_value: N, decode: "No", nci_code: C49487}
          - {submission_value: Y, decode: "Yes", nci_code: C49488}
    """,
    "codelists/ageu.yaml": """
        oid: CL.AGEU
        name: Age Unit
        nci_code: C66781
        extensible: false
        standard: STD.SDTM.CT.2025-03-28
        terms:
          - {submission_value: YEARS, nci_code: C29848}
    """,
    "codelists/lbtestcd.yaml": """
        oid: CL.LBTESTCD
        name: Laboratory Test Code
        nci_code: C65047
        extensible: true
        standard: STD.SDTM.CT.2025-03-28
        terms:
          - {submission_value: ALB, decode: Albumin Measurement, nci_code: C64431}
          - {submission_value: HGB, decode: Hemoglobin Measurement, nci_code: C64848}
          - {submission_value: PLAT, decode: Platelet Count, nci_code: C51951}
          - {submission_value: XQ<1, decode: "Sponsor test <&> \\"quoted\\"", extended: true}
    """,
    "codelists/aedecod.yaml": """
        oid: CL.AEDECOD
        name: Adverse Event Dictionary Derived Term
        dictionary: CL.MEDDRA
    """,
    "codelists/paramcd.yaml": """
        oid: CL.PARAMCD
        name: Parameter Code (ADTTE)
        terms:
          - {submission_value: OS, decode: Overall Survival (days), order: 1}
          - {submission_value: PFS, decode: Progression-Free Survival (days), order: 2}
    """,
}


def write_spec(folder: Path, overrides: dict[str, str] | None = None) -> Path:
    """Write the spec files (``overrides`` replace or add files) under ``folder``; return it."""
    files = dict(FILES)
    files.update(overrides or {})
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return folder


def tiny_spec(folder: Path, overrides: dict[str, str] | None = None) -> StudySpec:
    """Write the spec under ``folder`` and load it with the project's strict loader."""
    return load_specs(write_spec(folder, overrides))


def sdtm_frames() -> dict[str, pd.DataFrame]:
    """The SDTM frames, as literal tables (LBNAM is deliberately absent: a spec variable not written)."""
    s = "TINY01"
    dm = pd.DataFrame({
        "STUDYID": [s, s, s],
        "DOMAIN": ["DM", "DM", "DM"],
        "USUBJID": ["TINY01-001", "TINY01-002", "TINY01-003"],
        "RFSTDTC": ["2024-01-05T10:00", "2024-01-09", None],
        "AGE": [61.0, 70.0, 55.0],
        "AGEU": ["YEARS", "YEARS", "YEARS"],
        "SEX": ["F", "M", "F"],
        "ARMNRS": [None, None, "ASSIGNED, NOT TREATED <&>"],
    })
    ae = pd.DataFrame({
        "STUDYID": [s, s, s],
        "DOMAIN": ["AE", "AE", "AE"],
        "USUBJID": ["TINY01-001", "TINY01-001", "TINY01-002"],
        "AESEQ": [1.0, 2.0, 1.0],
        "AETERM": ["FEVER", "HEADACHE & NAUSEA", "CRS"],
        "AEDECOD": ["Pyrexia", "Headache", "Cytokine release syndrome"],
        "AESER": ["N", "N", "Y"],
        "AESTDTC": ["2024-01-06", "2024-01", "2024-01-10"],
        "AESTDY": [2.0, np.nan, 2.0],
        "AEENRF": [None, None, None],
    })
    lb = pd.DataFrame({
        "STUDYID": [s] * 4,
        "DOMAIN": ["LB"] * 4,
        "USUBJID": ["TINY01-001", "TINY01-001", "TINY01-002", "TINY01-002"],
        "LBSEQ": [1.0, 2.0, 1.0, 2.0],
        "LBTESTCD": ["ALB", "HGB", "PLAT", "XQ<1"],
        "LBORRES": ["41.5", "12.1", "230", "POSITIVE"],
        "LBSTRESN": [41.5, 121.0, 230.0, np.nan],
        "LBDTC": ["2024-01-04T08:00:00", "2024-01-04T08:00:00", "2024-01-08", "2024-01-08"],
    })
    suppae = pd.DataFrame({
        "STUDYID": [s, s],
        "RDOMAIN": ["AE", "AE"],
        "USUBJID": ["TINY01-001", "TINY01-002"],
        "IDVAR": ["AESEQ", "AESEQ"],
        "IDVARVAL": ["1", "1"],
        "QNAM": ["AEDLT", "AEDLT"],
        "QLABEL": ["Dose-limiting toxicity", "Dose-limiting toxicity"],
        "QVAL": ["N", "Y"],
        "QORIG": ["CRF", "CRF"],
    })
    return {"DM": dm, "AE": ae, "LB": lb, "SUPPAE": suppae}


def adam_frames() -> dict[str, pd.DataFrame]:
    """The ADaM frames, as literal tables (numeric dates as datetime64, per the architecture)."""
    s = "TINY01"
    adsl = pd.DataFrame({
        "STUDYID": [s, s, s],
        "USUBJID": ["TINY01-001", "TINY01-002", "TINY01-003"],
        "AGE": [61.0, 70.0, 55.0],
        "SAFFL": ["Y", "Y", "N"],
        "TRTSDT": pd.to_datetime(["2024-01-05", "2024-01-09", None]),
    })
    adtte = pd.DataFrame({
        "STUDYID": [s, s, s, s],
        "USUBJID": ["TINY01-001", "TINY01-001", "TINY01-002", "TINY01-002"],
        "PARAMCD": ["OS", "PFS", "OS", "PFS"],
        "PARAM": ["Overall Survival (days)", "Progression-Free Survival (days)"] * 2,
        "AVAL": [120.0, 60.5, 90.0, 45.0],
        "STARTDT": pd.to_datetime(["2024-01-05", "2024-01-05", "2024-01-09", "2024-01-09"]),
        "CNSR": [1.0, 0.0, 0.0, 0.0],
    })
    return {"ADSL": adsl, "ADTTE": adtte}


def write_study(root: Path, spec: StudySpec) -> tuple[list[WrittenDataset], list[WrittenDataset]]:
    """Write the SDTM frames into ``root/sdtm`` and the ADaM frames into ``root/adam`` with the
    project's writer; return the (SDTM, ADaM) WrittenDataset lists."""
    from cdisc_pipe.xpt import write_datasets

    sdtm = write_datasets(sdtm_frames(), spec, root / "sdtm", purpose="Tabulation", write_json=False)
    adam = write_datasets(adam_frames(), spec, root / "adam", purpose="Analysis", write_json=False)
    return sdtm, adam
