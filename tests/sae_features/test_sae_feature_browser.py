"""The SAE feature browser: what the file holds, and, in headless Chromium, that it draws without errors or
requests, shows a feature's page at ``#f<id>`` and filters the list as one types."""

from __future__ import annotations

import json
import re
import time

import pytest
import torch

from shoestring.report.sae import choose_latents, feature_browser
from shoestring.sae.features import feature_stats

from sae_feature_helpers import lm_with_tokenizer, make_store, planted_sae  # first: puts tests/report on the path

import browser_check  # noqa: E402,I001

browser = pytest.mark.skipif(browser_check.available() is not None, reason=str(browser_check.available()))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    browser_check.loopback_only(monkeypatch)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    lm = lm_with_tokenizer()
    store = make_store(folder / "store", lm)
    sae = planted_sae()
    with torch.no_grad():  # latent 63 never fires: a dead one, left out of the list
        sae.W_enc[:, 63] = 0
        sae.b_enc[63] = -1.0
    stats = feature_stats(sae, store, k=6)
    path = feature_browser(sae, stats, store, lm=lm, out_path=folder / "features.html", max_features=20,
                           title="tiny features")
    return path, stats


def embedded(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="sae-data">(.*?)</script>', html, re.S).group(1))


def test_the_file_holds_the_chosen_features_and_says_what_was_left_out(built):
    path, stats = built
    html = path.read_text()
    chosen = choose_latents(stats, max_features=20)
    assert chosen == stats.counts.argsort(descending=True, stable=True)[:20].tolist() and 63 not in chosen
    data = embedded(html)
    assert sorted(map(int, data["features"])) == sorted(chosen)
    assert re.findall(r'<tr id="row-f(\d+)"', html) == [str(c) for c in chosen]
    alive = int((stats.counts > 0).sum())
    assert f"Showing 20 features (the most frequent alive ones); {alive - 20} alive features left out." in html
    assert "1 dead latents never fired" in html
    f0 = data["features"]["0"]
    assert f0["count"] == int(stats.counts[0]) and len(f0["contexts"]) == 6 and len(f0["promotes"]) == 8
    assert browser_check.external_references(html) == []


def test_a_given_list_of_latents_is_kept_in_order(built):
    _, stats = built
    assert choose_latents(stats, [63, 5, 0]) == [63, 5, 0]


def _driver():
    import os

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser_check.CHROMIUM
    for flag in browser_check.FLAGS:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(browser_check.DRIVER), options=opts)


def _until(fn, timeout: float = 15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    return fn()


@browser
def test_the_index_draws_without_errors_or_requests(built):
    path, _ = built
    seen = browser_check.open_page(path)
    assert seen.errors == []
    assert seen.chart_divs == seen.charts == 1  # the density histogram
    assert seen.offsite() == []
    assert seen.headings == ["Features"]


@browser
def test_feature_pages_and_the_search_box_work(built):
    from selenium.webdriver.common.by import By

    path, stats = built
    html = path.read_text()
    data = embedded(html)
    driver = _driver()
    try:
        driver.get(path.resolve().as_uri())
        visible_rows = "return [...document.querySelectorAll('#sae-table tbody tr')].filter(r => !r.hidden).map(r => r.id)"
        assert _until(lambda: len(driver.execute_script(visible_rows)) == 20)
        assert driver.find_element(By.ID, "sae-shown").text == "20 of 20 features shown"

        # a feature's page: its title, highlighted contexts with hover values, its histogram, a way back
        driver.get(path.resolve().as_uri() + "#f0")
        assert _until(lambda: driver.execute_script("return !!document.querySelector('#sae-hist .main-svg')"))
        assert driver.find_element(By.ID, "sae-title").text == "Feature 0"
        assert not driver.find_element(By.ID, "sae-index").is_displayed()
        spans = driver.find_elements(By.CSS_SELECTOR, "#sae-feature .tokens span.tok")
        f0 = data["features"]["0"]
        assert len(spans) == sum(len(c["t"]) for c in f0["contexts"]) > 0
        assert all(s.get_attribute("title") for s in spans)
        marked = [s for s in spans if "underline" in (s.get_attribute("style") or "")]
        assert len(marked) == len(f0["contexts"])  # one top token per context
        top = marked[0]
        assert top.text == f0["contexts"][0]["t"][f0["contexts"][0]["m"]]
        assert "rgba(214, 39, 40, 0.85" in top.get_attribute("style")  # the strongest token: full colour
        page_text = driver.find_element(By.ID, "sae-feature").text
        assert f"{int(stats.counts[0])} of {stats.tokens} tokens" in page_text
        for p, q in zip(f0["promotes"], f0["suppresses"]):  # logit effects with their signs
            assert f'{json.dumps(p[0])} {p[1]:+.3f}' in page_text and f'{json.dumps(q[0])} {q[1]:+.3f}' in page_text
        assert f0["suppresses"][0][1] < 0 < f0["promotes"][0][1]
        driver.find_element(By.ID, "sae-back").click()
        assert _until(lambda: driver.find_element(By.ID, "sae-index").is_displayed())
        assert driver.execute_script("return document.getElementById('sae-feature').hidden")

        # typing filters the list to the features whose contexts or promoted tokens hold the text
        word = f0["contexts"][0]["t"][f0["contexts"][0]["m"]]
        want = [m.group(1) for m in re.finditer(r'<tr id="(row-f\d+)" data-search="([^"]*)"', html)
                if word.lower() in m.group(2).lower()]
        box = driver.find_element(By.ID, "sae-search")
        box.send_keys(word)
        assert _until(lambda: driver.execute_script(visible_rows) == want)
        assert 0 < len(want) < 20 and "row-f0" in want
        assert driver.find_element(By.ID, "sae-shown").text == f"{len(want)} of 20 features shown"
        box.clear()
        box.send_keys("f0")
        assert _until(lambda: driver.execute_script(visible_rows) == ["row-f0"])

        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        requests = [json.loads(e["message"])["message"] for e in driver.get_log("performance")]
        urls = [m["params"]["request"]["url"] for m in requests if m.get("method") == "Network.requestWillBeSent"]
        assert errors == []
        assert [u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:"))] == []
    finally:
        driver.quit()
