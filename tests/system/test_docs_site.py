"""The documentation site in a real browser: headless Chromium (Debian's, installed with apt-get when
missing) driven by playwright, against the built site served by a local http.server on the loopback.

The start page, the config reference and the report page render with no console error and no
failed request, their pictures load, the generated tables are there, the report's own page opens
inside its page, and the search finds a config key. The site is ``$ABLATE_DOCS_SITE`` when that
folder was built (``make docs-check`` after ``make docs``), else it is built here with the same
strict options into a temporary folder. Skips with the reason when chromium or playwright cannot be
had; in CI (CI=true) they must be there, so a reason to skip is a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers.slurm import install

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (in CI the browser check must run)")
    pytest.skip(reason)


def sphinx_build(out: Path) -> subprocess.CompletedProcess:
    """The site as `make docs` builds it: warnings are errors."""
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html", "docs", str(out)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("ABLATE_DOCS_SITE")
    if given and (Path(given) / "index.html").is_file():
        return Path(given)
    out = tmp_path_factory.mktemp("site")
    proc = sphinx_build(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reports what failed; no line per request
        pass


@pytest.fixture(scope="module")
def url(site):
    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    reason = install(("chromium",), (CHROMIUM,))
    if reason:
        _unavailable(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install 'ablate[docs]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Visit:
    """A page opened in a fresh tab, with every console error, page error and failed request it had."""

    def __init__(self, browser, address: str) -> None:
        self.problems: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status}: {r.url}"))
        self.page.goto(address, wait_until="load")

    def images_loaded(self) -> list[str]:
        """The src of every image on the page that did not load."""
        return self.page.eval_on_selector_all(
            "img", "els => els.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )


def test_the_start_page_renders_with_its_figure_and_navigation(browser, url):
    v = Visit(browser, f"{url}/index.html")
    assert "ablate" in v.page.title()
    assert v.page.locator("article img[src*='z_std']").count() == 1
    assert not v.images_loaded()
    nav = v.page.locator(".sidebar-tree").inner_text()
    for entry in ("Getting started", "Config reference", "Results schema", "ablate report", "Python API"):
        assert entry in nav, entry
    assert not v.problems, v.problems


def test_the_config_reference_renders_its_generated_tables(browser, url):
    v = Visit(browser, f"{url}/config.html")
    text = v.page.locator("article").inner_text()
    for key in ("predictor.rho", "optim.weight_decay", "ema.tau", "table.over_epochs", "alpha_p"):
        assert key in text, key
    assert v.page.locator("article table").count() >= 10
    assert not v.problems, v.problems


def test_the_report_page_shows_the_report_as_ablate_wrote_it(browser, url):
    v = Visit(browser, f"{url}/report.html")
    assert not v.images_loaded()
    frame = v.page.frame_locator("iframe")
    assert "Sweep smoke" in frame.locator("h1").first.inner_text()
    assert frame.locator("img").count() >= 4  # the report's figures, embedded
    assert not v.problems, v.problems


def test_the_search_finds_a_config_key(browser, url):
    v = Visit(browser, f"{url}/search.html?q=weight_decay")
    results = v.page.locator("ul.search li")
    deadline = time.monotonic() + 20
    while results.count() == 0 and time.monotonic() < deadline:
        v.page.wait_for_timeout(100)
    links = v.page.eval_on_selector_all("ul.search li a", "els => els.map(a => a.getAttribute('href'))")
    assert any(link.startswith("config.html") for link in links), links
    assert not v.problems, v.problems
