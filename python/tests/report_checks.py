"""Checks of coalmine's HTML reports with software we did not write: html5lib (the WHATWG
HTML parsing algorithm, in strict mode every parse error raises) and Debian's chromium,
headless, for the DOM it builds and the pixels it paints."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# the charts' colours (Okabe-Ito blue and vermillion): a painted chart has pixels of both
BASELINE_RGB = (0x00, 0x72, 0xB2)
CANARY_RGB = (0xD5, 0x5E, 0x00)


def chromium() -> str:
    """Debian's chromium; missing, the test fails under COALMINE_REQUIRE_KAFKA (the full test
    command installs it) and is skipped otherwise."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("COALMINE_REQUIRE_KAFKA"):
            pytest.fail("chromium is not installed (scripts/test.sh installs Debian's chromium)")
        pytest.skip("no chromium")
    return path


def parse_strict(page: str):
    """The page parsed by html5lib's strict parser (raises on any parse error)."""
    import html5lib

    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    return parser.parse(page)


# attributes that make a browser fetch something
FETCHING = {"src", "href", "srcset", "action", "formaction", "poster", "data", "background", "{http://www.w3.org/1999/xlink}href"}


def external_references(page: str) -> list:
    """Everything in the page that would reach outside it: fetching elements, attributes whose
    value is not a fragment link, and CSS imports or url()s."""
    tree = parse_strict(page)
    found = []
    for el in tree.iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        local = tag.rsplit("}", 1)[-1]
        if local in ("script", "link", "iframe", "img", "object", "embed", "base", "audio", "video", "source"):
            found.append(f"<{local}>")
        for name, value in el.attrib.items():
            if name in FETCHING and not value.startswith("#"):
                found.append(f"{local}[{name}={value!r}]")
            if name == "style" and re.search(r"url\(|@import", value):
                found.append(f"{local}[style={value!r}]")
        if local == "style" and re.search(r"url\(|@import", el.text or ""):
            found.append("<style> with url() or @import")
    # and no address anywhere, not even in text
    found.extend(m.group(0) for m in re.finditer(r"(?:https?:|ftp:)//[^\s\"'<]+", page))
    return found


def render(page: str, tmp_path: Path, name: str, width: int = 1100, height: int = 8000):
    """Render `page` in headless chromium: the DOM it built (`--dump-dom`) and a screenshot
    (a PIL image)."""
    from PIL import Image

    browser = chromium()
    html = tmp_path / f"{name}.html"
    html.write_text(page, encoding="utf-8")
    png = tmp_path / f"{name}.png"
    common = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    dom = subprocess.run(common + ["--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = subprocess.run(common + [f"--window-size={width},{height}", f"--screenshot={png}", html.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    return dom.stdout, Image.open(png).convert("RGB")


def print_pdf(page: str, tmp_path: Path, name: str) -> bytes:
    """`page` printed to PDF by headless chromium (what "Print" in the browser makes)."""
    browser = chromium()
    html = tmp_path / f"{name}-print.html"
    html.write_text(page, encoding="utf-8")
    pdf = tmp_path / f"{name}.pdf"
    done = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--no-pdf-header-footer",
                           f"--print-to-pdf={pdf}", html.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and pdf.exists(), done.stderr[-2000:]
    return pdf.read_bytes()


def painted(image) -> dict:
    """The screenshot's share of pixels that are not white, and how many pixels are of each
    arm's colour."""
    import numpy as np

    px = np.asarray(image, dtype=np.int16).reshape(-1, 3)

    def near(rgb, tolerance=40):
        return int((np.abs(px - np.array(rgb)) <= tolerance).all(axis=1).sum())

    return {"ink": float((px.sum(axis=1) < 720).mean()), "baseline": near(BASELINE_RGB), "canary": near(CANARY_RGB)}


def check_report(page: str, tmp_path: Path, name: str, metrics: dict, verdict: str):
    """A report page is valid HTML that names no outside resource, and chromium draws it:
    the verdict, every metric's name and class in the DOM, an SVG chart per metric with
    series, and both arms' colours painted. `metrics`: name → classification."""
    assert page.startswith("<!DOCTYPE html>")
    parse_strict(page)  # raises on any parse error
    assert external_references(page) == []
    dom, image = render(page, tmp_path, name)
    text = re.sub(r"<[^>]+>", " ", dom)
    assert re.search(rf"\b{re.escape(verdict.upper())}\b", text), f"verdict {verdict} not shown"
    sections = re.findall(r'<section class="metric[^"]*" id="metric-\d+">(.*?)</section>', dom, re.S)
    assert len(sections) == len(metrics), (len(sections), metrics)
    for metric, cls in metrics.items():
        own = [s for s in sections if f"</span> {metric}" in s.split("</h3>")[0].replace("&amp;", "&")]
        assert own, f"no section for {metric!r}"
        head = own[0].split("</h3>")[0]
        assert f"> {cls}</span>" in head or f" {cls}</span>" in head, f"{metric}: want {cls} in {head!r}"
    assert dom.count("<svg") >= len(metrics), "a chart per metric"
    assert "<polyline" in dom, "series drawn"
    shares = painted(image)
    assert shares["ink"] > 0.02, f"the page is blank: {shares}"
    # a series chart alone paints a few thousand pixels of each colour
    assert shares["baseline"] > 1000 and shares["canary"] > 1000, f"charts not painted: {shares}"
    return dom, image
