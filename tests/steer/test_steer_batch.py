"""Many settings in one batch: each row steered as if alone; a greedy sweep runs one generate per layer."""

from __future__ import annotations

import pytest
import torch

from steer_helpers import NEG, POS, smol_lm  # noqa: F401
from tiny_models import no_hooks_left

from shoestring.errors import ShoestringError
from shoestring.steer import MeanDiff, Steer, generate
from shoestring.steer.batch import SteerRows
from shoestring.steer.experiment import Spec
from shoestring.steer.run import run_experiment

PROMPTS = ["The food was", "My week has been", "The train ride home was"]


@pytest.mark.parametrize("mode,relative", [("add", False), ("add", True), ("ablate", False), ("ablate_add", False)])
def test_every_row_is_steered_as_if_alone(smol_lm, mode, relative):
    d = MeanDiff(layers=(1,)).fit(smol_lm, POS, NEG)
    control = d.random_like(seed=7)
    settings = [(None, 0.0), (d, 30.0), (control, 30.0), (d, -10.0)]
    before = no_hooks_left(smol_lm.model)
    rows = SteerRows.sweep(smol_lm, 1, settings, len(PROMPTS), mode=mode, relative=relative)
    with rows:
        batched = smol_lm.forward(PROMPTS * len(settings))
    for i, (dirn, scale) in enumerate(settings):
        if dirn is None:
            alone = smol_lm.forward(PROMPTS)
        else:
            with Steer(smol_lm, dirn, scale, mode=mode, relative=relative):
                alone = smol_lm.forward(PROMPTS)
        got = batched[i * len(PROMPTS):(i + 1) * len(PROMPTS)]
        assert torch.allclose(got, alone, atol=1e-4), (i, mode)
    assert no_hooks_left(smol_lm.model) == before
    outs = generate(smol_lm, PROMPTS * len(settings), rows, max_new_tokens=5)
    with Steer(smol_lm, d, 30.0, mode=mode, relative=relative):
        assert outs[3:6] == smol_lm.generate(PROMPTS, 5)


def test_bad_rows_are_refused(smol_lm):
    d = MeanDiff(layers=(1,)).fit(smol_lm, POS, NEG)
    with pytest.raises(ShoestringError, match="width 5"):
        SteerRows(smol_lm, "blocks.1.hook_resid_post", torch.zeros(2, 5), torch.zeros(2))
    with pytest.raises(ShoestringError, match="no single vector at layer 2"):
        SteerRows.sweep(smol_lm, 2, [(d, 1.0)], 3)
    rows = SteerRows.sweep(smol_lm, 1, [(d, 1.0), (None, 0.0)], 3)
    with pytest.raises(ShoestringError, match="a batch of 3 rows"), rows:
        smol_lm.forward(PROMPTS)


def test_a_greedy_sweep_is_batched_per_layer(smol_lm, monkeypatch):
    import shoestring.steer.run as run_mod

    calls = []
    real = run_mod.generate
    monkeypatch.setattr(run_mod, "generate", lambda lm, prompts, *a, **k: calls.append(len(prompts)) or real(lm, prompts, *a, **k))
    spec = Spec.from_dict({"prompts": {"builtin": "sentiment", "limit": 4}, "sweep": {"layers": [0, 1], "scales": [0.0, 60.0]},
                           "generation": {"max_new_tokens": 5, "seeds": [0]},
                           "judges": [{"name": "sentiment"}, {"name": "fluency"}], "side_effects": {"texts": 0}})
    r = run_experiment(spec, smol_lm, progress=False)
    assert calls == [4 * 5, 4 * 5]  # per layer: unsteered + 2 scales x (steered, control)
    zero = [c for c in r["cells"] if c["scale"] == 0.0]
    for c in zero:  # scale 0 rows equal the unsteered rows of the same batch
        assert c["steered_sentiment"]["mean"] == 0.0 and c["control_fluency"]["mean"] == 0.0
    assert any(c["steered_fluency"]["mean"] != 0.0 for c in r["cells"] if c["scale"] == 60.0)
    assert len([s for s in r["samples"] if s["kind"] == "unsteered"]) == 4
