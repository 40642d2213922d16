"""One command for every benchmark: ``python -m benchmarks.run [--sizes 18,1000,5000] [--out benchmarks/results]``.

1. Writer side (needs no pipeline): an LB-shaped frame of ``--writer-rows`` records; conform +
   checks, the numpy XPT v5 writer vs pyreadstat on the same frame (bytes must be identical),
   Dataset-JSON, the plain write() floor.  Target: numpy writer >= 10x pyreadstat.
2. Whole pipeline at each ``--sizes`` subject count: generate the study (``cdisc-pipe synth``),
   time every stage in a worker process (wall, rows/s, peak RSS), run ``cdisc-pipe run``
   end to end, and measure the I/O floor (plain pandas read of the raw export + writing the same
   output bytes), reporting pipeline/floor.  Missing stages are reported as "not available".

Results: ``<out>/bench-<UTC time>.json`` and ``<out>/latest.json``, plus printed tables.
Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from benchmarks.measure import run_child
from benchmarks.writer import bench_writer

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys; from cdisc_pipe.cli import main; sys.exit(main(sys.argv[1:]))"


def machine() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "pandas": pd.__version__, "numpy": np.__version__, "pyreadstat": getattr(pyreadstat, "__version__", "?"),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None}


def table(rows: list[dict], cols: list[tuple[str, str]]) -> str:
    """A small fixed-width text table: cols = [(key, header)]."""
    cells = [[h for _, h in cols]] + [["" if r.get(k) is None else str(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(cols))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def bench_size(n: int, seed: int, work: Path, timeout: float) -> dict:
    """Generate the study at ``n`` subjects, run the stage worker and the CLI, return the results."""
    raw, out, out_cli = work / f"raw-{n}", work / f"out-{n}", work / f"out-cli-{n}"
    result: dict = {"subjects": n, "seed": seed}
    gen = run_child([sys.executable, "-c", CLI, "synth", "--subjects", str(n), "--seed", str(seed), "--out", str(raw), "-q"],
                    cwd=str(ROOT), timeout=timeout)
    result["generate"] = {k: gen[k] for k in ("wall_s", "returncode", "peak_rss_mb")}
    if gen["returncode"] != 0 or not raw.exists():
        result["status"] = "not available: the generator (cdisc-pipe synth) failed"
        result["generate"]["output_tail"] = gen["output_tail"][-800:]
        return result
    jpath = work / f"stages-{n}.json"
    wk = run_child([sys.executable, "-m", "benchmarks.pipeline", "--raw", str(raw), "--out", str(out), "--json", str(jpath)],
                   cwd=str(ROOT), timeout=timeout)
    result["worker"] = {"wall_s": round(wk["wall_s"], 3), "peak_rss_mb": round(wk["peak_rss_mb"], 1),
                        "returncode": wk["returncode"]}
    if jpath.exists():
        result.update(json.loads(jpath.read_text()))
    else:
        result["worker"]["output_tail"] = wk["output_tail"][-800:]
    cli = run_child([sys.executable, "-c", CLI, "run", "--raw", str(raw), "--out", str(out_cli), "-q"],
                    cwd=str(ROOT), timeout=timeout)
    result["cli_run"] = {"wall_s": round(cli["wall_s"], 3), "peak_rss_mb": round(cli["peak_rss_mb"], 1),
                         "peak_tree_pss_mb": cli.get("peak_tree_pss_mb"), "returncode": cli["returncode"],
                         "steps": cli_steps(out_cli / "logs" / "cdisc-pipe-run.log")}
    if cli["returncode"] not in (0, 1):  # 1 = validation found errors: the run itself completed
        result["cli_run"]["output_tail"] = cli["output_tail"][-800:]
    floor = result.get("io_floor")
    if floor and floor.get("floor_s"):
        result["pipeline_over_floor_stages"] = round(result["stages_total_s"] / floor["floor_s"], 1)
        if cli["returncode"] in (0, 1):
            result["pipeline_over_floor_cli"] = round(cli["wall_s"] / floor["floor_s"], 1)
    return result


def cli_steps(log: Path) -> list[dict]:
    """The timed steps of a ``cdisc-pipe run`` log ("NOTE: <step> done in 1.23 s"), in order."""
    import re

    try:
        text = log.read_text(encoding="utf-8")
    except OSError:
        return []
    return [{"step": m.group(1), "wall_s": float(m.group(2)),
             "peak_rss_mb": float(m.group(3)) if m.group(3) else None}
            for m in re.finditer(r"^NOTE: (.+) done in ([0-9.]+) s(?:, peak RSS ([0-9]+) MB)?$", text, flags=re.M)]


def print_size(r: dict) -> None:
    print(f"\n== pipeline, {r['subjects']} subjects (seed {r['seed']}) ==")
    print(f"generate: {r['generate']['wall_s']:.2f} s (exit {r['generate']['returncode']})")
    if "status" in r:
        print(r["status"])
        return
    stages = [{**s, "note": " ".join(s.get("reason", "").split())[:90]} for s in r.get("stages", [])]
    print(table(stages, [("stage", "stage"), ("status", "status"), ("wall_s", "wall s"), ("rows", "rows"),
                         ("rows_per_s", "rows/s"), ("peak_rss_mb", "peak RSS MB"), ("note", "note")]))
    print(f"stages total: {r.get('stages_total_s')} s; cdisc-pipe run: {r['cli_run']['wall_s']} s "
          f"(exit {r['cli_run']['returncode']}, peak RSS {r['cli_run']['peak_rss_mb']} MB, process tree peak PSS "
          f"{r['cli_run'].get('peak_tree_pss_mb')} MB)")
    steps = r["cli_run"].get("steps") or []
    if steps:
        total = r["cli_run"]["wall_s"]
        print("cdisc-pipe run, its own steps (from its log; steps marked [second process] ran beside the others, "
              "so the shares add up to more than 100%; peak RSS is the step's process'):")
        print(table([{**s, "share": f"{100 * s['wall_s'] / total:.0f}%"} for s in steps],
                    [("step", "step"), ("wall_s", "wall s"), ("share", "share of the run's wall time"),
                     ("peak_rss_mb", "peak RSS so far MB")]))
        own = sum(s["wall_s"] for s in steps if "[second process]" not in s["step"])
        print(f"steps of the run's own process: {own:.2f} s of {total:.2f} s; in a second process meanwhile: "
              f"{sum(s['wall_s'] for s in steps) - own:.2f} s")
    f = r.get("io_floor")
    if f:
        cli_ratio = r.get("pipeline_over_floor_cli")
        print(f"I/O floor: read raw {f['read_raw_s']} s ({f['raw_rows']} rows) + write {f['output_bytes']} bytes "
              f"{f['write_outputs_s']} s = {f['floor_s']} s; pipeline/floor: stages {r.get('pipeline_over_floor_stages')}x, "
              f"CLI {f'{cli_ratio}x' if cli_ratio is not None else 'n/a (run did not complete)'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="18,1000,5000", help="subject counts for the pipeline benchmark (comma-separated)")
    ap.add_argument("--seed", type=int, default=20240301, help="generator seed")
    ap.add_argument("--writer-rows", type=int, default=1_000_000, help="rows of the LB frame for the writer benchmark")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="results folder")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder for generated studies (default: a temp dir)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed per child process")
    ap.add_argument("--skip-writer", action="store_true", help="only the pipeline benchmark")
    ap.add_argument("--skip-pipeline", action="store_true", help="only the writer benchmark")
    ap.add_argument("--no-pyreadstat-str", action="store_true",
                    help="skip pyreadstat on pandas str columns (the slowest variant)")
    a = ap.parse_args(argv)
    if a.work:  # both benchmarks put their scratch files there: make it before either runs
        a.work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    started = dt.datetime.now(dt.timezone.utc)
    results: dict = {"started_utc": started.isoformat(timespec="seconds"), "machine": machine(), "args": vars(a)}

    if not a.skip_writer:
        print(f"== writer benchmark: LB-shaped frame, {a.writer_rows} rows ==")
        w = bench_writer(a.writer_rows, pyreadstat_str=not a.no_pyreadstat_str, workdir=a.work)
        results["writer"] = w
        print(table(w["steps"], [("step", "step"), ("wall_s", "wall s"), ("rows_per_s", "rows/s"),
                                 ("mb_per_s", "MB/s"), ("peak_rss_mb", "peak RSS MB"), ("delta_rss_mb", "+RSS MB")]))
        s = w["summary"]
        print(f"numpy writer vs pyreadstat: {s['speedup_vs_pyreadstat_object']}x (object columns), "
              f"{s['speedup_vs_pyreadstat_str']}x (str columns); byte-identical: {s['byte_identical_to_pyreadstat']}")

    if not a.skip_pipeline:
        results["pipeline"] = []
        with tempfile.TemporaryDirectory(dir=a.work) as tmp:
            for n in sizes:
                r = bench_size(n, a.seed, Path(tmp), a.timeout)
                results["pipeline"].append(r)
                print_size(r)

    a.out.mkdir(parents=True, exist_ok=True)
    results["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    text = json.dumps(results, indent=1, default=str) + "\n"
    path = a.out / f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(text, encoding="utf-8")
    (a.out / "latest.json").write_text(text, encoding="utf-8")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
