"""read_sdtm and build_adam: reading folders (text in any single-byte encoding, SDTMIG 3.1.x
conventions), the input check, skipping, spec conformance, and the CDISC pilot SDTM packages
(another study) read in full or giving a clear InputError, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

from cdisc_pipe.adam import build_adam, read_sdtm
from cdisc_pipe.adam.derive import suppqual_wide
from cdisc_pipe.errors import InputError
from cdisc_pipe.paths import project_root
from cdisc_pipe.runlog import RunLog
from cdisc_pipe.spec.load import load_specs
from tests.test_adam_adsl import SETTINGS, make_sdtm
from tests.test_xpt import xpt_with_text

PILOT = project_root().parent / "shared" / "reference" / "sdtm-msg-2.0-cdiscpilot01"


@pytest.fixture(scope="module")
def spec():
    return load_specs(project_root() / "specs")


CORE = ("ADSL", "ADRS", "ADTTE")


@pytest.fixture(scope="module")
def core_spec(spec):
    """The study spec restricted to the datasets built in this module (ADSL, ADRS, ADTTE)."""
    return spec.model_copy(update={"datasets": {k: v for k, v in spec.datasets.items()
                                                if v.purpose == "Tabulation" or k in CORE}})


@pytest.fixture(scope="module")
def core_settings(tmp_path_factory) -> Path:
    """A settings folder whose ``plans`` folder beside it holds the study's plans of ADSL, ADRS, ADTTE."""
    root = tmp_path_factory.mktemp("core")
    shutil.copytree(SETTINGS, root / "settings")
    (root / "plans").mkdir()
    for name in CORE:
        shutil.copy(SETTINGS.parent / "plans" / f"{name.lower()}.yaml", root / "plans")
    return root / "settings"


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
def fixture_result(core_spec, core_settings):
    return build_adam(make_sdtm(), core_spec, core_settings)


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
            if var.codelist and var.codelist in core_spec.codelists and not core_spec.codelists[var.codelist].dictionary:
                # (an external dictionary such as ISO 3166 lists no terms to compare with)
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


def test_missing_required_inputs_one_error_naming_all(core_spec, core_settings) -> None:
    sdtm = make_sdtm()
    del sdtm["EX"]
    sdtm["DM"] = sdtm["DM"].drop(columns=["ARMCD", "RFICDTC"])
    with pytest.raises(InputError) as exc:
        build_adam(sdtm, core_spec, core_settings)
    problems = {p.entry: p for p in exc.value.problems}
    assert sorted(problems) == ["DM", "EX"]  # every gap in one error, before anything is derived
    assert problems["EX"].message == "SDTM dataset EX is missing; ADSL need(s) it"
    assert problems["DM"].file == "dm.xpt" and set(problems["DM"].column.split(", ")) == {"ARMCD", "RFICDTC"}


def test_missing_rs_skips_adrs_and_adtte_with_findings(core_spec, core_settings) -> None:
    # the ADRS plan lists RS in skip_if_missing; ADTTE reads ADRS, so it is skipped in turn
    sdtm = make_sdtm()
    del sdtm["RS"]
    res = build_adam(sdtm, core_spec, core_settings)
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
    """The bundled study's plans on another study's SDTM: every gap named at once, nothing derived."""
    sdtm = read_sdtm(PILOT)
    assert {"DM", "EX", "AE", "LB"} <= set(sdtm)
    with pytest.raises(InputError) as exc:
        build_adam(sdtm, spec, SETTINGS)
    problems = {p.entry: p for p in exc.value.problems}
    # the pilot's EX has no EXCAT (no CAR-T / lymphodepletion categories): ADSL cannot find the infusion
    assert "EXCAT" in problems["EX"].column.split(", ")
    assert problems["EX"].message.startswith("SDTM dataset EX lacks ")
    assert "ADSL" in problems["EX"].message


@pytest.mark.parametrize("case", ["no response records", "nobody infused", "unparseable dates", "month-only dates"])
def test_degenerate_inputs_build_without_tracebacks(core_spec, core_settings, case: str) -> None:
    sdtm = make_sdtm()
    if case == "no response records":
        sdtm["RS"] = sdtm["RS"][sdtm["RS"]["RSTESTCD"] == "ECOG101"]
    elif case == "nobody infused":
        sdtm["EX"] = sdtm["EX"][sdtm["EX"]["EXCAT"] != "CAR-T"]
    elif case == "unparseable dates":
        sdtm["RS"] = sdtm["RS"].assign(RSDTC="UNK")
    else:
        sdtm["RS"] = sdtm["RS"].assign(RSDTC=sdtm["RS"]["RSDTC"].str[:7])
    res = build_adam(sdtm, core_spec, core_settings)
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


# ------------------------------------------------------------------ another sponsor's SDTM: encodings, 3.1.x conventions

PILOT01 = project_root().parent / "shared" / "reference" / "cdiscpilot01" / "sdtm"


@pytest.fixture
def cp1252_sdtm(tmp_path: Path) -> Path:
    """ts.xpt with a cp1252 apostrophe (0x92) in its second record; dm.xpt plain ASCII."""
    folder = tmp_path / "sdtm"
    folder.mkdir()
    xpt_with_text(folder / "ts.xpt", [b"plain", b"Alzheimer\x92s Disease"])
    dm = pd.DataFrame({"STUDYID": ["S"], "USUBJID": ["S-1"]})
    pyreadstat.write_xport(dm, str(folder / "dm.xpt"), file_format_version=5, table_name="DM")
    return folder


def test_read_sdtm_reports_a_detected_encoding_in_the_log(cp1252_sdtm: Path) -> None:
    log = RunLog("adam")
    sdtm = read_sdtm(cp1252_sdtm, log=log)
    assert list(sdtm["TS"]["TSVAL"]) == ["plain", "Alzheimer’s Disease"]
    (note,) = log.lines  # one NOTE, for ts.xpt only (dm.xpt is plain UTF-8)
    assert note.startswith("NOTE: ts.xpt: character data are not valid utf-8 (TSVAL row 2: byte 0x92)")
    assert "read as cp1252 (detected)" in note


def test_read_sdtm_with_forced_latin1(cp1252_sdtm: Path) -> None:
    log = RunLog("adam")
    sdtm = read_sdtm(cp1252_sdtm, encoding="latin-1", log=log)
    assert list(sdtm["TS"]["TSVAL"]) == ["plain", "Alzheimer\x92s Disease"]
    assert log.lines == ["NOTE: ts.xpt: read as latin-1 (--encoding); 1 distinct non-ASCII value(s), "
                         "e.g. TSVAL 'Alzheimer\\x92s Disease'"]


@pytest.mark.parametrize("command", [["adam"], ["validate", "--no-spec"]])
def test_forced_encoding_that_fails_exits_2_naming_file_variable_row(cp1252_sdtm: Path, tmp_path: Path, capsys,
                                                                     command: list[str]) -> None:
    from cdisc_pipe.cli import main

    code = main(command + ["--sdtm", str(cp1252_sdtm), "--out", str(tmp_path / "out"), "-q", "--encoding", "utf-8"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{cp1252_sdtm / 'ts.xpt'}, row 2, column TSVAL: byte 0x92" in err and "not valid utf-8" in err
    assert "Pass another --encoding" in err and "Traceback" not in err


def test_validate_reports_the_encoding_of_each_file_in_its_log(cp1252_sdtm: Path, tmp_path: Path) -> None:
    from cdisc_pipe.cli import main

    out = tmp_path / "out"
    assert main(["validate", "--sdtm", str(cp1252_sdtm), "--no-spec", "--out", str(out), "-q", "--encoding", "cp1252"]) < 2
    log = (out / "logs" / "cdisc-pipe-validate.log").read_text(encoding="utf-8")
    assert "NOTE: ts.xpt: read as cp1252 (--encoding); 1 distinct non-ASCII value(s), e.g. TSVAL 'Alzheimer’s Disease'" in log


def test_idvarval_leading_blanks_are_kept_and_still_link(tmp_path: Path) -> None:
    """SDTMIG 3.1.x packages wrote IDVARVAL right-aligned (put(AESEQ, 4.) -> "   2"). The reader
    keeps the value as stored (it does not strip one variable's leading blanks by its name); the
    link to --SEQ is numeric, so the qualifier still reaches AESEQ 2. All-blank -> missing."""
    ae = pd.DataFrame({"STUDYID": ["S", "S"], "USUBJID": ["S-1", "S-1"], "AESEQ": [1.0, 2.0]})
    supp = pd.DataFrame({"STUDYID": ["S", "S"], "RDOMAIN": ["AE", "AE"], "USUBJID": ["S-1", "S-1"],
                         "IDVAR": ["AESEQ", ""], "IDVARVAL": ["   2", "    "], "QNAM": ["AEDLT", "AEX"],
                         "QVAL": ["Y  ", "1"]})
    pyreadstat.write_xport(ae, str(tmp_path / "ae.xpt"), file_format_version=5, table_name="AE")
    pyreadstat.write_xport(supp, str(tmp_path / "suppae.xpt"), file_format_version=5, table_name="SUPPAE")
    sdtm = read_sdtm(tmp_path)
    assert list(sdtm["SUPPAE"]["IDVARVAL"]) == ["   2", None] and list(sdtm["SUPPAE"]["IDVAR"]) == ["AESEQ", None]
    assert list(sdtm["SUPPAE"]["QVAL"]) == ["Y", "1"]  # trailing blanks stripped
    wide = suppqual_wide(sdtm["AE"], sdtm["SUPPAE"], ["AEDLT"])
    assert list(wide["AEDLT"]) == [None, "Y"]


@pytest.mark.skipif(not PILOT01.is_dir(), reason="../shared/reference/cdiscpilot01 not present")
def test_cdisc_pilot01_reads_every_file_and_reports_cp1252_for_ts() -> None:
    log = RunLog("adam")
    sdtm = read_sdtm(PILOT01, log=log)
    assert set(sdtm) == {p.stem.upper() for p in PILOT01.glob("*.xpt")}
    (note,) = log.lines
    assert note.startswith("NOTE: ts.xpt: character data are not valid utf-8") and "read as cp1252 (detected)" in note
    assert sdtm["TS"]["TSVAL"].str.contains("Alzheimer’s Disease", regex=False).sum() == 3
    assert sdtm["RELREC"]["IDVARVAL"].iloc[0] == "   2"  # 3.1.x right-aligned IDVARVAL, kept as stored
