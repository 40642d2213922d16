"""XPT read benchmark: pyreadstat.read_xport vs cdisc-pipe's vectorised reader, same file, same run.

``python -m benchmarks.bench_xpt_read [--rows 1000000] [--repeat 5] [--work DIR]``

Writes an LB-shaped frame (``benchmarks.lb_frame``, 22 variables) of ``--rows`` records with the
project's numpy writer, checks once that both readers return the same frame and metadata, then
times them **interleaved** (pyreadstat, ours, pyreadstat, ours, ...) so that a change in machine
load hits both alike, and reports the best of ``--repeat`` runs of each and their ratio (goal:
>= 10x).  ``read_xpt`` (the pipeline's reader: the vectorised reader plus the pipeline's
conventions: blanks -> None, dates -> datetime64) is timed in the same loop.  Speed is measured
here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import pyreadstat

from benchmarks.lb_frame import lb_frame, lb_spec
from benchmarks.measure import Measure
from cdisc_pipe.xpt import prepare_datasets
from cdisc_pipe.xpt.datasets import read_xpt, write_xpt_file
from cdisc_pipe.xpt.reader import read_xport
from cdisc_pipe.xpt.v5 import format_timestamp, read_format

#: pyreadstat's metadata fields the two readers must agree on (all of them, for XPORT).
META_FIELDS = (
    "column_names", "column_labels", "column_names_to_labels", "file_encoding", "file_label", "number_columns",
    "number_rows", "variable_value_labels", "value_labels", "variable_to_label", "notes", "original_variable_types",
    "original_variable_informats", "readstat_variable_types", "table_name", "missing_ranges", "missing_user_values",
    "variable_storage_width", "variable_display_width", "variable_alignment", "variable_measure", "creation_time",
    "modification_time", "mr_sets", "file_format",
)
FORMAT_FIELDS = ("original_variable_types", "original_variable_informats", "variable_to_label")


def write_lb(rows: int, path: Path, seed: int = 1) -> None:
    """The LB benchmark frame, conformed and written by the project's numpy XPT writer."""
    spec = lb_spec()
    ready, problems = prepare_datasets({"LB": lb_frame(rows, seed)}, spec, purpose="Tabulation")
    if problems:
        raise RuntimeError(f"benchmark frame does not conform: {problems[:3]}")
    dataset, frame = ready["LB"]
    write_xpt_file(frame, dataset, path, timestamp=format_timestamp(spec.study.metadata_datetime))


def check_same(path: Path) -> None:
    """Both readers return the same frame (values, dtypes, empty strings) and metadata.

    Format fields are compared in one spelling (``read_format``): pyreadstat releases spell them
    differently (1.2.x ``"NULL"``/``"DATE9"``, 1.3.8 ``None``/``"DATE9."``); fields an older
    release does not have are skipped.
    """
    ref, ref_meta = pyreadstat.read_xport(str(path), disable_datetime_conversion=True)
    got, got_meta = read_xport(path)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    for name in META_FIELDS:
        if not hasattr(ref_meta, name):
            continue
        want, have = getattr(ref_meta, name), getattr(got_meta, name)
        if name in FORMAT_FIELDS:
            want, have = ({k: read_format(v) for k, v in d.items() if read_format(v)} for d in (want, have))
        if have != want:
            raise AssertionError(f"metadata {name} differs: {have!r} != {want!r}")


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and peak RSS growth (MB) of one call; the result is dropped before returning.

    The RSS growth is a lower bound: memory freed by an earlier run and kept by the allocator is
    reused without growing the RSS again.
    """
    gc.collect()
    with Measure() as m:
        result = fn()
    del result
    return m.wall, (m.peak_rss - m.start_rss) / 2**20


def bench(rows: int, repeat: int, work: Path | None = None) -> dict:
    """Write the file, check equality, time the readers interleaved; return the results."""
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        path = Path(tmp) / "lb.xpt"
        t0 = time.perf_counter()
        write_lb(rows, path)
        write_s = time.perf_counter() - t0
        check_same(path)
        readers: dict[str, Callable[[], object]] = {
            "pyreadstat.read_xport": lambda: pyreadstat.read_xport(str(path), disable_datetime_conversion=True),
            "cdisc_pipe.xpt.reader.read_xport": lambda: read_xport(path),
            "cdisc_pipe.xpt.read_xpt (pipeline conventions)": lambda: read_xpt(path),
        }
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in readers}
        for _ in range(repeat):
            for name, fn in readers.items():
                runs[name].append(timed(fn))
        size = path.stat().st_size
    best = {name: min(w for w, _ in r) for name, r in runs.items()}
    ours, ref = best["cdisc_pipe.xpt.reader.read_xport"], best["pyreadstat.read_xport"]
    return {
        "rows": rows, "xpt_bytes": size, "repeat": repeat, "write_s": round(write_s, 3),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "readers": {name: {"best_s": round(best[name], 3), "runs_s": [round(w, 3) for w, _ in r],
                           "rows_per_s": round(rows / best[name]),
                           "peak_rss_growth_mb": round(max(m for _, m in r), 1)} for name, r in runs.items()},
        "speedup_vs_pyreadstat": round(ref / ours, 1) if ours else None,
        # the ratio of medians too: under changing machine load it moves less than best-of
        "speedup_median": round(statistics.median(w for w, _ in runs["pyreadstat.read_xport"])
                                / statistics.median(w for w, _ in runs["cdisc_pipe.xpt.reader.read_xport"]), 1),
        "identical_to_pyreadstat": True,  # check_same raised otherwise
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each reader (best is reported)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the temporary XPT file")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    a = ap.parse_args(argv)
    res = bench(a.rows, a.repeat, a.work)
    print(f"LB-shaped XPT, {res['rows']:,} rows, {res['xpt_bytes'] / 2**20:.0f} MB (written in {res['write_s']} s); "
          f"best of {res['repeat']} interleaved runs; load average {res['load_average']}")
    for name, r in res["readers"].items():
        print(f"  {name:48s} {r['best_s']:7.3f} s  {r['rows_per_s']:>10,} rows/s  runs {r['runs_s']}  "
              f"RSS growth >= {r['peak_rss_growth_mb']} MB")
    print(f"speed-up vs pyreadstat: {res['speedup_vs_pyreadstat']}x best of {res['repeat']} "
          f"({res['speedup_median']}x median; goal >= 10x); same frame and metadata: yes")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
