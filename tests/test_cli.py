"""CLI contract: help everywhere, exit codes, bad input as a clear message (never a traceback)."""

from __future__ import annotations

import pytest

from cdisc_pipe.cli import main

COMMANDS = [["run"], ["synth"], ["sdtm"], ["adam"], ["define"], ["validate"], ["package"], ["spec", "export"],
            ["spec", "import"]]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_everywhere(cmd, capsys):
    assert main(cmd + ["--help"]) == 0
    assert "usage: cdisc-pipe" in capsys.readouterr().out


def test_usage_error_exits_2(capsys):
    assert main(["sdtm", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bogus" in err and "Traceback" not in err


def test_missing_specs_folder_exits_2_with_hint(tmp_path, capsys):
    code = main(["sdtm", "--specs", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "specs folder not found" in err and "--specs" in err and "Traceback" not in err
    log = (tmp_path / "o" / "logs" / "cdisc-pipe-sdtm.log").read_text()
    assert log.startswith("NOTE:") or "ERROR: " in log


def test_adam_without_sdtm_folder_exits_2(tmp_path, capsys):
    assert main(["adam", "--out", str(tmp_path), "-q"]) == 2
    assert "SDTM folder not found" in capsys.readouterr().err


def test_spec_export_import_round_trip(tmp_path, root):
    from cdisc_pipe.spec import load_specs

    assert main(["spec", "export", "--xlsx", str(tmp_path / "s.xlsx"), "-q"]) == 0
    assert main(["spec", "import", "--xlsx", str(tmp_path / "s.xlsx"), "--specs", str(tmp_path / "specs"), "-q"]) == 0
    assert load_specs(tmp_path / "specs").model_dump() == load_specs(root / "specs").model_dump()


def test_spec_import_of_a_non_workbook_exits_2(tmp_path, capsys):
    bad = tmp_path / "x.xlsx"
    bad.write_text("not a workbook")
    assert main(["spec", "import", "--xlsx", str(bad), "--specs", str(tmp_path / "s"), "-q"]) == 2
    assert "cannot read workbook" in capsys.readouterr().err


def test_synth_rejects_zero_subjects(tmp_path, capsys):
    assert main(["synth", "--subjects", "0", "--out", str(tmp_path), "-q"]) == 2
    assert "--subjects must be at least 1" in capsys.readouterr().err


def test_adam_on_cdisc_pilot_stops_with_a_clear_message(shared, tmp_path, capsys):
    """Another study's SDTM (CDISC's pilot package): ADaM needs study conventions the pilot lacks
    (e.g. EXCAT); the command says which dataset lacks which variable and exits 2, no traceback."""
    pilot = shared / "reference" / "sdtm-msg-2.0-cdiscpilot01"
    code = main(["adam", "--sdtm", str(pilot), "--out", str(tmp_path), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "ex.xpt" in err and "EXCAT" in err and "Traceback" not in err
    assert not (tmp_path / "adam").exists()  # nothing half-written


def test_validate_cdisc_pilot_without_spec(shared, tmp_path, capsys):
    pilot = shared / "reference" / "sdtm-msg-2.0-cdiscpilot01"
    code = main(["validate", "--sdtm", str(pilot), "--no-spec", "--out", str(tmp_path), "-q"])
    assert code == 1  # the pilot package has Error-level findings (reviewed in docs/VALIDATION.md)
    import json

    report = json.loads((tmp_path / "reports" / "validation.json").read_text())
    assert report["summary"]["errors"] > 0 and report["summary"]["rules_execution_error"] == 0
    assert (tmp_path / "reports" / "validation.html").is_file() and (tmp_path / "reports" / "validation.xlsx").is_file()


def test_package_of_the_bundled_run(bundled_run, tmp_path):
    import shutil

    out = tmp_path / "outputs"  # a copy: ``package`` writes its log into --out, and the session's run is shared
    shutil.copytree(bundled_run, out)
    dest = tmp_path / "pkg"
    assert main(["package", "--out", str(out), "--dest", str(dest), "-q"]) == 0
    sdtm = dest / "m5" / "datasets" / "bcmacart01" / "tabulations" / "sdtm"
    adam = dest / "m5" / "datasets" / "bcmacart01" / "analysis" / "adam" / "datasets"
    assert (sdtm / "dm.xpt").is_file() and (sdtm / "define.xml").is_file()
    assert (adam / "adsl.xpt").is_file() and (adam / "define.xml").is_file()
    assert list(dest.rglob("checksums.sha256"))


def test_log_lists_every_error_and_groups_warnings():
    import pandas as pd

    from cdisc_pipe.summary import _group_lines

    findings = pd.DataFrame([
        {"severity": "Error", "rule": "R.ERR", "dataset": "DM", "usubjid": "S-1", "variable": "AGE", "value": "-5",
         "message": "AGE below the plausible range", "explanation": None},
        {"severity": "Error", "rule": "R.ERR", "dataset": "DM", "usubjid": "S-2", "variable": "AGE", "value": "-1",
         "message": "AGE below the plausible range", "explanation": None},
        {"severity": "Warning", "rule": "R.WARN", "dataset": "LB", "usubjid": "S-1", "variable": None, "value": None,
         "message": "unit changes", "explanation": "explained by the lab"},
        {"severity": "Warning", "rule": "R.WARN", "dataset": "LB", "usubjid": "S-3", "variable": None, "value": None,
         "message": "unit changes", "explanation": None},
    ])
    lines = _group_lines(findings)
    errors = [t for k, t in lines if k == "ERROR"]
    # each Error on its own line (grep ERROR: finds both subjects); the Warnings on one line, 1 of 2 explained
    assert len(errors) == 2 and "S-1" in errors[0] and "value -5" in errors[0] and "S-2" in errors[1]
    assert [(k, t) for k, t in lines if "R.WARN" in t] == [
        ("WARNING", "validation Warning R.WARN (LB): 2 finding(s), 1 explained: unit changes")]


def test_run_prints_a_summary_and_the_log_has_a_header(bundled_run, tmp_path, capsys):
    import shutil

    from cdisc_pipe.cli import main

    out = tmp_path / "outputs"
    shutil.copytree(bundled_run, out)
    assert main(["run", "--out", str(out)]) == 0  # every stage reused: fast
    text = capsys.readouterr().out
    assert text.startswith("cdisc-pipe run: finished (exit 0)")
    # the real paths, not outputs/...: the report of THIS run
    assert f"report:   {out.resolve() / 'reports' / 'validation.html'}" in text
    assert f"log:      {out.resolve() / 'logs' / 'cdisc-pipe-run.log'}" in text
    assert "SDTM " in text and "ADaM " in text and "validation: 0 Error(s)" in text
    log = (out / "logs" / "cdisc-pipe-run.log").read_text()
    head = log.splitlines()[:12]
    assert head[0].startswith("NOTE: cdisc-pipe ") and "pandas" in head[0]
    assert any(line == f"NOTE: command line: cdisc-pipe run --out {out}" for line in head)
    assert any(line.startswith("NOTE: input specs: SHA-256 ") for line in head)


def test_out_naming_a_file_exits_2_and_the_log_goes_to_stderr(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("not a folder")
    assert main(["run", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "--out names a file, not a folder" in err and "internal error" not in err
    assert "the log follows" in err  # the log is printed, not lost
    assert f"ERROR: {target}, --out: --out names a file, not a folder" in err


def test_out_that_cannot_be_written_exits_2(tmp_path, capsys, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):  # permission bits do not bind root: simulate a read-only folder
        raise PermissionError(13, "Permission denied", str(kwargs.get("dir")))

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    assert main(["run", "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "the output folder cannot be written: Permission denied" in err and "internal error" not in err


def test_an_os_error_during_a_run_is_exit_2_not_a_bug(tmp_path, capsys, monkeypatch):
    from cdisc_pipe import pipeline

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "out" / "sdtm" / "dm.xpt"))

    monkeypatch.setattr(pipeline, "run_all", full_disk)
    assert main(["run", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot use" in err and "No space left on device" in err and "This is a bug" not in err
    log = (tmp_path / "out" / "logs" / "cdisc-pipe-run.log").read_text()
    assert "Traceback" in log  # the traceback is kept for the curious


def test_run_with_a_relative_out_folder(tmp_path, monkeypatch):
    """The README's quick start runs with the default, relative --out (outputs): every stage,
    the reviewer's guides included, must accept it (a relative/absolute path mix was a crash)."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--out", "outputs", "-q"]) == 0
    assert (tmp_path / "outputs" / "sdtm" / "csdrg.pdf").is_file()
    assert "reviewer's guides: sdtm/csdrg.pdf" in (tmp_path / "outputs" / "logs" / "cdisc-pipe-run.log").read_text()


def test_console_script_ends_with_mains_code_and_flushed_output(tmp_path):
    """``console`` (the ``cdisc-pipe`` script) ends the process with ``os._exit`` after ``main``:
    the exit code and everything printed, to a pipe too (block-buffered), come out as they would."""
    import subprocess
    import sys

    def console(*args: str) -> subprocess.CompletedProcess:
        code = f"import sys; sys.argv = ['cdisc-pipe', *{list(args)!r}]; from cdisc_pipe.cli import console; console()"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    version = console("--version")
    assert version.returncode == 0 and version.stdout.startswith("cdisc-pipe ")
    bad = console("run", "--raw", str(tmp_path / "missing"), "--out", str(tmp_path / "out"))
    assert bad.returncode == 2
    assert "raw export not found" in bad.stderr + bad.stdout and "exit 2" in bad.stdout
    assert (tmp_path / "out" / "logs" / "cdisc-pipe-run.log").is_file()
