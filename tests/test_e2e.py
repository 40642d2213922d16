"""End to end on the bundled study: every stage, the output layout, the manifest, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

from cdisc_pipe.cli import main
from cdisc_pipe.manifest import file_table, sha256_file

SDTM = ["dm", "ex", "ae", "lb", "rs", "pc", "pp", "ts", "ta", "te", "tv", "ti", "se", "sv", "ds", "cm", "mh",
        "pr", "vs", "pe", "fa", "relrec", "suppae", "suppdm"]
ADAM = ["adsl", "adrs", "adtte", "adpc", "adae", "adlb", "adpp", "adex"]


def test_layout(bundled_run: Path):
    for sub, names in (("sdtm", SDTM), ("adam", ADAM)):
        for name in names:
            assert (bundled_run / sub / f"{name}.xpt").is_file(), f"{sub}/{name}.xpt missing"
            assert (bundled_run / sub / f"{name}.json").is_file(), f"{sub}/{name}.json missing"
        assert (bundled_run / sub / "define.xml").is_file()
        assert (bundled_run / sub / "define.html").is_file()
    for ext in ("xlsx", "html", "json"):
        assert (bundled_run / "reports" / f"validation.{ext}").is_file()
    assert (bundled_run / "logs" / "cdisc-pipe-run.log").is_file()
    assert not [p for p in bundled_run.iterdir() if p.name.startswith((".staging", ".old"))]


def test_manifest_hashes_every_output(bundled_run: Path):
    manifest = json.loads((bundled_run / "manifest.json").read_text())
    assert manifest["study"]["studyid"] == "BCMACART01"
    assert {"raw", "specs", "mappings"} <= set(manifest["inputs"])
    for rel, entry in manifest["outputs"].items():
        assert sha256_file(bundled_run / rel) == entry["sha256"], rel
    assert manifest["outputs"]["sdtm/dm.xpt"]["records"] == 18
    assert set(manifest["stages"]) == {"sdtm", "adam", "validate"}


def test_rerun_is_byte_identical_and_reuses_unchanged_stages(bundled_run: Path, tmp_path: Path):
    other = tmp_path / "again"
    assert main(["run", "--out", str(other), "-q"]) == 0
    first = {k: v for k, v in file_table(bundled_run).items() if not k.startswith(("logs/", "reports/_previous"))}
    second = {k: v for k, v in file_table(other).items() if not k.startswith(("logs/", "reports/_previous"))}
    assert first.keys() == second.keys()
    differing = [k for k in first if first[k] != second[k]]
    assert differing == []
    # A second run into the same root finds nothing changed and says so in the log.
    assert main(["run", "--out", str(other), "-q"]) == 0
    log = (other / "logs" / "cdisc-pipe-run.log").read_text()
    assert "SDTM unchanged since the last run" in log and "ADaM unchanged since the last run" in log
    assert (other / "manifest.json").read_bytes() == (bundled_run / "manifest.json").read_bytes()


def test_a_study_without_adam_specs_runs_sdtm_only(tmp_path: Path, root: Path):
    """An SDTM-only study (or one whose ADaM is not specified yet) is not an error: the ADaM stage is
    skipped with a Warning in the log."""
    import shutil

    specs = tmp_path / "specs"
    shutil.copytree(root / "specs", specs)
    shutil.rmtree(specs / "adam")
    shutil.rmtree(specs / "plans")
    out = tmp_path / "out"
    assert main(["run", "--specs", str(specs), "--out", str(out), "-q"]) == 0
    assert (out / "sdtm" / "dm.xpt").is_file() and not (out / "adam").exists()
    log = (out / "logs" / "cdisc-pipe-run.log").read_text()
    assert "WARNING: no ADaM dataset specs (specs/adam/*.yaml): ADaM stage skipped" in log


def test_file_table_takes_the_writers_digests_without_reading_the_files(tmp_path: Path):
    (tmp_path / "a.xpt").write_bytes(b"a")
    (tmp_path / "b.json").write_bytes(b"b")
    given = "0" * 64  # not the digest of b"a": proves the file was not read again
    table = file_table(tmp_path, known={"a.xpt": given})
    assert table == {"a.xpt": given, "b.json": sha256_file(tmp_path / "b.json")}
