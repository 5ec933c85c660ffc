"""Recovery fine-tuning (budget, loss, resume) and speed measurement on tiny Llama models."""

from __future__ import annotations

import pytest
import torch
import transformers as T

from shoestring.errors import ShoestringError
from shoestring.prune import PruningPlan, apply_plan, model_shape
from shoestring.prune.recover import RecoveryConfig, recover
from shoestring.prune.speed import measure_speed
from tiny_models import make_model, random_ids


@pytest.fixture(scope="module")
def tok():
    from shoestring.models.bundled import cached_dir

    return T.AutoTokenizer.from_pretrained(cached_dir())


def small(tok):
    torch.manual_seed(0)
    return make_model("llama", vocab_size=len(tok)).eval()


CFG = RecoveryConfig(tokens=8 * 2 * 32, lr=3e-3, batch_size=2, length=32, checkpoint_every=3)


def test_recovery_lowers_the_loss_and_keeps_its_budget(tok):
    model = small(tok)
    out = recover(model, tok, "stdlib-prose", CFG)
    assert out["steps"] == 8 and out["tokens"] == 512
    assert sum(out["losses"][-2:]) < sum(out["losses"][:2])
    assert not model.training


def test_recovery_resumes_to_the_uninterrupted_result(tok, tmp_path):
    full = small(tok)
    want = recover(full, tok, "stdlib-prose", CFG)

    class Stop(Exception):
        pass

    def stop_at_4(step, steps, loss):
        if step == 4:
            raise Stop

    part = small(tok)
    with pytest.raises(Stop):
        recover(part, tok, "stdlib-prose", CFG, checkpoint=tmp_path / "ck", progress=stop_at_4)
    resumed = small(tok)  # a fresh process would start from the original weights
    got = recover(resumed, tok, "stdlib-prose", CFG, checkpoint=tmp_path / "ck")
    assert got["losses"] == pytest.approx(want["losses"], abs=1e-5)
    ids = random_ids(2, 8)
    torch.testing.assert_close(resumed(input_ids=ids).logits, full(input_ids=ids).logits, atol=1e-5, rtol=1e-4)


def test_a_budget_below_one_batch_is_one_line(tok):
    with pytest.raises(ShoestringError, match="smaller than one batch"):
        recover(small(tok), tok, "stdlib-prose", RecoveryConfig(tokens=10, batch_size=2, length=32))


def test_speed_is_measured_on_the_pruned_shapes():
    model = make_model("llama").eval()
    prompt = random_ids(1, 24)
    before = measure_speed(model, prompt, new_tokens=4, repeats=2)
    assert before["prefill_s"] > 0 and before["decode_tokens_per_s"] > 0 and len(before["decode_samples"]) == 2
    pruned = apply_plan(model, PruningPlan(model_shape(model.config), channels={0: [0, 1], 1: [2, 3]},
                                           kv_groups={0: [0], 1: [1]}))
    after = measure_speed(pruned, prompt, new_tokens=4, repeats=2)
    assert after["peak_how"].startswith("process RSS")
