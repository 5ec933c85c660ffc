"""Run a steering experiment (:class:`~shoestring.steer.experiment.Spec`): every cell of layers x scales,
steered and random-control generations against the unsteered ones, every judge, paired effects with
bootstrap 95% intervals, the wrong-way fraction, and the side effect on neutral text (KL of the next-token
distribution and the change in perplexity)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .apply import Steer, generate
from .experiment import Spec, build_direction
from .stats import effect, excludes_zero

NEEDS_LM = {"fluency", "logprob"}


def make_judges(spec: Spec, lm) -> list[tuple[str, object, float]]:
    from ..judges import make_judge

    out = []
    for j in spec.judges:
        settings = {k: v for k, v in j.items() if k not in ("name", "sign")}
        if j["name"] in NEEDS_LM:
            settings.setdefault("lm", lm)
        if "targets" in settings:
            settings["targets"] = tuple(settings["targets"])
        out.append((j["name"], make_judge(j["name"], **settings), float(j.get("sign", 1.0))))
    return out


def neutral_contexts(lm, spec: Spec) -> torch.Tensor | None:
    from ..data import load_corpus
    from ..data.pack import take_contexts

    n = int(spec.side_effects.get("texts", 8))
    if n <= 0:
        return None
    corpus = spec.side_effects.get("corpus", "stdlib-prose")
    return take_contexts(load_corpus(corpus), lm.tokenizer, int(spec.side_effects.get("context_length", 64)), n)


@torch.no_grad()
def side_effect(lm, steer: Steer | None, ctx: torch.Tensor, base_logp: torch.Tensor | None = None):
    """``(log-probs, mean NLL)`` on neutral contexts, and with ``base_logp`` the mean KL(unsteered || steered)."""
    if steer is None:
        logits = lm.forward(ctx)
    else:
        with steer:
            logits = lm.forward(ctx)
    logp = F.log_softmax(logits[:, :-1].float(), -1)
    nll = float(-logp.gather(-1, ctx[:, 1:, None].to(logp.device)).mean())
    kl = float((base_logp.exp() * (base_logp - logp)).sum(-1).mean()) if base_logp is not None else 0.0
    return logp, nll, kl


def run_experiment(spec: Spec, lm, progress: bool = True) -> dict:
    """Everything the loop measures: ``{"direction", "cells", "samples", "unsteered", "config"}``."""
    prompts = spec.prompt_texts()
    direction = build_direction(spec, lm)
    sw, gen = spec.sweep, spec.generation
    seeds = [int(s) for s in gen.get("seeds", [0])]
    gkw = {"max_new_tokens": int(gen.get("max_new_tokens", 24)), "do_sample": bool(gen.get("do_sample", False)),
           "chat": bool(gen.get("chat", False))}
    judges = make_judges(spec, lm)
    ctx = neutral_contexts(lm, spec)
    base_logp, base_nll, _ = side_effect(lm, None, ctx) if ctx is not None else (None, float("nan"), 0.0)
    cells = [(int(layer), float(scale)) for layer in sw["layers"] for scale in sw["scales"]]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds) * (1 + 2 * len(cells)), desc="steering", unit="batch")

    def judge_all(outs):
        return {name: j(outs, prompts) for name, j, _ in judges}

    samples, base = [], {}
    for seed in seeds:
        outs = generate(lm, prompts, None, seed=seed, **gkw)
        base[seed] = (outs, judge_all(outs))
        samples += [{"kind": "unsteered", "layer": -1, "scale": 0.0, "seed": seed, "prompt": p, "output": o,
                     **{f"score_{n}": s[i] for n, s in base[seed][1].items()}} for i, (p, o) in enumerate(zip(prompts, outs))]
        if bar is not None:
            bar.update(1)
    results = []
    for layer, scale in cells:
        cell = {"layer": layer, "scale": scale}
        for kind, dirn in (("steered", direction), ("control", direction.random_like(seed=layer * 1000 + 1))):
            per_judge = {name: ([], []) for name, _, _ in judges}
            for seed in seeds:
                st = Steer(lm, dirn, scale, layers=(layer,), mode=sw.get("mode", "add"),
                           positions=sw.get("positions", "all"), relative=bool(sw.get("relative", False)))
                outs = generate(lm, prompts, st, seed=seed, **gkw)
                scores = judge_all(outs)
                for name in per_judge:
                    per_judge[name][0].extend(scores[name])
                    per_judge[name][1].extend(base[seed][1][name])
                samples += [{"kind": kind, "layer": layer, "scale": scale, "seed": seed, "prompt": p, "output": o,
                             **{f"score_{n}": s[i] for n, s in scores.items()}} for i, (p, o) in enumerate(zip(prompts, outs))]
                if bar is not None:
                    bar.update(1)
            for name, _, sign in judges:
                e = effect(*per_judge[name], sign=sign)
                cell[f"{kind}_{name}"] = e
            if ctx is not None:
                st = Steer(lm, dirn, scale, layers=(layer,), mode=sw.get("mode", "add"), relative=bool(sw.get("relative", False)))
                _, nll, kl = side_effect(lm, st, ctx, base_logp)
                cell[f"{kind}_kl_neutral"] = kl
                cell[f"{kind}_ppl_ratio_neutral"] = math.exp(nll - base_nll)
        for name, _, sign in judges:
            s, c = cell[f"steered_{name}"], cell[f"control_{name}"]
            cell[f"{name}_significant"] = excludes_zero(s)
            cell[f"{name}_beats_control"] = (s["mean"] - c["mean"]) * sign > 0 and (s["ci_low"] > c["ci_high"] if sign > 0 else s["ci_high"] < c["ci_low"])
        results.append(cell)
    if bar is not None:
        bar.close()
    return {"direction": {"method": direction.method, "layers": direction.layers, "hook": direction.hook,
                          "norms": {k: float(v.norm()) for k, v in direction.vectors.items()}, "meta": direction.meta},
            "prompts": len(prompts), "seeds": seeds, "cells": results, "samples": samples,
            "unsteered": {"neutral_nll": base_nll}, "judges": [{"name": n, "sign": s} for n, _, s in judges]}
