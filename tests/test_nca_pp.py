"""build_pp: PC -> PP, RELREC, PCGRPID, SUPPPC, exclusions, findings; format helpers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.nca import NcaSettings, build_pp
from cdisc_pipe.nca.pp import DEFAULT_CUTOFF_REASON, PP_COLUMNS, RELREC_COLUMNS, SUPP_COLUMNS, format_sig, parse_dtc

S1 = "BCMACART01-101-1001"
S2 = "BCMACART01-101-1002"
S3 = "BCMACART01-101-1003"
INF = "2023-01-01T10:00"

# USUBJID, PCSPEC, PCDTC, PCSTRESN (None = BLQ), PCELTM
ROWS = [
    (S1, "BLOOD", "2023-01-01T09:00", None, "-PT1H"),       # pre-infusion BLQ -> time zero
    (S1, "BLOOD", "2023-01-02T22:00", 100.0, "P1D"),        # 1.5 days
    (S1, "BLOOD", "2023-01-08T10:00", 1000.0, "P7D"),       # 7
    (S1, "BLOOD", "2023-01-15T10:00", None, "P14D"),        # 14: BLQ between -> dropped
    (S1, "BLOOD", "2023-01-22T10:00", 200.0, "P21D"),       # 21
    (S1, "BLOOD", "2023-01-29T10:00", 100.0, "P28D"),       # 28
    (S1, "BONE MARROW", "2023-01-29", 300.0, "P28D"),       # marrow: whole day 28
    (S2, "BLOOD", "2023-01-01T08:00", None, "-PT1H"),
    (S2, "BLOOD", "2023-01-02T10:00", 50.0, "P1D"),
    (S2, "BLOOD", "2023-01-08T10:00", 60.0, "P7D"),         # only 2 quantifiable
    (S2, "BLOOD", "2023-01-29T10:00", None, "P28D"),
    (S2, "BLOOD", "2023-01-01", 70.0, "P1D"),               # infusion day, no time -> excluded
    (S3, "BLOOD", "2023-01-02T10:00", 10.0, "P1D"),         # PCRFTDTC missing -> DM.RFSTDTC
    (S3, "BLOOD", "2023-01-03T10:00", 20.0, "P2D"),
    (S3, "BLOOD", "2023-01-04T10:00", 40.0, "P3D"),
]


# The package's defaults are neutral (every analyte and specimen, the PC unit); these tests use the
# choices of a cellular-kinetics study like the bundled one: marrow with Cmax and Tmax only.
STUDY = {"analytes": ["BCMACAR"], "route": "intravascular_infusion", "specimens": {"BLOOD": ["CMAX", "TMAX", "AUCINT", "AUCLST", "CLST", "TLST"],
                                                "BONE MARROW": ["CMAX", "TMAX"]},
         "units": {"conc": "copies/ug", "auc": "day*copies/ug", "extensions": ["day*copies/ug"]}}


def study(**kw) -> NcaSettings:
    return NcaSettings(**{**STUDY, **kw})


def make_pc(rows=ROWS) -> pd.DataFrame:
    pc = pd.DataFrame([
        {"STUDYID": "BCMACART01", "DOMAIN": "PC", "USUBJID": u, "PCTESTCD": "BCMACAR",
         "PCTEST": "Anti-BCMA CAR Transgene", "PCORRES": "<50" if v is None else f"{v:g}",
         "PCSTRESC": "BLQ" if v is None else f"{v:g}", "PCSTRESN": v, "PCSTRESU": "copies/ug",
         "PCLLOQ": 50.0 if spec == "BLOOD" else 5.0, "PCSPEC": spec, "PCDTC": dtc,
         "PCRFTDTC": None if u == S3 else INF, "PCELTM": eltm}
        for u, spec, dtc, v, eltm in rows
    ])
    pc["PCSEQ"] = (pc.groupby("USUBJID").cumcount() + 1).astype("float64")
    return pc


DM = pd.DataFrame({"USUBJID": [S1, S2, S3], "RFSTDTC": [INF, INF, "2023-01-01T10:00"]})


@pytest.fixture(scope="module")
def result():
    return build_pp(make_pc(), DM, study())


def pp_value(result, subj, spec, code):
    row = result.pp.loc[(result.pp.USUBJID == subj) & (result.pp.PPSPEC == spec) & (result.pp.PPTESTCD == code)]
    assert len(row) == 1
    return row.iloc[0]


def test_pp_shape_and_columns(result):
    assert list(result.pp.columns) == PP_COLUMNS
    counts = result.pp.groupby(["USUBJID", "PPSPEC"]).size().to_dict()
    # blood: 6 parameters; bone marrow: Cmax and Tmax only
    assert counts == {(S1, "BLOOD"): 6, (S1, "BONE MARROW"): 2, (S2, "BLOOD"): 6, (S3, "BLOOD"): 6}
    assert (result.pp["DOMAIN"] == "PP").all() and (result.pp["PPCAT"] == "Anti-BCMA CAR Transgene").all()
    assert "PPSEQ" not in result.pp.columns  # left to the SDTM engine


def test_subject1_blood_values(result):
    # times: 0 (pre), 1.5, 7, 21, 28 (day-14 BLQ dropped)
    # 0-1.5: 1.5*100/2 = 75; 1.5-7: 5.5*1100/2 = 3025; 7-21: 14*800/ln 5 = 6958.9; 21-28: 7*100/ln 2 = 1009.9
    expected = 75 + 3025 + 14 * 800 / math.log(5) + 700 / math.log(2)
    auc = pp_value(result, S1, "BLOOD", "AUCINT")
    assert auc["PPSTRESN"] == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(11068.8, abs=0.05)
    assert auc["PPSTRESC"] == "11068.8" and auc["PPORRES"] == "11068.8"
    assert (auc["PPSTRESU"], auc["PPORRESU"]) == ("day*copies/ug", "day*copies/ug")
    assert (auc["PPSTINT"], auc["PPENINT"]) == ("P0D", "P28D")
    assert auc["PPSTAT"] is None and auc["PPREASND"] is None
    assert pp_value(result, S1, "BLOOD", "AUCLST")["PPSTRESN"] == pytest.approx(expected, rel=1e-5)
    assert pp_value(result, S1, "BLOOD", "AUCLST")["PPSTINT"] is None
    cmax = pp_value(result, S1, "BLOOD", "CMAX")
    assert (cmax["PPSTRESN"], cmax["PPSTRESC"], cmax["PPSTRESU"]) == (1000.0, "1000", "copies/ug")
    tmax = pp_value(result, S1, "BLOOD", "TMAX")
    assert (tmax["PPSTRESN"], tmax["PPSTRESU"]) == (7.0, "day")
    assert pp_value(result, S1, "BLOOD", "TLST")["PPSTRESN"] == 28.0
    assert pp_value(result, S1, "BLOOD", "CLST")["PPSTRESN"] == 100.0
    assert pp_value(result, S1, "BLOOD", "CMAX")["PPRFTDTC"] == INF
    assert pp_value(result, S1, "BLOOD", "CMAX")["PPTEST"] == "Max Conc"


def test_bone_marrow_cmax_tmax(result):
    assert pp_value(result, S1, "BONE MARROW", "CMAX")["PPSTRESN"] == 300.0
    assert pp_value(result, S1, "BONE MARROW", "TMAX")["PPSTRESN"] == 28.0  # whole days (no time)


def test_not_calculated_with_reason(result):
    auc = pp_value(result, S2, "BLOOD", "AUCINT")
    assert auc["PPSTAT"] == "NOT DONE"
    assert auc["PPREASND"] == "Fewer than 3 quantifiable post-infusion concentrations (2)"
    assert auc["PPORRES"] is None and auc["PPSTRESC"] is None and np.isnan(auc["PPSTRESN"])
    # units kept on NOT DONE records (one unit per parameter) unless configured otherwise
    assert auc["PPSTRESU"] == "day*copies/ug" and auc["PPORRESU"] == "day*copies/ug"
    bare = build_pp(make_pc(), DM, study(units_when_not_done=False))
    row = bare.pp.loc[(bare.pp.USUBJID == S2) & (bare.pp.PPTESTCD == "AUCINT")].iloc[0]
    assert row["PPSTRESU"] is None and row["PPORRESU"] is None
    assert pp_value(result, S2, "BLOOD", "CMAX")["PPSTRESN"] == 60.0
    # S3 has no sample near day 28
    assert "day 28 +/- 3" in pp_value(result, S3, "BLOOD", "AUCINT")["PPREASND"]
    assert pp_value(result, S3, "BLOOD", "AUCLST")["PPSTAT"] is None


def test_exclusions_pcgrpid_and_supppc(result):
    ex = result.exclusions
    assert list(ex.columns) == ["USUBJID", "PCSEQ", "PCTESTCD", "PCSPEC", "PCDTC", "REASON"]
    assert sorted(zip(ex.USUBJID, ex.PCSEQ)) == [(S1, 4.0), (S2, 5.0)]
    assert "between quantifiable" in ex.loc[ex.USUBJID == S1, "REASON"].iloc[0]
    assert "infusion day without a time" in ex.loc[ex.USUBJID == S2, "REASON"].iloc[0]
    pc = result.pc
    excluded = pc.set_index(["USUBJID", "PCSEQ"]).loc[[(S1, 4.0), (S2, 5.0)], "PCGRPID"]
    assert excluded.isna().all()
    used = pc.loc[~pc.set_index(["USUBJID", "PCSEQ"]).index.isin([(S1, 4.0), (S2, 5.0)])]
    assert (used["PCGRPID"] == used["PCSPEC"]).all()
    # nothing lost: every PC record is used (PCGRPID) or excluded
    assert used["PCGRPID"].notna().sum() + len(ex) == len(pc)
    supp = result.supppc
    assert list(supp.columns) == SUPP_COLUMNS
    assert len(supp) == 4 and set(supp.QNAM) == {"NCAXFL", "NCAXRS"}
    flag = supp.loc[(supp.USUBJID == S1) & (supp.QNAM == "NCAXFL")].iloc[0]
    assert (flag.RDOMAIN, flag.IDVAR, flag.IDVARVAL, flag.QVAL, flag.QORIG) == ("PC", "PCSEQ", "4", "Y", "Derived")
    assert all(len(q) <= 40 for q in supp.QLABEL) and all(len(q) <= 8 for q in supp.QNAM)


def test_relrec_group_level(result):
    rr = result.relrec
    assert list(rr.columns) == RELREC_COLUMNS
    assert len(rr) == 8  # 4 groups x (PC row + PP row)
    g = rr.loc[rr.USUBJID == S1].sort_values(["RELID", "RDOMAIN"])
    assert g[["RDOMAIN", "IDVAR", "IDVARVAL"]].values.tolist() == [
        ["PC", "PCGRPID", "BLOOD"], ["PP", "PPGRPID", "BLOOD"],
        ["PC", "PCGRPID", "BONE MARROW"], ["PP", "PPGRPID", "BONE MARROW"]]
    assert rr.RELTYPE.isna().all()
    # each RELID pairs exactly one PC and one PP row per subject
    assert (rr.groupby(["USUBJID", "RELID"]).RDOMAIN.apply(lambda s: sorted(s)) .map(tuple) == ("PC", "PP")).all()
    # every PP group referenced exists in PP, every PC group in PC
    pp_groups = set(zip(result.pp.USUBJID, result.pp.PPGRPID))
    assert set(zip(rr.loc[rr.RDOMAIN == "PP", "USUBJID"], rr.loc[rr.RDOMAIN == "PP", "IDVARVAL"])) <= pp_groups


def test_findings(result):
    rules = [f.rule for f in result.findings]
    assert rules.count("NCA.PC.EXCLUDED") == 2
    assert rules.count("NCA.RFTDTC.FALLBACK") == 3  # S3's three records
    assert "NCA.PP.NOTDONE" in rules
    assert "NCA.TIME.WHOLEDAY" in rules  # bone marrow sample without time
    # S3 has no pre-infusion sample: time zero imputed
    imputed = [f for f in result.findings if f.rule == "NCA.T0.IMPUTED"]
    assert [f.usubjid for f in imputed] == [S3]


def test_method_description_states_rules(result):
    text = result.method_description
    for needle in ("linear-up/log-down", "BLQ", "between quantifiable concentrations dropped", "P28D",
                   "fewer than 3", "BONE MARROW: CMAX, TMAX", "NCAXFL", "imputed"):
        assert needle in text, needle
    assert text.isascii()
    linear = build_pp(make_pc(), DM, study(auc_method="linear"))
    assert "linear trapezoidal method" in linear.method_description
    assert set(result.parameter_methods) == {"CMAX", "TMAX", "AUCINT", "AUCLST", "CLST", "TLST"}
    summary = result.summary()
    assert summary["pc_excluded"] == 2 and summary["profiles"] == 4


def test_wrong_unit_not_done_and_unlisted_specimen_are_excluded():
    pc = make_pc()
    pc.loc[1, "PCSTRESU"] = "copies/mL"
    pc.loc[2, "PCSTAT"] = "NOT DONE"
    pc.loc[2, ["PCSTRESN", "PCSTRESC"]] = [np.nan, None]
    extra = pc.iloc[[0]].copy()
    extra["PCSPEC"], extra["PCSEQ"] = "PLASMA", 99.0
    pc = pd.concat([pc, extra], ignore_index=True)
    r = build_pp(pc, DM, study())
    reasons = dict(zip(zip(r.exclusions.USUBJID, r.exclusions.PCSEQ), r.exclusions.REASON))
    assert reasons[(S1, 2.0)] == "PCSTRESU is not the NCA unit copies/ug"
    assert reasons[(S1, 3.0)] == "not done (PCSTAT NOT DONE)"
    assert "specimen not analysed" in reasons[(S1, 99.0)]
    assert "PLASMA" not in set(r.pp.PPSPEC)


def test_profile_with_all_records_excluded_is_reported_not_calculated():
    rows = [(S1, "BLOOD", "2023-01-01", 10.0, "P1D"), (S1, "BLOOD", "2023-01", 20.0, "P2D")]
    r = build_pp(make_pc(rows), DM, study())
    assert len(r.pp) == 6 and (r.pp.PPSTAT == "NOT DONE").all()
    assert set(r.pp.PPREASND) == {"No usable concentration record"}
    assert len(r.relrec) == 0 and len(r.exclusions) == 2
    assert "not a complete date" in r.exclusions.REASON.iloc[1]


def test_other_analytes_untouched():
    pc = make_pc()
    other = pc.iloc[[1]].copy()
    other["PCTESTCD"], other["PCSEQ"], other["PCGRPID"] = "OTHER", 50.0, "KEEP"
    r = build_pp(pd.concat([pc, other], ignore_index=True), DM, study())
    assert r.pc.loc[r.pc.PCTESTCD == "OTHER", "PCGRPID"].tolist() == ["KEEP"]
    assert (S1, 50.0) not in set(zip(r.exclusions.USUBJID, r.exclusions.PCSEQ))


def test_bad_input_raises_input_error_naming_the_column():
    with pytest.raises(InputError) as err:
        build_pp(make_pc().drop(columns=["PCRFTDTC", "PCSEQ"]), DM, study())
    cols = {p.column for p in err.value.problems}
    assert cols == {"PCRFTDTC", "PCSEQ"}
    pc = make_pc()
    pc.loc[1, "PCSEQ"] = 1.0
    with pytest.raises(InputError, match="not unique"):
        build_pp(pc, DM, study())


def test_empty_pc():
    r = build_pp(make_pc()[0:0], DM, study())
    assert len(r.pp) == 0 and len(r.relrec) == 0 and len(r.supppc) == 0 and len(r.exclusions) == 0


def test_reproducible():
    a = build_pp(make_pc(), DM, study())
    b = build_pp(make_pc().sample(frac=1.0, random_state=3), DM, study())
    pd.testing.assert_frame_equal(a.pp, b.pp)
    pd.testing.assert_frame_equal(a.relrec, b.relrec)
    pd.testing.assert_frame_equal(a.supppc, b.supppc)


def test_format_sig():
    text, num = format_sig(np.array([11823.78106, 0.000123456789, 1234567.8, 0.0, 7.0, np.nan, 2.5e-7]), 6)
    assert text.tolist() == ["11823.8", "0.000123457", "1234568", "0", "7", None, "0.00000025"]
    assert num[:5].tolist() == [11823.8, 0.000123457, 1234568.0, 0.0, 7.0] and np.isnan(num[5])


def test_parse_dtc():
    s = pd.Series(["2023-01-01T10:00", "2023-01-01", "2023-01", None, "2023-02-30", "2023-01-01T10:00:30"])
    dt, has_date, has_time = parse_dtc(s)
    assert has_date.tolist() == [True, True, False, False, False, True]
    assert has_time.tolist() == [True, False, False, False, False, True]


def test_exclude_after_new_therapy():
    # S1 starts new therapy on 2023-01-22: its day-21 (2023-01-22) and day-28 samples are excluded
    events = pd.DataFrame({"USUBJID": [S1, S1, S2], "DTC": ["2023-01-25", "2023-01-22T08:00", "2023-02"]})
    r = build_pp(make_pc(), DM, study(), exclude_after=events)
    ex = r.exclusions.loc[r.exclusions.USUBJID == S1]
    # events without REASON take the neutral default (a study names its reason in nca.yaml)
    assert dict(zip(ex.PCSEQ, ex.REASON)) == {5.0: DEFAULT_CUTOFF_REASON, 6.0: DEFAULT_CUTOFF_REASON,
                                              7.0: DEFAULT_CUTOFF_REASON}  # 7: bone marrow 2023-01-29
    assert "anti-cancer" not in DEFAULT_CUTOFF_REASON
    # S1 blood now: 0, 1.5, 7 (and the day-14 BLQ becomes trailing -> kept as 0)
    assert pp_value(r, S1, "BLOOD", "TLST")["PPSTRESN"] == 7.0
    assert "NCA.CUTOFF.PARTIAL" in {f.rule for f in r.findings}  # S2's partial date is not applied
    assert len(r.exclusions.loc[r.exclusions.USUBJID == S2]) == 1
    assert pp_value(r, S1, "BONE MARROW", "CMAX")["PPSTAT"] == "NOT DONE"


def test_varying_reference_makes_a_second_profile():
    """A record with another PCRFTDTC belongs to another dose: another profile, not a finding."""
    pc = make_pc()
    pc.loc[2, "PCRFTDTC"] = "2023-01-01T11:00"
    with pytest.raises(InputError, match="same PCGRPID"):  # group_id spec cannot tell them apart
        build_pp(pc, DM, study())
    r = build_pp(pc, DM, study(group_id="{PCSPEC}-{PROFILE}"))
    assert not [f for f in r.findings if f.rule == "NCA.RFTDTC.VARIES"]
    blood = r.pp.loc[(r.pp.USUBJID == S1) & (r.pp.PPSPEC == "BLOOD")]
    assert sorted(set(zip(blood.PPGRPID, blood.PPRFTDTC))) == [("BLOOD-1", INF), ("BLOOD-2", "2023-01-01T11:00")]
    # the day-7 record alone (2023-01-08T10:00 - 2023-01-01T11:00 = 6 + 23/24 days) is profile 2
    tmax2 = blood.loc[(blood.PPGRPID == "BLOOD-2") & (blood.PPTESTCD == "TMAX"), "PPSTRESN"].iloc[0]
    assert tmax2 == pytest.approx(6 + 23 / 24, abs=1e-5)
    rel = r.relrec.loc[r.relrec.USUBJID == S1, "IDVARVAL"].tolist()
    assert rel.count("BLOOD-1") == 2 and rel.count("BLOOD-2") == 2
    assert r.pc.loc[2, "PCGRPID"] == "BLOOD-2" and r.pc.loc[1, "PCGRPID"] == "BLOOD-1"


def test_neutral_defaults_take_analyte_specimens_and_unit_from_the_data():
    """NcaSettings() names no study: every PCTESTCD and PCSPEC of PC with every parameter, the PC
    unit, and the method text speaks of the reference dose; a study's values come from its file."""
    with pytest.raises(InputError, match="not a CDISC PKUNIT term"):  # day*copies/ug: never silently
        build_pp(make_pc(), DM, NcaSettings())
    r = build_pp(make_pc(), DM, NcaSettings(units={"extensions": ["day*copies/ug"]}))
    assert set(r.pp["PPCAT"]) == {"Anti-BCMA CAR Transgene"}
    counts = r.pp.groupby("PPSPEC").size().to_dict()
    assert counts == {"BLOOD": 18, "BONE MARROW": 6}  # 3 subjects x 6 blood, 1 marrow profile x 6
    assert set(r.pp["PPSTRESU"].dropna()) >= {"copies/ug", "day*copies/ug"}
    assert "since the reference dose" in r.method_description and "CAR-T" not in r.method_description
    named = build_pp(make_pc(), DM, study(reference_event="first infusion"))
    assert "actual time since first infusion in days" in named.method_description
    assert "post-dose" in r.method_description and "post-infusion" in named.method_description


def test_neutral_defaults_refuse_ambiguous_data():
    pc = make_pc()
    other = pc.assign(PCTESTCD="OTHER", PCSEQ=pc["PCSEQ"] + 100)
    with pytest.raises(InputError, match="several analytes"):
        build_pp(pd.concat([pc, other], ignore_index=True), DM, NcaSettings())
    pc.loc[1, "PCSTRESU"] = "copies/mL"
    with pytest.raises(InputError, match="several units"):
        build_pp(pc, DM, NcaSettings())
