"""The steering report: effect per layer x scale (heat map), dose-response with 95% bands against the random
control, side effects, and before/after samples side by side."""

from __future__ import annotations

from ..steer.stats import fmt_ci
from .page import Page, esc
from .style import figure, heatmap


def effect_heatmap(result: dict, judge: str):
    layers = sorted({c["layer"] for c in result["cells"]})
    scales = sorted({c["scale"] for c in result["cells"]})
    grid = [[next(c[f"steered_{judge}"]["mean"] for c in result["cells"] if c["layer"] == layer and c["scale"] == s)
             for s in scales] for layer in layers]
    return heatmap(grid, [f"{s:g}" for s in scales], layers, f"{judge}: steered - unsteered (mean over prompts)",
                   x_title="scale", colorbar="effect", diverging=True, hover="layer %{y}, scale %{x}: %{z:+.3f}")


def dose_response(result: dict, judge: str, layer: int):
    cells = sorted((c for c in result["cells"] if c["layer"] == layer), key=lambda c: c["scale"])
    x = [c["scale"] for c in cells]
    fig = figure(height=360, title=f"{judge} at layer {layer}: dose-response (95% CI)")
    for kind, name in (("steered", "steered"), ("control", "random direction, equal norm")):
        rows = [c[f"{kind}_{judge}"] for c in cells]
        fig.add_scatter(x=x + x[::-1], y=[r["ci_high"] for r in rows] + [r["ci_low"] for r in rows][::-1],
                        fill="toself", mode="lines", line={"width": 0}, opacity=0.2, name=f"{name} CI", hoverinfo="skip")
        fig.add_scatter(x=x, y=[r["mean"] for r in rows], mode="lines+markers", name=name)
    fig.update_xaxes(title_text="scale")
    fig.update_yaxes(title_text=f"change in {judge}")
    return fig


def steer_page(result: dict, samples: list[dict], title: str = "Steering experiment", meta: dict | None = None,
               n_samples: int = 8) -> Page:
    page = Page(title, meta=meta or {})
    judges = [j["name"] for j in result["judges"]]
    d = result["direction"]
    sec = page.section("Direction and design",
                       "Each cell generates from every prompt three times: unsteered, steered, and steered with a random "
                       "direction of the same norm (the control). Effects are paired differences (steered - unsteered) "
                       "averaged over prompts, with percentile-bootstrap 95% intervals.")
    sec.text(f"Method {d['method']} at {d['hook']}, layers {d['layers']}; {result['prompts']} prompts, seeds "
             f"{result['seeds']}; judges: {', '.join(judges)}.")
    rows = []
    for c in result["cells"]:
        for j in judges:
            s, k = c[f"steered_{j}"], c[f"control_{j}"]
            rows.append([c["layer"], f"{c['scale']:g}", j, fmt_ci(s), fmt_ci(k), fmt_ci(c[f"{j}_vs_control"]),
                         _pct(s["wrong_way"]), {True: "yes", False: "no"}.get(c.get(f"{j}_beats_control"), "n/a"),
                         f"{c.get('steered_kl_neutral', float('nan')):.4f}", f"{c.get('steered_ppl_ratio_neutral', float('nan')):.3f}"])
    sec = page.section("Effects", "Steered - control: the paired difference (same prompt and seed); the steering "
                                  "beats the control when its 95% interval lies on the intended side of zero. "
                                  "Wrong way: the share of prompts whose score moved against the intended sign "
                                  "(n/a for a judge with sign 0, measured for its side effect). "
                                  "Side effects on neutral text: KL to the unsteered next-token distribution and the "
                                  "perplexity ratio (steered / unsteered).")
    sec.table(["layer", "scale", "judge", "steered", "random control", "steered - control", "wrong way", "beats control", "KL neutral",
               "ppl ratio"], rows)
    for j in judges:
        sec = page.section(f"Judge: {j}")
        sec.figure(effect_heatmap(result, j))
        for layer in sorted({c["layer"] for c in result["cells"]}):
            sec.figure(dose_response(result, j, layer))
    page.section("Before / after", "The first prompts at the cell whose effect on the first judge is surest (the largest lower bound of its interval).").html(
        _samples_html(result, samples, judges, n_samples))
    return page


def _samples_html(result, samples, judges, n) -> str:
    from ..steer.run import best_cell

    first = judges[0]
    best = best_cell(result)
    seed = result["seeds"][0]
    pick = {}
    for s in samples:
        if s["seed"] != seed:
            continue
        if s["kind"] == "unsteered" or (s["layer"] == best["layer"] and s["scale"] == best["scale"]):
            pick.setdefault(s["prompt"], {})[s["kind"]] = s
    rows = []
    for prompt, kinds in list(pick.items())[:n]:
        cells = "".join(f"<td>{esc(kinds.get(k, {}).get('output', ''))}<br><small>{esc(first)} "
                        f"{kinds.get(k, {}).get('score_' + first, float('nan')):+.3f}</small></td>"
                        for k in ("unsteered", "steered", "control"))
        rows.append(f"<tr><td><b>{esc(prompt)}</b></td>{cells}</tr>")
    head = (f"<p>Layer {best['layer']}, scale {best['scale']:g}.</p><table class='samples'><tr><th>prompt</th>"
            "<th>unsteered</th><th>steered</th><th>random control</th></tr>")
    return head + "".join(rows) + "</table>"


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.0%}"
