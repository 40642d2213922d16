"""An LB-shaped frame of any size (22 variables, realistic value lengths) and its dataset spec.

Generated with numpy only (no per-row Python), deterministic for a seed.  Used by the writer
benchmark, which does not need the pipeline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cdisc_pipe.spec.model import Dataset, Origin, Standard, Study, StudySpec, Variable

TESTS = [
    ("HGB", "Hemoglobin", "HEMATOLOGY", "g/dL", 12.0, 17.0),
    ("WBC", "Leukocytes", "HEMATOLOGY", "10^9/L", 4.0, 11.0),
    ("PLAT", "Platelets", "HEMATOLOGY", "10^9/L", 150.0, 400.0),
    ("NEUT", "Neutrophils", "HEMATOLOGY", "10^9/L", 1.8, 7.5),
    ("ALT", "Alanine Aminotransferase", "CHEMISTRY", "U/L", 7.0, 56.0),
    ("AST", "Aspartate Aminotransferase", "CHEMISTRY", "U/L", 10.0, 40.0),
    ("CREAT", "Creatinine", "CHEMISTRY", "umol/L", 60.0, 110.0),
    ("FERRITIN", "Ferritin", "CYTOKINES", "ug/L", 30.0, 400.0),
    ("CRP", "C Reactive Protein", "CYTOKINES", "mg/L", 0.0, 5.0),
    ("INTLK6", "Interleukin 6", "CYTOKINES", "pg/mL", 0.0, 7.0),
    ("MCPROT", "Monoclonal Protein", "DISEASE ASSESSMENT", "g/L", 0.0, 0.0),
    ("KLCFR", "Kappa Light Chain, Free", "DISEASE ASSESSMENT", "mg/L", 3.3, 19.4),
]
VISITS = [(1.0, "SCREENING"), (2.0, "DAY 1"), (3.0, "DAY 4"), (4.0, "DAY 8"), (5.0, "DAY 15"), (6.0, "DAY 29"),
          (7.0, "MONTH 2"), (8.0, "MONTH 3"), (9.0, "MONTH 6"), (10.0, "MONTH 12")]

ORIGIN = Origin(type="Collected", source="Vendor")


def _v(name: str, label: str, data_type: str = "text", core: str = "Exp") -> Variable:
    return Variable(name=name, label=label, data_type=data_type, core=core, origin=ORIGIN)


def lb_dataset() -> Dataset:
    """The dataset spec matching :func:`lb_frame` (keys make every row unique)."""
    return Dataset(
        name="LB", label="Laboratory Test Results", **{"class": "FINDINGS"},
        structure="One record per lab test per time point per visit per subject",
        keys=["STUDYID", "USUBJID", "LBTESTCD", "VISITNUM", "LBSEQ"], purpose="Tabulation", domain="LB",
        variables=[
            _v("STUDYID", "Study Identifier", core="Req"), _v("DOMAIN", "Domain Abbreviation", core="Req"),
            _v("USUBJID", "Unique Subject Identifier", core="Req"), _v("LBSEQ", "Sequence Number", "integer", "Req"),
            _v("LBTESTCD", "Lab Test or Examination Short Name", core="Req"),
            _v("LBTEST", "Lab Test or Examination Name", core="Req"), _v("LBCAT", "Category for Lab Test"),
            _v("LBORRES", "Result or Finding in Original Units"), _v("LBORRESU", "Original Units"),
            _v("LBORNRLO", "Reference Range Lower Limit in Orig Unit"),
            _v("LBORNRHI", "Reference Range Upper Limit in Orig Unit"),
            _v("LBSTRESC", "Character Result/Finding in Std Format"),
            _v("LBSTRESN", "Numeric Result/Finding in Standard Units", "float"),
            _v("LBSTRESU", "Standard Units"), _v("LBSTNRLO", "Reference Range Lower Limit-Std Units", "float"),
            _v("LBSTNRHI", "Reference Range Upper Limit-Std Units", "float"),
            _v("LBNRIND", "Reference Range Indicator"), _v("LBLOBXFL", "Last Observation Before Exposure Flag"),
            _v("VISITNUM", "Visit Number", "float"), _v("VISIT", "Visit Name"),
            _v("LBDTC", "Date/Time of Specimen Collection", "datetime"), _v("LBDY", "Study Day of Specimen Collection", "integer"),
        ],
    )


def lb_spec() -> StudySpec:
    return StudySpec(
        study=Study(oid="STDY.BENCH", name="BENCH", protocol_name="BENCH", description="benchmark",
                    metadata_datetime="2025-06-30T00:00:00"),
        standards=[Standard(oid="STD.SDTMIG.3-4", name="SDTMIG", type="IG", version="3.4")],
        datasets={"LB": lb_dataset()},
    )


def lb_frame(rows: int, seed: int = 1) -> pd.DataFrame:
    """``rows`` LB records: pandas ``str`` text columns (the pandas 3 default), float numerics."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, len(TESTS), rows)
    v = rng.integers(0, len(VISITS), rows)
    subj = np.sort(rng.integers(0, max(rows // 60, 1), rows))
    tests = np.array(TESTS, dtype=object)
    lo = tests[t, 4].astype(float)
    hi = tests[t, 5].astype(float)
    val = np.round(rng.normal((lo + hi) / 2, (hi - lo + 1) / 3), 1)
    val[rng.random(rows) < 0.03] = np.nan
    valc = pd.Series(val).map("{:.1f}".format).where(~np.isnan(val), None)
    ind = np.where(np.isnan(val), None, np.where(val < lo, "LOW", np.where(val > hi, "HIGH", "NORMAL")))
    visitnum = np.array([x[0] for x in VISITS])[v]
    day = (visitnum * 7 - 10).astype(int)
    dates = (np.datetime64("2024-01-01") + day + subj % 300).astype("datetime64[D]").astype(str)
    usubjid = np.char.add("BCMACART01-101-", (1001 + subj).astype(str))
    seq = pd.Series(np.ones(rows)).groupby(subj).cumsum().to_numpy()

    def s(values) -> pd.Series:
        return pd.Series(values, dtype="str")

    lo_c = pd.Series(lo).map("{:g}".format)
    hi_c = pd.Series(hi).map("{:g}".format)
    return pd.DataFrame({
        "STUDYID": s(np.full(rows, "BCMACART01")), "DOMAIN": s(np.full(rows, "LB")), "USUBJID": s(usubjid),
        "LBSEQ": seq, "LBTESTCD": s(tests[t, 0]), "LBTEST": s(tests[t, 1]), "LBCAT": s(tests[t, 2]),
        "LBORRES": s(valc), "LBORRESU": s(tests[t, 3]), "LBORNRLO": s(lo_c), "LBORNRHI": s(hi_c),
        "LBSTRESC": s(valc), "LBSTRESN": val, "LBSTRESU": s(tests[t, 3]), "LBSTNRLO": lo, "LBSTNRHI": hi,
        "LBNRIND": s(ind), "LBLOBXFL": s(np.where(v == 0, "Y", None)), "VISITNUM": visitnum,
        "VISIT": s(np.array([x[1] for x in VISITS])[v]), "LBDTC": s(dates), "LBDY": day.astype(float),
    })
