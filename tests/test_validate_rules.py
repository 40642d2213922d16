"""Every validation rule fires on a broken fixture and stays quiet on the clean one.

The clean study below is a small, hand-checked CAR-T study (3 subjects: S1 infused, S2 infused and
died on day 11, S3 apheresed but never infused) with SDTM, ADaM, a matching spec, file metadata, a
define.xml model and a tiny CT package.  Each entry of ``BREAKS`` names a rule and a mutation of the
clean study that must make exactly that rule report at least one finding.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.errors import Finding, InputError, Problem
from cdisc_pipe.spec.model import (
    Codelist, CodelistTerm, Dataset, Origin, Standard, Study, StudySpec, Variable,
)
from cdisc_pipe.validate import ValidationSettings, load_rules, validate_data
from cdisc_pipe.validate import functions as vfun
from cdisc_pipe.validate.data import (
    ColumnMeta, DatasetMeta, DefineCodelist, DefineDataset, DefineInfo, DefineVariable, StudyData,
)

STUDY = "BCMACART01"
S1, S2, S3 = (f"{STUDY}-101-100{i}" for i in (1, 2, 3))
ARM = {"DL1": "DL1: 1.0x10^6 CAR-T cells/kg", "DL2": "DL2: 3.0x10^6 CAR-T cells/kg",
       "DL3": "DL3: 6.0x10^6 CAR-T cells/kg"}
NaN = np.nan
T = pd.Timestamp

CT_TEXT = "\n".join([
    "Code\tCodelist Code\tCodelist Extensible (Yes/No)\tCodelist Name\tCDISC Submission Value\tCDISC Synonym(s)"
    "\tCDISC Definition\tNCI Preferred Term",
    "C66731\t\tNo\tSex\tSEX\tSex\tSex.\tCDISC SDTM Sex of Individual Terminology",
    "C16576\tC66731\t\tSex\tF\tFemale\tFemale.\tFemale",
    "C20197\tC66731\t\tSex\tM\tMale\tMale.\tMale",
    "C17998\tC66731\t\tSex\tU\tUnknown\tUnknown.\tUnknown",
    "C65047\t\tYes\tLaboratory Test Code\tLBTESTCD\tLab Test Code\tLab.\tCDISC SDTM Laboratory Test Code Terminology",
    "C64433\tC65047\t\tLaboratory Test Code\tALT\tALT\tALT.\tAlanine Aminotransferase Measurement",
    "C92291\tC65047\t\tLaboratory Test Code\tMCPROT\tMonoclonal Protein\tM.\tMonoclonal Protein Measurement",
]) + "\n"


def _frames() -> dict[str, pd.DataFrame]:
    """The clean study's datasets (literal tables; study days worked out in the comments)."""
    def df(cols: str, rows: list[tuple]) -> pd.DataFrame:
        names = cols.split()
        out = pd.DataFrame(rows, columns=names)
        for c in names:
            if out[c].dtype == object and not out[c].map(lambda v: isinstance(v, pd.Timestamp)).any():
                out[c] = out[c].astype("str").where(out[c].notna(), None).astype("str")
        return out

    dm = df("STUDYID DOMAIN USUBJID SUBJID RFSTDTC RFENDTC RFXSTDTC RFXENDTC RFICDTC RFPENDTC DTHDTC DTHFL SITEID "
            "BRTHDTC AGE AGEU SEX ARMCD ARM ACTARMCD ACTARM ARMNRS COUNTRY", [
                (STUDY, "DM", S1, "1001", "2023-01-07T10:00", "2023-01-07T10:00", "2023-01-02", "2023-01-07T10:00",
                 "2022-12-20", "2023-03-01", None, None, "101", "1960-05-01", 62.0, "YEARS", "M", "DL1", ARM["DL1"],
                 "DL1", ARM["DL1"], None, "CHN"),
                (STUDY, "DM", S2, "1002", "2023-01-10T09:00", "2023-01-10T09:00", "2023-01-05", "2023-01-10T09:00",
                 "2022-12-28", "2023-01-20", "2023-01-20", "Y", "101", "1958", 64.0, "YEARS", "F", "DL2", ARM["DL2"],
                 "DL2", ARM["DL2"], None, "CHN"),
                (STUDY, "DM", S3, "1003", None, None, None, None, "2022-12-30", "2023-01-15", None, None, "101",
                 "1970", 52.0, "YEARS", "F", "DL1", ARM["DL1"], None, None, "ASSIGNED, NOT TREATED", "CHN"),
            ])
    # EXSTDY: S1 LD 2023-01-02 vs RFSTDTC 2023-01-07 -> -5; infusion day -> 1.  S2: 01-05 vs 01-10 -> -5.
    ex = df("STUDYID DOMAIN USUBJID EXSEQ EXTRT EXCAT EXDOSE EXDOSU EXSTDTC EXENDTC EXSTDY EXENDY", [
        (STUDY, "EX", S1, 1.0, "FLUDARABINE", "LYMPHODEPLETION", 30.0, "mg/m2", "2023-01-02", "2023-01-02", -5.0, -5.0),
        (STUDY, "EX", S1, 2.0, "ANTI-BCMA CAR-T CELLS", "CAR-T", 1.0, "10^6/kg", "2023-01-07T10:00",
         "2023-01-07T10:00", 1.0, 1.0),
        (STUDY, "EX", S2, 1.0, "FLUDARABINE", "LYMPHODEPLETION", 30.0, "mg/m2", "2023-01-05", "2023-01-05", -5.0, -5.0),
        (STUDY, "EX", S2, 2.0, "ANTI-BCMA CAR-T CELLS", "CAR-T", 3.0, "10^6/kg", "2023-01-10T09:00",
         "2023-01-10T09:00", 1.0, 1.0),
    ])
    # AE: S1 CRS 01-08..01-10 -> days 2..4; S2 sepsis 01-15..01-20 vs 01-10 -> days 6..11, fatal.
    ae = df("STUDYID DOMAIN USUBJID AESEQ AELNKID AETERM AEDECOD AESTDTC AEENDTC AESTDY AEENDY AETOXGR AESER AESDTH "
            "AESLIFE AESHOSP AESDISAB AESCONG AESMIE AEOUT", [
                (STUDY, "AE", S1, 1.0, "1", "CRS", "Cytokine release syndrome", "2023-01-08", "2023-01-10", 2.0, 4.0,
                 "2", "N", "N", "N", "N", "N", "N", "N", "RECOVERED/RESOLVED"),
                (STUDY, "AE", S2, 1.0, None, "SEPSIS", "Sepsis", "2023-01-15", "2023-01-20", 6.0, 11.0, "5", "Y", "Y",
                 "N", "Y", "N", "N", "N", "FATAL"),
            ])
    suppae = df("STUDYID RDOMAIN USUBJID IDVAR IDVARVAL QNAM QLABEL QVAL QORIG", [
        (STUDY, "AE", S1, "AESEQ", "1", "AEDLT", "Dose Limiting Toxicity", "N", "Investigator"),
    ])
    fa = df("STUDYID DOMAIN USUBJID FASEQ FALNKID FATESTCD FATEST FAOBJ FAORRES FASTRESC FASTRESN FASTRESU FADTC FADY", [
        (STUDY, "FA", S1, 1.0, "1", "MAXTEMP", "Maximum Temperature", "Cytokine release syndrome", "39.1", "39.1", 39.1,
         "C", "2023-01-08", 2.0),
    ])
    # disposition: S1 completed on 2023-03-01 (RFPENDTC), S2 died on 2023-01-20 of the fatal sepsis (DD)
    ds = df("STUDYID DOMAIN USUBJID DSSEQ DSTERM DSDECOD DSCAT DSSTDTC", [
        (STUDY, "DS", S1, 1.0, "COMPLETED", "COMPLETED", "DISPOSITION EVENT", "2023-03-01"),
        (STUDY, "DS", S2, 1.0, "DEATH", "DEATH", "DISPOSITION EVENT", "2023-01-20"),
    ])
    dd = df("STUDYID DOMAIN USUBJID DDSEQ DDTESTCD DDTEST DDORRES DDSTRESC DDDTC", [
        (STUDY, "DD", S2, 1.0, "PRCDTH", "Primary Cause of Death", "ADVERSE EVENT", "SEPSIS", "2023-01-20"),
    ])
    relrec = df("STUDYID RDOMAIN USUBJID IDVAR IDVARVAL RELTYPE RELID", [
        (STUDY, "AE", S1, "AESEQ", "1", None, "1"),
        (STUDY, "FA", S1, "FASEQ", "1", None, "1"),
    ])
    cm = df("STUDYID DOMAIN USUBJID CMSEQ CMTRT CMCAT CMINDC CMSTDTC CMSTDY", [
        (STUDY, "CM", S1, 1.0, "TOCILIZUMAB", "CONCOMITANT MEDICATION", "Cytokine release syndrome", "2023-01-09", 3.0),
    ])
    # LBDY: S1 01-01 -> -6, 01-07 -> 1, 02-04 -> 29 (28 days after + 1).  S2 01-04 -> -6, 01-10 -> 1.
    lb = df("STUDYID DOMAIN USUBJID LBSEQ LBTESTCD LBTEST LBCAT LBORRES LBORRESU LBSTRESC LBSTRESN LBSTRESU LBSTNRLO "
            "LBSTNRHI LBSTAT LBSPEC LBMETHOD LBLLOQ LBLOBXFL VISITNUM VISIT LBDTC LBDY", [
                (STUDY, "LB", S1, 1.0, "ALT", "Alanine Aminotransferase", "CHEMISTRY", "30", "U/L", "30", 30.0, "U/L",
                 0.0, 40.0, None, "SERUM", None, NaN, "Y", 1.0, "SCREENING", "2023-01-01", -6.0),
                (STUDY, "LB", S1, 2.0, "ALT", "Alanine Aminotransferase", "CHEMISTRY", "45", "U/L", "45", 45.0, "U/L",
                 0.0, 40.0, None, "SERUM", None, NaN, None, 3.0, "DAY 29", "2023-02-04", 29.0),
                (STUDY, "LB", S1, 3.0, "MCPROT", "Monoclonal Protein", "DISEASE ASSESSMENT", "2.0", "g/dL", "2.0", 2.0,
                 "g/dL", NaN, NaN, None, "SERUM", "ELECTROPHORESIS", NaN, "Y", 2.0, "DAY 1", "2023-01-07T08:00", 1.0),
                (STUDY, "LB", S1, 4.0, "MCPROT", "Monoclonal Protein", "DISEASE ASSESSMENT", "0.8", "g/dL", "0.8", 0.8,
                 "g/dL", NaN, NaN, None, "SERUM", "ELECTROPHORESIS", NaN, None, 3.0, "DAY 29", "2023-02-04", 29.0),
                (STUDY, "LB", S1, 5.0, "MRDNGS", "MRD by NGS", "MRD", "NEGATIVE", None, "NEGATIVE", NaN, None, NaN,
                 NaN, None, "BONE MARROW", "NEXT GENERATION SEQUENCING", 0.00001, None, 3.0, "DAY 29", "2023-02-04",
                 29.0),
                (STUDY, "LB", S2, 1.0, "ALT", "Alanine Aminotransferase", "CHEMISTRY", "22", "U/L", "22", 22.0, "U/L",
                 0.0, 40.0, None, "SERUM", None, NaN, "Y", 1.0, "SCREENING", "2023-01-04", -6.0),
                (STUDY, "LB", S2, 2.0, "ALT", "Alanine Aminotransferase", "CHEMISTRY", "25", "U/L", "25", 25.0, "U/L",
                 0.0, 40.0, None, "SERUM", None, NaN, None, 2.0, "DAY 1", "2023-01-10", 1.0),
                (STUDY, "LB", S2, 3.0, "MCPROT", "Monoclonal Protein", "DISEASE ASSESSMENT", "1.5", "g/dL", "1.5", 1.5,
                 "g/dL", NaN, NaN, None, "SERUM", "ELECTROPHORESIS", NaN, "Y", 2.0, "DAY 1", "2023-01-10T08:00", 1.0),
            ])
    pc = df("STUDYID DOMAIN USUBJID PCSEQ PCTESTCD PCTEST PCORRES PCORRESU PCSTRESC PCSTRESN PCSTRESU PCLLOQ PCSPEC "
            "PCLOBXFL VISITNUM VISIT PCDTC PCDY PCELTM PCRFTDTC", [
                (STUDY, "PC", S1, 1.0, "BCMACAR", "Anti-BCMA CAR Transgene", "<50", "copies/ug", "BLQ", NaN,
                 "copies/ug", 50.0, "BLOOD", "Y", 2.0, "DAY 1", "2023-01-07T08:00", 1.0, "-PT2H", "2023-01-07T10:00"),
                (STUDY, "PC", S1, 2.0, "BCMACAR", "Anti-BCMA CAR Transgene", "1500", "copies/ug", "1500", 1500.0,
                 "copies/ug", 50.0, "BLOOD", None, 3.0, "DAY 29", "2023-02-04", 29.0, "P28D", "2023-01-07T10:00"),
            ])
    pp = df("STUDYID DOMAIN USUBJID PPSEQ PPTESTCD PPTEST PPCAT PPORRES PPSTRESC PPSTRESN PPSTRESU PPSPEC PPSTINT "
            "PPENINT PPRFTDTC", [
                (STUDY, "PP", S1, 1.0, "AUCINT", "AUC Over Interval", "BCMACAR", "20000", "20000", 20000.0,
                 "day*copies/ug", "BLOOD", "P0D", "P28D", "2023-01-07T10:00"),
                (STUDY, "PP", S1, 2.0, "CMAX", "Max Conc", "BCMACAR", "1500", "1500", 1500.0, "copies/ug", "BLOOD", None,
                 None, "2023-01-07T10:00"),
            ])
    rs = df("STUDYID DOMAIN USUBJID RSSEQ RSTESTCD RSTEST RSCAT RSORRES RSSTRESC RSSTRESN VISITNUM VISIT RSDTC RSDY", [
        (STUDY, "RS", S1, 1.0, "ECOG101", "ECOG1-Performance Status", "ECOG", "0", "0", 0.0, 1.0, "SCREENING",
         "2023-01-01", -6.0),
        (STUDY, "RS", S1, 2.0, "OVRLRESP", "Overall Response", "KUMAR IMWG 2016", "PR", "PR", NaN, 3.0, "DAY 29",
         "2023-02-04", 29.0),
    ])
    ts_params = ValidationSettings().ts_required
    ts_vals = {"SSTDTC": "2022-12-01", "SDTIGVER": "3.4"}
    ts = df("STUDYID DOMAIN TSSEQ TSPARMCD TSPARM TSVAL TSVALNF TSVALCD TSVCDREF TSVCDVER",
            [(STUDY, "TS", 1.0, p, f"Parameter {p}", ts_vals.get(p, "X"), None, None, None, None) for p in ts_params])
    ta = df("STUDYID DOMAIN ARMCD ARM TAETORD ETCD ELEMENT EPOCH",
            [(STUDY, "TA", k, v, 1.0, "CART", "CAR-T", "TREATMENT") for k, v in ARM.items()])
    tv = df("STUDYID DOMAIN VISITNUM VISIT VISITDY ARMCD", [
        (STUDY, "TV", 1.0, "SCREENING", -7.0, None), (STUDY, "TV", 2.0, "DAY 1", 1.0, None),
        (STUDY, "TV", 3.0, "DAY 29", 29.0, None)])
    sv = df("STUDYID DOMAIN USUBJID VISITNUM VISIT SVSTDTC SVENDTC", [
        (STUDY, "SV", S1, 1.0, "SCREENING", "2023-01-01", "2023-01-01"),
        (STUDY, "SV", S1, 2.0, "DAY 1", "2023-01-07", "2023-01-07"),
        (STUDY, "SV", S1, 3.0, "DAY 29", "2023-02-04", "2023-02-04"),
        (STUDY, "SV", S2, 1.0, "SCREENING", "2023-01-04", "2023-01-04"),
        (STUDY, "SV", S2, 2.0, "DAY 1", "2023-01-10", "2023-01-10"),
        (STUDY, "SV", S3, 1.0, "SCREENING", "2023-01-05", "2023-01-05"),
    ])
    adsl = df("STUDYID USUBJID SUBJID TRT01P TRT01A SAFFL TRTSDT TRTEDT AGE", [
        (STUDY, S1, "1001", ARM["DL1"], ARM["DL1"], "Y", T("2023-01-07"), T("2023-01-07"), 62.0),
        (STUDY, S2, "1002", ARM["DL2"], ARM["DL2"], "Y", T("2023-01-10"), T("2023-01-10"), 64.0),
        (STUDY, S3, "1003", ARM["DL1"], None, "N", pd.NaT, pd.NaT, 52.0),
    ])
    # ADY: 2023-01-01 - 2023-01-07 = -6; 2023-02-04 -> 29.  CHG 45-30 = 15, PCHG 15/30*100 = 50.
    adlb = df("STUDYID USUBJID TRT01P TRTSDT ASEQ PARAMCD PARAM AVAL AVALU BASE CHG PCHG ABLFL BASETYPE ADT ADY "
              "ANL01FL", [
                  (STUDY, S1, ARM["DL1"], T("2023-01-07"), 1.0, "ALT", "Alanine Aminotransferase (U/L)", 30.0, "U/L",
                   30.0, 0.0, 0.0, "Y", "PRE-LD", T("2023-01-01"), -6.0, "Y"),
                  (STUDY, S1, ARM["DL1"], T("2023-01-07"), 2.0, "ALT", "Alanine Aminotransferase (U/L)", 45.0, "U/L",
                   30.0, 15.0, 50.0, None, "PRE-LD", T("2023-02-04"), 29.0, "Y"),
              ])
    # PFS AVAL: S1 03-01 - 01-07 + 1 = 54; S2 01-20 - 01-10 + 1 = 11.
    adtte = df("STUDYID USUBJID PARAMCD PARAM STARTDT ADT AVAL CNSR", [
        (STUDY, S1, "PFS", "Progression-Free Survival (days)", T("2023-01-07"), T("2023-03-01"), 54.0, 1.0),
        (STUDY, S2, "PFS", "Progression-Free Survival (days)", T("2023-01-10"), T("2023-01-20"), 11.0, 0.0),
    ])
    return {"DM": dm, "EX": ex, "AE": ae, "SUPPAE": suppae, "FA": fa, "DS": ds, "DD": dd, "RELREC": relrec, "CM": cm, "LB": lb,
            "PC": pc, "PP": pp, "RS": rs, "TS": ts, "TA": ta, "TV": tv, "SV": sv,
            "ADSL": adsl, "ADLB": adlb, "ADTTE": adtte}


CLASSES = {"DM": "SPECIAL PURPOSE", "SV": "SPECIAL PURPOSE", "EX": "INTERVENTIONS", "CM": "INTERVENTIONS",
           "AE": "EVENTS", "DS": "EVENTS", "DD": "FINDINGS", "SUPPAE": "RELATIONSHIP", "RELREC": "RELATIONSHIP", "FA": "FINDINGS ABOUT",
           "LB": "FINDINGS", "PC": "FINDINGS", "PP": "FINDINGS", "RS": "FINDINGS", "TS": "TRIAL DESIGN",
           "TA": "TRIAL DESIGN", "TV": "TRIAL DESIGN", "ADSL": "SUBJECT LEVEL ANALYSIS DATASET",
           "ADLB": "BASIC DATA STRUCTURE", "ADTTE": "BASIC DATA STRUCTURE"}
KEYS = {"DM": ["STUDYID", "USUBJID"], "LB": ["STUDYID", "USUBJID", "LBTESTCD", "LBSPEC", "LBMETHOD", "VISITNUM", "LBDTC"],
        "TS": ["STUDYID", "TSPARMCD"], "TA": ["STUDYID", "ARMCD"], "TV": ["STUDYID", "VISITNUM"],
        "SV": ["STUDYID", "USUBJID", "VISITNUM"], "SUPPAE": ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM"],
        "RELREC": ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "RELID"], "ADSL": ["STUDYID", "USUBJID"],
        "ADLB": ["STUDYID", "USUBJID", "PARAMCD", "ADT"], "ADTTE": ["STUDYID", "USUBJID", "PARAMCD"]}
REQ = {"STUDYID", "DOMAIN", "USUBJID", "AEDECOD", "AETERM", "LBTESTCD", "TSPARMCD", "PARAMCD"}


def _spec(frames: dict[str, pd.DataFrame]) -> StudySpec:
    datasets = {}
    for name, df in frames.items():
        variables = []
        for c in df.columns:
            s = df[c]
            if pd.api.types.is_datetime64_any_dtype(s.dtype):
                dt, fmt, length = "date", "DATE9.", None
            elif pd.api.types.is_numeric_dtype(s.dtype):
                dt, fmt, length = ("integer" if c.endswith(("SEQ", "DY")) else "float"), None, None
            else:
                dt, fmt = "text", None
                length = max(int(s.dropna().str.len().max()) if s.notna().any() else 1, 1)
            core = "Req" if c in REQ else ("Exp" if c == "LBSTRESU" else "Perm")
            variables.append(Variable(name=c, label=f"{c} label", data_type=dt, length=length, display_format=fmt,
                                      core=core, origin=Origin(type="Collected"),
                                      codelist={"SEX": "CL.SEX", "LBTESTCD": "CL.LBTESTCD"}.get(c)))
        prefix = name if name not in ("SUPPAE", "RELREC") and not name.startswith("AD") else None
        keys = KEYS.get(name) or [k for k in ("STUDYID", "USUBJID", f"{prefix}SEQ") if k in df.columns]
        datasets[name] = Dataset(name=name, label=f"{name} dataset", **{"class": CLASSES[name]},
                                 structure="one record per something", keys=keys,
                                 purpose="Analysis" if name.startswith("AD") else "Tabulation",
                                 domain=prefix, variables=variables)
    codelists = {
        "CL.SEX": Codelist(oid="CL.SEX", name="Sex", nci_code="C66731", extensible=False, standard="STD.SDTM.CT",
                           terms=[CodelistTerm(submission_value="F", nci_code="C16576"),
                                  CodelistTerm(submission_value="M", nci_code="C20197")]),
        "CL.LBTESTCD": Codelist(oid="CL.LBTESTCD", name="Lab test code", nci_code="C65047", extensible=True,
                                standard="STD.SDTM.CT",
                                terms=[CodelistTerm(submission_value="ALT", nci_code="C64433"),
                                       CodelistTerm(submission_value="MCPROT", nci_code="C92291"),
                                       CodelistTerm(submission_value="MRDNGS", extended=True)]),
    }
    return StudySpec(
        study=Study(oid="STDY.X", name=STUDY, protocol_name=STUDY, description="test",
                    metadata_datetime="2025-01-01T00:00:00"),
        standards=[Standard(oid="STD.SDTMIG", name="SDTMIG", type="IG", version="3.4"),
                   Standard(oid="STD.SDTM.CT", name="CDISC/NCI", type="CT", publishing_set="SDTM",
                            version="test", ct_file="sdtm-ct-test.txt")],
        datasets=datasets, codelists=codelists)


def _meta(name: str, df: pd.DataFrame, spec: StudySpec) -> DatasetMeta:
    ds = spec.datasets[name]
    cols = {}
    for v in ds.variables:
        s = df[v.name]
        if v.is_numeric:
            cols[v.name] = ColumnMeta(v.name, v.label, "numeric", 8, v.display_format)
        else:
            n = max(int(s.dropna().str.encode("utf-8").str.len().max()) if s.notna().any() else 1, 1)
            cols[v.name] = ColumnMeta(v.name, v.label, "text", n)
    return DatasetMeta(name=name, label=ds.label, path=f"/study/{name.lower()}.xpt", columns=cols)


def _define(purpose: str, spec: StudySpec, meta: dict[str, DatasetMeta]) -> DefineInfo:
    datasets = {}
    for name, ds in spec.datasets.items():
        if ds.purpose != purpose:
            continue
        variables = {v.name: DefineVariable(
            name=v.name, label=v.label, data_type=v.data_type, length=meta[name].columns[v.name].length,
            order=v.order, key_sequence=ds.key_sequence(v.name), mandatory=v.is_mandatory, codelist=v.codelist,
            origin=v.origin.type, method=None, has_value_level=v.name.endswith(("ORRES", "STRESN")))
            for v in ds.variables}
        datasets[name] = DefineDataset(name, ds.label, ds.dataset_class, purpose, f"{name.lower()}.xpt", variables)
    codelists = {oid: DefineCodelist(oid, cl.nci_code, cl.extensible, cl.values(),
                                     [t.submission_value for t in cl.terms if t.extended], False)
                 for oid, cl in spec.codelists.items()}
    return DefineInfo(path=f"/study/{purpose}/define.xml", xml=b"<ODM/>", datasets=datasets, codelists=codelists,
                      ct_standards=[])


_CLEAN: list = []


def clean_study() -> tuple[StudyData, StudySpec]:
    """A fresh, clean study (datasets, file metadata, define.xml model) and its spec (deep copies)."""
    if not _CLEAN:
        _CLEAN.append(_build_clean())
    return copy.deepcopy(_CLEAN[0])


def _build_clean() -> tuple[StudyData, StudySpec]:
    frames = _frames()
    spec = _spec(frames)
    meta = {n: _meta(n, df, spec) for n, df in frames.items()}
    data = StudyData(datasets=frames, meta=meta,
                     purpose={n: ("Analysis" if n.startswith("AD") else "Tabulation") for n in frames},
                     folders={"Tabulation": "/study/sdtm", "Analysis": "/study/adam"})
    data.defines = {"Tabulation": _define("Tabulation", spec, meta), "Analysis": _define("Analysis", spec, meta)}
    return data, spec


@pytest.fixture(scope="module")
def ct(tmp_path_factory) -> dict:
    from cdisc_pipe.ct import load_ct

    folder = tmp_path_factory.mktemp("ct")
    (folder / "sdtm-ct-test.txt").write_text(CT_TEXT, encoding="utf-8")
    return {"SDTM": load_ct(folder / "sdtm-ct-test.txt")}


@pytest.fixture(scope="module")
def rules():
    """The package's generic rules plus the bundled study's own rule file (specs/settings)."""
    from cdisc_pipe.paths import default_specs
    from cdisc_pipe.validate import load_settings, study_rule_files

    settings, path = load_settings(default_specs() / "settings" / "validation.yaml")
    return {r.id: r for r in load_rules(extra=study_rule_files(settings, path))}


@pytest.fixture(autouse=True)
def fake_define_module(monkeypatch):
    """Stand-ins for the define engineer's checks: quiet unless the define XML says BROKEN."""
    def validate_define(xml: bytes, file: str = "define.xml") -> list[Problem]:
        return [Problem(file, "schema error", entry="line 1")] if b"BROKEN" in xml else []

    def check_define_against_data(xml: bytes, folder: Path, file: str | None = None,
                                  frames: dict[str, pd.DataFrame] | None = None) -> list[Finding]:
        assert frames is not None  # validation hands over the data it has read
        return [Finding(rule="DEFINE.DATA.LENGTH", severity="Error", message="length differs", dataset="LB",
                        variable="LBTESTCD")] if b"BROKEN" in xml else []

    fakes = {"validate_define": validate_define, "check_define_against_data": check_define_against_data}
    monkeypatch.setattr(vfun, "_external", lambda name: fakes.get(name))


# ---------------------------------------------------------------- mutations
def setv(ds: str, row: int, col: str, value) -> Callable[[StudyData, StudySpec], None]:
    def f(data: StudyData, spec: StudySpec) -> None:
        df = data.datasets[ds].copy()
        df.loc[df.index[row], col] = value
        data.datasets[ds] = df
    return f


def chain(*fs: Callable) -> Callable:
    def f(data: StudyData, spec: StudySpec) -> None:
        for g in fs:
            g(data, spec)
    return f


def dup_row(ds: str, row: int = 0) -> Callable:
    def f(data, spec):
        df = data.datasets[ds]
        data.datasets[ds] = pd.concat([df, df.iloc[[row]]], ignore_index=True)
    return f


def drop_rows(ds: str, mask: Callable[[pd.DataFrame], pd.Series]) -> Callable:
    def f(data, spec):
        df = data.datasets[ds]
        data.datasets[ds] = df[~mask(df)].reset_index(drop=True)
    return f


def drop_col(ds: str, col: str) -> Callable:
    def f(data, spec):
        data.datasets[ds] = data.datasets[ds].drop(columns=[col])
    return f


def add_col(ds: str, col: str, value) -> Callable:
    def f(data, spec):
        data.datasets[ds] = data.datasets[ds].assign(**{col: value})
    return f


def drop_ds(ds: str) -> Callable:
    def f(data, spec):
        del data.datasets[ds]
        del data.meta[ds]
        del data.purpose[ds]
    return f


def meta_col(ds: str, col: str, **changes) -> Callable:
    def f(data, spec):
        c = data.meta[ds].columns[col]
        data.meta[ds].columns[col] = ColumnMeta(**{**c.__dict__, **changes})
    return f


def define_var(ds: str, col: str, **changes) -> Callable:
    def f(data, spec):
        d = data.defines["Tabulation" if not ds.startswith("AD") else "Analysis"]
        v = d.datasets[ds].variables[col]
        d.datasets[ds].variables[col] = DefineVariable(**{**v.__dict__, **changes})
    return f


def add_term(oid: str, value: str, extended: bool = False) -> Callable:
    def f(data, spec):
        spec.codelists[oid].terms.append(CodelistTerm(submission_value=value, extended=extended))
    return f


def reorder(ds: str, a: str, b: str) -> Callable:
    def f(data, spec):
        cols = list(data.datasets[ds].columns)
        i, j = cols.index(a), cols.index(b)
        cols[i], cols[j] = cols[j], cols[i]
        data.datasets[ds] = data.datasets[ds][cols]
    return f


def set_where(ds: str, cond: Callable[[pd.DataFrame], pd.Series], col: str, value) -> Callable:
    def f(data, spec):
        df = data.datasets[ds].copy()
        df.loc[cond(df).to_numpy(), col] = value
        data.datasets[ds] = df
    return f


def ts_param(code: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda df: df["TSPARMCD"] == code


def _set_define_xml(data, spec):
    d = data.defines["Tabulation"]
    data.defines["Tabulation"] = DefineInfo(d.path, b"<ODM>BROKEN</ODM>", d.datasets, d.codelists, d.ct_standards)


def _drop_define_ds(data, spec):
    del data.defines["Tabulation"].datasets["LB"]


def _drop_define(data, spec):
    del data.defines["Tabulation"]


def _meta_path(data, spec):
    data.meta["LB"].path = "/study/LB.xpt"


def _meta_label(label: str) -> Callable:
    def f(data, spec):
        data.meta["LB"].label = label
    return f


def _add_split_supp(data, spec):
    """SUPPQS1: the supplemental qualifiers of a split QS dataset QS1 that is not there."""
    data.datasets["SUPPQS1"] = data.datasets["SUPPAE"].assign(RDOMAIN="QS", IDVAR="QSSEQ")
    data.purpose["SUPPQS1"] = "Tabulation"


def _add_dataset(data, spec):
    data.datasets["XX"] = data.datasets["CM"].assign(DOMAIN="XX")
    data.purpose["XX"] = "Tabulation"


BREAKS: list[tuple[str, Callable]] = [
    # structure vs spec
    ("STR.DS.UNKNOWN", _add_dataset),
    ("STR.DS.MISSING", drop_ds("PP")),
    ("STR.VAR.REQ_MISSING", drop_col("AE", "AETERM")),
    ("STR.VAR.EXP_MISSING", drop_col("LB", "LBSTRESU")),
    ("STR.VAR.UNKNOWN", add_col("LB", "LBXTRA", "x")),
    ("STR.VAR.ORDER", reorder("DM", "SEX", "AGE")),
    ("STR.VAR.LABEL", meta_col("LB", "LBTEST", label="Lab Test Name")),
    ("STR.DS.LABEL", _meta_label("Laboratory")),
    ("STR.VAR.TYPE", add_col("DM", "AGE", pd.Series(["62", "64", "52"], dtype="str"))),
    ("STR.VAR.LENGTH", setv("AE", 0, "AETERM", "CYTOKINE RELEASE SYNDROME")),
    ("STR.KEYS.UNIQUE", dup_row("LB", 0)),
    ("STR.REQ.NULL", setv("AE", 0, "AEDECOD", None)),
    ("STR.SEQ.UNIQUE", setv("LB", 1, "LBSEQ", 1.0)),
    ("STR.DOMAIN.VALUE", setv("LB", 0, "DOMAIN", "LX")),
    ("STR.STUDYID.VALUE", setv("LB", 0, "STUDYID", "OTHER")),
    # XPT v5
    ("XPT.VAR.NAME", add_col("LB", "LBTOOLONGNAME", "x")),
    ("XPT.DS.NAME", _meta_path),
    ("XPT.VAR.LABEL", meta_col("LB", "LBTEST", label="L" * 41)),
    ("XPT.DS.LABEL", _meta_label("L" * 41)),
    ("XPT.VALUE.200", setv("AE", 0, "AETERM", "X" * 201)),
    ("XPT.VALUE.ASCII", setv("AE", 0, "AETERM", "Fi\u00e8vre")),
    ("XPT.LENGTH.ACTUAL", meta_col("AE", "AETERM", length=40)),
    # dates
    ("DT.ISO8601.DTC", setv("AE", 0, "AESTDTC", "2023/01/08")),
    ("DT.ISO8601.DTC", setv("LB", 0, "LBDTC", "2023-13-01")),
    ("DT.ISO8601.DTC", setv("LB", 0, "LBDTC", "2023-02-30")),
    ("DT.ISO8601.DTC", setv("DM", 0, "RFICDTC", "UNK")),
    ("DT.ISO8601.DUR", setv("PC", 1, "PCELTM", "28 days")),
    ("DT.ISO8601.TSDATE", set_where("TS", ts_param("SSTDTC"), "TSVAL", "01DEC2022")),
    ("DT.DY.ZERO", setv("LB", 2, "LBDY", 0.0)),
    ("DT.DY.DY", setv("LB", 1, "LBDY", 28.0)),
    ("DT.DY.STDY", setv("AE", 0, "AESTDY", 3.0)),
    ("DT.DY.ENDY", setv("AE", 1, "AEENDY", 10.0)),
    ("DT.DY.PARTIAL", setv("LB", 1, "LBDTC", "2023-02")),
    ("DT.VISITDY.ZERO", setv("TV", 1, "VISITDY", 0.0)),
    ("DT.ORDER.STEN", setv("AE", 0, "AEENDTC", "2023-01-07")),
    ("DT.ORDER.STEN", setv("EX", 1, "EXENDTC", "2023-01-07T09:00")),
    ("DT.ORDER.RFST", setv("DM", 0, "RFENDTC", "2023-01-06")),
    ("DT.ORDER.RFX", setv("DM", 0, "RFXENDTC", "2023-01-01")),
    ("DT.ORDER.CONSENT", setv("DM", 0, "RFICDTC", "2023-01-03")),
    ("DT.ORDER.SE", setv("SV", 0, "SVENDTC", "2022-12-31")),
    ("DT.AFTER.DEATH", setv("LB", 6, "LBDTC", "2023-01-21")),
    ("DT.AFTER.RFPEND", setv("LB", 1, "LBDTC", "2023-03-02")),
    ("DT.BEFORE.BIRTH", setv("DM", 0, "BRTHDTC", "2023-01-02")),
    # CT
    ("CT.SPEC.NONEXT", setv("DM", 0, "SEX", "X")),
    ("CT.SPEC.EXT", setv("LB", 0, "LBTESTCD", "NEWT")),
    ("CT.PKG.NONEXT", chain(add_term("CL.SEX", "X"), setv("DM", 0, "SEX", "X"))),
    ("CT.PKG.EXT", chain(add_term("CL.LBTESTCD", "NEWT"), setv("LB", 0, "LBTESTCD", "NEWT"))),
    ("CT.SPEC.TERMS", add_term("CL.SEX", "X")),
    ("CT.DEFINE.VALUES", setv("DM", 0, "SEX", "X")),
    ("CT.NY.VALUES", setv("AE", 0, "AESER", "YES")),
    ("CT.FLAG.Y", setv("LB", 1, "LBLOBXFL", "N")),
    # DM / AE / findings consistency
    ("DM.USUBJID.UNIQUE", dup_row("DM", 0)),
    ("DM.AGEU.MISSING", setv("DM", 0, "AGEU", None)),
    ("DM.DTHFL.DTHDTC", setv("DM", 1, "DTHFL", None)),
    ("DM.DTHFL.NODATE", setv("DM", 0, "DTHFL", "Y")),
    ("DM.RFXSTDTC.EX", setv("DM", 0, "RFXSTDTC", "2023-01-03")),
    ("DM.RFXENDTC.EX", setv("DM", 0, "RFXENDTC", "2023-01-08")),
    ("DM.RFXSTDTC.PRESENCE", setv("DM", 2, "RFXSTDTC", "2023-01-02")),
    ("DM.RFXSTDTC.PRESENCE", drop_rows("EX", lambda d: d["USUBJID"] == S2)),
    ("DM.ACTARM.NOTTREATED", setv("DM", 2, "ACTARMCD", "DL1")),
    ("DM.ARMNRS.MISSING", setv("DM", 2, "ARMNRS", None)),
    ("DM.ARMNRS.WITHARM", setv("DM", 0, "ARMNRS", "UNPLANNED TREATMENT")),
    ("DM.ARMCD.TA", setv("DM", 0, "ARMCD", "DL9")),
    ("DM.ACTARMCD.TA", setv("DM", 0, "ACTARMCD", "DL9")),
    ("DM.ARM.ONETOONE", setv("DM", 1, "ARM", ARM["DL1"])),
    ("AE.SER.CRITERIA", chain(setv("AE", 1, "AESDTH", "N"), setv("AE", 1, "AESHOSP", "N"))),
    ("AE.SER.NOTSER", setv("AE", 0, "AESLIFE", "Y")),
    ("AE.DECOD.NULL", setv("AE", 1, "AEDECOD", None)),
    ("AE.GRADE5.FATAL", setv("AE", 1, "AEOUT", "NOT RECOVERED/NOT RESOLVED")),
    ("FND.TESTCD.TEST", setv("LB", 1, "LBTEST", "ALT")),
    ("FND.VISIT.VISITNUM", setv("LB", 1, "VISIT", "MONTH 1")),
    ("FND.STRESU.CONSISTENT", setv("LB", 5, "LBSTRESU", "IU/L")),
    ("FND.STRESN.NUMERIC", setv("LB", 1, "LBSTRESN", NaN)),
    ("FND.STRESC.NULL", setv("LB", 1, "LBSTRESC", None)),
    ("FND.STAT.RESULT", setv("LB", 1, "LBSTAT", "NOT DONE")),
    ("FND.ORNR.ORDER", setv("LB", 0, "LBSTNRLO", 50.0)),
    ("FND.BASELINE.ONE", setv("LB", 1, "LBLOBXFL", "Y")),
    ("FND.BASELINE.NONE", set_where("LB", lambda d: d["USUBJID"] == S2, "LBLOBXFL", None)),
    ("FND.BASELINE.AFTER", chain(setv("LB", 0, "LBLOBXFL", None), setv("LB", 1, "LBLOBXFL", "Y"))),
    ("FND.LB.UNIT.CHANGE", setv("LB", 1, "LBORRESU", "IU/L")),
    ("EX.DOSE.NEGATIVE", setv("EX", 0, "EXDOSE", -30.0)),
    # referential
    ("REF.USUBJID.DM", setv("AE", 0, "USUBJID", f"{STUDY}-101-9999")),
    ("REF.SUPP.ORPHAN", setv("SUPPAE", 0, "IDVARVAL", "9")),
    ("REF.SUPP.QNAM", setv("SUPPAE", 0, "QNAM", "aedlt")),
    ("REF.SUPP.QLABEL", setv("SUPPAE", 0, "QLABEL", "Q" * 41)),
    ("REF.SUPP.DUP", dup_row("SUPPAE", 0)),
    ("REF.SUPP.QVAL", setv("SUPPAE", 0, "QVAL", None)),
    ("REF.SUPP.RDOMAIN", setv("SUPPAE", 0, "RDOMAIN", "LB")),
    ("REF.RELREC.ORPHAN", setv("RELREC", 1, "IDVARVAL", "9")),
    ("REF.RELREC.SINGLE", drop_rows("RELREC", lambda d: d["RDOMAIN"] == "FA")),
    ("REF.FA.OBJ.AE", setv("AE", 0, "AEDECOD", "Pyrexia")),
    ("REF.CM.CRS.AE", setv("CM", 0, "USUBJID", S2)),
    ("REF.SV.TV", setv("SV", 5, "VISITNUM", 7.0)),
    # trial design / technical rejection
    ("TRC.TS.PRESENT", drop_ds("TS")),
    ("TRC.DM.PRESENT", drop_ds("DM")),
    ("TRC.ADSL.PRESENT", drop_ds("ADSL")),
    ("TRC.DEFINE.PRESENT", _drop_define),
    ("TS.SSTDTC", drop_rows("TS", ts_param("SSTDTC"))),
    ("TS.SSTDTC", set_where("TS", ts_param("SSTDTC"), "TSVAL", None)),
    ("TS.SDTIGVER", drop_rows("TS", ts_param("SDTIGVER"))),
    ("TS.PARAMS", drop_rows("TS", ts_param("TITLE"))),
    ("TS.VALUE.NF", set_where("TS", ts_param("TITLE"), "TSVAL", None)),
    ("TV.VISITNUM.UNIQUE", dup_row("TV", 1)),
    # ADaM
    ("AD.ADSL.ONEREC", dup_row("ADSL", 0)),
    ("AD.USUBJID.ADSL", setv("ADLB", 0, "USUBJID", f"{STUDY}-101-9999")),
    ("AD.ADSL.DM", drop_rows("ADSL", lambda d: d["USUBJID"] == S3)),
    ("AD.PARAMCD.PARAM", setv("ADLB", 1, "PARAM", "ALT (IU/L)")),
    ("AD.PARAMCD.FORMAT", set_where("ADLB", lambda d: d["PARAMCD"] == "ALT", "PARAMCD", "alt-1")),
    ("AD.ABLFL.ONE", setv("ADLB", 1, "ABLFL", "Y")),
    ("AD.AVAL.AVALC", setv("ADLB", 1, "AVAL", NaN)),
    ("AD.CNSR.VALUES", setv("ADTTE", 0, "CNSR", -1.0)),
    ("AD.CNSR.VALUES", setv("ADTTE", 0, "CNSR", 1.5)),
    ("AD.CNSR.NULL", setv("ADTTE", 0, "CNSR", NaN)),
    ("AD.ADT.STARTDT", setv("ADTTE", 1, "ADT", T("2023-01-09"))),
    ("AD.TTE.AVAL", setv("ADTTE", 1, "AVAL", -1.0)),
    ("AD.TRT01A.PRESENCE", setv("ADSL", 2, "TRT01A", ARM["DL1"])),
    ("AD.TRT01A.ACTARM", setv("ADSL", 0, "TRT01A", ARM["DL2"])),
    ("AD.TRT01P.ARM", setv("ADSL", 0, "TRT01P", ARM["DL3"])),
    ("AD.FLAGS.YN", setv("ADSL", 2, "SAFFL", None)),
    ("AD.FLAGS.YNULL", setv("ADLB", 1, "ANL01FL", "N")),
    ("AD.CHG", setv("ADLB", 1, "CHG", 14.0)),
    ("AD.PCHG", setv("ADLB", 1, "PCHG", 5.0)),
    ("AD.BASE.ABLFL", setv("ADLB", 1, "BASE", 31.0)),
    ("AD.ADY", setv("ADLB", 1, "ADY", 28.0)),
    ("AD.AVALU.CONSISTENT", setv("ADLB", 1, "AVALU", "IU/L")),
    ("AD.TRTSDT.TRTEDT", setv("ADSL", 0, "TRTEDT", T("2023-01-06"))),
    ("AD.ADSL.COPY", setv("ADLB", 0, "TRT01P", None)),
    ("AD.ADSL.COPY", setv("ADLB", 1, "TRTSDT", T("2023-01-08"))),
    # define.xml
    ("DEF.SCHEMA", _set_define_xml),
    ("DEF.CONSISTENCY", _set_define_xml),
    ("DEF.DATASETS", _drop_define_ds),
    ("DEF.DATASETS", _add_dataset),
    ("DEF.VARIABLES", add_col("LB", "LBXTRA", "x")),
    ("DEF.LABEL", define_var("LB", "LBTEST", label="Lab Test Name")),
    ("DEF.LENGTH", define_var("LB", "LBTEST", length=200)),
    ("DEF.ORDER", define_var("LB", "LBTEST", order=99)),
    ("DEF.ORIGIN", define_var("LB", "LBTEST", origin=None)),
    ("DEF.METHOD.SDTM", define_var("LB", "LBDY", origin="Derived")),
    ("DEF.TYPE", define_var("LB", "LBSTRESN", data_type="text")),
    ("DEF.TYPE", define_var("LB", "LBORRES", data_type="float")),
    ("DEF.DS.LABEL", _meta_label("Laboratory")),
    ("DEF.VLM.RESULTS", define_var("LB", "LBORRES", has_value_level=False)),
    # study data quality
    ("DQ.AE.GRADE.MISSING", setv("AE", 0, "AETOXGR", None)),
    ("DQ.AE.GRADE.RANGE", setv("AE", 0, "AETOXGR", "Grade 2")),
    ("DQ.AE.GRADE.RANGE", setv("AE", 0, "AETOXGR", "6")),
    ("DQ.PC.BLQ.STRESN", setv("PC", 0, "PCSTRESN", 10.0)),
    ("DQ.PC.ELTM.RFTDTC", setv("PC", 0, "PCRFTDTC", None)),
    ("DQ.PC.LLOQ", setv("PC", 0, "PCLLOQ", NaN)),
    ("DQ.PP.AUCINT.INTERVAL", setv("PP", 0, "PPENINT", None)),
    ("DQ.PP.RFTDTC", setv("PP", 1, "PPRFTDTC", None)),
    ("DQ.RS.IMWG.VALUES", setv("RS", 1, "RSSTRESC", "Partial Response")),
    ("DQ.RS.ECOG.RANGE", setv("RS", 0, "RSSTRESN", 6.0)),
    # PR reported, serum M-protein 2.0 -> 1.6 g/dL = 20 % reduction (< 50 %)
    ("DQ.RS.MPROTEIN", setv("LB", 3, "LBSTRESN", 1.6)),
    # CR reported while M-protein still 0.8 g/dL
    ("DQ.RS.MPROTEIN", setv("RS", 1, "RSSTRESC", "CR")),
    ("DQ.SV.MISSED", drop_rows("SV", lambda d: (d["USUBJID"] == S1) & (d["VISITNUM"] == 3.0))),
    ("DQ.EX.CART.TIME", setv("EX", 1, "EXSTDTC", "2023-01-07")),
    ("DQ.LB.MRD.LLOQ", setv("LB", 4, "LBLLOQ", NaN)),
    ("DQ.DM.RFSTDTC.CART", setv("DM", 0, "RFSTDTC", "2023-01-02")),
    # cross-dataset consistency (#17 item 4)
    ("REF.SV.COMPLETE", drop_rows("SV", lambda d: (d["USUBJID"] == S2) & (d["VISITNUM"] == 2.0))),
    ("REF.SV.SPAN", setv("LB", 1, "LBDTC", "2023-02-06")),
    ("DT.AE.FATAL.DEATH", setv("AE", 1, "AEENDTC", "2023-01-19")),
    ("DT.AE.FATAL.DEATH", setv("DM", 1, "DTHDTC", None)),
    ("DT.AE.AFTER.COMPLETION", chain(setv("AE", 0, "AESTDTC", "2023-03-02"), setv("AE", 0, "AEENDTC", "2023-03-03"))),
    ("REF.SUPP.PARENT", _add_split_supp),
    ("REF.LNK.SINGLE", setv("FA", 0, "FALNKID", "2")),
    ("FND.STRESC.STRESN", setv("LB", 0, "LBSTRESC", "30.5")),
    ("FND.STRESC.STRESN", setv("LB", 1, "LBSTRESC", "HIGH")),
    ("CT.TSVCDVER", chain(setv("TS", 0, "TSVCDREF", "CDISC CT"), setv("TS", 0, "TSVCDVER", "2099-01-01"))),
    ("DM.DTHFL.FATALAE", chain(setv("AE", 1, "AEOUT", "NOT RECOVERED/NOT RESOLVED"), setv("AE", 1, "AESDTH", "N"))),
    # plausibility (#16): impossible values (package), implausible ones (the study's thresholds)
    ("PL.AGE.NEG", setv("DM", 0, "AGE", -5.0)),
    ("PL.DOSE.NEG", setv("EX", 0, "EXDOSE", -30.0)),
    ("PL.RESULT.NEG.DURATION", setv("ADTTE", 0, "AVAL", -3.0)),
    ("PL.STUDY.AGE.RANGE", setv("DM", 0, "AGE", 12.0)),
    ("PL.STUDY.RESULT.RANGE", setv("LB", 0, "LBSTRESN", 30000.0)),
    ("PL.STUDY.DY.LENGTH", setv("AE", 0, "AESTDY", 5000.0)),
]


def test_mprotein_pd_after_undetectable_nadir_is_consistent(rules, ct):
    """PD after M-protein became undetectable ("<0.10", nadir 0) is IMWG-consistent: no finding.

    S1: baseline 2.0 g/dL, day 29 "<0.10" (CR), then 0.5 g/dL with PD reported (reappearance)."""
    data, spec = clean_study()
    lb = data.datasets["LB"]
    cr = lb.iloc[[3]].assign(LBORRES="<0.10", LBSTRESC="<0.1", LBSTRESN=np.nan)
    later = lb.iloc[[3]].assign(LBSEQ=9.0, VISITNUM=4.0, VISIT="MONTH 3", LBDTC="2023-04-07", LBDY=91.0,
                                LBORRES="0.5", LBSTRESC="0.5", LBSTRESN=0.5)
    data.datasets["LB"] = pd.concat([lb.drop(index=3), cr, later], ignore_index=True)
    rs = data.datasets["RS"]
    pd_row = rs.iloc[[1]].assign(RSSEQ=3.0, RSORRES="PD", RSSTRESC="PD", VISITNUM=4.0, VISIT="MONTH 3",
                                 RSDTC="2023-04-07", RSDY=91.0)
    data.datasets["RS"] = pd.concat([rs.assign(RSSTRESC=["0", "CR"], RSORRES=["0", "CR"]), pd_row], ignore_index=True)
    res, findings = _run(rules["DQ.RS.MPROTEIN"], data, spec, ct)
    assert res.status == "SUCCESS", findings.to_string()


def test_missed_visits_stop_at_progression(rules, ct):
    """After the first PD (day 10) the day-29 visit is no longer expected: no finding."""
    data, spec = clean_study()
    drop_rows("SV", lambda d: (d["USUBJID"] == S1) & (d["VISITNUM"] == 3.0))(data, spec)
    rs = data.datasets["RS"]
    data.datasets["RS"] = pd.concat([rs, rs.iloc[[1]].assign(RSSEQ=3.0, RSSTRESC="PD", RSORRES="PD",
                                                             RSDTC="2023-01-16", RSDY=10.0)], ignore_index=True)
    res, findings = _run(rules["DQ.SV.MISSED"], data, spec, ct)
    assert res.status == "SUCCESS", findings.to_string()


def _run(rule, data, spec, ct):
    results, findings = validate_data(data, spec, ct, None, ValidationSettings(), rules=[rule])
    return results[0], findings


def test_every_rule_has_a_breaking_fixture(rules):
    """The table covers every bundled rule (at least 80), so each one is shown to fire."""
    covered = {rid for rid, _ in BREAKS}
    assert set(rules) - covered == set()
    assert covered - set(rules) == set()
    assert len(rules) >= 80


def test_clean_study_is_quiet(rules, ct):
    """No rule finds anything on the clean study, and none fails to execute."""
    data, spec = clean_study()
    results, findings = validate_data(data, spec, ct, None, ValidationSettings(), rules=list(rules.values()))
    assert findings.empty, findings[["rule", "dataset", "usubjid", "variable", "value", "message"]].to_string()
    errors = [(r.rule.id, r.reason) for r in results if r.status == "EXECUTION ERROR"]
    assert errors == []
    # rules that apply to the clean study really ran (not skipped): all but none listed here
    skipped = {r.rule.id: r.reason for r in results if r.status == "SKIPPED"}
    assert skipped == {}, skipped


@pytest.mark.parametrize("rule_id,mutate", BREAKS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(BREAKS)])
def test_rule_fires_on_broken_fixture(rule_id, mutate, rules, ct):
    data, spec = clean_study()
    spec = copy.deepcopy(spec)
    mutate(data, spec)
    res, findings = _run(rules[rule_id], data, spec, ct)
    assert res.status == "ISSUE", (res.status, res.reason)
    assert len(findings) >= 1 and set(findings["rule"]) == {rule_id}


@pytest.mark.parametrize("rule_id,ds", [("REF.SUPP.ORPHAN", "SUPPAE"), ("REF.RELREC.ORPHAN", "RELREC")])
def test_orphan_rules_compare_identifiers_as_values(rule_id, ds, rules, ct):
    """SDTMIG 3.1.x packages right-align IDVARVAL ("   2") and some write "2.0": still the record
    with --SEQ 2, so the orphan rules stay quiet (the CDISC pilot's RELREC gave 234 false Errors)."""
    data, spec = clean_study()
    frame = data.datasets[ds]
    values = frame["IDVARVAL"].astype(object)
    numeric = pd.to_numeric(values, errors="coerce").notna()
    assert numeric.any()
    padded = values.where(~numeric, "   " + values.astype(str))
    padded.iloc[int(np.flatnonzero(numeric.to_numpy())[0])] = f"{float(values[numeric].iloc[0]):.1f}"
    data.datasets[ds] = frame.assign(IDVARVAL=padded)
    res, findings = _run(rules[rule_id], data, spec, ct)
    assert res.status == "SUCCESS", findings.to_string() if len(findings) else res.reason


@pytest.mark.parametrize("drop,declare_empty,fires", [
    ("PP", False, True),        # a domain described in the spec without a file: Warning
    ("SUPPAE", False, False),   # SUPP--: exists only when a qualifier has a value (SDTMIG 8.4)
    ("PP", True, False),        # define.xml declares it def:HasNoData="Yes"
])
def test_spec_dataset_missing_except_supp_and_declared_empty(drop, declare_empty, fires, rules, ct):
    """#16 item 12: the bundled study's SUPPPC (written only when the NCA excludes PC records) was
    reported as missing; a supplemental-qualifier dataset with nothing to hold is legitimately absent."""
    data, spec = clean_study()
    drop_ds(drop)(data, spec)
    if declare_empty:
        data.defines["Tabulation"].datasets[drop].has_no_data = True
    res, findings = _run(rules["STR.DS.MISSING"], data, spec, ct)
    assert (res.status == "ISSUE") is fires, findings.to_string() if len(findings) else res.status
    if fires:
        assert findings["value"].tolist() == [drop]


def test_population_flags_are_found_from_metadata(rules, ct):
    """AD.FLAGS.YN holds no study's flag names: ADaMIG's population flags by name, any other *FL by a
    label saying "Population Flag"; other subject-level flags (DTHFL) may stay null."""
    data, spec = clean_study()
    adsl = data.datasets["ADSL"].assign(MRDEVLFL=["Y", None, "N"], DTHFL=[None, "Y", None],
                                        HRCYTOFL=[None, "Y", "N"])
    data.datasets["ADSL"] = adsl
    for name, label in (("MRDEVLFL", "MRD-Evaluable Population Flag"), ("DTHFL", "Subject Death Flag"),
                        ("HRCYTOFL", "High-Risk Cytogenetics Flag")):
        data.meta["ADSL"].columns[name] = ColumnMeta(name, label, "text", 1)
    res, findings = _run(rules["AD.FLAGS.YN"], data, spec, ct)
    assert res.status == "ISSUE"
    assert findings[["usubjid", "variable"]].values.tolist() == [[S2, "MRDEVLFL"]]
    # the same flag without "Population Flag" in its label is not a population flag
    data.meta["ADSL"].columns["MRDEVLFL"] = ColumnMeta("MRDEVLFL", "MRD Evaluable", "text", 1)
    res, findings = _run(rules["AD.FLAGS.YN"], data, spec, ct)
    assert res.status == "SUCCESS", findings.to_string()


def test_by_label_parameters_are_checked_at_load(tmp_path):
    from cdisc_pipe.validate import load_rules

    p = tmp_path / "r.yaml"
    p.write_text("- id: X.FLAGS\n  standard: Test\n  severity: Error\n  category: ADaM\n  message: m\n"
                 "  check: {operator: in_values, values: [Y], by_label: {variables: ['*FL'], lable: x}}\n"
                 "- id: X.FLAGS2\n  standard: Test\n  severity: Error\n  category: ADaM\n  message: m\n"
                 "  check: {operator: in_values, values: [Y], by_label: {label: '(unclosed'}}\n")
    with pytest.raises(InputError) as exc:
        load_rules([p])
    text = str(exc.value)
    assert "check.by_label.lable" in text and "not a regular expression" in text


def test_trt01p_vs_arm_compares_the_sequence_when_there_are_several_periods(rules, ct):
    """A crossover: DM.ARM is the sequence; TRT01P (period 1) never equals it, TRTSEQP must."""
    data, spec = clean_study()
    adsl = data.datasets["ADSL"].copy()
    arm = adsl["USUBJID"].map(data.datasets["DM"].set_index("USUBJID")["ARM"])
    adsl["TRT02P"] = "SECOND PERIOD"
    adsl["TRTSEQP"] = arm.to_numpy()
    adsl["TRT01P"] = "FIRST PERIOD"  # would fire without the sequence rule
    data.datasets["ADSL"] = adsl
    res, findings = _run(rules["AD.TRT01P.ARM"], data, spec, ct)
    assert res.status == "SUCCESS" and findings.empty
    adsl.loc[0, "TRTSEQP"] = "WRONG SEQUENCE"  # the sequence itself is compared: one finding, named
    res, findings = _run(rules["AD.TRT01P.ARM"], data, spec, ct)
    assert len(findings) == 1 and findings["variable"].iloc[0] == "TRTSEQP"
    assert "DM.ARM=" in str(findings.iloc[0].to_dict())  # names the DM variable compared
    data.datasets["ADSL"] = adsl.drop(columns=["TRTSEQP"])  # several periods, no sequence: skipped, said why
    res, _ = _run(rules["AD.TRT01P.ARM"], data, spec, ct)
    assert res.status == "SKIPPED" and "TRT02P" in res.reason


def test_unit_consistency_ignores_tests_not_done(rules, ct):
    """A test not done has no unit: with --STAT = NOT DONE it is not a second unit; without --STAT
    the optional condition filters nothing (the rule still runs)."""
    data, spec = clean_study()
    lb = data.datasets["LB"].copy()
    lb["LBSTAT"] = None
    lb.loc[1, ["LBSTAT", "LBSTRESU"]] = ["NOT DONE", None]
    data.datasets["LB"] = lb
    res, findings = _run(rules["FND.STRESU.CONSISTENT"], data, spec, ct)
    assert findings.empty
    lb.loc[1, "LBSTAT"] = None  # the same record done without a unit: a second unit, reported
    res, findings = _run(rules["FND.STRESU.CONSISTENT"], data, spec, ct)
    assert not findings.empty


# ---- #17 item 4: the cross-dataset rules stay quiet where CORE's versions over-report
def test_stresc_stresn_compared_as_decimals_not_binary_floats(rules, ct):
    """0.1 + 0.2 in --STRESN (binary 0.30000000000000004) is the 0.3 of --STRESC; E-notation and plain
    decimals with trailing zeros are the same number; a censored '<x' result has no --STRESN."""
    data, spec = clean_study()
    lb = data.datasets["LB"]
    lb.loc[0, ["LBSTRESC", "LBSTRESN"]] = ["0.3", 0.1 + 0.2]
    lb.loc[1, ["LBSTRESC", "LBSTRESN"]] = ["2.4E-01", 0.24]
    lb.loc[2, ["LBSTRESC", "LBSTRESN"]] = ["0.000010", 1e-05]
    lb.loc[3, ["LBSTRESC", "LBSTRESN"]] = ["<0.10", NaN]
    res, findings = _run(rules["FND.STRESC.STRESN"], data, spec, ct)
    assert res.status == "SUCCESS", findings.to_string()


def test_sv_span_quiet_for_a_visit_over_several_days(rules, ct):
    """SVSTDTC..SVENDTC spanning the records (a sample the day before the visit date) is complete."""
    data, spec = clean_study()
    data.datasets["LB"].loc[1, "LBDTC"] = "2023-02-03T08:00"
    data.datasets["SV"].loc[2, "SVSTDTC"] = "2023-02-03"
    for rid in ("REF.SV.SPAN", "REF.SV.COMPLETE"):
        res, findings = _run(rules[rid], data, spec, ct)
        assert res.status == "SUCCESS", findings.to_string()


def test_split_supp_with_its_split_parent_is_quiet(rules, ct):
    data, spec = clean_study()
    _add_split_supp(data, spec)
    data.datasets["QS1"] = data.datasets["CM"].assign(DOMAIN="QS")
    data.purpose["QS1"] = "Tabulation"
    res, findings = _run(rules["REF.SUPP.PARENT"], data, spec, ct)
    assert res.status == "SUCCESS", findings.to_string()


def test_ae_after_last_disposition_only_for_completers(rules, ct):
    """An AE after the last DS date of a subject still in follow-up (no COMPLETED record) is no finding."""
    data, spec = clean_study()
    setv("DS", 0, "DSDECOD", "ONGOING")(data, spec)
    chain(setv("AE", 0, "AESTDTC", "2023-03-02"), setv("AE", 0, "AEENDTC", "2023-03-03"))(data, spec)
    res, findings = _run(rules["DT.AE.AFTER.COMPLETION"], data, spec, ct)
    assert res.status == "SUCCESS", findings.to_string()


def test_death_from_progression_needs_no_fatal_ae(rules, ct):
    data, spec = clean_study()
    chain(setv("AE", 1, "AEOUT", "NOT RECOVERED/NOT RESOLVED"), setv("AE", 1, "AESDTH", "N"),
          setv("DD", 0, "DDORRES", "PROGRESSIVE DISEASE"), setv("DD", 0, "DDSTRESC", "PROGRESSIVE DISEASE"))(data, spec)
    res, findings = _run(rules["DM.DTHFL.FATALAE"], data, spec, ct)
    assert res.status == "SUCCESS", findings.to_string()


def test_fatal_ae_end_compared_at_common_precision(rules, ct):
    data, spec = clean_study()
    setv("AE", 1, "AEENDTC", "2023-01")(data, spec)
    res, findings = _run(rules["DT.AE.FATAL.DEATH"], data, spec, ct)
    assert res.status == "SUCCESS", findings.to_string()


def test_tsvcdver_of_a_ct_package_given_is_quiet(rules, tmp_path):
    from cdisc_pipe.ct import load_ct

    (tmp_path / "sdtm-ct-2025-03-28.txt").write_text(CT_TEXT, encoding="utf-8")
    dated = {"SDTM": load_ct(tmp_path / "sdtm-ct-2025-03-28.txt")}
    data, spec = clean_study()
    chain(setv("TS", 0, "TSVCDREF", "CDISC CT"), setv("TS", 0, "TSVCDVER", "2025-03-28"))(data, spec)
    res, findings = _run(rules["CT.TSVCDVER"], data, spec, dated)
    assert res.status == "SUCCESS", findings.to_string()
    setv("TS", 0, "TSVCDVER", "2025-03-29")(data, spec)
    res, findings = _run(rules["CT.TSVCDVER"], data, spec, dated)
    assert res.status == "ISSUE"
