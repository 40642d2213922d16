"""Whole-pipeline benchmark: generate the study at a size, time each stage, compare with the I/O floor.

For each size the parent (``benchmarks.run``) runs, each in its own child process:

1. ``cdisc-pipe synth --subjects N --seed S --out <raw>`` (not counted as pipeline time);
2. this module as a worker (``python -m benchmarks.pipeline --raw ... --out ... --json ...``): every
   stage through the stage interfaces of docs/ARCHITECTURE.md, in one process, each stage timed
   with its peak RSS (sampled); stages that do not exist yet are reported "not available" and the
   stages that need them are skipped;
3. ``cdisc-pipe run --raw <raw> --out <out2>``: the real end-to-end command (wall, peak RSS);
4. the I/O floor, measured in the worker: reading the raw export with plain ``pandas.read_csv``
   and writing the same output bytes (every SDTM/ADaM file) with one ``write()`` each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from benchmarks.measure import Measure


class Unavailable(Exception):
    """A stage cannot run: its code does not exist yet, or a stage it needs did not run."""


def _records(frames: Any) -> int:
    if isinstance(frames, dict):
        return int(sum(len(f) for f in frames.values() if hasattr(f, "__len__")))
    return 0


def run_stage(results: list[dict], name: str, fn: Callable[[], tuple]) -> Any:
    """Run one stage; record wall time, rows, rows/s and peak RSS, or why it did not run."""
    entry: dict[str, Any] = {"stage": name}
    try:
        with Measure() as m:
            out = fn()
        value, rows = out[0], out[1]
        if len(out) > 2:  # the stage timed its own relevant part (see write_refusing)
            m.wall = out[2]
    except Unavailable as exc:
        entry.update(status="not available", reason=str(exc))
        results.append(entry)
        return None
    except (ImportError, AttributeError) as exc:
        entry.update(status="not available", reason=f"{type(exc).__name__}: {exc}")
        results.append(entry)
        return None
    except Exception as exc:  # a benchmark reports a failing stage instead of stopping
        entry.update(status="failed", reason=f"{type(exc).__name__}: {str(exc)[:500]}",
                     traceback=traceback.format_exc()[-1500:])
        results.append(entry)
        return None
    entry.update(status="ok", wall_s=round(m.wall, 3), rows=rows,
                 rows_per_s=round(rows / m.wall) if m.wall > 0 and rows else None,
                 peak_rss_mb=round(m.peak_rss / 2**20, 1))
    results.append(entry)
    return value


def need(value: Any, what: str) -> Any:
    if value is None:
        raise Unavailable(f"needs {what}, which did not run")
    return value


def io_floor(raw_dir: Path, out_dir: Path) -> dict:
    """Plain pandas read of the raw CSVs + one write() per output file of the same bytes."""
    csvs = sorted(raw_dir.glob("*.csv"))
    with Measure() as read:
        rows = sum(len(pd.read_csv(p, dtype=str, keep_default_na=False)) for p in csvs)
    files = [p for sub in ("sdtm", "adam") for p in sorted((out_dir / sub).glob("*"))
             if p.is_file() and p.suffix in (".xpt", ".json", ".ndjson")]
    blobs = [p.read_bytes() for p in files]
    nbytes = sum(len(b) for b in blobs)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        with Measure() as write:
            for i, b in enumerate(blobs):
                fd = os.open(os.path.join(tmp, f"f{i}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, b)
                finally:
                    os.close(fd)
    return {"raw_files": len(csvs), "raw_rows": rows, "read_raw_s": round(read.wall, 3),
            "output_files": len(files), "output_bytes": nbytes, "write_outputs_s": round(write.wall, 3),
            "floor_s": round(read.wall + write.wall, 3)}


def write_refusing(frames: dict, spec: Any, folder: Path, purpose: str, results: list[dict]) -> tuple:
    """``write_datasets``; if it refuses some datasets (InputError), note them and write the rest.

    A generated study can trip a check (e.g. duplicate keys at a large size): the benchmark still
    measures the writer on the datasets that pass (timing that write alone), and says which were
    refused and why.
    """
    from cdisc_pipe.errors import InputError
    from cdisc_pipe.xpt import write_datasets

    try:
        written = write_datasets(frames, spec, folder, purpose=purpose)
        return written, sum(w.records for w in written)
    except InputError as exc:
        refused = sorted({p.file for p in exc.problems})
        results.append({"stage": f"{purpose} write: datasets refused", "status": "note",
                        "reason": "; ".join(f"{d}: {next(p.message for p in exc.problems if p.file == d)}"
                                            for d in refused)})
        keep = {k: v for k, v in frames.items() if k.upper() not in refused}
        with Measure() as m:  # time the write of the accepted datasets alone
            written = write_datasets(keep, spec, folder, purpose=purpose)
        return written, sum(w.records for w in written), m.wall


def worker(raw_dir: Path, out_dir: Path) -> dict:
    """Every stage in-process through the documented stage interfaces."""
    from cdisc_pipe import paths as P

    results: list[dict] = []
    specs_dir, mappings_dir, ct_dir = P.default_specs(), P.default_mappings(), P.default_ct()

    def load():
        from cdisc_pipe.spec import load_specs
        return load_specs(specs_dir), 0

    spec = run_stage(results, "load specs", load)

    def read_raw():
        from cdisc_pipe.raw import read_export
        raw = read_export(raw_dir)
        return raw, _records(raw.forms)

    raw = run_stage(results, "read raw export", read_raw)

    def sdtm_map():
        from cdisc_pipe.sdtm import build_sdtm
        res = build_sdtm(need(raw, "the raw export"), need(spec, "the specs"), mappings_dir)
        return res, _records(res.datasets)

    sdtm = run_stage(results, "SDTM mapping (incl. NCA)", sdtm_map)

    def write_sdtm():
        res = need(sdtm, "SDTM mapping")
        return write_refusing(res.datasets, spec, out_dir / "sdtm", "Tabulation", results)

    sdtm_written = run_stage(results, "SDTM write (XPT + Dataset-JSON)", write_sdtm)

    def adam_derive():
        from cdisc_pipe.adam import build_adam
        res = build_adam(need(sdtm, "SDTM mapping").datasets, spec, specs_dir / "settings")
        return res, _records(res.datasets)

    adam = run_stage(results, "ADaM derivations", adam_derive)

    def write_adam():
        res = need(adam, "ADaM derivations")
        return write_refusing(res.datasets, spec, out_dir / "adam", "Analysis", results)

    adam_written = run_stage(results, "ADaM write (XPT + Dataset-JSON)", write_adam)

    def define():
        from cdisc_pipe.define import build_define, validate_define
        n = 0
        for purpose, written, sub in (("Tabulation", sdtm_written, "sdtm"), ("Analysis", adam_written, "adam")):
            if not written:
                continue
            res = build_define(spec, written, purpose, ct_dir=ct_dir)
            xml = res.xml.encode("utf-8") if isinstance(res.xml, str) else res.xml
            html = res.html.encode("utf-8") if isinstance(res.html, str) else res.html
            validate_define(xml)
            (out_dir / sub / "define.xml").write_bytes(xml)
            (out_dir / sub / "define.html").write_bytes(html)
            n += sum(w.records for w in written)
        if not n:
            raise Unavailable("needs written datasets")
        return True, n

    run_stage(results, "define.xml + define.html (build + schema check)", define)

    def validate():
        from cdisc_pipe.validate import run_validation
        need(sdtm_written, "the SDTM write")
        settings = specs_dir / "settings" / "validation.yaml"
        kwargs = {"settings_path": settings} if settings.exists() else {}
        try:
            res = run_validation(out_dir, spec, ct_dir, **kwargs)
        except TypeError:
            res = run_validation(out_dir, spec, ct_dir)
        return res, sum(w.records for w in (sdtm_written or []) + (adam_written or []))

    run_stage(results, "validation (rules + reports)", validate)

    floor = io_floor(raw_dir, out_dir) if (out_dir / "sdtm").exists() else None
    ok = [r for r in results if r["status"] == "ok"]
    timed = [r for r in results if r["status"] != "note"]
    return {"stages": results, "stages_total_s": round(sum(r["wall_s"] for r in ok), 3),
            "all_stages_available": len(ok) == len(timed), "io_floor": floor}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="benchmark worker: run every stage in-process, write JSON")
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    result = worker(a.raw, a.out)
    a.json.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
