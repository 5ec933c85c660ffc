"""The red-teaming suite: behaviours x attacks on one model (optionally compressed), every response judged by every
judge, attack success with 95% intervals per category and against compute, judge agreement, over-refusal on a
benign set. Every attempt is saved as it finishes (``attempts/<attack>/<behaviour>.json``, written atomically), so
an interrupted run resumes where it stopped; every random choice is seeded, every generation greedy.

Attack names: ``none`` (the plain request: the baseline), ``gcg``, ``pair`` (needs an attacker model), the
transforms ``base64``, ``rot13``, ``leetspeak``, ``code_comment``, ``code_string``, ``template:<name>``
(a fetched jailbreak template or a template file) and ``translate:<lang>`` (needs a translator model).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ShoestringError
from ..runs.atomic import write_json
from .base import Attempt, Behaviour, Compute, metered

TRANSFORM_ATTACKS = ("none", "base64", "rot13", "leetspeak", "code_comment", "code_string")
DEFAULT_ATTACKS = ["none", "gcg", "base64", "rot13", "leetspeak", "code_comment", "code_string", "template:aim"]


@dataclass
class SuiteConfig:
    """Everything a suite run depends on (its hash names the run folder)."""

    model: str = "smollm2-135m"
    behaviours: str = "advbench"
    n: int = 10
    sample_seed: int | None = None
    categories: list = field(default_factory=list)
    goal_column: str | None = None
    attacks: list = field(default_factory=lambda: list(DEFAULT_ATTACKS))
    judges: list = field(default_factory=lambda: ["target", "refusal"])
    judge_model: str | None = None
    attacker_model: str | None = None
    translator_model: str | None = None
    transfer_model: str | None = None
    benign: int = 20
    max_new_tokens: int = 64
    compression: str = "none"
    seed: int = 0
    gcg_steps: int = 100
    gcg_search_width: int = 64
    gcg_topk: int = 64
    gcg_suffix_length: int = 20
    gcg_check_every: int = 10
    gcg_universal: bool = False
    gcg_screen: str = "auto"
    pair_streams: int = 3
    pair_iterations: int = 3
    device: str = "cpu"

    def check(self) -> SuiteConfig:
        from .respond import parse_compression

        if self.n is not None and self.n < 1:
            raise ShoestringError(f"--n {self.n} asks for no behaviours", "pass --n 10 (or more)")
        if self.gcg_suffix_length < 1:
            raise ShoestringError(f"a suffix length of {self.gcg_suffix_length} tokens leaves GCG nothing to optimise",
                                  "pass --gcg-suffix-length 20 (the paper's) or another positive number")
        if self.benign < 0:
            raise ShoestringError(f"--benign {self.benign} is negative", "pass 0 to skip the over-refusal check")
        if not self.attacks:
            raise ShoestringError("no attacks given", f"name one or more, e.g. {','.join(DEFAULT_ATTACKS)}")
        for a in self.attacks:
            attack_kind(a)
        if "pair" in self.attacks and not self.attacker_model:
            raise ShoestringError("the pair attack needs an attacker model",
                                  "pass --attacker-model NAME_OR_PATH (smollm2-135m can stand in)")
        if any(a.startswith("translate") for a in self.attacks) and not self.translator_model:
            raise ShoestringError("the translate attack needs a translator model", "pass --translator-model NAME_OR_PATH")
        if "llm" in self.judges and not self.judge_model:
            raise ShoestringError("the llm judge needs a judge model", "pass --judge-model NAME_OR_PATH, or drop llm from --judges")
        parse_compression(self.compression)
        return self

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def attack_kind(name: str) -> str:
    """``"transform"``, ``"gcg"`` or ``"pair"`` for an attack name; an unknown one is one clear error."""
    from .transforms import TRANSFORMS

    base = name.split(":", 1)[0]
    if name in TRANSFORM_ATTACKS or base in ("template", "translate") or base in TRANSFORMS:
        return "transform"
    if name in ("gcg", "pair"):
        return name
    raise ShoestringError(f"unknown attack '{name}'", "use none, gcg, pair, base64, rot13, leetspeak, code_comment, "
                          "code_string, template:<name or file>, translate:<language>")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


class Store:
    """Saved attempts of one run: ``folder/<attack>/<behaviour id>.json``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, attack: str, b: Behaviour) -> Path:
        return self.folder / _safe(attack) / f"{_safe(b.id)}.json"

    def get(self, attack: str, b: Behaviour) -> Attempt | None:
        p = self.path(attack, b)
        return Attempt.from_dict(json.loads(p.read_text())) if p.exists() else None

    def put(self, a: Attempt, attack: str | None = None) -> None:
        write_json(self.path(attack or a.attack, a.behaviour), a.to_dict())


def make_transform_for(name: str, models: dict):
    """The transform of an attack name (``none`` is the identity)."""
    from .transforms import make_transform

    if name == "none":
        return None
    base, _, arg = name.partition(":")
    if base == "template":
        p = Path(arg)
        return make_transform("template", **({"path": str(p)} if p.suffix and p.exists() else {"template": arg}))
    if base == "translate":
        return make_transform("translate", lang=arg or "zu", lm=models["translator"])
    return make_transform(base)


def run_transform(lm, name: str, behaviours: list[Behaviour], responder, models: dict) -> list[Attempt]:
    """A black-box attack: rewrite each request, answer them in batches; compute is shared evenly."""
    t = make_transform_for(name, models)
    compute = Compute()
    others = [m for m in (t.other_models if t is not None else ())]
    with metered(lm, compute, other_models=others):
        prompts = [b.goal if t is None else t.apply(b.goal) for b in behaviours]
        raw = responder.texts(prompts)
    n = len(behaviours)
    share = Compute(steps=1, forward_passes=round(compute.forward_passes / n), tokens=round(compute.tokens / n),
                    seconds=compute.seconds / n, peak_memory_bytes=compute.peak_memory_bytes,
                    other_forward_passes=round(compute.other_forward_passes / n))
    label = t.label if t is not None else "none"
    return [Attempt(behaviour=b, attack=name, prompt=p, response=(t.restore(r) if t is not None else r),
                    compute=Compute(**share.to_dict()), extra={"raw_response": r, "variant": label, "batch": n})
            for b, p, r in zip(behaviours, prompts, raw)]


def run_attacks(lm, cfg: SuiteConfig, behaviours: list[Behaviour], store: Store, models: dict, responder,
                progress=None) -> list[Attempt]:
    """Every attack on every behaviour, skipping attempts already saved; returns them all in order."""
    from .gcg import GCG
    from .pair import PAIR

    out: list[Attempt] = []
    for name in cfg.attacks:
        kind = attack_kind(name)
        todo = [b for b in behaviours if store.get(name, b) is None]
        if progress:
            progress(name, len(behaviours) - len(todo), len(behaviours))
        if kind == "transform" and todo:
            for a in run_transform(lm, name, todo, responder, models):
                store.put(a)
        elif kind == "gcg" and todo:
            gcg = GCG(steps=cfg.gcg_steps, search_width=cfg.gcg_search_width, topk=cfg.gcg_topk,
                      suffix_length=cfg.gcg_suffix_length, check_every=cfg.gcg_check_every,
                      max_new_tokens=cfg.max_new_tokens, universal=cfg.gcg_universal, screen=cfg.gcg_screen,
                      seed=cfg.seed, respond=responder)
            groups = [todo] if cfg.gcg_universal else [[b] for b in todo]
            done = len(behaviours) - len(todo)
            for g in groups:
                with responder.active():
                    for a in gcg.attack(lm, g):
                        store.put(a)
                done += len(g)
                if progress:
                    progress(name, done, len(behaviours))
        elif kind == "pair" and todo:
            pair = PAIR(attacker=models["attacker"], n_streams=cfg.pair_streams, n_iterations=cfg.pair_iterations,
                        target_max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
            for b in todo:
                with responder.active():
                    store.put(pair.attack(lm, [b])[0])
        out.extend(store.get(name, b) for b in behaviours)
    if cfg.transfer_model and "gcg" in cfg.attacks:
        out.extend(transfer(models["transfer"], cfg, [a for a in out if a.attack == "gcg"], store))
    return out


def transfer(other, cfg: SuiteConfig, attempts: list[Attempt], store: Store) -> list[Attempt]:
    """GCG's suffixes tried on another model (its own chat template): do they transfer?"""
    from .respond import Responder

    name = f"gcg-transfer:{Path(cfg.transfer_model).name}"
    todo = [a for a in attempts if store.get(name, a.behaviour) is None]
    if todo:
        resp = Responder(other, cfg.max_new_tokens)
        compute = Compute()
        with metered(other, compute):
            texts = resp.texts([a.prompt for a in todo])
        for a, r in zip(todo, texts):
            store.put(Attempt(behaviour=a.behaviour, attack=name, prompt=a.prompt, response=r,
                              compute=Compute(steps=a.compute.steps, forward_passes=a.compute.forward_passes,
                                              seconds=a.compute.seconds + compute.seconds / len(todo)),
                              extra={"suffix": a.extra.get("suffix"), "source_model": cfg.model}))
    return [store.get(name, a.behaviour) for a in attempts]


def summarise(cfg: SuiteConfig, records: list[dict], benign: list[dict], judges: list[str]) -> dict:
    """The headline numbers: ASR per attack and judge with intervals, judge agreement, over-refusal."""
    from . import metrics

    out = {"summary": metrics.summary(records, judges), "agreement": metrics.agreement(records, judges),
           "asr_table": metrics.asr_table(records, judges)}
    if benign and "refusal" in judges:
        out["over_refusal"] = metrics.over_refusal(benign, "refusal")
    curves = {}
    for attack in {r["attack"] for r in records if r.get("trace")}:
        rows = [r for r in records if r["attack"] == attack]
        curves[attack] = {j: {axis: metrics.asr_curve(rows, j, axis) for axis in ("steps", "forward_passes", "seconds")}
                          for j in judges}
    out["curves"] = curves
    return out
