"""The red-teaming report on a synthetic suite result: every section, the numbers in the summary, adversarial text
escaped, absent parts said, the compression grid; and both pages in headless Chromium without a console error."""

from __future__ import annotations

import random

import pytest

import browser_check
from shoestring.attack.metrics import asr, summary, wilson
from shoestring.report.attack import attack_page, attack_report, grid_page, grid_report

_no_network = browser_check.loopback_guard  # the suite's network guard, widened to loopback for chromedriver
browser = pytest.mark.skipif(browser_check.available() is not None, reason=str(browser_check.available()))

JUDGES = ["target", "refusal", "llm"]
EVIL = "<script>pwned()</script>"  # would log a ReferenceError if it ever ran
TITLES = ["Summary", "ASR per category", "ASR vs compute", "Loss per step", "Judge agreement", "Over-refusal",
          "Examples", "Setup"]


def behaviour(i: int) -> dict:
    return {"id": f"b{i}", "goal": f"Request number {i}", "target": f"Sure, here is answer {i}",
            "category": ["cyber", "chemistry"][i % 2], "source": "synthetic"}


def verdicts(rng, p) -> tuple[dict, dict]:
    llm = rng.random() * p * 2
    v = {"target": int(rng.random() < p), "refusal": int(rng.random() < p + 0.2), "llm": int(llm > 0.5)}
    return {"target": float(v["target"]), "refusal": 1.0 - v["refusal"], "llm": llm}, v


def gcg_record(rng, i: int) -> dict:
    trace, fp, sec, broken = [], 0, 0.0, False
    for step in range(0, 50, 5):
        fp, sec = fp + 5 * 33, sec + rng.uniform(0.5, 1.5)
        broken = broken or rng.random() < 0.15
        v = {"target": int(broken), "refusal": int(broken or rng.random() < 0.3), "llm": int(broken and i % 3 != 0)}
        trace.append({"step": step, "loss": 3.0 * 0.9 ** step + rng.random() * 0.1, "suffix": "! ! x" + EVIL,
                      "response": "Sure" if broken else "I'm sorry" + EVIL, "forward_passes": fp, "seconds": sec,
                      "peak_memory_bytes": 2**30, "verdicts": v})
        if broken:
            break
    last = trace[-1]
    return {"behaviour": behaviour(i), "attack": "gcg", "prompt": f"Request number {i} ! ! x{EVIL}",
            "response": last["response"], "compute": {"steps": last["step"], "forward_passes": fp, "tokens": fp * 40,
                                                      "seconds": sec, "peak_memory_bytes": 2**30,
                                                      "other_forward_passes": 0},
            "trace": trace, "extra": {"suffix": "! ! x"}, "verdicts": dict(last["verdicts"]),
            "scores": {k: float(x) for k, x in last["verdicts"].items()}}


def simple_record(rng, i: int, attack: str, p: float) -> dict:
    s, v = verdicts(rng, p)
    return {"behaviour": behaviour(i), "attack": attack, "prompt": f"Decode: UmVx {i}",
            "response": f"Here you go {EVIL}" if i == 1 else "I cannot help.", "trace": [], "extra": {},
            "compute": {"steps": 0, "forward_passes": 1, "tokens": 80, "seconds": 0.2, "peak_memory_bytes": 2**20,
                        "other_forward_passes": 0}, "scores": s, "verdicts": v}


def make_result(benign: bool = True) -> dict:
    rng = random.Random(0)
    records = [gcg_record(rng, i) for i in range(8)] + [simple_record(rng, i, "base64", 0.3) for i in range(8)]
    out = {"model": "tiny-llama", "config": {"behaviours": "synthetic", "gcg": {"steps": 50, "topk": 64}, "seed": 0},
           "judges": JUDGES, "attacks": ["gcg", "base64"], "records": records, "compression": "kv:streaming_llm 0.5"}
    if benign:
        out["benign"] = {"records": [simple_record(rng, i, "none", 0.8) for i in range(10)]}
    return out


@pytest.fixture(scope="module")
def result():
    return make_result()


def titles(page) -> list[str]:
    return [s.title for s in page.sections]


def test_every_section_and_the_summary_numbers(result):
    page = attack_page(result)
    assert titles(page) == TITLES
    # 1 category bar chart, 3 curves for the one search attack, 1 loss chart
    assert page.n_figures == 5
    html = page.render()
    gcg = [r for r in result["records"] if r["attack"] == "gcg"]
    s = asr(gcg, "target")
    assert f"{s['asr']:.1%} [{s['lo']:.1%}, {s['hi']:.1%}]" in html and f"{s['k']} / {s['n']}" in html
    assert "kv:streaming_llm 0.5" in html and "about 70% of the time" in html and "Cohen&#x27;s kappa" in html
    assert "chemistry" in html and "cyber" in html and "the response begins with the behaviour&#x27;s target" in html


def test_adversarial_text_is_escaped(result):
    html = attack_report(result)
    assert EVIL not in html and "&lt;script&gt;pwned()&lt;/script&gt;" in html
    assert "pwned()</script>" not in html  # not in the figures' JSON either


def test_absent_parts_are_said():
    res = make_result(benign=False)
    res["records"] = [r for r in res["records"] if r["attack"] == "base64"]
    res["judges"] = ["refusal"]
    page = attack_page(res)
    html = page.render()
    assert titles(page) == TITLES and page.n_figures == 1
    for said in ("no attack in this suite recorded a search trace", "no search trace carries a loss",
                 "agreement needs two judges or more", "the suite ran no benign set"):
        assert said in html
    empty = attack_page({"model": "m", "judges": JUDGES, "attacks": [], "records": []})
    assert "the result has no records" in empty.render() and empty.n_figures == 0


def test_over_refusal_counts_benign_refusals(result):
    benign = result["benign"]["records"]
    refused = sum(1 - r["verdicts"]["refusal"] for r in benign)
    lo, hi = wilson(refused, len(benign))
    assert f"{refused / len(benign):.1%} [{lo:.1%}, {hi:.1%}]" in attack_report(result)


def grid_cells():
    res = make_result()
    cells = []
    for k, comp in enumerate(["none", "kv:streaming_llm 0.5", "kv:snapkv 0.25"]):
        recs = [dict(r, verdicts={j: int(v or (i + k) % 3 == 0) for j, v in r["verdicts"].items()})
                for i, r in enumerate(res["records"])]
        for attack in ("gcg", "base64"):
            cells.append({"model": "tiny-llama", "attack": attack, "compression": comp,
                          "summary": summary([r for r in recs if r["attack"] == attack], JUDGES)})
    return cells


def test_grid_page_has_a_figure_per_judge_and_a_row_per_cell_and_judge():
    cells = grid_cells()
    page = grid_page(cells)
    assert titles(page) == ["ASR by compression", "Every cell"] and page.n_figures == len(JUDGES)
    fig = page.sections[0].blocks[0][0]
    assert [t.name for t in fig.data] == ["tiny-llama \u00b7 gcg", "tiny-llama \u00b7 base64"]
    assert list(fig.data[0].x) == ["none", "kv:streaming_llm 0.5", "kv:snapkv 0.25"]
    assert grid_report(cells).count("<tr>") == 1 + len(cells) * len(JUDGES)
    assert "the grid has no cells" in grid_page([]).render()


@browser
def test_the_attack_and_grid_reports_in_the_browser(result, tmp_path):
    for name, page in (("suite", attack_page(result)), ("grid", grid_page(grid_cells()))):
        path = page.save(tmp_path / f"{name}.html")
        browser_check.assert_renders(page, path, titles(page), name)


def test_the_loss_figure_draws_every_step_when_the_search_kept_them():
    from shoestring.report.attack import loss_figure

    rec = {"behaviour": behaviour(0), "attack": "gcg", "extra": {"losses": [2.0, 1.5, 1.2, 1.1, 0.9]},
           "trace": [{"step": 5, "loss": 0.9, "verdicts": {"target": 1}}]}
    fig = loss_figure([rec], "gcg", judge="target")
    line, stars = fig.data
    assert list(line.x) == [1, 2, 3, 4, 5] and list(line.y) == [2.0, 1.5, 1.2, 1.1, 0.9]
    assert list(stars.x) == [5] and list(stars.y) == [0.9]
    only_checks = loss_figure([{**rec, "extra": {}}], "gcg")
    assert list(only_checks.data[0].x) == [5]  # no per-step losses: the checks' losses
