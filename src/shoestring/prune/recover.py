"""Recovery: fine-tune a pruned model on the target-domain corpus for a fixed token budget (the same budget
for every method, so comparisons are fair), with checkpoints and resume.

Full fine-tuning with AdamW here; LoRA through ``peft`` (:mod:`~shoestring.prune.lora`) shares the budget, the
data, the schedule and the step loop below. Training text comes after the calibration and held-out contexts (``skip``), in a fixed order, so a resumed
run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import ShoestringError
from ..runs.checkpoint import read_checkpoint, write_checkpoint


@dataclass
class RecoveryConfig:
    tokens: int = 65536  # the budget: training tokens
    lr: float = 5e-5
    batch_size: int = 4
    length: int = 256
    weight_decay: float = 0.0
    warmup: float = 0.05
    grad_clip: float = 1.0
    skip: int = 0  # contexts of the corpus to skip (those used for calibration and held-out)
    checkpoint_every: int = 20  # steps

    def steps(self) -> int:
        n = self.tokens // (self.batch_size * self.length)
        if n < 1:
            raise ShoestringError(f"a recovery budget of {self.tokens} tokens is smaller than one batch "
                                  f"({self.batch_size} x {self.length})", "raise --recover-tokens or shrink the batch")
        return n

    def lr_scale(self, step: int, steps: int) -> float:
        """Linear warm-up, then cosine decay to 0."""
        warm = max(1, int(self.warmup * steps))
        return (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def training_batches(tokenizer, corpus: str, cfg: RecoveryConfig) -> list[torch.Tensor]:
    """The ``cfg.steps()`` batches of ``corpus`` after ``cfg.skip`` contexts, in a fixed order (so a resumed run
    sees exactly the batches it would have seen)."""
    from .evaluate import batches

    steps = cfg.steps()
    data = batches(tokenizer, corpus, steps * cfg.batch_size, cfg.length, cfg.batch_size, skip=cfg.skip)
    if len(data) < steps:
        raise ShoestringError(f"corpus '{corpus}' holds {len(data)} batches after the first {cfg.skip} contexts, "
                              f"fewer than the {steps} the budget needs", "lower --recover-tokens or use a larger corpus")
    return data[:steps]


def run_steps(model, params, opt, data, cfg: RecoveryConfig, lr: float, state: dict, save=None, progress=None) -> dict:
    """The training loop both recoveries share: from ``state["step"]`` to the end of ``data``, scheduling the
    learning rate, clipping, logging the loss into ``state`` and calling ``save(state)`` every
    ``cfg.checkpoint_every`` steps and at the end."""
    steps = len(data)
    device = next(model.parameters()).device
    for step in range(state["step"], steps):
        for g in opt.param_groups:
            g["lr"] = lr * cfg.lr_scale(step, steps)
        ids = data[step].to(device)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state["losses"].append(float(loss.detach()))
        state["step"] = step + 1
        if save and (state["step"] % cfg.checkpoint_every == 0 or state["step"] == steps):
            save(state)
        if progress:
            progress(step + 1, steps, state["losses"][-1])
    return state


def _save(folder: Path, model, opt, state: dict) -> None:
    weights = dict(model.state_dict())
    if getattr(model.config, "tie_word_embeddings", False):
        weights.pop("lm_head.weight", None)
    write_checkpoint(folder, weights, opt.state_dict(), state)


def _load(folder: Path, model, opt) -> dict | None:
    got = read_checkpoint(folder)
    if got is None:
        return None
    weights, optimizer, state, _ = got
    loaded = model.load_state_dict(weights, strict=False)
    if loaded.unexpected_keys or set(loaded.missing_keys) - {"lm_head.weight"}:
        raise ShoestringError(f"the recovery checkpoint in {folder} does not fit this model",
                              "apply the same pruning plan before resuming, or delete the checkpoint folder")
    opt.load_state_dict(optimizer)
    return state


def recover(model, tokenizer, corpus: str, cfg: RecoveryConfig, checkpoint: Path | None = None, progress=None) -> dict:
    """Fine-tune ``model`` in place on ``corpus`` for ``cfg.tokens`` tokens; returns the loss curve."""
    data = training_batches(tokenizer, corpus, cfg)
    steps = len(data)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95))
    state = (_load(checkpoint, model, opt) if checkpoint else None) or {"step": 0, "losses": []}
    model.train()
    try:
        run_steps(model, list(model.parameters()), opt, data, cfg, cfg.lr, state,
                  save=(lambda st: _save(checkpoint, model, opt, st)) if checkpoint else None, progress=progress)
    finally:
        model.eval()
    return {"steps": steps, "tokens": steps * cfg.batch_size * cfg.length, "losses": state["losses"], "config": asdict(cfg)}
