"""The closed loop: spec validation, paired statistics, and a whole run on a tiny model."""

from __future__ import annotations

import pytest

from steer_helpers import smol_lm  # noqa: F401

from shoestring.errors import ShoestringError
from shoestring.steer.experiment import Spec, read_pairs, shipped_pairs, shipped_prompts
from shoestring.steer.run import run_experiment
from shoestring.steer.stats import bootstrap_mean_ci, effect, excludes_zero


def test_paired_effect_statistics():
    e = effect([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 4.0, 4.0])
    assert e["mean"] == pytest.approx(0.5) and e["wrong_way"] == pytest.approx(0.25) and e["n"] == 4
    assert e["ci_low"] <= 0.5 <= e["ci_high"]
    strong = effect([1.0 + 0.01 * i for i in range(30)], [0.0] * 30)
    assert excludes_zero(strong) and strong["wrong_way"] == 0.0
    assert effect([0.0] * 5, [1.0] * 5, sign=-1.0)["wrong_way"] == 0.0
    lo, hi = bootstrap_mean_ci([0.0, 10.0] * 10, seed=1)
    assert 2.0 < lo < 5.0 < hi < 8.0


def test_shipped_data_and_pair_files(tmp_path):
    pos, neg = shipped_pairs("sentiment")
    assert len(pos) == len(neg) >= 30 and pos[0] != neg[0]
    assert len(shipped_prompts("sentiment")) >= 20
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"positive": "a", "negative": "b"}\n{"positive": "c"}\n')
    with pytest.raises(ShoestringError, match="line 2"):
        read_pairs(bad)


def test_spec_validation(tmp_path):
    with pytest.raises(ShoestringError, match="unknown judge 'vibes'"):
        Spec.from_dict({"judges": [{"name": "vibes"}]})
    with pytest.raises(ShoestringError, match="unknown section"):
        Spec.from_dict({"sweeep": {}})
    with pytest.raises(ShoestringError, match="unknown direction method"):
        Spec.from_dict({"direction": {"method": "magic"}})
    with pytest.raises(ShoestringError, match="needs layers and scales"):
        Spec.from_dict({"sweep": {"layers": [1]}})
    (tmp_path / "s.toml").write_text("model = ")
    with pytest.raises(ShoestringError, match="not valid TOML"):
        Spec.from_toml(tmp_path / "s.toml")
    (tmp_path / "s.toml").write_text('model = "x"\n[sweep]\nlayers = [1]\nscales = [2.0]\n')
    assert Spec.from_toml(tmp_path / "s.toml").sweep["scales"] == [2.0]


def test_a_whole_run_on_a_tiny_model(smol_lm):
    spec = Spec.from_dict({"prompts": {"builtin": "sentiment", "limit": 4}, "sweep": {"layers": [1], "scales": [0.0, 60.0]},
                           "generation": {"max_new_tokens": 5, "seeds": [0, 1], "do_sample": True},
                           "judges": [{"name": "sentiment"}, {"name": "fluency"}], "side_effects": {"texts": 2, "context_length": 16}})
    r = run_experiment(spec, smol_lm, progress=False)
    assert r["prompts"] == 4 and len(r["cells"]) == 2
    assert len(r["samples"]) == 2 * 4 * (1 + 2 * 2)  # seeds x prompts x (unsteered + 2 kinds x 2 cells)
    zero, big = r["cells"]
    for kind in ("steered", "control"):  # scale 0 changes nothing: same outputs, no effect, no KL
        assert zero[f"{kind}_sentiment"]["mean"] == 0.0 and zero[f"{kind}_fluency"]["mean"] == 0.0
        assert zero[f"{kind}_kl_neutral"] == pytest.approx(0.0, abs=1e-6)
    assert big["steered_kl_neutral"] > 1e-4 and big["control_kl_neutral"] > 1e-4
    outs = {(s["kind"], s["scale"], s["seed"], s["prompt"]): s["output"] for s in r["samples"]}
    assert any(outs[("steered", 60.0, 0, p)] != outs[("unsteered", 0.0, 0, p)] for p in shipped_prompts()[:4])
