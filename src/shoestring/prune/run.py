"""One pruning experiment, end to end: calibrate on the task domain (and the other domain, for contrast), score,
plan, cut, optionally recover, and measure perplexity per domain, parameters and speed before and after.

Text layout per corpus, in packed contexts: calibration first, then the held-out evaluation contexts, then the
recovery text, so no evaluated token was seen by the scoring or the fine-tuning.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

from ..errors import ShoestringError
from .evaluate import batches, domain_scores
from .importance import CRITERIA
from .select import contrast_scores, plan_from_scores
from .speed import compare_speed, forward_flops, measure_speed
from .surgery import apply_plan, n_params


@dataclass
class PruneConfig:
    criterion: str = "activation"  # the best measured on SmolLM2 for stdlib code (docs/prune.md)
    task: str = "stdlib-code"  # the domain the pruned model is for
    other: str | None = "austen"  # the domain it may forget (contrast and evaluation); None: task only
    contrast: float = 0.5  # weight of the other domain's importance (0: task importance alone)
    head_ratio: float = 1 / 3
    channel_ratio: float = 1 / 3
    uniform: bool = True
    calib_contexts: int = 32
    eval_contexts: int = 16
    length: int = 256
    batch_size: int = 4
    recover_tokens: int = 0  # 0: no recovery
    recover_lr: float = 5e-5
    lora_rank: int = 0  # > 0: recover with LoRA adapters of this rank (peft), merged at the end; 0: full fine-tuning
    lora_lr: float = 2e-4
    lm_eval: list[str] = field(default_factory=list)  # lm-evaluation-harness tasks, before and after
    lm_eval_include: str | None = None  # a folder of local task YAMLs
    lm_eval_limit: int | None = None
    speed_prompt: int = 256
    speed_tokens: int = 32
    speed_repeats: int = 5  # interleaved repeats of prefill + decode per model
    speed: bool = True  # measure prefill / decode speed (off: quality and FLOPs only)
    extra: dict = field(default_factory=dict)

    def check(self) -> "PruneConfig":
        if self.criterion not in CRITERIA:
            raise ShoestringError(f"unknown criterion '{self.criterion}'", f"use one of: {', '.join(CRITERIA)}")
        for name in ("head_ratio", "channel_ratio"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ShoestringError(f"{name.replace('_', ' ')} {v} is outside [0, 1)", "give a share such as 0.25")
        if self.lora_rank < 0 or (self.lora_rank and not self.recover_tokens):
            raise ShoestringError(f"LoRA rank {self.lora_rank} needs a positive rank and a recovery budget",
                                  "give --lora-rank 8 with --recover-tokens N")
        if self.calib_contexts < 1 or self.eval_contexts < 1:
            raise ShoestringError("calibration and evaluation need at least one context each", "raise --calib / --eval")
        return self


def prune_experiment(lm, cfg: PruneConfig, checkpoint=None, progress=None) -> tuple[dict, object, object]:
    """Returns ``(result, pruned model, plan)``; ``lm`` is left untouched."""
    from .recover import RecoveryConfig, recover

    cfg.check()
    tok, original = lm.tokenizer, lm.model.eval()
    domains = [cfg.task] + ([cfg.other] if cfg.other else [])
    calib = {d: batches(tok, d, cfg.calib_contexts, cfg.length, cfg.batch_size) for d in domains}
    held = {d: batches(tok, d, cfg.eval_contexts, cfg.length, cfg.batch_size, skip=cfg.calib_contexts) for d in domains}
    before = {**domain_scores(original, held), "params": n_params(original)}
    prompt = held[cfg.task][0][:1, : cfg.speed_prompt]
    model = copy.deepcopy(original)
    crit = CRITERIA[cfg.criterion]()
    scores = {cfg.task: crit.score(model, calib[cfg.task])}
    if cfg.contrast and cfg.other:
        scores[cfg.other] = crit.score(model, calib[cfg.other])
    chosen = contrast_scores(scores[cfg.task], scores[cfg.other], cfg.contrast) if len(scores) > 1 else scores[cfg.task]
    plan = plan_from_scores(model, chosen, cfg.head_ratio, cfg.channel_ratio, cfg.uniform,
                            meta={"criterion": cfg.criterion, "task": cfg.task, "other": cfg.other, "contrast": cfg.contrast})
    apply_plan(model, plan)
    after = {**domain_scores(model, held), "params": n_params(model)}
    recovered = None
    if cfg.recover_tokens:
        rc = RecoveryConfig(tokens=cfg.recover_tokens, lr=cfg.recover_lr, batch_size=cfg.batch_size, length=cfg.length,
                            skip=cfg.calib_contexts + cfg.eval_contexts)
        if cfg.lora_rank:
            from .lora import LoraOptions, recover_lora

            recovered = recover_lora(model, tok, cfg.task, rc, LoraOptions(rank=cfg.lora_rank, alpha=2.0 * cfg.lora_rank,
                                                                           lr=cfg.lora_lr),
                                     checkpoint=checkpoint, progress=progress)
        else:
            recovered = recover(model, tok, cfg.task, rc, checkpoint=checkpoint, progress=progress)
        recovered.update(domain_scores(model, held))
    final = recovered["perplexity"] if recovered else after["perplexity"]
    result = {"config": asdict(cfg), "before": before, "pruned": after, "recovered": recovered,
              "params_removed": 1 - after["params"] / before["params"],
              "perplexity_ratio": {d: final[d] / before["perplexity"][d] for d in domains},
              "uniform": plan.is_uniform(),
              "head_scores": {d: {int(i): [float(x) for x in v] for i, v in s["kv_groups"].items()}
                              for d, s in scores.items()}}
    if cfg.lm_eval:
        from .harness import lm_eval_tasks

        kw = dict(tasks=cfg.lm_eval, limit=cfg.lm_eval_limit, include_path=cfg.lm_eval_include)
        result["lm_eval"] = {"before": lm_eval_tasks(original, tok, **kw), "after": lm_eval_tasks(model, tok, **kw)}
    before["flops_per_token"] = forward_flops(original, prompt.shape[1])
    after["flops_per_token"] = forward_flops(model, prompt.shape[1])
    result["flop_reduction"] = before["flops_per_token"] / after["flops_per_token"]
    if cfg.speed:
        before["speed"] = measure_speed(original, prompt, cfg.speed_tokens, repeats=1)  # peak memory; timings:
        after["speed"] = measure_speed(model, prompt, cfg.speed_tokens, repeats=1)
        both = compare_speed({"before": original, "after": model}, prompt, cfg.speed_tokens, cfg.speed_repeats)
        before["speed"].update(both["before"])  # interleaved A B A B, so machine load hits both alike
        after["speed"].update(both["after"])
        result["prefill_speedup"] = before["speed"]["prefill_s"] / after["speed"]["prefill_s"]
        result["decode_speedup"] = after["speed"]["decode_tokens_per_s"] / before["speed"]["decode_tokens_per_s"]
        result["prefill_speedup_vs_flops"] = result["prefill_speedup"] / result["flop_reduction"]
        result["decode_speedup_vs_flops"] = result["decode_speedup"] / result["flop_reduction"]
    return result, model, plan
