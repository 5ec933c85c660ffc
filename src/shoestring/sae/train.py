"""Train one or several SAEs in one pass over the data, resumably.

Recipe (defaults follow Gao et al. 2024, https://arxiv.org/abs/2406.04093, and SAELens):

- inputs scaled so that ``E||x||^2 = d_in`` (the factor is folded into the saved weights);
- ``b_dec`` initialised at the geometric median (Weiszfeld iterations) or the mean of a sample;
- unit-norm decoder rows, with the gradient component that would change a row's norm removed;
- Adam, linear learning-rate warm-up, constant, then linear decay to zero over the last ``lr_decay``
  fraction; the sparsity coefficient (ReLU, JumpReLU) warmed up over ``l1_warmup``;
- dead latents (not fired for ``dead_tokens`` tokens) feed TopK/BatchTopK's AuxK loss; final dead and
  dense fractions and the density of every latent come from the last ``density_window`` tokens.

Checkpoints (safetensors + JSON, written atomically) hold parameters, Adam moments and counters; rerunning
with the same ``out`` resumes where the last checkpoint stopped and skips the batches already seen.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import ShoestringError
from ..runs.atomic import atomic_path, write_json
from .base import SAE


@dataclass
class TrainConfig:
    tokens: int = 1_000_000
    batch_size: int = 4096
    lr: float = 4e-4
    lr_warmup: float = 0.01  # fraction of steps
    lr_decay: float = 0.2  # fraction of steps at the end, linear to 0
    l1_warmup: float = 0.05
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 6.25e-10
    b_dec_init: str = "geometric_median"  # or "mean", "zeros"
    normalize: bool = True
    dead_tokens: int | None = None  # default min(10M, tokens // 5)
    density_window: int | None = None  # default min(10M, tokens // 4)
    dense_threshold: float = 0.1  # a latent firing on more than this fraction of tokens is "dense"
    checkpoint_every: int = 200  # steps
    log_every: int = 20
    compute_dtype: str = "float32"  # or "bfloat16" (autocast; parameters and Adam stay float32)
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return max(1, self.tokens // self.batch_size)

    def check(self) -> None:
        if self.b_dec_init not in ("geometric_median", "mean", "zeros"):
            raise ShoestringError(f"unknown b_dec_init '{self.b_dec_init}'", "use geometric_median, mean or zeros")
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ShoestringError(f"unknown compute dtype '{self.compute_dtype}'", "use float32 or bfloat16")
        if self.tokens < self.batch_size:
            raise ShoestringError(f"--tokens {self.tokens:,} is less than one batch ({self.batch_size:,})", "train on more tokens or use a smaller batch")


def lr_at(step: int, cfg: TrainConfig) -> float:
    warm = max(1, int(cfg.lr_warmup * cfg.steps))
    decay_from = int((1 - cfg.lr_decay) * cfg.steps)
    scale = min(1.0, (step + 1) / warm)
    if step >= decay_from and cfg.lr_decay > 0:
        scale *= max(0.0, (cfg.steps - step) / max(1, cfg.steps - decay_from))
    return cfg.lr * scale


def geometric_median(x: torch.Tensor, iters: int = 50, tol: float = 1e-6) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the summed Euclidean distance to the rows of ``x``."""
    x = x.double()
    y = x.mean(0)
    for _ in range(iters):
        w = 1.0 / (x - y).norm(dim=1).clamp_min(1e-8)
        new = (w[:, None] * x).sum(0) / w.sum()
        if (new - y).norm() < tol * (1 + y.norm()):
            return new.float()
        y = new
    return y.float()


class _Tracker:
    """Per-SAE counters: tokens since each latent last fired, and firing counts in the density window."""

    def __init__(self, d_sae: int, device):
        self.since = torch.zeros(d_sae, dtype=torch.long, device=device)
        self.counts = torch.zeros(d_sae, dtype=torch.long, device=device)
        self.window_tokens = 0

    def update(self, fired: torch.Tensor, counts: torch.Tensor | None, n: int, in_window: bool) -> None:
        self.since += n
        self.since[fired] = 0
        if in_window:
            self.window_tokens += n
            self.counts += counts if counts is not None else fired.long()


def train_saes(saes: list[SAE], source, cfg: TrainConfig, out: str | Path | None = None,
               progress: bool = True, on_step=None) -> list[dict]:
    """Train ``saes`` (any mix of variants on the same input) on ``source`` for ``cfg.tokens`` tokens.

    Parameters
    ----------
    saes
        SAEs to train side by side; each batch is read once and fed to every one.
    source
        A :class:`~shoestring.sae.sources.StoreSource`, :class:`~shoestring.sae.sources.StreamSource` or any
        object with ``batches(skip)`` yielding ``(x, target)``.
    out
        Folder for checkpoints, the training log (``train_log.jsonl``) and, at the end, one SAELens-format
        folder per SAE (``sae-0``, ``sae-1``, ...). Rerun with the same ``out`` to resume.

    Returns
    -------
    list of dict
        Per SAE: final L0, explained variance (last 10 logged steps), dead and dense fractions, the density
        of each latent, tokens/s, and the folder it was saved to.
    """
    cfg.check()
    out = Path(out) if out else None
    device = saes[0].W_enc.device
    dead_tokens = cfg.dead_tokens or min(10_000_000, max(cfg.batch_size, cfg.tokens // 5))
    window = cfg.density_window or min(10_000_000, max(cfg.batch_size, cfg.tokens // 4))
    opts = [torch.optim.Adam(s.parameters(), lr=cfg.lr, betas=tuple(cfg.adam_betas), eps=cfg.adam_eps) for s in saes]
    trackers = [_Tracker(s.cfg.d_sae, device) for s in saes]
    state = {"step": 0, "scaling": None, "elapsed": 0.0}
    if out and (out / "checkpoint" / "state.json").is_file():
        state = _load_checkpoint(out / "checkpoint", saes, opts, trackers, cfg)
    start_step, resumed_elapsed = state["step"], state["elapsed"]
    batches = source.batches(skip=start_step) if start_step else source.batches()
    first = None
    if state["scaling"] is None:
        first = next(batches, None)
        if first is None:
            raise ShoestringError("the training data gave no batch", "check the store or corpus and the batch size")
        state["scaling"] = _init(saes, first, cfg)
    s = state["scaling"]
    for sae in saes:
        sae.train()
    if out:
        out.mkdir(parents=True, exist_ok=True)
        _trim_log(out / "train_log.jsonl", start_step)
    log_f = open(out / "train_log.jsonl", "a") if out else None
    bar = _bar(cfg, start_step, progress, len(saes))
    recent = [[] for _ in saes]
    t0, step, tokens_seen = time.perf_counter() - state["elapsed"], start_step, start_step * cfg.batch_size
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if cfg.compute_dtype == "bfloat16" else _null()
    try:
        for x, target in _chain(first, batches):
            if step >= cfg.steps:
                break
            x, target = x.to(device, non_blocking=True) * s, target.to(device, non_blocking=True) * s
            var = (target - target.mean(0)).pow(2).sum()
            lr = lr_at(step, cfg)
            in_window = tokens_seen >= cfg.tokens - window
            shared = {"progress": step / cfg.steps, "l1_scale": min(1.0, (step + 1) / max(1, cfg.l1_warmup * cfg.steps))}
            row = {"step": step + 1, "tokens": tokens_seen + len(x), "lr": lr}
            for i, (sae, opt, tr) in enumerate(zip(saes, opts, trackers)):
                with autocast:
                    loss, info = sae.train_forward(x, target, {**shared, "dead": tr.since >= dead_tokens})
                opt.zero_grad(set_to_none=True)
                loss.backward()
                sae.remove_parallel_grad()
                for g in opt.param_groups:
                    g["lr"] = lr
                opt.step()
                sae.set_decoder_norm_to_unit()
                tr.update(info["fired"], info.pop("counts"), len(x), in_window)
                ev = 1.0 - info["sse"] / max(float(var), 1e-12)
                recent[i] = (recent[i] + [(ev, info["l0"], float(loss.detach()))])[-10:]
                row[f"sae{i}"] = {"loss": float(loss.detach()), "l0": info["l0"], "ev": ev,
                                  "dead": float((tr.since >= dead_tokens).float().mean()),
                                  **{k: v for k, v in info.items() if k not in ("sse", "l0", "fired")}}
            step += 1
            tokens_seen += len(x)
            if bar is not None:
                r = row["sae0"]
                bar.update(1)
                bar.set_postfix_str(f"{tokens_seen / max(1e-9, time.perf_counter() - t0):,.0f} tok/s L0 {r['l0']:.1f} "
                                    f"EV {r['ev']:.3f} dead {r['dead']:.1%}" + (f" (+{len(saes) - 1} SAEs)" if len(saes) > 1 else ""))
            if log_f and (step % cfg.log_every == 0 or step == cfg.steps):
                log_f.write(json.dumps(row) + "\n")
                log_f.flush()
            if on_step is not None:
                on_step(step, row)
            if out and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                state.update(step=step, elapsed=time.perf_counter() - t0)
                _save_checkpoint(out / "checkpoint", saes, opts, trackers, state, cfg)
    finally:
        if bar is not None:
            bar.close()
        if log_f:
            log_f.close()
    elapsed = time.perf_counter() - t0
    if step < cfg.steps:
        raise ShoestringError(f"the data ran out after {step * cfg.batch_size:,} of {cfg.tokens:,} tokens",
                              "pass fewer --tokens, more --epochs, or a bigger store")
    results = []
    for i, (sae, tr) in enumerate(zip(saes, trackers)):
        sae.eval()
        sae.cfg.scaling_factor = s
        density = (tr.counts.double() / max(1, tr.window_tokens)).cpu()
        res = {"l0": _mean(recent[i], 1), "explained_variance": _mean(recent[i], 0), "loss": _mean(recent[i], 2),
               "dead_fraction": float((density == 0).double().mean()),
               "dense_fraction": float((density > cfg.dense_threshold).double().mean()),
               "density_window_tokens": tr.window_tokens, "tokens": step * cfg.batch_size, "steps": step,
               "seconds": elapsed, "tokens_per_s": (step - start_step) * cfg.batch_size / max(1e-9, elapsed - resumed_elapsed),
               "scaling_factor": s, "architecture": sae.cfg.architecture, "d_sae": sae.cfg.d_sae, "k": sae.cfg.k}
        if out:
            from .format import save_sae

            folder = save_sae(sae, out / f"sae-{i}", extra_files={"training.json": {**res, "config": _cfg_dict(cfg)}})
            save_file({"density": density.float()}, str(out / f"sae-{i}" / "density.safetensors"))
            res["folder"] = str(folder)
        res["density"] = density
        results.append(res)
    return results


def _trim_log(path: Path, step: int) -> None:
    """Drop log rows past the checkpoint we resume from (they will be logged again)."""
    if not path.exists():
        return
    rows = [r for r in path.read_text().splitlines() if r.strip() and json.loads(r)["step"] <= step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(r + "\n" for r in rows))


def _mean(rows, j):
    return float(sum(r[j] for r in rows) / len(rows)) if rows else float("nan")


def _chain(first, rest):
    if first is not None:
        yield first
    yield from rest


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _bar(cfg, start, progress, n):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.steps, initial=start, desc=f"training {n} SAE{'s' if n > 1 else ''}", unit="step", dynamic_ncols=True)


@torch.no_grad()
def _init(saes: list[SAE], first: tuple, cfg: TrainConfig) -> float:
    """Input scale and b_dec from the first batch."""
    x, target = first
    s = math.sqrt(x.shape[-1] / float(x.float().pow(2).sum(-1).mean())) if cfg.normalize else 1.0
    t = target.float() * s
    b = {"geometric_median": lambda: geometric_median(t[:4096]), "mean": lambda: t.mean(0),
         "zeros": lambda: torch.zeros(t.shape[-1])}[cfg.b_dec_init]()
    for sae in saes:
        sae.b_dec.copy_(b.to(sae.b_dec))
    return s


def _cfg_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["adam_betas"] = list(d["adam_betas"])
    return d


def _save_checkpoint(folder: Path, saes, opts, trackers, state, cfg) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (sae, opt, tr) in enumerate(zip(saes, opts, trackers)):
        tensors = {f"param.{n}": p.detach() for n, p in sae.named_parameters()}
        tensors.update({f"buffer.{n}": b for n, b in sae.named_buffers()})
        names = {id(p): n for n, p in sae.named_parameters()}
        for p, st in opt.state.items():
            for key in ("exp_avg", "exp_avg_sq", "step"):
                if key in st:
                    tensors[f"adam.{names[id(p)]}.{key}"] = torch.as_tensor(st[key]).reshape(-1).float()
        tensors["tracker.since"], tensors["tracker.counts"] = tr.since, tr.counts
        with atomic_path(folder / f"sae-{i}.safetensors") as tmp:
            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    write_json(folder / "state.json", {**state, "windows": [tr.window_tokens for tr in trackers], "n_saes": len(saes),
                                       "config": _cfg_dict(cfg), "saes": [s.cfg.to_dict() for s in saes]})


def _load_checkpoint(folder: Path, saes, opts, trackers, cfg) -> dict:
    state = json.loads((folder / "state.json").read_text())
    if state.get("n_saes") != len(saes) or [s["d_sae"] for s in state["saes"]] != [s.cfg.d_sae for s in saes]:
        raise ShoestringError(f"the checkpoint in {folder} is for other SAEs", "use a new --out, or the same SAE settings as the interrupted run")
    old = state["config"]
    for key in ("tokens", "batch_size", "lr", "seed", "b_dec_init", "normalize"):
        if old.get(key) != _cfg_dict(cfg).get(key):
            raise ShoestringError(f"the checkpoint in {folder} was made with {key}={old.get(key)!r}, not {_cfg_dict(cfg).get(key)!r}",
                                  "rerun with the same settings to resume, or use a new --out")
    for i, (sae, opt, tr) in enumerate(zip(saes, opts, trackers)):
        t = load_file(str(folder / f"sae-{i}.safetensors"), device=str(sae.W_enc.device))
        with torch.no_grad():
            for n, p in sae.named_parameters():
                p.copy_(t[f"param.{n}"])
            for n, b in sae.named_buffers():
                b.copy_(t[f"buffer.{n}"])
        for n, p in sae.named_parameters():
            if f"adam.{n}.exp_avg" in t:
                # the moments were saved flattened and as float32: give them back their parameter's shape and dtype
                opt.state[p] = {"step": t[f"adam.{n}.step"].reshape(()).cpu(),
                                "exp_avg": t[f"adam.{n}.exp_avg"].reshape(p.shape).to(p.dtype),
                                "exp_avg_sq": t[f"adam.{n}.exp_avg_sq"].reshape(p.shape).to(p.dtype)}
        tr.since.copy_(t["tracker.since"])
        tr.counts.copy_(t["tracker.counts"])
        tr.window_tokens = state["windows"][i]
    return state
