"""Attack metrics: Wilson intervals, ASR overall and per category, ASR against compute, Cohen's kappa, agreement
and over-refusal, each against hand-computed values."""

from __future__ import annotations

import math

import pytest

from shoestring.attack.metrics import (agreement, asr, asr_by, asr_curve, asr_table, cohen_kappa, mean_compute,
                                       over_refusal, summary, wilson)


def rec(bid, cat="a", attack="gcg", trace=None, compute=None, **verdicts):
    return {"behaviour": {"id": bid, "goal": f"goal {bid}", "target": "Sure", "category": cat}, "attack": attack,
            "prompt": "p", "response": "r", "compute": compute or {}, "trace": trace or [], "verdicts": verdicts}


def test_wilson_known_values():
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(10, 10)
    assert lo == pytest.approx(1 - 0.2775, abs=1e-4) and hi == 1.0
    lo, hi = wilson(5, 10)  # symmetric around 0.5
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson(20, 100)
    assert lo == pytest.approx(0.1333, abs=1e-4) and hi == pytest.approx(0.2888, abs=1e-4)
    assert all(math.isnan(v) for v in wilson(0, 0))
    assert wilson(5, 10, level=0.99)[0] < wilson(5, 10)[0]  # a wider interval at a higher level


def test_asr_skips_records_without_the_verdict_and_groups_by_category():
    rs = [rec("1", "a", llm=1), rec("2", "a", llm=0), rec("3", "b", llm=1), rec("4", "b")]
    r = asr(rs, "llm")
    assert (r["k"], r["n"], r["asr"]) == (2, 3, pytest.approx(2 / 3))
    assert (r["lo"], r["hi"]) == pytest.approx(wilson(2, 3))
    by = asr_by(rs, "llm")
    assert list(by) == ["a", "b"] and by["a"]["asr"] == 0.5 and (by["b"]["k"], by["b"]["n"]) == (1, 1)
    assert set(asr_by(rs, "llm", key="attack")) == {"gcg"}
    assert math.isnan(asr([], "llm")["asr"]) and asr([], "llm")["n"] == 0


def test_asr_table_and_summary():
    rs = [rec("1", "a", "gcg", llm=1, refusal=1), rec("2", "b", "gcg", llm=0, refusal=1),
          rec("1", "a", "base64", compute={"seconds": 2.0, "steps": 0}, llm=0, refusal=0),
          rec("2", "b", "base64", compute={"seconds": 4.0, "steps": 0}, llm=0, refusal=1)]
    rows = asr_table(rs, ["llm", "refusal"])
    assert len(rows) == 2 * 2 * 3  # attacks x judges x (all + 2 categories)
    first = rows[0]
    assert (first["attack"], first["judge"], first["category"], first["k"], first["n"]) == ("gcg", "llm", "all", 1, 2)
    b64 = [r for r in rows if r["attack"] == "base64" and r["judge"] == "refusal"]
    assert [(r["category"], r["k"]) for r in b64] == [("all", 1), ("a", 0), ("b", 1)]
    s = summary(rs, ["llm"])
    assert [r["attack"] for r in s] == ["gcg", "base64"] and s[1]["compute"]["seconds"] == 3.0
    assert mean_compute(rs[2:])["steps"] == 0.0 and math.isnan(mean_compute([])["seconds"])


def trace(*checks):
    """Trace rows (step, forward passes, seconds, verdict) as a search writes them after judging."""
    return [{"step": s, "loss": 1.0 / (s + 1), "forward_passes": f, "seconds": t, "verdicts": {"target": v}}
            for s, f, t, v in checks]


def test_asr_curve_on_a_hand_made_trace():
    rs = [rec("1", trace=trace((0, 10, 1.0, 0), (10, 100, 2.0, 1))),  # succeeds at step 10, stops early
          rec("2", trace=trace((0, 10, 0.5, 0), (10, 100, 1.0, 0), (20, 200, 3.0, 1), (30, 300, 4.0, 0))),  # 20
          rec("3", trace=trace((0, 10, 1.5, 0))),  # stops early without success: stays failed
          rec("4", trace=trace((0, 10, 0.2, 1), (10, 100, 0.4, 1)))]  # broken at once
    curve = asr_curve(rs, "target", "steps")
    assert [(p["x"], p["k"], p["n"]) for p in curve] == [(0, 1, 4), (10, 2, 4), (20, 3, 4), (30, 3, 4)]
    assert all(a["asr"] <= b["asr"] for a, b in zip(curve, curve[1:]))
    assert (curve[-1]["lo"], curve[-1]["hi"]) == pytest.approx(wilson(3, 4))
    fp = asr_curve(rs, "target", "forward_passes")
    assert [(p["x"], p["k"]) for p in fp] == [(10, 1), (100, 2), (200, 3), (300, 3)]
    sec = asr_curve(rs, "target", "seconds")  # each behaviour's own clock
    assert [(p["x"], p["k"]) for p in sec] == [(0.2, 1), (0.4, 1), (0.5, 1), (1.0, 1), (1.5, 1), (2.0, 2), (3.0, 3),
                                                (4.0, 3)]
    assert asr_curve(rs, "llm") == []  # no check carries that judge


def test_asr_curve_uses_the_final_verdict_of_a_record_without_trace():
    rs = [rec("1", compute={"steps": 0, "seconds": 1.0}, target=1),
          rec("2", compute={"steps": 0, "seconds": 1.0}, target=0)]
    assert [(p["x"], p["k"], p["n"]) for p in asr_curve(rs, "target")] == [(0, 1, 2)]


def test_cohen_kappa_known_examples():
    assert cohen_kappa([1, 0, 1, 1, 0], [1, 0, 1, 1, 0]) == 1.0
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == -1.0
    # the textbook 2x2 table (50 items: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no): p_o = 0.7, p_e = 0.5
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    # chance level: b independent of a by construction (each cell a quarter)
    assert cohen_kappa([1, 1, 0, 0] * 5, [1, 0, 1, 0] * 5) == pytest.approx(0.0)
    # categorical: 3 labels
    assert cohen_kappa(["x", "y", "z", "x"], ["x", "y", "z", "y"]) == pytest.approx((0.75 - 5 / 16) / (1 - 5 / 16))
    assert math.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]))  # p_e = 1: undefined
    assert cohen_kappa([1, 1, 1], [1, 1, 0]) == 0.0  # one constant rater: no better than chance
    assert math.isnan(cohen_kappa([], []))
    with pytest.raises(ValueError):
        cohen_kappa([1], [1, 0])


def test_agreement_pairs_over_records_both_judged():
    rs = [rec("1", target=1, refusal=1, llm=1), rec("2", target=0, refusal=1, llm=0), rec("3", refusal=0, llm=0),
          rec("4", target=1, refusal=0, llm=1)]
    pairs = agreement(rs, ["target", "refusal", "llm"])
    assert [(p["a"], p["b"], p["n"]) for p in pairs] == [("target", "refusal", 3), ("target", "llm", 3),
                                                         ("refusal", "llm", 4)]
    assert pairs[1]["kappa"] == 1.0 and pairs[1]["agree"] == 1.0
    assert pairs[0]["agree"] == pytest.approx(1 / 3)
    assert pairs[2]["agree"] == 0.5 and pairs[2]["kappa"] == pytest.approx(0.0)
    assert agreement(rs, ["llm"]) == []


def test_over_refusal_counts_verdict_zero_as_refused():
    # refusal judge: score 1 = refused -> verdict 0 (no success)
    rs = [rec(str(i), attack="none", refusal=0 if i < 3 else 1) for i in range(10)]
    r = over_refusal(rs)
    assert (r["judge"], r["k"], r["n"], r["rate"]) == ("refusal", 3, 10, 0.3)
    assert (r["lo"], r["hi"]) == pytest.approx(wilson(3, 10))
    assert over_refusal(rs, "llm")["n"] == 0
