"""Report pieces for activation patching: layers x positions (residual) or layers x heads heat maps."""

from __future__ import annotations

from .page import Page, Section
from .style import heatmap


def patch_heatmap(result, title: str | None = None):
    """The normalised patching grid of a :class:`~shoestring.observe.PatchResult` (1 = the clean behaviour
    restored, 0 = nothing); columns are the corrupted prompt's tokens or the heads."""
    heads = result.hook.startswith("attn.hook_z")
    grid = result.grid.float()
    return heatmap(grid, result.columns, list(range(grid.shape[0])),
                   title or f"patching {result.hook} ({result.metric})",
                   x_title="head" if heads else "position: corrupted token", colorbar="restored", diverging=True,
                   hover="layer %{y}, %{x}: %{z:.3f}", height=max(320, 60 + 16 * grid.shape[0]))


def add_patch(page: Page, result, clean: str | None = None, corrupt: str | None = None, answer: str | None = None,
              wrong: str | None = None, k: int = 5, title: str = "Activation patching") -> Section:
    """A section with the patching heat map and its strongest cells."""
    sec = page.section(title, "Each cell runs the corrupted prompt with one clean activation put back; the score "
                              "is (patched - corrupt) / (clean - corrupt) of the metric (Heimersheim & Nanda 2024).")
    facts = [f"clean {clean!r}" if clean else "", f"corrupt {corrupt!r}" if corrupt else "",
             f"answer {answer!r}" if answer else "", f"wrong {wrong!r}" if wrong else ""]
    sec.text("; ".join(f for f in facts if f) + f". Metric {result.metric}: clean {result.clean:.3f}, "
             f"corrupt {result.corrupt:.3f}.")
    sec.figure(patch_heatmap(result))
    sec.table(["layer", "position" if not result.hook.startswith("attn") else "head", "restored"],
              [[r["layer"], r["column"], f"{r['score']:.3f}"] for r in result.top(k)], f"The {k} strongest cells.")
    return sec
