"""Layer skipping and early exit as one experiment: the unmodified model, a fixed set of skipped layers (given,
or the least influential by Block Influence on calibration text), and confidence-based early exit, each decoded
token by token over the same held-out contexts (see :mod:`~shoestring.prune.decode_eval`), with the decode
speed measured interleaved so that machine load hits every variant alike."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

import torch

from ..errors import ShoestringError
from .decode_eval import decode_eval
from .early_exit import RULES, EarlyExit
from .evaluate import batches
from .importance import BlockInfluence, layers_to_drop
from .skip import SkipLayers


@dataclass
class InferenceConfig:
    corpus: str = "stdlib-code"
    skip: list[int] = field(default_factory=list)  # layers to skip; empty and skip_auto 0: no fixed-skip variant
    skip_auto: int = 0  # skip this many least influential layers (Block Influence on calibration text)
    exit_thresholds: list[float] = field(default_factory=list)  # one early-exit variant per threshold
    exit_rule: str = "softmax"
    exit_layers: list[int] | None = None
    calib_contexts: int = 8
    contexts: int = 4
    length: int = 128
    prefix: int = 64
    repeats: int = 3  # interleaved timing passes over the contexts

    def check(self) -> "InferenceConfig":
        if not (self.skip or self.skip_auto or self.exit_thresholds):
            raise ShoestringError("nothing to compare: no skipped layers and no early-exit threshold",
                                  "give --layers, --auto N or --exit-threshold")
        if self.skip and self.skip_auto:
            raise ShoestringError("both --layers and --auto were given", "choose the skipped layers one way")
        if self.exit_rule not in RULES:
            raise ShoestringError(f"unknown early-exit rule '{self.exit_rule}'", f"use one of: {', '.join(RULES)}")
        bad = [t for t in self.exit_thresholds if not 0 < t <= 1]
        if bad:
            raise ShoestringError(f"early-exit thresholds {bad} are outside (0, 1]", "give e.g. 0.9")
        if not 1 <= self.prefix < self.length - 1:
            raise ShoestringError(f"a prefix of {self.prefix} leaves nothing to decode in {self.length} tokens",
                                  "use a prefix below --length - 1")
        return self


def inference_experiment(lm, cfg: InferenceConfig) -> dict:
    """``{"variants": {name: decode_eval result + speed-up}, "skip": [...], ...}``."""
    cfg.check()
    model, tok = lm.model.eval(), lm.tokenizer
    held = torch.cat(batches(tok, cfg.corpus, cfg.contexts, cfg.length, cfg.contexts, skip=cfg.calib_contexts))
    skip = list(cfg.skip)
    influence = None
    if cfg.skip_auto:
        calib = batches(tok, cfg.corpus, cfg.calib_contexts, cfg.length, 4)
        influence = BlockInfluence().score(model, calib)["layers"]
        influence[0] = float("inf")  # layer 0 cannot be skipped (the KV cache's length is read from it)
        skip = layers_to_drop({"layers": influence}, cfg.skip_auto)
    variants = {"full": lambda: None}
    if skip:
        variants[f"skip {','.join(map(str, skip))}"] = lambda: SkipLayers(model, skip)
    for t in cfg.exit_thresholds:
        variants[f"exit {cfg.exit_rule}>={t:g}"] = (lambda t=t: EarlyExit(model, t, cfg.exit_rule, cfg.exit_layers))
    reference = decode_eval(model, held, cfg.prefix)["argmax"]  # the unmodified greedy choices (and a warm-up)
    results, speed = {}, {name: [] for name in variants}
    for _ in range(cfg.repeats):
        for name, make in variants.items():
            res = decode_eval(model, held, cfg.prefix, intervention=make(), reference=reference)
            speed[name].append(res["decode_tokens_per_s"])
            results.setdefault(name, res)
    base = statistics.median(speed["full"])
    for name, res in results.items():
        res.pop("argmax", None)
        res["decode_tokens_per_s"] = statistics.median(speed[name])
        res["decode_samples"] = speed[name]
        res["decode_speedup"] = res["decode_tokens_per_s"] / base
        res["perplexity_ratio"] = res["perplexity"] / results["full"]["perplexity"]
    return {"config": asdict(cfg), "skip": skip,
            "block_influence": None if influence is None else [float(x) for x in influence], "variants": results}
