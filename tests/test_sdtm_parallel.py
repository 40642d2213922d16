"""build_sdtm maps its datasets in two processes (cdisc_pipe.parallel.map_shared) when the raw
export is large: the datasets, findings (in order), traceability and record sources are those of one
process, on the bundled study and on both example studies (joins, splits, transposed forms, ODM)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import cdisc_pipe.sdtm.build as B
from cdisc_pipe import parallel
from cdisc_pipe.paths import default_mappings, default_raw, default_specs
from cdisc_pipe.raw import read_export
from cdisc_pipe.sdtm import build_sdtm
from cdisc_pipe.sdtm.mapping import load_mappings
from cdisc_pipe.spec import load_specs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STUDIES = {
    "bundled": (default_raw(), default_specs(), default_mappings()),
    "crossover01": (EXAMPLES / "crossover01" / "raw", EXAMPLES / "crossover01" / "specs",
                    EXAMPLES / "crossover01" / "mappings"),
    "parallel01": (EXAMPLES / "parallel01" / "raw", EXAMPLES / "parallel01" / "specs",
                   EXAMPLES / "parallel01" / "mappings"),
}


def _same(one: B.SdtmResult, two: B.SdtmResult) -> None:
    assert list(one.datasets) == list(two.datasets)
    for name in one.datasets:
        pd.testing.assert_frame_equal(one.datasets[name], two.datasets[name], check_exact=True, obj=name)
    assert one.findings == two.findings  # every finding, in the same order
    pd.testing.assert_frame_equal(one.traceability, two.traceability, check_exact=True)
    pd.testing.assert_frame_equal(one.records, two.records, check_exact=True)


@pytest.mark.parametrize("study", list(STUDIES))
def test_two_processes_map_what_one_maps(study, monkeypatch, tmp_path):
    raw_dir, specs, mappings = STUDIES[study]
    if not raw_dir.is_dir() or parallel.fork_context() is None:
        pytest.skip("no raw export here, or no fork on this platform")
    spec = load_specs(specs)
    raw = read_export(raw_dir)
    monkeypatch.setenv(parallel.PROCESSES_ENV, "1")
    one = build_sdtm(raw, spec, mappings)
    monkeypatch.delenv(parallel.PROCESSES_ENV)

    pids = tmp_path / "pids"
    real = B._map_one

    def spy(name, *args):
        with open(pids, "a") as fh:  # the child's calls are seen through the file
            fh.write(f"{os.getpid()} {name}\n")
        return real(name, *args)
    monkeypatch.setattr(B, "_map_one", spy)
    # every export here is small: the datasets are shared whatever their records
    monkeypatch.setattr(B, "map_shared", lambda fn, sizes, **kw: parallel.map_shared(fn, sizes, minimum=0, **kw))
    two = build_sdtm(raw, spec, mappings)
    seen = [line.split() for line in pids.read_text().splitlines()]
    assert len({pid for pid, _ in seen}) == 2, "the datasets were not shared between two processes"
    assert sorted(name for _, name in seen) == sorted(n for n, m in load_mappings(mappings, spec).datasets.items()
                                                     if m.sources)
    _same(one, two)
