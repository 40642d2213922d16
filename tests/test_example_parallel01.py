"""The second raw-to-SDTM study, from files only: examples/parallel01 (issue 14 part 3).

A randomised, double-blind, placebo-controlled, two-arm parallel study whose raw export is CDISC
ODM-XML 1.3.2.  ``cdisc-pipe run`` takes it through SDTM, define.xml, ADaM (ADSL, ADAE, ADVS) and
validation with no Python of the study anywhere.  ADVS (BDS) is checked against values recomputed
here with plain pandas from the SDTM VS and ADSL written by the run.  Record counts are those of the generator that
wrote ``raw/export.xml`` (examples/parallel01/README.md, "Raw export").  With ../shared/ct the run
uses the CDISC CT files; without them the pipeline runs and skips the CT rules (checked too).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from cdisc_pipe.adam import build_adam, read_sdtm
from cdisc_pipe.spec.load import load_specs
from tests.conftest import SHARED, once_per_session
from tests.example_runs import read_xpt, run_example

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "parallel01"
CT = SHARED / "ct"

SDTM_RECORDS = {
    "DM": 42, "IE": 2, "MH": 82, "EX": 152, "AE": 55, "CM": 62, "VS": 1207, "LB": 702, "DS": 124, "SV": 233,
    "SE": 81, "TA": 4, "TE": 3, "TV": 7, "TI": 6, "TS": 30,
}
# ADVS: the 1207 VS records minus the 12 of the two screen failures (6 tests at screening each)
ADAM_RECORDS = {"ADSL": 40, "ADAE": 55, "ADVS": 1195}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's run, once per session (shared by the xdist workers; read-only for the tests)."""
    return Path(once_per_session(tmp_path_factory, "parallel01", lambda tmp: str(run_example(EXAMPLE, CT, tmp))))


_read = read_xpt


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


# --------------------------------------------------------------------------------------------
# ADVS (BDS): recomputed independently from the SDTM VS and ADSL of the run

# Analysis visit windows (specs/plans/advs.yaml): (AVISIT, AVISITN, first ADY, last ADY, target day)
WINDOWS = [("SCREENING", -2, None, -1, -14), ("WEEK 2", 2, 2, 22, 15), ("WEEK 4", 4, 23, 43, 29),
           ("WEEK 8", 8, 44, 71, 57), ("WEEK 12", 12, 72, 98, 85)]


def _expected_advs(vs: pd.DataFrame, adsl: pd.DataFrame) -> pd.DataFrame:
    """ADVS as the plan's method texts describe it, written without the derivation library."""
    e = vs.merge(adsl[["USUBJID", "TRTSDT", "TRTEDT"]], on="USUBJID", how="inner")  # randomised subjects only
    e = e[e["VSSTRESN"].notna()].copy()
    e["ADT"] = pd.to_datetime(e["VSDTC"])
    trts, trte = pd.to_datetime(e["TRTSDT"]), pd.to_datetime(e["TRTEDT"])
    days = (e["ADT"] - trts).dt.days
    e["ADY"] = days.where(days < 0, days + 1)  # no day 0
    # baseline: last non-missing value on or before the first dose date, by ADT then VSSEQ
    pre = e["ADT"] <= trts
    last = e[pre].sort_values(["ADT", "VSSEQ"]).groupby(["USUBJID", "VSTESTCD"]).tail(1)
    e["ABLFL"] = None
    e.loc[last.index, "ABLFL"] = "Y"
    base = last.set_index(["USUBJID", "VSTESTCD"])["VSSTRESN"].rename("BASE")
    e = e.join(base, on=["USUBJID", "VSTESTCD"])
    post = e["ADT"] > trts
    e["CHG"] = (e["VSSTRESN"] - e["BASE"]).where(post)
    e["PCHG"] = (100 * (e["VSSTRESN"] - e["BASE"]) / e["BASE"].abs()).where(post)
    e["ONTRTFL"] = None
    e.loc[post & (e["ADT"] <= trte + pd.Timedelta(days=1)), "ONTRTFL"] = "Y"
    # windows: the baseline record is BASELINE (target Day 1); the others by ADY
    e["AVISIT"], e["AVISITN"], e["AWTARGET"] = None, float("nan"), float("nan")
    e.loc[e["ABLFL"].eq("Y"), ["AVISIT", "AVISITN", "AWTARGET"]] = ["BASELINE", 0.0, 1.0]
    for name, num, lo, hi, target in WINDOWS:
        inside = e["ABLFL"].isna() & e["ADY"].le(hi) & (e["ADY"].ge(lo) if lo is not None else True)
        e.loc[inside, ["AVISIT", "AVISITN", "AWTARGET"]] = [name, float(num), float(target)]
    e["AWTDIFF"] = (e["ADY"] - e["AWTARGET"]).abs()
    # one record per window: closest to the target, then the later, then the lower VISITNUM, then VSSEQ
    cand = e[e["AVISIT"].notna()].assign(_negady=-e["ADY"])
    chosen = cand.sort_values(["AWTDIFF", "_negady", "VISITNUM", "VSSEQ"]).groupby(
        ["USUBJID", "VSTESTCD", "AVISITN"]).head(1)
    e["ANL01FL"] = None
    e.loc[chosen.index, "ANL01FL"] = "Y"
    return e


def test_advs_matches_an_independent_recomputation(run: Path) -> None:
    vs, adsl, advs = (_read(run / "sdtm" / "vs.xpt"), _read(run / "adam" / "adsl.xpt"),
                      _read(run / "adam" / "advs.xpt"))
    exp = _expected_advs(vs, adsl)
    assert len(advs) == len(exp) == 1195
    got = advs.merge(exp, left_on=["USUBJID", "SRCSEQ"], right_on=["USUBJID", "VSSEQ"], how="outer",
                     suffixes=("", "_e"), validate="1:1", indicator=True)
    assert (got["_merge"] == "both").all()
    assert (got["PARAMCD"] == got["VSTESTCD"]).all() and (got["AVAL"] == got["VSSTRESN"]).all()
    assert (got["PARAM"] == got["VSTEST"] + " (" + got["VSSTRESU"] + ")").all()
    assert (pd.to_datetime(got["ADT"]) == got["ADT_e"]).all()
    for var in ["ADY", "BASE", "CHG", "PCHG", "AVISITN", "AWTARGET", "AWTDIFF"]:
        pd.testing.assert_series_equal(got[var], got[f"{var}_e"].astype(float), check_names=False, atol=1e-9)
    for var in ["ABLFL", "ONTRTFL", "ANL01FL", "AVISIT"]:
        assert got[var].fillna("-").tolist() == got[f"{var}_e"].fillna("-").tolist(), var
    # the SDTM baseline flag (VSLOBXFL, same definition) agrees record by record
    assert got["ABLFL"].fillna("-").tolist() == got["VSLOBXFL"].fillna("-").tolist()
    # treatment and traceability
    assert (got["SRCDOM"] == "VS").all() and (got["SRCVAR"] == "VSSTRESN").all()
    assert got["TRTP"].tolist() == got["TRT01P"].tolist() and got["TRTA"].fillna("-").tolist() == \
        got["TRT01A"].fillna("-").tolist()
    assert advs.groupby("PARAMCD")["PARAMN"].first().to_dict() == {
        "SYSBP": 1, "DIABP": 2, "PULSE": 3, "TEMP": 4, "WEIGHT": 5, "HEIGHT": 6}
    # records and chosen records per analysis visit, as examples/parallel01/README.md ("ADVS") lists them
    per_visit = advs.assign(AVISIT=advs["AVISIT"].fillna("none")).groupby("AVISIT")["ANL01FL"]
    assert per_visit.size().to_dict() == {"SCREENING": 195, "BASELINE": 234, "WEEK 2": 195, "WEEK 4": 195,
                                          "WEEK 8": 185, "WEEK 12": 180, "none": 11}
    assert per_visit.count().to_dict() == {"SCREENING": 195, "BASELINE": 234, "WEEK 2": 195, "WEEK 4": 190,
                                           "WEEK 8": 185, "WEEK 12": 180, "none": 0}
    # one ANL01FL record per subject, parameter and analysis visit; none without a visit
    flagged = advs[advs["ANL01FL"].eq("Y")]
    assert not flagged.duplicated(["USUBJID", "PARAMCD", "AVISITN"]).any()
    assert advs.loc[advs["AVISIT"].isna(), "ANL01FL"].isna().all()
    # the subject never dosed (101-1004) has no study day, so no baseline and no analysis visit
    nd = advs[advs["USUBJID"].eq("PARALLEL01-101-1004")]
    assert len(nd) == 11 and nd[["ADY", "BASE", "AVISITN"]].isna().all().all() and nd["ABLFL"].isna().all()
    # ASEQ: 1..n per subject in PARAMCD, ADT, SRCSEQ order
    srt = advs.sort_values(["USUBJID", "PARAMCD", "ADT", "SRCSEQ"])
    assert (srt["ASEQ"] == srt.groupby("USUBJID").cumcount() + 1).all()


def test_advs_one_subject_by_hand(run: Path) -> None:
    # PARALLEL01-101-1013 (zelmitant; drug withdrawn for ALT increased at week 4, then the ET visit).
    # ADSL: TRTSDT 2025-04-20, TRTEDT 2025-05-19 (last kit's end). SDTM VS SYSBP:
    #   VSSEQ 12  SCREENING 2025-04-08  156   ADY = -12 (no day 0)   -> SCREENING, |-12 - -14| = 2
    #   VSSEQ 13  BASELINE  2025-04-20  153   ADY 1, last value on/before TRTSDT -> ABLFL Y, BASE 153
    #   VSSEQ 14  WEEK 2    2025-05-07  147   ADY 18 -> WEEK 2 (2..22), AWTDIFF 3, CHG -6, PCHG -3.92
    #   VSSEQ 15  WEEK 4    2025-05-16  142   ADY 27 -> WEEK 4 (23..43), AWTDIFF 2, CHG -11 -> chosen
    #   VSSEQ 16  EARLY T.  2025-05-25  140   ADY 36 -> WEEK 4 as well, AWTDIFF 7: not chosen; 6 days
    #                                        after the last dose (> TRTEDT + 1) -> ONTRTFL missing
    advs = _read(run / "adam" / "advs.xpt")
    s = advs[advs["USUBJID"].eq("PARALLEL01-101-1013") & advs["PARAMCD"].eq("SYSBP")].sort_values("SRCSEQ")
    assert s["SRCSEQ"].tolist() == [12, 13, 14, 15, 16]
    assert s["ADY"].tolist() == [-12, 1, 18, 27, 36]
    assert s["AVISIT"].tolist() == ["SCREENING", "BASELINE", "WEEK 2", "WEEK 4", "WEEK 4"]
    assert s["AVISITN"].tolist() == [-2, 0, 2, 4, 4]
    assert s["AWTDIFF"].tolist() == [2, 0, 3, 2, 7]
    assert s["ABLFL"].fillna("-").tolist() == ["-", "Y", "-", "-", "-"]
    assert s["BASE"].tolist() == [153] * 5
    assert s["CHG"].fillna(-999).tolist() == [-999, -999, -6, -11, -13]
    assert s["PCHG"].round(2).fillna(-999).tolist() == [-999, -999, -3.92, -7.19, -8.5]
    assert s["ANL01FL"].fillna("-").tolist() == ["Y", "Y", "Y", "Y", "-"]
    assert s["ONTRTFL"].fillna("-").tolist() == ["-", "-", "Y", "Y", "-"]
    # PARALLEL01-102-2003 (withdrew after week 2): the ET visit on Day 24, the day after the last dose,
    # is the only record in the WEEK 4 window (23..43): chosen, on treatment
    et = advs[advs["USUBJID"].eq("PARALLEL01-102-2003") & advs["PARAMCD"].eq("SYSBP") & advs["ADY"].eq(24)].iloc[0]
    assert (et["AVISIT"], et["ANL01FL"], et["ONTRTFL"], et["CHG"]) == ("WEEK 4", "Y", "Y", 168 - 158)


def test_advs_window_tie_rules(run: Path) -> None:
    """The tie rules, which this export does not exercise, on the run's SDTM plus three VS records."""
    sdtm = read_sdtm(run / "sdtm")
    vs = sdtm["VS"]
    subj = "PARALLEL01-101-1010"  # TRTSDT 2025-04-14; missed week 4; week 12 on 2025-07-11 (Day 89)
    row = vs[vs["USUBJID"].eq(subj) & vs["VSTESTCD"].eq("SYSBP")].iloc[0]
    extra = pd.DataFrame([row] * 4).reset_index(drop=True)
    extra["VSDTC"] = ["2025-05-09", "2025-05-15", "2025-07-11", "2025-07-22"]  # Days 26, 32, 89, 100
    extra["VSSTRESN"] = [150.0, 140.0, 130.0, 120.0]
    extra["VISITNUM"] = [7.0, 7.0, 7.0, 7.0]
    extra["VSSEQ"] = [901.0, 902.0, 0.0, 903.0]  # the Day-89 copy sorts before the week 12 record by VSSEQ
    extra["VSLOBXFL"] = None
    sdtm["VS"] = pd.concat([vs, extra], ignore_index=True)
    res = build_adam(sdtm, load_specs(EXAMPLE / "specs"), EXAMPLE / "specs" / "settings")
    advs = res.datasets["ADVS"]
    s = advs[advs["USUBJID"].eq(subj) & advs["PARAMCD"].eq("SYSBP")].set_index("SRCSEQ")
    # Days 26 and 32 are both 3 days from the week 4 target (29): the later one is chosen
    assert s.loc[[901.0, 902.0], "AVISIT"].tolist() == ["WEEK 4", "WEEK 4"]
    assert s.loc[901.0, "ANL01FL"] is None and s.loc[902.0, "ANL01FL"] == "Y"
    # Day 89 twice (the scheduled week 12 record, VISITNUM 6, and the copy, VISITNUM 7): the scheduled one
    w12 = s[s["ADY"].eq(89)]
    assert w12["ANL01FL"].fillna("-").to_dict() == {0.0: "-", 16.0: "Y"}
    # Day 100 lies after the last window (72..98): no analysis visit, not flagged
    assert s.loc[903.0, ["AVISIT", "ANL01FL", "AWTDIFF"]].isna().all()


def test_define_lists_advs_with_its_methods(run: Path) -> None:
    import xml.etree.ElementTree as ET

    ns = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1"}
    root = ET.parse(run / "adam" / "define.xml").getroot()
    groups = {g.get("Name") for g in root.iter(f"{{{ns['odm']}}}ItemGroupDef")}
    assert {"ADSL", "ADAE", "ADVS"} <= groups
    methods = {}
    for m in root.iter(f"{{{ns['odm']}}}MethodDef"):
        methods[m.get("OID")] = " ".join("".join(m.itertext()).split())
    for var in ["ADT", "ADY", "ABLFL", "BASE", "CHG", "PCHG", "AVISIT", "AVISITN", "AWTARGET", "AWTDIFF",
                "ANL01FL", "ONTRTFL", "ASEQ", "PARAMN", "TRTP", "TRTA"]:
        assert f"MT.ADVS.{var}" in methods, var
    assert "on or before TRTSDT" in methods["MT.ADVS.ABLFL"]
    assert "closest to the target day" in methods["MT.ADVS.ANL01FL"] and "the later one" in methods["MT.ADVS.ANL01FL"]
    assert "23 <= ADY <= 43" in methods["MT.ADVS.AVISIT"]
    assert "TRTEDT + 1 day" in methods["MT.ADVS.ONTRTFL"]


def test_documents_define_links_are_written_and_land_on_their_annotations(run: Path) -> None:
    """Issue 19 on a study whose data dictionary comes from ODM metadata: acrf.pdf, csdrg and adrg
    are written beside their define.xml, and every aCRF PDFPageRef lands on its annotation."""
    pytest.importorskip("pypdf")
    from tests.test_documents import check_page_refs, pdf_pages

    for rel in ("sdtm/acrf.pdf", "sdtm/csdrg.pdf", "sdtm/csdrg.docx", "adam/adrg.pdf", "adam/adrg.docx"):
        assert (run / rel).is_file(), rel
    assert check_page_refs(run / "sdtm") >= 50
    text = " ".join(pdf_pages(run / "sdtm" / "acrf.pdf"))
    for phrase in ("DM (Demographics)", "IE (Inclusion/Exclusion Criteria Not Met)", "AESEV",
                   "ARMCD when ELIGYN = 'Y'", "when VISOCCUR = 'Y' then SV", "VSORRES when VSTESTCD = 'SYSBP'",
                   "[NOT SUBMITTED] the randomisation number is not submitted"):
        assert phrase in text, phrase
    guides = " ".join(pdf_pages(run / "sdtm" / "csdrg.pdf") + pdf_pages(run / "adam" / "adrg.pdf"))
    assert "FND.BASELINE.NONE" in guides and "Screen failure" in guides


def test_no_results_plan_means_no_results_report_and_a_note(run: Path) -> None:
    """parallel01 has no specs/results.yaml: the run succeeds without a results report and says so."""
    assert not (run / "reports" / "results.html").exists() and not (run / "reports" / "results.json").exists()
    log = (run / "logs" / "cdisc-pipe-run.log").read_text(encoding="utf-8")
    assert re.search(r"NOTE: no results plan \(.*results\.yaml\): no results report", log), log[:2000]
