"""Validation from memory vs from the files: same findings, and what each costs.

``python -m benchmarks.validate_memory [--subjects N] [--work DIR]`` runs ``cdisc-pipe run`` (which
validates the datasets as it holds them, the SDTM-only checks ahead while ADaM is derived,
``early_units``) on the bundled study or a generated one of N subjects,
then validates the same output folder again from the files, and compares the two findings tables
(every column) and summaries.  It prints the differences (none expected) and both validation
times.  tests/test_validate_memory.py runs :func:`compare` on the bundled study.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

#: summary entries that describe the run-to-run comparison, not the findings
RUN_KEYS = ("previous_run", "new_findings", "resolved_findings")


def compare(raw: Path | None, out: Path) -> dict[str, Any]:
    """Run the pipeline on ``raw`` (None: the bundled study) into ``out``, validate ``out`` again from
    its files, and compare.  Returns counts, both validation times and the differences found."""
    import cdisc_pipe.pipeline as pipeline
    from cdisc_pipe import paths as P
    from cdisc_pipe.runlog import RunLog
    from cdisc_pipe.spec import load_specs
    from cdisc_pipe.validate import run_validation

    specs = P.default_specs()
    paths = pipeline.Paths(out=Path(out), raw=Path(raw) if raw else P.default_raw(), specs=specs,
                           mappings=P.default_mappings(), ct=P.default_ct())
    seen: dict[str, Any] = {}
    original = pipeline.stage_validate

    def timed(paths_, spec_, log_, held=None, early=None, **options):  # what the run validates, and how long
        seen["held"] = sum(len(v) for v in (held or {}).values())
        seen["early"] = sum(len(v) for v in (early or {}).values())
        t0 = time.perf_counter()
        result = original(paths_, spec_, log_, held=held, early=early, **options)
        seen["memory_s"] = time.perf_counter() - t0
        return result

    pipeline.stage_validate = timed
    try:
        code, mem = pipeline.run_all(paths, RunLog("run", quiet=True))
    finally:
        pipeline.stage_validate = original
    t0 = time.perf_counter()
    files = run_validation(Path(out), load_specs(specs), paths.ct, settings_path=specs / "settings" / "validation.yaml")
    files_s = time.perf_counter() - t0
    differences: list[str] = []
    try:
        pd.testing.assert_frame_equal(mem.findings, files.findings, check_exact=True)
    except AssertionError as exc:
        differences.append(f"findings: {exc}")
    a = {k: v for k, v in mem.summary.items() if k not in RUN_KEYS}
    b = {k: v for k, v in files.summary.items() if k not in RUN_KEYS}
    if a != b:
        differences.append(f"summary: {sorted(set(a.items()) ^ set(b.items()), key=str)}")
    return {"exit_code": code, "datasets": int(files.summary["datasets"]), "held": seen.get("held", 0),
            "early_units": seen.get("early", 0),
            "findings": int(len(files.findings)), "differences": differences, "identical": not differences,
            "validate_from_memory_s": round(seen.get("memory_s", float("nan")), 3),
            "validate_from_files_s": round(files_s, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=0, help="generate a study of N subjects (0: the bundled study)")
    ap.add_argument("--seed", type=int, default=20240301)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-valmem-"))
    raw = None
    if args.subjects:
        from cdisc_pipe.cli import main as cli

        raw = work / f"raw-{args.subjects}"
        if cli(["synth", "--subjects", str(args.subjects), "--seed", str(args.seed), "--out", str(raw), "-q"]) != 0:
            return 1
    res = compare(raw, work / f"out-{args.subjects or 'bundled'}")
    print(json.dumps(res, indent=1))
    return 0 if res["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
