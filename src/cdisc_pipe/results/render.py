"""Results -> one self-contained HTML page (jinja2, autoescaped; SVG inlined) and JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, is_dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from cdisc_pipe.results.figures import render_svg
from cdisc_pipe.results.tables import Results


def html(results: Results, study: str, versions: dict[str, str]) -> str:
    env = Environment(loader=PackageLoader("cdisc_pipe.results", "templates"),
                      autoescape=select_autoescape(["html", "j2"], default=True), keep_trailing_newline=True)
    figures = [{"id": f.id, "title": f.title, "population": f.population, "source": f.source, "note": f.note,
                "svg": Markup(render_svg(f))} for f in results.figures]
    return env.get_template("results.html.j2").render(results=results, figures=figures, study=study,
                                                       versions=versions)


def _plain(x: Any) -> Any:
    if is_dataclass(x):
        return _plain(asdict(x))
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, float):
        return None if not math.isfinite(x) else round(x, 10)
    if hasattr(x, "item"):  # numpy scalar
        return _plain(x.item())
    return x


def to_json(results: Results, study: str, versions: dict[str, str]) -> str:
    figs = []
    for f in results.figures:
        d = {"id": f.id, "title": f.title, "population": f.population, "source": f.source, "kind": f.kind,
             "note": f.note}
        if f.kind == "km":
            d["series"] = [{"group": s.group, "at_risk": s.at_risk, "risk_times": f.payload["risk_times"],
                            **_plain(s.curve)} for s in f.payload["series"]]
        elif f.kind == "event_timeline":
            d["events"] = _plain(f.payload["events"])
        elif f.kind == "profile" and f.payload.get("geometric_mean"):
            d["geometric_mean"] = _plain(f.payload["geometric_mean"])
        figs.append(d)
    doc = {"study": study, "title": results.title, "versions": versions, "problems": results.problems,
           "tables": [_plain(t) for t in results.tables], "figures": figs}
    return json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n"
