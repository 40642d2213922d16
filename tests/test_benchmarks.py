"""The benchmark runner's command line (the measurements themselves live in benchmarks/, never here)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.run import main


def test_work_folder_is_created_when_missing(tmp_path: Path) -> None:
    work = tmp_path / "not" / "there" / "yet"
    out = tmp_path / "results"
    rc = main(["--skip-pipeline", "--writer-rows", "2000", "--no-pyreadstat-str", "--work", str(work), "--out", str(out)])
    assert rc == 0
    assert work.is_dir()
    latest = json.loads((out / "latest.json").read_text(encoding="utf-8"))
    assert latest["writer"]["summary"]["byte_identical_to_pyreadstat"] is True
