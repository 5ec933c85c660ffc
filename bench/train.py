"""Training throughput side by side: shoestring's small GPT against a plain loop over transformers' GPT-2.

    python bench/train.py              # both shapes, up to 15 interleaved rounds / 300 s each (~10-12 min, 2 cores)
    python bench/train.py --quick      # small shape, 2 rounds of 2 steps: a smoke test -> bench/.cache/train-quick.json
    python bench/train.py --profile    # also a short torch.profiler table per contender (top ops by self CPU time)
    python bench/train.py --compile    # also ours under torch.compile (TrainConfig(compile=True)), reported beside

The work, per shape (``small``: d_model 128, 4 layers, 4 heads; ``medium``: d_model 256, 6 layers, 8 heads;
both vocab 1024, context 128, batch 16 x 128 tokens, fp32, no dropout):

- ``ours``: ``shoestring.scaling.model.GPT`` configured as GPT-2 (learned positions, pre-LayerNorm, sdpa
  attention, GELU MLP of 4 d, tied embeddings, biases), ``make_optimizer(model, "adamw", lr, 0.1)`` (AdamW,
  betas (0.9, 0.95), decay on the 2-D weights only, foreach), ``model.training_loss(x, y)``, backward,
  ``clip_grad_norm_(1.0)``, step, zero_grad: the loop of ``shoestring.scaling.train``.
- ``gpt2``: ``transformers.GPT2LMHeadModel(GPT2Config(same shape, no dropout, sdpa,
  activation_function="gelu"))``: the same function as ours (exact GELU; stock GPT-2 uses the tanh
  approximation), started from **our model's weights** (copied in, Conv1D transposed, q/k/v concatenated), a
  plain loop: ``logits = model(input_ids=x, use_cache=False).logits``, the same ``F.cross_entropy``, the same
  ``torch.optim.AdamW`` groups and settings, the same clip.
- ``gpt2_stock_gelu`` (``--stock``, on by default): the same but with GPT2Config's default
  ``activation_function="gelu_new"`` (transformers' Python tanh-GELU, several elementwise kernels): what a
  plain ``GPT2Config`` gives. The issue's bar names "a plain loop over GPT2LMHeadModel": both are reported,
  ``meets_1_2x`` against the matched ``gpt2`` (the same function: the stricter test) and
  ``meets_1_2x_vs_stock`` against the stock one.
- ``ours_compiled`` (``--compile``, off by default): a deep copy of ours under ``torch.compile`` (what
  ``TrainConfig(compile=True)`` runs; the compilation falls in the warm-up steps, whose seconds are recorded).
  Reported beside (``ours_compiled_vs_gpt2``, ``ours_compiled_vs_ours``), not the bar: GPT-2 runs eager.

Every contender gets the same pre-drawn batches (random token ids by default, ``--data stdlib-prose`` for
``shoestring.scaling.data.token_data``) in the same order. Checks before timing: parameter counts, the
initial logits of ours vs ``gpt2`` (same weights, same function: equal up to fp32 summation order), and the
losses of the untimed warm-up steps (same init, same data, same optimiser: the curves must coincide, so
both loops really do the same training).

Timing: ``torch.set_num_threads(--threads, default os.cpu_count())``; ``--warmup-steps`` untimed steps each,
then rounds (``bench/_common.interleave``: the starting contender rotates) of ``--steps`` training steps per
contender. tokens/s = batch x context x steps / seconds. Model FLOP/s = ``train_flops_per_token(cfg)`` x
tokens/s (matmuls only, 3 x forward), also as a fraction of this machine's fp32 matmul rate measured in the
same run (``torch.mm`` of square 1024 and 2048 fp32 matrices, best of several, 2 n^3 FLOPs; before and after
the rounds). The bar (issue 8): ours tokens/s / GPT-2 tokens/s >= 1.2 (paired: the median over rounds of the
same-round ratio, with a 95% percentile-bootstrap interval over rounds).

Result: ``bench/results/train.json`` (written atomically) and a summary on stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from _common import interleave, machine, paired_ratio, stats, write_atomic  # noqa: E402
from _train_measure import bootstrap_ci, matmul_rates, profile  # noqa: E402

SHAPES = {"small": dict(d_model=128, n_layer=4, n_head=4), "medium": dict(d_model=256, n_layer=6, n_head=8)}
BAR = 1.2


# ---------------------------------------------------------------------------------------------
# models


def our_config(shape: dict, vocab: int, context: int):
    from shoestring.scaling.config import GPTConfig

    return GPTConfig(vocab_size=vocab, context=context, positions="learned", norm="layernorm", norm_position="pre",
                     attention="sdpa", mlp="gelu", tie_embeddings=True, bias=True, dropout=0.0, **shape).check()


def gpt2_config(shape: dict, vocab: int, context: int, activation: str):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=vocab, n_positions=context, n_embd=shape["d_model"], n_layer=shape["n_layer"],
                      n_head=shape["n_head"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      activation_function=activation, attn_implementation="sdpa", use_cache=False,
                      bos_token_id=None, eos_token_id=None)  # no tokenizer: 50256 is outside the vocabulary


@torch.no_grad()
def copy_ours_into_gpt2(ours, hf) -> None:
    """Our weights into GPT-2's layout: Conv1D stores [in, out] (our Linear's transpose), c_attn is q | k | v."""
    t = hf.transformer
    t.wte.weight.copy_(ours.embed.weight)
    t.wpe.weight.copy_(ours.pos.weight)
    for b, h in zip(ours.blocks, t.h):
        h.ln_1.weight.copy_(b.norm1.weight), h.ln_1.bias.copy_(b.norm1.bias)
        h.ln_2.weight.copy_(b.norm2.weight), h.ln_2.bias.copy_(b.norm2.bias)
        h.attn.c_attn.weight.copy_(torch.cat([b.attn.q.weight, b.attn.kv.weight], 0).T)
        h.attn.c_attn.bias.copy_(torch.cat([b.attn.q.bias, b.attn.kv.bias], 0))
        h.attn.c_proj.weight.copy_(b.attn.o.weight.T), h.attn.c_proj.bias.copy_(b.attn.o.bias)
        h.mlp.c_fc.weight.copy_(b.mlp.up.weight.T), h.mlp.c_fc.bias.copy_(b.mlp.up.bias)
        h.mlp.c_proj.weight.copy_(b.mlp.down.weight.T), h.mlp.c_proj.bias.copy_(b.mlp.down.bias)
    t.ln_f.weight.copy_(ours.norm.weight), t.ln_f.bias.copy_(ours.norm.bias)
    assert hf.lm_head.weight.data_ptr() == t.wte.weight.data_ptr(), "GPT-2's output layer is not tied"


def gpt2_adamw(model, lr: float, weight_decay: float, betas) -> torch.optim.AdamW:
    """The plain recipe (nanoGPT's): decay on the 2-D weights, none on biases and norms; tied weights once."""
    params = [p for p in model.parameters() if p.requires_grad]  # parameters() yields a tied tensor once
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=betas, foreach=True)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # a tied tensor counted once


# ---------------------------------------------------------------------------------------------
# the loops


class Loop:
    """One contender: a model, its optimiser, a step function; walks the shared batches in order."""

    def __init__(self, name: str, model, opt, step, batches, clip: float):
        self.name, self.model, self.opt, self._step = name, model, opt, step
        self.batches, self.clip, self.i, self.losses = batches, clip, 0, []

    def step(self) -> float:
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        loss = self._step(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        self.opt.zero_grad()
        return loss

    def run(self, n: int) -> None:
        for _ in range(n):
            loss = self.step()
        self.losses.append(float(loss.detach()))  # one sync per call, outside the steps


def build(shape_name: str, a, batches) -> tuple[dict, dict]:
    from transformers import GPT2LMHeadModel

    from shoestring.scaling.flops import forward_flops, train_flops_per_token
    from shoestring.scaling.model import GPT
    from shoestring.scaling.optim import make_optimizer

    shape = SHAPES[shape_name]
    cfg = our_config(shape, a.vocab, a.context)
    torch.manual_seed(a.seed)
    ours = GPT(cfg).train()
    ours_opt = make_optimizer(ours, "adamw", a.lr, a.weight_decay)

    def ours_step(x, y):
        ours_opt.set_scale(1.0)  # the training loop sets the schedule's scale every step
        return ours.training_loss(x, y)

    loops = {"ours": Loop("ours", ours, ours_opt, ours_step, batches, a.clip)}
    if a.compile:  # TrainConfig(compile=True): torch.compile of the model, the loss as _compiled_loss takes it
        twin = copy.deepcopy(ours)
        twin_opt = make_optimizer(twin, "adamw", a.lr, a.weight_decay)
        compiled = torch.compile(twin)

        def compiled_step(x, y):
            twin_opt.set_scale(1.0)
            return compiled(x, y)[1]

        loops["ours_compiled"] = Loop("ours_compiled", twin, twin_opt, compiled_step, batches, a.clip)
    hf_cfgs, hf_models = {}, {}
    acts = [("gpt2", "gelu")] + ([("gpt2_stock_gelu", "gelu_new")] if a.stock else [])
    for key, act in acts:
        hcfg = gpt2_config(shape, a.vocab, a.context, act)
        hf = GPT2LMHeadModel(hcfg).train()
        copy_ours_into_gpt2(ours, hf)
        opt = gpt2_adamw(hf, a.lr, a.weight_decay, (0.9, 0.95))

        def hf_step(x, y, hf=hf):
            logits = hf(input_ids=x, use_cache=False).logits
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

        loops[key] = Loop(key, hf, opt, hf_step, batches, a.clip)
        hf_cfgs[key], hf_models[key] = hcfg, hf

    # checks: parameter counts, same function at init
    x0 = batches[0][0]
    with torch.no_grad():
        ref = ours(x0)[0]
        init_diff = {k: float((m(input_ids=x0, use_cache=False).logits - ref).abs().max()) for k, m in hf_models.items()}
    info = {
        "our_config": cfg.to_dict(),
        "gpt2_config": {k: {f: getattr(c, f) for f in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head",
                                                         "n_inner", "activation_function", "resid_pdrop",
                                                         "embd_pdrop", "attn_pdrop", "layer_norm_epsilon",
                                                         "tie_word_embeddings")}
                        | {"attn_implementation": hf_models[k].config._attn_implementation}
                        for k, c in hf_cfgs.items()},
        "params": {"ours": n_params(ours), **{k: n_params(m) for k, m in hf_models.items()}},
        "ours_n_params_method": ours.n_params(),
        "forward_flops_per_token": forward_flops(cfg),
        "train_flops_per_token": train_flops_per_token(cfg),
        "init_logits_max_abs_diff_vs_ours": init_diff,
        "init_logits_scale": float(ref.abs().max()),
    }
    info["params_match"] = all(v == info["params"]["ours"] for v in info["params"].values())
    return loops, info


def make_batches(a) -> tuple[list, str]:
    g = torch.Generator().manual_seed(a.seed + 1)
    n = a.n_batches
    if a.data == "random":
        out = []
        for _ in range(n):
            seq = torch.randint(0, a.vocab, (a.batch, a.context + 1), generator=g)
            out.append((seq[:, :-1].contiguous(), seq[:, 1:].contiguous()))
        return out, f"random token ids, {n} pre-drawn batches (torch.Generator seed {a.seed + 1}), reused in order"
    from shoestring.scaling.data import token_data

    data = token_data(a.data, vocab_size=a.vocab)
    return ([data.batch(a.seed, i, a.batch, a.context) for i in range(n)],
            f"shoestring.scaling.data.token_data({a.data!r}, vocab_size={a.vocab}).batch(seed, i, ...), i < {n}")


# ---------------------------------------------------------------------------------------------


def bench_shape(shape_name: str, a, batches, peak: float) -> dict:
    loops, info = build(shape_name, a, batches)
    warm, warm_s = {}, {}
    for k, loop in loops.items():
        warm[k], t0 = [], time.perf_counter()
        for _ in range(a.warmup_steps):
            warm[k].append(round(float(loop.step().detach()), 6))
        warm_s[k] = round(time.perf_counter() - t0, 3)  # ours_compiled: includes the compilation
    same_fn = info["init_logits_max_abs_diff_vs_ours"]["gpt2"] <= 1e-4 * max(1.0, info["init_logits_scale"])
    curve = max(abs(x - y) for x, y in zip(warm["ours"], warm["gpt2"])) if a.warmup_steps else None
    checks = {"params_match": info["params_match"], "same_function_at_init": same_fn,
              "warmup_losses": warm, "warmup_seconds": warm_s, "warmup_loss_max_abs_diff_ours_vs_gpt2": curve,
              "same_training_ok": curve is not None and curve <= 1e-3}
    print(f"[{shape_name}] params {info['params']}  init |logit diff| {info['init_logits_max_abs_diff_vs_ours']}  "
          f"warm-up loss diff {curve}", flush=True)

    steps = a.steps

    def call(loop):
        return lambda: loop.run(steps)

    t0 = time.perf_counter()
    times = interleave({k: call(loop) for k, loop in loops.items()}, a.rounds, budget_s=a.budget,
                       min_repeats=a.min_rounds)
    rounds_s = time.perf_counter() - t0
    tokens = a.batch * a.context * steps
    fpt = info["train_flops_per_token"]
    cases = {}
    for k, t in times.items():
        tps = tokens / statistics.median(t)
        cases[k] = {**stats(t), "steps_per_call": steps, "tokens_per_call": tokens, "tokens_per_s": round(tps, 1),
                    "tokens_per_s_best": round(tokens / min(t), 1), "model_flops_per_s": round(fpt * tps, 1),
                    "fraction_of_matmul_peak": round(fpt * tps / peak, 4),
                    "loss_after_each_call": [round(x, 4) for x in loops[k].losses]}
    ratios = {}
    for k in times:
        if k in ("ours", "ours_compiled"):
            continue
        ratios[f"ours_vs_{k}_tokens_per_s"] = paired_ratio(times[k], times["ours"])  # their time / ours
        ratios[f"ours_vs_{k}_tokens_per_s_ci95"] = bootstrap_ci(times[k], times["ours"])
        ratios[f"ours_vs_{k}_from_medians"] = round(statistics.median(times[k]) / statistics.median(times["ours"]), 4)
        ratios[f"ours_vs_{k}_from_min"] = round(min(times[k]) / min(times["ours"]), 4)
    if "ours_compiled" in times:  # compiled ours vs the same eager GPT-2 loop, and vs eager ours
        for base in ("gpt2", "ours"):
            ratios[f"ours_compiled_vs_{base}_tokens_per_s"] = paired_ratio(times[base], times["ours_compiled"])
            ratios[f"ours_compiled_vs_{base}_tokens_per_s_ci95"] = bootstrap_ci(times[base], times["ours_compiled"])
    r = ratios["ours_vs_gpt2_tokens_per_s"]
    res = {"info": info, "checks": checks, "cases": cases, "ratios": ratios,
           "rounds_done": len(times["ours"]), "rounds_seconds": round(rounds_s, 1),
           "meets_1_2x": r >= BAR}
    if a.profile:
        res["profile_top_ops"] = profile(loops, a.profile_steps, a.profile_rows)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="small,medium", help=f"comma list of {', '.join(SHAPES)}")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="random", help="'random' token ids or a token_data corpus (stdlib-prose)")
    ap.add_argument("--n-batches", type=int, default=32, help="pre-drawn batches, walked in order by every contender")
    ap.add_argument("--steps", type=int, default=5, help="training steps per contender per round")
    ap.add_argument("--rounds", type=int, default=15, help="at most this many timed rounds per shape")
    ap.add_argument("--min-rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=300.0, help="seconds of rounds per shape (never before --min-rounds)")
    ap.add_argument("--warmup-steps", type=int, default=3, help="untimed steps per contender (their losses are checked)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--matmul-reps", type=int, default=10)
    ap.add_argument("--no-stock", dest="stock", action="store_false",
                    help="leave out the stock GPT-2 contender (activation_function='gelu_new')")
    ap.add_argument("--compile", action="store_true",
                    help="also time ours under torch.compile (TrainConfig(compile=True)); reported beside, not the bar")
    ap.add_argument("--profile", action="store_true", help="after the rounds, torch.profiler over a few steps each")
    ap.add_argument("--profile-steps", type=int, default=3)
    ap.add_argument("--profile-rows", type=int, default=25)
    ap.add_argument("--quick", action="store_true", help="small shape, 2 rounds of 2 steps: checks that it runs")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "train.json")
    a = ap.parse_args()
    if a.quick:
        a.shapes, a.steps, a.rounds, a.min_rounds, a.warmup_steps, a.matmul_reps = "small", 2, 2, 2, 2, 5
        a.n_batches = 8
        if a.out == BENCH / "results" / "train.json":
            a.out = BENCH / ".cache" / "train-quick.json"
    if a.compile:
        a.warmup_steps = max(a.warmup_steps, 2)  # compile (and its first re-run) outside the timed rounds
    shapes = [s.strip() for s in a.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        ap.error(f"unknown shape(s) {unknown}; known: {', '.join(SHAPES)}")
    torch.set_num_threads(a.threads)
    facts = machine()
    batches, data_note = make_batches(a)

    mm_before = matmul_rates(a.matmul_reps)
    results = {s: bench_shape(s, a, batches, max(v["best_flops_per_s"] for v in mm_before.values()))
               for s in shapes}
    mm_after = matmul_rates(a.matmul_reps)
    peak = max(v["best_flops_per_s"] for v in list(mm_before.values()) + list(mm_after.values()))
    for res in results.values():  # re-express against the run's best matmul rate (before or after the rounds)
        for c in res["cases"].values():
            c["fraction_of_matmul_peak"] = round(c["model_flops_per_s"] / peak, 4)

    must_show = {
        s: {"ours_vs_gpt2_tokens_per_s": r["ratios"]["ours_vs_gpt2_tokens_per_s"],
            "ci95": r["ratios"]["ours_vs_gpt2_tokens_per_s_ci95"], "bar": BAR, "meets_1_2x": r["meets_1_2x"],
            **({"ours_vs_gpt2_stock_tokens_per_s": r["ratios"]["ours_vs_gpt2_stock_gelu_tokens_per_s"],
                "ours_vs_gpt2_stock_ci95": r["ratios"]["ours_vs_gpt2_stock_gelu_tokens_per_s_ci95"],
                "meets_1_2x_vs_stock": r["ratios"]["ours_vs_gpt2_stock_gelu_tokens_per_s"] >= BAR}
               if "ours_vs_gpt2_stock_gelu_tokens_per_s" in r["ratios"] else {}),
            "checks_ok": r["checks"]["params_match"] and r["checks"]["same_function_at_init"]
            and r["checks"]["same_training_ok"]}
        for s, r in results.items()}
    import transformers

    result = {
        "benchmark": "train",
        "machine": {**facts, "load_average_at_end": os.getloadavg()},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "settings": {"batch": a.batch, "context": a.context, "vocab": a.vocab, "dtype": "float32", "lr": a.lr,
                     "betas": [0.9, 0.95], "weight_decay": a.weight_decay, "grad_clip": a.clip, "threads": a.threads,
                     "steps_per_call": a.steps, "rounds_max": a.rounds, "min_rounds": a.min_rounds,
                     "budget_s_per_shape": a.budget, "warmup_steps": a.warmup_steps, "data": data_note,
                     "shapes": {s: SHAPES[s] for s in shapes}, "compile_contender": a.compile,
                     "stock_contender": a.stock, "quick": a.quick},
        "protocol": "one process; contenders built from the same weights (ours copied into GPT-2) and fed the same "
                    "batches in the same order; untimed warm-up steps each (losses compared), then interleaved "
                    "rounds (bench/_common.interleave, the starting contender rotating) of steps_per_call training "
                    "steps per contender (forward + loss, backward, clip_grad_norm_, optimiser step, zero_grad). "
                    "ours_vs_X = X's time / ours = ours tokens/s / X's tokens/s (above 1: ours is faster); paired = "
                    "median over rounds of the same-round ratio; ci95 = percentile bootstrap over rounds.",
        "matmul": {"before": mm_before, "after": mm_after, "peak_flops_per_s": peak,
                   "note": "torch.mm of two n x n fp32 matrices, 2 n^3 FLOPs, best of reps, same threads"},
        "shapes": results,
        "must_show": {**must_show, "all_meet_1_2x": all(m["meets_1_2x"] for m in must_show.values()),
                      "all_checks_ok": all(m["checks_ok"] for m in must_show.values()),
                      **({"note": "--quick: 2 rounds of 2 steps, a smoke test; the ratios measure nothing"}
                         if a.quick else {})},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(a.out, result)

    print(f"\nfp32 matmul peak (best of 1024/2048, before/after): {peak / 1e9:.1f} GFLOP/s; "
          f"threads {a.threads}; load {facts['load_average_at_start']} -> {result['machine']['load_average_at_end']}")
    for s, r in results.items():
        print(f"\n[{s}] {SHAPES[s]}  params {r['info']['params']}  train FLOPs/token "
              f"{r['info']['train_flops_per_token'] / 1e6:.2f} M  rounds {r['rounds_done']}")
        print(f"  {'contender':<18}{'median s':>10}{'tokens/s':>11}{'GFLOP/s':>9}{'of peak':>9}")
        for k, c in r["cases"].items():
            print(f"  {k:<18}{c['median_s']:>10.4f}{c['tokens_per_s']:>11.0f}{c['model_flops_per_s'] / 1e9:>9.2f}"
                  f"{c['fraction_of_matmul_peak']:>9.1%}")
        for k, v in r["ratios"].items():
            print(f"  {k}: {v}")
        print(f"  meets_1_2x: {r['meets_1_2x']}")
    print(json.dumps({"must_show": result["must_show"]}, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
