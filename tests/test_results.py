"""The results report (#20): hand-worked statistics, the plan format, determinism, escaping, and the
bundled study's page against an independent pandas recomputation."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape

from cdisc_pipe.errors import InputError
from cdisc_pipe.results import build_report, load_results_plan
from cdisc_pipe.results import stats
from cdisc_pipe.results.plan import ResultsPlan
from cdisc_pipe.results.tables import compute

# ------------------------------------------------------------------ exact binomial CI


def test_clopper_pearson_3_of_6_by_hand() -> None:
    # The exact 95% CI of 3/6 is [B(0.025; 3, 4), B(0.975; 4, 3)], the beta quantiles; by symmetry
    # (x = n/2) lower = 1 - upper.  The lower bound p solves P(X >= 3 | n=6, p) = 0.025:
    # P(X>=3) = 20p^3q^3 + 15p^4q^2 + 6p^5q + p^6; at p = 0.118117: 20*0.0016479*0.68595 (=0.022608)
    # + 15*0.00019465*0.77745 (=0.002270) + 6*0.000022991*0.88188 (=0.000122) + 0.0000027 = 0.025003.
    r = stats.clopper_pearson(3, 6)
    assert (r.n, r.N, r.pct) == (3, 6, 50.0)
    assert r.lower == pytest.approx(11.8117, abs=1e-3)
    assert r.upper == pytest.approx(88.1883, abs=1e-3)
    assert r.lower + r.upper == pytest.approx(100.0)


def test_clopper_pearson_closed_forms_at_0_and_n() -> None:
    # x = 0: upper = 1 - (alpha/2)^(1/n); x = n: lower = (alpha/2)^(1/n).  n = 3: 0.025^(1/3) = 0.292402
    r0, rn = stats.clopper_pearson(0, 3), stats.clopper_pearson(3, 3)
    assert r0.lower == 0.0 and r0.upper == pytest.approx(100 * (1 - 0.025 ** (1 / 3)))  # 70.7598
    assert rn.upper == 100.0 and rn.lower == pytest.approx(100 * 0.025 ** (1 / 3))  # 29.2402
    assert stats.clopper_pearson(0, 0).pct is None


# ------------------------------------------------------------------ Kaplan-Meier

# Times 1, 1+, 2, 3, 4+, 6, 7+ (+ censored): a tie of an event and a censoring at t = 1 (the censored
# subject is at risk at 1).  Event times, at risk n, events d, S(t) = prod (1 - d/n):
#   t=1: n=7 d=1  S = 6/7               = 0.857143
#   t=2: n=5 d=1  S = 6/7*4/5           = 0.685714
#   t=3: n=4 d=1  S = 0.685714*3/4      = 0.514286
#   t=6: n=2 d=1  S = 0.514286*1/2      = 0.257143
# Median = smallest t with S(t) <= 0.5 = 6.
TIME = np.array([1, 1, 2, 3, 4, 6, 7], dtype=float)
EVENT = np.array([1, 0, 1, 1, 0, 1, 0])


def test_km_survival_and_median_by_hand() -> None:
    c = stats.kaplan_meier(TIME, EVENT)
    assert c.times == [1.0, 2.0, 3.0, 6.0]
    assert c.surv == pytest.approx([6 / 7, 6 / 7 * 4 / 5, 6 / 7 * 4 / 5 * 3 / 4, 6 / 7 * 4 / 5 * 3 / 4 / 2])
    assert (c.n, c.events, c.censor_times) == (7, 4, [1.0, 4.0, 7.0])
    assert stats.km_median(c)[0] == 6.0
    assert stats.km_at(c, 5.0)[0] == pytest.approx(0.514286, abs=1e-6)  # step: S(3) holds until 6
    assert stats.km_at(c, 0.5)[0] == 1.0
    assert stats.km_at(c, 8.0) == (None, None, None)  # beyond the last observation (7): not estimable
    assert stats.number_at_risk(TIME, [0, 3, 6]) == [7, 4, 2]


def test_km_log_log_ci_by_hand() -> None:
    # Greenwood at t=3: sum d/(n(n-d)) = 1/(7*6) + 1/(5*4) + 1/(4*3) = 0.0238095 + 0.05 + 0.0833333 = 0.1571429
    # log-log: se = sqrt(0.1571429) / |ln 0.514286| = 0.396412 / 0.664976 = 0.596130
    # ln(-ln S) = ln 0.664976 = -0.408004;  +- 1.959964 * 0.596130 = +- 1.168393
    # upper S = exp(-exp(-0.408004 - 1.168393)) = exp(-0.206718) = 0.813249
    # lower S = exp(-exp(-0.408004 + 1.168393)) = exp(-2.139178) = 0.117760
    c = stats.kaplan_meier(TIME, EVENT)
    assert c.lower[2] == pytest.approx(0.117760, abs=2e-6)
    assert c.upper[2] == pytest.approx(0.813249, abs=2e-6)


def test_km_ties_of_events() -> None:
    # 2, 2, 2+, 5, 5+, 8: t=2 n=6 d=2 S=4/6; t=5 n=3 d=1 S=4/6*2/3=0.444444; t=8 n=1 d=1 S=0. Median 5.
    c = stats.kaplan_meier(np.array([2, 2, 2, 5, 5, 8.0]), np.array([1, 1, 0, 1, 0, 1]))
    assert c.surv == pytest.approx([4 / 6, 4 / 9, 0.0])
    assert stats.km_median(c)[0] == 5.0
    assert c.lower[-1] is None and c.upper[-1] is None  # S = 0: no log-log CI


def test_median_ci_brookmeyer_crowley_by_hand() -> None:
    # 1, 2, 3+, 4, 5: S = 0.8, 0.6, (3+), 0.3, 0.  The CI of the median is the set of times whose
    # pointwise log-log CI contains 0.5.  Lower CI at t=1: Greenwood 1/(5*4) = 0.05, se = sqrt(0.05)/|ln 0.8|
    # = 0.223607/0.223144 = 1.002077; ln(-ln 0.8) = -1.499940; lower = exp(-exp(-1.499940 + 1.963034))
    # = exp(-1.589043) = 0.203809 <= 0.5  ->  CI lower = 1.
    # Upper CI: t=2: 0.881756, t=4: Greenwood 0.05 + 1/12 + 1/2 = 0.633333, se = 0.795822/1.203973 = 0.660990,
    # ln(-ln 0.3) = 0.185624, upper = exp(-exp(0.185624 - 1.295514)) = exp(-0.329587) = 0.719218 >= 0.5;
    # t=5: S = 0 < 0.5  ->  CI upper = 5.  Median = 4 (S(4) = 0.3 is the first <= 0.5).
    c = stats.kaplan_meier(np.array([1, 2, 3, 4, 5.0]), np.array([1, 1, 0, 1, 1]))
    assert c.lower[0] == pytest.approx(0.203809, abs=2e-6)
    assert c.upper[2] == pytest.approx(0.719218, abs=2e-6)
    assert stats.km_median(c) == (4.0, 1.0, 5.0)
    # the example above: no upper CI ever below 0.5 -> upper limit not estimable
    assert stats.km_median(stats.kaplan_meier(TIME, EVENT)) == (6.0, 1.0, None)


# ------------------------------------------------------------------ descriptive statistics


def test_describe_and_geometric_by_hand() -> None:
    # 1, 2, 3, 6: mean 3; SD = sqrt((4 + 1 + 0 + 9)/3) = sqrt(14/3) = 2.160247; median (2+3)/2 = 2.5
    s = stats.describe([1.0, 2.0, float("nan"), 3.0, 6.0])
    assert (s.n, s.mean, s.median, s.min, s.max) == (4, 3.0, 2.5, 1.0, 6.0)
    assert s.sd == pytest.approx(math.sqrt(14 / 3))
    # 1, 10, 100: geometric mean 10; SD of ln = sqrt((2.302585^2 + 0 + 2.302585^2)/2) = 2.302585,
    # CV% = 100 * sqrt(exp(5.301898) - 1) = 100 * sqrt(199.7196) = 1413.22
    g = stats.describe_geometric([1.0, 10.0, 100.0])
    assert g.geomean == pytest.approx(10.0)
    assert g.geocv == pytest.approx(100 * math.sqrt(math.exp(math.log(10) ** 2) - 1))
    assert g.geocv == pytest.approx(1413.22, abs=0.01)
    assert (g.n, g.median, g.min, g.max) == (3, 10.0, 1.0, 100.0)


def test_describe_by_equals_describe_per_group() -> None:
    # a: 1, 2, 3, 6 (as above); b: 5 alone (no SD); c: only missing values (absent)
    v = pd.Series([1.0, 2.0, None, 3.0, 6.0, 5.0, None])
    k = pd.Series(["a", "a", "a", "a", "a", "b", "c"])
    got = stats.describe_by(v, [k])
    assert set(got) == {("a",), ("b",)}
    assert got[("a",)].n == 4 and got[("a",)].sd == pytest.approx(math.sqrt(14 / 3))
    assert (got[("a",)].mean, got[("a",)].median, got[("a",)].min, got[("a",)].max) == (3.0, 2.5, 1.0, 6.0)
    assert got[("b",)] == stats.Summary(1, 5.0, None, 5.0, 5.0, 5.0)
    assert stats.describe_by(pd.Series([None, None]), [pd.Series(["a", "b"])]) == {}


# ------------------------------------------------------------------ a tiny study through the engine

def _tiny_frames() -> dict[str, pd.DataFrame]:
    adsl = pd.DataFrame({"USUBJID": ["S1", "S2", "S3", "S4", "S5"], "TRT01A": ["Low", "Low", "High", "High", None],
                         "TRT01AN": [1.0, 1.0, 2.0, 2.0, None], "SAFFL": ["Y", "Y", "Y", "Y", "N"]})
    adlb = pd.DataFrame({
        "USUBJID": ["S1", "S2", "S3", "S4", "S1", "S2", "S3", "S4", "S5"],
        "PARAMCD": ["X"] * 9, "PARAM": ["Lab X"] * 9,
        "AVISIT": ["BASE"] * 4 + ["WEEK 1"] * 4 + ["WEEK 1"], "AVISITN": [0.0] * 4 + [1.0] * 5,
        "AVAL": [1.0, 2.0, 3.0, 6.0, 2.0, 2.0, 5.0, 10.0, 99.0],
        "CHG": [None] * 4 + [1.0, 0.0, 2.0, 4.0, 0.0],
        "RESP": ["N"] * 4 + ["Y", "N", "Y", "Y", "Y"]})
    return {"ADSL": adsl, "ADLB": adlb}


def _tiny_plan(**extra) -> ResultsPlan:
    return ResultsPlan.model_validate({
        "title": "Tiny", "by": {"variable": "TRT01A", "order": "TRT01AN", "label": "Arm"},
        "populations": {"SAF": {"flag": "SAFFL", "label": "Safety"}},
        "analyses": [
            {"id": "V", "kind": "by_visit", "title": "By visit", "population": "SAF", "dataset": "ADLB",
             "paramcd": ["X"]},
            {"id": "R", "kind": "rate", "title": "Responders <at week 1>", "population": "SAF", "dataset": "ADLB",
             "paramcd": ["X"], "variable": "RESP", "values": ["Y"], "where": {"equals": {"AVISIT": ["WEEK 1"]}}},
        ], **extra})


def test_by_visit_summary_by_hand() -> None:
    res = compute(_tiny_plan(), _tiny_frames())
    t = next(t for t in res.tables if t.id == "V-X")
    rows = {(r[0], r[1]): r for r in t.rows}
    # BASE overall: 1, 2, 3, 6 -> n 4, mean 3.00 (SD 2.16), median 2.50, range 1-6 (S5 is not in SAFFL)
    assert rows[("BASE", "Overall")][2:6] == ["4", "3.00 (2.16)", "2.50", "1.00, 6.00"]
    # WEEK 1, High: AVAL 5, 10 -> mean 7.50, SD sqrt(2*2.5^2/1) = 3.54; CHG 2, 4 -> mean 3.00 (SD 1.41)
    assert rows[("WEEK 1", "High")][2:10] == ["2", "7.50 (3.54)", "7.50", "5.00, 10.00", "2", "3.00 (1.41)", "3.00",
                                               "2.00, 4.00"]
    assert [r[1] for r in t.rows[:3]] == ["Low", "High", "Overall"]  # groups by TRT01AN, then overall
    assert "ADLB, PARAMCD = X" in t.source and "N = 4" in t.population


def test_rate_counts_and_population() -> None:
    t = next(t for t in compute(_tiny_plan(), _tiny_frames()).tables if t.id == "R")
    # week 1 responders among SAFFL=Y: Low S1 (1/2), High S3, S4 (2/2), overall 3/4 (S5 not in the population)
    assert [r[:2] for r in t.rows] == [["Low", "1/2"], ["High", "2/2"], ["Overall", "3/4"]]
    assert t.data[2]["ci_lower"] == pytest.approx(stats.clopper_pearson(3, 4).lower)
    assert "AVISIT = WEEK 1" in t.source


def test_report_is_deterministic_and_escaped() -> None:
    plan, frames = _tiny_plan(), _tiny_frames()
    _, html1, json1 = build_report(plan, frames, "ST<1>")
    _, html2, json2 = build_report(plan, frames, "ST<1>")
    assert html1 == html2 and json1 == json2
    assert "Responders &lt;at week 1&gt;" in html1 and "<at week 1>" not in html1
    assert "ST&lt;1&gt;" in html1
    json.loads(json1)


def test_km_figure_svg_is_deterministic() -> None:
    frames = {"ADSL": pd.DataFrame({"USUBJID": [f"S{i}" for i in range(7)], "TRT01A": ["A"] * 7,
                                    "TRT01AN": [1.0] * 7, "SAFFL": ["Y"] * 7}),
              "ADTTE": pd.DataFrame({"USUBJID": [f"S{i}" for i in range(7)], "PARAMCD": ["OS"] * 7,
                                     "PARAM": ["Overall survival"] * 7, "AVAL": TIME, "CNSR": 1.0 - EVENT})}
    plan = ResultsPlan.model_validate({
        "title": "T", "by": {"variable": "TRT01A"}, "populations": {"SAF": {"flag": "SAFFL", "label": "Safety"}},
        "analyses": [{"id": "K", "kind": "tte", "title": "KM", "population": "SAF", "dataset": "ADTTE",
                      "paramcd": ["OS"], "risk_times": [0, 3, 6]}]})
    res, html1, _ = build_report(plan, frames, "S")
    _, html2, _ = build_report(plan, frames, "S")
    assert html1 == html2
    assert html1.count("<svg") == 1 and "Date" not in html1.split("<svg")[1][:2000]
    t = res.tables[0]
    assert t.rows[0][1:4] == ["7", "4", "6.0 (1.0, NE)"]


def test_plan_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "results.yaml"
    bad.write_text("title: x\nby: {variable: TRT01A}\npopulations: {SAF: {flag: SAFFL, label: S}}\n"
                   "analyses:\n  - {id: A, kind: anova, title: t, population: SAF, dataset: ADSL}\n"
                   "  - {id: B, kind: rate, title: t, population: ITT, dataset: ADSL, values: [Y]}\n")
    with pytest.raises(InputError) as err:
        load_results_plan(bad)
    assert "results.yaml" in str(err.value) and "analyses.0.kind" in str(err.value)


# ------------------------------------------------------------------ the bundled study


def test_bundled_plan_is_valid(root: Path) -> None:
    plan = load_results_plan(root / "specs" / "results.yaml")
    kinds = {a.kind for a in plan.analyses}
    assert {"rate", "tte", "ae_overview", "ae_grade", "by_visit", "pk_summary", "profile"} <= kinds


def _adam(run: Path, name: str) -> pd.DataFrame:
    from cdisc_pipe.adam.io import read_sdtm_file

    return read_sdtm_file(run / "adam" / f"{name}.xpt")


def _table(doc: dict, tid: str) -> dict:
    return next(t for t in doc["tables"] if t["id"] == tid)


def test_bundled_page_names_sources_and_has_figures(bundled_run: Path, root: Path) -> None:
    page = (bundled_run / "reports" / "results.html").read_text(encoding="utf-8")
    doc = json.loads((bundled_run / "reports" / "results.json").read_text(encoding="utf-8"))
    assert doc["tables"] and not doc["problems"]
    for t in doc["tables"]:
        assert f'<section id="{t["id"]}"' in page
        for key in ("source", "population", "method"):  # each as the autoescaped text
            assert str(escape(t[key])) in page, (t["id"], key)
    assert page.count("<svg") == len(doc["figures"]) >= 6
    assert all(f["population"] and str(escape(f["population"])) in page for f in doc["figures"])
    assert "<script" not in page.lower() and "http://" not in re.sub(r'xmlns(:\w+)?="[^"]+"', "", page)
    manifest = json.loads((bundled_run / "manifest.json").read_text())
    assert "reports/results.html" in manifest["outputs"]


def test_bundled_orr_and_dlt_equal_a_pandas_recomputation(bundled_run: Path) -> None:
    doc = json.loads((bundled_run / "reports" / "results.json").read_text(encoding="utf-8"))
    adsl, adrs = _adam(bundled_run, "adsl"), _adam(bundled_run, "adrs")
    from scipy.stats import beta

    def expected(pop: pd.DataFrame, yes: set) -> dict:
        out = {}
        for g, d in list(pop.groupby("TRT01A")) + [("Overall", pop)]:
            n, N = int(d["USUBJID"].isin(yes).sum()), len(d)
            lo = 0.0 if n == 0 else beta.ppf(0.025, n, N - n + 1)
            hi = 1.0 if n == N else beta.ppf(0.975, n + 1, N - n)
            out[g] = (n, N, 100 * lo, 100 * hi)
        return out

    eff = adsl[adsl["EFFFL"] == "Y"]
    rsp = set(adrs.loc[(adrs["PARAMCD"] == "RSPM3") & (adrs["AVALC"] == "Y"), "USUBJID"])
    dlt_pop = adsl[adsl["DLTEVLFL"] == "Y"]
    dlt = set(adsl.loc[adsl["DLTFL"] == "Y", "USUBJID"])
    for tid, exp in (("T-ORR-M3", expected(eff, rsp)), ("T-DLT", expected(dlt_pop, dlt))):
        got = {d["group"]: (d["n"], d["N"], d["ci_lower"], d["ci_upper"]) for d in _table(doc, tid)["data"]}
        assert set(got) == set(exp)
        for g, (n, N, lo, hi) in exp.items():
            assert got[g][:2] == (n, N)
            assert got[g][2] == pytest.approx(lo, abs=1e-6) and got[g][3] == pytest.approx(hi, abs=1e-6)
    assert _table(doc, "T-DLT")["data"][-1]["N"] == len(dlt_pop)


def test_bundled_km_median_equals_a_recomputation(bundled_run: Path) -> None:
    doc = json.loads((bundled_run / "reports" / "results.json").read_text(encoding="utf-8"))
    adsl, adtte = _adam(bundled_run, "adsl"), _adam(bundled_run, "adtte")
    pfs = adtte[(adtte["PARAMCD"] == "PFS") & adtte["USUBJID"].isin(adsl.loc[adsl["EFFFL"] == "Y", "USUBJID"])]
    # product-limit by hand over the distinct event times
    t, e = pfs["AVAL"].to_numpy() / 30.4375, (pfs["CNSR"] == 0).to_numpy()
    s, median = 1.0, None
    for x in sorted(set(t[e])):
        s *= 1 - ((t == x) & e).sum() / (t >= x).sum()
        if median is None and s <= 0.5:
            median = x
    overall = _table(doc, "T-KM-PFS")["data"][-1]
    assert overall["group"] == "Overall" and overall["events"] == int(e.sum())
    assert overall["median"] == pytest.approx(median) if median is not None else overall["median"] is None


def test_results_command_rebuilds_the_same_bytes(bundled_run: Path, tmp_path: Path) -> None:
    from cdisc_pipe.cli import main

    out = tmp_path / "again"
    assert main(["results", "--out", str(out), "--adam", str(bundled_run / "adam"), "-q"]) == 0
    for name in ("results.html", "results.json"):
        assert (out / "reports" / name).read_bytes() == (bundled_run / "reports" / name).read_bytes()


def test_bundled_headline_values_agree_with_the_generator_targets(bundled_run: Path) -> None:
    """The synthetic study was generated to reproduce a published phase 1 (tests/test_synth_headline.py):
    ORR ~100%, CR or better ~72%, grade 1-2 CRS ~70%, 12-month PFS ~58%; bands of about +/- 3 of 17
    subjects, as there."""
    doc = json.loads((bundled_run / "reports" / "results.json").read_text(encoding="utf-8"))

    def overall(tid: str, row: str | None = None) -> dict:
        return next(d for d in _table(doc, tid)["data"] if d["group"] == "Overall" and (row is None or d["row"] == row))

    assert overall("T-ORR-M3")["pct"] >= 88
    assert 55 <= overall("T-CR")["pct"] <= 90
    crs = sum(overall("T-CRS", f"Grade {k}")["n"] for k in (1, 2)) / overall("T-CRS", "Any grade")["N"]
    assert 0.5 <= crs <= 0.9
    assert 0.40 <= overall("T-KM-PFS")["landmarks"]["12.0"]["surv"] <= 0.76


@pytest.mark.browser
def test_bundled_page_in_headless_chromium_every_figure_has_content(bundled_run: Path) -> None:
    """Chromium opens the page without errors; each figure, rendered on its own, draws ink (not a
    blank box); screenshots of the page and of each figure go to the test artifacts."""
    import lxml.html
    from matplotlib.image import imread

    from tests.test_define_html import ARTIFACTS, _chromium, _run_chromium

    binary = _chromium()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = (bundled_run / "reports" / "results.html").resolve()
    dom = _run_chromium(binary, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for bad in ("Uncaught", "Failed to load resource", "Page load failed", "ERR_FILE_NOT_FOUND"):
        assert bad not in dom.stderr, dom.stderr[-2000:]
    doc = lxml.html.fromstring(dom.stdout)
    figures = doc.xpath("//figure")
    assert len(figures) >= 6 and len(doc.xpath("//section[@class='table']")) >= 15
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "results-page.png"
    res = _run_chromium(binary, "--window-size=1200,2000", "--hide-scrollbars", f"--screenshot={shot}", page.as_uri())
    assert res.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    head = page.read_text(encoding="utf-8").split("<body>")[0]
    for fig in figures:
        fid = fig.get("id")
        alone = ARTIFACTS / f"results-{fid}.html"
        alone.write_text(head + "<body>" + lxml.html.tostring(fig, encoding="unicode") + "</body></html>",
                         encoding="utf-8")
        png = ARTIFACTS / f"results-{fid}.png"
        res = _run_chromium(binary, "--window-size=900,800", "--hide-scrollbars", f"--screenshot={png}",
                            alone.resolve().as_uri())
        assert res.returncode == 0, res.stderr[-2000:]
        img = imread(png)[:, :, :3]
        ink = (img.min(axis=2) < 0.8).mean()  # dark or coloured pixels
        colour = (img.max(axis=2) - img.min(axis=2) > 0.3).mean()  # curves/markers are coloured
        assert ink > 0.01 and colour > 0.001, (fid, ink, colour)


def test_shift_and_waterfall_on_a_tiny_study() -> None:
    frames = _tiny_frames()
    lb = frames["ADLB"].assign(ABLFL=["Y"] * 4 + [None] * 5, PCHG=[None] * 4 + [100.0, 0.0, 66.7, 66.7, 0.0])
    frames["ADLB"] = lb
    plan = ResultsPlan.model_validate({
        "title": "T", "by": {"variable": "TRT01A", "order": "TRT01AN"},
        "populations": {"SAF": {"flag": "SAFFL", "label": "Safety"}},
        "analyses": [{"id": "S", "kind": "shift", "title": "Shift", "population": "SAF", "dataset": "ADLB",
                      "paramcd": ["X"], "variable": "AVAL"},
                     {"id": "W", "kind": "waterfall", "title": "Waterfall", "population": "SAF", "dataset": "ADLB",
                      "paramcd": ["X"], "variable": "PCHG"}]})
    res = compute(plan, frames)
    shift = next(t for t in res.tables if t.id == "S-X")
    # baseline -> worst (max) post-baseline AVAL: S1 1->2, S2 2->2 (Low); S3 3->5, S4 6->10 (High)
    assert shift.columns == ["Group", "Baseline", "Worst: 1", "Worst: 2", "Worst: 3", "Worst: 5", "Worst: 6",
                             "Worst: 10", "Worst: Missing", "Total"]
    low = {r[1]: r[2:] for r in shift.rows if r[0] == "Low"}
    assert low["1"] == ["0", "1", "0", "0", "0", "0", "0", "1"] and low["2"] == ["0", "1", "0", "0", "0", "0", "0", "1"]
    wf = next(t for t in res.tables if t.id == "W")
    # sorted from the largest to the smallest best (lowest) PCHG; ties by subject: S1 100, S3 66.7, S4 66.7, S2 0
    assert [r[0] for r in wf.rows] == ["S1", "S3", "S4", "S2"]
    assert [f.kind for f in res.figures] == ["waterfall"]


def test_swimmer_bars_segments_and_markers() -> None:
    frames = _tiny_frames()
    frames["ADTTE"] = pd.DataFrame({"USUBJID": ["S1", "S2", "S3", "S4"], "PARAMCD": ["OS"] * 4,
                                    "AVAL": [10.0, 20.0, 5.0, 30.0], "CNSR": [1.0, 0.0, 0.0, 1.0]})
    frames["ADRS"] = pd.DataFrame({"USUBJID": ["S1", "S1", "S4"], "PARAMCD": ["OVR"] * 3, "ADY": [2.0, 6.0, 3.0],
                                   "AVALC": ["PR", "PD", "CR"]})
    plan = ResultsPlan.model_validate({
        "title": "T", "by": {"variable": "TRT01A", "order": "TRT01AN"},
        "populations": {"SAF": {"flag": "SAFFL", "label": "Safety"}},
        "analyses": [{"id": "SW", "kind": "swimmer", "title": "Swim", "population": "SAF", "dataset": "ADTTE",
                      "paramcd": ["OS"], "categories": ["CR", "PR", "PD"],
                      "segments": {"dataset": "ADRS", "paramcd": ["OVR"]},
                      "markers": [{"label": "PD", "dataset": "ADRS", "paramcd": ["OVR"],
                                   "where": {"equals": {"AVALC": ["PD"]}}}]}]})
    res, html, _ = build_report(plan, frames, "S")
    subj = res.figures[0].payload["subjects"]
    # group order Low (S2 20, S1 10: longest first), then High (S4 30, S3 5)
    assert [r["usubjid"] for r in subj] == ["S2", "S1", "S4", "S3"]
    s1 = subj[1]
    assert s1["ongoing"] and s1["segments"] == [{"start": 2.0, "end": 6.0, "category": "PR"},
                                                {"start": 6.0, "end": 10.0, "category": "PD"}]
    assert s1["markers"] == [{"label": "PD", "symbol": "x", "time": 6.0}] and not subj[0]["ongoing"]
    assert html.count("<svg") == 1


def test_bundled_chemistry_by_visit_equals_a_groupby(bundled_run: Path) -> None:
    """T-CHEM (one table per chemistry PARAMCD): every visit x dose level cell of AVAL and CHG equals a
    pandas groupby over ADLB (SAFFL = Y, BASETYPE = PRE-LD)."""
    doc = json.loads((bundled_run / "reports" / "results.json").read_text(encoding="utf-8"))
    adsl, adlb = _adam(bundled_run, "adsl"), _adam(bundled_run, "adlb")
    saf = adsl.loc[adsl["SAFFL"] == "Y", ["USUBJID"]]
    codes = ["ALT", "AST", "BILI", "ALB", "CREAT", "CA", "K", "LDH", "B2MICG"]
    lb = adlb[adlb["PARAMCD"].isin(codes) & (adlb["BASETYPE"] == "PRE-LD")].merge(saf, on="USUBJID")
    checked = 0
    for pcd in codes:
        t = _table(doc, f"T-CHEM-{pcd}")
        assert "BASETYPE = PRE-LD" in t["source"] and t["title"].startswith("Blood chemistry")
        got = {(d["visit"], d["group"], d["variable"]): d for d in t["data"]}
        sub = lb[lb["PARAMCD"] == pcd]
        for var in ("AVAL", "CHG"):
            for (vis, grp), v in sub.groupby(["AVISIT", "TRT01A"])[var]:
                v = v.dropna()
                if (vis, grp, var) not in got:
                    continue  # a visit the plan does not list
                d = got[(vis, grp, var)]
                assert d["n"] == len(v), (pcd, vis, grp, var)
                if len(v):
                    assert d["mean"] == pytest.approx(v.mean()) and d["median"] == pytest.approx(v.median())
                    assert (d["min"], d["max"]) == pytest.approx((v.min(), v.max()))
                    checked += 1
        base = got[("LYMPHODEPLETION", "Overall", "AVAL")]
        assert base["n"] == sub.loc[sub["AVISIT"] == "LYMPHODEPLETION", "AVAL"].notna().sum()
    assert checked > 100


# ------------------------------------------------------------------ peak and time to peak


def _peak_frames() -> dict[str, pd.DataFrame]:
    """ADLB-like records of parameter IL (and CRPX for S1); AVISITN 2 is the baseline visit."""
    rows = [  # USUBJID, PARAMCD, AVISITN, ADY, AVAL, ABLFL, DTYPE
        ("S1", "IL", 1.0, -5.0, 50.0, None, None),  # before the baseline: not post-baseline
        ("S1", "IL", 2.0, 1.0, 40.0, "Y", None),  # the baseline itself: not post-baseline
        ("S1", "IL", 3.0, 2.0, 10.0, None, None),
        ("S1", "IL", 4.0, 5.0, 20.0, None, None),  # the peak: 20 at day 5 ...
        ("S1", "IL", 5.0, 9.0, 20.0, None, None),  # ... tied at day 9: the earliest time wins
        ("S1", "IL", None, 5.0, 999.0, None, "MAXIMUM"),  # a derived record without AVISITN: ignored
        ("S2", "IL", 2.0, 1.0, 1.0, "Y", None),
        ("S2", "IL", 3.0, 2.0, 5.0, None, None),  # peak 5 at day 2
        ("S2", "IL", 4.0, 5.0, None, None, None),  # missing value: ignored
        ("S2", "IL", 5.0, 9.0, 4.0, None, None),
        ("S3", "IL", 2.0, 1.0, 2.0, "Y", None),
        ("S3", "IL", 3.0, 2.0, 80.0, None, None),  # peak 80 at day 2
        ("S3", "IL", 4.0, 5.0, 40.0, None, None),
        ("S4", "IL", 3.0, 2.0, 100.0, None, None),  # no baseline record: no post-baseline peak
        ("S5", "IL", 2.0, 1.0, 1.0, "Y", None),  # not in the safety population
        ("S5", "IL", 3.0, 2.0, 1000.0, None, None),
        ("S1", "CRPX", 2.0, 1.0, 3.0, "Y", None),
        ("S1", "CRPX", 3.0, 2.0, 7.0, None, None),  # 7 at day 2 and day 5: day 2
        ("S1", "CRPX", 4.0, 5.0, 7.0, None, None),
    ]
    lb = pd.DataFrame(rows, columns=["USUBJID", "PARAMCD", "AVISITN", "ADY", "AVAL", "ABLFL", "DTYPE"])
    lb["PARAM"] = lb["PARAMCD"].map({"IL": "Interleukin X (ng/L)", "CRPX": "CRP X (mg/L)"})
    return {"ADSL": _tiny_frames()["ADSL"], "ADLB": lb}


def _peak_plan(**over) -> ResultsPlan:
    a = {"id": "P", "kind": "peak", "title": "Peak", "population": "SAF", "dataset": "ADLB",
         "paramcd": ["IL", "CRPX"], "variable": "AVAL", "time_variable": "ADY", **over}
    return ResultsPlan.model_validate({"title": "T", "by": {"variable": "TRT01A", "order": "TRT01AN"},
                                       "populations": {"SAF": {"flag": "SAFFL", "label": "Safety"}},
                                       "analyses": [a]})


def test_peak_and_time_to_peak_by_hand() -> None:
    res = compute(_peak_plan(), _peak_frames())
    assert not res.problems
    t = res.tables[0]
    d = {(x["paramcd"], x["group"]): x for x in t.data}
    # Low: S1 20 at day 5 (tie with day 9; the baseline 40 and the pre-baseline 50 do not count), S2 5 at day 2.
    # geometric mean sqrt(20 * 5) = 10; logs 2.995732, 1.609438 differ by ln 4 = 1.386294, so the SD of the
    # logs is ln4/sqrt(2) = 0.980258, s^2 = 0.960906; CV% = 100 * sqrt(exp(0.960906) - 1) = 100 * sqrt(1.614097)
    # = 127.05.  Time to peak: median (2 + 5)/2 = 3.5.
    low = d[("IL", "Low")]
    assert low["peak"]["n"] == 2 and low["peak"]["geomean"] == pytest.approx(10.0)
    assert low["peak"]["geocv"] == pytest.approx(127.05, abs=0.01)
    assert (low["peak"]["median"], low["peak"]["min"], low["peak"]["max"]) == (12.5, 5.0, 20.0)
    assert (low["time_to_peak"]["median"], low["time_to_peak"]["min"], low["time_to_peak"]["max"]) == (3.5, 2.0, 5.0)
    # High: S3 80 at day 2 (S4 has no baseline record): one subject, no CV
    high = d[("IL", "High")]
    assert (high["peak"]["n"], high["peak"]["geomean"], high["peak"]["geocv"]) == (1, pytest.approx(80.0), None)
    # Overall: 20, 5, 80 -> geometric mean (20 * 5 * 80)^(1/3) = 8000^(1/3) = 20; median 20; times 5, 2, 2 -> 2
    ov = d[("IL", "Overall")]
    assert ov["peak"]["geomean"] == pytest.approx(20.0) and ov["peak"]["median"] == 20.0
    assert ov["time_to_peak"]["median"] == 2.0 and ov["peak"]["max"] == 80.0  # S5 (1000) is not in SAFFL
    # CRPX: S1 7 at days 2 and 5 -> day 2
    assert d[("CRPX", "Low")]["time_to_peak"]["median"] == 2.0 and d[("CRPX", "Low")]["peak"]["max"] == 7.0
    rows = {(r[0], r[1]): r for r in t.rows}
    assert rows[("Interleukin X (ng/L) [IL]", "Low")][2:] == ["2", "10.0", "127.0", "12.5", "5.0, 20.0",
                                                            "3.5 (2.0, 5.0)"]  # 1 decimal: median 10-1000
    assert t.footnotes == ["Subjects without a post-baseline value of any listed parameter: S4"]
    assert "earliest time" in t.method and "ADLB, PARAMCD in (IL, CRPX)" in t.source
    assert t.columns[-1] == "Time to peak (days), median (min, max)"
    blank = compute(_peak_plan(where={"equals": {"DTYPE": [""]}}), _peak_frames()).tables[0]
    assert "where DTYPE = (blank)" in blank.source and blank.data == t.data  # the derived record never counted


def test_peak_needs_one_baseline_per_subject_and_its_keys() -> None:
    frames = _peak_frames()
    frames["ADLB"] = pd.concat([frames["ADLB"], frames["ADLB"].iloc[[1]]])  # a second baseline of S1 IL
    res = compute(_peak_plan(), frames)
    assert not res.tables and "more than one baseline record" in res.problems[0]
    with pytest.raises(Exception, match="time_variable"):
        ResultsPlan.model_validate({"title": "T", "by": {"variable": "TRT01A"},
                                    "populations": {"SAF": {"flag": "SAFFL", "label": "S"}},
                                    "analyses": [{"id": "P", "kind": "peak", "title": "P", "population": "SAF",
                                                  "dataset": "ADLB", "paramcd": ["IL"], "variable": "AVAL"}]})


# ------------------------------------------------------------------ event timeline


def test_event_timeline_one_bar_per_event() -> None:
    frames = _tiny_frames()
    frames["ADAE"] = pd.DataFrame({
        "USUBJID": ["S1", "S1", "S3", "S2", "S5", "S4"],
        "AEDECOD": ["CRS", "ICANS", "CRS", "CRS", "CRS", "Rash"],
        "ASTDY": [3.0, 5.0, 2.0, 4.0, 1.0, 2.0], "AENDY": [6.0, 5.0, None, None, 2.0, 3.0],
        "ADURN": [4.0, 1.0, 4.0, None, 2.0, 2.0], "ATOXGRN": [2.0, 1.0, 3.0, 1.0, 1.0, 1.0]})
    plan = ResultsPlan.model_validate({
        "title": "T", "by": {"variable": "TRT01A", "order": "TRT01AN"},
        "populations": {"SAF": {"flag": "SAFFL", "label": "Safety"}},
        "analyses": [{"id": "TL", "kind": "event_timeline", "title": "CRS/ICANS timeline", "population": "SAF",
                      "dataset": "ADAE", "where": {"equals": {"AEDECOD": ["CRS", "ICANS"]}}, "variable": "AEDECOD",
                      "onset_variable": "ASTDY", "end_variable": "AENDY", "duration_variable": "ADURN",
                      "x_label": "Study day"}]})
    res, page, doc = build_report(plan, frames, "S")
    ev = res.figures[0].payload["events"]
    # S5 is not in SAFFL, S4's Rash fails the where: 4 events.  Rows: Low (S1 first onset 3, S2 4), High (S3).
    # A bar covers onset..end inclusive: S1 CRS days 3-6 -> [3, 7) (length 4 = ADURN); ICANS day 5 -> [5, 6);
    # S3 no end: onset + ADURN = [2, 6); S2 neither: one hatched day [4, 5), open end.
    assert [(e["usubjid"], e["type"], e["start"], e["end"], e["open_end"], e["grade"]) for e in ev] == [
        ("S1", "CRS", 3.0, 7.0, False, 2.0), ("S1", "ICANS", 5.0, 6.0, False, 1.0),
        ("S2", "CRS", 4.0, 5.0, True, 1.0), ("S3", "CRS", 2.0, 6.0, False, 3.0)]
    svg = page.split('<figure id="TL"')[1].split("</figure>")[0]
    assert len(re.findall(r'<g id="event-\d+"', svg)) == len(ev) == 4
    assert "Grade 3" in svg and "Study day" in svg and "ICANS" in svg
    assert json.loads(doc)["figures"][0]["events"][0]["end"] == 7.0
    assert "3 subjects, 4 events" in res.figures[0].note
    assert res.figures[0].population == "Safety (ADSL.SAFFL = Y; N = 4)"
    assert "<dt>Population</dt><dd>Safety (ADSL.SAFFL = Y; N = 4)</dd>" in page


def test_bundled_cytokine_peak_agrees_with_adam_maximum_records(bundled_run: Path) -> None:
    """T-CYTPEAK (engine: post-baseline by AVISITN, earliest time on ties) against the ADaM's own
    post-infusion peak records (DTYPE = MAXIMUM, derived by the ADLB plan from the infusion time):
    the overall geometric mean and median of IL-6, CRP and ferritin peaks, and the time-to-peak median."""
    doc = json.loads((bundled_run / "reports" / "results.json").read_text(encoding="utf-8"))
    adsl, adlb = _adam(bundled_run, "adsl"), _adam(bundled_run, "adlb")
    saf = set(adsl.loc[adsl["SAFFL"] == "Y", "USUBJID"])
    got = {(d["paramcd"], d["group"]): d for d in _table(doc, "T-CYTPEAK")["data"]}
    for pcd in ("INTLK6", "CRP", "FERRITIN"):
        mx = adlb[(adlb["PARAMCD"] == pcd) & (adlb["DTYPE"] == "MAXIMUM") & (adlb["BASETYPE"] == "PRE-INFUSION")
                  & adlb["USUBJID"].isin(saf)]
        ov = got[(pcd, "Overall")]
        assert ov["peak"]["n"] == len(mx) > 10
        assert ov["peak"]["geomean"] == pytest.approx(float(np.exp(np.log(mx["AVAL"]).mean())))
        assert ov["peak"]["median"] == pytest.approx(float(mx["AVAL"].median()))
        assert ov["time_to_peak"]["median"] == pytest.approx(float(mx["ADY"].median()))
    assert {g for p, g in got} >= {"Overall"} and len({g for p, g in got}) == 4


# ------------------------------------------------------------------ profile: geometric mean by nominal time


def test_profile_geometric_mean_by_nominal_time_by_hand() -> None:
    nan = float("nan")
    pc = pd.DataFrame({
        "USUBJID": ["S1", "S2"] * 3 + ["S3", "S4"] * 2,
        "NFRLT": [1.0, 1.0, 7.0, 7.0, 28.0, 28.0, 1.0, 1.0, 7.0, 7.0],
        "AFRLT": [1.1, 0.9, 7.2, 6.8, 29.0, 27.5, 1.0, 1.05, 7.1, 7.3],
        "AVAL": [100.0, 400.0, 1000.0, nan, nan, 0.0, 10.0, 1000.0, nan, 2000.0],
        "ALLOQ": [50.0] * 8 + [nan, 50.0]})
    pc["PARAMCD"] = "CAR"
    frames = {"ADSL": _tiny_frames()["ADSL"], "ADPC": pc}
    plan = ResultsPlan.model_validate({
        "title": "T", "by": {"variable": "TRT01A", "order": "TRT01AN"},
        "populations": {"SAF": {"flag": "SAFFL", "label": "Safety"}},
        "analyses": [{"id": "PR", "kind": "profile", "title": "Profile", "population": "SAF", "dataset": "ADPC",
                      "paramcd": ["CAR"], "lloq_variable": "ALLOQ", "mean_by": "NFRLT", "mean_min_n": 2}]})
    res, page, doc = build_report(plan, frames, "S")
    gm = {(m["group"], m["x"]): m for m in res.figures[0].payload["geometric_mean"]}
    # Low, day 1: sqrt(100 * 400) = 200.  Day 7: S2 BLQ -> LLOQ/2 = 25: sqrt(1000 * 25) = sqrt(25000) = 158.1139,
    # 1 of 2 quantifiable (half: shown).  Day 28: both BLQ (missing and 0) -> 0 of 2 quantifiable: not shown.
    assert gm[("Low", 1.0)]["geomean"] == pytest.approx(200.0)
    assert gm[("Low", 7.0)]["geomean"] == pytest.approx(158.1139, abs=1e-4)
    assert (gm[("Low", 7.0)]["n"], gm[("Low", 7.0)]["n_quantifiable"]) == (2, 1)
    assert gm[("Low", 28.0)]["geomean"] is None and gm[("Low", 28.0)]["n"] == 2
    # High, day 1: sqrt(10 * 1000) = 100.  Day 7: S3 BLQ without an LLOQ is left out: 2000 alone (n = 1 <
    # mean_min_n 2): not shown.
    assert gm[("High", 1.0)]["geomean"] == pytest.approx(100.0)
    assert (gm[("High", 7.0)]["geomean"], gm[("High", 7.0)]["n"], gm[("High", 7.0)]["n_quantifiable"]) == (None, 1, 1)
    assert 'id="geomean-Low"' in page and 'id="geomean-High"' in page
    assert "LLOQ/2" in res.figures[0].note and "at least 2 samples of which at least half" in res.figures[0].note
    # the default minimum is 3 samples: no time of this fixture qualifies
    plan3 = ResultsPlan.model_validate({**plan.model_dump(exclude={"path"}), "analyses": [
        {**plan.analyses[0].model_dump(exclude_unset=True), "mean_min_n": 3}]})
    assert all(m["geomean"] is None for m in compute(plan3, frames).figures[0].payload["geometric_mean"])
    assert json.loads(doc)["figures"][0]["geometric_mean"][0]["geomean"] == pytest.approx(100.0)  # High, day 1


def test_km_titles_and_axis_use_the_plan_time_unit() -> None:
    frames = {"ADSL": pd.DataFrame({"USUBJID": [f"S{i}" for i in range(7)], "TRT01A": ["A"] * 7,
                                    "TRT01AN": [1.0] * 7, "SAFFL": ["Y"] * 7}),
              "ADTTE": pd.DataFrame({"USUBJID": [f"S{i}" for i in range(7)], "PARAMCD": ["OS"] * 7,
                                     "PARAM": ["Overall Survival (Days)"] * 7, "AVALU": ["DAYS"] * 7,
                                     "AVAL": TIME * 30.4375, "CNSR": 1.0 - EVENT})}

    def run(**extra) -> tuple:
        plan = ResultsPlan.model_validate({
            "title": "T", "by": {"variable": "TRT01A"}, "populations": {"SAF": {"flag": "SAFFL", "label": "S"}},
            "analyses": [{"id": "K", "kind": "tte", "title": "KM", "population": "SAF", "dataset": "ADTTE",
                          "paramcd": ["OS"], "time_divisor": 30.4375, "time_unit": "months", **extra}]})
        res, page, _ = build_report(plan, frames, "S")
        return res, page.split('<figure id="F-K-OS"')[1]

    res, svg = run()
    assert res.tables[0].title == "KM: Overall Survival (months)" and "(Days)" not in svg
    assert "Time (months)" in svg  # the x-axis title (SVG text kept as text)
    assert "AVAL (days) / 30.4375 = months" in res.tables[0].method
    assert res.tables[0].rows[0][3] == "6.0 (1.0, NE)"  # days / 30.4375: the hand-worked median of 6 months
    _, svg = run(x_label="Time since infusion")
    assert "Time since infusion (months)" in svg


def test_by_visit_categories_by_hand() -> None:
    plan = _tiny_plan()
    a = {**plan.analyses[0].model_dump(exclude_unset=True), "id": "C", "variable": "RESP", "categories": ["Y", "N"]}
    plan = ResultsPlan.model_validate({**plan.model_dump(exclude={"path"}), "analyses": [a]})
    t = compute(plan, _tiny_frames()).tables[0]
    rows = {(r[0], r[1]): r[2:] for r in t.rows}
    # BASE: S1-S4 all N; WEEK 1: S1 Y, S2 N (Low), S3 Y, S4 Y (High); S5 (Y) is not in SAFFL
    assert rows[("BASE", "Low")] == ["2", "0 (0.0%)", "2 (100.0%)"]
    assert rows[("WEEK 1", "Low")] == ["2", "1 (50.0%)", "1 (50.0%)"]
    assert rows[("WEEK 1", "High")] == ["2", "2 (100.0%)", "0 (0.0%)"]
    assert rows[("WEEK 1", "Overall")] == ["4", "3 (75.0%)", "1 (25.0%)"]
    assert t.columns == ["Visit", "Arm", "N", "Y", "N"] and "subjects by RESP per visit" in t.method


def test_shift_of_categories_by_hand() -> None:
    frames = _tiny_frames()
    frames["ADLB"] = frames["ADLB"].assign(
        ABLFL=["Y"] * 4 + [None] * 5,
        PEC=["NORMAL", "ABNORMAL", "NORMAL", "NORMAL", "ABNORMAL", "NORMAL", "NORMAL", "UNKNOWN", "ABNORMAL"])
    plan = ResultsPlan.model_validate({
        "title": "T", "by": {"variable": "TRT01A", "order": "TRT01AN"},
        "populations": {"SAF": {"flag": "SAFFL", "label": "Safety"}},
        "analyses": [{"id": "S", "kind": "shift", "title": "Shift", "population": "SAF", "dataset": "ADLB",
                      "paramcd": ["X"], "variable": "PEC", "categories": ["NORMAL", "ABNORMAL"]}]})
    t = compute(plan, frames).tables[0]
    assert t.columns == ["Group", "Baseline", "Worst: NORMAL", "Worst: ABNORMAL", "Worst: Missing", "Total"]
    rows = {(r[0], r[1]): r[2:] for r in t.rows}
    # Low: S1 NORMAL -> ABNORMAL, S2 ABNORMAL -> NORMAL; High: S3 NORMAL -> NORMAL, S4 NORMAL -> UNKNOWN (not a
    # listed category: missing); S5 is not in SAFFL
    assert rows[("Low", "NORMAL")] == ["0", "1", "0", "1"] and rows[("Low", "ABNORMAL")] == ["1", "0", "0", "1"]
    assert rows[("High", "NORMAL")] == ["1", "0", "1", "2"] and rows[("Overall", "NORMAL")] == ["1", "1", "1", "3"]
    assert "NORMAL < ABNORMAL" in t.method
    assert {"group": "Low", "baseline": "ABNORMAL", "counts": {"NORMAL": 1, "ABNORMAL": 0, "Missing": 0},
            "n": 1} in t.data


def test_bundled_pe_shift_equals_a_recomputation_from_sdtm_pe(bundled_run: Path) -> None:
    """T-PESH reads ADPE (study files only); recomputed here from SDTM PE and ADSL: baseline = the last
    exam on or before the first lymphodepletion dose, worst = ABNORMAL when any later visit is abnormal."""
    from cdisc_pipe.adam.io import read_sdtm_file

    doc = json.loads((bundled_run / "reports" / "results.json").read_text(encoding="utf-8"))
    adsl = _adam(bundled_run, "adsl")
    pe = read_sdtm_file(bundled_run / "sdtm" / "pe.xpt")
    saf = adsl.loc[adsl["SAFFL"] == "Y", ["USUBJID", "LDSDT"]]
    pe = pe[pe["PETESTCD"] == "PHYSEXAM"].merge(saf, on="USUBJID")
    pe["DT"] = pd.to_datetime(pe["PEDTC"].str[:10])
    pre = pe[pe["DT"] <= pd.to_datetime(pe["LDSDT"])].sort_values(["USUBJID", "DT", "PESEQ"])
    base = pre.groupby("USUBJID").last()[["PESTRESC", "VISITNUM"]]
    later = pe[pe["VISITNUM"] > pe["USUBJID"].map(base["VISITNUM"])]
    worst = later.groupby("USUBJID")["PESTRESC"].agg(lambda s: "ABNORMAL" if (s == "ABNORMAL").any() else "NORMAL")
    expected = pd.crosstab(base["PESTRESC"], worst.reindex(base.index))
    got = {d["baseline"]: d["counts"] for d in _table(doc, "T-PESH-PHYSEXAM")["data"] if d["group"] == "Overall"}
    for b in ("NORMAL", "ABNORMAL"):
        for w in ("NORMAL", "ABNORMAL"):
            n = int(expected.loc[b, w]) if b in expected.index and w in expected.columns else 0
            assert got[b][w] == n, (b, w)
    assert sum(sum(c.values()) for c in got.values()) == len(saf) and got["NORMAL"]["ABNORMAL"] > 0


def test_peak_and_timeline_without_any_record_do_not_break() -> None:
    res = compute(_peak_plan(where={"equals": {"PARAMCD": ["NONE"]}}), _peak_frames())
    assert not res.problems and all(d["peak"]["n"] == 0 for d in res.tables[0].data)
    frames = _tiny_frames()
    frames["ADAE"] = pd.DataFrame({"USUBJID": ["S1"], "AEDECOD": ["Rash"], "ASTDY": [2.0], "ATOXGRN": [1.0]})
    plan = ResultsPlan.model_validate({
        "title": "T", "by": {"variable": "TRT01A"}, "populations": {"SAF": {"flag": "SAFFL", "label": "S"}},
        "analyses": [{"id": "TL", "kind": "event_timeline", "title": "TL", "population": "SAF", "dataset": "ADAE",
                      "where": {"equals": {"AEDECOD": ["CRS"]}}, "onset_variable": "ASTDY"}]})
    res, page, _ = build_report(plan, frames, "S")
    assert res.figures[0].payload["events"] == [] and page.count("<svg") == 1 and 'id="event-' not in page


def test_waterfall_takes_the_first_listed_paramcd_a_subject_has() -> None:
    frames = _tiny_frames()
    lb = frames["ADLB"].assign(ABLFL=["Y"] * 4 + [None] * 5, PCHG=[None] * 4 + [100.0, 0.0, 66.7, 66.7, 0.0])
    extra = pd.DataFrame({"USUBJID": ["S1", "S1", "S3"], "PARAMCD": ["M", "M", "M"], "PARAM": ["Lab M"] * 3,
                          "AVISIT": ["WEEK 1", "WEEK 2", "WEEK 1"], "AVISITN": [1.0, 2.0, 1.0], "ABLFL": [None] * 3,
                          "PCHG": [-20.0, -60.0, None]})
    frames["ADLB"] = pd.concat([lb, extra], ignore_index=True)
    plan = ResultsPlan.model_validate({
        "title": "T", "by": {"variable": "TRT01A", "order": "TRT01AN"},
        "populations": {"SAF": {"flag": "SAFFL", "label": "Safety"}},
        "analyses": [{"id": "W", "kind": "waterfall", "title": "W", "population": "SAF", "dataset": "ADLB",
                      "paramcd": ["M", "X"], "variable": "PCHG"}]})
    t = compute(plan, frames).tables[0]
    # S1: M listed first, its lowest -60 (not X's 100); S3: M has no value -> X 66.7; S2 X 0; S4 X 66.7
    assert [(r[0], r[2], r[3]) for r in t.rows] == [("S3", "X", "66.7"), ("S4", "X", "66.7"), ("S2", "X", "0.0"),
                                                    ("S1", "M", "-60.0")]


def test_every_plan_kind_has_its_analysis_function() -> None:
    from typing import get_args

    from cdisc_pipe.results.plan import Analysis
    from cdisc_pipe.results.tables import ANALYSES

    assert set(ANALYSES) == set(get_args(Analysis.model_fields["kind"].annotation))


def test_results_built_in_a_second_process_sends_back_plain_data(bundled_run):
    """What the results report's process sends back is text and plain data: unpickling it in the
    run's process imports none of the report's libraries (SciPy, matplotlib: 0.5 s of imports)."""
    import json
    import pickle
    import subprocess
    import sys

    from cdisc_pipe import paths as P
    from cdisc_pipe.pipeline import _results_built, results_plan
    from cdisc_pipe.runlog import RunLog

    log = RunLog("test", quiet=True)
    summary, page, doc = _results_built(log, results_plan(P.default_specs(), log), "S", None, bundled_run / "adam")
    assert json.loads(json.dumps(summary)) == summary and summary["tables"] > 0 and summary["figures"] > 0
    assert isinstance(page, str) and isinstance(doc, str)
    code = ("import pickle, sys; pickle.loads(sys.stdin.buffer.read()); "
            "print(sorted(m for m in ('scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps((summary, page, doc)), capture_output=True,
                         check=True)
    assert out.stdout.decode().strip() == "[]"


def test_texts_is_str_of_every_value_per_distinct_value():
    from cdisc_pipe.results.tables import _str, _texts

    cases = [pd.Series(["Y", None, "N", "Y"], dtype="str"), pd.Series([1.0, np.nan, 2.5, 1.0]),
             pd.Series([3, 1, 3]), pd.Series(["a", None, pd.NA], dtype=object),
             pd.Series(pd.to_datetime(["2024-01-01", None])), pd.Series([True, False]), pd.Series([], dtype="str")]
    for s in cases:
        got = _texts(s)
        assert got.tolist() == s.map(_str).tolist() and str(got.dtype) == str(s.map(_str).dtype), s.dtype
    # hand-checked: a whole float is shown without its decimals, missing as blank
    assert _texts(pd.Series([1.0, np.nan, 2.5])).tolist() == ["1", "", "2.5"]
