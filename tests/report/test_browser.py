"""report.html in a real browser: headless Chromium (Debian package `chromium`, installed by `make test`)
parses the page and takes a screenshot. Without Chromium the test skips, except under CI (CI=true), where a
missing browser is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

WIDTH, HEIGHT = 1280, 1600
TAB_GREEN = (44, 160, 44)  # matplotlib's tab:green: the improved categories' bars in figures/reductions.png


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium not found under CI: scripts/apt-packages.txt lists it; run `make apt` (as root)")
    pytest.skip("chromium not installed (Debian package `chromium`; `make apt` installs it)")


def run_browser(tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
           *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


class Dom(HTMLParser):
    """The rendered DOM's text per element of interest."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.headline: list[str] = []
        self.tags: dict[str, int] = {}
        self.images: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "img":
            self.images.append(attrs)
            return
        self.stack.append((tag, attrs))

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if any(t in ("style", "title") for t, _ in self.stack):
            return
        self.text.append(data)
        if any(t == "section" and a.get("class") == "headline" for t, a in self.stack):
            self.headline.append(data)


@pytest.fixture
def report(rendered):
    folder, summary = rendered
    return folder / "report.html", summary


def test_report_renders_in_chromium(report, tmp_path):
    html_path, summary = report
    dom = Dom()
    dom.feed(run_browser(tmp_path, "--dump-dom", html_path.as_uri()).stdout)
    headline = " ".join(" ".join(dom.headline).split())
    assert "+12.3% [+10.5, +14.0]" in headline and "+3.7 pts [+0.8, +6.4]" in headline
    assert "bundled:smollm2-135m with LoRA r=64" in headline
    text = "".join(dom.text)
    assert "`" not in text and "**" not in text and "![" not in text, "raw Markdown in the rendered page"
    assert dom.tags.get("table", 0) >= 10 and dom.tags.get("code", 0) >= 2 and dom.tags.get("strong", 0) >= 2
    assert len(dom.images) == len(summary["figures"]) and all(i["src"].startswith("data:image/png;base64,")
                                                               for i in dom.images)


def test_report_screenshot_is_plausible(report, tmp_path):
    import matplotlib.image

    shot = tmp_path / "shot.png"
    run_browser(tmp_path, "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}",
                report[0].as_uri())
    assert shot.stat().st_size > 50_000
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(np.uint8)
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100, "a blank or single-colour page"
    green = (pixels == TAB_GREEN).all(axis=-1).sum()
    assert green > 2_000, "the headline's reduction figure (an inlined PNG) did not show in the first screen"
