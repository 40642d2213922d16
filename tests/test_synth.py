"""The synthetic EDC export: reproducibility, dictionary coverage, formats, internal consistency."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cdisc_pipe.raw import read_export
from cdisc_pipe.synth import BUNDLED_SEED, BUNDLED_SUBJECTS, design, generate
from cdisc_pipe.synth.docs import render_catalogue
from cdisc_pipe.synth.simulate import allocate_ranked, quota_counts
from cdisc_pipe.synth.text import fmt_date, fmt_result, partial_date

ROOT = Path(__file__).resolve().parents[1]
DATE_RE = re.compile(r"^(\d{2}|UN) (JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|UNK) \d{4}$")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DTM_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def export200(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth200")
    generate(200, 7, out)
    return out


@pytest.fixture(scope="module")
def raw200(export200):
    return read_export(export200)


def test_bundled_export_regenerates_byte_for_byte(tmp_path):
    generate(BUNDLED_SUBJECTS, BUNDLED_SEED, tmp_path)
    committed = sorted(p.name for p in (ROOT / "raw").glob("*.csv"))
    fresh = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert committed == fresh
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (ROOT / "raw" / name).read_bytes(), name


def test_other_seed_gives_other_data(tmp_path):
    generate(12, 8, tmp_path / "a")
    generate(12, 9, tmp_path / "b")
    assert (tmp_path / "a" / "ae.csv").read_bytes() != (tmp_path / "b" / "ae.csv").read_bytes()


def test_every_column_of_every_form_is_in_the_dictionary_in_order(export200):
    dd = pd.read_csv(export200 / "data_dictionary.csv", dtype=str, keep_default_na=False)
    assert set(dd["form"]) == {f.name for f in design.FORMS}
    for form in design.FORMS:
        header = list(pd.read_csv(export200 / f"{form.name}.csv", dtype=str, nrows=0).columns)
        assert header == list(dd.loc[dd["form"] == form.name, "field"]), form.name
    coded = dd[dd["codelist"] != ""]
    assert (coded["codes"].str.contains("=")).all()
    assert set(dd["required"]) == {"Y", "N"}


def test_coded_values_are_in_their_codelists(raw200):
    dd = raw200.dictionary
    for _, row in dd[dd["codelist"].notna()].iterrows():  # loop over dictionary fields, not records
        codes = {kv.split("=", 1)[0] for kv in row["codes"].split("|")}
        values = raw200.forms[row["form"]][row["field"]].dropna()
        bad = set(values) - codes
        assert not bad, f"{row['form']}.{row['field']}: {sorted(bad)[:5]}"


def test_required_fields_are_filled(raw200):
    dd = raw200.dictionary
    for _, row in dd[dd["required"] == "Y"].iterrows():
        col = raw200.forms[row["form"]][row["field"]]
        assert col.notna().all(), f"{row['form']}.{row['field']} has blanks"


def test_dates_times_and_timestamps_look_like_site_entries(raw200):
    dd = raw200.dictionary
    partial_ok = {("dm", "BRTHDAT"), ("mmhist", "MMDIAGDAT"), ("mmhist", "PRASCTDAT"), ("priortx", "CMSTDAT"),
                  ("priortx", "CMENDAT"), ("mh", "MHSTDAT"), ("cm", "CMSTDAT"), ("cm", "CMENDAT"), ("ae", "AEENDAT")}
    n_partial = 0
    for _, row in dd[dd["type"].isin(["date", "time", "datetime"])].iterrows():
        col = raw200.forms[row["form"]][row["field"]].dropna()
        rx = {"date": DATE_RE, "time": TIME_RE, "datetime": DTM_RE}[row["type"]]
        assert col.str.match(rx).all(), (row["form"], row["field"], col[~col.str.match(rx)].head().tolist())
        if row["type"] == "date":
            part = col.str.startswith("UN")
            n_partial += int(part.sum())
            if (row["form"], row["field"]) not in partial_ok:
                assert not part.any(), (row["form"], row["field"])
    assert n_partial > 20
    # audit trail: modified on or after entry
    for name, df in raw200.forms.items():
        assert (df["MODDTM"] >= df["ENTRYDTM"]).all(), name


def test_metadata_columns_and_subject_identity(raw200):
    enrolled = set(raw200.forms["enrol"]["SUBJID"])
    assert len(enrolled) == 200
    for name, df in raw200.forms.items():
        assert (df["STUDYID"] == "BCMACART01").all() and (df["SITEID"] == "101").all(), name
        assert set(df["SUBJID"]) <= enrolled, name
        assert df["__row"].tolist() == list(range(2, len(df) + 2)), name


def test_unscheduled_missed_visits_and_qualifiers_present(raw200):
    f = raw200.forms
    assert f["visit"]["FOLDER"].str.startswith("UNS").any()
    assert (f["visit"]["VISOCCUR"] == "N").any()
    assert f["lbcent"]["LBORRES"].str.startswith("<").any()
    assert f["lbcent"]["LBORRES"].str.startswith(">").any() or f["chem"]["LBORRES"].str.startswith("<").any()
    assert (f["chem"]["LBORRESU"] == "mg/dL").any()  # outside laboratory, conventional units
    assert (f["cbc"]["HGB_ORRESU"] == "g/dL").any()
    assert (f["cart"]["EXYN"] == "N").sum() == round(0.05 * 200)
    assert f["cm"]["CMFRQO"].notna().any() and f["cm"]["CMROUTEO"].notna().any()


def test_crs_detail_is_consistent_with_the_ae_grade(raw200):
    ae = raw200.forms["ae"]
    crs = raw200.forms["crs"].merge(ae[["SUBJID", "AESPID", "AEDECOD", "AETOXGR", "AEGRSCL"]], on=["SUBJID", "AESPID"])
    assert len(crs) == len(raw200.forms["crs"]) > 0
    assert (crs["AEDECOD"] == "Cytokine release syndrome").all() and (crs["AEGRSCL"] == "ASTCT").all()
    g = crs["AETOXGR"].astype(int)
    # ASTCT: grade 1 = fever only; grade >= 3 needs a vasopressor or high-flow/positive-pressure oxygen
    assert ((g == 1) == ((crs["HYPOTEN"] == "N") & (crs["OXYSUPP"] == "NONE"))).all()
    sev = (crs["VASOPRES"] != "0") | crs["OXYSUPP"].isin(["HIGHFLOW", "POSPRES"])
    assert (sev == (g >= 3)).all()
    assert (crs["MAXTEMP"].astype(float) >= 38.0).all()
    toci = raw200.forms["cm"][raw200.forms["cm"]["CMDECOD"] == "TOCILIZUMAB"]
    linked = toci.merge(ae, left_on=["SUBJID", "CMAENO"], right_on=["SUBJID", "AESPID"])
    assert len(linked) == len(toci) and (linked["AEDECOD"] == "Cytokine release syndrome").all()


def test_response_agrees_with_the_disease_markers(raw200):
    """An independent reading of IMWG 2016 on the central-lab values of the same visit."""
    f = raw200.forms
    rs = f["rs"][["SUBJID", "FOLDER", "RSORRES"]]
    lb = f["lbcent"]
    sife = lb[lb["LBTESTCD"] == "SIFE"][["SUBJID", "FOLDER", "LBORRES"]].rename(columns={"LBORRES": "SIFE"})
    smp = lb[lb["LBTESTCD"] == "SMPROT"][["SUBJID", "FOLDER", "LBORRES"]].rename(columns={"LBORRES": "SMP"})
    base = smp[smp["FOLDER"] == "D0"][["SUBJID", "SMP"]].rename(columns={"SMP": "BASE"})
    m = rs.merge(sife, on=["SUBJID", "FOLDER"]).merge(smp, on=["SUBJID", "FOLDER"]).merge(base, on="SUBJID")
    cr = m[m["RSORRES"].isin(["CR", "SCR"])]
    assert len(cr) > 50 and (cr["SIFE"] == "NEGATIVE").all()
    mm = m[m["RSORRES"].isin(["PR", "VGPR"]) & ~m["BASE"].str.startswith("<")].copy()
    ratio = pd.to_numeric(mm["SMP"].str.lstrip("<"), errors="coerce") / mm["BASE"].astype(float)
    assert len(mm) > 50
    assert (ratio[mm["RSORRES"] == "PR"] <= 0.5 + 0.05).all()
    assert (ratio[mm["RSORRES"] == "VGPR"] <= 0.5).all()
    # a PR also needs urine M-protein down >= 90% or < 200 mg/24 h
    ump = lb[lb["LBTESTCD"] == "UMPROT"][["SUBJID", "FOLDER", "LBORRES"]].rename(columns={"LBORRES": "UMP"})
    ub = ump[ump["FOLDER"] == "D0"][["SUBJID", "UMP"]].rename(columns={"UMP": "UBASE"})
    mu = rs.merge(ump, on=["SUBJID", "FOLDER"]).merge(ub, on="SUBJID")
    mu = mu[mu["RSORRES"].isin(["PR", "VGPR", "CR", "SCR"]) & ~mu["UBASE"].str.startswith("<")]
    u_now = pd.to_numeric(mu["UMP"].str.lstrip("<"), errors="coerce")
    u_base = mu["UBASE"].astype(float)
    measurable = u_base >= 200
    assert measurable.sum() > 20
    assert ((u_now <= 0.1 * u_base) | (u_now < 200))[measurable].all()
    # sCR needs a normal FLC ratio
    flcr = lb[lb["LBTESTCD"] == "FLCR"][["SUBJID", "FOLDER", "LBORRES"]].rename(columns={"LBORRES": "FLCR"})
    sc = rs[rs["RSORRES"] == "SCR"].merge(flcr, on=["SUBJID", "FOLDER"])
    assert len(sc) > 20 and sc["FLCR"].astype(float).between(0.26, 1.65).all()
    # sCR needs a normal FLC ratio and no clonal marrow plasma cells at the confirming marrow
    bm = f["bm"].merge(rs, on=["SUBJID", "FOLDER"])
    assert (bm.loc[bm["RSORRES"] == "SCR", "BMCLON"] == "NEG").all()
    assert (bm.loc[bm["RSORRES"].isin(["CR", "SCR"]), "BMPC"].astype(float) < 5).all()


def test_progression_has_a_pd_assessment_and_stops_the_schedule(raw200):
    f = raw200.forms
    prog = f["prog"]
    pd_rs = f["rs"][f["rs"]["RSORRES"] == "PD"]
    assert set(prog["SUBJID"]) == set(pd_rs["SUBJID"])
    assert (pd_rs.groupby("SUBJID").size() == 1).all()
    both = prog.merge(pd_rs, on="SUBJID")
    assert (both["PDDAT"] == both["RSDAT"]).all()


def test_transgene_kinetics_blq_before_infusion_and_decline(raw200):
    pc = raw200.forms["pc"]
    pre = pc[pc["PCTPT"] == "PRE"]
    assert (pre["PCORRES"] == "<50").all()
    blood = pc[(pc["PCSPEC"] == "PB") & ~pc["PCORRES"].str.startswith("<")].copy()
    blood["v"] = blood["PCORRES"].astype(float)
    med = blood.groupby("PCTPT")["v"].median()
    assert med["D10"] > med["D1"] and med["D10"] > med["M3"] > med["M12"]
    m12 = pc[(pc["PCSPEC"] == "PB") & (pc["PCTPT"] == "M12")]
    assert m12["PCORRES"].str.startswith("<").mean() > 0.1  # some subjects lost the transgene


def test_dose_levels_and_escalation(raw200):
    e = raw200.forms["enrol"]
    esc = e[e["COHORT"] == "ESC"]
    assert set(esc["DOSELVL"]) <= {"DL1", "DL2", "DL3"}
    first = esc["DOSELVL"].head(3)
    assert (first == "DL1").all()
    cart = raw200.forms["cart"]
    inf = cart[cart["EXYN"] == "Y"]
    per = inf["DOSELVL"].map({"DL1": 1.0, "DL2": 3.0, "DL3": 6.0})
    assert ((inf["CELLSKG"].astype(float) / per - 1).abs() <= 0.1 + 1e-9).all()
    ld = raw200.forms["ld"]
    assert set(ld["LDDAY"]) == {"-5", "-4", "-3"} and set(ld["EXTRT"]) == {"FLU", "CY"}


def test_xlsx_export_reads_like_csv(tmp_path):
    generate(6, 3, tmp_path / "csv")
    generate(6, 3, tmp_path / "x", fmt="xlsx")
    a = read_export(tmp_path / "csv")
    b = read_export(tmp_path / "x" / "export.xlsx")
    assert a.forms.keys() == b.forms.keys()
    for k in a.forms:
        pd.testing.assert_frame_equal(a.forms[k].astype(object).fillna(""), b.forms[k].astype(object).fillna(""),
                                      check_dtype=False, obj=k)


def test_generate_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate(0, 1, tmp_path)
    with pytest.raises(ValueError):
        generate(5, 1, tmp_path, fmt="json")  # type: ignore[arg-type]


def test_raw_md_catalogue_is_current():
    text = (ROOT / "docs" / "RAW.md").read_text(encoding="utf-8")
    assert render_catalogue() in text


def test_quota_allocation_by_hand():
    # 17 x (0.40, 0.32, 0.17, 0.11) = 6.8, 5.44, 2.89, 1.87 -> floors 6,5,2,1 (14);
    # 3 left to the largest remainders .89, .87, .8 -> VGPR, PR, sCR -> 7, 5, 3, 2
    assert quota_counts(17, np.array([0.40, 0.32, 0.17, 0.11])).tolist() == [7, 5, 3, 2]
    cat = allocate_ranked(np.array([5.0, 1.0, 3.0]), np.array([1 / 3, 1 / 3, 1 / 3]))
    assert cat.tolist() == [0, 2, 1]


def test_text_formatting_by_hand():
    day = np.array([np.datetime64("2024-03-12", "D").astype("int64"), np.nan])
    assert fmt_date(day).tolist() == ["12 MAR 2024", None]
    rng = np.random.default_rng(0)
    out = partial_date(np.full(200, day[0]), rng, 0.3, 0.2)
    assert set(out) == {"12 MAR 2024", "UN MAR 2024", "UN UNK 2024"}
    assert fmt_result(np.array([0.4, 2.0, 6000.0]), 1, 1.5, 5000.0).tolist() == ["<1.5", "2.0", ">5000.0"]


def _parse(col: pd.Series) -> pd.Series:
    return pd.to_datetime(col.str.title(), format="%d %b %Y", errors="coerce")


def test_clean_export_has_no_record_after_death_or_cut_and_no_end_before_start(raw200):
    """The faults catalogue mutates a clean export: the clean one must not already carry those faults."""
    f = raw200.forms
    dd = raw200.dictionary
    death = _parse(f["death"].set_index("SUBJID")["DTHDAT"])
    cut = pd.Timestamp("2025-03-11")
    for _, row in dd[dd["type"] == "date"].iterrows():
        df = f[row["form"]]
        d = _parse(df[row["field"]])
        assert (d.dropna() <= cut).all(), (row["form"], row["field"])
        dth = df["SUBJID"].map(death)
        after = d.notna() & dth.notna() & (d > dth)
        assert not after.any(), (row["form"], row["field"], df.loc[after, ["SUBJID", row["field"]]].head())
    for form, st, en in (("ae", "AESTDAT", "AEENDAT"), ("cm", "CMSTDAT", "CMENDAT"), ("priortx", "CMSTDAT", "CMENDAT"),
                         ("bridge", "CMSTDAT", "CMENDAT"), ("subtx", "CMSTDAT", "CMENDAT")):
        s, e = _parse(f[form][st]), _parse(f[form][en])
        assert not (s.notna() & e.notna() & (e < s)).any(), form
    # nothing happens before informed consent
    consent = _parse(f["enrol"].set_index("SUBJID")["RFICDAT"])
    for form, col in (("visit", "VISDAT"), ("aph", "PRSTDAT"), ("ld", "EXSTDAT"), ("pc", "PCDAT"), ("cbc", "LBDAT")):
        d = _parse(f[form][col])
        assert (d.dropna() >= f[form]["SUBJID"].map(consent)[d.notna()]).all(), form


def test_adjudicated_dlts_are_inside_the_dlt_window(raw200):
    ae = raw200.forms["ae"]
    cart = raw200.forms["cart"].set_index("SUBJID")
    dlt = ae[ae["AEDLT"] == "Y"]
    assert len(dlt) > 0
    day = (_parse(dlt["AESTDAT"]) - _parse(dlt["SUBJID"].map(cart["EXSTDAT"]))).dt.days
    assert day.between(0, 28).all()


def test_xlsx_export_is_reproducible_and_escapes_formulas(tmp_path):
    from openpyxl import load_workbook

    from cdisc_pipe.synth.export import csv_to_xlsx

    generate(4, 5, tmp_path / "a", fmt="xlsx")
    generate(4, 5, tmp_path / "b", fmt="xlsx")
    assert (tmp_path / "a" / "export.xlsx").read_bytes() == (tmp_path / "b" / "export.xlsx").read_bytes()
    generate(3, 5, tmp_path / "c")
    mh = pd.read_csv(tmp_path / "c" / "mh.csv", dtype=str, keep_default_na=False)
    mh.loc[0, "MHTERM"] = "=HYPERLINK(\"http://x\")"
    mh.to_csv(tmp_path / "c" / "mh.csv", index=False, lineterminator="\n")
    csv_to_xlsx(tmp_path / "c", tmp_path / "c.xlsx")
    cell = load_workbook(tmp_path / "c.xlsx")["mh"]["J2"]
    assert cell.value == "=HYPERLINK(\"http://x\")" and cell.data_type == "s"


@pytest.mark.parametrize("n", [1, 4])
def test_tiny_studies_are_complete_exports(tmp_path, n):
    generate(n, 11, tmp_path)
    raw = read_export(tmp_path)
    assert len(raw.forms["enrol"]) == n and len(raw.forms) == len(design.FORMS)
    assert (raw.forms["enrol"]["DOSELVL"].head(3) == "DL1").all()  # the first cohort starts at the lowest level


def test_ld_visit_samples_precede_the_first_lymphodepletion_dose(raw200):
    f = raw200.forms
    ld = f["ld"]
    first = ld[ld["LDDAY"] == "-5"].groupby("SUBJID")["EXSTTIM"].min()
    for form, col in (("vs", "VSTIM"), ("cbc", "LBTIM"), ("chem", "LBTIM")):
        at = f[form][f[form]["FOLDER"] == "LD"]
        assert len(at) > 100 and (at[col] < at["SUBJID"].map(first)).all(), form


def _sdtm_files(out: Path) -> dict[str, bytes]:
    files = sorted((out / "sdtm").glob("*.xpt")) + sorted((out / "sdtm").glob("*.json"))
    return {p.name: p.read_bytes() for p in files}


@pytest.mark.parametrize("subjects", [5, BUNDLED_SUBJECTS])
def test_cli_synth_formats_give_byte_identical_sdtm(tmp_path, subjects, request):
    """``synth --format odm|sas|csv`` then ``run``: every sdtm/*.xpt and *.json equals the CSV path's."""
    from cdisc_pipe.cli import main

    outs = {}
    for fmt in ("csv", "odm", "sas"):
        raw = tmp_path / f"raw_{fmt}"
        assert main(["synth", "--subjects", str(subjects), "--format", fmt, "--out", str(raw), "-q"]) == 0
        if fmt == "csv" and subjects == BUNDLED_SUBJECTS:  # the default synth is the bundled export
            assert {p.name: p.read_bytes() for p in raw.glob("*.csv")} == \
                {p.name: p.read_bytes() for p in (ROOT / "raw").glob("*.csv")}
            # ... byte for byte, so its run is the session's run of the bundled export (``run`` with
            # the default --raw, which is this export): reused rather than run again (~10 s).
            outs[fmt] = _sdtm_files(request.getfixturevalue("bundled_run"))
            continue
        out = tmp_path / f"out_{fmt}"
        code = main(["run", "--raw", str(raw), "--out", str(out), "-q"])
        assert code in (0, 1), (out / "logs" / "cdisc-pipe-run.log").read_text()
        outs[fmt] = _sdtm_files(out)
    assert len(outs["csv"]) >= 2 * 25
    for fmt in ("odm", "sas"):
        assert outs[fmt].keys() == outs["csv"].keys()
        differ = [k for k in outs["csv"] if outs[fmt][k] != outs["csv"][k]]
        assert not differ, f"{fmt}: {differ}"


def test_cli_synth_format_and_xlsx_flag(tmp_path, capsys):
    from cdisc_pipe.cli import main

    assert main(["synth", "--subjects", "2", "--format", "odm", "--xlsx", "--out", str(tmp_path), "-q"]) == 2
    assert "--xlsx contradicts --format odm" in capsys.readouterr().err
    assert main(["synth", "--subjects", "2", "--format", "sas", "--out", str(tmp_path / "s"), "-q"]) == 0
    assert (tmp_path / "s" / "dm.xpt").exists() and (tmp_path / "s" / "data_dictionary.csv").exists()
