"""Hand-worked checks of the CDISCPILOT01 reference ADaM (tests/pilot_reference.py).

The expected values are worked out by hand from the subjects' SDTM rows (quoted in the comments),
not by running the reference.  Skipped when ../shared/reference/cdiscpilot01 is absent.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest

from tests.pilot_reference import ADAE_VARS, ADSL_VARS, ADTTE_VARS, PILOT_DIR, build_reference

D = pd.Timestamp


@pytest.fixture(scope="module")
def ref(shared) -> dict[str, pd.DataFrame]:
    pilot = shared / "reference" / "cdiscpilot01"
    assert pilot == PILOT_DIR  # the reference locates the pilot the same way
    if not (pilot / "sdtm").is_dir():
        pytest.skip("../shared/reference/cdiscpilot01 is not present")
    return build_reference(pilot / "sdtm")


def one(frame: pd.DataFrame, usubjid: str) -> pd.Series:
    rows = frame[frame["USUBJID"] == usubjid]
    assert len(rows) == 1
    return rows.iloc[0]


def ae(ref, usubjid: str) -> pd.DataFrame:
    return ref["ADAE"][ref["ADAE"]["USUBJID"] == usubjid].set_index("AESEQ")


def test_shape_and_populations(ref):
    adsl, adae, adtte = ref["ADSL"], ref["ADAE"], ref["ADTTE"]
    # 306 DM subjects - 52 screen failures (ARMCD Scrnfail); the adrg: screen failures excluded.
    assert list(adsl.columns) == ADSL_VARS and len(adsl) == 254 and adsl["USUBJID"].is_unique
    assert list(adae.columns) == ADAE_VARS and len(adae) == 1191  # 1-1 with AE
    assert list(adtte.columns) == ADTTE_VARS and len(adtte) == 254
    assert (adsl["ITTFL"] == "Y").all() and (adsl["SAFFL"] == "Y").all()
    assert adsl["TRT01A"].value_counts().to_dict() == {
        "Placebo": 86, "Xanomeline High Dose": 84, "Xanomeline Low Dose": 84}
    for col in ("TRTSDT", "TRTEDT", "RFENDT", "VISIT1DT", "DISONSDT"):
        assert adsl[col].dtype == "datetime64[ns]"


def test_completer_flags_agree_with_sponsor_suppdm(ref, shared):
    """SUPPDM carries the sponsor's COMPLT8/16/24 flags: an independent check of the reading
    ENDDT = RFENDT (see NOTES.md)."""
    import pyreadstat

    supp, _ = pyreadstat.read_xport(str(shared / "reference" / "cdiscpilot01" / "sdtm" / "suppdm.xpt"))
    wide = supp.pivot(index="USUBJID", columns="QNAM", values="QVAL")
    adsl = ref["ADSL"].set_index("USUBJID")
    for ours, theirs in (("COMP8FL", "COMPLT8"), ("COMP16FL", "COMPLT16"), ("COMP24FL", "COMPLT24")):
        sponsor = wide[theirs].reindex(adsl.index).fillna("N")
        assert (adsl[ours] == sponsor).all(), ours


def test_cumdose_agrees_with_ex_records(ref, shared):
    """The define's dose schedule (visit 4 / visit 12 dates, as planned) against the doses EX
    records: sum of EXDOSE x (EXENDTC - EXSTDTC + 1), a missing EXENDTC taken as TRTEDT."""
    import pyreadstat

    ex, _ = pyreadstat.read_xport(str(shared / "reference" / "cdiscpilot01" / "sdtm" / "ex.xpt"))
    adsl = ref["ADSL"].set_index("USUBJID")
    start = pd.to_datetime(ex["EXSTDTC"])
    end = pd.to_datetime(ex["EXENDTC"].where(ex["EXENDTC"] != "")).fillna(ex["USUBJID"].map(adsl["TRTEDT"]))
    dose = (ex["EXDOSE"] * ((end - start).dt.days + 1)).groupby(ex["USUBJID"]).sum()
    assert (dose.reindex(adsl.index) == adsl["CUMDOSE"]).all()


def test_sitegr1_pools_small_sites(ref):
    # Sites with < 3 subjects in some arm (placebo/high/low counts): 702 (0/0/1), 706 (1/1/1),
    # 707 (1/0/1), 711 (1/2/1), 714 (2/2/2), 715 (3/2/3), 717 (2/3/2) -> 900.
    adsl = ref["ADSL"]
    pooled = sorted(adsl.loc[adsl["SITEGR1"] == "900", "SITEID"].unique())
    assert pooled == ["702", "706", "707", "711", "714", "715", "717"]
    assert (adsl.loc[adsl["SITEGR1"] != "900", "SITEGR1"] == adsl.loc[adsl["SITEGR1"] != "900", "SITEID"]).all()


def test_adsl_high_dose_completer_01_716_1418(ref):
    """SV: VISITNUM 1 2013-04-27, 3 2013-05-05, 4 2013-05-19, 12 2013-11-06; EX last record
    (visit 12, 54 mg) EXENDTC 2013-11-20; DS PROTOCOL COMPLETED at VISITNUM 13 2013-11-20;
    MH PRIMARY DIAGNOSIS 2010-05-02; DM AGE 80; SC EDLEVEL 8; site 716 (8/8/8 subjects)."""
    s = one(ref["ADSL"], "01-716-1418")
    assert s["TRTSDT"] == D("2013-05-05")  # SV visit 3
    assert s["TRTEDT"] == D("2013-11-20")  # EXENDTC of the last EX record
    # TRTDUR: May 5 -> Nov 20 = 26 (rest of May) + 30+31+31+30+31 (Jun-Oct) + 20 = 199, +1 = 200
    assert s["TRTDUR"] == 200
    # High dose schedule:
    #   interval 1 (54 mg): V4 - TRTSDT + 1 = May 19 - May 5 + 1 = 15 days ->   810
    #   interval 2 (81 mg): V12 - V4 = Nov 6 - May 19 = 12 + 153 (Jun-Oct) + 6 = 171 -> 13851
    #   interval 3 (54 mg): TRTEDT - V12 = Nov 20 - Nov 6 = 14 days ->   756
    assert s["CUMDOSE"] == 810 + 13851 + 756 == 15417
    # AVGDD = 15417 / 200 = 77.085 -> 77.1 (SAS rounding, half away from zero)
    assert s["AVGDD"] == 77.1
    assert (s["AGEGR1"], s["AGEGR1N"]) == ("65-80", 2)  # 80 is still 65-80
    assert s["SITEGR1"] == "716" and s["EDUCLVL"] == 8
    assert (s["COMP8FL"], s["COMP16FL"], s["COMP24FL"]) == ("Y", "Y", "Y")
    assert pd.isna(s["DISCONFL"]) and pd.isna(s["DSRAEFL"])
    assert (s["DCDECOD"], s["DCREASCD"], s["VISNUMEN"]) == ("COMPLETED", "Completed", 12)  # DS 13 -> 12
    # DURDIS: 2010-05-02 -> 2013-05-02 = 365 + 366 (29 Feb 2012) + 365 = 1096, -5 -> 2013-04-27: 1091 days;
    # (1091 + 1) / (365.25 / 12) = 1092 / 30.4375 = 35.877 -> 35.9
    assert s["DISONSDT"] == D("2010-05-02") and s["VISIT1DT"] == D("2013-04-27")
    assert s["DURDIS"] == 35.9 and s["DURDSGR1"] == ">=12"


def test_adsl_missing_final_dose_01_705_1303(ref):
    """EX: visit 3 54 mg 2013-12-16..2013-12-30, visit 4 81 mg from 2013-12-31 with EXENDTC
    missing; DS ADVERSE EVENT at VISITNUM 11 on 2014-06-02; SV visit 4 on 2013-12-30."""
    s = one(ref["ADSL"], "01-705-1303")
    # final dose missing and discontinued after visit 3 -> date of discontinuation
    assert s["TRTEDT"] == D("2014-06-02")
    # TRTDUR: Dec 16 -> Jun 2 = 15 (to Dec 31) + 31+28+31+30+31 (Jan-May) + 2 = 168, +1 = 169
    assert s["TRTDUR"] == 169
    # discontinued in interval 2 (DS visit 11, in (4, 12]):
    #   54 * (V4 - TRTSDT + 1) = 54 * 15 = 810
    #   81 * (TRTEDT - V4) = 81 * (1 + 151 + 2) = 81 * 154 = 12474
    assert s["CUMDOSE"] == 810 + 12474 == 13284
    assert s["AVGDD"] == 78.6  # 13284 / 169 = 78.60
    assert (s["DISCONFL"], s["DSRAEFL"], s["DCREASCD"], s["VISNUMEN"]) == ("Y", "Y", "Adverse Event", 11)
    # SV visit 10 (week 16) on 2014-04-07 <= RFENDT 2014-06-02; no visit 12
    assert (s["COMP8FL"], s["COMP16FL"], s["COMP24FL"]) == ("Y", "Y", "N")


def test_adsl_low_dose_short_01_701_1111(ref):
    """EX one record 54 mg 2012-09-07..2012-09-16; DS ADVERSE EVENT at visit 4 2012-09-17; AGE 81."""
    s = one(ref["ADSL"], "01-701-1111")
    assert s["TRTDUR"] == 10 and s["CUMDOSE"] == 54 * 10 and s["AVGDD"] == 54
    assert (s["AGEGR1"], s["AGEGR1N"]) == (">80", 3)
    assert s["COMP8FL"] == "N"  # no visit 8


def test_adae_dates_and_flags_01_716_1418(ref):
    """AE (AESEQ: term, AESTDTC, AEENDTC): 1 URTICARIA 2013-05-05..2013-05-07, 2 ERYTHEMA
    2013-05-05.., 3 URTICARIA (as 1), 4 PRURITUS 2013-05-07.., 5/7 HEADACHE 2013-07..2013-09-26,
    6/8 VISION BLURRED 2013-07..2013-10-04, 9/10 HEADACHE 2013-09-26..2013-11-11; TRTSDT 2013-05-05."""
    a = ae(ref, "01-716-1418")
    # partial start 2013-07 -> day imputed to 01, ASTDTF D; ASTDY = Jul 1 - May 5 + 1 = 26+30+1+1 = 58
    assert a.loc[5, "ASTDT"] == D("2013-07-01") and a.loc[5, "ASTDTF"] == "D" and a.loc[5, "ASTDY"] == 58
    # AENDY = Sep 26 - May 5 + 1 = 26+30+31+31+26 + 1 = 145; ADURN = Sep 26 - Jul 1 + 1 = 88
    assert a.loc[5, "AENDY"] == 145 and a.loc[5, "ADURN"] == 88 and a.loc[5, "ADURU"] == "DAY"
    assert pd.isna(a.loc[2, "AENDT"]) and pd.isna(a.loc[2, "ADURN"]) and pd.isna(a.loc[2, "ADURU"])
    assert a.loc[1, "ASTDY"] == 1 and (a["TRTEMFL"] == "Y").all()  # onset on TRTSDT is emergent
    # first TEAE: AESEQ 1 and 2 both start 2013-05-05 -> the lower AESEQ
    assert a.index[a["AOCCFL"] == "Y"].tolist() == [1]
    # SOC firsts: SKIN -> 1, NERVOUS (HEADACHE 5 & 7 on 2013-07-01) -> 5, EYE -> 6
    assert sorted(a.index[a["AOCCSFL"] == "Y"]) == [1, 5, 6]
    # PT firsts: URTICARIA 1, ERYTHEMA 2, PRURITUS 4, HEADACHE 5, VISION BLURRED 6
    assert sorted(a.index[a["AOCCPFL"] == "Y"]) == [1, 2, 4, 5, 6]
    assert a["AOCC02FL"].isna().all()  # nothing serious
    # dermatologic: ERYTHEMA (string), URTICARIA and PRURITUS (skin SOC); first = AESEQ 1
    assert sorted(a.index[a["CQ01NAM"] == "DERMATOLOGIC EVENTS"]) == [1, 2, 3, 4]
    assert a.index[a["AOCC01FL"] == "Y"].tolist() == [1]


def test_adae_pre_treatment_01_701_1111(ref):
    """TRTSDT 2012-09-07; AE 1/4 ERYTHEMA and 2/5 PRURITUS 2012-09-02..2012-09-07, 3 LOCALISED
    INFECTION 2012-07-08, 6 MICTURITION URGENCY 2012-09-07, 7 ARTHRALGIA and 8 CELLULITIS 2012-09-13."""
    a = ae(ref, "01-701-1111")
    assert a.loc[1, "ASTDY"] == -5 and a.loc[1, "AENDY"] == 1 and a.loc[1, "ADURN"] == 6  # no day 0
    assert a.loc[3, "ASTDY"] == -61  # Jul 8 -> Sep 7 = 23 + 31 + 7 = 61 days before
    assert a.loc[[1, 2, 3, 4, 5], "TRTEMFL"].eq("N").all() and a.loc[[6, 7, 8], "TRTEMFL"].eq("Y").all()
    assert a.index[a["AOCCFL"] == "Y"].tolist() == [6]
    # the dermatologic events are all pre-treatment: no AOCC01FL
    assert a["AOCC01FL"].isna().all() and a.loc[[1, 2, 4, 5], "CQ01NAM"].notna().all()


def test_adae_year_only_start_is_not_imputed(ref):
    # 01-701-1118 AESEQ 1 AESTDTC "2003": "If both the month and day are missing no imputation"
    a = ae(ref, "01-701-1118")
    assert pd.isna(a.loc[1, "ASTDT"]) and pd.isna(a.loc[1, "ASTDTF"]) and a.loc[1, "TRTEMFL"] == "N"


def test_adtte(ref):
    t = ref["ADTTE"].set_index("USUBJID")
    # event on the first day: 01-716-1418 URTICARIA (AESEQ 1) on 2013-05-05 = RFSTDTC -> AVAL 1
    e = t.loc["01-716-1418"]
    assert (e["CNSR"], e["ADT"], e["AVAL"], e["SRCDOM"], e["SRCVAR"], e["SRCSEQ"]) == (
        0, D("2013-05-05"), 1, "ADAE", "ASTDT", 1)
    assert e["EVNTDESC"] == "Dematologic Event Occured" and e["PARAMCD"] == "TTDE"
    # 01-705-1303: PRURITUS AESEQ 1 on 2014-02-05, start 2013-12-16: 15 + 31 + 5 = 51, +1 = 52
    assert (t.loc["01-705-1303", "AVAL"], t.loc["01-705-1303", "SRCSEQ"]) == (52, 1)
    # censored: 01-701-1111 (dermatologic AEs only before treatment): RFENDTC 2012-09-17,
    # RFSTDTC 2012-09-07 -> AVAL 11; 01-701-1033 (no AEs): 2014-04-14 - 2014-03-18 + 1 = 28
    for subj, adt, aval in (("01-701-1111", "2012-09-17", 11), ("01-701-1033", "2014-04-14", 28)):
        c = t.loc[subj]
        assert (c["CNSR"], c["ADT"], c["AVAL"], c["SRCDOM"], c["SRCVAR"]) == (1, D(adt), aval, "ADSL", "RFENDT")
        assert c["EVNTDESC"] == "Study Completion Date" and pd.isna(c["SRCSEQ"])
    # every event is traced to the AOCC01FL record of ADAE
    adae = ref["ADAE"]
    first = adae[adae["AOCC01FL"] == "Y"].set_index("USUBJID")
    ev = t[t["CNSR"] == 0]
    assert len(ev) == len(first)
    assert (ev["SRCSEQ"] == first.loc[ev.index, "AESEQ"]).all() and (ev["ADT"] == first.loc[ev.index, "ASTDT"]).all()


def test_reference_is_independent_of_the_engine():
    source = (Path(__file__).parent / "pilot_reference.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert not any(name.startswith("cdisc_pipe") for name in imported), imported
