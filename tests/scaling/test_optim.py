"""Learning-rate schedules, the Newton-Schulz orthogonalisation, Muon's parameter split, and that both optimisers
actually train the small GPT."""

from __future__ import annotations

import pytest
import torch

from shoestring.errors import ShoestringError
from shoestring.scaling.config import GPTConfig
from shoestring.scaling.model import GPT
from shoestring.scaling.optim import Muon, lr_at, make_optimizer, newton_schulz


LR = 0.01


# ---------------------------------------------------------------- schedules


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant"])
def test_warmup_rises_linearly_to_the_peak(schedule):
    steps, warmup = 100, 0.1  # 10 warm-up steps
    rates = [lr_at(s, steps, LR, schedule, warmup) for s in range(10)]
    assert rates[0] == pytest.approx(LR / 10)
    assert rates[-1] == pytest.approx(LR)
    diffs = [b - a for a, b in zip(rates, rates[1:])]
    assert all(d == pytest.approx(LR / 10) for d in diffs)
    assert max(lr_at(s, steps, LR, schedule, warmup) for s in range(steps)) == pytest.approx(LR)


def test_no_warmup_starts_at_the_peak():
    assert lr_at(0, 50, LR, "cosine", warmup=0.0) == pytest.approx(LR)
    assert lr_at(0, 50, LR, "wsd", warmup=0.0) == pytest.approx(LR)
    assert 0 < lr_at(0, 3, LR, "cosine", warmup=0.05) <= LR  # a tiny run still warms up over at least one step


@pytest.mark.parametrize("steps", [20, 101])
def test_cosine_decays_monotonically_to_min_ratio_at_the_last_step(steps):
    rates = [lr_at(s, steps, LR, "cosine", 0.1, min_ratio=0.1) for s in range(steps)]
    w = max(1, round(0.1 * steps))
    assert rates[w] == pytest.approx(LR)
    after = rates[w:]
    assert all(b <= a + 1e-15 for a, b in zip(after, after[1:]))
    assert rates[-1] == pytest.approx(0.1 * LR)
    assert min(rates[w:]) == pytest.approx(0.1 * LR)
    mid = w + (steps - 1 - w) // 2
    assert rates[mid] == pytest.approx(0.55 * LR, rel=0.1)  # halfway down the cosine


def test_wsd_is_flat_in_the_middle_then_decays_linearly_to_min_ratio():
    steps = 100  # warm-up 10, stable 10..79, decay 80..99
    rates = [lr_at(s, steps, LR, "wsd", 0.1, min_ratio=0.2, decay=0.2) for s in range(steps)]
    assert all(r == pytest.approx(LR) for r in rates[10:80])
    assert rates[-1] == pytest.approx(0.2 * LR)
    tail = rates[79:]
    diffs = [a - b for a, b in zip(tail, tail[1:])]
    assert all(d == pytest.approx((1 - 0.2) * LR / 20) for d in diffs)  # linear, strictly down


def test_constant_stays_at_the_peak_after_warmup():
    assert all(lr_at(s, 40, LR, "constant", 0.1) == LR for s in range(4, 40))


# ---------------------------------------------------------------- Newton-Schulz


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (48, 40), (32, 32)])
def test_newton_schulz_pushes_singular_values_towards_one_and_keeps_the_singular_vectors(shape):
    g = torch.Generator().manual_seed(0)
    G = torch.randn(shape, generator=g)
    if shape[0] == shape[1]:  # a random square matrix has singular values near 0: give it a well-posed spectrum
        U, _, Vh = torch.linalg.svd(G)
        G = U @ torch.diag(torch.linspace(0.2, 5.0, shape[0])) @ Vh
    X = newton_schulz(G)
    assert X.shape == G.shape
    s = torch.linalg.svdvals(X)
    assert s.min() > 0.6 and s.max() < 1.3, s
    assert torch.linalg.svdvals(G / G.norm()).min() < 0.2  # the input was far from orthogonal
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    assert torch.linalg.matrix_norm(X - U @ Vh, ord=2) < 0.35  # close to the polar factor U V^T


def test_newton_schulz_ignores_the_scale_of_its_input():
    G = torch.randn(24, 40, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(newton_schulz(G), newton_schulz(1000 * G), atol=1e-4, rtol=1e-4)


def test_muon_step_is_an_orthogonalised_update_scaled_by_the_aspect_ratio():
    for rows, cols in ((64, 16), (16, 64)):
        p = torch.nn.Parameter(torch.zeros(rows, cols))
        p.grad = torch.randn(rows, cols, generator=torch.Generator().manual_seed(2))
        Muon([p], lr=0.1).step()
        s = torch.linalg.svdvals(-p.detach()) / (0.1 * max(1.0, rows / cols) ** 0.5)
        assert s.min() > 0.6 and s.max() < 1.3
        assert (-p.detach() * p.grad).sum() > 0  # a descent direction


# ---------------------------------------------------------------- parameter split

CFG = GPTConfig(vocab_size=64, context=16, n_layer=2, n_head=4, d_model=32, norm="layernorm", bias=True)


def groups(opt: torch.optim.Optimizer) -> list[set[int]]:
    return [{id(p) for p in g["params"]} for g in opt.param_groups]


def test_muon_takes_the_block_matrices_and_adamw_the_rest():
    model = GPT(CFG)
    opts = make_optimizer(model, "muon", lr=1e-3, weight_decay=0.1)
    assert len(opts.opts) == 2
    adam, muon = opts.opts
    assert isinstance(adam, torch.optim.AdamW) and isinstance(muon, Muon)
    named = dict(model.named_parameters())
    in_muon = set().union(*groups(muon))
    want = {id(p) for n, p in named.items() if n.startswith("blocks.") and p.ndim == 2}
    assert in_muon == want and len(want) == CFG.n_layer * 5  # q, kv, o, up, down per block
    decay, rest = groups(adam)
    assert id(model.embed.weight) in decay and id(model.pos.weight) in decay
    assert id(model.blocks[0].norm1.weight) in rest and id(model.blocks[0].attn.q.bias) in rest
    assert adam.param_groups[1]["weight_decay"] == 0.0 and adam.param_groups[0]["weight_decay"] == 0.1
    # every parameter exactly once
    everything = [i for grp in groups(adam) + groups(muon) for i in grp]
    assert sorted(everything) == sorted(id(p) for p in model.parameters())


def test_adamw_alone_decays_only_matrices():
    model = GPT(CFG)
    opts = make_optimizer(model, "adamw", weight_decay=0.1)
    assert len(opts.opts) == 1
    decay, rest = groups(opts.opts[0])
    assert decay == {id(p) for p in model.parameters() if p.ndim == 2}
    assert rest == {id(p) for p in model.parameters() if p.ndim < 2}


def test_unknown_optimizer_is_one_clear_error():
    with pytest.raises(ShoestringError, match="unknown optimizer 'sgd'"):
        make_optimizer(GPT(CFG), "sgd")


def test_set_scale_multiplies_every_base_rate_and_state_round_trips():
    model = GPT(CFG)
    opts = make_optimizer(model, "muon", lr=2e-3, muon_lr=0.04)
    opts.set_scale(0.5)
    assert [g["lr"] for g in opts.opts[0].param_groups] == [1e-3, 1e-3]
    assert [g["lr"] for g in opts.opts[1].param_groups] == [0.02]
    opts.set_scale(0.25)  # relative to the base, not compounding
    assert opts.opts[1].param_groups[0]["lr"] == pytest.approx(0.01)
    x = torch.randint(0, 64, (2, 16))
    model.training_loss(x, x).backward()
    opts.step()
    state = opts.state_dict()
    assert set(state) == {"0", "1"}
    again = make_optimizer(model, "muon", lr=2e-3, muon_lr=0.04)
    again.load_state_dict(state)
    p = model.blocks[0].attn.q.weight
    assert torch.equal(again.opts[1].state[p]["momentum"], opts.opts[1].state[p]["momentum"])


# ---------------------------------------------------------------- they train


@pytest.mark.parametrize("name", ["adamw", "muon"])
def test_both_optimisers_reduce_the_training_loss(name):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, context=16, n_layer=1, n_head=2, d_model=32))
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 64, (8, 17), generator=g)
    inputs, targets = x[:, :-1], x[:, 1:]
    opts = make_optimizer(model, name, lr=1e-2, weight_decay=0.0)
    losses = []
    for step in range(30):
        opts.set_scale(lr_at(step, 30, 1.0, "cosine", 0.1))
        loss = model.training_loss(inputs, targets)
        loss.backward()
        opts.step()
        opts.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(p.grad is None for p in model.parameters())  # zero_grad sets to None
