"""``shoestring observe tour MODEL`` (also ``observe report``): a short tour of the observe tools into one page."""

from __future__ import annotations

import time

import typer

from ._common import DeviceOpt, DtypeOpt, JsonOpt, console, emit_json, err_console, load_model, print_table
from ._report import NoReportOpt, OutOpt, say_where, write_run


def run_tour(lm, model: str, *, tuned_lens: str | None = None, tuned=None, dtype: str = "float32",
             device: str = "cpu", out=None, no_report: bool = False, quiet: bool = False,
             **settings) -> tuple[dict, object]:
    """Run :class:`shoestring.report.tour.Tour` on a loaded model and write its run directory.

    Returns ``(summary, path)``: the tour's numbers and the report's path.
    """
    from ..report.tour import Tour

    tour_cfg = Tour(**settings)
    t0 = time.perf_counter()
    if quiet:
        result = tour_cfg.run(lm, tuned=tuned)
    else:
        with err_console.status("observation tour...") as status:
            result = tour_cfg.run(lm, tuned=tuned, progress=lambda step: status.update(f"observation tour: {step}..."))
    summary = {**result.summary, "total_seconds": round(time.perf_counter() - t0, 2)}
    config = {"model": model, **tour_cfg.config(), "tuned_lens": tuned_lens, "dtype": dtype, "device": device}
    path = write_run("observe-tour", config, summary, page=result.page, out=out, no_report=no_report)
    return summary, path


def print_tour(summary: dict) -> None:
    """The tour's headline numbers as tables (used by `observe tour` and `shoestring demo`)."""
    lens = summary["lens"]
    rows = lens["rows"]
    step = max(1, len(rows) // 8)
    shown = sorted({*range(0, len(rows), step), len(rows) - 1})
    first = lens["first_layer_top1"]
    when = f"is the top token from layer {first}" if first is not None else "is never the top token"
    print_table(f"logit lens on {lens['prompt']!r}: {lens['target']!r} {when}", ("layer", "top token", "target rank", "target p", "KL to final"),
                [(str(rows[i]["layer"]), repr(rows[i]["top_tokens"][0]), str(rows[i]["target_rank"]),
                  f"{rows[i]['target_prob']:.4f}", f"{rows[i]['kl_to_final']:.2f}") for i in shown])
    print_table("strongest induction heads (random tokens, repeated)", ("layer", "head", "score"),
                [(str(r["layer"]), str(r["head"]), f"{r['score']:.3f}") for r in summary["induction_heads"]])
    p = summary["probe"]
    print_table(f"probe '{p['data']}' by layer: best layer {p['best_layer']}",
                ("layer", p["metric"], "95% CI", "control", "selectivity", "shuffled"),
                [(str(r["layer"]), f"{r[p['metric']]:.3f}", f"{r['ci_low']:.2f}-{r['ci_high']:.2f}",
                  f"{r.get('control', float('nan')):.3f}", f"{r.get('selectivity', float('nan')):+.3f}",
                  f"{r.get('shuffled', float('nan')):.3f}") for r in p["rows"]])
    g = summary["geometry"]
    console.print(f"geometry of layer {g['layer']}: PC1+PC2 explain {sum(g['explained_variance']):.1%}, k-means "
                  f"silhouette {g['kmeans_silhouette']:.3f}, PC1 vs label r = {g['pc1_label_correlation']:+.3f}",
                  markup=False, highlight=False)
    patching = summary["patching"]
    if "top" in patching:
        cells = ", ".join(f"L{c['layer']} {c['column']!r} {c['score']:.2f}" for c in patching["top"][:3])
        console.print(f"patching (restored fraction): {cells}", markup=False, highlight=False)
    n = summary.get("neuron")
    if n:
        console.print(f"neuron L{n['layer']}N{n['neuron']} separates the classes (d = {n['separation']:+.2f}); promotes "
                      + ", ".join(repr(t) for t, _ in n["promotes"][:5]), markup=False, highlight=False)


def tour(
    model: str = typer.Argument("smollm2-135m", help="alias, folder, .gguf file or hub id"),
    tuned_lens: str = typer.Option(None, "--tuned-lens", help="a folder saved by TunedLens.save: shown beside the logit lens"),
    probe_points: int = typer.Option(10, "--probe-layers", min=1, help="how many layers to probe (evenly spaced)"),
    seed: int = typer.Option(0, "--seed"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    out: str = OutOpt,
    no_report: bool = NoReportOpt,
    json_out: bool = JsonOpt,
) -> None:
    """A short tour into one report page: logit lens on a factual prompt, the head census and its induction
    heads, a sentiment probe curve, the PCA map of the best layer, residual patching, one neuron."""
    from ..observe import TunedLens

    tuned = TunedLens.load(tuned_lens) if tuned_lens else None
    lm = load_model(model, dtype, device, quiet=json_out)
    summary, path = run_tour(lm, model, tuned_lens=tuned_lens, tuned=tuned, dtype=dtype, device=device, out=out,
                             no_report=no_report, quiet=json_out, probe_points=probe_points,
                             seed=seed)
    if json_out:
        return emit_json({**summary, "report": str(path)})
    console.rule(f"[bold]observation tour[/bold]: {model} ({summary['total_seconds']:.0f} s)")
    print_tour(summary)
    say_where(path)
