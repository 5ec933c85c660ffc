"""Run a steering experiment (:class:`~shoestring.steer.experiment.Spec`): every cell of layers x scales,
steered and random-control generations against the unsteered ones, every judge, paired effects with
bootstrap 95% intervals, the wrong-way fraction, and the side effect on neutral text (KL of the next-token
distribution and the change in perplexity)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import ShoestringError
from .apply import Steer, generate
from .experiment import Spec, build_direction
from .feature_edit import FEATURE_MODES, FeatureEdit, random_row
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


class Interventions:
    """Builds the steered and the control intervention of a cell. A direction is added (or ablated, ...) by
    :class:`~shoestring.steer.apply.Steer`, its control is a random direction of the same norm; an SAE latent
    that is clamped or flipped goes through :class:`~shoestring.steer.feature_edit.FeatureEdit`, its control
    makes the same per-token step along a random vector of the decoder row's norm."""

    def __init__(self, spec: Spec, lm, direction, sae=None):
        self.lm, self.direction, self.sw = lm, direction, spec.sweep
        self.mode = self.sw.get("mode", "add")
        self.do_sample = bool(spec.generation.get("do_sample", False))
        self.sae = self.feature = None
        self._controls: dict[int, object] = {}
        if direction.method == "sae_feature" and self.mode in FEATURE_MODES:
            if sae is None:
                from ..sae import load_sae

                sae = load_sae(spec.direction["sae"])
            self.sae, self.feature = sae, int(direction.meta["feature"])
            sae_layer = direction.layers[0]
            wrong = [L for L in self.sw["layers"] if int(L) != sae_layer]
            if wrong:
                raise ShoestringError(f"layers {wrong} are not the SAE's layer {sae_layer}",
                                      f"set [sweep] layers = [{sae_layer}] to edit this SAE's latent")

    @property
    def batchable(self) -> bool:
        """Whether a layer's whole sweep runs as one batch: directions of one vector per layer, greedy
        decoding. Sampled runs keep one ``generate`` per setting so that steered and unsteered rows draw the
        same random numbers under the same seed (common random numbers make the paired differences sharper)."""
        return (self.sae is None and not self.do_sample
                and all(v.ndim == 1 for v in self.direction.vectors.values()))

    def control(self, layer: int):
        """The control at ``layer`` (made once): a random direction of equal norm, or for a latent edit a
        random vector of the decoder row's norm."""
        if layer not in self._controls:
            self._controls[layer] = (random_row(self.sae, self.feature, seed=layer * 1000 + 1) if self.sae is not None
                                     else self.direction.random_like(seed=layer * 1000 + 1))
        return self._controls[layer]

    def __call__(self, kind: str, layer: int, scale: float, positions: str | None = None):
        positions = positions or self.sw.get("positions", "all")
        if self.sae is not None:
            vector = None if kind == "steered" else self.control(layer)
            return FeatureEdit(self.lm, self.sae, self.feature, self.mode, scale, positions, vector)
        dirn = self.direction if kind == "steered" else self.control(layer)
        return Steer(self.lm, dirn, scale, layers=(layer,), mode=self.mode, positions=positions,
                     relative=bool(self.sw.get("relative", False)))


def base_layer(base: dict, seed: int):
    """The key layer of the first unsteered batch of ``seed`` (None when one baseline serves every layer)."""
    return next(layer for layer, s in base if s == seed)


def generate_all(lm, make: Interventions, prompts: list[str], sw: dict, seeds: list[int], gkw: dict, bar=None):
    """Every generation of the sweep: ``(texts[(kind, layer, scale, seed)], base[(layer or None, seed)])``.

    Batchable sweeps (one vector per layer, no SAE edit) run one ``generate`` per layer and seed whose rows
    are the unsteered prompts, then every scale steered, then every scale with the control
    (:class:`~shoestring.steer.batch.SteerRows`); the unsteered rows of that batch are the baseline of the
    layer's cells, so steered and unsteered share the batch's numerics. Otherwise one ``generate`` per
    setting, against one unsteered baseline per seed."""
    from .batch import SteerRows

    n, scales = len(prompts), [float(x) for x in sw["scales"]]
    texts, base = {}, {}
    for seed in seeds:
        if not make.batchable:
            base[(None, seed)] = generate(lm, prompts, None, seed=seed, **gkw)
            _tick(bar)
        for layer in (int(x) for x in sw["layers"]):
            if make.batchable:
                control = make.control(layer)
                settings = [(None, 0.0)] + [(make.direction, s) for s in scales] + [(control, s) for s in scales]
                rows = SteerRows.sweep(lm, layer, settings, n, mode=make.mode, positions=sw.get("positions", "all"),
                                       relative=bool(sw.get("relative", False)))
                outs = generate(lm, prompts * len(settings), rows, seed=seed, **gkw)
                base[(layer, seed)] = outs[:n]
                for i, (kind, scale) in enumerate([("steered", s) for s in scales] + [("control", s) for s in scales]):
                    texts[(kind, layer, scale, seed)] = outs[(i + 1) * n:(i + 2) * n]
                _tick(bar)
                continue
            for scale in scales:
                for kind in ("steered", "control"):
                    texts[(kind, layer, scale, seed)] = generate(lm, prompts, make(kind, layer, scale), seed=seed, **gkw)
                    _tick(bar)
    return texts, base


def _tick(bar) -> None:
    if bar is not None:
        bar.update(1)


def best_cell(result: dict) -> dict:
    """The cell whose effect on the first judge is most surely in the intended direction (the largest lower
    bound of the interval, times the sign; the largest mean when the judge has no sign)."""
    first, sign = result["judges"][0]["name"], result["judges"][0]["sign"]

    def key(c):
        e = c[f"steered_{first}"]
        if sign == 0:
            return abs(e["mean"])
        return e["ci_low"] * sign if sign > 0 else e["ci_high"] * sign

    return max(result["cells"], key=lambda c: (not math.isnan(key(c)), key(c)))


def beats_control(vs: dict, sign: float) -> bool | None:
    """The paired difference steered - control (same prompt and seed) has a 95% interval on the intended side
    of zero (None: the judge has no sign)."""
    if sign == 0:
        return None
    return vs["ci_low"] > 0 if sign > 0 else vs["ci_high"] < 0


def prepare(spec: Spec, lm) -> Interventions:
    """Build the spec's direction and check every intervention of the sweep against the model (prompts,
    layers, widths), so that bad input fails before anything runs or is written."""
    spec.prompt_texts()
    sae: list = []
    make = Interventions(spec, lm, build_direction(spec, lm, sae), sae[0] if sae else None)
    for layer in spec.sweep["layers"]:
        make("steered", int(layer), 1.0)
    return make


def run_experiment(spec: Spec, lm, progress: bool = True, prepared: Interventions | None = None) -> dict:
    """Everything the loop measures: ``{"direction", "cells", "samples", "unsteered", "judges", ...}``.
    ``prepared``: the result of :func:`prepare` (made here when None)."""
    make = prepared or prepare(spec, lm)
    direction = make.direction
    prompts = spec.prompt_texts()
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

        n_gen = len(seeds) * (len(sw["layers"]) if make.batchable else 1 + 2 * len(cells))
        bar = tqdm(total=n_gen, desc="steering", unit="generate")

    def judge_all(outs, setting=None):  # judges of the model's own state run under the setting's intervention
        scores = {}
        for name, j, _ in judges:
            if setting is not None and j.under_intervention:
                with make(*setting):
                    scores[name] = j(outs, prompts)
            else:
                scores[name] = j(outs, prompts)
        return scores

    def rows(kind, layer, scale, seed, outs, scores):
        return [{"kind": kind, "layer": layer, "scale": scale, "seed": seed, "prompt": p, "output": o,
                 **{f"score_{n}": s[i] for n, s in scores.items()}} for i, (p, o) in enumerate(zip(prompts, outs))]

    texts, base = generate_all(lm, make, prompts, sw, seeds, gkw, bar)
    scored_base = {key: judge_all(outs) for key, outs in base.items()}
    samples = []
    for (layer, seed), outs in base.items():
        if layer == base_layer(base, seed):  # one unsteered record per seed
            samples += rows("unsteered", -1, 0.0, seed, outs, scored_base[(layer, seed)])
    results = []
    for layer, scale in cells:
        cell = {"layer": layer, "scale": scale}
        scored = {}
        for kind in ("steered", "control"):
            per_judge = {name: ([], []) for name, _, _ in judges}
            for seed in seeds:
                outs = texts[(kind, layer, scale, seed)]
                scores = judge_all(outs, (kind, layer, scale))
                ref = scored_base[(layer, seed)] if (layer, seed) in scored_base else scored_base[(None, seed)]
                for name in per_judge:
                    per_judge[name][0].extend(scores[name])
                    per_judge[name][1].extend(ref[name])
                samples += rows(kind, layer, scale, seed, outs, scores)
            for name, _, sign in judges:
                cell[f"{kind}_{name}"] = effect(*per_judge[name], sign=sign)
            scored[kind] = per_judge
            if ctx is not None:
                _, nll, kl = side_effect(lm, make(kind, layer, scale, positions="all"), ctx, base_logp)
                cell[f"{kind}_kl_neutral"] = kl
                cell[f"{kind}_ppl_ratio_neutral"] = math.exp(nll - base_nll)
        for name, _, sign in judges:
            cell[f"{name}_significant"] = excludes_zero(cell[f"steered_{name}"])
            cell[f"{name}_vs_control"] = effect(scored["steered"][name][0], scored["control"][name][0], sign=sign)
            cell[f"{name}_beats_control"] = beats_control(cell[f"{name}_vs_control"], sign)
        results.append(cell)
    if bar is not None:
        bar.close()
    return {"direction": {"method": direction.method, "layers": direction.layers, "hook": direction.hook,
                          "norms": {k: float(v.norm()) for k, v in direction.vectors.items()}, "meta": direction.meta,
                          "mode": make.mode},
            "prompts": len(prompts), "seeds": seeds, "cells": results, "samples": samples,
            "unsteered": {"neutral_nll": base_nll}, "judges": [{"name": n, "sign": s} for n, _, s in judges]}
