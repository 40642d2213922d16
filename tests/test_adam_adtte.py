"""ADTTE from its derivation plan (specs/plans/adtte.yaml) on the literal fixture of
tests/test_adam_adsl.py, with hand-worked AVAL/CNSR, and the TTE engine and missed-assessment verb
(adam.verbs_response).

AVAL = ADT - STARTDT + 1 (days); infusion 2023-01-10 = study day 1, so an ADT on study day n
gives AVAL n for PFS/OS.
"""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from cdisc_pipe.adam.conditions import condition_mask
from cdisc_pipe.adam.settings import Condition, TteParameter
from cdisc_pipe.adam.verbs import VERBS, Context
from cdisc_pipe.adam.verbs_response import derive_param_tte, derive_vars_missed
from tests.test_adam_adrs import build_study, plan_data, sdtm_fixture
from tests.test_adam_adsl import ts


@pytest.fixture(scope="module")
def adtte() -> pd.DataFrame:
    res = build_study(sdtm_fixture())
    assert [f for f in res.findings if f.dataset == "ADTTE"] == []
    return res.datasets["ADTTE"]


def tte_parameters(plan: dict | None = None) -> list[TteParameter]:
    """The plan's time-to-event parameters, as the engine reads them."""
    verb = VERBS["derive_param_tte"]
    steps = [s for s in (plan or plan_data("adtte"))["steps"] if s["verb"] == "derive_param_tte"]
    return [verb.args.model_validate(s).parameter() for s in steps]


def rec(adtte: pd.DataFrame, subj: str, paramcd: str) -> pd.Series:
    r = adtte[(adtte["SUBJID"] == subj) & (adtte["PARAMCD"] == paramcd)]
    assert len(r) == 1, (subj, paramcd)
    return r.iloc[0]


def test_pfs_event_pd(adtte: pd.DataFrame) -> None:
    r = rec(adtte, "1002", "PFS")
    assert (r["CNSR"], r["AVAL"], r["ADT"], r["EVNTDESC"]) == (0, 120, ts(120), "DISEASE PROGRESSION")
    assert r["SRCDOM"] == "ADRS" and r["SRCVAR"] == "ADT" and r["CNSDTDSC"] is None


def test_pfs_pd_after_one_missed_assessment_is_an_event(adtte: pd.DataFrame) -> None:
    # 1003: last adequate d57, PD d121; planned d91 lies in (57+14, 121-14) -> 1 missed -> event
    r = rec(adtte, "1003", "PFS")
    assert (r["CNSR"], r["AVAL"]) == (0, 121)


def test_pfs_pd_after_two_missed_assessments_is_censored(adtte: pd.DataFrame) -> None:
    # 1004: last adequate d29, PD d190; planned 57, 91, 121 in (43, 176) -> 3 missed -> censored at d29
    r = rec(adtte, "1004", "PFS")
    assert (r["CNSR"], r["AVAL"], r["ADT"]) == (4, 29, ts(29))
    assert r["CNSDTDSC"] == "LAST ADEQUATE ASSESSMENT BEFORE MISSED ASSESSMENTS"


def test_pfs_new_therapy_before_pd_is_censored(adtte: pd.DataFrame) -> None:
    # 1005: NACTDT 2023-03-01 (day 51, imputed from "2023-03"); last adequate on/before it = d29
    r = rec(adtte, "1005", "PFS")
    assert (r["CNSR"], r["AVAL"]) == (3, 29)
    assert r["EVNTDESC"] == "NEW ANTICANCER THERAPY BEFORE PD"


def test_pfs_death_without_pd_is_an_event(adtte: pd.DataFrame) -> None:
    # 1006: last adequate d57, death d80: no planned day in (71, 66) -> 0 missed -> event on d80
    r = rec(adtte, "1006", "PFS")
    assert (r["CNSR"], r["AVAL"], r["EVNTDESC"], r["SRCVAR"]) == (0, 80, "DEATH", "DTHDT")
    o = rec(adtte, "1006", "OS")
    assert (o["CNSR"], o["AVAL"]) == (0, 80)


def test_pfs_no_post_baseline_assessment_censored_at_start(adtte: pd.DataFrame) -> None:
    r = rec(adtte, "1007", "PFS")
    assert (r["CNSR"], r["AVAL"], r["ADT"]) == (1, 1, ts(1))
    # OS: censored at the last known alive date, day 20
    o = rec(adtte, "1007", "OS")
    assert (o["CNSR"], o["AVAL"]) == (1, 20)


def test_pfs_ongoing_censored_at_last_adequate_assessment(adtte: pd.DataFrame) -> None:
    r = rec(adtte, "1001", "PFS")
    assert (r["CNSR"], r["AVAL"]) == (2, 181)


def test_dor_responders_only(adtte: pd.DataFrame) -> None:
    dor = adtte[adtte["PARAMCD"] == "DOR"]
    # confirmed responders: 1001 (PR d29), 1003 (PR d29), 1009 (CR d29); not 1002 (unconfirmed PR)
    assert sorted(dor["SUBJID"]) == ["1001", "1003", "1009"]
    r = rec(adtte, "1003", "DOR")
    # start d29, PD d121 -> 121 - 29 + 1 = 93
    assert (r["STARTDT"], r["CNSR"], r["AVAL"]) == (ts(29), 0, 93)
    r = rec(adtte, "1001", "DOR")
    assert (r["CNSR"], r["AVAL"]) == (2, 181 - 29 + 1)


def test_mrd_negative_then_positive(adtte: pd.DataFrame) -> None:
    # 1009: first negative d91, positive d181 -> event, 181 - 91 + 1 = 91
    r = rec(adtte, "1009", "MRDDUR")
    assert (r["STARTDT"], r["ADT"], r["CNSR"], r["AVAL"], r["EVNTDESC"]) == (ts(91), ts(181), 0, 91, "MRD POSITIVE")
    # 1001: negative d91 and d456 -> censored at the last negative: 456 - 91 + 1 = 366
    r = rec(adtte, "1001", "MRDDUR")
    assert (r["CNSR"], r["AVAL"]) == (1, 366)


def test_never_infused_only_in_the_apheresis_sensitivity_pfs(adtte: pd.DataFrame) -> None:
    assert set(adtte.loc[adtte["SUBJID"] == "1008", "PARAMCD"]) == {"PFSAPH"}
    # never infused, alive: censored at apheresis (2022-12-20), day 1, with its own code 7
    r = rec(adtte, "1008", "PFSAPH")
    assert (r["STARTDT"], r["CNSR"], r["AVAL"], r["CNSDTDSC"]) == (pd.Timestamp("2022-12-20"), 7, 1, "APHERESIS DATE")
    assert r["EVNTDESC"] == "NOT INFUSED AND ALIVE"
    # 1007: infused, no response assessment: code 1 at apheresis in PFSAPH (not the never-infused code)
    r = rec(adtte, "1007", "PFSAPH")
    assert (r["CNSR"], r["AVAL"], r["EVNTDESC"]) == (1, 1, "NO ADEQUATE POST-BASELINE ASSESSMENT")
    # 1002: PD on 2023-05-09, apheresis 2022-12-20: 11 (rest of Dec) + 31 + 28 + 31 + 30 + 9 = 140 days -> AVAL 141
    r = rec(adtte, "1002", "PFSAPH")
    assert (r["CNSR"], r["AVAL"]) == (0, 141)
    assert (adtte["AVALU"] == "DAYS").all()
    assert ((adtte["CNSR"] == 0) == adtte["CNSDTDSC"].isna()).all()
    assert (adtte["ADT"] >= adtte["STARTDT"]).all()


def test_distinct_cnsr_per_reason() -> None:
    """Within a parameter a code is one reason and a reason one code; across parameters a reason
    keeps its code (PFS, PFSAPH and DOR share 2-5)."""
    params = tte_parameters()
    code_of_reason: dict[str, int] = {}
    for p in params:
        reason_of_code: dict[int, str] = {}
        for c in p.censors:
            assert c.cnsr > 0 and c.cnsdtdsc
            assert reason_of_code.setdefault(c.cnsr, c.evntdesc) == c.evntdesc, (p.paramcd, c.cnsr)
            assert code_of_reason.setdefault(c.evntdesc, c.cnsr) == c.cnsr, (p.paramcd, c.evntdesc)
    pfs = {c.cnsr: c.evntdesc for c in next(p for p in params if p.paramcd == "PFS").censors}
    # "no baseline" and "no adequate post-baseline assessment" no longer share CNSR 1
    assert pfs[1] == "NO ADEQUATE POST-BASELINE ASSESSMENT" and pfs[6] == "NO BASELINE DISEASE ASSESSMENT"
    assert sorted(pfs) == [1, 2, 3, 4, 5, 6]


def test_no_baseline_assessment_overrides_pd() -> None:
    """1002 without its baseline M-protein (LBLOBXFL = Y record removed): BLDISFL N, so PFS is
    censored at the infusion (CNSR 6, AVAL 1) although a confirmed PD on day 120 follows; PFSAPH is
    censored at apheresis 2022-12-20 (CNSR 6, AVAL 1).  OS is not affected (alive: censored at
    LSTALVDT = RFPENDTC day 460 -> AVAL 460).  1007 has a baseline (5 g/L, not measurable): BLDISFL Y,
    still CNSR 1 (no adequate post-baseline assessment)."""
    sdtm = sdtm_fixture()
    lb = sdtm["LB"]
    sdtm["LB"] = lb[~((lb["USUBJID"] == "BCMACART01-101-1002") & (lb["LBLOBXFL"] == "Y"))]
    res = build_study(sdtm)
    a = res.datasets["ADSL"].set_index("SUBJID")
    assert a.loc["1002", "BLDISFL"] == "N" and a.loc["1007", "BLDISFL"] == "Y" and pd.isna(a.loc["1002", "MDTYPE"])
    df = res.datasets["ADTTE"]
    assert [f for f in res.findings if f.dataset == "ADTTE"] == []
    r = rec(df, "1002", "PFS")
    assert (r["CNSR"], r["AVAL"], r["ADT"], r["EVNTDESC"], r["CNSDTDSC"], r["SRCVAR"]) == (
        6, 1, ts(1), "NO BASELINE DISEASE ASSESSMENT", "CAR-T INFUSION DATE", "TRTSDT")
    r = rec(df, "1002", "PFSAPH")
    assert (r["CNSR"], r["AVAL"], r["ADT"], r["CNSDTDSC"]) == (6, 1, pd.Timestamp("2022-12-20"), "APHERESIS DATE")
    assert (rec(df, "1002", "OS")["CNSR"], rec(df, "1002", "OS")["AVAL"]) == (1, 460)
    assert rec(df, "1007", "PFS")["CNSR"] == 1


def test_overriding_censor_beats_events_and_later_censors() -> None:
    """Engine level: A has an event on day 40 and a censoring on day 30, B only a censoring on day
    20; the overriding source (date day 1) matches A only -> A CNSR 9 AVAL 1, B CNSR 2 AVAL 20."""
    adsl = pd.DataFrame({"USUBJID": ["A", "B"], "SAFFL": ["Y", "Y"], "TRTSDT": [ts(1), ts(1)], "BL": ["N", "Y"],
                         "E1": [ts(40), pd.NaT], "C2": [ts(30), ts(20)]})
    param = TteParameter.model_validate({
        "paramcd": "X", "param": "X", "start_date": "TRTSDT",
        "events": [{"id": "E1", "dataset": "ADSL", "date": "E1", "cnsr": 0, "evntdesc": "E", "srcdom": "ADSL",
                    "srcvar": "E1"}],
        "censors": [{"id": "C2", "dataset": "ADSL", "date": "C2", "cnsr": 2, "evntdesc": "C2", "cnsdtdsc": "C2",
                     "srcdom": "ADSL", "srcvar": "C2"},
                    {"id": "NB", "dataset": "ADSL", "date": "TRTSDT", "cnsr": 9, "evntdesc": "NB", "cnsdtdsc": "START",
                     "srcdom": "ADSL", "srcvar": "TRTSDT", "overrides": True,
                     "where": [{"variable": "BL", "values": ["N"]}]}],
    })
    out, _ = derive_param_tte(adsl, {"ADSL": adsl}, param)
    out = out.set_index("USUBJID")
    assert (out.loc["A", "CNSR"], out.loc["A", "AVAL"], out.loc["A", "CNSDTDSC"]) == (9, 1, "START")
    assert (out.loc["B", "CNSR"], out.loc["B", "AVAL"]) == (2, 20)


def test_missed_assessment_count() -> None:
    events = pd.DataFrame({"USUBJID": ["A", "B"], "ADT": [ts(200), ts(40)], "TRTSDT": [ts(1), ts(1)]})
    assessments = pd.DataFrame({"USUBJID": ["A"], "ADT": [ts(57)], "ASEQ": [3.0]})
    out = derive_vars_missed(events, assessments, [29, 57, 91, 121, 181, 271], 14)
    # A: last adequate d57; planned in (71, 186): 91, 121, 181 -> 3
    # B: no adequate assessment -> from day 1; planned in (15, 26): none -> 0 (an early death)
    assert list(out["NMISS"]) == [3, 0]
    assert out["LADT"].iloc[0] == ts(57) and out["LASEQ"].iloc[0] == 3 and pd.isna(out["LADT"].iloc[1])


def test_condition_mask_comparators() -> None:
    df = pd.DataFrame({"A": ["x", "y", None], "D": [ts(1), ts(5), ts(3)], "N": [ts(2), pd.NaT, ts(3)]})
    assert list(condition_mask(df, [Condition(variable="A", values=["x"])])) == [True, False, False]
    assert list(condition_mask(df, [Condition(variable="A", comparator="NE", values=["x"])])) == [False, True, True]
    le = Condition(variable="D", comparator="LE", other="N", other_missing_true=True)
    assert list(condition_mask(df, [le])) == [True, True, True]
    lt = Condition(variable="D", comparator="LT", other="N")
    assert list(condition_mask(df, [lt])) == [True, False, False]
    assert list(condition_mask(df, [Condition(variable="N", comparator="ISNULL")])) == [False, True, False]


def test_earliest_event_wins_and_latest_censor() -> None:
    adsl = pd.DataFrame({"USUBJID": ["A", "B"], "SAFFL": ["Y", "Y"], "TRTSDT": [ts(1), ts(1)],
                         "E1": [ts(50), pd.NaT], "E2": [ts(40), pd.NaT], "C1": [ts(10), ts(10)], "C2": [ts(30), ts(20)]})
    param = TteParameter.model_validate({
        "paramcd": "X", "param": "X", "start_date": "TRTSDT",
        "events": [{"id": e, "dataset": "ADSL", "date": e, "cnsr": 0, "evntdesc": e, "srcdom": "ADSL", "srcvar": e}
                   for e in ("E1", "E2")],
        "censors": [{"id": c, "dataset": "ADSL", "date": c, "cnsr": i + 1, "evntdesc": c, "cnsdtdsc": c,
                     "srcdom": "ADSL", "srcvar": c} for i, c in enumerate(("C1", "C2"))],
    })
    out, findings = derive_param_tte(adsl, {"ADSL": adsl}, param)
    out = out.set_index("USUBJID")
    assert (out.loc["A", "AVAL"], out.loc["A", "CNSR"], out.loc["A", "SRCVAR"]) == (40, 0, "E2")
    assert (out.loc["B", "AVAL"], out.loc["B", "CNSR"], out.loc["B", "SRCVAR"]) == (20, 2, "C2")
    assert findings == []


def test_censoring_rules_are_data() -> None:
    """Dropping the missed-assessment condition from the PFS PD event (the plan, not code) turns
    1004's PD after 3 missed assessments into an event on day 190."""
    plan = copy.deepcopy(plan_data("adtte"))
    pfs = next(s for s in plan["steps"] if s.get("paramcd") == "PFS")
    pd_event = next(e for e in pfs["events"] if e["id"] == "PD")
    pd_event["where"] = [c for c in pd_event["where"] if c["variable"] != "_NMISS"]
    df = build_study(sdtm_fixture(), plans={"adtte": plan}).datasets["ADTTE"]
    r = df[(df["SUBJID"] == "1004") & (df["PARAMCD"] == "PFS")].iloc[0]
    assert (r["CNSR"], r["AVAL"]) == (0, 190)


def test_missed_verb_prepares_the_source_for_later_steps_only() -> None:
    """The plan's derive_vars_missed step on a literal ADRS: A's PD on day 200 after the last
    adequate OVR on day 57 (a later NE on day 120 is not adequate): planned 91, 121, 181 lie in
    (71, 186) -> _NMISS 3, _LADT d57, _LASEQ 2.  The ADRS frame given is not changed."""
    step = next(s for s in plan_data("adtte")["steps"] if s["verb"] == "derive_vars_missed")
    adrs = pd.DataFrame({"USUBJID": ["A"] * 5, "PARAMCD": ["OVR", "OVR", "OVR", "PD", "LSTA"],
                         "AVALC": ["PR", "PR", "NE", "Y", "PR"], "ANL02FL": ["Y", "Y", "Y", None, None],
                         "ADT": [ts(29), ts(57), ts(120), ts(200), ts(57)], "ASEQ": [1.0, 2.0, 3.0, 4.0, 5.0],
                         "TRTSDT": [ts(1)] * 5})
    frames = {"ADRS": adrs}
    verb = VERBS["derive_vars_missed"]
    ctx = Context(frames=frames, dataset="ADTTE")
    out = verb.run(pd.DataFrame(), verb.args.model_validate(step), ctx)
    assert out.empty and "_NMISS" not in adrs.columns and frames["ADRS"] is adrs
    got = ctx.frame("ADRS")
    assert got["_NMISS"].tolist()[3] == 3 and got["_LADT"].iloc[3] == ts(57) and got["_LASEQ"].iloc[3] == 2
    assert got["_NMISS"].isna().tolist() == [True, True, True, False, True]


def test_bad_source_in_settings_is_an_input_error() -> None:
    from cdisc_pipe.errors import InputError

    adsl = pd.DataFrame({"USUBJID": ["A"], "SAFFL": ["Y"], "TRTSDT": [ts(1)], "DTHDT": [pd.NaT]})
    param = TteParameter.model_validate({
        "paramcd": "X", "param": "X", "start_date": "TRTSDT",
        "events": [{"id": "E", "dataset": "ADSL", "date": "DTHDT", "cnsr": 0, "evntdesc": "E", "srcdom": "ADSL",
                    "srcvar": "DTHDT", "where": [{"variable": "NOPE", "comparator": "NOTNULL"}]}],
        "censors": [{"id": "C", "dataset": "ADXX", "date": "TRTSDT", "cnsr": 1, "evntdesc": "C", "cnsdtdsc": "C",
                     "srcdom": "ADSL", "srcvar": "TRTSDT"}],
    })
    with pytest.raises(InputError, match="NOPE"):
        derive_param_tte(adsl, {"ADSL": adsl}, param)
    ok_events = param.model_copy(update={"events": [param.events[0].model_copy(update={"where": []})]})
    with pytest.raises(InputError, match="ADXX"):
        derive_param_tte(adsl, {"ADSL": adsl}, ok_events)


def test_settings_model_rejects_inconsistent_codes() -> None:
    from pydantic import ValidationError

    base = {"paramcd": "X", "param": "X", "start_date": "TRTSDT",
            "events": [{"id": "E", "dataset": "ADSL", "date": "D", "cnsr": 0, "evntdesc": "E", "srcdom": "ADSL", "srcvar": "D"}]}
    two_reasons_one_code = [{"id": c, "dataset": "ADSL", "date": "D", "cnsr": 1, "evntdesc": c, "cnsdtdsc": c,
                             "srcdom": "ADSL", "srcvar": "D"} for c in ("C1", "C2")]
    with pytest.raises(ValidationError, match="two different censoring reasons"):
        TteParameter.model_validate({**base, "censors": two_reasons_one_code})
    with pytest.raises(ValidationError, match="positive cnsr"):
        TteParameter.model_validate({**base, "censors": [{**two_reasons_one_code[0], "cnsr": 0}]})
    one_reason_two_codes = [{**two_reasons_one_code[0], "id": "A"}, {**two_reasons_one_code[0], "id": "B", "cnsr": 2}]
    with pytest.raises(ValidationError, match="has two codes"):
        TteParameter.model_validate({**base, "censors": one_reason_two_codes})
    with pytest.raises(ValidationError, match="needs cnsdtdsc"):
        TteParameter.model_validate({**base, "censors": [{**two_reasons_one_code[0], "cnsdtdsc": None}]})
    overriding_event = [{**base["events"][0], "overrides": True}]
    with pytest.raises(ValidationError, match="censor sources only"):
        TteParameter.model_validate({**base, "events": overriding_event, "censors": two_reasons_one_code[:1]})


def test_cnsr_value_level_codelists_match_the_plan() -> None:
    """Each PARAMCD's CNSR value-level codelist = {0: EVENT} plus the plan's censoring codes with EVNTDESC as decode."""
    from cdisc_pipe.paths import project_root
    from cdisc_pipe.spec.load import load_specs

    spec = load_specs(project_root() / "specs")
    vlm = {spec.where_clauses[vl.where].conditions[0].values[0] if isinstance(vl.where, str) else vl.where[0].values[0]:
           vl.codelist for vl in spec.datasets["ADTTE"].value_level if vl.variable == "CNSR"}
    params = tte_parameters()
    assert set(vlm) == {p.paramcd for p in params}
    union = {t.submission_value for t in spec.codelists["CL.ADTTE.CNSR"].terms}
    for p in params:
        terms = {t.submission_value: t.decode for t in spec.codelists[vlm[p.paramcd]].terms}
        want = {"0": "EVENT", **{str(c.cnsr): c.evntdesc for c in p.censors}}
        assert terms == want, p.paramcd
        assert set(terms) <= union
