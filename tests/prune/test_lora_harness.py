"""LoRA recovery (https://arxiv.org/abs/2106.09685) on tiny pruned Llama models: it lowers the training-domain
loss, resumes to the uninterrupted result, merges into plain modules that save and reload with identical logits,
and works on layers pruned to different widths. And lm-evaluation-harness on a model in memory, with a local
offline task. Offline throughout (the tiny models' conftest switches the hub off)."""

from __future__ import annotations

import copy
import json
import os
import sys

import pytest
import torch
import transformers as T

from shoestring.errors import ShoestringError
from shoestring.prune import PruningPlan, apply_plan, model_shape
from shoestring.prune.evaluate import batches, perplexity
from shoestring.prune.lora import LoraOptions, recover_lora
from shoestring.prune.recover import RecoveryConfig
from lm_eval_task import local_task
from tiny_models import make_model, random_ids

os.environ["HF_DATASETS_OFFLINE"] = "1"

CFG = RecoveryConfig(tokens=8 * 2 * 32, lr=3e-2, batch_size=2, length=32, checkpoint_every=3, skip=4)
UNIFORM = dict(kv_groups={0: [1], 1: [0]}, channels={0: list(range(0, 64, 2)), 1: list(range(32))})
PER_LAYER = dict(kv_groups={0: [1]}, channels={0: list(range(10)), 1: list(range(0, 64, 2))})


@pytest.fixture(scope="module")
def tok():
    from shoestring.models.bundled import cached_dir

    return T.AutoTokenizer.from_pretrained(cached_dir())


def pruned(tok, plan=UNIFORM, return_plan=False):
    model = make_model("llama", vocab_size=len(tok)).eval()
    plan = PruningPlan(model_shape(model.config), **plan)
    return (apply_plan(model, plan), plan) if return_plan else apply_plan(model, plan)


def plain(model) -> bool:
    """No peft module is left (every projection is an nn.Linear again) and no weight stays frozen."""
    return (not any("lora" in n or "base_layer" in n for n, _ in model.named_modules())
            and all(p.requires_grad for p in model.parameters())  # as trainable as before (peft froze them)
            and all(type(m) is torch.nn.Linear for n, m in model.named_modules() if n.endswith("_proj")))


@pytest.fixture(scope="module")
def trained(tok):
    """One uninterrupted LoRA recovery of a uniformly pruned model (shared: training is the slow part)."""
    model = pruned(tok)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    held = batches(tok, "stdlib-prose", 4, 32, 2)  # the 4 contexts recovery skips
    before = perplexity(model, held)
    out = recover_lora(model, tok, "stdlib-prose", CFG)  # dropout 0.05: a resume must restore the random state
    return model, out, {"shapes": shapes, "held": held, "perplexity": before}


def test_lora_lowers_the_training_domain_loss_and_merges_into_a_plain_model(trained, tmp_path):
    model, out, before = trained
    assert out["steps"] == 8 and out["tokens"] == 512 and len(out["losses"]) == 8
    assert out["config"]["tokens"] == 512 and out["lora"]["rank"] == 8 and out["trainable"] > 0
    assert sum(out["losses"][-2:]) < sum(out["losses"][:2])
    assert perplexity(model, before["held"]) < before["perplexity"]
    assert plain(model) and not model.training
    assert {k: v.shape for k, v in model.state_dict().items()} == before["shapes"]
    model.save_pretrained(tmp_path / "merged")
    again = T.AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    ids = random_ids(2, 9)
    assert torch.equal(again(input_ids=ids).logits, model(input_ids=ids).logits)


def test_lora_resumes_to_the_uninterrupted_result(tok, trained, tmp_path):
    full, want, _ = trained

    class Stop(Exception):
        pass

    def stop_at_4(step, steps, loss):
        if step == 4:
            raise Stop

    part = pruned(tok)
    with pytest.raises(Stop):
        recover_lora(part, tok, "stdlib-prose", CFG, checkpoint=tmp_path / "ck", progress=stop_at_4)
    assert plain(part)  # an interrupted run takes its adapters out again
    assert (tmp_path / "ck" / "rng.pt").is_file()
    assert json.loads((tmp_path / "ck" / "state.json").read_text())["step"] == 3  # the last checkpoint before the stop
    resumed = pruned(tok)  # a fresh process starts again from the pruned weights
    got = recover_lora(resumed, tok, "stdlib-prose", CFG, checkpoint=tmp_path / "ck")
    assert got["losses"] == pytest.approx(want["losses"], abs=1e-5)
    ids = random_ids(2, 8)
    torch.testing.assert_close(resumed(input_ids=ids).logits, full(input_ids=ids).logits, atol=1e-5, rtol=1e-4)
    with pytest.raises(ShoestringError, match="not a LoRA recovery with these options"):
        recover_lora(pruned(tok), tok, "stdlib-prose", CFG, LoraOptions(rank=4), checkpoint=tmp_path / "ck")


def test_lora_on_layers_of_different_widths_merges_exactly(tok, tmp_path):
    import peft
    from safetensors.torch import load_file

    from shoestring.prune.checkpoint import load_pruned, save_pruned

    model, plan = pruned(tok, PER_LAYER, return_plan=True)
    start = copy.deepcopy(model)
    assert [b.mlp.up_proj.weight.shape[0] for b in model.model.layers] == [10, 32]
    rc = RecoveryConfig(tokens=2 * 2 * 32, lr=3e-2, batch_size=2, length=32)
    opts = LoraOptions(dropout=0.0, targets=("q_proj", "o_proj", "up_proj", "down_proj", "absent_proj"))
    recover_lora(model, tok, "stdlib-prose", rc, opts, checkpoint=tmp_path / "ck")
    assert plain(model)
    # the merged weights compute what the base weights plus the trained adapters compute
    targets = ["q_proj", "o_proj", "up_proj", "down_proj"]
    adapted = peft.get_peft_model(start, peft.LoraConfig(r=8, lora_alpha=16.0, target_modules=targets))
    peft.set_peft_model_state_dict(adapted, load_file(tmp_path / "ck" / "model.safetensors"))
    ids = random_ids(2, 9)
    with torch.no_grad():
        want = adapted.eval()(input_ids=ids).logits
        torch.testing.assert_close(model(input_ids=ids).logits, want, atol=1e-5, rtol=1e-4)
    save_pruned(model, tok, plan, tmp_path / "merged")
    again = load_pruned(tmp_path / "merged")
    assert torch.equal(again(input_ids=ids).logits, model(input_ids=ids).logits)


def test_missing_peft_and_bad_targets_are_one_line(tok, monkeypatch):
    with pytest.raises(ShoestringError, match="none of the LoRA targets"):
        recover_lora(pruned(tok), tok, "stdlib-prose", CFG, LoraOptions(targets=("c_attn",)))
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ShoestringError, match="pip install 'peft"):
        recover_lora(pruned(tok), tok, "stdlib-prose", CFG)


# ---------------------------------------------------------------- lm-evaluation-harness

def test_lm_eval_runs_a_local_task_on_full_and_pruned_models(tok, tmp_path):
    pytest.importorskip("lm_eval")
    from shoestring.prune.harness import lm_eval_tasks

    folder = local_task(tmp_path)
    for model in (make_model("llama", vocab_size=len(tok)), pruned(tok, PER_LAYER)):
        state = torch.get_rng_state()
        got = lm_eval_tasks(model, tok, ["tiny_mc"], include_path=folder, batch_size=4)
        assert set(got) == {"tiny_mc"} and {"acc", "acc_norm", "acc_stderr"} <= set(got["tiny_mc"])
        assert all(0.0 <= got["tiny_mc"][m] <= 1.0 for m in ("acc", "acc_norm"))
        assert torch.equal(torch.get_rng_state(), state)  # lm-eval's seeding does not leak
    limited = lm_eval_tasks(model, tok, ["tiny_mc"], include_path=folder, limit=2)
    assert limited["tiny_mc"]["acc"] in (0.0, 0.5, 1.0)


def test_lm_eval_errors_are_one_line(tok, tmp_path, monkeypatch):
    lm_eval = pytest.importorskip("lm_eval")
    import lm_eval.tasks

    from shoestring.prune import harness

    model = make_model("llama", vocab_size=len(tok))
    offline = local_task(tmp_path, data_file=tmp_path / "not_downloaded.jsonl")
    with pytest.raises(ShoestringError, match="is not available.*download the dataset once"):
        harness.lm_eval_tasks(model, tok, ["tiny_mc"], include_path=offline)
    real = lm_eval.tasks.TaskManager  # lm-eval's own index takes tens of seconds to build: leave it out here
    monkeypatch.setattr(lm_eval.tasks, "TaskManager", lambda **kw: real(**{**kw, "include_defaults": False}))
    with pytest.raises(ShoestringError, match="no task 'tiny_mcq' .*did you mean tiny_mc"):
        harness.lm_eval_tasks(model, tok, ["tiny_mcq"], include_path=offline)
    with pytest.raises(ShoestringError, match="does not exist"):
        harness.lm_eval_tasks(model, tok, ["tiny_mc"], include_path=tmp_path / "nowhere")
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(ShoestringError, match=r"pip install 'lm-eval\[hf\]"):
        harness.lm_eval_tasks(model, tok, ["tiny_mc"])
