"""build_sdtm on a small readable raw export, against rows worked out by hand.

Two subjects of site 101 (all dates 2024):
- 1001: consent 01 MAR, leukapheresis 05 MAR, fludarabine + cyclophosphamide 10-12 MAR (protocol
  days -5..-3), CAR-T infusion 15 MAR 09:00 (RFSTDTC, study day 1), died 01 JUN.
- 1002: consented and apheresed, manufacturing failed, never infused (ASSIGNED, NOT TREATED).
Every other form is present and empty, as in an export with no records for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.paths import default_mappings, default_specs
from cdisc_pipe.raw import RawExport
from cdisc_pipe.sdtm import build_sdtm
from cdisc_pipe.spec import load_specs
from cdisc_pipe.synth import design

TABLES = {
    "enrol": """
SUBJID|FOLDER|RFICDAT    |ELIGYN|ENRLDAT    |COHORT|DOSELVL
1001  |SCR   |01 MAR 2024|Y     |02 MAR 2024|ESC   |DL1
1002  |SCR   |03 MAR 2024|Y     |04 MAR 2024|ESC   |DL1
""",
    "dm": """
SUBJID|FOLDER|BRTHDAT    |AGE|AGEU |SEX|ETHNIC|RACE
1001  |SCR   |UN UNK 1960|63 |YEARS|M  |1     |1
1002  |SCR   |02 FEB 1970|54 |YEARS|X  |1     |2
""",
    "aph": """
SUBJID|FOLDER|PRSTDAT    |PRSTTIM|PRENTIM|MANUF|MANUFRSN
1001  |APH   |05 MAR 2024|08:00  |11:00  |REL  |
1002  |APH   |06 MAR 2024|08:30  |11:30  |FAIL |Insufficient T-cell expansion
""",
    "ld": """
SUBJID|FOLDER|LDDAY|EXTRT|EXSTDAT    |EXSTTIM|EXDOSE|EXDOSU
1001  |LD    |-5   |FLU  |10 MAR 2024|09:00  |30    |mg/m2
1001  |LD    |-5   |CY   |10 MAR 2024|10:00  |300   |mg/m2
1001  |LD    |-4   |FLU  |11 MAR 2024|09:00  |30    |mg/m2
1001  |LD    |-3   |FLU  |12 MAR 2024|09:00  |30    |mg/m2
""",
    "cart": """
SUBJID|FOLDER|EXYN|EXREASND             |DOSELVL|EXSTDAT    |EXSTTIM|EXENTIM|CELLSKG|TOTCART|BAGVOL|EXLOT
1001  |D0    |Y   |                     |DL1    |15 MAR 2024|09:00  |09:20  |1.02   |61.2   |30    |LOT1
1002  |APH   |N   |Manufacturing failure|DL1    |           |       |       |       |       |      |
""",
    "visit": """
SUBJID|FOLDER|VISOCCUR|VISDAT
1001  |SCR   |Y       |01 MAR 2024
1001  |D0    |Y       |15 MAR 2024
1001  |D4    |Y       |19 MAR 2024
1001  |UNS01 |Y       |20 MAR 2024
1001  |D7    |N       |
""",
    "chem": """
SUBJID|FOLDER|LBDAT      |LBTIM|LBCAT|LBTESTCD|LBTEST    |LBORRES|LBORRESU|LBORNRLO|LBORNRHI
1001  |SCR   |01 MAR 2024|08:00|CHEM |CREAT   |Creatinine|1.0    |mg/dL   |0.5     |1.2
1001  |D0    |15 MAR 2024|07:00|CHEM |CREAT   |Creatinine|<40    |umol/L  |41      |81
1001  |D4    |19 MAR 2024|07:00|CHEM |CREAT   |Creatinine|95     |mg%     |        |
1001  |UNS01 |20 MAR 2024|07:00|CHEM |ALT     |ALT       |>500   |U/L     |7       |40
1001  |D4    |19 MAR 2024|07:00|CHEM |ZZZ     |Mystery   |1      |U/L     |        |
""",
    "pc": """
SUBJID|FOLDER|PCREFID|PCSPEC|PCTPT|PCDAT      |PCTIM|PCORRES|PCORRESU      |PCLLOQ
1001  |D0    |P1     |PB    |PRE  |15 MAR 2024|07:00|<50    |copies/ug gDNA|50
1001  |D7    |P2     |PB    |D7   |22 MAR 2024|08:00|1234   |copies/ug gDNA|50
1001  |D7    |P2     |PB    |D7   |22 MAR 2024|08:00|1234   |copies/ug gDNA|50
""",
    "ae": """
SUBJID|FOLDER|AESPID|AETERM                  |AEDECOD                  |AESOC                               |AESTDAT    |AEENDAT    |AETOXGR|AEGRSCL|AESER|AERELCAR|AEOUT |AEDLT|AEACN
1001  |AELOG |1     |Nausea                  |Nausea                   |Gastrointestinal disorders          |UN MAR 2024|           |1      |CTCAE  |N    |1       |NOTREC|N    |NA
1001  |AELOG |2     |cytokine release syndrome|Cytokine release syndrome|Immune system disorders             |16 MAR 2024|14 MAR 2024|2      |ASTCT  |N    |5       |REC   |N    |NONE
1001  |AELOG |3     |Pneumonia               |Pneumonia                |Infections and infestations         |05 JUN 2024|           |5      |CTCAE  |Y    |3       |FATAL |N    |NA
9999  |AELOG |1     |Headache                |Headache                 |Nervous system disorders            |16 MAR 2024|           |1      |CTCAE  |N    |1       |REC   |N    |NA
""",
    "rs": """
SUBJID|FOLDER|RSDAT      |RSORRES
1001  |D28   |12 APR 2024|SCR
1001  |UNS01 |20 MAR 2024|UNK
""",
    "ecog": """
SUBJID|FOLDER|ECOGDAT    |ECOG
1001  |SCR   |01 MAR 2024|1
1001  |LD    |10 MAR 2024|0
1001  |D28   |12 APR 2024|2
""",
    "mrd": """
SUBJID|FOLDER|MRDDAT     |MRDMETH|MRDRES|MRDVAL  |MRDSENS
1001  |SCR   |01 MAR 2024|NGS    |POS   |2.4E-01 |1E-05
1001  |D28   |12 APR 2024|NGS    |NEG   |<1.0E-05|1E-05
""",
    "priortx": """
SUBJID|FOLDER|LINENUM|CMTRT                      |CMSTDAT    |CMENDAT    |BESTRESP|REFRACT
1001  |PTXLOG|1      |Bortezomib + dexamethasone |UN UNK 2016|15 JAN 2017|VGPR    |N
1001  |PTXLOG|2      |Daratumumab + pomalidomide |UN FEB 2018|20 DEC 2023|PD      |Y
""",
    "cm": """
SUBJID|FOLDER|CMTRT      |CMDECOD    |CMINDC                   |CMAENO|CMDSTXT|CMDOSU|CMDOSUO |CMROUTE|CMFRQ|CMFRQO            |CMSTDAT    |CMENDAT    |CMONGO
1001  |CMLOG |Tocilizumab|TOCILIZUMAB|Cytokine release syndrome|2     |8      |mg/kg |        |IV     |ONCE |                  |16 MAR 2024|16 MAR 2024|N
1001  |CMLOG |Entecavir  |ENTECAVIR  |Hepatitis B prophylaxis  |      |0.5    |mg    |        |PO     |OTHER|Every other Tuesday|01 MAR 2024|           |Y
""",
    "pe": """
SUBJID|FOLDER|PEPERF|PEDAT      |PERES|PEABN
1001  |SCR   |Y     |01 MAR 2024|A    |Hepatomegaly
1001  |D28   |N     |           |     |
""",
    "surv": """
SUBJID|FOLDER|SSDAT      |SSSTAT|CONTMETH
1001  |SFU01 |20 MAY 2024|ALIVE |PHONE
""",
    "mh": """
SUBJID|FOLDER|MHTERM|MHSTDAT|MHONGO
1001  |MHLOG |LONGTEXT|UN UNK 2015|Y
1001  |MHLOG |Fi\u00e8vre \u53d1\u70ed|12 JAN 2024|N
""",
    "vs": """
SUBJID|FOLDER|VSDAT      |VSTIM|SYSBP   |DIABP
1001  |SCR   |01 MAR 2024|08:30|not done|80
""",
    "crs": """
SUBJID|FOLDER|AESPID|CRSSTDAT   |MAXTEMP|HYPOTEN|VASOPRES|OXYSUPP
1001  |AELOG |2     |16 MAR 2024|39.1   |N      |0       |NONE
""",
    "death": """
SUBJID|FOLDER|DTHDAT     |DTHCAUS|DTHCAUSO |AUTOPSY
1001  |EVENTS|01 JUN 2024|AE     |Pneumonia|N
""",
    "eos": """
SUBJID|FOLDER|EOSDAT     |EOSSTAT|DCSREAS|DCSREASO
1001  |EVENTS|01 JUN 2024|DISCONT|DEATH  |
1002  |EVENTS|20 MAR 2024|DISCONT|OTHER  |Manufacturing failure
""",
}


#: a medical-history verbatim of 46 x 6 - 1 = 275 bytes, split after 200 bytes at a word boundary
LONG = " ".join(["Hypertension treated with amlodipine since 2015"] * 6)


def _table(text: str) -> pd.DataFrame:
    text = text.replace("LONGTEXT", LONG)
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    head = [h.strip() for h in lines[0].split("|")]
    rows = [[c.strip() for c in ln.split("|")] for ln in lines[1:]]
    return pd.DataFrame(rows, columns=head)


def make_raw(tables: dict[str, str]) -> RawExport:
    """Every form of the study design; literal rows where given, empty otherwise."""
    forms = {}
    for form in design.FORMS:
        cols = [m[0] for m in design.META_FIELDS] + [f.name for f in form.fields]
        df = _table(tables[form.name]) if form.name in tables else pd.DataFrame(columns=["SUBJID"])
        df = df.reindex(columns=cols)
        df["STUDYID"], df["SITEID"] = "BCMACART01", "101"
        df = df.replace("", np.nan).astype("str")
        df["__row"] = [str(i + 2) for i in range(len(df))]
        forms[form.name] = df
    return RawExport(forms=forms, dictionary=pd.DataFrame(), source={k: Path(f"{k}.csv") for k in forms})


@pytest.fixture(scope="module")
def result():
    spec = load_specs(default_specs())
    return build_sdtm(make_raw(TABLES), spec, default_mappings())


def one(df: pd.DataFrame, **where) -> pd.Series:
    sel = df
    for k, v in where.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, (where, len(sel))
    return sel.iloc[0]


def rules(result, rule: str, dataset: str | None = None) -> list:
    return [f for f in result.findings if f.rule == rule and (dataset is None or f.dataset == dataset)]


def test_dm_reference_dates_arms_and_never_infused(result):
    dm = result.datasets["DM"]
    s1 = one(dm, SUBJID="1001")
    assert s1["USUBJID"] == "BCMACART01-101-1001"
    assert s1["RFSTDTC"] == "2024-03-15T09:00"     # CAR-T infusion
    assert s1["RFXSTDTC"] == "2024-03-10T09:00"    # first LD dose
    assert s1["RFXENDTC"] == "2024-03-15T09:20"    # infusion end
    assert s1["RFICDTC"] == "2024-03-01"
    assert s1["DTHDTC"] == "2024-06-01" and s1["DTHFL"] == "Y"
    assert s1["BRTHDTC"] == "1960" and s1["AGE"] == 63 and s1["AGEU"] == "YEARS"
    assert (s1["ARMCD"], s1["ACTARMCD"]) == ("DL1", "DL1") and pd.isna(s1["ARMNRS"])
    assert s1["ARM"] == "DL1: 1.0x10^6 CAR-T cells/kg" and s1["COUNTRY"] == "CHN"
    s2 = one(dm, SUBJID="1002")
    assert s2["ARMCD"] == "DL1" and pd.isna(s2["ACTARMCD"]) and pd.isna(s2["ACTARM"])
    assert s2["ARMNRS"] == "ASSIGNED, NOT TREATED"
    assert pd.isna(s2["RFSTDTC"]) and pd.isna(s2["RFXSTDTC"]) and pd.isna(s2["DTHFL"])
    assert s2["RFPENDTC"] == "2024-03-20"          # end-of-study date, the latest date of the subject


def test_value_outside_a_non_extensible_codelist_is_an_error_at_its_raw_cell(result):
    # SEX 'X' is no term of the non-extensible SEX codelist: the DM record is kept, SEX left empty,
    # and the Error names the collected value and the raw row (not a later length or CT problem)
    dm = result.datasets["DM"]
    assert pd.isna(one(dm, SUBJID="1002")["SEX"])
    [f] = [f for f in rules(result, "SDTM.CT.INVALID", "DM") if f.variable == "SEX"]
    assert f.value == "X" and f.usubjid == "BCMACART01-101-1002" and f.source_row == 3 and f.severity == "Error"


def test_ex_lymphodepletion_and_car_t(result):
    ex = result.datasets["EX"]
    assert list(ex["USUBJID"].unique()) == ["BCMACART01-101-1001"]          # 1002 never dosed
    assert ex["EXSEQ"].tolist() == [1, 2, 3, 4, 5]                           # chronological by keys
    first = one(ex, EXSEQ=1)
    assert (first["EXTRT"], first["EXDOSE"], first["EXDOSU"], first["EXSTDY"]) == ("FLUDARABINE", 30.0, "mg/m2", -5.0)
    cart = one(ex, EXCAT="CAR-T")
    assert cart["EXTRT"] == "ANTI-BCMA CAR-T CELLS" and cart["EXDOSE"] == 1.02 and cart["EXDOSU"] == "10^6/kg"
    assert cart["EXSTDTC"] == "2024-03-15T09:00" and cart["EXSTDY"] == 1.0 and cart["EPOCH"] == "TREATMENT"
    assert cart["EXVAMT"] == 30.0 and cart["EXVAMTU"] == "mL" and cart["EXLOT"] == "LOT1"
    supp = result.datasets["SUPPEX"]
    tot = one(supp, QNAM="TOTCARTC")
    assert tot["QVAL"] == "61.2" and tot["IDVAR"] == "EXSEQ" and tot["IDVARVAL"] == str(int(cart["EXSEQ"]))


def test_ae_partial_dates_study_days_supp_and_findings(result):
    ae = result.datasets["AE"]
    nausea = one(ae, AETERM="Nausea")
    assert nausea["AESTDTC"] == "2024-03" and pd.isna(nausea["AESTDY"]) and pd.isna(nausea["EPOCH"])
    crs = one(ae, AEDECOD="Cytokine release syndrome")
    assert crs["AESTDY"] == 2.0 and crs["AETOXGR"] == "2" and crs["AEREL"] == "RELATED"
    assert crs["AEOUT"] == "RECOVERED/RESOLVED" and crs["AEACN"] == "DOSE NOT CHANGED"
    supp = result.datasets["SUPPAE"]
    seq = str(int(crs["AESEQ"]))
    assert one(supp, IDVARVAL=seq, QNAM="AETOXSC")["QVAL"] == "ASTCT 2019"
    assert one(supp, IDVARVAL=seq, QNAM="AEDLT")["QVAL"] == "N"
    # end 14 MAR before start 16 MAR: kept, reported
    [f] = rules(result, "SDTM.DATE.ENDBEFORESTART", "AE")
    assert f.value == "2024-03-16 > 2024-03-14"
    # pneumonia on 05 JUN, after death on 01 JUN: kept, reported
    assert any(f.usubjid == "BCMACART01-101-1001" for f in rules(result, "SDTM.DATE.AFTERDEATH", "AE"))


def test_fa_and_relrec_link_crs_detail_to_the_ae(result):
    fa = result.datasets["FA"]
    temp = one(fa, FATESTCD="MAXTEMP")
    assert temp["FAOBJ"] == "Cytokine release syndrome" and temp["FASTRESN"] == 39.1 and temp["FASTRESU"] == "C"
    rel = result.datasets["RELREC"]
    ae_seq = str(int(one(result.datasets["AE"], AESPID="2")["AESEQ"]))
    relid = one(rel[(rel["RDOMAIN"] == "AE") & rel["RELID"].str.startswith("AEFA")], IDVARVAL=ae_seq)["RELID"]
    assert set(rel.loc[rel["RELID"] == relid, "RDOMAIN"]) == {"AE", "FA"}
    assert (rel.loc[(rel["RELID"] == relid) & (rel["RDOMAIN"] == "FA")].shape[0]) == 4  # 4 CRS tests with a result


def test_lb_units_qualifiers_baseline_and_unscheduled(result):
    lb = result.datasets["LB"]
    scr = one(lb, LBTESTCD="CREAT", VISITNUM=1.0)
    # 1.0 mg/dL x 88.42 = 88.42 umol/L; range 0.5-1.2 mg/dL -> 44.21-106.104
    assert scr["LBSTRESN"] == pytest.approx(88.42) and scr["LBSTRESU"] == "umol/L"
    assert scr["LBSTNRLO"] == pytest.approx(44.21) and scr["LBSTNRHI"] == pytest.approx(106.104)
    assert scr["LBNRIND"] == "NORMAL"
    assert scr["LBLOBXFL"] == "Y"                    # last before the first LD dose (10 MAR)
    d0 = one(lb, LBTESTCD="CREAT", VISITNUM=4.0)
    assert d0["LBSTRESC"] == "<40" and np.isnan(d0["LBSTRESN"]) and d0["LBLLOQ"] == 40.0
    assert pd.isna(d0["LBLOBXFL"])                   # after LD start: not the safety baseline
    assert d0["LBDY"] == 1.0
    alt = one(lb, LBTESTCD="ALT")
    # unscheduled on 20 MAR: last scheduled visit on or before it is DAY 4 (19 MAR, VISITNUM 6)
    assert alt["VISITNUM"] == 6.01 and alt["VISIT"] == "UNSCHEDULED 6.01"
    assert alt["LBSTRESC"] == ">500" and np.isnan(alt["LBSTRESN"])
    unknown_unit = one(lb, LBTESTCD="CREAT", VISITNUM=6.0)
    assert unknown_unit["LBORRES"] == "95" and pd.isna(unknown_unit["LBSTRESC"])
    # the unknown test ZZZ has no unit row either: both reported
    assert sorted(f.value for f in rules(result, "SDTM.UNIT.UNKNOWN", "LB")) == ["CREAT mg%", "ZZZ U/L"]
    mystery = one(lb, LBORRES="1")
    assert mystery["LBTESTCD"] == "ZZZ"               # unmapped test code kept as collected
    assert any(f.variable == "LBTESTCD" and f.value == "ZZZ" for f in rules(result, "SDTM.CT.UNMAPPED", "LB"))


def test_sv_unscheduled_and_missed_visit(result):
    sv = result.datasets["SV"]
    s1 = sv[sv["USUBJID"] == "BCMACART01-101-1001"]
    # the visit form has SCR, D0, D4, UNS01; the visits used by EX (2 LD days), PR, PC (DAY 7, though the
    # visit form says not done) and LB/RS (DAY 28) are in SV too, dated by their records
    assert s1["VISITNUM"].tolist() == [1.0, 2.0, 3.0, 4.0, 6.0, 6.01, 7.0, 11.0]
    ld = one(s1, VISITNUM=3.0)
    assert (ld["SVSTDTC"], ld["SVENDTC"]) == ("2024-03-10", "2024-03-12")
    un = one(s1, VISITNUM=6.01)
    assert un["SVUPDES"] == "Unscheduled visit" and np.isnan(un["VISITDY"]) and un["SVSTDY"] == 6.0
    assert one(s1, VISITNUM=4.0)["VISITDY"] == 1.0
    t = result.traceability
    missed = t[(t["form"] == "visit") & t["source_row"].notna()]
    assert missed["reason"].tolist() == ["visit did not take place (VISOCCUR = N)"] and missed["source_row"].tolist() == [6]


def test_pc_blq_baseline_and_elapsed_time(result):
    pc = result.datasets["PC"]
    pre = one(pc, PCTPT="PRE-INFUSION")
    assert pre["PCORRES"] == "<50" and pre["PCSTRESC"] == "BLQ" and np.isnan(pre["PCSTRESN"])
    assert pre["PCLLOQ"] == 50.0 and pre["PCLOBXFL"] == "Y" and pre["PCELTM"] == "-PT1H"
    assert pre["PCRFTDTC"] == "2024-03-15T09:00" and pre["PCDY"] == 1.0 and pre["PCSPEC"] == "BLOOD"
    d7 = one(pc, PCTPT="DAY 7")
    assert d7["PCSTRESN"] == 1234.0 and d7["PCSTRESU"] == "copies/ug" and d7["PCELTM"] == "P7D" and d7["PCDY"] == 8.0


def test_se_elements_and_epochs(result):
    se = result.datasets["SE"]
    s1 = se[se["USUBJID"] == "BCMACART01-101-1001"]
    assert s1["ETCD"].tolist() == ["SCRN", "APH", "LD", "CART", "FU"]     # died before month 12
    assert s1["SESTDTC"].tolist() == ["2024-03-01", "2024-03-05T08:00", "2024-03-10T09:00", "2024-03-15T09:00", "2024-04-12"]
    assert s1["SEENDTC"].iloc[-1] == "2024-06-01"                        # RFPENDTC
    s2 = se[se["USUBJID"] == "BCMACART01-101-1002"]
    assert s2["ETCD"].tolist() == ["SCRN", "APH"]


def test_ds_milestones_and_disposition(result):
    ds = result.datasets["DS"]
    s1 = ds[ds["USUBJID"] == "BCMACART01-101-1001"]
    assert s1["DSDECOD"].tolist() == ["INFORMED CONSENT OBTAINED", "LEUKAPHERESIS", "LYMPHODEPLETION STARTED",
                                      "CAR-T INFUSION", "DEATH"]
    s2 = ds[ds["USUBJID"] == "BCMACART01-101-1002"]
    last = s2.iloc[-1]
    assert (last["DSCAT"], last["DSDECOD"], last["DSTERM"]) == ("DISPOSITION EVENT", "OTHER", "Manufacturing failure")


def test_dd_ts_and_design(result):
    dd = result.datasets["DD"]
    assert one(dd, DDTESTCD="PRCDTH")["DDSTRESC"] == "PNEUMONIA"
    ts = result.datasets["TS"]
    assert one(ts, TSPARMCD="SSTDTC")["TSVAL"] == "2024-03-01"
    assert one(ts, TSPARMCD="ACTSUB")["TSVAL"] == "2"
    assert one(ts, TSPARMCD="SDTIGVER")["TSVAL"] == "3.4"
    assert result.datasets["TV"].query("VISIT == 'DAY 7'")["VISITDY"].tolist() == [8.0]
    assert set(result.datasets["TA"]["EPOCH"]) == {"SCREENING", "TREATMENT", "FOLLOW-UP", "LONG-TERM FOLLOW-UP"}


def test_traceability_accounts_for_every_raw_record(result):
    raw = make_raw(TABLES)
    t = result.traceability
    for form, df in raw.forms.items():
        if df.empty:
            continue
        summary = t[(t["form"] == form) & t["source_row"].isna()]
        assert not summary.empty, form
        listed = t[(t["form"] == form) & t["source_row"].notna()]
        for _, row in summary.iterrows():
            if row["dataset"] is None or pd.isna(row["dataset"]):
                continue
            ds = row["dataset"]
            not_mapped = set(listed.loc[listed["dataset"] == ds, "source_row"].astype(int))
            assert row["records_in"] == len(df)
            # records in = records that produced output + records listed with a reason
            if not ds.startswith("SUPP") and row["reason"] != "joined by subject" and ds != "DS":
                produced = row["records_out"]
                assert produced >= len(df) - len(not_mapped), (form, ds)
    cart = t[(t["form"] == "cart") & (t["dataset"] == "EX") & t["source_row"].notna()]
    assert cart["source_row"].tolist() == [3] and "not infused" in cart["reason"].iloc[0]
    assert not t["reason"].fillna("").str.startswith("UNACCOUNTED").any()


def test_every_dataset_conforms_to_its_spec(result):
    spec = load_specs(default_specs())
    for name, df in result.datasets.items():
        ds = spec.datasets[name]
        assert list(df.columns) == ds.variable_names, name
        for v in ds.variables:
            if v.is_mandatory and (name, v.name) != ("DM", "SEX"):  # SEX 'X' of 1002 is left empty (above)
                assert df[v.name].notna().all(), (name, v.name)
            if v.is_numeric:
                assert df[v.name].dtype == "float64", (name, v.name)


def test_bad_records_kept_and_reported(result):
    # AE of a subject never enrolled: kept with its own USUBJID, reported
    ae = result.datasets["AE"]
    assert one(ae, AETERM="Headache")["USUBJID"] == "BCMACART01-101-9999"
    [f] = rules(result, "SDTM.SUBJ.NOTENROLLED")
    assert (f.dataset, f.value, f.source_file, f.source_row) == ("AE", "BCMACART01-101-9999", "ae", 5)
    # the PC record exported twice: mapped once, the copy listed in traceability and reported
    assert (result.datasets["PC"]["PCREFID"] == "P2").sum() == 1
    [dup] = rules(result, "SDTM.RAW.DUPLICATE")
    assert (dup.source_file, dup.source_row, dup.value) == ("pc", 4, "duplicate of row 3")
    t = result.traceability
    assert t.loc[(t["form"] == "pc") & t["source_row"].notna(), "source_row"].tolist() == [4]
    # text in a numeric vital sign: kept as collected, no number, reported
    vs = result.datasets["VS"]
    sbp = one(vs, VSTESTCD="SYSBP")
    assert sbp["VSORRES"] == "not done" and np.isnan(sbp["VSSTRESN"])
    assert one(vs, VSTESTCD="DIABP")["VSSTRESN"] == 80.0
    assert [(f.dataset, f.value) for f in rules(result, "SDTM.NUM.INVALID")] == [("VS", "not done")]


def test_long_and_non_ascii_text(result):
    mh = result.datasets["MH"]
    long = mh[mh["MHTERM"].str.startswith("Hypertension")].iloc[0]
    assert len(long["MHTERM"]) <= 200 and long["MHSTDTC"] == "2015"
    supp = result.datasets["SUPPMH"]
    rest = one(supp, QNAM="MHTERM1")
    assert rest["IDVARVAL"] == str(int(long["MHSEQ"])) and rest["QLABEL"].endswith(" 1")
    assert long["MHTERM"] + " " + rest["QVAL"] == LONG                       # nothing lost
    assert one(mh, MHSTDTC="2024-01-12")["MHTERM"] == "Fi\u00e8vre \u53d1\u70ed"  # kept (the XPT writer transliterates), reported
    [f] = [f for f in rules(result, "SDTM.TEXT.NONASCII") if f.dataset == "MH"]
    assert f.value == "Fi\u00e8vre \u53d1\u70ed" and f.source_row == 3
    assert rules(result, "SDTM.TEXT.SPLIT", "MH")


def test_rs_imwg_mrd_and_ecog(result):
    rs = result.datasets["RS"]
    imwg = rs[rs["RSTESTCD"] == "OVRLRESP"]
    d28 = one(imwg, VISITNUM=11.0)
    assert (d28["RSORRES"], d28["RSSTRESC"], d28["RSCAT"], d28["RSEVAL"]) == ("SCR", "sCR", "KUMAR IMWG 2016", "INVESTIGATOR")
    assert d28["RSDY"] == 29.0 and d28["EPOCH"] == "FOLLOW-UP"                 # 12 APR = day 29 = FU start
    assert one(imwg, RSORRES="UNK")["RSSTRESC"] == "NE"                        # study synonym: unknown = NE
    mrd = rs[rs["RSTESTCD"] == "MRDIND"]
    assert mrd.sort_values("RSDTC")["RSSTRESC"].tolist() == ["POSITIVE", "NEGATIVE"]
    assert mrd["RSLLOQ"].tolist() == [1e-05, 1e-05]
    assert one(mrd, RSSTRESC="POSITIVE")["RSLOBXFL"] == "Y"                    # disease marker: before infusion
    ecog = rs[rs["RSTESTCD"] == "ECOG101"]
    assert ecog.sort_values("RSDTC")["RSSTRESN"].tolist() == [1.0, 0.0, 2.0]
    # ECOG baseline: last before the first LD dose (10 MAR 09:00); the LD-day record has no time -> counts
    assert one(ecog, RSSTRESN=0.0)["RSLOBXFL"] == "Y" and pd.isna(one(ecog, RSSTRESN=1.0)["RSLOBXFL"])
    lb = result.datasets["LB"]
    neg = one(lb, LBTESTCD="MRDFRAC", VISITNUM=11.0)
    assert neg["LBSTRESC"] == "<0.000010" and np.isnan(neg["LBSTRESN"]) and neg["LBLLOQ"] == 1e-05
    assert neg["LBMETHOD"] == "NEXT GENERATION SEQUENCING" and neg["LBSPEC"] == "BONE MARROW"
    assert one(lb, LBTESTCD="MRDFRAC", VISITNUM=1.0)["LBSTRESN"] == 0.24


def test_cm_supp_and_relrec_to_ae(result):
    cm = result.datasets["CM"]
    prior = cm[cm["CMCAT"] == "PRIOR ANTI-CANCER THERAPY"].sort_values("CMSEQ")
    assert prior["CMSTDTC"].tolist() == ["2016", "2018-02"] and prior["CMSPID"].tolist() == ["1", "2"]
    supp = result.datasets["SUPPCM"]
    line2 = str(int(one(prior, CMSPID="2")["CMSEQ"]))
    assert one(supp, IDVARVAL=line2, QNAM="REFRACT")["QVAL"] == "Y"
    assert one(supp, IDVARVAL=line2, QNAM="BESTRESP")["QVAL"] == "PD"
    toci = one(cm, CMTRT="Tocilizumab")
    assert (toci["CMDOSE"], toci["CMDOSU"], toci["CMROUTE"], toci["CMDOSFRQ"]) == (8.0, "mg/kg", "INTRAVENOUS", "ONCE")
    assert toci["CMSTDY"] == 2.0
    ent = one(cm, CMTRT="Entecavir")
    assert ent["CMDOSFRQ"] == "Every other Tuesday" and ent["CMENRF"] == "ONGOING"     # 'other' kept as collected
    assert [f.value for f in rules(result, "SDTM.CT.UNMAPPED", "CM")] == ["Every other Tuesday"]
    rel = result.datasets["RELREC"]
    cm_rel = one(rel, RDOMAIN="CM", IDVARVAL=str(int(toci["CMSEQ"])))
    ae_seq = str(int(one(result.datasets["AE"], AESPID="2")["AESEQ"]))
    assert one(rel[rel["RELID"] == cm_rel["RELID"]], RDOMAIN="AE")["IDVARVAL"] == ae_seq


def test_pr_pe_ss_and_supp(result):
    pr = result.datasets["PR"]
    aph = one(pr, USUBJID="BCMACART01-101-1002")
    assert (aph["PRTRT"], aph["PRSTDTC"], aph["PRENDTC"]) == ("LEUKAPHERESIS", "2024-03-06T08:30", "2024-03-06T11:30")
    supp = result.datasets["SUPPPR"]
    assert one(supp, USUBJID="BCMACART01-101-1002", QNAM="MANUFOUT")["QVAL"] == "MANUFACTURING FAILURE"
    pe = result.datasets["PE"]
    assert len(pe) == 1 and pe["PEORRES"].iloc[0] == "Hepatomegaly" and pe["PESTRESC"].iloc[0] == "ABNORMAL"
    t = result.traceability
    assert t.loc[(t["form"] == "pe") & t["source_row"].notna(), "reason"].tolist() == ["physical examination not done (PEPERF = N)"]
    ss = one(result.datasets["SS"], SSTESTCD="SURVSTAT")
    assert ss["SSSTRESC"] == "ALIVE" and ss["SSDY"] == 67.0   # 15 MAR -> 20 MAY = 31 + 30 + 5 = 66 days, + 1
    suppdm = result.datasets["SUPPDM"]
    assert one(suppdm, USUBJID="BCMACART01-101-1001", QNAM="COHORT")["QVAL"] == "DOSE ESCALATION"
    assert pd.isna(one(suppdm, USUBJID="BCMACART01-101-1001", QNAM="COHORT")["IDVAR"])
    assert len(result.datasets["TE"]) == 6 and len(result.datasets["TI"]) == 9
