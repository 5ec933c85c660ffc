"""The closed loop from the command line: one spec -> a run directory (samples, result, report, headline).
Used by ``shoestring steer run`` and by ``shoestring demo``."""

from __future__ import annotations

import math

from rich.markup import escape

from ..steer.stats import fmt_ci
from ._common import console, print_table


def run_loop(spec, lm, out: str | None, title: str, quiet: bool = False, extra_config: dict | None = None):
    """Run ``spec`` on ``lm`` into a new ``steer-run`` directory. Returns ``(run_dir, report_path, headline, result)``."""
    from ..report.steer import steer_page
    from ..runs import RunDir
    from ..steer.run import prepare, run_experiment

    prepared = prepare(spec, lm)  # bad input fails here, before a run directory exists
    config = {"spec": spec.__dict__, **(extra_config or {})}
    run_dir = RunDir.create(out, "steer-run", config)
    run_dir.start()
    prepared.direction.save(run_dir.artifacts / "direction")
    try:
        result = run_experiment(spec, lm, progress=not quiet, prepared=prepared)
    except BaseException as e:
        run_dir.fail(f"{type(e).__name__}: {e}")
        raise
    samples = result.pop("samples")
    run_dir.write_samples(samples)
    run_dir.save_artifact("result", result)
    head = headline(result, samples)
    page = steer_page(result, samples, title, meta={"model": spec.model})
    report = page.save(run_dir.path / "report.html")
    run_dir.finish(head)
    return run_dir, report, head, result


def headline(result: dict, samples: list[dict] | None = None) -> dict:
    """The surest cell for the first judge (:func:`~shoestring.steer.run.best_cell`): its effect and the
    control's, whether the interval excludes zero and beats the control, every other judge's effect there
    (the fluency cost), the side effects on neutral text, and one before/after example."""
    from ..steer.run import best_cell

    first = result["judges"][0]["name"]
    best = best_cell(result)
    out = {"judge": first, "best_layer": best["layer"], "best_scale": best["scale"],
           "effect": best[f"steered_{first}"], "control": best[f"control_{first}"],
           "vs_control": best[f"{first}_vs_control"],
           "significant": best[f"{first}_significant"], "beats_control": best[f"{first}_beats_control"],
           "kl_neutral": best.get("steered_kl_neutral"), "ppl_ratio_neutral": best.get("steered_ppl_ratio_neutral"),
           "control_kl_neutral": best.get("control_kl_neutral"),
           "other_judges": {j["name"]: {"steered": best[f"steered_{j['name']}"], "control": best[f"control_{j['name']}"],
                                         "vs_control": best[f"{j['name']}_vs_control"]}
                            for j in result["judges"][1:]}}
    if samples:
        seed = result["seeds"][0]
        pick = {}
        for s in samples:
            if s["seed"] == seed and (s["kind"] == "unsteered" or (s["kind"] == "steered" and s["layer"] == best["layer"]
                                                                  and s["scale"] == best["scale"])):
                pick.setdefault(s["prompt"], {})[s["kind"]] = s["output"]
        gain = {p: k for p, k in pick.items() if len(k) == 2}
        if gain:
            prompt = next(iter(gain))
            out["example"] = {"prompt": prompt, **gain[prompt]}
    return out


def print_effects(result: dict) -> None:
    rows = []
    for c in result["cells"]:
        for j in result["judges"]:
            s, k = c[f"steered_{j['name']}"], c[f"control_{j['name']}"]
            ww = "n/a" if math.isnan(s["wrong_way"]) else f"{s['wrong_way']:.0%}"
            rows.append([str(c["layer"]), f"{c['scale']:g}", j["name"], fmt_ci(s), fmt_ci(k), fmt_ci(c[f"{j['name']}_vs_control"]), ww,
                         f"{c.get('steered_kl_neutral', float('nan')):.3f}"])
    print_table("steering effects (steered - unsteered, 95% CI)", ["layer", "scale", "judge", "steered", "random control",
                                                                    "steered - control", "wrong way", "KL neutral"], rows)


def print_headline(head: dict) -> None:
    verdict = ("[green]excludes zero[/green]" if head["significant"] else "[yellow]includes zero[/yellow]")
    beats = {True: "[green]beats[/green]", False: "[yellow]does not beat[/yellow]", None: "n/a"}[head["beats_control"]]
    console.print(f"\n[bold]best cell[/bold]: layer {head['best_layer']}, scale {head['best_scale']:g}")
    console.print(f"  {head['judge']}: steered {fmt_ci(head['effect'])} ({verdict}); random control {fmt_ci(head['control'])}; "
                  f"steered - control {fmt_ci(head['vs_control'])} ({beats} the control)")
    for name, e in head["other_judges"].items():
        console.print(f"  {name}: steered {fmt_ci(e['steered'])}; random control {fmt_ci(e['control'])}")
    if head.get("kl_neutral") is not None:
        console.print(f"  neutral text: KL {head['kl_neutral']:.3f} (control {head['control_kl_neutral']:.3f}), "
                      f"perplexity x{head['ppl_ratio_neutral']:.2f}")
    ex = head.get("example")
    if ex:
        console.print(f"  first prompt: [dim]{escape(ex['prompt'])}[/dim]", highlight=False)
        console.print(f"    unsteered: {escape(repr(ex['unsteered']))}", highlight=False)
        console.print(f"    steered:   {escape(repr(ex['steered']))}", highlight=False)
