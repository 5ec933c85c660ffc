"""Linear probes over every layer: collect activations, fit, and report with honest baselines.

A probe is a linear map from one layer's activations to a label (Alain & Bengio, "Understanding
intermediate layers using linear classifier probes", https://arxiv.org/abs/1610.01644). High probe
accuracy alone says little: we report it with a bootstrap 95% CI over validation examples, a
shuffled-label baseline, and the *control task* of Hewitt & Liang, "Designing and Interpreting Probes
with Control Tasks" (https://arxiv.org/abs/1909.03368): each example's type (here its first word) gets
a random but consistent label; *selectivity* = accuracy - control accuracy.

Pure torch: L2 logistic regression (LBFGS; binary and multiclass) and closed-form ridge regression,
on features standardised with training statistics; the L2 strength is chosen by k-fold CV on the
training split (held-out log-loss / MSE; ties go to the stronger regulariser).

>>> import shoestring
>>> from shoestring.observe.labelled import load_labelled
>>> lm = shoestring.load()  # doctest: +SKIP
>>> ds = load_labelled("sentiment")
>>> feats = collect(lm, ds.texts)  # doctest: +SKIP
>>> report = probe_layers(feats, ds.labels, texts=ds.texts)  # doctest: +SKIP
>>> report.best_layer  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import json
import string
from dataclasses import asdict, dataclass, field

import torch

from ..errors import ShoestringError
from .labelled import check_labels

from .probe_fit import (  # noqa: F401  (re-exported: the probe API lives in one place)
    LOGISTIC_GRID,
    RIDGE_GRID,
    LogisticProbe,
    RidgeProbe,
    bootstrap_ci,
    choose_l2,
    kfold,
    make_probe,
    r2,
    split_indices,
)


# -- features -----------------------------------------------------------------------------------
def collect(lm, texts, hook: str = "blocks.*.hook_resid_post", position: str = "last", batch_size: int = 16) -> dict:
    """One activation vector per text at every matching hook point: ``{layer (or name): [n, d]}``.

    All layers come from one forward pass per batch. ``position="last"``: the last real token (the
    attention mask finds it, whatever the padding side); ``"mean"``: the mean over real tokens.
    Position ids follow the mask, so a left-padded text reads as it would alone.
    """
    if position not in ("last", "mean"):
        raise ShoestringError(f"unknown position {position!r}", "use position='last' or 'mean'")
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise ShoestringError("no texts to collect activations for", "give at least one text")
    takes_pos = "position_ids" in inspect.signature(lm.model.forward).parameters
    out: dict[str, list[torch.Tensor]] = {}
    specs = None
    for start in range(0, len(texts), batch_size):
        inputs = lm.tokenize(texts[start : start + batch_size], padding_side="left")
        mask = inputs["attention_mask"]
        if takes_pos:
            inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        _, acts = lm.run_with_cache(inputs, hook, stop_early=True)
        specs = acts.specs
        m = mask.to(torch.float32).cpu()
        for spec in specs:
            a = acts[spec.name].to(device="cpu", dtype=torch.float32)
            if position == "last":
                idx = (m * torch.arange(m.shape[1])).argmax(1)
                v = a[torch.arange(a.shape[0]), idx]
            else:
                v = (a * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
            out.setdefault(spec.name, []).append(v)
    by_layer = all(s.layer is not None for s in specs) and len({s.layer for s in specs}) == len(specs)
    return {(s.layer if by_layer else s.name): torch.cat(out[s.name]) for s in specs}


# -- control task -------------------------------------------------------------------------------
def first_word(text: str) -> str:
    """An example's type for the sentence-level control task: its first word, lower-cased."""
    words = str(text).split()
    return words[0].strip(string.punctuation).lower() if words else ""


def control_labels(keys, labels, seed: int = 0) -> list:
    """Hewitt & Liang's control task: each distinct key gets the label of a random example (so the
    control labels follow the real label distribution), the same for every example with that key."""
    g = torch.Generator().manual_seed(seed + 7919)
    table = {}
    for key in keys:
        if key not in table:
            table[key] = labels[int(torch.randint(len(labels), (1,), generator=g))]
    return [table[key] for key in keys]


# -- the per-layer sweep ------------------------------------------------------------------------
@dataclass
class ProbeReport:
    """Per layer: validation score with a bootstrap CI, the control-task and shuffled-label scores.

    ``score`` is accuracy (classification) or R^2 (regression) on the validation split;
    ``selectivity`` = score - control (Hewitt & Liang 2019). ``chance`` is the majority-class share
    of the validation split (0 for regression).
    """

    task: str
    layers: list
    score: list[float]
    ci_low: list[float]
    ci_high: list[float]
    l2: list[float]
    control: list[float] | None
    shuffled: list[float] | None
    n_train: int
    n_val: int
    chance: float
    seed: int = 0
    n_boot: int = 1000
    notes: list[str] = field(default_factory=list)
    val_idx: list[int] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "classification" else "r2"

    @property
    def selectivity(self) -> list[float] | None:
        return None if self.control is None else [s - c for s, c in zip(self.score, self.control)]

    @property
    def best_layer(self):
        """The layer (or hook name) with the highest validation score; the earliest on ties."""
        return self.layers[max(range(len(self.layers)), key=lambda i: (self.score[i], -i))]

    def rows(self) -> list[dict]:
        out = []
        for i, layer in enumerate(self.layers):
            row = {"layer": layer, self.metric: round(self.score[i], 4), "ci_low": round(self.ci_low[i], 4),
                   "ci_high": round(self.ci_high[i], 4), "l2": self.l2[i]}
            if self.control is not None:
                row["control"] = round(self.control[i], 4)
                row["selectivity"] = round(self.selectivity[i], 4)
            if self.shuffled is not None:
                row["shuffled"] = round(self.shuffled[i], 4)
            out.append(row)
        return out

    def to_json(self, path=None) -> str:
        data = asdict(self) | {"metric": self.metric, "best_layer": self.best_layer, "rows": self.rows()}
        text = json.dumps(data, indent=1)
        if path is not None:
            from pathlib import Path

            Path(path).write_text(text)
        return text


def probe_layers(features_by_layer: dict, labels, task: str = "classification", val_fraction: float = 0.3,
                 seed: int = 0, n_boot: int = 1000, control: bool = True, shuffled: bool = True, *,
                 texts=None, control_keys=None, l2_grid=None, k_folds: int = 5) -> ProbeReport:
    """Fit and evaluate one linear probe per layer on a train/validation split by example.

    Parameters
    ----------
    features_by_layer
        ``{layer: [n, d]}``, e.g. from :func:`collect`.
    labels
        ``n`` class ids (``task="classification"``) or numbers (``"regression"``).
    control, texts, control_keys
        The control task needs each example's type: ``control_keys`` or, from ``texts``, the first word.
        Without either the control task is skipped (a note says so).
    shuffled
        Also train on permuted training labels and evaluate on the true validation labels.
    l2_grid, k_folds
        The regularisation grid searched by k-fold CV on the training split (per layer).
    """
    if task not in ("classification", "regression"):
        raise ShoestringError(f"unknown task {task!r}", "use task='classification' or 'regression'")
    if not features_by_layer:
        raise ShoestringError("no features to probe", "pass {layer: [n, d] tensor}, e.g. from collect()")
    labels = list(labels.tolist() if torch.is_tensor(labels) else labels)
    if task == "classification":
        labels = [int(y) for y in labels]
    check_labels(labels, task)
    n = len(labels)
    for key, X in features_by_layer.items():
        if X.ndim != 2 or X.shape[0] != n:
            raise ShoestringError(f"features for {key!r} have shape {tuple(X.shape)}, labels have {n} examples",
                                  "give one [n, d] feature matrix per layer, rows in label order")
    clf = task == "classification"
    classes = sorted(set(labels)) if clf else None
    y = torch.tensor([classes.index(v) for v in labels]) if clf else torch.tensor(labels, dtype=torch.float64)
    n_classes = len(classes) if clf else None
    tr, va = split_indices(labels, val_fraction, seed, stratify=clf)
    k = max(2, min(k_folds, min(int((y[tr] == c).sum()) for c in range(n_classes)) if clf else k_folds))
    notes = []

    y_ctrl = None
    if control:
        keys = control_keys
        if keys is None and texts is not None:
            keys = [first_word(t) for t in texts]
        if keys is None:
            notes.append("control task skipped: pass texts= or control_keys=")
        elif len(keys) != n:
            raise ShoestringError(f"{len(keys)} control keys for {n} examples", "give one key (or text) per example")
        else:
            c = control_labels(list(keys), y.tolist(), seed)
            y_ctrl = torch.tensor(c, dtype=y.dtype)
            if clf and len(set(y_ctrl[tr].tolist())) < 2:
                notes.append("control task skipped: its training labels have one class (too few distinct keys)")
                y_ctrl = None
            else:
                notes.append(f"control task: {len(set(keys))} distinct keys for {n} examples")
    perm = torch.randperm(len(tr), generator=torch.Generator().manual_seed(seed + 1))
    y_shuf = y[tr][perm]

    chance = float(max((y[va] == c).double().mean() for c in range(n_classes))) if clf else 0.0
    score, lo, hi, l2s, ctrl, shuf = [], [], [], [], [], []
    for key, X in features_by_layer.items():
        X = X.to(torch.float32).cpu()
        Xtr, Xva = X[tr], X[va]
        lam, _ = choose_l2(Xtr, y[tr], task, l2_grid, k, seed, n_classes)
        p = make_probe(task, lam).fit(Xtr, y[tr], n_classes)
        pred = p.predict(Xva)
        score.append(p.score(Xva, y[va]))
        a, b = bootstrap_ci(y[va], pred, task, n_boot, seed)
        lo.append(a)
        hi.append(b)
        l2s.append(lam)
        # same hyperparameters for the baselines, as Hewitt & Liang compare one probe configuration
        if y_ctrl is not None:
            ctrl.append(make_probe(task, lam).fit(Xtr, y_ctrl[tr], n_classes).score(Xva, y_ctrl[va]))
        if shuffled:
            shuf.append(make_probe(task, lam).fit(Xtr, y_shuf, n_classes).score(Xva, y[va]))
    return ProbeReport(task, list(features_by_layer), score, lo, hi, l2s, ctrl if y_ctrl is not None else None,
                       shuf if shuffled else None, len(tr), len(va), chance, seed, n_boot, notes, va)


def probe_texts(lm, texts, labels, hook: str = "blocks.*.hook_resid_post", position: str = "last",
                batch_size: int = 16, **kwargs) -> ProbeReport:
    """:func:`collect` then :func:`probe_layers` (the control task keyed by each text's first word)."""
    return probe_layers(collect(lm, texts, hook, position, batch_size), labels, texts=texts, **kwargs)
