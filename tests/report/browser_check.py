"""Load a page in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium) and report
what a person would see: console errors, rendered plotly charts, section headings, token spans, and every
URL the page requested."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-extensions", "--disable-sync", "--no-first-run",
         "--disable-component-update", "--disable-default-apps", "--window-size=1280,900"]


def available() -> str | None:
    """None when a browser test can run, else why not."""
    try:
        import selenium  # noqa: F401
    except ImportError:  # pragma: no cover
        return "selenium is not installed (pip install -e '.[test]')"
    if CHROMIUM is None or DRIVER is None:
        return "chromium / chromium-driver are not installed (scripts/setup.sh test installs them)"
    return None


@dataclass
class Seen:
    errors: list[str] = field(default_factory=list)  # console messages at level SEVERE
    charts: int = 0  # .plotly-graph-div that hold a rendered .main-svg
    chart_divs: int = 0  # .plotly-graph-div in the page
    headings: list[str] = field(default_factory=list)  # h2 texts
    token_spans: int = 0
    titled_spans: int = 0  # token spans with a hover title
    requests: list[str] = field(default_factory=list)  # every URL the browser fetched (performance log)

    def offsite(self) -> list[str]:
        """Requests that left the page's own file (anything but file:, data:, blob: and about: URLs)."""
        return [u for u in self.requests if not u.startswith(("file:", "data:", "blob:", "about:"))]


def assert_renders(page, path: Path, headings: list[str], label: str = "") -> Seen:
    """Open a saved :class:`Page` and check what a reader sees: no console errors, every figure drawn, the
    section headings in order, nothing fetched from off the machine."""
    seen = open_page(path)
    assert seen.errors == [], (label, seen.errors)
    assert seen.chart_divs == page.n_figures and seen.charts == seen.chart_divs, label
    assert seen.headings == headings, label
    assert seen.offsite() == [], label
    return seen


def open_page(path: Path, settle_s: float = 0.5) -> Seen:
    """Open ``path`` over file://, wait until every chart has drawn (or 30 s), and collect what was seen."""
    import time

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.get(Path(path).resolve().as_uri())
        count = "return [document.querySelectorAll('.plotly-graph-div').length," \
                " [...document.querySelectorAll('.plotly-graph-div')].filter(d => d.querySelector('.main-svg')).length]"
        deadline = time.time() + 30
        while time.time() < deadline:
            divs, drawn = driver.execute_script(count)
            if drawn >= divs:
                break
            time.sleep(0.2)
        time.sleep(settle_s)
        seen = Seen()
        seen.chart_divs, seen.charts = driver.execute_script(count)
        seen.headings = driver.execute_script("return [...document.querySelectorAll('h2')].map(h => h.textContent)")
        seen.token_spans = driver.execute_script("return document.querySelectorAll('span.tok').length")
        seen.titled_spans = driver.execute_script("return document.querySelectorAll('.tokens span.tok[title]').length")
        seen.errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.requestWillBeSent":
                seen.requests.append(msg["params"]["request"]["url"])
        return seen
    finally:
        driver.quit()


def external_references(html: str) -> list[str]:
    """src / href attributes of the page's own tags that point off the machine (http, https, //)."""
    from html.parser import HTMLParser

    found = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if name in ("src", "href", "data", "action", "poster") and value:
                    v = value.strip().lower()
                    if v.startswith(("http:", "https:", "//", "ftp:", "ws:", "wss:")):
                        found.append(f"<{tag} {name}={value}>")

    Tags().feed(html)
    return found


def loopback_only(monkeypatch) -> None:
    """The suite's network guard (tests/conftest.py), widened to loopback: Selenium talks to chromedriver
    on 127.0.0.1, nothing else may connect."""
    import socket

    real = socket.create_connection

    def local_only(address, *args, **kwargs):
        if address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise OSError("network access is disabled in the test suite")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", local_only)


@pytest.fixture(autouse=True, name="_no_network")
def loopback_guard(monkeypatch):
    """Shadows the suite's guard of the same name (tests/conftest.py) with :func:`loopback_only`; a browser test
    module takes it with ``_no_network = browser_check.loopback_guard``."""
    loopback_only(monkeypatch)
