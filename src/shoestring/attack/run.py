"""One suite run end to end: load the models, run the attacks (resumable), judge, summarise, write the run folder
(``result.json`` in ``artifacts/``, ``report.html``, headline ``metrics.json``). Also the grid cell task of
``shoestring attack grid`` (models x compression settings, each cell a suite run made by the sweep executors)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import ShoestringError
from .suite import Store, SuiteConfig, run_attacks, summarise

CELL_TASK = "shoestring.attack.run:suite_cell"


def load_other(name: str | None, what: str, device: str, cache: dict):
    """A helper model (attacker, judge, translator, transfer target) by name or path; a missing one is one error."""
    import shoestring

    if not name:
        return None
    if name in cache:
        return cache[name]
    try:
        cache[name] = shoestring.load(name, device=device)
    except ShoestringError as e:
        raise ShoestringError(f"the {what} model '{name}' cannot be loaded ({e.problem})",
                              f"pass --{what}-model a bundled name (`shoestring models`) or a local folder") from None
    return cache[name]


def load_helpers(cfg: SuiteConfig, cache: dict) -> dict:
    """Load the attacker, judge, translator and transfer models into ``cache`` (a missing one fails here, early)."""
    for what, name in (("attacker", cfg.attacker_model), ("judge", cfg.judge_model),
                       ("translator", cfg.translator_model), ("transfer", cfg.transfer_model)):
        load_other(name, what, cfg.device, cache)
    return cache


def load_set(cfg: SuiteConfig):
    from .behaviours import load_behaviours

    behaviours = load_behaviours(cfg.behaviours, n=cfg.n, categories=cfg.categories or None, seed=cfg.sample_seed,
                                 goal_column=cfg.goal_column)
    benign = load_behaviours("benign", n=cfg.benign) if cfg.benign else []
    return behaviours, benign


def run_suite(cfg: SuiteConfig, folder: Path, lm=None, progress=None, cache: dict | None = None) -> dict:
    """Run the suite into ``folder`` (attempts saved there as they finish) and return the result dict.
    ``cache``: models already loaded, by name (see :func:`load_helpers`)."""
    import shoestring

    from .judging import judge_records, make_attack_judges
    from .respond import Responder

    cfg.check()
    behaviours, benign = load_set(cfg)
    t0 = time.perf_counter()
    if lm is None:
        lm = shoestring.load(cfg.model, device=cfg.device)
    cache = {**(cache or {}), cfg.model: lm}
    models = {"attacker": load_other(cfg.attacker_model, "attacker", cfg.device, cache),
              "translator": load_other(cfg.translator_model, "translator", cfg.device, cache),
              "transfer": load_other(cfg.transfer_model, "transfer", cfg.device, cache)}
    judge_lm = load_other(cfg.judge_model, "judge", cfg.device, cache)
    judges = make_attack_judges(cfg.judges, lm=lm, judge_lm=judge_lm)  # fails fast, before any attack runs
    responder = Responder(lm, cfg.max_new_tokens, cfg.compression)
    store = Store(Path(folder) / "attempts")
    attempts = run_attacks(lm, cfg, behaviours, store, models, responder, progress)
    benign_attempts = []
    if benign:
        from .suite import run_transform

        bstore = Store(Path(folder) / "attempts" / "benign")
        todo = [b for b in benign if bstore.get("none", b) is None]
        if todo:
            for a in run_transform(lm, "none", todo, responder, models):
                bstore.put(a)
        benign_attempts = [bstore.get("none", b) for b in benign]
    if progress:
        progress("judging", 0, len(attempts) + len(benign_attempts))
    records = judge_records(attempts, judges)
    benign_records = judge_records(benign_attempts, judges) if benign_attempts else []
    names = list(judges)
    attacks = list(dict.fromkeys(r["attack"] for r in records))
    return {"model": cfg.model, "config": cfg.to_dict(), "judges": names, "attacks": attacks,
            "compression": cfg.compression, "records": records,
            "benign": {"records": benign_records} if benign_records else None,
            "behaviour_set": {"source": cfg.behaviours, "n": len(behaviours),
                              "categories": sorted({b.category for b in behaviours})},
            "seconds": time.perf_counter() - t0, **summarise(cfg, records, benign_records, names)}


def headline(result: dict) -> dict:
    """The metrics.json of a suite run: ASR per attack x judge (with intervals), kappas, over-refusal."""
    out = {}
    for row in result["summary"]:
        key = f"asr.{row['attack']}.{row['judge']}"
        out[key] = row["asr"]
        out[key + ".lo"], out[key + ".hi"] = row["lo"], row["hi"]
    for row in result.get("agreement", []):
        out[f"kappa.{row['a']}~{row['b']}"] = row["kappa"]
    if result.get("over_refusal"):
        out["over_refusal"] = result["over_refusal"]["rate"]
    return out


TEXT_KEYS = ("prompt", "response", "suffix", "suffix_ids", "raw_response", "responses")


def shareable(result: dict) -> dict:
    """The result without any generated or adversarial text (prompts, responses, suffixes): rates, verdicts,
    scores, compute and curves only, for publishing numbers without publishing working jailbreaks."""

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in TEXT_KEYS}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return strip(result)


def suite_cell(config: dict, run) -> dict:
    """The grid's cell task: one suite run in the cell's run folder (a rerun resumes from the saved attempts)."""
    import torch
    from transformers.utils import logging as hf_logging

    from ..report.attack import attack_page

    hf_logging.disable_progress_bar()
    threads = os.environ.get("SHOESTRING_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    known = set(SuiteConfig.__dataclass_fields__)
    cfg = SuiteConfig(**{k: v for k, v in config.items() if k in known})
    result = run_suite(cfg, run.path)
    run.save_artifact("result", result)
    attack_page(result).save(run.path / "report.html")
    return {**headline(result), "summary": result["summary"]}
