"""``shoestring generate MODEL PROMPT``."""

from __future__ import annotations

import typer

from ._common import DeviceOpt, DtypeOpt, JsonOpt, console, emit_json, load_model


def generate(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    prompt: list[str] = typer.Argument(..., help="one or more prompts (batched)"),
    max_new_tokens: int = typer.Option(32, "--max-new-tokens", "-n", min=1),
    chat: bool = typer.Option(False, "--chat", help="wrap each prompt in the model's chat template"),
    capture: list[str] = typer.Option([], "--capture", "-c", help="hook point(s) or glob to capture during generation"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Generate greedily; optionally capture hook points at every step (prefill + each new token)."""
    lm = load_model(model, dtype, device, quiet=json_out)
    if capture:
        with lm.capture(capture, device="cpu") as acts:
            texts = lm.generate(prompt, max_new_tokens=max_new_tokens, chat=chat)
        captured = {n: {"shape": list(acts[n].shape), "mean_norm": float(acts[n].float().norm(dim=-1).mean())}
                    for n in acts if acts.calls(n) and lm.hook_points[n].pos_dim == 1}
    else:
        texts, captured = lm.generate(prompt, max_new_tokens=max_new_tokens, chat=chat), {}
    if json_out:
        return emit_json({"model": model, "prompts": prompt, "completions": texts, "captured": captured})
    for p, t in zip(prompt, texts):
        console.print(f"[bold]{p}[/bold]{t}")
    for n, c in captured.items():
        console.print(f"captured {n}: shape {tuple(c['shape'])}, mean norm {c['mean_norm']:.2f}")
