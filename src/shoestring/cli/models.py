"""``shoestring models`` and ``shoestring info MODEL``."""

from __future__ import annotations

import typer
from rich.table import Table

from ._common import DeviceOpt, DtypeOpt, JsonOpt, ModelArg, console, emit_json, human_bytes, load_model


def models(json_out: bool = JsonOpt) -> None:
    """List model aliases and the layouts (families) shoestring maps."""
    from ..models.anatomy import LAYOUTS
    from ..models.registry import ALIASES, DEFAULT_MODEL

    aliases = [{"alias": a.name, "source": a.source, "about": a.about, "default": a.name == DEFAULT_MODEL} for a in ALIASES.values()]
    layouts = [{"layout": lay.name, "families": list(lay.families), "parallel": "config" if callable(lay.parallel) else lay.parallel, "moe": lay.moe} for lay in LAYOUTS.values()]
    if json_out:
        return emit_json({"aliases": aliases, "layouts": layouts})
    t = Table(title="model aliases (bundled = works offline)")
    for col in ("alias", "source", "about"):
        t.add_column(col)
    for a in aliases:
        t.add_row(a["alias"] + (" (default)" if a["default"] else ""), a["source"], a["about"])
    console.print(t)
    t = Table(title="layouts, recognised from module structure")
    for col in ("layout", "families", "block"):
        t.add_column(col)
    for lay in layouts:
        block = "parallel" if lay["parallel"] is True else ("by config" if lay["parallel"] == "config" else "sequential")
        t.add_row(lay["layout"], ", ".join(lay["families"]), block + (", MoE" if lay["moe"] else ""))
    console.print(t)


def info(
    model: str = ModelArg,
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    layer: int = typer.Option(None, "--layer", help="list the hook points of this layer only (default: 0 and model-level)"),
    json_out: bool = JsonOpt,
) -> None:
    """Parameters, layers, heads, weight memory and the hook points with their shapes."""
    lm = load_model(model, dtype, device, quiet=json_out)
    info = lm.info()
    shapes = lm.point_shapes(batch=1, pos=4)
    if layer is not None:
        lm.resolve(f"blocks.{layer}.hook_resid_pre")  # range check with a clear message
    show = [n for n in shapes if not n.startswith("blocks.") or n.startswith(f"blocks.{0 if layer is None else layer}.")]
    points = [{"name": n, "shape": shapes[n], "axes": lm.hook_points[n].shape, "editable": lm.hook_points[n].write is not None} for n in show]
    if json_out:
        return emit_json({**info, "points": points, "all_point_names": list(lm.hook_points)})
    t = Table(title=f"{model}: {info['class']}", show_header=False)
    for k in ("parameters", "weight_bytes", "dtype", "device", "layout", "block", "n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_mlp", "d_vocab", "attn_implementation", "hook_points"):
        v = info[k]
        t.add_row(k, human_bytes(v) if k == "weight_bytes" else (f"{v:,}" if isinstance(v, int) and k == "parameters" else str(v)))
    console.print(t)
    t = Table(title=f"hook points (batch 1 x 4 tokens), layer {0 if layer is None else layer} shown of {info['n_layers']}")
    for col in ("name", "shape", "axes", "edit"):
        t.add_column(col)
    for p in points:
        t.add_row(p["name"], str(tuple(p["shape"])), p["axes"], "yes" if p["editable"] else "capture only")
    console.print(t)
