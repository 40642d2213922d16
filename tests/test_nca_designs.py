"""build_pp on PK designs beyond one infusion per subject: profiles per dose (crossover, multiple
dose), real time units (h vs day), independent PC and PP concentration units, doses, manual
lambda-z rules from the settings.

The oral profile is test_nca_terminal's profile A (Cmax 100 ng/mL at 2 h, halving every 2 h from
4 h): AUClast = 90 + 40/ln 1.25 + 150/ln 2 = 485.661061 h*ng/mL, lambda z = ln 2 / 2 /h,
AUCinf = AUClast + 10/ln 2 = 500.088011 h*ng/mL.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.errors import InputError
from cdisc_pipe.nca import NcaSettings, build_pp, dose_records

LN2 = math.log(2)
REL = 5e-6  # PPSTRESN is rounded to 6 significant digits; unrounded values (NcaResult.profiles): 1e-6
A_AUCLAST = 90 + 40 / math.log(1.25) + 150 / LN2
A_LAMZ = LN2 / 2
A_AUCINF = A_AUCLAST + 10 / LN2
SUBJ = "BA01-001"
P1, P2 = "2024-03-04T08:00", "2024-03-18T08:00"
# hours after the dose -> concentration (None = BLQ); the pre-dose sample 30 min before
A = [(-0.5, None), (1, 40), (2, 100), (4, 80), (6, 40), (8, 20), (12, 5), (24, None)]


def stamp(ref: str, hours: float) -> str:
    return (pd.Timestamp(ref) + pd.Timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def make_pc(periods=((P1, "PERIOD 1 DOSE", 1.0), (P2, "PERIOD 2 DOSE", 2.0)), unit="ng/mL", factor=1.0,
            points=A, tptref=True) -> pd.DataFrame:
    rows = []
    for ref, tpt, scale in periods:
        for h, c in points:
            v = None if c is None else c * scale * factor
            rows.append({"STUDYID": "BA01", "DOMAIN": "PC", "USUBJID": SUBJ, "PCTESTCD": "DRUGX", "PCSPEC": "PLASMA",
                         "PCSTRESN": v, "PCSTRESC": "BLQ" if v is None else f"{v:g}", "PCSTRESU": unit,
                         "PCLLOQ": 1.0 * factor, "PCDTC": stamp(ref, h), "PCRFTDTC": ref,
                         **({"PCTPTREF": tpt} if tptref else {})})
    pc = pd.DataFrame(rows)
    pc["PCSEQ"] = np.arange(1, len(pc) + 1, dtype="float64")
    return pc


DM = pd.DataFrame({"USUBJID": [SUBJ], "RFSTDTC": [P1]})
DOSES = pd.DataFrame({"USUBJID": [SUBJ, SUBJ], "DTC": [P1, P2], "DOSE": [100.0, 100.0], "DOSU": ["mg", "mg"]})
PARAMS = ["CMAX", "TMAX", "AUCLST", "AUCIFO", "AUCPEO", "LAMZ", "LAMZHL", "LAMZNPT", "R2ADJ", "CLFO", "VZFO",
          "MRTEVIFO", "AUMCLST"]


def settings(**kw) -> NcaSettings:
    base = {"route": "extravascular", "group_id": "{PCSPEC}-{PCTPTREF}", "parameters": PARAMS,
            "units": {"time": "h", "conc": "ng/mL", "dose": "mg"}}
    for k, v in kw.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return NcaSettings(**base)


def val(res, code, grp=None):
    pp = res.pp.loc[res.pp.PPTESTCD == code]
    if grp is not None:
        pp = pp.loc[pp.PPGRPID == grp]
    assert len(pp) == 1, (code, grp, len(pp))
    return pp.iloc[0]


def test_crossover_subject_two_periods_two_profiles():
    res = build_pp(make_pc(), DM, settings(), doses=DOSES)
    g1, g2 = "PLASMA-PERIOD 1 DOSE", "PLASMA-PERIOD 2 DOSE"
    assert len(res.profiles) == 2 and len(res.pp) == 2 * len(PARAMS)
    assert set(zip(res.pp.PPGRPID, res.pp.PPRFTDTC, res.pp.PPTPTREF)) == {
        (g1, P1, "PERIOD 1 DOSE"), (g2, P2, "PERIOD 2 DOSE")}
    # times are from each period's own dose: Tmax 2 h in both periods (pooled, period 2 would be 338 h)
    assert val(res, "TMAX", g1)["PPSTRESN"] == 2 and val(res, "TMAX", g2)["PPSTRESN"] == 2
    # period 2 has twice the concentrations: AUCs x 2, lambda z the same, CL/F and Vz/F / 2
    auc1, auc2 = val(res, "AUCLST", g1), val(res, "AUCLST", g2)
    assert auc1["PPSTRESN"] == pytest.approx(A_AUCLAST, rel=REL) and auc1["PPSTRESU"] == "h*ng/mL"
    assert auc2["PPSTRESN"] == pytest.approx(2 * A_AUCLAST, rel=REL)
    prof = res.profiles.set_index("PPGRPID")  # unrounded, computed units (h, ng/mL, mg)
    assert prof.loc[g1, "AUCLAST"] == pytest.approx(A_AUCLAST, rel=1e-6)
    assert prof.loc[g2, "AUCIFO"] == pytest.approx(2 * A_AUCINF, rel=1e-6)
    assert prof.loc[g1, "LAMZ"] == pytest.approx(A_LAMZ, rel=1e-6)
    assert prof.loc[g1, "CLO"] == pytest.approx(100 / A_AUCINF, rel=1e-6)  # mg/(h*ng/mL); x 1000 = L/h
    assert prof.loc[g2, "DOSE"] == 100
    assert val(res, "LAMZ", g2)["PPSTRESN"] == pytest.approx(A_LAMZ, rel=REL)
    assert val(res, "LAMZ", g1)["PPSTRESU"] == "/h" and val(res, "LAMZHL", g1)["PPSTRESN"] == pytest.approx(2.0)
    # CL/F = 100 mg / 500.088011 h*ng/mL = 0.199965 mg*mL/(h*ng) = 199.965 L/h
    cl = val(res, "CLFO", g1)
    assert cl["PPSTRESN"] == pytest.approx(1000 * 100 / A_AUCINF, rel=REL) and cl["PPSTRESU"] == "L/h"
    assert val(res, "CLFO", g2)["PPSTRESN"] == pytest.approx(1000 * 100 / (2 * A_AUCINF), rel=REL)
    vz = val(res, "VZFO", g1)
    assert vz["PPSTRESN"] == pytest.approx(1000 * 100 / (A_LAMZ * A_AUCINF), rel=REL) and vz["PPSTRESU"] == "L"
    assert val(res, "AUMCLST", g1)["PPSTRESU"] == "h2*ng/mL"
    assert val(res, "AUCPEO", g1)["PPSTRESU"] == "%"
    assert val(res, "MRTEVIFO", g1)["PPSTRESU"] == "h" and val(res, "LAMZNPT", g1)["PPSTRESU"] is None
    # RELREC: one PC/PP pair per profile; PCGRPID on the records used
    rel = res.relrec
    assert sorted(rel.RELID.unique()) == [f"PCPP-{g1}", f"PCPP-{g2}"]
    used = res.pc.loc[res.pc.PCGRPID.notna()]
    assert set(used.loc[used.PCRFTDTC == P1, "PCGRPID"]) == {g1}
    assert set(used.loc[used.PCRFTDTC == P2, "PCGRPID"]) == {g2}
    assert not [f for f in res.findings if f.rule == "NCA.RFTDTC.VARIES"]
    # the lambda-z points are listed per profile
    lz = res.lambda_z_points
    assert len(lz.loc[lz.PPGRPID == g1]) == 4


def test_group_id_must_separate_profiles_and_profile_number_template():
    with pytest.raises(InputError, match="same PCGRPID"):
        build_pp(make_pc(), DM, settings(group_id="spec"), doses=DOSES)
    res = build_pp(make_pc(tptref=False), DM, settings(group_id="{PCSPEC}-P{PROFILE}"), doses=DOSES)
    assert sorted(res.pp.PPGRPID.unique()) == ["PLASMA-P1", "PLASMA-P2"]
    assert "PPTPTREF" not in res.pp.columns  # PC without PCTPTREF


def test_hours_and_days_give_the_same_profile():
    """The same dates analysed in h and in days: times x 24, AUC x 24, AUMC x 576, lambda z / 24,
    CL per day = 24 x CL per hour, Vz and concentrations unchanged."""
    pc = make_pc(periods=((P1, "PERIOD 1 DOSE", 1.0),))
    h = build_pp(pc, DM, settings(), doses=DOSES).profiles.iloc[0]
    d = build_pp(pc, DM, settings(units={"time": "day", "extensions": ["day*ng/mL", "day2*ng/mL"]}),
                 doses=DOSES).profiles.iloc[0]
    for col, f in (("TMAX", 24), ("TLAST", 24), ("AUCLAST", 24), ("AUCIFO", 24), ("AUMCLST", 576), ("AUMCIFO", 576),
                   ("LAMZHL", 24), ("LAMZLL", 24), ("LAMZUL", 24), ("MRTO", 24), ("LAMZ", 1 / 24), ("CMAX", 1),
                   ("CLAST", 1), ("CLSTP", 1), ("AUCPEO", 1), ("R2ADJ", 1), ("LAMZNPT", 1), ("VZO", 1),
                   ("CLO", 1 / 24)):
        assert h[col] == pytest.approx(f * d[col], rel=1e-9), col
    assert h["AUCLAST"] == pytest.approx(A_AUCLAST, rel=REL)
    assert d["AUCLAST"] == pytest.approx(A_AUCLAST / 24, rel=REL)
    res_d = build_pp(pc, DM, settings(units={"time": "day", "extensions": ["day2*ng/mL"]}), doses=DOSES)
    cl_d = val(res_d, "CLFO")
    cl_h = val(build_pp(pc, DM, settings(), doses=DOSES), "CLFO")
    assert cl_d["PPSTRESU"] == "L/day" and cl_d["PPSTRESN"] == pytest.approx(24 * cl_h["PPSTRESN"], rel=1e-5)
    assert val(res_d, "AUCLST")["PPSTRESU"] == "day*ng/mL" and val(res_d, "TMAX")["PPSTRESU"] == "day"


def test_minutes_and_weeks():
    pc = make_pc(periods=((P1, "PERIOD 1 DOSE", 1.0),))
    m = build_pp(pc, DM, settings(parameters=["TMAX", "AUCLST"],
                                  units={"time": "min", "extensions": []}), doses=DOSES)
    assert val(m, "TMAX")["PPSTRESN"] == 120 and val(m, "AUCLST")["PPSTRESU"] == "min*ng/mL"
    assert val(m, "AUCLST")["PPSTRESN"] == pytest.approx(60 * A_AUCLAST, rel=REL)
    with pytest.raises(InputError, match="'week' is not a CDISC PKUNIT term"):
        build_pp(pc, DM, settings(parameters=["TMAX"], units={"time": "week"}), doses=DOSES)
    w = build_pp(pc, DM, settings(parameters=["TMAX"], units={"time": "week", "extensions": ["week"]}), doses=DOSES)
    assert val(w, "TMAX")["PPSTRESN"] == pytest.approx(2 / 168, rel=1e-5)


def test_records_without_time_are_not_used_in_hours():
    pc = make_pc(periods=((P1, "PERIOD 1 DOSE", 1.0),))
    pc.loc[3, "PCDTC"] = pc.loc[3, "PCDTC"][:10]
    res = build_pp(pc, DM, settings(), doses=DOSES)
    assert res.exclusions.REASON.tolist() == ["PCDTC or PCRFTDTC has no time: actual time in hours unknown"]


@pytest.mark.parametrize(("unit", "factor"), [("ng/mL", 1.0), ("ug/L", 1.0), ("mg/L", 1e-3), ("pg/mL", 1e3)])
def test_pc_and_pp_concentration_units_are_independent(unit, factor):
    """PC results in ug/L, mg/L or pg/mL; PP in ng/mL: converted with the units table."""
    pc = make_pc(periods=((P1, "PERIOD 1 DOSE", 1.0),), unit=unit, factor=factor)
    res = build_pp(pc, DM, settings(), doses=DOSES)
    assert val(res, "CMAX")["PPSTRESN"] == pytest.approx(100, rel=1e-9) and val(res, "CMAX")["PPSTRESU"] == "ng/mL"
    assert val(res, "AUCLST")["PPSTRESN"] == pytest.approx(A_AUCLAST, rel=REL)
    assert len(res.exclusions) == 0


def test_result_units_other_than_the_derived_ones():
    # AUC in h*ug/mL (= h*ng/mL / 1000), clearance in mL/min (L/h x 1000 / 60)
    pc = make_pc(periods=((P1, "PERIOD 1 DOSE", 1.0),))
    res = build_pp(pc, DM, settings(units={"auc": "h*ug/mL", "clearance": "mL/min"}), doses=DOSES)
    assert val(res, "AUCLST")["PPSTRESN"] == pytest.approx(A_AUCLAST / 1000, rel=REL)
    assert val(res, "AUCLST")["PPSTRESU"] == "h*ug/mL"
    assert val(res, "CLFO")["PPSTRESN"] == pytest.approx(1000 * 100 / A_AUCINF * 1000 / 60, rel=REL)


def test_units_outside_pkunit_are_errors_unless_declared():
    pc = make_pc(periods=((P1, "PERIOD 1 DOSE", 1.0),), unit="ug/L")
    with pytest.raises(InputError, match="'ug/L' is not a CDISC PKUNIT term"):
        build_pp(pc, DM, settings(units={"conc": "ug/L"}), doses=DOSES)
    ok = build_pp(pc, DM, settings(parameters=["CMAX"], units={"conc": "ug/L", "extensions": ["ug/L"]}), doses=DOSES)
    assert val(ok, "CMAX")["PPSTRESU"] == "ug/L"
    with pytest.raises(InputError, match="does not convert"):
        build_pp(pc, DM, settings(units={"dose": "mmol"}), doses=DOSES)  # molar dose, mass concentration


def test_unconvertible_pc_unit_is_excluded():
    pc = make_pc(periods=((P1, "PERIOD 1 DOSE", 1.0),))
    pc.loc[2, "PCSTRESU"] = "nmol/L"  # molar: no molecular weight in the table
    res = build_pp(pc, DM, settings(), doses=DOSES)
    assert res.exclusions.REASON.tolist() == ["PCSTRESU is not the NCA unit ng/mL"]


def test_doses_in_another_unit_and_missing_doses():
    pc = make_pc()
    ug = DOSES.assign(DOSE=[100000.0, 100000.0], DOSU="ug")
    a = build_pp(pc, DM, settings(), doses=DOSES)
    b = build_pp(pc, DM, settings(), doses=ug)
    pd.testing.assert_frame_equal(a.pp, b.pp)
    only1 = build_pp(pc, DM, settings(), doses=DOSES.iloc[[0]])
    cl2 = val(only1, "CLFO", "PLASMA-PERIOD 2 DOSE")
    assert cl2["PPSTAT"] == "NOT DONE" and cl2["PPREASND"] == "No dose record at the reference time"


def test_dose_records_from_the_settings_source():
    ex = pd.DataFrame({"USUBJID": [SUBJ, SUBJ, SUBJ], "EXTRT": ["DRUGX", "DRUGX", "PLACEBO"],
                       "EXSTDTC": [P1, P2, P2], "EXENDTC": [P1, P2, P2], "EXDOSE": [100, 100, 0],
                       "EXDOSU": ["mg", "mg", "mg"]})
    s = settings(doses={"variable": "EXTRT", "values": ["DRUGX"]})
    d = dose_records({"EX": ex}, s)
    assert d[["DTC", "DOSE"]].values.tolist() == [[P1, 100], [P2, 100]]
    assert dose_records({}, s) is None and dose_records({"EX": ex}, settings()) is None


def test_manual_lambda_z_rule_from_the_settings_with_a_finding():
    pc = make_pc()
    seq_8h = float(pc.loc[(pc.PCRFTDTC == P2) & (pc.PCDTC == stamp(P2, 8)), "PCSEQ"].iloc[0])
    rule = {"usubjid": SUBJ, "pcrftdtc": P2, "exclude": [int(seq_8h)], "reason": "sample haemolysed"}
    res = build_pp(pc, DM, settings(lambda_z={"manual": [rule]}), doses=DOSES)
    assert val(res, "LAMZNPT", "PLASMA-PERIOD 2 DOSE")["PPSTRESN"] == 3
    assert val(res, "LAMZNPT", "PLASMA-PERIOD 1 DOSE")["PPSTRESN"] == 4
    notes = [f for f in res.findings if f.rule == "NCA.LAMZ.MANUAL"]
    assert len(notes) == 1 and "sample haemolysed" in notes[0].message
    window = {"usubjid": SUBJ, "pctptref": "PERIOD 1 DOSE", "start": 6, "end": 12, "reason": "per PK scientist"}
    res = build_pp(pc, DM, settings(lambda_z={"manual": [window]}), doses=DOSES)
    assert val(res, "LAMZNPT", "PLASMA-PERIOD 1 DOSE")["PPSTRESN"] == 3
    nomatch = {"usubjid": "NOBODY", "points": [1, 2], "reason": "typo"}
    res = build_pp(pc, DM, settings(lambda_z={"manual": [nomatch]}), doses=DOSES)
    assert [f.rule for f in res.findings if f.rule.startswith("NCA.LAMZ")] == ["NCA.LAMZ.NOMATCH"]


def test_multiple_dose_profiles_first_and_steady_state():
    """Day 1 (single-dose profile) and day 5 (dosing interval tau = 24 h, PCTPTREF DAY 5 DOSE)."""
    d1, d5 = "2024-03-04T08:00", "2024-03-08T08:00"
    ss = [(-0.5, 12), (1, 50), (2, 40), (4, 30), (8, 20), (24, 10)]
    first = make_pc(periods=((d1, "DAY 1 DOSE", 1.0),))
    steady = make_pc(periods=((d5, "DAY 5 DOSE", 1.0),), points=ss)
    pc = pd.concat([first, steady], ignore_index=True)
    pc["PCSEQ"] = np.arange(1, len(pc) + 1, dtype="float64")
    s = settings(parameters=["CMAX", "AUCLST", "AUCTAU", "CAVG", "CTROUGH", "CMIN"],
                 multiple_dose={"tau": 24, "pctptref": ["DAY 5 DOSE"]})
    res = build_pp(pc, DM, s, doses=DOSES)
    g5 = "PLASMA-DAY 5 DOSE"
    assert set(res.pp.loc[res.pp.PPGRPID == "PLASMA-DAY 1 DOSE", "PPTESTCD"]) == {"CMAX", "AUCLST"}
    # AUCTAU 0-24: 0-1 (12+50)/2 = 31; 1-2 10/ln 1.25; 2-4 2*10/ln(4/3); 4-8 4*10/ln 1.5; 8-24 16*10/ln 2
    auctau = 31 + 10 / math.log(1.25) + 20 / math.log(4 / 3) + 40 / math.log(1.5) + 160 / LN2
    tau = val(res, "AUCTAU", g5)
    assert tau["PPSTRESN"] == pytest.approx(auctau, rel=REL)
    assert (tau["PPSTINT"], tau["PPENINT"]) == ("PT0H", "PT24H")
    assert val(res, "CAVG", g5)["PPSTRESN"] == pytest.approx(auctau / 24, rel=REL)
    assert val(res, "CTROUGH", g5)["PPSTRESN"] == 10 and val(res, "CMIN", g5)["PPSTRESN"] == 10


def test_aucint_intervals_in_hours_and_several_intervals():
    pc = make_pc(periods=((P1, "PERIOD 1 DOSE", 1.0),))
    s = settings(parameters=["AUCINT"], interval=[{"start": 0, "end": 4}, {"start": 0, "end": 12}],
                 min_data={"end_window": 0.5})
    res = build_pp(pc, DM, s, doses=DOSES)
    rows = res.pp.sort_values("PPENINT")
    assert rows[["PPSTINT", "PPENINT"]].values.tolist() == [["PT0H", "PT12H"], ["PT0H", "PT4H"]]
    # 0-4: 20 + 70 + 40/ln 1.25; 0-12 = AUClast
    assert rows.iloc[1]["PPSTRESN"] == pytest.approx(90 + 40 / math.log(1.25), rel=REL)
    assert rows.iloc[0]["PPSTRESN"] == pytest.approx(A_AUCLAST, rel=REL)
    assert "from 0 h to 4 h (PPSTINT PT0H, PPENINT PT4H) and from 0 h to 12 h" in res.method_description


def test_method_text_names_the_design():
    res = build_pp(make_pc(), DM, settings(), doses=DOSES)
    text = res.method_description
    for needle in ("reference dose (PCRFTDTC, PCTPTREF)", "in hours", "post-dose", "Lambda z (PKNCA",
                   "within 0.0001 of the best", "AUC extrapolated is > 20%", "CL = dose/AUCinf"):
        assert needle in text, needle
    assert text.isascii()
    assert set(res.parameter_methods) == set(PARAMS)


def test_a_record_without_pctptref_joins_its_reference_dose():
    pc = make_pc()
    pc.loc[0, "PCTPTREF"] = None  # the period-1 pre-dose sample
    res = build_pp(pc, DM, settings(), doses=DOSES)
    assert len(res.profiles) == 2 and res.pc.loc[0, "PCGRPID"] == "PLASMA-PERIOD 1 DOSE"
