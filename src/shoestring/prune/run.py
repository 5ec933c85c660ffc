"""One pruning experiment, end to end: calibrate on the task domain (and the other domain, for contrast), score,
plan, cut, optionally recover, and measure perplexity per domain, parameters and speed before and after.

Text layout per corpus, in packed contexts: calibration first, then the held-out evaluation contexts, then the
recovery text, so no evaluated token was seen by the scoring or the fine-tuning.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

from ..errors import ShoestringError
from .evaluate import batches, domain_perplexities
from .importance import CRITERIA
from .select import contrast_scores, plan_from_scores
from .speed import measure_speed
from .surgery import apply_plan, n_params


@dataclass
class PruneConfig:
    criterion: str = "wanda"
    task: str = "stdlib-code"  # the domain the pruned model is for
    other: str | None = "austen"  # the domain it may forget (contrast and evaluation); None: task only
    contrast: float = 0.0  # weight of the other domain's importance (0: task importance alone)
    head_ratio: float = 1 / 3
    channel_ratio: float = 1 / 3
    uniform: bool = True
    calib_contexts: int = 32
    eval_contexts: int = 16
    length: int = 256
    batch_size: int = 4
    recover_tokens: int = 0  # 0: no recovery
    recover_lr: float = 5e-5
    speed_prompt: int = 256
    speed_tokens: int = 32
    extra: dict = field(default_factory=dict)

    def check(self) -> "PruneConfig":
        if self.criterion not in CRITERIA:
            raise ShoestringError(f"unknown criterion '{self.criterion}'", f"use one of: {', '.join(CRITERIA)}")
        for name in ("head_ratio", "channel_ratio"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ShoestringError(f"{name.replace('_', ' ')} {v} is outside [0, 1)", "give a share such as 0.25")
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
    before = {"perplexity": domain_perplexities(original, held), "params": n_params(original)}
    prompt = held[cfg.task][0][:1, : cfg.speed_prompt]
    before["speed"] = measure_speed(original, prompt, cfg.speed_tokens)
    model = copy.deepcopy(original)
    crit = CRITERIA[cfg.criterion]()
    scores = crit.score(model, calib[cfg.task])
    if cfg.contrast and cfg.other:
        scores = contrast_scores(scores, crit.score(model, calib[cfg.other]), cfg.contrast)
    plan = plan_from_scores(model, scores, cfg.head_ratio, cfg.channel_ratio, cfg.uniform,
                            meta={"criterion": cfg.criterion, "task": cfg.task, "other": cfg.other, "contrast": cfg.contrast})
    apply_plan(model, plan)
    after = {"perplexity": domain_perplexities(model, held), "params": n_params(model)}
    recovered = None
    if cfg.recover_tokens:
        rc = RecoveryConfig(tokens=cfg.recover_tokens, lr=cfg.recover_lr, batch_size=cfg.batch_size, length=cfg.length,
                            skip=cfg.calib_contexts + cfg.eval_contexts)
        recovered = recover(model, tok, cfg.task, rc, checkpoint=checkpoint, progress=progress)
        recovered["perplexity"] = domain_perplexities(model, held)
    after["speed"] = measure_speed(model, prompt, cfg.speed_tokens)
    final = recovered["perplexity"] if recovered else after["perplexity"]
    result = {"config": asdict(cfg), "before": before, "pruned": after, "recovered": recovered,
              "params_removed": 1 - after["params"] / before["params"],
              "perplexity_ratio": {d: final[d] / before["perplexity"][d] for d in domains},
              "prefill_speedup": before["speed"]["prefill_s"] / after["speed"]["prefill_s"],
              "decode_speedup": after["speed"]["decode_tokens_per_s"] / before["speed"]["decode_tokens_per_s"],
              "uniform": plan.is_uniform()}
    return result, model, plan
