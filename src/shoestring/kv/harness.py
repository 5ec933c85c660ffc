"""One cell of the KV benchmark: one policy at one budget, every task on the same prompts, with its measured
cost. ``shoestring kv bench`` runs a grid of cells through the sweep executors (each cell is a run
directory, so an interrupted grid resumes with the cells still missing) and gathers them into one report.

Tasks (all scored the same way for every policy; prompts fixed by ``seed``):

- ``perplexity``: long text streamed through the session in chunks (StreamingLLM's evaluation); the score is
  the perplexity over the *second half* of each text, where every budget of at most 50% is already full,
  plus the NLL along the text in buckets (the curve that shows a window collapse and sinks hold);
- ``passkey``: the original test (a key in repeated filler sentences; ``passkey_filler = "prose"`` hides it
  in the corpus instead), ``multikey``: several keys in offline prose, one asked for; lengths x depths,
  greedy answers; ``recall``: extractive QA from the same prose (continue a quoted sentence, token F1);
- ``longbench``, ``ruler``: the user's local files (see :mod:`shoestring.kv.tasks.local`).

Budgets are fractions of each prompt's length (``budget``) or token counts (``budget_tokens``).
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F

from ..errors import ShoestringError
from .measure import layer_bytes, peak_memory, timed, token_bytes
from .presets import make_policy
from .session import KVSession

TASKS = {"perplexity": (False, "perplexity"), "passkey": (True, "accuracy"), "multikey": (True, "accuracy"),
         "recall": (True, "F1"),
         "longbench": (True, "F1"), "ruler": (True, "match")}
DEFAULTS = {"model": None, "policy": "full", "budget": 1.0, "budget_tokens": None, "tasks": ["perplexity", "passkey"],
            "lengths": [2048], "depths": [0.1, 0.3, 0.5, 0.7, 0.9], "seed": 0, "chunk": 128, "query_aware": False,
            "quant": None, "ppl_length": 4096, "ppl_texts": 1, "bucket": 128, "keys": 4, "new_tokens": 10,
            "corpus": "austen", "longbench": None, "ruler": None, "limit": None, "cost_decode": 32, "window": None,
            "passkey_filler": "standard"}


def budget_tokens(config: dict, length: int) -> int | None:
    """Tokens per layer for a prompt of ``length`` (``None``: the full cache)."""
    if config.get("budget_tokens"):
        return int(config["budget_tokens"])
    frac = float(config["budget"])
    return None if frac >= 1.0 else max(1, int(round(frac * length)))


def session(lm, config: dict, length: int) -> KVSession:
    policy, allocator = make_policy(config["policy"], seed=config["seed"], window=config.get("window"))
    return KVSession(lm, policy, budget_tokens(config, length), chunk=config["chunk"], allocator=allocator,
                     quant=config.get("quant"))


def _filler(config: dict, task: str) -> str:
    from ..data import load_corpus
    from .tasks.passkey import STANDARD_FILLER

    if task == "passkey" and config["passkey_filler"] == "standard":
        return STANDARD_FILLER

    text, n = [], 0
    for doc in load_corpus(config["corpus"]):
        text.append(doc.text)
        n += len(doc.text)
        if n > 60_000 * max(1, max(config["lengths"]) // 1024):  # ~4 chars per token, a margin of 10x
            break
    return " ".join(text)


def run_perplexity(lm, config: dict) -> tuple[list[dict], list[dict]]:
    from ..data import load_corpus
    from ..data.pack import take_contexts

    T, bucket = int(config["ppl_length"]), int(config["bucket"])
    texts = take_contexts(load_corpus(config["corpus"]), lm.tokenizer, T, int(config["ppl_texts"]))
    if texts is None or texts.shape[0] < int(config["ppl_texts"]):
        raise ShoestringError(f"corpus '{config['corpus']}' holds fewer than {config['ppl_texts']} texts of {T} tokens",
                              "ask for fewer or shorter texts (--ppl-length)")
    rows, sums = [], torch.zeros(T - 1)
    for i, ids in enumerate(texts):
        s = session(lm, config, T)
        nll = []
        for start in range(0, T, s.chunk):
            piece = ids[None, start:start + s.chunk]
            logp = F.log_softmax(s.step(piece).float(), -1)[0]
            tgt = ids[start + 1:start + 1 + piece.shape[1]].to(logp.device)
            nll.append(-logp[:tgt.shape[0]].gather(-1, tgt[:, None])[:, 0].cpu())
        nll = torch.cat(nll)  # [T - 1]
        sums += nll
        half = nll[T // 2:]
        rows.append({"task": "perplexity", "length": T, "depth": None, "case": i, "score": math.exp(float(half.mean())),
                     "answer": "", "expected": ""})
    mean = sums / texts.shape[0]
    edges = list(range(0, T - 1, bucket))
    curve = {"length": T, "positions": [e + bucket for e in edges],
             "nll": [float(mean[e:e + bucket].mean()) for e in edges], "window_tokens": budget_tokens(config, T)}
    return rows, [curve]


def _generate_rows(lm, config: dict, task: str, cases, score) -> list[dict]:
    rows = []
    for i, c in enumerate(cases):
        s = session(lm, config, c.ids.shape[1])
        out = s.generate(c.ids, int(config["new_tokens"]), lm.tokenizer.eos_token_id, query_aware=config["query_aware"])
        text = lm.tokenizer.decode(out[0], skip_special_tokens=True)
        expected = getattr(c, "key", None) or " | ".join(getattr(c, "answers", []))
        rows.append({"task": task, "length": int(c.length), "depth": getattr(c, "depth", None), "case": i,
                     "score": float(score(text, c)), "answer": text, "expected": expected})
    return rows


def run_retrieval(lm, config: dict, task: str) -> list[dict]:
    from .tasks import load_longbench, load_ruler, multikey_cases, passkey_cases, score_multikey, score_passkey, score_text

    if task == "passkey":
        cases = passkey_cases(lm.tokenizer, _filler(config, task), config["lengths"], config["depths"], seed=config["seed"])
        return _generate_rows(lm, config, task, cases, lambda t, c: score_passkey(t, c.key))
    if task == "multikey":
        cases = multikey_cases(lm.tokenizer, _filler(config, task), config["lengths"], config["depths"], keys=config["keys"],
                               seed=config["seed"])
        return _generate_rows(lm, config, task, cases, lambda t, c: score_multikey(t, c.key))
    if task == "recall":
        from .tasks import recall_cases, score_recall

        cases = recall_cases(lm.tokenizer, _filler(config, task), config["lengths"], config["depths"], seed=config["seed"])
        return _generate_rows(lm, config, task, cases, score_recall)
    loader = {"longbench": load_longbench, "ruler": load_ruler}[task]
    if not config.get(task):
        raise ShoestringError(f"task '{task}' needs a local file", f"give --{task} PATH.jsonl")
    cases = loader(config[task], lm.tokenizer, max_tokens=max(config["lengths"]), limit=config.get("limit"))
    return _generate_rows(lm, config, task, cases, score_text)


def measure_cost(lm, config: dict, length: int) -> dict:
    """Prefill ``length`` tokens and decode ``cost_decode`` more under the cell's policy: time, memory, bytes."""
    ids = torch.randint(100, lm.model.config.vocab_size - 100, (1, length), generator=torch.Generator().manual_seed(0))
    s = session(lm, config, length)
    with peak_memory(lm.device) as mem:
        logits, prefill_s = timed(lambda: s.feed(ids, query_aware=config["query_aware"], return_logits=False), lm.device)
        per_layer = layer_bytes(s.cache)
        held = s.cache_tokens()
        nxt = torch.tensor([[int(ids[0, -1])]])
        _, decode_s = timed(lambda: [s.step(nxt) for _ in range(int(config["cost_decode"]))], lm.device)
    b = budget_tokens(config, length)
    per_token = token_bytes(s.cache)
    budgets = s.budgets or [b or length] * len(held)
    expected = sum(n * t for n, t in zip(budgets, per_token))
    return {"length": length, "budget_tokens": b, "cache_tokens_per_layer": held, "cache_bytes_per_layer": per_layer,
            "expected_bytes": expected, "bytes_error": (sum(per_layer) - expected) / expected if expected else None,
            "peak_cache_tokens": s.peak_tokens, "peak_rss_mb": mem["peak_bytes"] / 2**20, "memory_how": mem["how"],
            "prefill_s": prefill_s, "decode_s": decode_s, "prefill_tokens_per_s": length / prefill_s,
            "decode_tokens_per_s": int(config["cost_decode"]) / decode_s, "budgets_per_layer": budgets}


def run_cell(config: dict, run) -> dict:
    """The ``kv-cell`` task: every task of ``config`` under one policy and budget; samples + cost metrics."""
    from ..models import load

    threads = os.environ.get("SHOESTRING_THREADS")
    torch.set_num_threads(int(threads) if threads else (os.cpu_count() or 1))
    config = {**DEFAULTS, **config}
    lm = load(config["model"]) if config["model"] else load()
    cost = measure_cost(lm, config, max(config["lengths"]))  # first: the process's memory is fresh
    rows, curves = [], []
    for task in config["tasks"]:
        if task == "perplexity":
            got, curves = run_perplexity(lm, config)
        else:
            got = run_retrieval(lm, config, task)
        rows += got
    for r in rows:
        r.update(policy=config["policy"], budget=float(config["budget"]) if not config["budget_tokens"] else None,
                 budget_tokens=budget_tokens(config, r["length"]), seed=config["seed"])
    run.write_samples(rows)
    run.save_artifact("curves", {"curves": curves})
    means = {t: sum(r["score"] for r in rows if r["task"] == t) / max(1, sum(r["task"] == t for r in rows))
             for t in config["tasks"]}
    return {**{f"mean_{t}": v for t, v in means.items()}, "cost": cost}
