"""define.html: complete, linked, self-contained, escaped; opens in headless Chromium.

The browser test is marked ``browser`` and skips when no chromium is installed.  It keeps a
screenshot of the first page as a test artifact: ``outputs/test-artifacts/define-<purpose>.png``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import lxml.html
import pytest

from cdisc_pipe.define import build_define, write_define
from tests.conftest import ROOT
from tests.test_define_support import tiny_spec, write_study

ARTIFACTS = ROOT / "outputs" / "test-artifacts"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    spec = tiny_spec(root / "specs")
    sdtm, adam = write_study(root / "out", spec)
    results = {
        "Tabulation": build_define(spec, sdtm, "Tabulation"),
        "Analysis": build_define(spec, adam, "Analysis"),
    }
    write_define(results["Tabulation"], root / "out" / "sdtm")
    write_define(results["Analysis"], root / "out" / "adam")
    return spec, results, root / "out"


@pytest.mark.parametrize("purpose", ["Tabulation", "Analysis"])
def test_html_shows_every_dataset_variable_codelist_method(written, purpose):
    _, results, _ = written
    res = results[purpose]
    doc = lxml.html.fromstring(res.html)
    ids = set(doc.xpath("//@id"))
    links = set(doc.xpath("//a/@href"))
    for g in res.view.item_groups:
        assert g.oid in ids and f"#{g.oid}" in links, g.name  # a section per dataset, linked from the table
        assert g.href in links  # link to the XPT file
        section = doc.get_element_by_id(g.oid)
        shown = [td.text_content() for td in section.xpath(".//tbody/tr/td[2]")]
        assert shown == [r.item_oid.split(".")[-1] for r in g.item_refs]
    for vl in res.view.value_lists:
        assert vl.oid in ids and f"#{vl.oid}" in links
    for cl in res.view.codelists:
        assert cl.oid in ids and f"#{cl.oid}" in links
    for m in res.view.methods:
        assert m.oid in ids and f"#{m.oid}" in links
    for c in res.view.comments:
        assert c.oid in ids and f"#{c.oid}" in links
    # every in-page link has its target
    assert {h[1:] for h in links if h.startswith("#")} <= ids
    assert len(ids) == len(doc.xpath("//@id"))  # ids are unique


def test_html_is_self_contained(written):
    for res in written[1].values():
        html = res.html.decode()
        assert "<script" not in html.lower()
        assert "<link" not in html.lower()
        assert not re.search(r"\ssrc\s*=", html, re.I)
        assert "@import" not in html and "url(" not in html
        assert not re.search(r'href="(https?:)?//', html)


def test_html_escapes_spec_text(written):
    html = written[1]["Tabulation"].html.decode()
    assert "Sponsor test &lt;&amp;&gt; &#34;quoted&#34;" in html
    assert "XQ&lt;1" in html
    assert "<&>" not in html


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run_chromium(binary: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.browser
@pytest.mark.parametrize("purpose,sub", [("Tabulation", "sdtm"), ("Analysis", "adam")])
def test_define_html_opens_in_headless_chromium(written, purpose, sub):
    binary = _chromium()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    _, results, out = written
    page = (out / sub / "define.html").resolve()
    dom = _run_chromium(binary, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    for bad in ("Uncaught", "Failed to load resource", "Page load failed", "ERR_FILE_NOT_FOUND"):
        assert bad not in dom.stderr, dom.stderr[-2000:]
    doc = lxml.html.fromstring(dom.stdout)
    headings = [h.text_content() for h in doc.xpath("//section/h3")]
    for g in results[purpose].view.item_groups:
        assert any(h.startswith(f"{g.name} ({g.label})") for h in headings), (g.name, headings)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"define-{sub}.png"
    shot.unlink(missing_ok=True)
    res = _run_chromium(binary, "--window-size=1400,1000", "--hide-scrollbars", f"--screenshot={shot}", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


@pytest.mark.browser
@pytest.mark.parametrize("sub", ["sdtm", "adam"])
def test_bundled_study_define_html_in_headless_chromium(bundled_run, sub):
    """The bundled study's define.html (this session's run) shows every XPT's dataset."""
    folder = bundled_run / sub
    page = folder / "define.html"
    assert page.is_file()
    binary = _chromium()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    dom = _run_chromium(binary, "--dump-dom", page.resolve().as_uri())
    assert dom.returncode == 0
    for bad in ("Uncaught", "Failed to load resource", "Page load failed"):
        assert bad not in dom.stderr
    doc = lxml.html.fromstring(dom.stdout)
    headings = {h.text_content().split(" (", 1)[0] for h in doc.xpath("//section/h3")}
    assert {p.stem.upper() for p in folder.glob("*.xpt")} <= headings
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"define-bundled-{sub}.png"
    res = _run_chromium(binary, "--window-size=1400,1000", "--hide-scrollbars", f"--screenshot={shot}",
                        page.resolve().as_uri())
    assert res.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
