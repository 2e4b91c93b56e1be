"""The recruiter report: self-contained, escaped, evidence links that land, readable at 1280 px and
375 px in headless Chromium (no horizontal scroll), and no serious or critical axe-core findings."""
from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from services.orchestrator.evaluation.evaluator import evaluate
from services.orchestrator.evaluation.html_report import render_html

from tests.orchestrator_evaluation.material import (GOOD_CODE, GOOD_CONSISTENCY, GOOD_FUNDAMENTALS, ScriptedGenerate,
                                                    criterion, material, run)

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
HOSTILE = '</li><script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2"> & "quotes" <b>bold</b>'
LONG_WORD = "x" * 300


def hostile(entries):
    entries[5].text = HOSTILE
    entries[6].text = "the cache had a ttl " + LONG_WORD
    entries[1].stt_confidence = 0.4


def report() -> str:
    m = material(edit=hostile)
    answer = run([criterion("fundamentals", 3, GOOD_FUNDAMENTALS, GOOD_CONSISTENCY,
                            ("transcript", "6", HOSTILE.split("<img")[0][:60])),
                  criterion("design", None), criterion("coding", 4, GOOD_CODE, ("observation", "3-5", "all 3 tests passed"))],
                 concerns=["Skipped edge cases in #9 <script>alert(1)</script>"])
    other = run([criterion("fundamentals", 1, GOOD_FUNDAMENTALS), criterion("design", None),
                 criterion("coding", 4, GOOD_CODE)])
    evaluation = asyncio.run(evaluate(m, ScriptedGenerate(answer, other)))
    return render_html(m, evaluation)


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a":
            self.hrefs.append(a.get("href", ""))
        for key in ("src", "srcset"):
            if key in a:
                self.srcs.append(a[key])
        if tag == "link":
            self.srcs.append(a.get("href", ""))


def test_the_report_is_self_contained_escaped_and_its_evidence_links_land():
    html = report()
    p = _Collect()
    p.feed(html)
    assert "script" not in p.tags and "img" not in p.tags and not p.srcs  # no scripts, no external assets
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert len(p.ids) == len(set(p.ids))
    evidence = [h for h in p.hrefs if h.startswith("#")]
    assert {"#t-2", "#t-4", "#t-6", "#c-3-0", "#o-3-5", "#t-9"} <= set(evidence)
    for href in evidence:
        assert href[1:] in p.ids, href
    # the quoted words sit in the line the link jumps to
    line = re.search(r'<li id="t-4"[^>]*>(.*?)</li>', html).group(1)
    assert "the consistency was eventual" in line
    for needle in ("Advisory", "needs review", "insufficient evidence", "<svg", "Response latency per turn",
                   "Recommended next step", "low STT confidence", "Transcript"):
        assert needle in html, needle


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}",
                 "--window-size=1280,900"]:
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
def test_the_report_renders_at_desktop_and_phone_width_without_horizontal_scroll_and_passes_axe(tmp_path):
    html = report()
    out = Path(tempfile.mkdtemp(prefix="evaluation-report-"))
    page = out / "report.html"
    page.write_text(html, encoding="utf-8")
    driver = _driver()
    try:
        driver.get(page.as_uri())
        assert driver.execute_script("return window.__pwned === undefined")
        assert HOSTILE in driver.find_element("id", "t-6").text
        for width in (1280, 375):
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600})
            dims = driver.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth, window.innerWidth]")
            assert dims[0] <= dims[1], f"horizontal scroll at {width}px: {dims}"
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "format": "png"})
            import base64
            (out / f"report-{width}px.png").write_bytes(base64.b64decode(shot["data"]))
            driver.execute_script(AXE.read_text(encoding="utf-8"))
            result = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
                "v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.html)}))))"
                ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));")
            bad = [v for v in result if v["impact"] in ("serious", "critical")]
            assert not bad, f"axe at {width}px: {bad}"
        # an evidence link scrolls to its line
        driver.find_element("css selector", 'a[href="#t-4"]').click()
        assert driver.execute_script("return document.querySelector(':target').id") == "t-4"
    finally:
        driver.quit()
    print(f"\nreport screenshots: {out / 'report-1280px.png'} and {out / 'report-375px.png'}")
