"""The second study, from files only: CDISC pilot ADSL/ADAE/ADTTE from examples/cdiscpilot01.

``cdisc-pipe adam`` runs on the pilot's own SDTM with the example's specs and derivation plans (no
Python of the study anywhere) and every value of every variable equals the independent reference
(tests/pilot_reference.py, plain pandas from the pilot define's derivation texts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.cli import main
from tests.pilot_reference import build_reference
from tests.example_runs import read_xpt

KEYS = {"ADSL": ["USUBJID"], "ADAE": ["USUBJID", "AESEQ"], "ADTTE": ["USUBJID", "PARAMCD"]}


@pytest.fixture(scope="module")
def pilot_run(shared: Path, root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    sdtm = shared / "reference" / "cdiscpilot01" / "sdtm"
    if not sdtm.is_dir():
        pytest.skip("the CDISC pilot SDTM is not in ../shared")
    out = tmp_path_factory.mktemp("pilot") / "out"
    code = main(["adam", "--sdtm", str(sdtm), "--specs", str(root / "examples" / "cdiscpilot01" / "specs"),
                 "--out", str(out), "-q"])
    assert code == 0, (out / "logs" / "cdisc-pipe-adam.log").read_text()
    return out


_read = read_xpt


def test_every_value_equals_the_independent_reference(pilot_run: Path, shared: Path) -> None:
    reference = build_reference(shared / "reference" / "cdiscpilot01" / "sdtm")
    for name, ref in reference.items():
        ours = _read(pilot_run / "adam" / f"{name.lower()}.xpt")
        assert len(ours) == len(ref), name
        assert sorted(ours.columns) == sorted(ref.columns), name
        both = ref.merge(ours, on=KEYS[name], how="outer", suffixes=("_ref", ""), indicator=True, validate="1:1")
        assert (both["_merge"] == "both").all(), name
        for col in ref.columns:
            if col in KEYS[name]:
                continue
            want, got = both[col + "_ref"], both[col]
            if pd.api.types.is_datetime64_any_dtype(want):
                same = (want == pd.to_datetime(got)) | (want.isna() & got.isna())
            elif pd.api.types.is_numeric_dtype(want):
                same = np.isclose(want.astype(float), got.astype(float), rtol=0, atol=1e-9) | (want.isna() & got.isna())
            else:
                same = want.astype(object).fillna("") == got.astype(object).fillna("")
            assert same.all(), f"{name}.{col}: {both.loc[~same, KEYS[name] + [col + '_ref', col]].head(3).to_dict('records')}"


def test_headline_values(pilot_run: Path) -> None:
    adsl = _read(pilot_run / "adam" / "adsl.xpt")
    # 306 screened, 52 screen failures: 254 randomized (86 placebo, 84 + 84 xanomeline)
    assert len(adsl) == 254
    assert adsl["TRT01A"].value_counts().to_dict() == {"Placebo": 86, "Xanomeline High Dose": 84, "Xanomeline Low Dose": 84}
    assert set(adsl.loc[adsl["SITEGR1"] == "900", "SITEID"]) == {"702", "706", "707", "711", "714", "715", "717"}
    adtte = _read(pilot_run / "adam" / "adtte.xpt")
    assert adtte["CNSR"].value_counts().to_dict() == {0.0: 152, 1.0: 102}


def test_define_methods_describe_the_steps(pilot_run: Path) -> None:
    xml = (pilot_run / "adam" / "define.xml").read_text(encoding="utf-8")
    assert "Last EX.EXENDTC, per USUBJID (records ordered by EXSTDTC, EXSEQ)" in xml
    assert "AEDECOD contains &#39;APPLICATION&#39; or &#39;DERMATITIS&#39;" in xml
    assert ".yaml" not in xml  # methods speak CDISC, not our file names
    log = (pilot_run / "logs" / "cdisc-pipe-adam.log").read_text(encoding="utf-8")
    assert "derivation plan" in log and "SHA-256" in log


def test_results_report_from_the_pilot_plan(pilot_run: Path, root: Path) -> None:
    """The pilot's own results plan (demographics, TEAE overview, time to first dermatologic event):
    ``cdisc-pipe results`` on its ADaM; the TEAE and age numbers equal a pandas recomputation."""
    import json

    assert main(["results", "--out", str(pilot_run), "--specs", str(root / "examples" / "cdiscpilot01" / "specs"),
                 "-q"]) == 0
    doc = json.loads((pilot_run / "reports" / "results.json").read_text(encoding="utf-8"))
    assert not doc["problems"] and (pilot_run / "reports" / "results.html").read_text().count("<svg") == 1
    adsl, adae = _read(pilot_run / "adam" / "adsl.xpt"), _read(pilot_run / "adam" / "adae.xpt")
    saf = adsl[adsl["SAFFL"] == "Y"]
    teae = set(adae.loc[adae["TRTEMFL"] == "Y", "USUBJID"])
    tables = {t["id"]: t for t in doc["tables"]}
    got = {d["group"]: (d["n"], d["N"]) for d in tables["T-AE"]["data"] if d["row"] == "Any TEAE"}
    exp = {g: (int(d["USUBJID"].isin(teae).sum()), len(d)) for g, d in saf.groupby("TRT01A")}
    exp["Overall"] = (int(saf["USUBJID"].isin(teae).sum()), len(saf))
    assert got == exp
    age = {d["group"]: d["mean"] for d in tables["T-DEM-AGE"]["data"]}
    assert age["Overall"] == pytest.approx(saf["AGE"].mean())
    km = tables["T-TTDE-TTDE"]["data"]
    adtte = _read(pilot_run / "adam" / "adtte.xpt")
    events = adtte[(adtte["PARAMCD"] == "TTDE") & adtte["USUBJID"].isin(saf["USUBJID"]) & (adtte["CNSR"] == 0)]
    assert km[-1]["group"] == "Overall" and km[-1]["events"] == len(events)
