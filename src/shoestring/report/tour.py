"""A short observation tour of one model, into one report page.

Logit lens on a factual prompt, the head census with its strongest induction heads (and the best one's
pattern), a sentiment probe curve with selectivity, the PCA map of the best probe layer, residual patching
(Eiffel Tower vs Colosseum), and the MLP neuron of that layer that best separates the classes, highlighted
token by token. About a minute on SmolLM2-135M on two CPU cores.

>>> import shoestring
>>> lm = shoestring.load()                      # doctest: +SKIP
>>> result = Tour().run(lm)                     # doctest: +SKIP
>>> result.page.save("tour.html")               # doctest: +SKIP
>>> result.summary["induction_heads"][0]        # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch

from ..errors import ShoestringError
from .geometry import add_geometry
from .heads import add_heads, add_pattern
from .lens import add_lens
from .neurons import add_neuron
from .page import Page
from .patching import add_patch
from .probes import add_probe


@dataclass
class TourResult:
    page: Page
    summary: dict
    seconds: dict = field(default_factory=dict)


@dataclass
class Tour:
    """What the tour looks at; every field is a plain setting (the run directory's config)."""

    prompt: str = "The capital of France is"
    target: str = " Paris"
    clean: str = "The Eiffel Tower is in the city of"
    corrupt: str = "The Colosseum is in the city of"
    answer: str = " Paris"
    wrong: str = " Rome"
    repeat_text: str = "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog."
    data: str = "sentiment"
    probe_points: int = 10  # layers probed, evenly spaced (the last layer always among them)
    census_seq_len: int = 32
    census_batch: int = 2
    n_boot: int = 200
    highlight: int = 3  # validation examples of each class highlighted for the neuron
    seed: int = 0

    def config(self) -> dict:
        return asdict(self)

    def layers_to_probe(self, n_layers: int) -> list[int]:
        k = max(1, min(self.probe_points, n_layers))
        return sorted({round(i * (n_layers - 1) / max(k - 1, 1)) for i in range(k)})

    def run(self, lm, tuned=None, progress=None) -> TourResult:
        """Run every step on ``lm`` (``tuned``: an optional TunedLens shown beside the logit lens);
        ``progress(step)`` is called before each step."""
        from ..observe import (collect, direct_logit_effect, geometry_summary, head_census, load_labelled,
                               logit_lens, neuron_direction, patch_residual, probe_layers)
        from ..observe.heads import attention_pattern
        from ..observe.neurons import token_activations

        say = progress or (lambda step: None)
        page = Page(f"Observation tour: {lm.name}", subtitle="logit lens, attention heads, a probe, geometry, "
                    "activation patching and one neuron", meta={"model": lm.name, "layers": lm.n_layers})
        seconds, summary = {}, {"model": lm.name, "config": self.config()}
        clock = time.perf_counter()

        def lap(step: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            seconds[step] = round(now - clock, 2)
            clock = now

        say("logit lens")
        lens = logit_lens(lm, self.prompt, target=self.target)
        lens_t = logit_lens(lm, self.prompt, target=self.target, lens=tuned) if tuned is not None else None
        add_lens(page, lens, lens_t, prompt=self.prompt, target=self.target)
        rows = lens.rows(1)
        first = next((r["layer"] for r in rows if r["target_rank"] == 0), None)
        summary["lens"] = {"prompt": self.prompt, "target": self.target, "first_layer_top1": first,
                           "rows": [{k: r[k] for k in ("layer", "top_tokens", "target_rank", "target_prob", "kl_to_final")}
                                    for r in rows]}
        lap("lens")

        say("head census")
        census = head_census(lm, seq_len=self.census_seq_len, batch=self.census_batch, seed=self.seed)
        add_heads(page, census)
        summary["induction_heads"] = census.top("induction", 5)
        best = summary["induction_heads"][0]
        if lm.tokenizer is not None:
            tokens, pattern = attention_pattern(lm, self.repeat_text, best["layer"], best["head"])
            add_pattern(page, tokens, pattern, best["layer"], best["head"], self.repeat_text,
                        title=f"The strongest induction head, L{best['layer']}H{best['head']}, on repeated text")
        lap("heads")

        say("probe")
        ds = load_labelled(self.data)
        layers = self.layers_to_probe(lm.n_layers)
        resid = [f"blocks.{L}.hook_resid_post" for L in layers]
        mlp = [f"blocks.{L}.mlp.hook_post" for L in layers if f"blocks.{L}.mlp.hook_post" in lm.hook_points]
        feats = collect(lm, ds.texts, hook=resid + mlp)
        by_layer = {L: feats[n] for L, n in zip(layers, resid)}
        report = probe_layers(by_layer, ds.labels, texts=ds.texts, n_boot=self.n_boot, seed=self.seed)
        add_probe(page, report, self.data)
        summary["probe"] = {"data": self.data, "metric": report.metric, "best_layer": report.best_layer,
                            "rows": report.rows()}
        lap("probe")

        say("geometry")
        L = report.best_layer
        geo = geometry_summary(by_layer[L], ds.labels, k=2, seed=self.seed)
        add_geometry(page, geo, L, self.data, ds.label_names, ds.texts, title=f"Geometry of layer {L}")
        summary["geometry"] = {"layer": L, **{k: v for k, v in geo.items() if k not in ("map", "clusters")}}
        lap("geometry")

        say("activation patching")
        try:
            grid = patch_residual(lm, self.clean, self.corrupt, self.answer, self.wrong)
        except ShoestringError as err:  # e.g. the two prompts tokenise to different lengths for this tokenizer
            page.section("Activation patching").text(f"Skipped: {err}")
            summary["patching"] = {"skipped": str(err)}
        else:
            add_patch(page, grid, self.clean, self.corrupt, self.answer, self.wrong)
            summary["patching"] = {"clean": grid.clean, "corrupt": grid.corrupt, "top": grid.top(5)}
        lap("patching")

        say("neuron")
        name = f"blocks.{L}.mlp.hook_post"
        if name in feats:
            summary["neuron"] = self._neuron(page, lm, L, feats[name], ds, report.val_idx,
                                             direct_logit_effect, neuron_direction, token_activations)
        lap("neuron")
        summary["seconds"] = seconds
        sec = page.section("How long each step took")
        sec.table(["step", "seconds"], [[k, f"{v:.1f}"] for k, v in seconds.items()])
        return TourResult(page, summary, seconds)

    def _neuron(self, page, lm, layer, acts, ds, val_idx, direct_logit_effect, neuron_direction, token_activations):
        """The neuron of ``layer`` whose last-token activation best separates two classes (largest
        standardised mean difference), its logit effect, and its activations on a few examples."""
        y = torch.as_tensor(ds.labels)
        classes = y.unique()
        if len(classes) != 2:
            return None
        a, b = acts[y == classes[1]], acts[y == classes[0]]
        pooled = ((a.var(0) + b.var(0)) / 2).sqrt().clamp_min(1e-6)
        d = (a.mean(0) - b.mean(0)) / pooled  # [d_mlp]
        n = int(d.abs().argmax())
        effect = direct_logit_effect(lm, neuron_direction(lm, layer, n), k=8)
        names = ds.label_names or {}
        lines = []
        for c in (classes[1], classes[0]):
            picked = [i for i in val_idx if int(y[i]) == int(c)][: self.highlight]
            for i in picked:
                toks, vals = token_activations(lm, ds.texts[i], f"blocks.{layer}.mlp.hook_post", unit=n)
                lines.append((str(names.get(int(c), int(c))), toks, vals))
        add_neuron(page, f"L{layer}N{n}", effect, texts=lines,
                   title=f"Neuron L{layer}N{n}: the best single-neuron separator of '{self.data}'",
                   intro=f"Of layer {layer}'s MLP neurons, the one whose last-token activation differs most between "
                         f"the classes (standardised difference {float(d[n]):+.2f}). Validation sentences, "
                         "highlighted by its activation at each token.")
        return {"layer": layer, "neuron": n, "separation": round(float(d[n]), 4), "promotes": effect["promotes"][:5],
                "suppresses": effect["suppresses"][:5]}
