"""``shoestring kv bench``: KV-cache policies x budgets on long-text perplexity and retrieval, with measured cost,
into a run directory with an HTML report; ``shoestring kv policies`` lists what can be named."""

from __future__ import annotations

import typer

from ..errors import ShoestringError
from ._common import JsonOpt, console, emit_json, load_model, print_table
from ._report import OutOpt, say_where

kv_app = typer.Typer(help="KV-cache compression: policies, budgets, the long-context harness.", no_args_is_help=True)


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ShoestringError(f"{what} '{text}' is not a comma-separated list of numbers", f"e.g. {what} 0.5,0.25")


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ShoestringError(f"{what} '{text}' is not a comma-separated list of integers", f"e.g. {what} 2048,4096")


@kv_app.command("policies")
def policies() -> None:
    """Every policy, preset and allocator that can be named (``scorer+allocator`` composes)."""
    from ..kv.allocators import ALLOCATORS
    from ..kv.policies import POLICIES
    from ..kv.presets import PRESETS

    rows = [(n, "scorer", ", ".join(getattr(p, "needs", ())) or "the cache", (p.__doc__ or "").strip().split("\n")[0][:80])
            for n, p in sorted(POLICIES.items())]
    rows += [(n, "preset", "", f"{type(a).__name__} scorer + {type(b).__name__} budgets") for n, (a, b) in
             ((n, f()) for n, f in PRESETS.items())]
    rows += [(n, "allocator", ", ".join(a.needs) or "nothing", "") for n, a in ALLOCATORS.items()]
    print_table("KV policies", ["name", "kind", "reads", "what"], rows)


@kv_app.command("bench")
def bench(
    model: str = typer.Option("smollm2-135m", "--model"),
    policies: str = typer.Option(None, "--policies", help="comma-separated (default: every policy and preset)"),
    budgets: str = typer.Option("0.5,0.25,0.125", "--budgets", help="fractions of each context, in (0, 1]"),
    budget_tokens: str = typer.Option("", "--budget-tokens", help="token budgets per layer, e.g. 256,512"),
    tasks: str = typer.Option("perplexity,passkey", "--tasks", help="perplexity, passkey, multikey, recall, longbench, ruler"),
    lengths: str = typer.Option("2048", "--lengths", help="retrieval context lengths (tokens)"),
    depths: str = typer.Option("0.1,0.3,0.5,0.7,0.9", "--depths", help="needle depths (0 = start, 1 = end)"),
    ppl_length: int = typer.Option(4096, "--ppl-length", help="tokens per perplexity text"),
    ppl_texts: int = typer.Option(1, "--ppl-texts", help="how many perplexity texts"),
    chunk: int = typer.Option(128, "--chunk", help="prefill chunk: compression runs after each"),
    window: int = typer.Option(None, "--window", help="observation window of SnapKV / entropy / PyramidKV"),
    query_aware: bool = typer.Option(False, "--query-aware", help="compress once after the whole prompt (the question "
                                                                  "picks what stays; peak memory does not drop)"),
    quant: int = typer.Option(None, "--quant", help="also quantise the kept cache to 8 or 4 bits"),
    passkey_filler: str = typer.Option("standard", "--passkey-filler", help="standard (repeated sentences, the "
                                       "original test) or prose (the corpus: harder)"),
    corpus: str = typer.Option("austen", "--corpus", help="prose for perplexity, multikey and recall (any corpus spec: "
                               "austen, bible-kjv, a local folder or file such as PG-19)"),
    seed: int = typer.Option(0, "--seed"),
    longbench: str = typer.Option(None, "--longbench", help="a local LongBench <task>.jsonl"),
    ruler: str = typer.Option(None, "--ruler", help="a local RULER validation.jsonl"),
    limit: int = typer.Option(None, "--limit", help="at most this many LongBench / RULER rows"),
    executor: str = typer.Option("local", "--executor", help="local (one process per cell) or ray"),
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Every policy x budget on the same prompts and seeds; each cell is a run folder (a rerun resumes)."""
    from ..kv.bench import check_config, kv_bench
    from ..kv.presets import make_policy
    from ..kv.session import KVSession
    from ..report.kv import kv_page
    from ._report import write_run

    config = {"model": model, "budgets": _floats(budgets, "--budgets"), "budget_token_list": _ints(budget_tokens, "--budget-tokens"),
              "tasks": [t.strip() for t in tasks.split(",") if t.strip()], "lengths": _ints(lengths, "--lengths"),
              "depths": _floats(depths, "--depths"), "ppl_length": ppl_length, "ppl_texts": ppl_texts, "chunk": chunk,
              "window": window, "query_aware": query_aware, "quant": quant, "seed": seed, "passkey_filler": passkey_filler, "corpus": corpus, "longbench": longbench,
              "ruler": ruler, "limit": limit}
    if policies:
        config["policies"] = [p.strip() for p in policies.split(",") if p.strip()]
    if executor not in ("local", "ray"):
        raise ShoestringError(f"unknown executor '{executor}'", "use --executor local or --executor ray")
    if quant is not None and quant not in (4, 8):
        raise ShoestringError(f"--quant {quant} is not a supported width", "use --quant 8 or --quant 4")
    c = check_config(config)  # names, fractions, tasks: before the model loads
    lm = load_model(model, "float32", "cpu", quiet=json_out)
    c = check_config(config, getattr(lm.model.config, "max_position_embeddings", None))
    for name in c["policies"]:  # a policy that reads attention on a model without it: fail before any cell runs
        policy, allocator = make_policy(name, window=window)
        KVSession(lm, policy, 1, allocator=allocator)
    del lm
    n = {"done": 0}

    def started(total, todo):
        if not json_out:
            console.print(f"{total} cells ({total - todo} already done), one process each", highlight=False)

    def ended(row):
        n["done"] += 1
        if not json_out:
            p = row["config"]
            b = "full" if p["policy"] == "full" else (f"{p['budget_tokens']} tok" if p.get("budget_tokens")
                                                       else f"{p.get('budget', 1.0):g}")
            took = row["metrics"].get("cost", {}).get("prefill_s")
            console.print(f"  [{n['done']}] {p['policy']} @ {b}: {row['status']}" + (f" ({row['error']})" if row["error"] else "")
                          + (f", prefill {took:.1f} s" if took else ""), highlight=False, markup=False)

    result = kv_bench(c, root=out, executor=executor, on_start=started, on_result=ended)
    head = headline(result)
    page = kv_page(result, title="KV-cache compression", meta={"model": model, "mode": result["mode"]})
    report = write_run("kv-bench", {k: v for k, v in c.items()}, result, metrics=head, page=page, out=out)
    if json_out:
        emit_json({"report": str(report), **head})
        return
    print_summary(result)
    say_where(report)


def headline(result: dict) -> dict:
    """Per task and budget: the best policy, its score and the share of the full cache's score it keeps."""
    from ..kv.bench import best_at

    out = {"mode": result["mode"]}
    for task, t in result["tasks"].items():
        for b in result["budgets"]:
            best = best_at(result["summary"], task, b, t["higher_is_better"])
            if best:
                out[f"{task}@{b:g}"] = {"best": best["policy"], "mean": best["mean"], "relative_to_full": best["relative_to_full"]}
    errs = [abs(c["bytes_error"]) for c in result["cost"] if c.get("bytes_error") is not None]
    out["max_cache_bytes_error"] = max(errs) if errs else None
    return out


def print_summary(result: dict) -> None:
    for task, t in result["tasks"].items():
        budgets = [None, *result["budgets"]]
        rows = []
        for p in result["policies"]:
            cells = []
            for b in budgets:
                s = next((s for s in result["summary"] if s["task"] == task and s["policy"] == p and s["budget"] == b), None)
                cells.append("" if s is None else f"{s['mean']:.3g}" + (f" ({s['relative_to_full']:.0%})" if s["relative_to_full"] and p != "full" else ""))
            rows.append((p, *cells))
        print_table(f"{task} ({t['metric']}, {'higher' if t['higher_is_better'] else 'lower'} is better; "
                    f"{result['mode']})", ["policy", "full", *[f"{b:g}" for b in result["budgets"]]], rows)
