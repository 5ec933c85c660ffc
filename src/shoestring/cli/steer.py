"""``shoestring steer run SPEC.toml`` (the closed loop, into a run directory) and ``steer fit`` (a direction)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ShoestringError
from ._common import DeviceOpt, JsonOpt, console, emit_json, load_model, print_table
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
    from ..report.steer import steer_page
    from ..runs import RunDir
    from ..steer.experiment import Spec
    from ..steer.run import run_experiment

    spec = Spec.from_toml(spec_path)
    lm = load_model(spec.model, "float32", device, quiet=json_out)
    config = {"spec": spec.__dict__, "device": device}
    run_dir = RunDir.create(out, "steer-run", config)
    run_dir.start()
    result = run_experiment(spec, lm, progress=not json_out)
    samples = result.pop("samples")
    run_dir.write_samples(samples)
    run_dir.save_artifact("result", result)
    headline = _headline(result)
    page = steer_page(result, samples, f"Steering: {Path(spec_path).name}", meta={"model": spec.model})
    report = page.save(run_dir.path / "report.html")
    run_dir.finish(headline)
    if json_out:
        emit_json({"run": str(run_dir.path), "report": str(report), **headline})
        return
    rows = []
    for c in result["cells"]:
        for j in result["judges"]:
            s, k = c[f"steered_{j['name']}"], c[f"control_{j['name']}"]
            rows.append([str(c["layer"]), f"{c['scale']:g}", j["name"], f"{s['mean']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]",
                         f"{k['mean']:+.3f} [{k['ci_low']:+.3f}, {k['ci_high']:+.3f}]", f"{s['wrong_way']:.0%}",
                         f"{c.get('steered_kl_neutral', float('nan')):.3f}"])
    print_table("steering effects (steered - unsteered, 95% CI)", ["layer", "scale", "judge", "steered", "random control",
                                                                    "wrong way", "KL neutral"], rows)
    say_where(report)


def _headline(result: dict) -> dict:
    """The best cell for the first judge, and whether its interval excludes zero and beats the control."""
    first = result["judges"][0]["name"]
    sign = result["judges"][0]["sign"]
    best = max(result["cells"], key=lambda c: c[f"steered_{first}"]["mean"] * sign)
    return {"judge": first, "best_layer": best["layer"], "best_scale": best["scale"],
            "effect": best[f"steered_{first}"], "control": best[f"control_{first}"],
            "significant": best[f"{first}_significant"], "beats_control": best[f"{first}_beats_control"],
            "kl_neutral": best.get("steered_kl_neutral"), "ppl_ratio_neutral": best.get("steered_ppl_ratio_neutral")}


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
