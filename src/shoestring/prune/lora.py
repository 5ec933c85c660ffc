"""LoRA recovery: fine-tune low-rank adapters on a pruned model for the same token budget as full recovery, then
merge them into the weights, so the result is a plain transformers model of the pruned shape.

LoRA (Hu et al. 2021, https://arxiv.org/abs/2106.09685) freezes every weight ``W`` and learns ``W + (alpha / r)
B A`` with ``A`` (r x in) and ``B`` (out x r, zero at the start), here through ``peft``. Only the adapters, their
optimiser state and the random-number state are checkpointed (a few MB instead of the whole model), so a
resumed run, which starts again from the pruned weights, repeats the uninterrupted run exactly. ``peft`` wraps
any ``nn.Linear``, so layers pruned to different widths each get adapters of their own shape.

The budget, batches, schedule and return value are :func:`~shoestring.prune.recover.recover`'s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import ShoestringError
from ..runs.checkpoint import read_checkpoint, write_checkpoint
from .recover import RecoveryConfig, run_steps, training_batches

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraOptions:
    """The adapters: rank ``r``, scale ``alpha / r``, dropout on their input, the linear layers they wrap.

    Parameters
    ----------
    rank
        Rank ``r`` of ``B A`` (section 4 of https://arxiv.org/abs/2106.09685).
    alpha
        Scaling numerator: the update is ``(alpha / rank) B A``.
    dropout
        Dropout on the adapters' input (0 disables it).
    targets
        Names (last component) of the linear layers to adapt; those the model lacks are ignored.
    lr
        Learning rate of the adapters; ``None``: the recovery config's ``lr``. LoRA usually wants about
        ten times full fine-tuning's.
    seed
        Seed of the adapters' initialisation and of dropout (the caller's random state is left as it was).
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    targets: tuple[str, ...] = TARGETS
    lr: float | None = None
    seed: int = 0

    def check(self) -> "LoraOptions":
        if self.rank < 1 or self.alpha <= 0 or not 0.0 <= self.dropout < 1.0:
            raise ShoestringError(f"LoRA rank {self.rank}, alpha {self.alpha}, dropout {self.dropout} are out of range",
                                  "use rank >= 1, alpha > 0 and dropout in [0, 1)")
        return self


def _peft():
    try:
        import peft
    except ImportError as err:
        raise ShoestringError(f"LoRA recovery needs the peft library ({err})",
                              "pip install 'peft>=0.21' (or install shoestring with its 'prune' extra)") from None
    return peft


def _wrap(model, opts: LoraOptions):
    """The model with adapters on every present target (peft injects them into ``model`` itself)."""
    peft = _peft()
    present = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
                     & set(opts.targets))
    if not present:
        raise ShoestringError(f"none of the LoRA targets {list(opts.targets)} is a linear layer of this model",
                              "name the model's projections (e.g. q_proj, up_proj) as targets")
    cfg = peft.LoraConfig(r=opts.rank, lora_alpha=opts.alpha, lora_dropout=opts.dropout, target_modules=present,
                          bias="none", task_type="CAUSAL_LM")
    return peft.get_peft_model(model, cfg)


def _rng(device: torch.device) -> dict:
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def _set_rng(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _load(folder: Path, wrapped, opt, opts: LoraOptions, device) -> dict | None:
    peft = _peft()
    got = read_checkpoint(folder, extras=("rng",))
    if got is None:
        return None
    weights, optimizer, state, extras = got
    fix = "resume with the same pruning plan and LoRA options, or delete the checkpoint folder"
    if state.get("method") != "lora" or state.get("lora") != _jsonable(opts) or "rng" not in extras:
        raise ShoestringError(f"the checkpoint in {folder} is not a LoRA recovery with these options "
                              f"({state.get('method', 'full')}, {state.get('lora')})", fix)
    want = peft.get_peft_model_state_dict(wrapped)
    if set(weights) != set(want) or any(weights[k].shape != want[k].shape for k in want):
        raise ShoestringError(f"the LoRA checkpoint in {folder} does not fit this model's adapters", fix)
    peft.set_peft_model_state_dict(wrapped, weights)
    opt.load_state_dict(optimizer)
    _set_rng(extras["rng"], device)
    return state


def _jsonable(opts: LoraOptions) -> dict:
    d = asdict(opts)
    d["targets"] = list(d["targets"])
    return d


def recover_lora(model, tokenizer, corpus: str, cfg: RecoveryConfig, lora: LoraOptions | None = None,
                 checkpoint: Path | None = None, progress=None) -> dict:
    """Recover ``model`` with LoRA on ``corpus`` for ``cfg.tokens`` tokens, then merge the adapters into it.

    Parameters
    ----------
    model
        A transformers causal LM, pruned or not; changed in place (its projections end up as plain
        ``nn.Linear`` again, with the merged weights).
    tokenizer, corpus
        The text to train on: ``cfg.skip`` contexts of ``corpus`` are skipped, then ``cfg.steps()`` batches.
    cfg
        The budget and schedule, as for full recovery (``cfg.lr`` unless ``lora.lr`` is set).
    lora
        The adapters (:class:`LoraOptions`; default rank 8 on q/k/v/o/gate/up/down).
    checkpoint
        A folder for checkpoints every ``cfg.checkpoint_every`` steps (adapters, optimiser, random state);
        a run finding one there resumes from it.
    progress
        ``progress(step, steps, loss)`` after every step.

    Returns
    -------
    dict
        ``steps``, ``tokens``, ``losses`` and ``config`` as :func:`~shoestring.prune.recover.recover`, plus
        ``lora`` (the options) and ``trainable`` (adapter parameters trained).

    References
    ----------
    Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", 2021. https://arxiv.org/abs/2106.09685
    """
    opts = (lora or LoraOptions()).check()
    peft = _peft()  # before reading the corpus: a missing library is the first thing to say
    data = training_batches(tokenizer, corpus, cfg)
    steps = len(data)
    device = next(model.parameters()).device
    lr = cfg.lr if opts.lr is None else opts.lr
    trainable = {n: p.requires_grad for n, p in model.named_parameters()}  # peft freezes them all
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(opts.seed)
        wrapped = _wrap(model, opts)
        try:
            params = [p for p in wrapped.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay)
            state = (_load(checkpoint, wrapped, opt, opts, device) if checkpoint else None) or {
                "step": 0, "losses": [], "method": "lora", "lora": _jsonable(opts)}
            wrapped.train()

            def save(st):
                write_checkpoint(checkpoint, peft.get_peft_model_state_dict(wrapped), opt.state_dict(), st,
                                 extras={"rng": _rng(device)})
            run_steps(wrapped, params, opt, data, cfg, lr, state, save=save if checkpoint else None, progress=progress)
            wrapped.merge_and_unload()  # returns ``model``: peft injected into it and now takes the adapters out
        except BaseException:
            wrapped.unload()  # an interrupted run leaves the model as it found it (no adapters, weights unmerged)
            raise
        finally:
            for n, p in model.named_parameters():
                p.requires_grad_(trainable.get(n, True))
            model.eval()
    return {"steps": steps, "tokens": steps * cfg.batch_size * cfg.length, "losses": state["losses"],
            "config": asdict(cfg), "lora": _jsonable(opts), "trainable": sum(p.numel() for p in params)}
