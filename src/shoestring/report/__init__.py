"""HTML reports: self-contained offline pages (plotly.js inlined once, no network) of observe results.

>>> from shoestring.report import Page, add_lens
>>> page = Page("logit lens", meta={"model": "smollm2-135m"})                       # doctest: +SKIP
>>> add_lens(page, logit_lens(lm, "The capital of France is", target=" Paris"))      # doctest: +SKIP
>>> page.save("runs/lens/report.html")                                               # doctest: +SKIP

One module per concept: :mod:`.page` (the page), :mod:`.highlight` (token spans), and a figure module per
observe result (:mod:`.lens`, :mod:`.heads`, :mod:`.probes`, :mod:`.geometry`, :mod:`.patching`,
:mod:`.attribution`, :mod:`.neurons`, :mod:`.sae` the SAE feature browser); :mod:`.tour` runs a short tour of all of them into one page.
"""

from .attribution import add_dla, dla_figures
from .geometry import add_geometry, pca_figure
from .heads import add_heads, add_pattern, head_heatmaps, pattern_heatmap
from .highlight import highlight_tokens
from .lens import add_lens, lens_curves, lens_heatmap, lens_table
from .neurons import add_neuron, contexts_html, histogram_figure
from .page import Page, Section, esc, table_html
from .patching import add_patch, patch_heatmap
from .probes import add_probe, probe_figure
from .sae import feature_browser

__all__ = ["Page", "Section", "add_dla", "add_geometry", "add_heads", "add_lens", "add_neuron", "add_pattern",
           "add_patch", "add_probe", "contexts_html", "dla_figures", "esc", "feature_browser", "head_heatmaps", "highlight_tokens",
           "histogram_figure", "lens_curves", "lens_heatmap", "lens_table", "pattern_heatmap", "patch_heatmap",
           "pca_figure", "probe_figure", "table_html"]
