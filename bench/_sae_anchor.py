"""SAELens anchor for the SAE training benchmark: train SAELens's TopK SAE on saved activations.

Runs under the SAELens venv's python (``bench/_saelens_venv.py``), not the project's ``.venv``:

    $(python bench/_saelens_venv.py | sed -n 2p)  # or bench/.cache/saelens-venv/bin/python
    bench/.cache/saelens-venv/bin/python bench/_sae_anchor.py --acts ACTS.safetensors --out OUTDIR \
        --d-sae 4608 --k 32 --batch 4096 --steps N --lr 4e-4 --seed 0 --threads 2

``ACTS.safetensors`` holds one float32 or float16 tensor named ``acts`` of shape ``[n_tokens, d_in]``.
Batches are consecutive slices of ``--batch`` rows in file order, cycling from the start when the rows
run out (the caller shuffles beforehand); each batch is cast to float32 when it is handed over.

Training is SAELens's own: ``SAETrainer(cfg=SAETrainerConfig(...), sae=TopKTrainingSAE(...),
data_provider=...).fit()``. Everything that is not training is off: wandb (``LoggingConfig(
log_to_wandb=False)``, which also disables evals and histograms), no intermediate checkpoints
(``n_checkpoints=0``, ``checkpoint_path=None``), no final trainer checkpoint
(``save_final_checkpoint=False``). The TopK training SAE keeps SAELens's defaults apart from
d_in/d_sae/k/dtype/device (all recorded in result.json): AuxK loss on (coefficient 1.0, dead = not fired
for ``dead_feature_window`` = 1000 steps), ``decoder_init_norm`` 0.1 with W_enc = W_dec.T,
``apply_b_dec_to_input`` True, ``normalize_activations`` "none", ``rescale_acts_by_decoder_norm`` True,
constant lr (no warm-up, no decay), Adam(0.9, 0.999), grad-norm clipping at 1.0. SAETrainerConfig has
no ``__post_init__`` to fill ``lr_end`` (the trainer asserts it is set), so it gets ``lr / 10`` as
LanguageModelSAERunnerConfig would; the constant schedule ignores it.

Timing (time.perf_counter, wall clock): the data provider stamps the moment each batch is requested
(SAETrainer asks for batch i at the start of step i), so ``seconds`` runs from the request of batch
``--warmup`` to the return of ``fit()`` and covers exactly ``steps - warmup`` training steps, without
changing what is trained. ``fit_seconds`` (whole fit, all steps) is recorded too.

Writes ``OUTDIR/result.json`` (atomically) and the trained SAE in SAELens's inference format
(``TrainingSAE.save_inference_model``: ``OUTDIR/sae/sae_weights.safetensors`` + ``cfg.json``, loadable
with ``sae_lens.SAE.load_from_disk``; with ``rescale_acts_by_decoder_norm`` the decoder norms are folded
into the encoder on save).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata as md
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402


class SliceProvider:
    """Consecutive ``batch``-row slices of ``acts`` in order, cycling; stamps each request time."""

    def __init__(self, acts: torch.Tensor, batch: int):
        if acts.shape[0] < batch:
            raise ValueError(f"need at least one full batch: {acts.shape[0]} rows < batch {batch}")
        self.acts = acts
        self.batch = batch
        self.n_full = acts.shape[0] // batch  # a ragged tail is skipped: every batch has `batch` rows
        self.i = 0
        self.stamps: list[float] = []

    def __iter__(self) -> "SliceProvider":
        return self

    def __next__(self) -> torch.Tensor:
        self.stamps.append(time.perf_counter())
        j = self.i % self.n_full
        self.i += 1
        return self.acts[j * self.batch:(j + 1) * self.batch].to(torch.float32)


def _jsonable(x):
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if hasattr(x, "to_dict"):
        return _jsonable(x.to_dict())
    return str(x)


def _write_json_atomic(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--acts", required=True, type=Path, help="safetensors file with tensor 'acts' [n, d_in]")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--d-sae", type=int, required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="steps left out of the timing (default: min(3, steps // 4))")
    ap.add_argument("--no-save", action="store_true", help="do not write OUTDIR/sae")
    ap.add_argument("--hook-name", default=None, help="recorded in the saved cfg.json metadata (e.g. blocks.12.hook_resid_post)")
    ap.add_argument("--model-name", default=None, help="recorded in the saved cfg.json metadata")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    warmup = args.warmup if args.warmup is not None else min(3, args.steps // 4)
    if not 0 <= warmup < args.steps:
        ap.error(f"--warmup must be in [0, steps): {warmup}")

    import sae_lens
    from sae_lens import LoggingConfig, SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata

    with safe_open(str(args.acts), framework="pt") as f:
        acts = f.get_tensor("acts")
    if acts.ndim != 2 or acts.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"'acts' must be a 2-D float tensor, got {tuple(acts.shape)} {acts.dtype}")
    n_tokens, d_in = acts.shape
    provider = SliceProvider(acts, args.batch)

    torch.manual_seed(args.seed)
    meta = {k: v for k, v in [("model_name", args.model_name), ("hook_name", args.hook_name)] if v is not None}
    sae_cfg = TopKTrainingSAEConfig(d_in=d_in, d_sae=args.d_sae, k=args.k, dtype="float32", device="cpu",
                                    metadata=SAEMetadata(**meta))
    sae = TopKTrainingSAE(sae_cfg)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=args.steps * args.batch,
        train_batch_size_samples=args.batch,
        lr=args.lr,
        lr_end=args.lr / 10,  # required by SAETrainer (asserted); unused by the constant schedule
        device="cpu",
        n_checkpoints=0,
        checkpoint_path=None,
        save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=provider)

    t0 = time.perf_counter()
    sae = trainer.fit()
    t1 = time.perf_counter()

    steps_done = trainer.n_training_steps
    timed_steps = steps_done - warmup
    seconds = t1 - provider.stamps[warmup]
    result = {
        "anchor": "sae_lens",
        "sae_lens_version": getattr(sae_lens, "__version__", None) or _version("sae-lens"),
        "versions": {n: _version(n) for n in ["sae-lens", "transformer-lens", "torch", "transformers",
                                              "safetensors", "numpy"]},
        "python": sys.version.split()[0],
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "acts": {"path": str(args.acts), "n_tokens": n_tokens, "d_in": d_in, "dtype": str(acts.dtype).removeprefix("torch.")},
        "batch": args.batch,
        "steps": steps_done,
        "warmup_steps": warmup,
        "timed_steps": timed_steps,
        "timed_tokens": timed_steps * args.batch,
        "seconds": seconds,
        "tokens_per_s": timed_steps * args.batch / seconds,
        "s_per_step": seconds / timed_steps,
        "fit_seconds": t1 - t0,
        "fit_tokens_per_s": steps_done * args.batch / (t1 - t0),
        "timing": "wall clock (perf_counter) from the request of batch `warmup_steps` to the end of fit()",
        "epochs_over_acts": steps_done * args.batch / (provider.n_full * args.batch),
        "args": _jsonable(vars(args)),
        "sae_config": _jsonable(sae.cfg.to_dict()),
        "trainer_config": _jsonable(trainer_cfg),
        "trainer_fixed": {"optimizer": "torch.optim.Adam", "grad_clip_norm": 1.0,
                          "aux_k": "d_in // 2, scaled by min(n_dead / (d_in // 2), 1)"},
        "final_metadata": {"l0": sae.cfg.metadata.l0, "num_dead_features": sae.cfg.metadata.num_dead_features},
    }

    # Quality on the first batch (outside the timing): the training SAE in eval mode.
    with torch.no_grad():
        x = acts[: args.batch].to(torch.float32)
        sae.eval()
        x_hat = sae(x)
        mse = (x_hat - x).pow(2).sum(-1).mean().item()
        var = (x - x.mean(0)).pow(2).sum(-1).mean().item()
        result["first_batch_eval"] = {"mse_sum_over_d": mse, "fvu": mse / var}

    if not args.no_save:
        weights_path, cfg_path = sae.save_inference_model(args.out / "sae")
        result["saved"] = {"method": "TrainingSAE.save_inference_model",
                           "weights": str(weights_path), "cfg": str(cfg_path)}
    _write_json_atomic(args.out / "result.json", result)
    print(json.dumps({k: result[k] for k in ["sae_lens_version", "torch_threads", "steps", "timed_steps",
                                            "seconds", "tokens_per_s", "fit_seconds"]}), flush=True)
    return result


if __name__ == "__main__":
    main()
