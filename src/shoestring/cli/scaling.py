"""``shoestring scaling run``: train small GPT variants to several compute budgets and seeds, then estimate the
compute-equivalent gain (CEG) of each idea with 95% intervals; ``shoestring scaling presets`` lists the
variants with their FLOPs per token."""

from __future__ import annotations

import json
import time

import typer

from ..errors import ShoestringError
from ._common import JsonOpt, console, emit_json, print_table
from ._report import OutOpt, say_where

scaling_app = typer.Typer(help="Study scale on a budget: small GPT variants, compute budgets, CEG.", no_args_is_help=True)


def _list(text: str, kind, what: str, example: str) -> list:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ShoestringError(f"{what} '{text}' is not a comma-separated list", f"e.g. {what} {example}")


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _toggles(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ShoestringError(f"--set '{item}' is not key=value", "e.g. --set mlp=swiglu --set n_kv_head=2")
        k, v = item.split("=", 1)
        out[k.strip()] = _value(v.strip())
    return out


@scaling_app.command("presets")
def presets(vocab_size: int = typer.Option(1024, "--vocab-size"), d_model: int = typer.Option(128, "--d-model"),
            n_layer: int = typer.Option(4, "--n-layer"), n_head: int = typer.Option(4, "--n-head"),
            context: int = typer.Option(128, "--context"), json_out: bool = JsonOpt) -> None:
    """Every named variant with its toggles, parameters and training FLOPs per token at the given shape."""
    from ..scaling.config import PAPER_CEG, PRESETS, preset
    from ..scaling.flops import train_flops_per_token
    from ..scaling.model import GPT

    rows = []
    for name, toggles in PRESETS.items():
        cfg = preset(name, vocab_size=vocab_size, d_model=d_model, n_layer=n_layer, n_head=n_head, context=context)
        rows.append({"name": name, "toggles": toggles, "params": GPT(cfg).n_params(),
                     "train_flops_per_token": train_flops_per_token(cfg), "paper_ceg": PAPER_CEG.get(name)})
    if json_out:
        emit_json(rows)
        return
    print_table("Presets", ["name", "toggles", "params", "train FLOPs/token", "paper CEG"],
                [(r["name"], ", ".join(f"{k}={v}" for k, v in r["toggles"].items()), f"{r['params']:,}",
                  f"{r['train_flops_per_token'] / 1e6:.2f} M", str(r["paper_ceg"] or "")) for r in rows])


@scaling_app.command("run")
def run(
    variants: str = typer.Option("baseline,layernorm,rope,fused,all-three,multi-query", "--variants",
                                 help="preset names (see `shoestring scaling presets`)"),
    baseline: str = typer.Option("baseline", "--baseline", help="the variant CEG is measured against"),
    budgets: str = typer.Option("6e11,1.2e12,2.4e12,4.8e12", "--budgets", help="training FLOPs per run (>= 3)"),
    seeds: str = typer.Option("0,1,2", "--seeds"),
    corpus: str = typer.Option("austen", "--corpus", help="any corpus spec: stdlib-code, austen, a folder, a .jsonl, ..."),
    tokenizer: str = typer.Option("bpe", "--tokenizer", help="bpe (trained on the corpus) or a tokenizer.json / folder"),
    vocab_size: int = typer.Option(1024, "--vocab-size"),
    max_chars: int = typer.Option(None, "--max-chars", help="use only the first N characters of the corpus"),
    d_model: int = typer.Option(128, "--d-model"),
    n_layer: int = typer.Option(4, "--n-layer"),
    n_head: int = typer.Option(4, "--n-head"),
    context: int = typer.Option(128, "--context"),
    toggles: list[str] = typer.Option([], "--set", help="a toggle for every variant, e.g. --set mlp=swiglu"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(3e-3, "--lr"),
    optimizer: str = typer.Option("adamw", "--optimizer", help="adamw or muon"),
    schedule: str = typer.Option("cosine", "--schedule", help="cosine, wsd or constant"),
    evals: int = typer.Option(6, "--evals", help="held-out evaluations per run (the read-off's curve)"),
    eval_tokens: int = typer.Option(16384, "--eval-tokens"),
    device: str = typer.Option("cpu", "--device"),
    dtype: str = typer.Option("float32", "--dtype", help="float32, or bfloat16 (autocast; for GPUs)"),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the model"),
    executor: str = typer.Option("local", "--executor", help="local (one process per cell) or ray"),
    max_parallel: int = typer.Option(None, "--max-parallel", help="cells at once (default: one per core)"),
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Variants x budgets x seeds, each cell a run folder (a rerun resumes); CEG with 95% intervals."""
    from ..scaling.grid import check_config, scaling_grid

    if executor not in ("local", "ray"):
        raise ShoestringError(f"unknown executor '{executor}'", "use --executor local or --executor ray")
    if dtype not in ("float32", "bfloat16"):
        raise ShoestringError(f"--dtype {dtype} is not supported here", "use float32 (CPU) or bfloat16 (GPU)")
    config = {"variants": _list(variants, str, "--variants", "baseline,rope"), "baseline": baseline,
              "budgets": _list(budgets, float, "--budgets", "6e11,1.2e12,2.4e12,4.8e12"),
              "seeds": _list(seeds, int, "--seeds", "0,1,2"), "corpus": corpus, "tokenizer": tokenizer,
              "vocab_size": vocab_size, "max_chars": max_chars, "overrides": _toggles(toggles),
              "shape": {"d_model": d_model, "n_layer": n_layer, "n_head": n_head, "context": context},
              "train": {"batch_size": batch_size, "lr": lr, "optimizer": optimizer, "schedule": schedule,
                        "evals": evals, "eval_tokens": eval_tokens, "device": device, "dtype": dtype,
                        "compile": compile_}}
    from ..scaling.optim import OPTIMIZERS

    if optimizer not in OPTIMIZERS:
        raise ShoestringError(f"unknown optimizer '{optimizer}'", f"use one of: {', '.join(OPTIMIZERS)}")
    c = check_config(config)  # every toggle, budget and step count: before anything trains
    state = {"done": 0, "t0": time.time(), "total": 0}

    def started(total, todo):
        state["total"] = total
        if not json_out:
            console.print(f"{total} training runs ({total - todo} already done), {len(c['budgets'])} budgets x "
                          f"{len(c['variants'])} variants x {len(c['seeds'])} seeds", highlight=False)

    def ended(row):
        state["done"] += 1
        if json_out:
            return
        p, m = row["config"], row["metrics"] or {}
        took = (time.time() - state["t0"]) / 60
        console.print(f"  [{state['done']}/{state['total']}] {p['variant']} @ {p['budget']:.3g} FLOPs, seed {p['seed']}: "
                      + (f"loss {m['val_loss']:.4f} in {m['steps']} steps ({m['train_seconds']:.0f} s)" if m.get("val_loss")
                         else f"{row['status']} {row['error'] or ''}") + f"  [{took:.1f} min]", highlight=False, markup=False)

    result = scaling_grid(c, root=out, executor=executor, max_parallel=max_parallel, on_start=started, on_result=ended)
    from ..report.scaling import scaling_page
    from ._report import write_run

    head = {r["variant"]: {k: r.get(k) for k in ("ceg", "low", "high", "time_ceg", "slope", "scaling", "readoff_flops",
                                                  "paper", "agrees")} for r in result["table"]}
    page = scaling_page(result, title="Compute-equivalent gain", meta={"corpus": c["corpus"], "budgets": len(c["budgets"]),
                                                                       "seeds": len(c["seeds"])})
    report = write_run("scaling-run", c, result, metrics=head, page=page, out=out)
    if json_out:
        emit_json({"report": str(report), "ceg": head})
        return
    print_summary(result)
    say_where(report)


def _ci(x, lo, hi) -> str:
    if x is None:
        return ""
    return f"{x:.2f} [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else f"{x:.2f}"


def print_summary(result: dict) -> None:
    rows = []
    for r in result["table"]:
        paper = r["paper_note"] or (f"{r['paper']:.2f}" if r["paper"] else "")
        rows.append((r["variant"], _ci(r.get("ceg"), r.get("low"), r.get("high")),
                     (_ci(r.get("slope"), r.get("slope_low"), r.get("slope_high")) + f" {r.get('scaling', '')}").strip(),
                     _ci(r.get("time_ceg"), r.get("time_low"), r.get("time_high")),
                     f"{r['readoff_flops']:.2f}" if r["readoff_flops"] else f"never ({r['readoff_reached']})",
                     paper, {True: "yes", False: "no", None: ""}[r.get("agrees")]))
    print_table(f"CEG vs {result['baseline']} at {result['mid']:.3g} FLOPs (95% intervals over seeds)",
                ["variant", "CEG", "slope of log CEG", "time-CEG", "paper's read-off", "paper", "agrees"], rows)
    if result.get("note"):
        console.print(result["note"], highlight=False)
