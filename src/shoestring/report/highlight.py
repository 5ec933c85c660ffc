"""Token-level highlighting: a value per token becomes a coloured span with a hover title.

Positive values are red, negative blue, with opacity proportional to ``|value| / vmax``; every token's
text and title is HTML-escaped, whitespace is kept (``white-space: pre-wrap``) and a newline shows as ``⏎``.

>>> html = highlight_tokens(["The", " cat", " <sat>"], [0.1, 2.0, -1.0])
>>> html.count('class="tok"'), "&lt;sat&gt;" in html
(3, True)
"""

from __future__ import annotations

import math

from .page import esc

POSITIVE = (214, 39, 40)  # red
NEGATIVE = (31, 119, 180)  # blue


def colour(value: float, vmax: float) -> str:
    """The background of one token: transparent at 0, full colour at ``|value| >= vmax``."""
    if value is None or not math.isfinite(value) or vmax <= 0:
        return "transparent"
    r, g, b = POSITIVE if value >= 0 else NEGATIVE
    alpha = min(1.0, abs(value) / vmax) * 0.85
    return f"rgba({r}, {g}, {b}, {alpha:.3f})"


def _show(token: str, newlines: bool) -> str:
    return esc(token.replace("\r", "").replace("\n", "⏎\n" if newlines else "⏎"))


def highlight_tokens(tokens, values, *, vmax: float | None = None, label: str | None = None,
                     fmt: str = "{:+.3f}", mark: int | None = None, newlines: bool = True) -> str:
    """One line of coloured token spans.

    Parameters
    ----------
    tokens
        Token strings, as the tokenizer decodes them one by one.
    values
        One number per token (a neuron's activation, an attribution, ...).
    vmax
        The value that gets full colour; default: the largest ``|value|`` of this line. Share one
        ``vmax`` across lines to compare them.
    label
        A short label before the tokens.
    fmt
        How a value prints in its token's hover title.
    mark
        Index of a token to underline (e.g. the top-activating one).
    newlines
        Break the line where a token holds a newline (always shown as ``⏎``); ``False`` keeps one line.

    Returns
    -------
    str
        ``<div class="tokens">`` with one ``<span class="tok">`` per token.
    """
    values = [float(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]
    tokens = [str(t) for t in tokens]
    if len(tokens) != len(values):
        from ..errors import ShoestringError

        raise ShoestringError(f"{len(tokens)} tokens but {len(values)} values", "give one value per token")
    if vmax is None:
        vmax = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    spans = []
    for i, (tok, v) in enumerate(zip(tokens, values)):
        style = f"background-color: {colour(v, vmax)}"
        if i == mark:
            style += "; text-decoration: underline; font-weight: bold"
        title = f"{tok!r}: {fmt.format(v)}" if math.isfinite(v) else f"{tok!r}: n/a"
        spans.append(f'<span class="tok" style="{style}" title="{esc(title)}">{_show(tok, newlines)}</span>')
    head = f'<span class="tok-label">{esc(label)}</span>' if label else ""
    return f'<div class="tokens">{head}{"".join(spans)}</div>'


def legend(vmax: float, what: str = "activation") -> str:
    """A one-line key: what full red and full blue stand for."""
    swatch = '<span class="swatch" style="background-color: {}">&nbsp;&nbsp;&nbsp;</span>'
    return (f'<p class="caption">Colour: {esc(what)}; {swatch.format(colour(vmax, vmax))} = {vmax:+.3g}, '
            f'{swatch.format(colour(-vmax, vmax))} = {-vmax:+.3g}, none = 0. Hover a token for its value.</p>')
