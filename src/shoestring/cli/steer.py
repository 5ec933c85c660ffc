"""``shoestring steer run SPEC.toml`` (the closed loop, into a run directory) and ``steer fit`` (a direction)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ShoestringError
from ._common import DeviceOpt, JsonOpt, console, emit_json, load_model
from ._report import OutOpt, say_where

steer_app = typer.Typer(help="Steering: fit directions, run the closed loop with judges and controls.", no_args_is_help=True)


@steer_app.command("run")
def run(
    spec_path: str = typer.Argument(..., metavar="SPEC", help="experiment spec (TOML)"),
    device: str = DeviceOpt,
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Steered vs unsteered vs a random control, every judge, 95% intervals; writes a run directory."""
    from ..steer.experiment import Spec
    from .steer_loop import print_effects, print_headline, run_loop

    spec = Spec.from_toml(spec_path)
    lm = load_model(spec.model, "float32", device, quiet=json_out)
    run_dir, report, head, result = run_loop(spec, lm, out, f"Steering: {Path(spec_path).name}", quiet=json_out,
                                             extra_config={"device": device, "spec_path": str(spec_path)})
    if json_out:
        emit_json({"run": str(run_dir.path), "report": str(report), **head})
        return
    print_effects(result)
    print_headline(head)
    say_where(report)


@steer_app.command("fit")
def fit(
    model: str = typer.Argument("smollm2-135m"),
    out: str = typer.Option(..., "--out", help="folder for the direction (direction.safetensors + direction.json)"),
    method: str = typer.Option("mean_diff", "--method", help="mean_diff, pca_diff or probe"),
    pairs: str = typer.Option("sentiment", "--pairs", help="shipped set name or a .jsonl with positive/negative"),
    layers: str = typer.Option("15", "--layers", help="comma-separated layers"),
    device: str = DeviceOpt,
) -> None:
    """Fit a direction from contrastive pairs and save it."""
    from ..steer.experiment import read_pairs, shipped_pairs
    from ..steer.methods import METHODS

    if method not in ("mean_diff", "pca_diff", "probe"):
        raise ShoestringError(f"unknown or unsupported method '{method}' for fit", "use mean_diff, pca_diff or probe")
    try:
        layer_list = tuple(int(x) for x in layers.split(",") if x.strip())
    except ValueError:
        raise ShoestringError(f"--layers '{layers}' is not a list of integers", "e.g. --layers 10,15")
    pos, neg = read_pairs(pairs) if pairs.endswith(".jsonl") else shipped_pairs(pairs)
    lm = load_model(model, "float32", device)
    d = METHODS[method](layers=layer_list).fit(lm, pos, neg)
    folder = d.save(out)
    console.print(f"direction: {Path(folder).resolve()}", markup=False, highlight=False)


EXPORT_FORMATS = ("lm-eval", "gguf")


@steer_app.command("export")
def export(
    direction_dir: str = typer.Argument(..., metavar="DIRECTION_DIR", help="a folder written by `steer fit`"),
    to: str = typer.Option(..., "--to", help="lm-eval (a .pt for `lm_eval --model steered`) or gguf (llama.cpp)"),
    out: str = typer.Option(..., "--out", help="the file to write (.pt for lm-eval, .gguf for gguf)"),
    scale: float = typer.Option(1.0, "--scale", help="steering coefficient (baked into the vectors for gguf)"),
    layers: str = typer.Option("", "--layers", help="comma-separated layers to export (default: all)"),
    action: str = typer.Option("add", "--action", help="lm-eval only: add or clamp"),
    blocks: str = typer.Option("layers", "--blocks", help="lm-eval only: block list under model.base_model (gpt2: h)"),
    model_hint: str = typer.Option("llama", "--model-hint", help="gguf only: the HF model_type to record"),
) -> None:
    """Export a direction to lm-evaluation-harness's steered model or a llama.cpp control vector."""
    from ..steer.direction import Direction
    from ..steer.interop import export_gguf, export_lm_eval

    if to not in EXPORT_FORMATS:
        raise ShoestringError(f"unknown export format '{to}'", f"use --to {' or --to '.join(EXPORT_FORMATS)}")
    try:
        layer_list = [int(x) for x in layers.split(",") if x.strip()] or None
    except ValueError:
        raise ShoestringError(f"--layers '{layers}' is not a list of integers", "e.g. --layers 10,15")
    d = Direction.load(direction_dir)
    if to == "gguf":
        path = export_gguf(d, out, scale=scale, model_hint=model_hint, layers=layer_list)
        console.print(f"control vector: {Path(path).resolve()}", markup=False, highlight=False)
        console.print(f"llama-cli -m MODEL.gguf --control-vector {Path(path).resolve()}", markup=False, highlight=False)
        return
    command = export_lm_eval(d, out, scale=scale, layers=layer_list, action=action, blocks=blocks)
    console.print(f"steering file: {Path(out).resolve()}", markup=False, highlight=False)
    console.print(command, markup=False, highlight=False, soft_wrap=True)


@steer_app.command("import")
def import_(
    path: str = typer.Argument(..., metavar="PATH", help="a llama.cpp control-vector .gguf (repeng's export_gguf)"),
    out: str = typer.Option(..., "--out", help="folder for the direction (direction.safetensors + direction.json)"),
    model: str = typer.Option("", "--model", help="the model name to record in the direction"),
) -> None:
    """Import a repeng / llama.cpp control vector as a direction (layer N = blocks.N.hook_resid_post)."""
    from ..steer.interop import import_repeng

    d = import_repeng(path, model=model)
    folder = d.save(out)
    console.print(f"direction: {Path(folder).resolve()} (layers {d.layers})", markup=False, highlight=False)
