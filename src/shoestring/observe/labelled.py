"""Labelled text sets for probes: the bundled ones (``sentiment``, ``tense``) or any CSV / JSONL file.

The bundled sets were written for shoestring (not copied from any data set): ``sentiment`` holds 210
short sentences on everyday topics, 105 positive (label 1) and 105 negative (label 0), most of them in
matched pairs; ``tense`` holds 130 sentences, 65 present (label 0) and 65 past (label 1), as minimal pairs.

>>> ds = load_labelled("sentiment")
>>> len(ds), sorted(set(ds.labels))
(210, [0, 1])
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ShoestringError

DATA = Path(__file__).parent / "data"
MIN_EXAMPLES = 10


@dataclass
class LabelledSet:
    """Texts with one label each.

    Attributes
    ----------
    texts
        The examples.
    labels
        Integer class ids (classification) or floats (regression), one per text.
    label_names
        Class id -> name, where the file gave names (``label_name`` column) or labels were strings.
    source
        Where the set came from (a bundled name or a path).
    """

    texts: list[str]
    labels: list
    label_names: dict = field(default_factory=dict)
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)


def bundled() -> list[str]:
    """Names of the labelled sets that ship with shoestring."""
    return sorted(p.stem for p in DATA.glob("*.jsonl"))


def check_labels(labels, task: str = "classification", what: str = "labels") -> None:
    """Raise :class:`ShoestringError` for sets a probe cannot learn from: too few examples, one class."""
    n = len(labels)
    if n < MIN_EXAMPLES:
        raise ShoestringError(f"only {n} labelled examples", f"give at least {MIN_EXAMPLES} (a probe needs a "
                              "training and a validation split)")
    if task == "classification":
        counts = Counter(labels)
        if len(counts) < 2:
            raise ShoestringError(f"{what} have one class: {next(iter(counts))!r} for all {n} examples",
                                  "a classification probe needs at least two classes; add examples of another class")
        if min(counts.values()) < 2:
            rare = [k for k, v in counts.items() if v < 2]
            raise ShoestringError(f"class {rare[0]!r} has a single example",
                                  "give every class at least 2 examples (one for training, one for validation)")
    elif len(set(float(y) for y in labels)) < 2:
        raise ShoestringError(f"{what} are constant ({labels[0]!r})", "regression needs labels that vary")


def _rows(path: Path) -> list[dict]:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        from ..data.tables import json_lines

        return [row for _, row in json_lines(path)]
    if path.suffix.lower() in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    raise ShoestringError(f"cannot read labelled set {path.name!r}",
                          "give a .jsonl or .csv file with text,label columns")


def load_labelled(name_or_path, text_col: str = "text", label_col: str = "label") -> LabelledSet:
    """Load a bundled set by name, or a CSV / JSONL file with ``text`` and ``label`` columns.

    Integer-like labels stay integers; other strings become class ids in sorted order (names kept in
    ``label_names``); an optional ``label_name`` column names the integer classes.

    Raises
    ------
    ShoestringError
        Missing file, missing columns, labels with one class, or fewer than 10 examples.
    """
    name = str(name_or_path)
    path = DATA / f"{name}.jsonl" if name in bundled() else Path(name).expanduser()
    if not path.is_file():
        raise ShoestringError(f"no labelled set {name!r}", f"give a CSV/JSONL path, or one of {bundled()}")
    rows = _rows(path)
    if not rows:
        raise ShoestringError(f"{path} holds no rows", "write one example per line with text and label")
    missing = [c for c in (text_col, label_col) if c not in rows[0]]
    if missing:
        raise ShoestringError(f"{path.name} has no column {missing[0]!r} (columns: {sorted(rows[0])})",
                              f"name the columns {text_col!r} and {label_col!r}, or pass text_col=/label_col=")
    texts = [str(r[text_col]) for r in rows]
    raw = [r[label_col] for r in rows]
    names: dict = {}
    try:
        labels = [int(str(v)) for v in raw]
        for r, y in zip(rows, labels):
            if r.get("label_name") not in (None, ""):
                names[y] = r["label_name"]
    except ValueError:
        try:
            labels = [float(v) for v in raw]
        except ValueError:
            classes = sorted(set(map(str, raw)))
            names = dict(enumerate(classes))
            labels = [classes.index(str(v)) for v in raw]
    task = "regression" if any(isinstance(y, float) for y in labels) else "classification"
    check_labels(labels, task)
    return LabelledSet(texts, labels, names, name)
