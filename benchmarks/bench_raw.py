"""Benchmark: read the same synthetic export as CSV and as ODM-XML (and SAS XPORT) in one run.

    .venv/bin/python -m benchmarks.bench_raw [--subjects 1000] [--seed 20240301] [--work DIR] [--repeat 1] [--sas]

Writes the export once per format with ``cdisc_pipe.synth.generate`` (same data), then times
``read_export`` on each, interleaved (CSV, ODM, CSV, ODM, ...) so machine load hits both alike, and
prints the best time of each, the peak RSS and the ODM/CSV ratio (goal: ODM within 3x of CSV).
``read_peak_rss_mb`` is this process's peak above its RSS before the read; the ODM reader splits a
large file between this process and a second one (two cores), whose own peak RSS is
``worker_peak_rss_mb`` (pages shared with this process after the fork count in both).  The load
average is sampled before and after the reads: with other work on the machine a reader using two
cores loses more than one using one, so compare ratios measured at a low load.
Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.measure import Measure
from cdisc_pipe.raw import read_export
from cdisc_pipe.synth import generate


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20240301)
    ap.add_argument("--work", type=Path, default=None, help="folder for the exports (default: a temporary folder)")
    ap.add_argument("--repeat", type=int, default=1, help="reads per format (best time reported)")
    ap.add_argument("--sas", action="store_true", help="also time the SAS XPORT export")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as tmp:
        work = args.work or Path(tmp)
        fmts = ["csv", "odm"] + (["sas"] if args.sas else [])
        paths, gen = {}, {}
        for fmt in fmts:
            folder = work / f"{fmt}{args.subjects}"
            t = time.perf_counter()
            if not folder.exists():
                generate(args.subjects, args.seed, folder, fmt=fmt)
            gen[fmt] = time.perf_counter() - t
            paths[fmt] = folder
        best: dict[str, float] = {}
        peak: dict[str, int] = {}
        worker: dict[str, int] = {}
        records = {}
        load_before = os.getloadavg()[0]
        for _ in range(args.repeat):
            for fmt in fmts:
                gc.collect()
                children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, largest child so far
                with Measure() as m:
                    raw = read_export(paths[fmt])
                best[fmt] = min(best.get(fmt, float("inf")), m.wall)
                peak[fmt] = max(peak.get(fmt, 0), m.peak_rss - m.start_rss)
                after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                if after > children:
                    worker[fmt] = max(worker.get(fmt, 0), after * 1024)
                records[fmt] = sum(len(f) for f in raw.forms.values())
                del raw
        result = {"subjects": args.subjects, "load_average": {"before": load_before, "after": os.getloadavg()[0]},
                  "formats": {f: {"records": records[f], "bytes": _size(paths[f]), "write_s": round(gen[f], 2),
                                  "read_s": round(best[f], 3), "read_peak_rss_mb": round(peak[f] / 2**20, 1),
                                  **({"worker_peak_rss_mb": round(worker[f] / 2**20, 1)} if f in worker else {})}
                              for f in fmts},
                  "odm_over_csv": round(best["odm"] / best["csv"], 2)}
        if "sas" in best:
            result["sas_over_csv"] = round(best["sas"] / best["csv"], 2)
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
