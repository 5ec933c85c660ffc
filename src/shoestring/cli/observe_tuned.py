"""``shoestring observe tuned-lens``: fit a tuned lens (resumable), then compare it with the logit lens."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ShoestringError
from ._common import DeviceOpt, DtypeOpt, JsonOpt, ModelArg, emit_json, load_model, print_table


def tuned_lens(
    model: str = ModelArg,
    out: str = typer.Option(..., "--out", help="folder for the lens (rerun the same command to resume a fit)"),
    corpus: str = typer.Option("stdlib-prose", "--corpus", help="built-in, file, folder, .jsonl/.csv/.parquet"),
    tokens: int = typer.Option(1_000_000, "--tokens", min=1, help="training tokens (about 1M is usual)"),
    store: str = typer.Option(None, "--from-store", help="fit from an activation store holding every layer's resid_post"),
    ridge: float = typer.Option(1e-3, "--ridge", min=0.0, help="shrinkage towards the logit lens"),
    context_length: int = typer.Option(256, "--context-length", min=2),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="documents held out for the evaluation"),
    eval_tokens: int = typer.Option(4096, "--eval-tokens", min=0, help="held-out tokens for the KL table; 0 skips it"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Fit one affine translator per layer, save it to --out, and print KL to the final layer per layer.

    The fit streams one forward pass per batch (about 50 minutes per 1M tokens of SmolLM2 on 2 CPU
    cores) and checkpoints its running sums, so an interrupted fit resumes where it stopped. Use the lens
    with `shoestring observe lens MODEL PROMPT --tuned-lens FOLDER` or `TunedLens.load(FOLDER)`."""
    from ..data import load_corpus, split
    from ..observe.tuned_lens_fit import fit_tuned_lens, fit_tuned_lens_from_store, lens_kl
    from ..runs.atomic import write_json

    if not 0.0 < val_fraction < 1.0:
        raise ShoestringError(f"--val-fraction {val_fraction} is outside (0, 1)", "pass a fraction such as 0.1")
    lm = load_model(model, dtype, device, quiet=json_out)
    train, val = split(load_corpus(corpus), val_fraction=val_fraction, seed=0)
    if store:
        lens = fit_tuned_lens_from_store(store, progress=not json_out, ridge=ridge)
        lens.check_model(lm)
        lens.save(out)
    else:
        lens = fit_tuned_lens(lm, train, tokens=tokens, context_length=context_length, batch_size=batch_size,
                              ridge=ridge, out=out, progress=not json_out)
    result = {"model": model, "lens": str(Path(out).resolve()), "fit": lens.meta}
    if eval_tokens:
        kl = lens_kl(lm, {"logit": None, "tuned": lens}, val, tokens=eval_tokens, context_length=context_length,
                     progress=not json_out)
        last = lm.n_layers - 1
        kl["tuned_beats_logit_layers"] = [L for L in range(last) if kl["tuned"]["kl"][L] < kl["logit"]["kl"][L]]
        result["eval"] = {"corpus": f"{corpus} (held-out documents)", **kl}
        write_json(Path(out) / "eval.json", result["eval"])
    if json_out:
        return emit_json(result)
    print(f"tuned lens on {lens.meta.get('tokens', 0):,} tokens saved to {out}")
    if eval_tokens:
        rows = [(str(L), f"{a:.3f}", f"{b:.3f}", "yes" if b < a else ("-" if L == last else "no"))
                for L, (a, b) in enumerate(zip(kl["logit"]["kl"], kl["tuned"]["kl"]))]
        print_table(f"KL(final || lens), nats, mean over {kl['tokens']:,} held-out tokens",
                    ("layer", "logit lens", "tuned lens", "tuned lower"), rows)
