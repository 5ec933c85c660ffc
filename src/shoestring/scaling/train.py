"""Train one small GPT to a compute budget: its own schedule, evaluations on the fixed held-out split,
FLOPs and wall-clock logged with each, checkpoints and resume.

A budget is training FLOPs (:func:`~shoestring.scaling.flops.train_flops_per_token` x tokens): every variant
gets ``floor(budget / (flops_per_token x batch x context))`` steps with a schedule that ends at that step
(a fixed size trained to each budget, not the intermediate points of one long run). Evaluations at
``evals`` evenly spaced steps give the curve the paper's read-off uses; wall-clock counts training steps only.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from ..errors import ShoestringError
from ..runs.checkpoint import read_checkpoint, write_checkpoint
from .config import GPTConfig
from .data import TokenData
from .flops import active_params, train_flops_per_token
from .model import GPT
from .optim import SCHEDULES, lr_at, make_optimizer


@dataclass
class TrainConfig:
    """How to train: the budget (FLOPs, or ``steps``), batch, optimiser, schedule, evaluation, device."""

    budget: float | None = None  # training FLOPs; or give ``steps``
    steps: int | None = None
    batch_size: int = 16
    lr: float = 3e-3
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup: float = 0.05
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    evals: int = 6
    eval_tokens: int = 16384
    checkpoint_every: int = 0  # steps; 0: at each evaluation
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"  # bfloat16: autocast (GPU)
    compile: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ShoestringError(f"unknown training option(s): {', '.join(unknown)}", f"known: {', '.join(sorted(known))}")
        return cls(**d)


def plan_steps(model: GPTConfig, train: TrainConfig) -> int:
    """Steps that fit the budget; one clear error when the budget is smaller than one step."""
    if train.schedule not in SCHEDULES:
        raise ShoestringError(f"unknown schedule '{train.schedule}'", f"use one of: {', '.join(SCHEDULES)}")
    if train.batch_size < 1:
        raise ShoestringError(f"batch size {train.batch_size} is below 1", "use a positive --batch-size")
    if train.steps is not None:
        if train.steps < 1:
            raise ShoestringError(f"steps {train.steps} is below 1", "train at least one step")
        return train.steps
    if not train.budget:
        raise ShoestringError("no budget and no steps", "give a compute budget in FLOPs (e.g. 1e13) or a number of steps")
    per_step = train_flops_per_token(model) * train.batch_size * model.context
    steps = int(train.budget // per_step)
    if steps < 1:
        raise ShoestringError(f"budget {train.budget:.3g} FLOPs is smaller than one step ({per_step:.3g} FLOPs)",
                              f"raise the budget to at least {per_step:.3g} or shrink the model / batch")
    return steps


@torch.no_grad()
def evaluate(model: GPT, data: TokenData, train: TrainConfig) -> float:
    """Mean held-out cross-entropy (nats per token) on the fixed evaluation windows."""
    was = model.training
    model.eval()
    total, n = 0.0, 0
    for x, y in data.eval_batches(model.cfg.context, train.eval_tokens, train.batch_size):
        with _autocast(train):
            _, loss = model(x.to(train.device), y.to(train.device))
        total += float(loss) * y.numel()
        n += y.numel()
    model.train(was)
    return total / n


def _autocast(train: TrainConfig):
    if train.dtype == "bfloat16":
        return torch.autocast(device_type=torch.device(train.device).type, dtype=torch.bfloat16)
    return torch.autocast(device_type="cpu", enabled=False)


def eval_steps(steps: int, evals: int) -> list[int]:
    """The steps (1-based counts of steps done) after which to evaluate: evenly spaced, always the last."""
    n = max(1, evals)
    return sorted({max(1, round(steps * (i + 1) / n)) for i in range(n)} | {steps})


def _save(folder: Path, model: GPT, opt, state: dict) -> None:
    weights = dict(model.state_dict())
    if model.cfg.tie_embeddings:
        weights.pop("head.weight", None)
    rng = {"cpu": torch.get_rng_state()}  # dropout masks continue as if never interrupted
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    write_checkpoint(folder, weights, opt.state_dict(), state, {"rng": rng})


def _load(folder: Path, model: GPT, opt) -> dict | None:
    got = read_checkpoint(folder, extras=("rng",))
    if got is None:
        return None
    weights, optimizer, state, extras = got
    model.load_state_dict(weights, strict=not model.cfg.tie_embeddings)
    opt.load_state_dict(optimizer)
    if "rng" in extras:
        torch.set_rng_state(extras["rng"]["cpu"])
        if "cuda" in extras["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(extras["rng"]["cuda"])
    return state


def train(model_cfg: GPTConfig, train_cfg: TrainConfig, data: TokenData, checkpoint: Path | None = None,
          progress=None) -> dict:
    """Train one model; return its curve and totals (see the module docstring).

    Parameters
    ----------
    checkpoint
        A folder for checkpoints: an existing checkpoint there is resumed (same batches, same schedule).
    progress
        ``progress(step, steps, train_loss)`` after every step.
    """
    model_cfg = model_cfg.check()
    if model_cfg.vocab_size < data.vocab_size:
        raise ShoestringError(f"the model's vocabulary ({model_cfg.vocab_size}) is smaller than the tokenizer's "
                              f"({data.vocab_size})", "set vocab_size to the tokenizer's size")
    data.check(model_cfg.context, train_cfg.batch_size, train_cfg.eval_tokens)
    steps = plan_steps(model_cfg, train_cfg)
    torch.manual_seed(train_cfg.seed)
    model = GPT(model_cfg).to(train_cfg.device)
    opt = make_optimizer(model, train_cfg.optimizer, train_cfg.lr, train_cfg.weight_decay)
    fpt = train_flops_per_token(model_cfg)
    tokens_per_step = train_cfg.batch_size * model_cfg.context
    state = (_load(checkpoint, model, opt) if checkpoint else None) or {"step": 0, "curve": [], "train_seconds": 0.0}
    state.setdefault("loss_sum", 0.0)  # the training loss since the last evaluation survives a resume
    state.setdefault("loss_n", 0)
    forward = torch.compile(model) if train_cfg.compile else model
    at = set(eval_steps(steps, train_cfg.evals))
    every = train_cfg.checkpoint_every
    model.train()
    for step in range(state["step"], steps):
        t0 = time.perf_counter()
        x, y = data.batch(train_cfg.seed, step, train_cfg.batch_size, model_cfg.context)
        opt.set_scale(lr_at(step, steps, 1.0, train_cfg.schedule, train_cfg.warmup, train_cfg.min_lr_ratio))
        with _autocast(train_cfg):
            loss = forward.training_loss(x.to(train_cfg.device), y.to(train_cfg.device)) if not train_cfg.compile \
                else _compiled_loss(forward, model, x.to(train_cfg.device), y.to(train_cfg.device))
        loss.backward()
        if train_cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
        opt.zero_grad()
        value = float(loss.detach())
        if train_cfg.device.startswith("cuda"):
            torch.cuda.synchronize()
        state["train_seconds"] += time.perf_counter() - t0
        if not math.isfinite(value):
            raise ShoestringError(f"the loss diverged (={value}) at step {step + 1}", "lower the learning rate")
        state["loss_sum"] += value
        state["loss_n"] += 1
        state["step"] = step + 1
        if progress:
            progress(step + 1, steps, value)
        if step + 1 in at:
            state["curve"].append({"step": step + 1, "tokens": (step + 1) * tokens_per_step,
                                   "flops": (step + 1) * tokens_per_step * fpt, "seconds": state["train_seconds"],
                                   "train_loss": state["loss_sum"] / state["loss_n"], "val_loss": evaluate(model, data, train_cfg),
                                   "lr": lr_at(step, steps, train_cfg.lr, train_cfg.schedule, train_cfg.warmup,
                                               train_cfg.min_lr_ratio)})
            state["loss_sum"], state["loss_n"] = 0.0, 0
        if checkpoint and (step + 1 in at if not every else (step + 1) % every == 0 or step + 1 == steps):
            _save(checkpoint, model, opt, state)
    last = state["curve"][-1]
    return {"val_loss": last["val_loss"], "train_loss": last["train_loss"], "steps": steps, "tokens": last["tokens"],
            "flops": last["flops"], "flops_per_token": fpt, "train_seconds": state["train_seconds"],
            "tokens_per_s": last["tokens"] / max(state["train_seconds"], 1e-9),
            "model_flops_per_s": last["flops"] / max(state["train_seconds"], 1e-9),
            "params": model.n_params(), "params_non_embedding": model.n_params(embedding=False),
            "active_params": active_params(model_cfg), "curve": state["curve"], "model": model_cfg.to_dict(),
            "train": asdict(train_cfg)}


def _compiled_loss(compiled, model: GPT, x, y):
    _, loss = compiled(x, y)
    return loss + model.cfg.aux_loss_coef * model.aux_loss if model.cfg.n_experts else loss
