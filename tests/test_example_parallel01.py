"""The second raw-to-SDTM study, from files only: examples/parallel01 (issue 14 part 3).

A randomised, double-blind, placebo-controlled, two-arm parallel study whose raw export is CDISC
ODM-XML 1.3.2.  ``cdisc-pipe run`` takes it through SDTM, define.xml, ADaM (ADSL, ADAE) and
validation with no Python of the study anywhere.  Record counts are those of the generator that
wrote ``raw/export.xml`` (examples/parallel01/README.md, "Raw export").  With ../shared/ct the run
uses the CDISC CT files; without them the pipeline runs and skips the CT rules (checked too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from cdisc_pipe.cli import main
from tests.conftest import SHARED

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "parallel01"
CT = SHARED / "ct"

SDTM_RECORDS = {
    "DM": 42, "IE": 2, "MH": 82, "EX": 152, "AE": 55, "CM": 62, "VS": 1207, "LB": 702, "DS": 124, "SV": 233,
    "SE": 81, "TA": 4, "TE": 3, "TV": 7, "TI": 6, "TS": 30,
}
ADAM_RECORDS = {"ADSL": 40, "ADAE": 55}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("parallel01")
    ct = CT if CT.is_dir() else tmp / "no-ct"  # no CT files: the CT rules are skipped, the rest runs
    ct.mkdir(exist_ok=True)
    out = tmp / "out"
    code = main(["run", "--raw", str(EXAMPLE / "raw"), "--specs", str(EXAMPLE / "specs"),
                 "--mappings", str(EXAMPLE / "mappings"), "--ct", str(ct), "--out", str(out), "-q"])
    assert code == 0, (out / "logs" / "cdisc-pipe-run.log").read_text()
    return out


def _read(path: Path) -> pd.DataFrame:
    df, meta = pyreadstat.read_xport(str(path))
    for c in df.columns:
        if meta.readstat_variable_types[c] == "string":
            df[c] = df[c].where(df[c] != "")
    return df


def test_datasets_and_record_counts(run: Path) -> None:
    sdtm = {p.stem.upper() for p in (run / "sdtm").glob("*.xpt")}
    assert sdtm == set(SDTM_RECORDS)
    for name, n in SDTM_RECORDS.items():
        assert len(_read(run / "sdtm" / f"{name.lower()}.xpt")) == n, name
    for name, n in ADAM_RECORDS.items():
        assert len(_read(run / "adam" / f"{name.lower()}.xpt")) == n, name
    assert (run / "sdtm" / "define.xml").is_file() and (run / "adam" / "define.xml").is_file()


def test_validation_has_no_errors_and_no_unexplained_warnings(run: Path) -> None:
    summary = json.loads((run / "reports" / "validation.json").read_text(encoding="utf-8"))["summary"]
    assert summary["errors"] == 0
    assert summary["unexplained_warnings"] == 0
    assert summary["unused_expected"] == []
    assert (summary["ct_reason"] is None) == CT.is_dir()


def test_arms_disposition_and_design(run: Path) -> None:
    dm = _read(run / "sdtm" / "dm.xpt")
    arms = dm[["ARMCD", "ACTARMCD"]].fillna("-").value_counts().to_dict()
    # 20 + 20 randomised; one randomised to zelmitant never dosed; two screen failures
    assert arms == {("PBO", "PBO"): 20, ("ZEL20", "ZEL20"): 19, ("ZEL20", "-"): 1, ("-", "-"): 2}
    assert dm["ARMNRS"].value_counts().to_dict() == {"SCREEN FAILURE": 2, "ASSIGNED, NOT TREATED": 1}
    ds = _read(run / "sdtm" / "ds.xpt")
    dispo = ds[ds["DSCAT"] == "DISPOSITION EVENT"]["DSDECOD"].value_counts().to_dict()
    assert dispo == {"COMPLETED": 36, "WITHDRAWAL BY SUBJECT": 2, "ADVERSE EVENT": 1, "LOST TO FOLLOW-UP": 1,
                     "SCREEN FAILURE": 2}
    ta = _read(run / "sdtm" / "ta.xpt")
    assert ta.groupby("ARMCD")["ETCD"].apply(list).to_dict() == {"PBO": ["SCRN", "PBO"], "ZEL20": ["SCRN", "ZEL"]}
    se = _read(run / "sdtm" / "se.xpt")
    assert se["ETCD"].value_counts().to_dict() == {"SCRN": 42, "PBO": 20, "ZEL": 19}
    ex = _read(run / "sdtm" / "ex.xpt")
    doses = ex.groupby("EXTRT")["EXDOSE"].agg(lambda s: sorted(set(s))).to_dict()
    assert doses == {"PLACEBO": [0.0], "ZELMITANT": [20.0]}


def test_odm_removed_record_is_excluded_and_traced(run: Path) -> None:
    findings = json.loads((run / "sdtm" / "_stage" / "findings.json").read_text(encoding="utf-8"))
    assert [f["rule"] for f in findings] == ["RAW.ODM.REMOVED"]
    ae = _read(run / "sdtm" / "ae.xpt")
    assert "Entered in error" not in set(ae["AETERM"])
    # and the traceability table lists it with its reason (the record number it had in the export)
    import pandas as pd

    trace = pd.read_csv(run / "sdtm" / "_stage" / "traceability.csv")
    removed = trace[trace["reason"].astype(str).str.contains("Remove", case=False, na=False)]
    assert len(removed) == 1 and removed["dataset"].isna().all() and removed["source_row"].notna().all()
