"""Figure models -> static SVG text (matplotlib, Agg backend), byte-reproducible: a fixed
``svg.hashsalt``, no date metadata, text kept as text (``svg.fonttype = none``)."""

from __future__ import annotations

import io
import math

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cdisc_pipe.results.tables import Figure  # noqa: E402

_RC = {"svg.fonttype": "none", "font.size": 9, "font.family": "DejaVu Sans",
       "axes.spines.top": False, "axes.spines.right": False}
_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None}, bbox_inches=None)
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: the SVG is inlined in HTML


#: Figures with one row per subject label each row up to this many rows; beyond it the rows keep
#: their order but get no label and the figure stops growing (a label per row is unreadable there,
#: and laying out thousands of labels took most of a 5,000-subject report's time).
ROW_LABELS_MAX = 150


def _row_height(rows: int, per_row: float, base: float) -> float:
    """Figure height for ``rows`` subject rows, growing until :data:`ROW_LABELS_MAX` rows."""
    return base + per_row * max(1, min(rows, ROW_LABELS_MAX))


def _row_labels(ax, labels: list[str], what: str = "Subjects") -> None:
    """One y tick label per row, or, with more than :data:`ROW_LABELS_MAX` rows, an axis title."""
    if len(labels) <= ROW_LABELS_MAX:
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=7)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{what} (n = {len(labels)}; one row each, not labelled)")


def _bars(ax, pos: list[float], lo: list[float], hi: list[float], width: float, horizontal: bool, **style) -> None:
    """Rectangles from ``lo`` to ``hi`` centred on ``pos`` (y for horizontal bars, x for vertical
    ones), drawn as one collection: one artist for any number of bars (``ax.bar`` makes a patch per
    bar, which took most of a 5,000-subject figure's time)."""
    from matplotlib.collections import PolyCollection

    if not pos:
        return
    c = np.asarray(pos, dtype=float)[:, None]
    a, b = np.asarray(lo, dtype=float)[:, None], np.asarray(hi, dtype=float)[:, None]
    half = width / 2
    if horizontal:  # (x, y) corners: (a, c-h) (b, c-h) (b, c+h) (a, c+h)
        verts = np.stack([np.hstack([a, c - half]), np.hstack([b, c - half]), np.hstack([b, c + half]),
                          np.hstack([a, c + half])], axis=1)
    else:
        verts = np.stack([np.hstack([c - half, a]), np.hstack([c + half, a]), np.hstack([c + half, b]),
                          np.hstack([c - half, b])], axis=1)
    ax.add_collection(PolyCollection(verts, **style))
    ax.autoscale_view()


def _short(label: str, width: int = 12) -> str:
    """A group label for the numbers-at-risk rows: the text before a colon ("DL1: 1.0x10^6 ..." ->
    "DL1"), else the label cut to ``width`` characters."""
    head = label.split(":", 1)[0].strip()
    return head if len(head) <= width else head[: width - 1] + "\u2026"


def km_svg(f: Figure) -> str:
    p = f.payload
    series, risk = p["series"], p["risk_times"]
    with matplotlib.rc_context(_RC):
        n = len(series)
        fig = plt.figure(figsize=(8, 4.2 + 0.22 * n))
        ax = fig.add_axes((0.1, 0.18 + 0.05 * n, 0.86, 0.72 - 0.05 * n))
        tmax = 0.0
        for i, s in enumerate(series):
            c = s.curve
            colour = "black" if s.group == "Overall" else _COLOURS[i % len(_COLOURS)]
            xs, ys = [0.0], [1.0]
            for t, v in zip(c.times, c.surv):
                xs.append(t)
                ys.append(v)
            last = max([0.0] + c.times + c.censor_times)
            xs.append(last)
            ys.append(ys[-1])
            tmax = max(tmax, last)
            ax.step(xs, ys, where="post", color=colour, lw=1.4, label=f"{s.group} (n={c.n}, events={c.events})",
                    linestyle="--" if s.group == "Overall" else "-")
            cx = [t for t in c.censor_times]
            cy = [([1.0] + [v for tt, v in zip(c.times, c.surv) if tt <= t])[-1] for t in cx]
            ax.plot(cx, cy, "+", color=colour, ms=7, mew=1.2)
        ax.set_ylim(-0.02, 1.05)
        right = max(risk + [tmax]) if risk else tmax
        ax.set_xlim(0, right * 1.02 if right else 1)
        ax.set_ylabel("Survival probability")
        ax.set_xlabel(p.get("x_label") or f"Time ({p['unit']})")
        if risk:
            ax.set_xticks(risk)
        ax.legend(loc="lower left", frameon=False, fontsize=8)
        ax.grid(axis="y", color="#dddddd", lw=0.6)
        # numbers at risk under the axis, one row per group
        if risk:
            fig.text(0.01, 0.06 + 0.05 * n, "At risk", fontsize=8, weight="bold")
            for i, s in enumerate(series):
                y = 0.06 + 0.05 * (n - 1 - i)
                colour = "black" if s.group == "Overall" else _COLOURS[i % len(_COLOURS)]
                fig.text(0.01, y, _short(s.group), fontsize=7, color=colour)
                for t, k in zip(risk, s.at_risk):
                    xf = ax.transData.transform((t, 0))[0]
                    xf = fig.transFigure.inverted().transform((xf, 0))[0]
                    fig.text(xf, y, str(k), fontsize=7, ha="center", color=colour)
        fig.suptitle(f.title, fontsize=10, x=0.1, ha="left")
        return _svg(fig)


def profile_svg(f: Figure) -> str:
    p = f.payload
    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        colour = {g: _COLOURS[i % len(_COLOURS)] for i, g in enumerate(p["groups"])}
        # one line per group, subjects separated by NaN (matplotlib breaks the line there): two
        # artists per group instead of two per subject (a thousand subjects draw in well under a second)
        seen = set()
        lines: dict[str, tuple[list[float], list[float]]] = {}
        blqs: dict[str, tuple[list[float], list[float]]] = {}
        for s in p["subjects"]:
            xs, ys = lines.setdefault(s["group"], ([], []))
            bx, by = blqs.setdefault(s["group"], ([], []))
            for x, y, b, lloq in zip(s["x"], s["y"], s["blq"], s["lloq"]):
                if not math.isfinite(x):
                    continue
                if not b:
                    xs.append(x)
                    ys.append(y)
                elif math.isfinite(lloq):
                    bx.append(x)
                    by.append(lloq)
            xs.append(math.nan)
            ys.append(math.nan)
        for g in lines:
            c = colour.get(g, "grey")
            xs, ys = lines[g]
            if any(math.isfinite(x) for x in xs):
                ax.plot(xs, ys, "-o", color=c, lw=0.8, ms=2.5, alpha=0.4 if p.get("geometric_mean") else 0.85,
                        label=g)
            bx, by = blqs[g]
            if bx:
                ax.plot(bx, by, "o", mfc="none", color=c, ms=4, lw=0, label="BLQ (at LLOQ)" if "BLQ" not in seen else None)
                seen.add("BLQ")
        for g in p["groups"]:  # geometric mean per group at each nominal time (missing points break the line)
            pts = [(m["x"], m["geomean"]) for m in (p.get("geometric_mean") or []) if m["group"] == g]
            if pts:
                ax.plot([x for x, _ in pts], [math.nan if y is None else y for _, y in pts], "-s",
                        color=colour.get(g, "grey"), lw=2.4, ms=4, mec="black", mew=0.6,
                        label=f"{_short(g)} geometric mean", gid=f"geomean-{_short(g)}")
        if p["log"]:
            ax.set_yscale("log")
        ax.set_xlabel(p["x_label"])
        ax.set_ylabel(p["y_label"])
        ax.legend(frameon=False, fontsize=8)
        ax.grid(color="#eeeeee", lw=0.6)
        ax.set_title(f.title, fontsize=10, loc="left")
        fig.tight_layout()
        return _svg(fig)


def waterfall_svg(f: Figure) -> str:
    from matplotlib.patches import Patch

    p = f.payload
    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(9, 4))
        colour = {g: _COLOURS[i % len(_COLOURS)] for i, g in enumerate(p["groups"])}
        first = p["paramcd"][0] if p["paramcd"] else None
        for g in list(p["groups"]) + sorted({b["group"] for b in p["bars"]} - set(p["groups"])):
            for own in (True, False):  # the first PARAMCD plain, the others hatched
                at = [i for i, b in enumerate(p["bars"]) if b["group"] == g and (b["paramcd"] == first) == own]
                _bars(ax, at, [0.0] * len(at), [p["bars"][i]["value"] for i in at], 0.8, False,
                      facecolor=colour.get(g, "grey"), edgecolor="white", linewidth=0.5, hatch=None if own else "///")
        ax.set_xlim(-0.6, max(len(p["bars"]), 1) - 0.4)
        ax.axhline(0, color="black", lw=0.8)
        for y in (-50, -90):
            ax.axhline(y, color="#999999", lw=0.6, ls=":")
        values = [b["value"] for b in p["bars"]] or [0.0]
        ax.set_ylim(min(values + [-100.0]) - 5, max(values + [0.0]) + 10)
        ax.set_xticks([])
        ax.set_xlabel("Subjects")
        ax.set_ylabel(p["y_label"])
        handles = [Patch(color=colour[g], label=g) for g in p["groups"]]
        if len(p["paramcd"]) > 1:
            handles.append(Patch(facecolor="white", edgecolor="grey", hatch="///", label=", ".join(p["paramcd"][1:])))
        ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(f.title, fontsize=10, loc="left")
        fig.tight_layout()
        return _svg(fig)


def swimmer_svg(f: Figure) -> str:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    p = f.payload
    subjects = p["subjects"]
    cats = list(p["categories"]) or sorted({s["category"] for r in subjects for s in r["segments"]})
    cmap = plt.get_cmap("viridis")
    colour = {c: cmap(i / max(1, len(cats) - 1)) for i, c in enumerate(cats)}
    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(9, _row_height(len(subjects), 0.28, 1.2)))
        # one artist per kind (bars, each category's segments, each marker, the arrows), not per subject
        rows = list(reversed(subjects))
        ys = list(range(len(rows)))
        _bars(ax, ys, [0.0] * len(rows), [r["length"] for r in rows], 0.6, True, facecolor="#dddddd", linewidth=0)
        for c in cats + sorted({s["category"] for r in rows for s in r["segments"]} - set(cats)):
            seg = [(y, s) for y, r in zip(ys, rows) for s in r["segments"] if s["category"] == c]
            _bars(ax, [y for y, _ in seg], [s["start"] for _, s in seg], [s["end"] for _, s in seg], 0.6, True,
                  facecolor=colour.get(c, "#999999"), linewidth=0)
        symbols: dict[str, str] = {}
        marks: dict[tuple[str, str], tuple[list[float], list[int]]] = {}
        for y, r in zip(ys, rows):
            for m in r["markers"]:
                tx, ty = marks.setdefault((m["label"], m["symbol"]), ([], []))
                tx.append(m["time"])
                ty.append(y)
                symbols[m["label"]] = m["symbol"]
        for (_, sym), (tx, ty) in marks.items():
            ax.plot(tx, ty, sym, color="black", ms=5, mew=1.2, lw=0)
        ongoing = [(r["length"], y) for y, r in zip(ys, rows) if r["ongoing"]]
        if ongoing:  # an arrow head just after the bar
            ax.plot([x + 0.6 for x, _ in ongoing], [y for _, y in ongoing], ">", color="black", ms=4, lw=0)
        labels = [f"{r['usubjid'][-6:]} ({_short(r['group'], 8)})" for r in rows]
        _row_labels(ax, labels)
        ax.set_xlabel(f"Time ({p['unit']})")
        ax.set_xlim(0, max([r["length"] for r in subjects] + [1]) * 1.08)
        handles = [Patch(color=colour[c], label=c) for c in cats]
        handles += [Line2D([], [], marker=sym, color="black", lw=0, label=lab) for lab, sym in sorted(symbols.items())]
        handles.append(Line2D([], [], marker=">", color="black", lw=0, label="ongoing"))
        ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(f.title, fontsize=10, loc="left")
        fig.tight_layout()
        return _svg(fig)


_GRADE_COLOURS = {1: "#fdd49e", 2: "#fc8d59", 3: "#d7301f", 4: "#7f0000", 5: "#000000"}
_HATCHES = ["", "////", "....", "xxxx", "\\\\"]


def event_timeline_svg(f: Figure) -> str:
    """One row per subject, one bar per event (``<g id="event-N">``), lanes within a row when a subject
    has several events, colour by grade, hatch by event type; group labels at the right."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    p = f.payload
    events = p["events"]
    subjects = list(dict.fromkeys(e["usubjid"] for e in events))
    hatch = {t: _HATCHES[i % len(_HATCHES)] for i, t in enumerate(p["types"])}
    with matplotlib.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(9, _row_height(len(subjects), 0.3, 2.0)))
        row = {s: len(subjects) - 1 - i for i, s in enumerate(subjects)}
        lanes: dict[str, list[dict]] = {}
        for e in events:
            lanes.setdefault(e["usubjid"], []).append(e)
        bars = []  # (event number, y, height, event): drawn in one call, each bar keeps its id
        for subj, evs in lanes.items():
            h = 0.8 / len(evs)
            for j, e in enumerate(evs):
                bars.append((len(bars), row[subj] + 0.4 - (j + 0.5) * h, h * 0.9, e))
        if bars:
            drawn = ax.barh([y for _, y, _, _ in bars], [e["end"] - e["start"] for *_, e in bars],
                            left=[e["start"] for *_, e in bars], height=[h for _, _, h, _ in bars],
                            color=[_GRADE_COLOURS.get(int(e["grade"]) if e["grade"] is not None else None, "#bbbbbb")
                                   for *_, e in bars], edgecolor="#333333", lw=0.5)
            for (k, _, _, e), patch in zip(bars, drawn.patches):
                patch.set_gid(f"event-{k}")
                patch.set_hatch(("xx" if e["open_end"] else hatch.get(e["type"], "")) or None)
        _row_labels(ax, [f"{s[-6:]}" for s in reversed(subjects)])
        # group separators and labels (rows are grouped, in group order)
        right = max([e["end"] for e in events] + [1.0]) * 1.02
        ax.set_xlim(min([e["start"] for e in events] + [0.0]), right)
        ax.set_ylim(-0.6, len(subjects) - 0.4)
        for g in p["groups"]:
            ys = [row[e["usubjid"]] for e in events if e["group"] == g]
            if ys:
                if min(ys) > 0:
                    ax.axhline(min(ys) - 0.5, color="#999999", lw=0.6, ls=":")
                ax.text(right, (min(ys) + max(ys)) / 2, " " + _short(g), va="center", ha="left", fontsize=8)
        ax.set_xlabel(p["x_label"])
        grades = sorted({int(e["grade"]) for e in events if e["grade"] is not None})
        handles = [Patch(facecolor=_GRADE_COLOURS.get(g, "#bbbbbb"), edgecolor="#333333", label=f"Grade {g}")
                   for g in grades]
        handles += [Patch(facecolor="white", edgecolor="#333333", hatch=hatch[t] or None, label=t) for t in p["types"]]
        if any(e["open_end"] for e in events):
            handles.append(Patch(facecolor="white", edgecolor="#333333", hatch="xx", label="end unknown"))
        if handles:
            fig.legend(handles=handles, frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0.06, 0.0),
                       ncol=min(len(handles), 4))
        else:
            ax.text(0.5, 0.5, "no events", transform=ax.transAxes, ha="center", va="center", color="#666666")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_axisbelow(True)
        ax.grid(axis="x", color="#eeeeee", lw=0.6)
        ax.set_title(f.title, fontsize=10, loc="left")
        fig.tight_layout(rect=(0, 0.55 / fig.get_figheight(), 1, 1))  # room for the legend below
        return _svg(fig)


def render_svg(f: Figure) -> str:
    """The figure as SVG text; the hash salt is fixed per figure (its id), so marker and clip-path ids
    are reproducible and do not collide between the figures of one page."""
    with matplotlib.rc_context({"svg.hashsalt": f"cdisc-pipe-{f.id}"}):
        return {"km": km_svg, "profile": profile_svg, "waterfall": waterfall_svg, "swimmer": swimmer_svg,
                "event_timeline": event_timeline_svg}[f.kind](f)
