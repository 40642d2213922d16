"""define.xml <-> XPT consistency: every dataset and variable, both ways, and codelist values."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from cdisc_pipe.define import build_define, check_define_against_data, write_define
from cdisc_pipe.errors import InputError
from cdisc_pipe.xpt import write_datasets
from tests.test_define_support import adam_frames, sdtm_frames, tiny_spec, write_study


@pytest.fixture()
def study(tmp_path):
    """The tiny study written with its define.xml in both folders: (spec, sdtm, adam, out root)."""
    spec = tiny_spec(tmp_path / "specs")
    out = tmp_path / "out"
    sdtm, adam = write_study(out, spec)
    write_define(build_define(spec, sdtm, "Tabulation"), out / "sdtm")
    write_define(build_define(spec, adam, "Analysis"), out / "adam")
    return spec, sdtm, adam, out


def rules(findings):
    return sorted({(f.rule, f.dataset, f.variable) for f in findings})


def test_define_matches_every_dataset_and_variable(study):
    """Every XPT dataset and every variable (name, label, type, length, order) agrees with define.xml."""
    spec, sdtm, adam, out = study
    for sub in ("sdtm", "adam"):
        assert check_define_against_data(out / sub / "define.xml", out / sub) == []
    # and the check really looked at all of them: counting what it compared
    from cdisc_pipe.define import read_define

    d = read_define((out / "sdtm" / "define.xml").read_bytes())
    assert sorted(d.groups) == sorted(w.name for w in sdtm)
    assert sum(len(g.refs) for g in d.groups.values()) == sum(len(w.columns) for w in sdtm)


def test_mismatches_are_found(study):
    spec, sdtm, _, out = study
    dm = next(w for w in sdtm if w.name == "DM")
    cols = list(dm.columns)
    cols[4], cols[5] = cols[5], cols[4]  # define says AGEU before AGE
    cols = [dataclasses.replace(c, order=i) for i, c in enumerate(cols, start=1)]
    cols = [dataclasses.replace(c, length=3) if c.name == "SEX" else c for c in cols]
    cols = [dataclasses.replace(c, label="Sex of the Subject") if c.name == "SEX" else c for c in cols]
    cols = [c for c in cols if c.name != "ARMNRS"]  # in the file, not in define
    wrong = dataclasses.replace(dm, columns=tuple(cols), label="Demography")
    others = [w for w in sdtm if w.name not in ("DM", "AE")]  # ae.xpt is then not in define
    xml = build_define(spec, [wrong] + others, "Tabulation").xml
    found = rules(check_define_against_data(xml, out / "sdtm"))
    assert ("DEFINE.DATA.ORDER", "DM", "AGE") in found and ("DEFINE.DATA.ORDER", "DM", "AGEU") in found
    assert ("DEFINE.DATA.LENGTH", "DM", "SEX") in found
    assert ("DEFINE.DATA.LABEL", "DM", "SEX") in found
    assert ("DEFINE.DATA.VARNOTINDEFINE", "DM", "ARMNRS") in found
    assert ("DEFINE.DATA.DSLABEL", "DM", None) in found
    assert ("DEFINE.DATA.NOTINDEFINE", "AE", None) in found
    assert not any(r[1] in ("LB", "SUPPAE") for r in found)  # the untouched datasets still agree


def test_type_mismatch_and_missing_file(study):
    spec, sdtm, _, out = study
    text = (out / "sdtm" / "define.xml").read_text()
    text = text.replace('<ItemDef OID="IT.DM.AGE" Name="AGE" DataType="integer"', '<ItemDef OID="IT.DM.AGE" Name="AGE" DataType="text"')
    (out / "sdtm" / "lb.xpt").unlink()
    found = rules(check_define_against_data(text.encode(), out / "sdtm"))
    assert ("DEFINE.DATA.TYPE", "DM", "AGE") in found
    assert ("DEFINE.DATA.NOFILE", "LB", None) in found


def test_variable_in_define_not_in_data(study):
    spec, sdtm, _, out = study
    frames = sdtm_frames()
    frames["AE"] = frames["AE"].drop(columns=["AEENRF"])  # Perm variable dropped by the writer
    write_datasets({"AE": frames["AE"]}, spec, out / "sdtm", purpose="Tabulation", write_json=False)
    found = rules(check_define_against_data(out / "sdtm" / "define.xml", out / "sdtm"))
    assert found == [("DEFINE.DATA.VARNOTINDATA", "AE", "AEENRF")]


def test_codelist_values_used_in_the_data(study):
    spec, _, _, out = study
    frames = sdtm_frames()
    frames["DM"].loc[1, "SEX"] = "U"  # not in CL.SEX (F, M)
    frames["AE"].loc[:, "AESER"] = ["N", "U", "U"]  # U is CT but not in this subset
    frames["SUPPAE"].loc[1, "QVAL"] = "P"  # value-level CL.NY where QNAM = AEDLT
    frames["AE"].loc[0, "AEDECOD"] = "Anything goes"  # MedDRA: external, not checked
    write_datasets(frames, spec, out / "sdtm", purpose="Tabulation", write_json=False)
    findings = [f for f in check_define_against_data(out / "sdtm" / "define.xml", out / "sdtm")
                if f.rule == "DEFINE.DATA.CTVALUE"]
    got = sorted((f.dataset, f.variable, f.value, f.extra["records"], f.severity) for f in findings)
    # without CT, extensibility of CDISC codelists is unknown: warnings
    assert got == [("AE", "AESER", "U", 2, "Warning"), ("DM", "SEX", "U", 1, "Warning"),
                   ("SUPPAE", "QVAL", "P", 1, "Warning")]
    qval = next(f for f in findings if f.variable == "QVAL")
    assert "WC.SUPPAE.QNAM.EQ.AEDLT" in qval.message
    without = check_define_against_data(out / "sdtm" / "define.xml", out / "sdtm", check_values=False)
    assert not any(f.rule == "DEFINE.DATA.CTVALUE" for f in without)


def test_value_level_codelist_only_checks_selected_records(study):
    """QVAL values of another QNAM are outside the AEDLT where clause and not checked against CL.NY."""
    spec, _, _, out = study
    frames = sdtm_frames()
    extra = frames["SUPPAE"].iloc[[0]].assign(QNAM="AETOXSC", QLABEL="Grading scale", QVAL="ASTCT 2019")
    frames["SUPPAE"] = pd.concat([frames["SUPPAE"], extra], ignore_index=True)
    write_datasets({"SUPPAE": frames["SUPPAE"]}, spec, out / "sdtm", purpose="Tabulation", write_json=False)
    # QVAL got longer (10): rebuild the define from what was written, then compare
    from cdisc_pipe.define import written_from_folder

    write_define(build_define(spec, written_from_folder(out / "sdtm", "Tabulation"), "Tabulation"), out / "sdtm")
    assert check_define_against_data(out / "sdtm" / "define.xml", out / "sdtm") == []


def test_numeric_codelist_values(tmp_path):
    """A numeric variable with a codelist: 1.0 in the data matches CodedValue "1"; 3 does not."""
    from tests.test_define_support import FILES

    adtte = FILES["adam/adtte.yaml"].replace(
        "{name: CNSR, label: Censor, data_type: integer, core: Cond,",
        "{name: CNSR, label: Censor, data_type: integer, core: Cond, codelist: CL.CNSR,")
    cnsr = """
        oid: CL.CNSR
        name: Censor
        data_type: integer
        terms:
          - {submission_value: "0", decode: Event}
          - {submission_value: "1", decode: Censored}
    """
    spec = tiny_spec(tmp_path / "specs", {"adam/adtte.yaml": adtte, "codelists/cnsr.yaml": cnsr})
    frames = adam_frames()
    frames["ADTTE"].loc[3, "CNSR"] = 3.0
    out = tmp_path / "out"
    adam = write_datasets(frames, spec, out / "adam", purpose="Analysis", write_json=False)
    res = build_define(spec, adam, "Analysis")
    assert not any("does not match the DataType" in p.message for p in res.problems)
    write_define(res, out / "adam")
    found = [(f.variable, f.value, f.severity)
             for f in check_define_against_data(out / "adam" / "define.xml", out / "adam")]
    assert found == [("CNSR", "3", "Error")]  # a sponsor list should be complete: Error
    # the same list declared as text while CNSR is an integer is a spec problem
    text_cl = tiny_spec(tmp_path / "specs2", {"adam/adtte.yaml": adtte,
                                              "codelists/cnsr.yaml": cnsr.replace("data_type: integer", "data_type: text")})
    problems = build_define(text_cl, adam, "Analysis").problems
    assert [(p.entry, p.value) for p in problems if "does not match the DataType" in p.message] == [("CL.CNSR", "integer")]


def test_damaged_inputs(study, tmp_path):
    _, _, _, out = study
    with pytest.raises(InputError):
        check_define_against_data(b"<not xml", out / "sdtm")
    (out / "sdtm" / "dm.xpt").write_bytes(b"garbage")
    found = rules(check_define_against_data(out / "sdtm" / "define.xml", out / "sdtm"))
    assert ("DEFINE.DATA.UNREADABLE", "DM", None) in found


def test_bundled_study_outputs(bundled_run):
    """On the bundled study's run, every dataset and variable of its XPTs agrees
    with define.xml (names, labels, types, lengths, order, files).  Codelist values used but not in
    the codelists (DEFINE.DATA.CTVALUE) are data/spec findings for the validation report, not
    define/XPT disagreements, so they are not asserted here."""
    found = []
    ran = False
    for sub in ("sdtm", "adam"):
        folder = bundled_run / sub
        assert (folder / "define.xml").is_file()
        ran = True
        found += check_define_against_data(folder / "define.xml", folder, check_values=False)
    assert ran
    assert [f"{f.rule} {f.dataset}.{f.variable}: {f.message}" for f in found if f.severity == "Error"] == []


def test_cdisc_pilot_package(shared):
    """CDISC's SDTM-MSG 2.0 pilot: its metadata agree with its XPTs; the checker finds the pilot's
    own known inconsistencies (checked by hand in its define.xml) and nothing else."""
    folder = shared / "reference" / "sdtm-msg-2.0-cdiscpilot01"
    found = check_define_against_data(folder / "define.xml", folder)
    assert not any(f.rule in ("DEFINE.DATA.ORDER", "DEFINE.DATA.LABEL", "DEFINE.DATA.TYPE", "DEFINE.DATA.LENGTH",
                              "DEFINE.DATA.VARNOTINDEFINE", "DEFINE.DATA.VARNOTINDATA") for f in found), found
    got = {(f.rule, f.dataset, f.variable, f.value) for f in found}
    # TS SEXPOP = BOTH while CL.SEX lists F and M only
    assert ("DEFINE.DATA.CTVALUE", "TS", "TSVAL", "BOTH") in got
    # QSPH item 10 answers "Not at all" but the codelist says "Not difficult at all"
    assert ("DEFINE.DATA.CTVALUE", "QSPH", "QSORRES", "Not at all") in got
    # FT is described but ft.xpt is not in the package
    assert ("DEFINE.DATA.NOFILE", "FT", None, None) in got
    # DSDECOD's value list is split by DSSCAT NE "" / EQ "": missing DSSCAT is "", so no false finding
    assert not any(f.variable == "DSDECOD" for f in found)
    assert len(got) == 9


def test_command_line_check(study, capsys):
    from cdisc_pipe.define.__main__ import main

    _, _, _, out = study
    assert main(["check", str(out / "sdtm"), str(out / "adam")]) == 0
    (out / "adam" / "adtte.xpt").unlink()
    assert main(["check", str(out / "adam")]) == 1
    assert "DEFINE.DATA.NOFILE ADTTE" in capsys.readouterr().out
    assert main(["check", str(out / "nowhere")]) == 2


def test_codelist_value_severity_follows_extensibility(study, shared):
    """With the CT files: NY and SEX are non-extensible (Error); LBTESTCD is extensible (Warning)."""
    spec, _, _, out = study
    frames = sdtm_frames()
    frames["DM"].loc[1, "SEX"] = "U"
    frames["LB"].loc[0, "LBTESTCD"] = "NEWTEST"
    frames["SUPPAE"].loc[1, "QVAL"] = "P"
    write_datasets(frames, spec, out / "sdtm", purpose="Tabulation", write_json=False)
    found = check_define_against_data(out / "sdtm" / "define.xml", out / "sdtm", ct_dir=shared / "ct")
    got = sorted((f.variable, f.value, f.severity) for f in found if f.rule == "DEFINE.DATA.CTVALUE")
    assert got == [("LBTESTCD", "NEWTEST", "Warning"), ("QVAL", "P", "Error"), ("SEX", "U", "Error")]
    assert "non-extensible codelist CL.SEX" in next(f.message for f in found if f.variable == "SEX")


def test_frames_already_read_give_the_same_findings(shared):
    """Validation passes the frames it has read (``frames=``): same findings as reading the files,
    value-level where clauses included, and the values really come from the frames."""
    from cdisc_pipe.validate.data import read_xpt_with_meta

    folder = shared / "reference" / "sdtm-msg-2.0-cdiscpilot01"
    frames = {p.stem.upper(): read_xpt_with_meta(p)[0] for p in sorted(folder.glob("*.xpt"))}
    key = lambda fs: [(f.rule, f.severity, f.dataset, f.variable, f.value, f.message, f.extra) for f in fs]  # noqa: E731
    from_files = check_define_against_data(folder / "define.xml", folder, ct_dir=shared / "ct")
    from_frames = check_define_against_data(folder / "define.xml", folder, ct_dir=shared / "ct", frames=frames)
    assert key(from_frames) == key(from_files) and len(from_files) == 9
    # a value changed in the frame only is what the check sees: 3 DM records with SEX "X"
    dm = frames["DM"].copy()
    dm.loc[dm.index[:3], "SEX"] = "X"
    found = check_define_against_data(folder / "define.xml", folder, frames={**frames, "DM": dm})
    sex = [(f.value, f.extra.get("records")) for f in found if f.rule == "DEFINE.DATA.CTVALUE" and f.variable == "SEX"]
    assert sex == [("X", 3)]
