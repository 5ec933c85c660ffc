"""Training to a budget: step planning, evaluation points, learning, reproducibility, checkpoints and resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.scaling.config import GPTConfig
from shoestring.scaling.data import TokenData
from shoestring.scaling.flops import train_flops_per_token
from shoestring.scaling.model import GPT
from shoestring.scaling.train import TrainConfig, eval_steps, evaluate, plan_steps, train


V = 64
CFG = GPTConfig(vocab_size=V, context=16, n_layer=1, n_head=2, d_model=32)


def structured(seed: int = 0) -> TokenData:
    """A stream of 20 recurring random phrases: learnable in a few dozen steps, far below log(V) nats."""
    rng = np.random.default_rng(seed)
    phrases = [rng.integers(0, V, rng.integers(3, 9)) for _ in range(20)]
    stream = np.concatenate([phrases[i] for i in rng.integers(0, 20, 5000)]).astype(np.uint16)
    return TokenData(stream[:-3000], stream[-3000:], V, {"corpus": "synthetic"})


DATA = structured()


def tcfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(steps=12, batch_size=8, lr=1e-2, evals=3, eval_tokens=512), **kw})


# ---------------------------------------------------------------- planning


def test_budget_smaller_than_one_step_is_one_clear_error():
    per_step = train_flops_per_token(CFG) * 8 * CFG.context
    with pytest.raises(ShoestringError, match="smaller than one step") as err:
        plan_steps(CFG, TrainConfig(budget=0.5 * per_step, batch_size=8))
    assert "\n" not in str(err.value)
    assert plan_steps(CFG, TrainConfig(budget=per_step, batch_size=8)) == 1
    assert plan_steps(CFG, TrainConfig(budget=3.99 * per_step, batch_size=8)) == 3
    assert plan_steps(CFG, TrainConfig(budget=1e30, steps=5, batch_size=8)) == 5  # explicit steps win


@pytest.mark.parametrize("kw,problem", [(dict(), "no budget and no steps"), (dict(steps=0), "steps 0 is below 1"),
                                        (dict(steps=3, schedule="linear"), "unknown schedule 'linear'"),
                                        (dict(steps=3, batch_size=0), "batch size 0 is below 1")])
def test_impossible_plans_are_refused(kw, problem):
    with pytest.raises(ShoestringError, match=problem):
        plan_steps(CFG, TrainConfig(**kw))


def test_unknown_training_option_is_refused():
    with pytest.raises(ShoestringError, match="unknown training option\\(s\\): stpes"):
        TrainConfig.from_dict({"stpes": 3})
    assert TrainConfig.from_dict({"steps": 3}).steps == 3


@pytest.mark.parametrize("steps,evals,want", [(10, 3, [3, 7, 10]), (100, 4, [25, 50, 75, 100]), (3, 10, [1, 2, 3]),
                                              (7, 1, [7]), (1, 6, [1])])
def test_eval_steps_are_evenly_spaced_and_include_the_last(steps, evals, want):
    assert eval_steps(steps, evals) == want


def test_zero_evals_still_evaluates_the_last_step():
    assert eval_steps(12, 0) == [12]


def test_eval_steps_spacing_is_even_for_many_shapes():
    for steps in range(1, 60):
        for evals in range(1, 12):
            at = eval_steps(steps, evals)
            assert at[-1] == steps and at == sorted(set(at)) and at[0] >= 1
            assert len(at) == min(steps, evals)
            gaps = np.diff([0] + at)
            assert gaps.max() - gaps.min() <= 1 if evals <= steps else set(gaps) == {1}


# ---------------------------------------------------------------- learning


def test_training_reduces_the_held_out_loss_and_logs_a_consistent_curve():
    tc = tcfg(steps=30, evals=3, schedule="wsd", min_lr_ratio=0.2)
    torch.manual_seed(tc.seed)
    initial = evaluate(GPT(CFG), DATA, tc)  # the same initial weights train() starts from
    assert initial == pytest.approx(np.log(V), abs=0.3)
    out = train(CFG, tc, DATA)
    assert out["val_loss"] < initial - 1.0, (initial, out["val_loss"])
    curve = out["curve"]
    assert [c["step"] for c in curve] == eval_steps(30, 3) == [10, 20, 30]
    assert curve[-1]["val_loss"] < curve[0]["val_loss"] < initial
    tokens = 8 * CFG.context
    for c in curve:
        assert c["tokens"] == c["step"] * tokens
        assert c["flops"] == pytest.approx(c["tokens"] * train_flops_per_token(CFG))
    assert curve[-1]["lr"] == pytest.approx(0.2 * tc.lr)  # wsd ends at min_lr_ratio
    assert curve[0]["lr"] == pytest.approx(tc.lr)  # ... and is flat before its decay
    assert out["steps"] == 30 and out["params"] == GPT(CFG).n_params()
    assert out["model"] == CFG.to_dict() and out["train"]["schedule"] == "wsd"


@pytest.mark.parametrize("optimizer", ["muon"])
def test_training_with_muon_also_learns(optimizer):
    out = train(CFG, tcfg(steps=20, optimizer=optimizer, evals=2), DATA)
    assert out["val_loss"] < out["curve"][0]["val_loss"] < np.log(V)


def test_a_budget_sets_the_number_of_steps():
    per_step = train_flops_per_token(CFG) * 8 * CFG.context
    calls = []
    out = train(CFG, TrainConfig(budget=4.5 * per_step, batch_size=8, evals=2, eval_tokens=256), DATA,
                progress=lambda s, n, loss: calls.append((s, n)))
    assert out["steps"] == 4 and calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert out["flops"] == pytest.approx(4 * per_step) and out["flops"] <= 4.5 * per_step


def test_same_seed_same_run_and_another_seed_another():
    a = train(CFG, tcfg(seed=0), DATA)
    b = train(CFG, tcfg(seed=0), DATA)
    c = train(CFG, tcfg(seed=1), DATA)
    strip = lambda out: [{k: v for k, v in p.items() if k != "seconds"} for p in out["curve"]]  # noqa: E731
    assert strip(a) == strip(b) and a["val_loss"] == b["val_loss"]
    assert a["val_loss"] != c["val_loss"]
    assert [p["train_loss"] for p in a["curve"]] != [p["train_loss"] for p in c["curve"]]
    # with dropout too: the seed fixes the masks of an uninterrupted run
    drop = replace(CFG, dropout=0.1)
    assert train(drop, tcfg(seed=0), DATA)["val_loss"] == train(drop, tcfg(seed=0), DATA)["val_loss"]


def test_a_model_vocabulary_smaller_than_the_tokenizer_or_a_tiny_corpus_is_refused():
    with pytest.raises(ShoestringError, match="smaller than the tokenizer"):
        train(replace(CFG, vocab_size=32), tcfg(), DATA)
    tiny = TokenData(DATA.train[:50], DATA.heldout, V, {})
    with pytest.raises(ShoestringError, match="fewer than one batch"):
        train(CFG, tcfg(), tiny)
    with pytest.raises(ShoestringError, match="not divisible"):
        train(replace(CFG, d_model=31), tcfg(), DATA)


# ---------------------------------------------------------------- checkpoints and resume


class Stop(KeyboardInterrupt):
    pass


def interrupted_then_resumed(tmp_path, model_cfg=CFG, stop_after=7, **kw):
    """Train 12 steps (evals at 4, 8, 12; checkpoints every 2), interrupt after ``stop_after``, resume."""
    tc = tcfg(checkpoint_every=2, **kw)
    ck = tmp_path / "ck"

    def stop(step, steps, loss):
        if step == stop_after:
            raise Stop

    with pytest.raises(Stop):
        train(model_cfg, tc, DATA, checkpoint=ck, progress=stop)
    saved = json.loads((ck / "state.json").read_text())
    # progress runs before that step's checkpoint: the last whole checkpoint is the last even step before it
    assert saved["step"] == (stop_after - 1) - (stop_after - 1) % 2
    seen = []
    resumed = train(model_cfg, tc, DATA, checkpoint=ck, progress=lambda s, n, loss: seen.append(s))
    assert seen == list(range(saved["step"] + 1, 13))  # only the missing steps ran
    return train(model_cfg, tc, DATA), resumed


def test_resume_after_an_interruption_gives_the_uninterrupted_weights(tmp_path):
    full, resumed = interrupted_then_resumed(tmp_path)
    assert resumed["val_loss"] == pytest.approx(full["val_loss"], abs=1e-5)
    assert [c["step"] for c in resumed["curve"]] == [c["step"] for c in full["curve"]] == [4, 8, 12]
    for a, b in zip(full["curve"], resumed["curve"]):
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-5)
        assert (b["tokens"], b["flops"], b["lr"]) == (a["tokens"], a["flops"], a["lr"])
    assert resumed["steps"] == full["steps"]


def test_resume_gives_the_uninterrupted_train_loss_curve(tmp_path):
    full, resumed = interrupted_then_resumed(tmp_path, stop_after=7)  # checkpoint at 6, evaluation at 8
    for a, b in zip(full["curve"], resumed["curve"]):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)


def test_resume_with_dropout_gives_the_uninterrupted_run(tmp_path):
    full, resumed = interrupted_then_resumed(tmp_path, model_cfg=replace(CFG, dropout=0.1), stop_after=6)
    assert resumed["val_loss"] == pytest.approx(full["val_loss"], abs=1e-5)


def test_checkpoint_files_and_a_finished_run_is_not_trained_again(tmp_path):
    ck = tmp_path / "ck"
    first = train(CFG, tcfg(), DATA, checkpoint=ck)
    assert {p.name for p in ck.iterdir()} >= {"model.safetensors", "optimizer.pt", "state.json"}
    from safetensors.torch import load_file

    weights = load_file(str(ck / "model.safetensors"))
    assert "head.weight" not in weights and "embed.weight" in weights  # tied: stored once
    assert json.loads((ck / "state.json").read_text())["step"] == 12
    calls = []
    again = train(CFG, tcfg(), DATA, checkpoint=ck, progress=lambda *a: calls.append(a))
    assert calls == []
    assert again["val_loss"] == first["val_loss"] and again["curve"] == first["curve"]


def test_untied_checkpoint_round_trips_the_output_layer(tmp_path):
    cfg = replace(CFG, tie_embeddings=False)
    full, resumed = interrupted_then_resumed(tmp_path, model_cfg=cfg, stop_after=5)
    assert resumed["val_loss"] == pytest.approx(full["val_loss"], abs=1e-5)
