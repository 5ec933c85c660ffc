"""Flipping one SAE latent changes the judged output measurably, against the same random control (the
stand-in on a tiny model for the SmolLM2 run in docs/steer.md): a latent that always fires and whose decoder
row points away from " great" in the unembedding is flipped; the steered model then says " great" more
(target log-probability judged under the intervention, and the word in the generated text), while a random
vector making the same per-token step does not."""

from __future__ import annotations

import pytest
import torch

from steer_helpers import smol_lm  # noqa: F401
from tiny_models import no_hooks_left

from shoestring.errors import ShoestringError
from shoestring.sae import make_sae, save_sae
from shoestring.steer import FeatureEdit
from shoestring.steer.experiment import Spec
from shoestring.steer.feature_edit import random_row
from shoestring.steer.run import run_experiment

LAST = "blocks.2.hook_resid_post"
FEATURE = 5


@pytest.fixture(scope="module")
def great_sae(smol_lm, tmp_path_factory):
    """A TopK SAE at the last block whose latent FEATURE fires on every token (large encoder bias) with a
    decoder row of minus the unit unembedding of " great"."""
    sae = make_sae("topk", smol_lm.anatomy.d_model, 16, k=4, hook_name=LAST, model_name="tiny")
    tid = smol_lm.tokenizer(" great", add_special_tokens=False)["input_ids"]
    assert len(tid) == 1
    w = smol_lm.model.lm_head.weight[tid[0]].detach().float()
    with torch.no_grad():
        sae.b_enc[FEATURE] = 2.0
        sae.W_enc[:, FEATURE] = 0.0
        sae.W_dec[FEATURE] = -w / w.norm()
    return save_sae(sae, tmp_path_factory.mktemp("great-sae") / "sae")


def test_the_edit_is_the_decoder_step_and_the_control_the_same_size(smol_lm, great_sae):
    from shoestring.sae import load_sae

    sae = load_sae(great_sae)
    before = no_hooks_left(smol_lm.model)
    with smol_lm.capture(LAST) as cap:
        smol_lm.forward(["hello there"])
    base = cap[LAST][0]
    z = sae.encode(base)[:, FEATURE]
    assert (z > 1.0).all()
    for vector in (None, random_row(sae, FEATURE, seed=3)):
        with smol_lm.capture(LAST) as cap, FeatureEdit(smol_lm, sae, FEATURE, "flip", 3.0, vector=vector):
            smol_lm.forward(["hello there"])
        step = cap[LAST][0] - base
        row = sae.W_dec[FEATURE].detach() if vector is None else vector
        assert torch.allclose(step, (-4.0 * z)[:, None] * row, atol=1e-4)
        assert torch.allclose(step.norm(dim=-1), 4.0 * z * sae.W_dec[FEATURE].norm(), rtol=1e-4)
    assert no_hooks_left(smol_lm.model) == before
    with pytest.raises(ShoestringError, match="out of range"):
        FeatureEdit(smol_lm, sae, 99, "flip")
    with pytest.raises(ShoestringError, match="unknown feature edit"):
        FeatureEdit(smol_lm, sae, FEATURE, "invert")


def test_flipping_one_feature_moves_the_judges_beyond_the_random_control(smol_lm, great_sae):
    spec = Spec.from_dict({
        "direction": {"method": "sae_feature", "sae": str(great_sae), "feature": FEATURE},
        "prompts": {"builtin": "sentiment", "limit": 12},
        "sweep": {"layers": [2], "scales": [0.0, 40.0], "mode": "flip"},
        "generation": {"max_new_tokens": 6, "seeds": [0]},
        "judges": [{"name": "logprob", "targets": [" great"]}, {"name": "regex", "keywords": ["great"]}],
        "side_effects": {"texts": 2, "context_length": 16}})
    r = run_experiment(spec, smol_lm, progress=False)
    assert r["direction"]["mode"] == "flip" and r["direction"]["meta"]["feature"] == FEATURE
    zero, flip = r["cells"]
    e, c = flip["steered_logprob"], flip["control_logprob"]
    assert e["ci_low"] > 0.3 and flip["logprob_significant"] and flip["logprob_beats_control"]
    assert abs(c["mean"]) < e["mean"] / 4 and e["wrong_way"] == 0.0
    assert flip["steered_regex"]["mean"] > 0.5 > flip["control_regex"]["mean"]
    assert flip["steered_kl_neutral"] > 0 and flip["control_kl_neutral"] > 0
    # scale 0 sets the latent to 0 (a zero-ablation): on this tiny model that step alone already saturates
    assert zero["steered_logprob"]["ci_low"] > 0.3 and zero["logprob_beats_control"]


def test_sae_feature_specs_are_checked(smol_lm, great_sae):
    with pytest.raises(ShoestringError, match="needs sae and feature"):
        Spec.from_dict({"direction": {"method": "sae_feature"}, "sweep": {"layers": [2], "scales": [1.0], "mode": "flip"}})
    with pytest.raises(ShoestringError, match="unknown steering mode 'flip'"):
        Spec.from_dict({"sweep": {"layers": [2], "scales": [1.0], "mode": "flip"}})
    spec = Spec.from_dict({"direction": {"method": "sae_feature", "sae": str(great_sae), "feature": FEATURE},
                           "prompts": {"texts": ["hi"]}, "sweep": {"layers": [1], "scales": [1.0], "mode": "flip"}})
    with pytest.raises(ShoestringError, match="not the SAE's layer 2"):
        run_experiment(spec, smol_lm, progress=False)
