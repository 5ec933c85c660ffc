"""Recovery: fine-tune a pruned model on the target-domain corpus for a fixed token budget (the same budget
for every method, so comparisons are fair), with checkpoints and resume.

Full fine-tuning with AdamW (LoRA through ``peft`` is the lighter option on bigger models; not installed here).
Training text comes after the calibration and held-out contexts (``skip``), in a fixed order, so a resumed
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
    from .evaluate import batches

    steps = cfg.steps()
    data = batches(tokenizer, corpus, steps * cfg.batch_size, cfg.length, cfg.batch_size, skip=cfg.skip)
    if len(data) < steps:
        raise ShoestringError(f"corpus '{corpus}' holds {len(data)} batches after the first {cfg.skip} contexts, "
                              f"fewer than the {steps} the budget needs", "lower --recover-tokens or use a larger corpus")
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.95))
    state = (_load(checkpoint, model, opt) if checkpoint else None) or {"step": 0, "losses": []}
    warm = max(1, int(cfg.warmup * steps))
    model.train()
    try:
        for step in range(state["step"], steps):
            scale = (step + 1) / warm if step < warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))
            for g in opt.param_groups:
                g["lr"] = cfg.lr * scale
            ids = data[step]
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            state["losses"].append(float(loss.detach()))
            state["step"] = step + 1
            if checkpoint and (state["step"] % cfg.checkpoint_every == 0 or state["step"] == steps):
                _save(checkpoint, model, opt, state)
            if progress:
                progress(step + 1, steps, state["losses"][-1])
    finally:
        model.eval()
    return {"steps": steps, "tokens": steps * cfg.batch_size * cfg.length, "losses": state["losses"], "config": asdict(cfg)}
