"""ADRS from its derivation plan (specs/plans/adrs.yaml) and the response verbs (adam.verbs_response).

The plan runs on the literal fixture of tests/test_adam_adsl.py (stories in that module's
docstring); the verbs run on small literal tables.  Infusion = study day 1 = 2023-01-10.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cdisc_pipe.adam import AdamResult, build_adam
from cdisc_pipe.adam.verbs import VERBS, Context
from cdisc_pipe.paths import project_root
from cdisc_pipe.spec.load import load_specs
from tests.test_adam_adsl import make_sdtm, ts

PLANS = project_root() / "specs" / "plans"
ORDER = ["sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE"]


def sdtm_fixture() -> dict[str, pd.DataFrame]:
    """The ADSL fixture, with RS VISITNUM (an Expected SDTM variable the plan carries to AVISITN)."""
    sdtm = make_sdtm()
    rs = sdtm["RS"]
    if "VISITNUM" not in rs.columns:
        num = pd.to_numeric(rs["VISIT"].str.extract(r"DAY (-?\d+)")[0], errors="coerce")
        sdtm["RS"] = rs.assign(VISITNUM=num.where(num.notna(), -1.0))
    return sdtm


_SPEC = None


def build_study(sdtm: dict[str, pd.DataFrame], plans: dict[str, dict] | None = None) -> AdamResult:
    """ADSL, ADRS and ADTTE of ``sdtm`` built by the study's plans (``plans`` replaces some)."""
    global _SPEC
    if _SPEC is None:
        _SPEC = load_specs(project_root() / "specs")
    spec = _SPEC.model_copy(update={"datasets": {k: v for k, v in _SPEC.datasets.items()
                                                 if v.purpose == "Tabulation" or k in ("ADSL", "ADRS", "ADTTE")}})
    with tempfile.TemporaryDirectory() as tmp:
        specs = Path(tmp) / "specs"
        shutil.copytree(project_root() / "specs" / "settings", specs / "settings")
        (specs / "plans").mkdir()
        for name in ("adsl", "adrs", "adtte"):
            if plans and name in plans:
                (specs / "plans" / f"{name}.yaml").write_text(yaml.safe_dump(plans[name], sort_keys=False))
            else:
                shutil.copy(PLANS / f"{name}.yaml", specs / "plans")
        return build_adam(sdtm, spec, specs / "settings")


def plan_data(name: str) -> dict:
    return yaml.safe_load((PLANS / f"{name}.yaml").read_text())


def plan_step(name: str, verb: str, **match) -> dict:
    """The (only) step of the study's plan calling ``verb`` with the given argument values."""
    found = [s for s in plan_data(name)["steps"] if s["verb"] == verb and all(s.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (verb, match, len(found))
    return found[0]


def run_step(step: dict, df: pd.DataFrame, frames: dict | None = None) -> tuple[pd.DataFrame, list]:
    verb = VERBS[step["verb"]]
    ctx = Context(frames=frames or {}, dataset="ADRS")
    return verb.run(df, verb.args.model_validate(step), ctx), ctx.findings


@pytest.fixture(scope="module")
def result() -> AdamResult:
    return build_study(sdtm_fixture())


@pytest.fixture(scope="module")
def adrs(result: AdamResult) -> pd.DataFrame:
    return result.datasets["ADRS"]


def val(adrs: pd.DataFrame, subj: str, paramcd: str, col: str = "AVALC"):
    rec = adrs[(adrs["SUBJID"] == subj) & (adrs["PARAMCD"] == paramcd)]
    assert len(rec) == 1, (subj, paramcd, len(rec))
    return rec.iloc[0][col]


def seq_of(adrs: pd.DataFrame, subj: str, paramcd: str) -> list:
    rec = adrs[(adrs["SUBJID"] == subj) & (adrs["PARAMCD"] == paramcd)].sort_values("ADT")
    return list(rec["AVALC"])


# ------------------------------------------------------------------ the plan's ADRS on the fixture


def test_only_finding_is_the_coarse_mrd_negative(result: AdamResult) -> None:
    # the only ADRS/ADTTE finding: 1001's day-181 MRD negative measured at 1e-4 only
    mine = [(f.rule, f.usubjid[-4:]) for f in result.findings if f.dataset in ("ADRS", "ADTTE")]
    assert mine == [("ADRS.MRD.SENSITIVITY", "1001")]


def test_confirmed_vs_unconfirmed_response(adrs: pd.DataFrame) -> None:
    # 1001: PR d29 confirmed by PR d57; VGPR d91 confirmed by VGPR d181 -> CBOR VGPR reached on d91
    assert seq_of(adrs, "1001", "COVR") == ["PR", "PR", "VGPR", "VGPR"]
    assert val(adrs, "1001", "CBOR") == "VGPR" and val(adrs, "1001", "CBOR", "ADT") == ts(91)
    assert val(adrs, "1001", "RSP") == "Y" and val(adrs, "1001", "RSP", "ADT") == ts(29)
    assert val(adrs, "1001", "VGPRRSP") == "Y" and val(adrs, "1001", "CRRSP") == "N"
    # 1002: PR d29 followed by SD d57 -> worse of the pair = SD: never confirmed -> CBOR SD, not a responder
    assert seq_of(adrs, "1002", "COVR") == ["SD", "SD", "SD", "PD", "PD"]
    assert val(adrs, "1002", "CBOR") == "SD" and val(adrs, "1002", "RSP") == "N"
    # 1009: CR d29, d57, d91 -> confirmed CR
    assert val(adrs, "1009", "CBOR") == "CR" and val(adrs, "1009", "CRRSP") == "Y"


def test_aval_is_rank_best_first(adrs: pd.DataFrame) -> None:
    ranks = {c: i + 1 for i, c in enumerate(ORDER)}
    for p in ("OVR", "COVR", "CBOR"):
        rec = adrs[adrs["PARAMCD"] == p]
        assert (rec["AVAL"] == rec["AVALC"].map(ranks)).all(), p
    yn = adrs[adrs["AVALC"].isin(["Y", "N"])]
    assert (yn["AVAL"] == (yn["AVALC"] == "Y").astype(float)).all()
    mrd = adrs[adrs["PARAMCD"] == "MRD"]
    assert (mrd["AVAL"] == (mrd["AVALC"] == "NEGATIVE").astype(float)).all()


def test_pd_confirmed_and_dated_at_first_pd(adrs: pd.DataFrame) -> None:
    assert val(adrs, "1002", "PD") == "Y" and val(adrs, "1002", "PD", "ADT") == ts(120)
    assert val(adrs, "1003", "PD", "ADT") == ts(121)
    # CBOR is taken up to the first PD: 1003 PR (confirmed d29/d57) stays the best
    assert val(adrs, "1003", "CBOR") == "PR"


def test_new_therapy_cuts_the_analysis(adrs: pd.DataFrame) -> None:
    # 1005: NACTDT 2023-03-01 (imputed): d57 and later are not analysed (ANL02FL missing);
    # PR d29 then has no analysed confirmation -> SD; PD after new therapy is not PD
    ovr = adrs[(adrs["SUBJID"] == "1005") & (adrs["PARAMCD"] == "OVR")].sort_values("ADT")
    assert list(ovr["ANL01FL"]) == ["Y"] * 4 and list(ovr["ANL02FL"].fillna("-")) == ["Y", "-", "-", "-"]
    assert val(adrs, "1005", "CBOR") == "SD" and val(adrs, "1005", "RSP") == "N"
    assert val(adrs, "1005", "PD") == "N"
    assert val(adrs, "1005", "LSTA", "ADT") == ts(29)
    # and no month-3 assessment remains in the window (d91 is after new therapy): non-responder
    assert val(adrs, "1005", "RSPM3") == "N" and pd.isna(val(adrs, "1005", "RSPM3", "ADT"))


def test_month3_window(adrs: pd.DataFrame) -> None:
    # window study day 76..105, closest to 91: 1001 VGPR d91 -> Y; 1002 SD d91 -> N; 1009 CR d91 -> Y
    assert val(adrs, "1001", "RSPM3") == "Y" and val(adrs, "1001", "RSPM3", "ADY") == 91
    assert val(adrs, "1002", "RSPM3") == "N" and val(adrs, "1002", "RSPM3", "ADT") == ts(91)
    assert val(adrs, "1009", "RSPM3") == "Y"
    # 1003: assessments d57 and d121, none in 76..105 -> N
    assert val(adrs, "1003", "RSPM3") == "N"


def test_no_post_baseline_assessment(adrs: pd.DataFrame) -> None:
    assert val(adrs, "1007", "CBOR") == "NE" and pd.isna(val(adrs, "1007", "CBOR", "ADT"))
    assert val(adrs, "1007", "CBOR", "AVAL") == 8 and val(adrs, "1007", "CBOR", "SRCDOM") is None
    assert val(adrs, "1007", "RSP") == "N" and val(adrs, "1007", "RSPM3") == "N"
    assert pd.isna(val(adrs, "1007", "LSTA")) and pd.isna(val(adrs, "1007", "LSTA", "ADT"))
    assert "1008" not in set(adrs["SUBJID"])  # never infused: no ADRS records


def test_mrd_parameters(adrs: pd.DataFrame) -> None:
    # 1001: negative d91 and d456 (365 days apart, no positive between) -> sustained
    assert val(adrs, "1001", "MRDNEG") == "Y" and val(adrs, "1001", "SMRDNEG") == "Y"
    assert val(adrs, "1001", "SMRDNEG", "ADT") == ts(91)
    assert val(adrs, "1001", "MRDNEGCR") == "N"  # best response VGPR, not CR
    # 1009: negative d91 then positive d181 -> MRD negative, with CR; not sustained
    assert val(adrs, "1009", "MRDNEG") == "Y" and val(adrs, "1009", "MRDNEGCR") == "Y"
    assert val(adrs, "1009", "SMRDNEG") == "N"
    assert seq_of(adrs, "1009", "MRD") == ["NEGATIVE", "POSITIVE"]
    # CRIT1FL: negative at sensitivity <= 1e-5 (same-day NGS LBLLOQ); 1001 day 181 was 1e-4 only
    m = adrs[(adrs["SUBJID"] == "1001") & (adrs["PARAMCD"] == "MRD")].sort_values("ADT")
    assert list(m["CRIT1FL"]) == ["Y", "N", "Y"] and m["CRIT1"].iloc[0] == "MRD NEGATIVE AT SENSITIVITY 1E-05 OR BETTER"
    assert adrs.loc[adrs["PARAMCD"] != "MRD", "CRIT1FL"].isna().all()


def test_death_and_traceability(adrs: pd.DataFrame) -> None:
    assert val(adrs, "1006", "DEATH") == "Y" and val(adrs, "1006", "DEATH", "ADT") == ts(80)
    assert val(adrs, "1006", "DEATH", "SRCDOM") == "ADSL" and val(adrs, "1006", "DEATH", "SRCVAR") == "DTHDT"
    assert pd.isna(val(adrs, "1006", "DEATH", "SRCSEQ"))
    ovr = adrs[adrs["PARAMCD"] == "OVR"]
    assert (ovr["SRCDOM"] == "RS").all() and (ovr["SRCVAR"] == "RSSTRESC").all() and ovr["SRCSEQ"].notna().all()
    # an N without a source record is not traced
    n = adrs[adrs["PARAMCD"].isin(["RSP", "PD", "MRDNEG"]) & (adrs["AVALC"] == "N")]
    assert n["SRCDOM"].isna().all() and n["ADT"].isna().all() and n["SRCSEQ"].isna().all()
    # ASEQ unique per subject, in parameter order then date
    assert not adrs.duplicated(["USUBJID", "ASEQ"]).any()
    s = adrs[adrs["SUBJID"] == "1001"].sort_values("ASEQ")
    assert list(s["PARAMCD"].drop_duplicates())[:4] == ["OVR", "COVR", "CBOR", "RSP"]
    assert list(s["PARAM"].iloc[:1]) == ["Overall Response by Investigator"]
    # subject-level parameters are not analysis-flagged
    subj = adrs[~adrs["PARAMCD"].isin(["OVR", "COVR", "MRD"])]
    assert subj[["ANL01FL", "ANL02FL", "ANL03FL", "AVISIT", "ADTF"]].isna().all().all()


def test_mrd_negative_cr_dates_from_the_cr() -> None:
    """1001 reaches CR on day 181 (CR d181 confirmed by CR d270) instead of VGPR.  MRD negatives:
    d91 (1e-5, still VGPR -> not an MRD-negative CR), d181 (only 1e-4 -> CRIT1FL N), d456 (1e-5).
    MRDNEGCR = Y dated d456, the first adequate negative on or after the CR date; MRDNEG stays d91."""
    sdtm = sdtm_fixture()
    rs = sdtm["RS"].copy()
    ovr = (rs["USUBJID"] == "BCMACART01-101-1001") & (rs["RSTESTCD"] == "OVRLRESP")
    rs.loc[ovr & (rs["RSDTC"] == ts(181).date().isoformat()), "RSSTRESC"] = "CR"
    add = rs[ovr & (rs["RSDTC"] == ts(181).date().isoformat())].assign(
        RSSEQ=50.0, RSDTC=ts(270).date().isoformat(), VISIT="DAY 270", VISITNUM=270.0)
    sdtm["RS"] = pd.concat([rs, add], ignore_index=True)
    df = build_study(sdtm).datasets["ADRS"]
    assert val(df, "1001", "CRRSP") == "Y" and val(df, "1001", "CRRSP", "ADT") == ts(181)
    assert val(df, "1001", "MRDNEG", "ADT") == ts(91)
    assert val(df, "1001", "MRDNEGCR") == "Y" and val(df, "1001", "MRDNEGCR", "ADT") == ts(456)
    # 1009: CR d29, negative d91 -> unchanged
    assert val(df, "1009", "MRDNEGCR", "ADT") == ts(91)


def test_partial_dates_and_unknown_responses_are_kept_and_reported() -> None:
    """1002's d57 SD recorded as '2023-03' -> ADT 2023-03-31 (last day), ADTF D; 1006's d29 response
    'XX' -> AVAL missing (Warning) and not analysed; 1003's d29 date 'UNK' -> ADT missing (Warning)."""
    sdtm = sdtm_fixture()
    rs = sdtm["RS"].copy()
    is_ovr = rs["RSTESTCD"] == "OVRLRESP"
    at = lambda s, d: is_ovr & (rs["USUBJID"] == f"BCMACART01-101-{s}") & (rs["RSDTC"] == ts(d).date().isoformat())  # noqa: E731
    rs.loc[at(1002, 57), "RSDTC"] = ts(57).strftime("%Y-%m")
    rs.loc[at(1006, 29), "RSSTRESC"] = "XX"
    rs.loc[at(1003, 29), "RSDTC"] = "UNK"
    sdtm["RS"] = rs
    res = build_study(sdtm)
    df = res.datasets["ADRS"]
    o = df[(df["PARAMCD"] == "OVR")]
    r = o[(o["SUBJID"] == "1002") & (o["ADTF"] == "D")]
    assert len(r) == 1 and r["ADT"].iloc[0] == pd.Timestamp("2023-03-31") and r["AVALC"].iloc[0] == "SD"
    x = o[o["AVALC"] == "XX"]
    assert len(x) == 1 and pd.isna(x["AVAL"].iloc[0]) and x["ANL01FL"].isna().all()
    rules = {(f.rule, f.usubjid[-4:]) for f in res.findings if f.dataset == "ADRS"}
    assert ("ADRS.AVALC.UNKNOWN", "1006") in rules and ("ADRS.ADT.MISSING", "1003") in rules


@pytest.mark.parametrize("case", ["no response records", "nobody infused"])
def test_degenerate_inputs_still_build(case: str) -> None:
    sdtm = sdtm_fixture()
    if case == "no response records":
        sdtm["RS"] = sdtm["RS"][sdtm["RS"]["RSTESTCD"] == "ECOG101"]
    else:
        sdtm["EX"] = sdtm["EX"][sdtm["EX"]["EXCAT"] != "CAR-T"]
    res = build_study(sdtm)
    adrs, adtte = res.datasets["ADRS"], res.datasets["ADTTE"]
    if case == "no response records":
        # every infused subject still has CBOR NE and RSP N; PFS censored at infusion (CNSR 1)
        cbor = adrs[adrs["PARAMCD"] == "CBOR"]
        assert len(cbor) == 8 and (cbor["AVALC"] == "NE").all()
        assert set(adrs["PARAMCD"]) == {"CBOR", "RSP", "VGPRRSP", "CRRSP", "RSPM3", "MRDNEG", "MRDNEGCR", "SMRDNEG",
                                        "PD", "DEATH", "LSTA"}
        assert set(adtte.loc[adtte["PARAMCD"] == "PFS", "CNSR"]) == {1}
    else:
        # response records are kept but not analysed; no subject-level parameter (no one infused)
        assert set(adrs["PARAMCD"]) == {"OVR", "MRD"} and adrs["ANL01FL"].isna().all()
        assert set(adtte["PARAMCD"]) == {"PFSAPH"}


# ------------------------------------------------------------------ verbs on literal tables


def test_worst_record_per_date_is_anl01fl() -> None:
    # the plan's ANL01FL step: pre-infusion record not analysed; of the two d29 records, the worse (SD)
    step = plan_step("adrs", "derive_var_extreme_flag", new_var="ANL01FL")
    ovr = pd.DataFrame({"USUBJID": ["A", "A", "A"], "PARAMCD": ["OVR"] * 3, "ADT": [ts(-3), ts(29), ts(29)],
                        "_TRTSDT": [ts(1)] * 3, "AVALC": ["SD", "PR", "SD"], "AVAL": [6.0, 4.0, 6.0]})
    out, _ = run_step(step, ovr)
    assert list(out["ANL01FL"]) == [None, None, "Y"]


def _covr(avalc: list[str], **override) -> pd.DataFrame:
    step = {**plan_step("adrs", "derive_param_confirmed_ovr"), **override}
    n = len(avalc)
    ovr = pd.DataFrame({"USUBJID": ["A"] * n, "PARAMCD": ["OVR"] * n, "ADT": [ts(29 * (i + 1)) for i in range(n)],
                        "ANL02FL": ["Y"] * n, "AVALC": avalc, "SRCSEQ": [float(i + 1) for i in range(n)]})
    out, _ = run_step(step, ovr)
    return out[out["PARAMCD"] == "COVR"]


def test_pd_confirmation_needs_next_pd_unless_last() -> None:
    # PR d29 -> next evaluable PD -> worse is PD -> not a confirmed response (SD level)
    # PD d58 followed by PR -> unconfirmed PD; PR d87 -> next PD -> SD; PD d116 last -> confirmed PD
    covr = _covr(["PR", "PD", "PR", "PD"])
    assert list(covr["AVALC"]) == ["SD", "SD", "SD", "PD"]
    assert list(covr["_PDCONF"].fillna("-")) == ["-", "-", "-", "Y"]
    assert list(covr["ANL03FL"]) == ["Y"] * 4 and list(covr["AVAL"]) == [6.0, 6.0, 6.0, 7.0]
    # without PD confirmation, the first PD counts at once and the subject stays PD
    covr = _covr(["PR", "PD", "PR", "PD"], confirm_pd=False)
    assert list(covr["AVALC"]) == ["SD", "PD", "PD", "PD"]
    assert list(covr["_PDCONF"].fillna("-")) == ["-", "Y", "-", "-"] and list(covr["ANL03FL"].fillna("-")) == ["Y", "Y", "-", "-"]


def test_ne_is_skipped_for_confirmation() -> None:
    # VGPR d29 confirmed by the next *evaluable* assessment (VGPR d87); NE d58 carries VGPR
    assert list(_covr(["VGPR", "NE", "VGPR"])["AVALC"]) == ["VGPR", "VGPR", "VGPR"]
    # NE before any evaluable assessment -> NE
    assert list(_covr(["NE", "PR", "PR"])["AVALC"]) == ["NE", "PR", "PR"]


def test_confirmed_at_the_worse_of_the_pair_and_best_kept() -> None:
    # CR then PR -> confirmed PR; PR then CR -> PR; CR then CR -> CR from there; then SD: best CR is kept
    assert list(_covr(["CR", "PR", "CR", "CR", "SD"])["AVALC"]) == ["PR", "PR", "CR", "CR", "CR"]
    # MR confirmed by MR -> MR (kept on the last, unconfirmed MR); a single response alone -> SD
    assert list(_covr(["MR", "MR"])["AVALC"]) == ["MR", "MR"]
    assert list(_covr(["PR"])["AVALC"]) == ["SD"]


def test_window_response_closest_to_target_day_and_ties() -> None:
    step = plan_step("adrs", "derive_param_window_response")
    adsl = pd.DataFrame({"USUBJID": ["A", "B", "C"], "SAFFL": ["Y", "Y", "Y"]})
    # A: d80 PR, d100 SD -> |80-91| = 11 > |100-91| = 9 -> d100 SD -> N (traced to the d100 record)
    # B: d88 PR, d94 SD -> both 3 days away -> earlier (d88) -> Y
    # C: d60 PR only -> outside 76..105 -> N, untraced
    ovr = pd.DataFrame({"USUBJID": ["A", "A", "B", "B", "C"], "PARAMCD": "OVR", "_TRTSDT": ts(1),
                        "ADT": [ts(80), ts(100), ts(88), ts(94), ts(60)], "AVALC": ["PR", "SD", "PR", "SD", "PR"],
                        "ANL02FL": "Y", "SRCSEQ": [1.0, 2.0, 1.0, 2.0, 1.0], "SRCDOM": "RS", "SRCVAR": "RSSTRESC"})
    out, _ = run_step(step, ovr, {"ADSL": adsl})
    rec = out[out["PARAMCD"] == "RSPM3"].set_index("USUBJID")
    assert rec.loc["A", "AVALC"] == "N" and rec.loc["A", "ADT"] == ts(100) and rec.loc["A", "SRCSEQ"] == 2
    assert rec.loc["B", "AVALC"] == "Y" and rec.loc["B", "ADT"] == ts(88) and rec.loc["B", "SRCDOM"] == "RS"
    assert rec.loc["C", "AVALC"] == "N" and pd.isna(rec.loc["C", "ADT"]) and pd.isna(rec.loc["C", "SRCDOM"])
    assert list(rec["AVAL"]) == [0.0, 1.0, 0.0]
    # ties to the later day instead: B -> d94 SD -> N
    out, _ = run_step({**step, "tie": "later"}, ovr, {"ADSL": adsl})
    assert out[(out["PARAMCD"] == "RSPM3") & (out["USUBJID"] == "B")]["AVALC"].iloc[0] == "N"


def test_response_aval_rank_map_and_reports() -> None:
    df = pd.DataFrame({"USUBJID": ["A"] * 4, "PARAMCD": ["OVR", "OVR", "OVR", "MRD"], "SRCSEQ": [1.0, 2.0, 3.0, 4.0],
                       "AVALC": ["CR", "??", "PD", "NEGATIVE"], "ADT": [ts(1), ts(2), pd.NaT, ts(4)]})
    out, found = run_step({"verb": "derive_var_response_aval", "filter": [{"variable": "PARAMCD", "values": ["OVR"]}],
                           "order": ORDER, "report_unknown": True, "report_missing_date": "ADT"}, df)
    # CR rank 2, '??' unknown -> missing (reported), PD rank 7 (its missing date reported); MRD untouched
    assert out["AVAL"].iloc[0] == 2 and pd.isna(out["AVAL"].iloc[1])
    assert out["AVAL"].iloc[2] == 7 and pd.isna(out["AVAL"].iloc[3])
    assert sorted((f.rule, f.seq) for f in found) == [("ADRS.ADT.MISSING", 3.0), ("ADRS.AVALC.UNKNOWN", 2.0)]
    out2, found = run_step({"verb": "derive_var_response_aval", "filter": [{"variable": "PARAMCD", "values": ["MRD"]}],
                            "values": {"NEGATIVE": 1, "POSITIVE": 0}}, out)
    # the MRD step keeps the OVR values
    assert out2["AVAL"].iloc[0] == 2 and out2["AVAL"].iloc[3] == 1 and found == []


def test_relative_flag_before_and_after() -> None:
    df = pd.DataFrame({"USUBJID": ["A", "A", "A", "A", "B"], "ADT": [ts(1), ts(5), ts(5), ts(9), ts(3)],
                       "AVALC": ["SD", "SD", "PD", "PD", "SD"], "K": ["Y", "Y", "Y", "Y", "Y"]})
    step = {"verb": "derive_var_relative_flag", "order": "ADT", "new_var": "FL", "filter": [{"variable": "K", "values": ["Y"]}],
            "condition": [{"variable": "AVALC", "values": ["PD"]}]}
    # A's first PD is d5: records on or before d5 (both d5 ones) flagged; B has no PD -> all flagged
    assert run_step(step, df)[0]["FL"].tolist() == ["Y", "Y", "Y", None, "Y"]
    after = {**step, "selection": "after", "inclusive": False, "flag_no_ref_groups": False, "false_value": "N"}
    assert run_step(after, df)[0]["FL"].tolist() == ["N", "N", "N", "Y", "N"]


def test_extreme_record_with_missing_values_and_population() -> None:
    adsl = pd.DataFrame({"USUBJID": ["A", "B", "C"], "SAFFL": ["Y", "Y", "N"]})
    df = pd.DataFrame({"USUBJID": ["A", "A", "A", "C"], "PARAMCD": "COVR", "AVALC": ["PR", "CR", "CR", "CR"],
                       "AVAL": [4.0, 2.0, 2.0, 2.0], "ADT": [ts(1), ts(9), ts(20), ts(3)], "SRCSEQ": [1.0, 2.0, 3.0, 1.0]})
    step = {"verb": "derive_param_extreme_record", "paramcd": "BOR", "population": [{"variable": "SAFFL", "values": ["Y"]}],
            "source": [{"variable": "PARAMCD", "values": ["COVR"]}], "order": ["AVAL", "ADT"],
            "new_vars": {"AVALC": "AVALC", "AVAL": "AVAL", "ADT": "ADT", "SRCSEQ": "SRCSEQ"},
            "missing_values": {"AVALC": "NE", "AVAL": 8}, "set_values": {"PARAM": "Best"}}
    out, _ = run_step(step, df, {"ADSL": adsl})
    bor = out[out["PARAMCD"] == "BOR"].set_index("USUBJID")
    # A: best CR (AVAL 2), first reached d9 (seq 2); B: none -> NE/8, no date; C not in the population
    assert list(bor.index) == ["A", "B"]
    assert (bor.loc["A", "AVALC"], bor.loc["A", "ADT"], bor.loc["A", "SRCSEQ"]) == ("CR", ts(9), 2.0)
    assert (bor.loc["B", "AVALC"], bor.loc["B", "AVAL"]) == ("NE", 8) and pd.isna(bor.loc["B", "ADT"])
    assert (bor["PARAM"] == "Best").all()


def test_response_from_another_dataset_and_merged_within() -> None:
    adsl = pd.DataFrame({"USUBJID": ["A", "B"], "SAFFL": ["Y", "Y"], "DTHDT": [pd.NaT, ts(40)]})
    df = pd.DataFrame({"USUBJID": ["A", "A", "B"], "PARAMCD": ["CR", "MRD", "MRD"], "AVALC": ["Y", "NEGATIVE", "NEGATIVE"],
                       "ADT": [ts(30), ts(29), ts(31)], "SRCSEQ": [None, 5.0, 6.0]})
    death = {"verb": "derive_param_response", "paramcd": "DEATH", "population": [{"variable": "SAFFL", "values": ["Y"]}],
             "dataset_add": "ADSL", "source": [{"variable": "DTHDT", "comparator": "NOTNULL"}], "order": ["DTHDT"],
             "date": "DTHDT", "seq": None, "srcdom": "ADSL", "srcvar": "DTHDT"}
    out, _ = run_step(death, df, {"ADSL": adsl})
    d = out[out["PARAMCD"] == "DEATH"].set_index("USUBJID")
    assert d["AVALC"].tolist() == ["N", "Y"] and d.loc["B", "ADT"] == ts(40) and d.loc["B", "SRCVAR"] == "DTHDT"
    assert pd.isna(d.loc["A", "SRCDOM"]) and d["SRCSEQ"].isna().all()
    # the CR date on every record of the subject, then negatives on or after it: A's d29 negative is before CR
    out, _ = run_step({"verb": "derive_vars_merged_within", "new_vars": {"_CRDT": "ADT"},
                       "filter_add": [{"variable": "PARAMCD", "values": ["CR"]}]}, df)
    assert out["_CRDT"].tolist()[:2] == [ts(30), ts(30)] and pd.isna(out["_CRDT"].iloc[2])
    negcr = {"verb": "derive_param_response", "paramcd": "NEGCR", "population": [{"variable": "SAFFL", "values": ["Y"]}],
             "source": [{"variable": "PARAMCD", "values": ["MRD"]}, {"variable": "ADT", "comparator": "GE", "other": "_CRDT"}]}
    out, _ = run_step(negcr, out, {"ADSL": adsl})
    assert out.loc[out["PARAMCD"] == "NEGCR", "AVALC"].tolist() == ["N", "N"]


def test_sustained_needs_the_span_without_interruption() -> None:
    adsl = pd.DataFrame({"USUBJID": ["A", "B", "C"], "SAFFL": ["Y", "Y", "Y"]})
    # A: neg d10, neg d200 (coarse: CRIT N), neg d400 -> span 390 >= 365 -> Y (dated d10)
    # B: neg d10, pos d100, neg d500 -> run stops at d100 -> span 0 -> N
    # C: pos d5, neg d10, neg d380 -> from the first negative: 370 -> Y
    rows = [("A", 10, "NEGATIVE", "Y"), ("A", 200, "NEGATIVE", "N"), ("A", 400, "NEGATIVE", "Y"),
            ("B", 10, "NEGATIVE", "Y"), ("B", 100, "POSITIVE", "N"), ("B", 500, "NEGATIVE", "Y"),
            ("C", 5, "POSITIVE", "N"), ("C", 10, "NEGATIVE", "Y"), ("C", 380, "NEGATIVE", "Y")]
    df = pd.DataFrame(rows, columns=["USUBJID", "D", "AVALC", "CRIT1FL"])
    df = df.assign(ADT=df["D"].map(ts), PARAMCD="MRD", SRCSEQ=range(1, 10), SRCDOM="RS", SRCVAR="RSSTRESC").drop(columns="D")
    step = {**plan_step("adrs", "derive_param_sustained"), "source": [{"variable": "PARAMCD", "values": ["MRD"]}]}
    out, _ = run_step(step, df, {"ADSL": adsl})
    s = out[out["PARAMCD"] == "SMRDNEG"].set_index("USUBJID")
    assert s["AVALC"].tolist() == ["Y", "N", "Y"]
    assert s.loc["A", "ADT"] == ts(10) and s.loc["C", "SRCSEQ"] == 8 and pd.isna(s.loc["B", "SRCDOM"])


def test_crit_limit_uses_the_same_day_measurement() -> None:
    step = plan_step("adrs", "derive_vars_crit_limit")
    df = pd.DataFrame({"USUBJID": ["A", "A", "A", "A"], "PARAMCD": ["MRD", "MRD", "MRD", "OVR"],
                       "AVALC": ["NEGATIVE", "NEGATIVE", "POSITIVE", "CR"], "ADT": [ts(10), ts(20), ts(30), ts(10)],
                       "SRCSEQ": [1.0, 2.0, 3.0, 4.0]})
    lb = pd.DataFrame({"USUBJID": ["A", "A", "A"], "LBSPEC": "BONE MARROW", "LBMETHOD": "NEXT GENERATION SEQUENCING",
                       "LBDTC": [ts(10).date().isoformat(), ts(20).date().isoformat() + "T09:00", ts(20).date().isoformat()],
                       "LBLLOQ": [1e-5, 1e-4, 1e-3]})
    out, found = run_step(step, df, {"LB": lb})
    # d10 negative at 1e-5 -> Y; d20 negative, best same-day sensitivity 1e-4 > 1e-5 -> N (Notice); d30 positive -> N
    assert out["CRIT1FL"].tolist()[:3] == ["Y", "N", "N"] and out[["CRIT1", "CRIT1FL"]].iloc[3].isna().all()
    assert [(f.rule, f.seq) for f in found] == [("ADRS.MRD.SENSITIVITY", 2.0)]
    # no same-day measurement at all: the investigator's negative stands
    out, found = run_step(step, df, {"LB": lb.iloc[:0]})
    assert out["CRIT1FL"].tolist()[:2] == ["Y", "Y"] and found == []


def test_response_verbs_describe_in_cdisc_words() -> None:
    from cdisc_pipe.adam.plan import load_plans

    spec = load_specs(project_root() / "specs")
    spec = spec.model_copy(update={"datasets": {k: v for k, v in spec.datasets.items()
                                                if v.purpose == "Tabulation" or k in ("ADSL", "ADRS", "ADTTE")}})
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("adrs", "adtte"):
            shutil.copy(PLANS / f"{name}.yaml", tmp)
        plans = load_plans(tmp, spec)
    m = plans["ADRS"].methods
    assert "next evaluable assessment" in m["AVALC"] and "closest to day 91" in m["AVALC"]
    assert "at least 365 days" in m["AVALC"] and "LBLLOQ <= 1e-05" in m["CRIT1FL"]
    for text in [*m.values(), *plans["ADTTE"].methods.values()]:
        assert ".yaml" not in text and ".py" not in text
