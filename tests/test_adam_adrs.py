"""ADRS on the literal fixture of tests/test_adam_adsl.py (stories in that module's docstring)."""

from __future__ import annotations

import pandas as pd
import pytest

from cdisc_pipe.adam import adrs as adrs_mod
from cdisc_pipe.adam import adsl as adsl_mod
from cdisc_pipe.adam.adrs import derive_anl_flags, derive_confirmed
from cdisc_pipe.adam.settings import AdamSettings
from tests.test_adam_adsl import SETTINGS, make_sdtm, ts


@pytest.fixture(scope="module")
def adrs() -> pd.DataFrame:
    sdtm = make_sdtm()
    adsl, _ = adsl_mod.build(sdtm, None, SETTINGS)
    df, findings = adrs_mod.build(sdtm, adsl, SETTINGS)
    # the only finding: 1001's day-181 MRD negative measured at 1e-4 only
    assert [(f.rule, f.usubjid[-4:]) for f in findings] == [("ADRS.MRD.SENSITIVITY", "1001")]
    return df


def val(adrs: pd.DataFrame, subj: str, paramcd: str, col: str = "AVALC"):
    rec = adrs[(adrs["SUBJID"] == subj) & (adrs["PARAMCD"] == paramcd)]
    assert len(rec) == 1, (subj, paramcd, len(rec))
    return rec.iloc[0][col]


def seq_of(adrs: pd.DataFrame, subj: str, paramcd: str) -> list:
    rec = adrs[(adrs["SUBJID"] == subj) & (adrs["PARAMCD"] == paramcd)].sort_values("ADT")
    return list(rec["AVALC"])


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
    ovr = adrs[adrs["PARAMCD"] == "OVR"]
    ranks = {"sCR": 1, "CR": 2, "VGPR": 3, "PR": 4, "MR": 5, "SD": 6, "PD": 7, "NE": 8}
    assert (ovr["AVAL"] == ovr["AVALC"].map(ranks)).all()


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


def test_month3_closest_to_target_day_and_ties() -> None:
    settings = AdamSettings()
    adsl = pd.DataFrame({"USUBJID": ["A", "B"], "SAFFL": ["Y", "Y"], "TRTSDT": [ts(1)] * 2, "NACTDT": [pd.NaT] * 2})
    # A: d80 PR, d100 SD -> |80-91| = 11 > |100-91| = 9 -> d100 SD -> N
    # B: d88 PR, d94 SD -> both 3 days away -> earlier (d88) -> Y
    ovr = pd.DataFrame({"USUBJID": ["A", "A", "B", "B"], "ADT": [ts(80), ts(100), ts(88), ts(94)],
                        "ADY": [80.0, 100.0, 88.0, 94.0], "AVALC": ["PR", "SD", "PR", "SD"],
                        "ANL02FL": ["Y"] * 4, "SRCSEQ": [1.0, 2.0, 1.0, 2.0]})
    rec = adrs_mod.derive_month3_response(ovr, adsl, settings).set_index("USUBJID")
    assert rec.loc["A", "AVALC"] == "N" and rec.loc["A", "ADT"] == ts(100)
    assert rec.loc["B", "AVALC"] == "Y" and rec.loc["B", "ADT"] == ts(88)


def test_no_post_baseline_assessment(adrs: pd.DataFrame) -> None:
    assert val(adrs, "1007", "CBOR") == "NE" and pd.isna(val(adrs, "1007", "CBOR", "ADT"))
    assert val(adrs, "1007", "RSP") == "N" and val(adrs, "1007", "RSPM3") == "N"
    assert "1008" not in set(adrs["SUBJID"])  # never infused: no ADRS records


def test_mrd_parameters(adrs: pd.DataFrame) -> None:
    # 1001: negative d91 and d456 (365 days apart, no positive between) -> sustained
    assert val(adrs, "1001", "MRDNEG") == "Y" and val(adrs, "1001", "SMRDNEG") == "Y"
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
    ovr = adrs[adrs["PARAMCD"] == "OVR"]
    assert (ovr["SRCDOM"] == "RS").all() and (ovr["SRCVAR"] == "RSSTRESC").all() and ovr["SRCSEQ"].notna().all()
    # ASEQ unique per subject
    assert not adrs.duplicated(["USUBJID", "ASEQ"]).any()


def test_worst_record_per_date_is_anl01fl() -> None:
    settings = AdamSettings()
    ovr = pd.DataFrame({"USUBJID": ["A", "A", "A"], "ADT": [ts(-3), ts(29), ts(29)], "TRTSDT": [ts(1)] * 3,
                        "NACTDT": [pd.NaT] * 3, "AVALC": ["SD", "PR", "SD"], "AVAL": [6.0, 4.0, 6.0]})
    out = derive_anl_flags(ovr, settings)
    # pre-infusion record not analysed; of the two d29 records, the worse (SD) is flagged
    assert list(out["ANL01FL"]) == [None, None, "Y"]


def test_pd_confirmation_needs_next_pd_unless_last() -> None:
    settings = AdamSettings()
    # PD d57 followed by PR d91 -> unconfirmed PD; PD d120 as the last assessment -> confirmed
    ovr = pd.DataFrame({"USUBJID": ["A"] * 4, "ADT": [ts(29), ts(57), ts(91), ts(120)], "ANL02FL": ["Y"] * 4,
                        "AVALC": ["PR", "PD", "PR", "PD"], "AVAL": [4.0, 7.0, 4.0, 7.0], "SRCSEQ": [1.0, 2.0, 3.0, 4.0]})
    covr = derive_confirmed(ovr, settings)
    # PR d29 -> next evaluable PD -> worse is PD -> not a confirmed response (SD level)
    # PR d91 -> next PD -> SD; PD d120 last -> confirmed PD
    assert list(covr["AVALC"]) == ["SD", "SD", "SD", "PD"]
    assert list(covr["PDCONF"].fillna("-")) == ["-", "-", "-", "Y"]


def test_ne_is_skipped_for_confirmation() -> None:
    settings = AdamSettings()
    ovr = pd.DataFrame({"USUBJID": ["A"] * 3, "ADT": [ts(29), ts(57), ts(91)], "ANL02FL": ["Y"] * 3,
                        "AVALC": ["VGPR", "NE", "VGPR"], "AVAL": [3.0, 8.0, 3.0], "SRCSEQ": [1.0, 2.0, 3.0]})
    covr = derive_confirmed(ovr, settings)
    # VGPR d29 confirmed by the next *evaluable* assessment (VGPR d91); NE d57 carries VGPR
    assert list(covr["AVALC"]) == ["VGPR", "VGPR", "VGPR"]


def test_mrd_negative_cr_dates_from_the_cr() -> None:
    """1001 reaches CR on day 181 (CR d181 confirmed by CR d270) instead of VGPR.  MRD negatives:
    d91 (1e-5, still VGPR -> not an MRD-negative CR), d181 (only 1e-4 -> CRIT1FL N), d456 (1e-5).
    MRDNEGCR = Y dated d456, the first adequate negative on or after the CR date; MRDNEG stays d91."""
    sdtm = make_sdtm()
    rs = sdtm["RS"].copy()
    ovr = (rs["USUBJID"] == "BCMACART01-101-1001") & (rs["RSTESTCD"] == "OVRLRESP")
    rs.loc[ovr & (rs["RSDTC"] == ts(181).date().isoformat()), "RSSTRESC"] = "CR"
    add = rs[ovr & (rs["RSDTC"] == ts(181).date().isoformat())].assign(
        RSSEQ=50.0, RSDTC=ts(270).date().isoformat(), VISIT="DAY 270")
    sdtm["RS"] = pd.concat([rs, add], ignore_index=True)
    adsl, _ = adsl_mod.build(sdtm, None, SETTINGS)
    df, _ = adrs_mod.build(sdtm, adsl, SETTINGS)
    assert val(df, "1001", "CRRSP") == "Y" and val(df, "1001", "CRRSP", "ADT") == ts(181)
    assert val(df, "1001", "MRDNEG", "ADT") == ts(91)
    assert val(df, "1001", "MRDNEGCR") == "Y" and val(df, "1001", "MRDNEGCR", "ADT") == ts(456)
    # 1009: CR d29, negative d91 -> unchanged
    assert val(df, "1009", "MRDNEGCR", "ADT") == ts(91)
