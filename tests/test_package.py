"""The eCTD module 5 package: layout, checksums, refusal of unvalidated or inconsistent studies."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cdisc_pipe.define import build_define, package, write_define
from cdisc_pipe.errors import InputError
from tests.test_define_support import tiny_spec, write_study


def report(out: Path, errors) -> None:
    (out / "reports").mkdir(parents=True, exist_ok=True)
    (out / "reports" / "validation.json").write_text(json.dumps({"summary": {"errors": errors, "warnings": 3}}))


@pytest.fixture()
def out(tmp_path):
    """An output root with SDTM and ADaM XPTs and their define.xml/define.html (no report yet)."""
    spec = tiny_spec(tmp_path / "specs")
    root = tmp_path / "out"
    sdtm, adam = write_study(root, spec)
    write_define(build_define(spec, sdtm, "Tabulation"), root / "sdtm")
    write_define(build_define(spec, adam, "Analysis"), root / "adam")
    return root


def messages(exc: pytest.ExceptionInfo) -> str:
    return "\n".join(str(p) for p in exc.value.problems)


def test_layout_and_checksums(out, tmp_path):
    report(out, 0)
    (out / "docs").mkdir()
    (out / "docs" / "acrf.pdf").write_bytes(b"%PDF-1.4 fake acrf")
    dest = tmp_path / "pkg"
    res = package(out, dest)
    assert res.study == "tiny01"
    sdtm = dest / "m5/datasets/tiny01/tabulations/sdtm"
    adam = dest / "m5/datasets/tiny01/analysis/adam/datasets"
    assert sorted(p.name for p in sdtm.iterdir()) == ["acrf.pdf", "ae.xpt", "define.html", "define.xml", "dm.xpt",
                                                      "lb.xpt", "suppae.xpt"]
    assert sorted(p.name for p in adam.iterdir()) == ["acrf.pdf", "adsl.xpt", "adtte.xpt", "define.html", "define.xml"]
    assert (sdtm / "dm.xpt").read_bytes() == (out / "sdtm" / "dm.xpt").read_bytes()
    # every file is in the checksum file with its SHA-256, in sha256sum format, and nothing else
    lines = res.checksum_file.read_text().splitlines()
    listed = {}
    for line in lines:
        digest, rel = line.split("  ", 1)
        listed[rel] = digest
    on_disk = sorted(p.relative_to(dest).as_posix() for p in (dest / "m5").rglob("*") if p.is_file())
    assert sorted(listed) == on_disk == res.files
    for rel, digest in listed.items():
        assert hashlib.sha256((dest / rel).read_bytes()).hexdigest() == digest
    # documents define.xml links to but nobody provided are reported, not invented
    assert "m5/datasets/tiny01/tabulations/sdtm/csdrg.pdf" in res.missing
    assert "m5/datasets/tiny01/analysis/adam/datasets/adrg.pdf" in res.missing
    assert "m5/datasets/tiny01/tabulations/sdtm/define2-1.xsl" in res.missing
    assert not list(dest.glob(".tmp-package-*"))


def test_rerun_replaces_a_previous_package(out, tmp_path):
    report(out, 0)
    dest = tmp_path / "pkg"
    first = package(out, dest)
    (out / "adam" / "adtte.xpt").unlink()
    (out / "adam" / "define.xml").unlink()
    with pytest.raises(InputError):
        package(out, dest)  # adam/ without define.xml
    assert (dest / first.files[0]).is_file()  # the refused run left the old package alone
    import shutil

    shutil.rmtree(out / "adam")
    second = package(out, dest)
    assert not (dest / "m5/datasets/tiny01/analysis").exists()
    assert len(second.files) < len(first.files)


@pytest.mark.parametrize("content,expected", [
    (None, "no validation report"),
    ({"summary": {"errors": 2}}, "validation found 2 error(s)"),
    ({"summary": {"warnings": 0}}, "no integer summary.errors"),
    ({"errors": 0}, "no integer summary.errors"),
    ("not json", "not readable JSON"),
    ({"summary": {"errors": 0, "rules_execution_error": 1}}, "failed to execute"),
])
def test_refuses_without_a_clean_validation_report(out, tmp_path, content, expected):
    if content is not None:
        (out / "reports").mkdir()
        text = content if isinstance(content, str) else json.dumps(content)
        (out / "reports" / "validation.json").write_text(text)
    dest = tmp_path / "pkg"
    with pytest.raises(InputError) as exc:
        package(out, dest)
    assert expected in messages(exc)
    assert not (dest / "m5").exists()


def test_refuses_invalid_or_inconsistent_define(out, tmp_path):
    report(out, 0)
    xml = (out / "sdtm" / "define.xml").read_text()
    (out / "sdtm" / "define.xml").write_text(xml.replace(' DataType="text"', "", 1))
    (out / "adam" / "adsl.xpt").unlink()
    with pytest.raises(InputError) as exc:
        package(out, tmp_path / "pkg")
    text = messages(exc)
    assert "schema" in text and "DataType" in text
    assert "adsl.xpt" in text  # define/data disagreement in the ADaM folder is reported too


def test_refuses_missing_sdtm_define_and_foreign_destination(out, tmp_path):
    report(out, 0)
    (out / "sdtm" / "define.xml").unlink()
    dest = tmp_path / "pkg"
    (dest / "m5").mkdir(parents=True)
    with pytest.raises(InputError) as exc:
        package(out, dest)
    text = messages(exc)
    assert "1736" in text and "not a cdisc-pipe package" in text


def test_codelist_values_do_not_block_packaging(out, tmp_path):
    """A value outside a codelist is the validation report's finding, not a define/XPT disagreement."""
    from cdisc_pipe.spec import load_specs
    from cdisc_pipe.xpt import write_datasets
    from tests.test_define_support import sdtm_frames

    report(out, 0)
    frames = sdtm_frames()
    frames["DM"].loc[0, "SEX"] = "U"
    write_datasets({"DM": frames["DM"]}, load_specs(tmp_path / "specs"), out / "sdtm", purpose="Tabulation",
                   write_json=False)
    res = package(out, tmp_path / "pkg")
    assert "m5/datasets/tiny01/tabulations/sdtm/dm.xpt" in res.files
