"""The trial's results at a glance: the analyses a study's results plan (``specs/results.yaml``)
lists, computed from the ADaM datasets of an output folder, written as one self-contained HTML
page (SVG figures inlined) and JSON.

The engine knows no study: :mod:`.plan` reads the plan (data, pydantic), :mod:`.stats` and
:mod:`.tables` are pure functions (frames in, table/figure models out), :mod:`.figures` and
:mod:`.render` turn the models into SVG, HTML and JSON at the edge.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdisc_pipe.results.plan import PLAN_FILE, ResultsPlan, load_results_plan

if TYPE_CHECKING:
    from cdisc_pipe.results.tables import Results


def __getattr__(name: str) -> Any:
    # the computing modules (and SciPy under them) load when first used, not when a run reads the
    # results plan at its start
    if name in ("Results", "compute"):
        from cdisc_pipe.results import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PLAN_FILE", "ResultsPlan", "Results", "compute", "load_results_plan", "build_report", "write_report",
           "save_report"]


def library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("scipy", "matplotlib", "pandas", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[name] = "not installed"
    return out


def build_report(plan: ResultsPlan, frames, study: str) -> tuple[Results, str, str]:
    """(results, HTML text, JSON text) of a plan on ADaM frames."""
    from cdisc_pipe.results.render import html, to_json
    from cdisc_pipe.results.tables import compute

    results = compute(plan, frames)
    versions = library_versions()
    return results, html(results, study, versions), to_json(results, study, versions)


def write_report(plan: ResultsPlan, frames, study: str, reports_dir: Path) -> tuple[Results, list[Path]]:
    """Write ``results.html`` and ``results.json`` into ``reports_dir`` (atomically, file by file)."""
    results, page, doc = build_report(plan, frames, study)
    return results, save_report(page, doc, reports_dir)


def save_report(page: str, doc: str, reports_dir: Path) -> list[Path]:
    """``results.html`` (``page``) and ``results.json`` (``doc``, both from :func:`build_report`) into
    ``reports_dir``, atomically file by file; their paths."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("results.html", page), ("results.json", doc)):
        path = reports_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_bytes(text.encode("utf-8"))
        tmp.replace(path)
        written.append(path)
    return written
