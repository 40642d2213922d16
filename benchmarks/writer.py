"""Writer-side benchmark: conform+check, the numpy XPT v5 writer vs pyreadstat, Dataset-JSON.

Runs on a generated LB-shaped frame (``benchmarks.lb_frame``), independent of the pipeline.
Both XPT engines write the same conformed frame; their files must be byte-identical (checked).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pyreadstat

from benchmarks.lb_frame import lb_frame, lb_spec
from benchmarks.measure import Measure
from cdisc_pipe.datasetjson import write_dataset_json
from cdisc_pipe.xpt import prepare_datasets, read_xpt
from cdisc_pipe.xpt.datasets import write_xpt_file
from cdisc_pipe.xpt.v5 import format_timestamp


def _row(name: str, m: Measure, rows: int, nbytes: int | None = None, **extra) -> dict:
    out = {"step": name, "wall_s": round(m.wall, 3), "rows": rows,
           "rows_per_s": round(rows / m.wall) if m.wall > 0 else None,
           "peak_rss_mb": round(m.peak_rss / 2**20, 1), "delta_rss_mb": round((m.peak_rss - m.start_rss) / 2**20, 1)}
    if nbytes is not None:
        out["bytes"] = nbytes
        out["mb_per_s"] = round(nbytes / 2**20 / m.wall, 1) if m.wall > 0 else None
    out.update(extra)
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bench_writer(rows: int, *, seed: int = 1, pyreadstat_str: bool = True, workdir: Path | None = None) -> dict:
    """Time every writer step on ``rows`` LB records; return a result dict (steps + summary)."""
    spec = lb_spec()
    ds = spec.dataset("LB")
    steps: list[dict] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        tmp = Path(tmp)
        with Measure() as m:
            raw = lb_frame(rows, seed)
        steps.append(_row("generate LB frame (not part of the writer)", m, rows))
        with Measure() as m:
            ready, problems = prepare_datasets({"LB": raw}, spec, purpose="Tabulation")
        if problems:
            raise RuntimeError(f"benchmark frame does not conform: {problems[:3]}")
        _, df = ready["LB"]
        steps.append(_row("conform + FDA checks", m, rows))
        stamp = format_timestamp(spec.study.metadata_datetime)

        ours_path = tmp / "ours.xpt"
        with Measure() as m:
            write_xpt_file(df, ds, ours_path, timestamp=stamp, engine="numpy")
        size = ours_path.stat().st_size
        ours = _row("XPT write: cdisc-pipe numpy writer", m, rows, size)
        steps.append(ours)

        ref_path = tmp / "ref.xpt"
        with Measure() as m:
            write_xpt_file(df, ds, ref_path, timestamp=stamp, engine="pyreadstat")
        ref = _row("XPT write: pyreadstat (object columns)", m, rows, ref_path.stat().st_size)
        steps.append(ref)
        identical = sha256(ours_path) == sha256(ref_path)
        ref_path.unlink()

        ref_str = None
        if pyreadstat_str:
            # pyreadstat called the plain way on the pandas-3 frame (str columns), header stamp aside
            plain = raw[df.columns.tolist()]
            with Measure() as m:
                pyreadstat.write_xport(plain, str(tmp / "plain.xpt"), file_format_version=5, table_name="LB",
                                       file_label=ds.label, column_labels=[ds.variable(c).label for c in df.columns])
            ref_str = _row("XPT write: pyreadstat (pandas str columns, as given)", m, rows, (tmp / "plain.xpt").stat().st_size)
            steps.append(ref_str)
            (tmp / "plain.xpt").unlink()

        data = ours_path.read_bytes()
        with Measure() as m:
            fd = os.open(tmp / "floor.xpt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        steps.append(_row("I/O floor: one write() of the same bytes", m, rows, len(data)))
        del data

        lengths = {c: 8 for c in df.columns}
        with Measure() as m:
            res = write_dataset_json(df, ds, spec, tmp, lengths, ndjson_threshold=None)
        steps.append(_row("Dataset-JSON write (.json)", m, rows, res.path.stat().st_size))
        with Measure() as m:
            write_dataset_json(df, ds, spec, tmp, lengths, ndjson_threshold=0)
        steps.append(_row("Dataset-JSON write (.ndjson)", m, rows))
        with Measure() as m:
            back = read_xpt(ours_path)
        steps.append(_row("XPT read: read_xpt (vectorised reader)", m, rows))
        assert len(back) == rows
    summary = {
        "rows": rows,
        "xpt_bytes": size,
        "byte_identical_to_pyreadstat": identical,
        "speedup_vs_pyreadstat_object": round(ref["wall_s"] / ours["wall_s"], 1) if ours["wall_s"] else None,
        "speedup_vs_pyreadstat_str": round(ref_str["wall_s"] / ours["wall_s"], 1) if ref_str and ours["wall_s"] else None,
    }
    return {"steps": steps, "summary": summary}
