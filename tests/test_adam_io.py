"""read_sdtm and build_adam: reading folders, the input check, skipping, spec conformance,
and the CDISC pilot SDTM package (another study) giving a clear InputError, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from cdisc_pipe.adam import build_adam, read_sdtm
from cdisc_pipe.errors import InputError
from cdisc_pipe.paths import project_root
from cdisc_pipe.spec.load import load_specs
from tests.test_adam_adsl import SETTINGS, make_sdtm

PILOT = project_root().parent / "shared" / "reference" / "sdtm-msg-2.0-cdiscpilot01"


@pytest.fixture(scope="module")
def spec():
    return load_specs(project_root() / "specs")


@pytest.fixture(scope="module")
def core_spec(spec):
    """The study spec restricted to the datasets built in this module (ADSL, ADRS, ADTTE)."""
    return spec.model_copy(update={"datasets": {k: v for k, v in spec.datasets.items()
                                                if v.purpose == "Tabulation" or k in ("ADSL", "ADRS", "ADTTE")}})


def test_read_sdtm_xpt_and_json(tmp_path: Path) -> None:
    dm = pd.DataFrame({"STUDYID": ["S", "S"], "USUBJID": ["S-1", "S-2"], "AGE": [60.0, None], "ARMNRS": ["", "X"]})
    pyreadstat.write_xport(dm, str(tmp_path / "dm.xpt"), file_format_version=5, table_name="DM")
    ae = {"datasetJSONVersion": "1.1.0", "name": "AE", "columns": [
        {"itemOID": "IT.AE.USUBJID", "name": "USUBJID", "label": "x", "dataType": "string"},
        {"itemOID": "IT.AE.AESEQ", "name": "AESEQ", "label": "x", "dataType": "integer"}],
        "rows": [["S-1", 1], ["S-2", 2]]}
    (tmp_path / "ae.json").write_text(json.dumps(ae))
    # NDJSON: the metadata object on the first line, one row array per line after it
    ex_meta = {"datasetJSONVersion": "1.1.0", "name": "EX", "columns": [
        {"itemOID": "IT.EX.USUBJID", "name": "USUBJID", "label": "x", "dataType": "string"},
        {"itemOID": "IT.EX.EXDOSE", "name": "EXDOSE", "label": "x", "dataType": "float"}]}
    (tmp_path / "ex.ndjson").write_text("\n".join([json.dumps(ex_meta), json.dumps(["S-1", 3.0]), json.dumps(["S-2", None])]))
    (tmp_path / "notes.txt").write_text("ignored")
    out = read_sdtm(tmp_path)
    assert sorted(out) == ["AE", "DM", "EX"]
    assert out["EX"]["EXDOSE"].tolist()[0] == 3.0 and pd.isna(out["EX"]["EXDOSE"].iloc[1])
    assert out["DM"]["ARMNRS"].tolist() == [None, "X"]  # XPT blank -> missing
    assert str(out["DM"]["AGE"].dtype) == "float64" and pd.isna(out["DM"]["AGE"].iloc[1])
    assert out["AE"]["AESEQ"].tolist() == [1.0, 2.0]


def test_read_sdtm_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_sdtm(tmp_path / "nope")
    with pytest.raises(InputError, match="no SDTM datasets"):
        read_sdtm(tmp_path)
    (tmp_path / "dm.xpt").write_bytes(b"not an xpt file at all")
    (tmp_path / "ae.json").write_text("{ broken")
    with pytest.raises(InputError) as exc:
        read_sdtm(tmp_path)
    files = {Path(p.file).name for p in exc.value.problems}
    assert files == {"dm.xpt", "ae.json"}


@pytest.fixture(scope="module")
def fixture_result(core_spec):
    return build_adam(make_sdtm(), core_spec, SETTINGS)


def test_build_adam_on_fixture_conforms_to_spec(core_spec, fixture_result) -> None:
    res = fixture_result
    assert sorted(res.datasets) == ["ADRS", "ADSL", "ADTTE"]
    for name, df in res.datasets.items():
        ds = core_spec.dataset(name)
        assert list(df.columns) == ds.variable_names, name
        for var in ds.variables:
            if var.data_type == "date":
                assert str(df[var.name].dtype) == "datetime64[ns]", (name, var.name)
            elif var.data_type in ("integer", "float"):
                assert str(df[var.name].dtype) == "float64", (name, var.name)
            if var.codelist and var.codelist in core_spec.codelists:
                allowed = set(core_spec.codelists[var.codelist].values())
                used = set(df[var.name].dropna().astype(str).str.replace(r"\.0$", "", regex=True))
                assert used <= allowed, (name, var.name, used - allowed)
            if var.length and var.data_type == "text":
                assert df[var.name].dropna().str.len().max(skipna=True) <= var.length if df[var.name].notna().any() else True
        assert not [f for f in res.findings if f.rule in ("ADAM.SPEC.NOTDERIVED", "ADAM.SPEC.EXTRA")]
    adsl = res.datasets["ADSL"]
    assert adsl["USUBJID"].is_unique
    # every BDS subject is in ADSL
    for name in ("ADRS", "ADTTE"):
        assert set(res.datasets[name]["USUBJID"]) <= set(adsl["USUBJID"])


def test_conform_to_spec_reports_missing_and_extra(core_spec) -> None:
    from cdisc_pipe.adam import conform_to_spec

    ds = core_spec.dataset("ADTTE")
    df = pd.DataFrame({"USUBJID": ["A"], "AVAL": ["3"], "ADT": ["2023-01-02"], "MYVAR": [1], "__tmp": [0]})
    out, findings = conform_to_spec(df, ds)
    assert list(out.columns) == ds.variable_names
    assert out["AVAL"].iloc[0] == 3.0 and out["ADT"].iloc[0] == pd.Timestamp("2023-01-02")
    rules = {f.rule: f for f in findings}
    assert rules["ADAM.SPEC.EXTRA"].value == "MYVAR"
    assert sum(f.rule == "ADAM.SPEC.NOTDERIVED" for f in findings) == len(ds.variables) - 3


def test_missing_required_inputs_one_error_naming_all(core_spec) -> None:
    sdtm = make_sdtm()
    del sdtm["EX"]
    sdtm["DM"] = sdtm["DM"].drop(columns=["ARMCD", "RFSTDTC"])
    with pytest.raises(InputError) as exc:
        build_adam(sdtm, core_spec, SETTINGS)
    text = str(exc.value)
    assert len(exc.value.problems) == 2
    assert "SDTM dataset EX is missing; ADSL need(s) it" in text
    assert "ARMCD" in text and "RFSTDTC" in text


def test_missing_rs_skips_adrs_and_adtte_with_findings(core_spec) -> None:
    sdtm = make_sdtm()
    del sdtm["RS"]
    res = build_adam(sdtm, core_spec, SETTINGS)
    assert sorted(res.datasets) == ["ADSL"]
    skipped = {f.dataset: f.message for f in res.findings if f.rule == "ADAM.SKIPPED"}
    assert "RS" in skipped["ADRS"] and "ADRS" in skipped["ADTTE"]


def test_fixture_datasets_pass_the_transport_checks(core_spec, fixture_result) -> None:
    from cdisc_pipe.xpt import check_frame, conform_frame

    res = fixture_result
    for name, df in res.datasets.items():
        conformed, problems = conform_frame(df, core_spec.dataset(name), core_spec)
        assert problems == [], (name, [str(p) for p in problems][:5])
        assert check_frame(conformed, core_spec.dataset(name)) == [], name


@pytest.mark.skipif(not PILOT.is_dir(), reason="../shared reference package not present")
def test_cdisc_pilot_package_gives_clear_input_error(spec) -> None:
    sdtm = read_sdtm(PILOT)
    assert {"DM", "EX", "AE", "LB"} <= set(sdtm)
    with pytest.raises(InputError) as exc:
        build_adam(sdtm, spec, SETTINGS)
    problems = {p.entry: p.message for p in exc.value.problems}
    # the pilot's EX has no EXCAT (no CAR-T / lymphodepletion categories): ADSL cannot find the infusion
    assert problems == {"EX": "SDTM dataset EX lacks EXCAT; ADSL need(s) them"}


@pytest.mark.parametrize("case", ["no response records", "nobody infused", "unparseable dates", "month-only dates"])
def test_degenerate_inputs_build_without_tracebacks(core_spec, case: str) -> None:
    sdtm = make_sdtm()
    if case == "no response records":
        sdtm["RS"] = sdtm["RS"][sdtm["RS"]["RSTESTCD"] == "ECOG101"]
    elif case == "nobody infused":
        sdtm["EX"] = sdtm["EX"][sdtm["EX"]["EXCAT"] != "CAR-T"]
    elif case == "unparseable dates":
        sdtm["RS"] = sdtm["RS"].assign(RSDTC="UNK")
    else:
        sdtm["RS"] = sdtm["RS"].assign(RSDTC=sdtm["RS"]["RSDTC"].str[:7])
    res = build_adam(sdtm, core_spec, SETTINGS)
    assert not [f for f in res.findings if f.rule == "ADAM.SPEC.NOTDERIVED"]
    adsl, adrs, adtte = res.datasets["ADSL"], res.datasets["ADRS"], res.datasets["ADTTE"]
    assert len(adsl) == 9
    if case == "no response records":
        # every infused subject still has CBOR NE and RSP N; PFS censored at infusion (CNSR 1)
        cbor = adrs[adrs["PARAMCD"] == "CBOR"]
        assert len(cbor) == 8 and (cbor["AVALC"] == "NE").all()
        assert set(adtte.loc[adtte["PARAMCD"] == "PFS", "CNSR"]) == {1}
    elif case == "nobody infused":
        # only the apheresis-based PFS remains: censored at apheresis (CNSR 7 "not infused and
        # alive", day 1) except 1006,
        # who died on 2023-03-30: 11 + 31 + 28 + 30 = 100 days after apheresis -> event, AVAL 101
        assert (adsl["SAFFL"] == "N").all() and set(adtte["PARAMCD"]) == {"PFSAPH"}
        t = adtte.set_index("SUBJID")
        assert (t.loc["1006", "CNSR"], t.loc["1006", "AVAL"]) == (0, 101)
        others = t.drop(index="1006")
        assert (others["CNSR"] == 7).all() and (others["AVAL"] == 1).all()
        # response records are kept but not analysed
        assert adrs["ANL01FL"].isna().all()
    elif case == "unparseable dates":
        assert any(f.rule == "ADRS.ADT.MISSING" for f in res.findings)
        assert adrs.loc[adrs["PARAMCD"] == "OVR", "ADT"].isna().all()
    else:
        ovr = adrs[adrs["PARAMCD"] == "OVR"]
        assert (ovr["ADTF"] == "D").all() and (ovr["ADT"].dt.is_month_end).all()
