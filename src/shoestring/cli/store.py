"""``shoestring cache`` (the activation store) and ``shoestring plan`` (the memory plan)."""

from __future__ import annotations

import typer
from rich.table import Table

from ._common import DeviceOpt, JsonOpt, ModelArg, console, emit_json, human_bytes, load_model


def _hook_list(hooks: str) -> list[str]:
    return [h.strip() for h in hooks.split(",") if h.strip()]


def cache(
    model: str = ModelArg,
    corpus: str = typer.Option(..., "--corpus", help="built-in (stdlib-code, stdlib-prose, ...), file, folder, glob, .jsonl/.csv/.parquet, saved HF dataset"),
    hooks: str = typer.Option(..., "--hooks", help="comma-separated hook points or globs, e.g. blocks.5.hook_resid_post"),
    tokens: int = typer.Option(..., "--tokens", min=1, help="how many tokens to cache"),
    out: str = typer.Option(..., "--out", help="store folder (rerun the same command to resume)"),
    context_length: int = typer.Option(256, "--context-length", min=2),
    dtype: str = typer.Option("float16", "--dtype", help="storage dtype: float16 or float32"),
    batch_size: int = typer.Option(0, "--batch-size", min=0, help="contexts per forward pass; 0 = auto from free memory"),
    shard_tokens: int = typer.Option(2**16, "--shard-tokens", min=1),
    stats_only: bool = typer.Option(False, "--stats-only", help="keep running statistics, not activations"),
    topk: int = typer.Option(0, "--topk", min=0, help="also keep the top-k activating tokens per unit"),
    text_column: str = typer.Option("text", "--text-column"),
    model_dtype: str = typer.Option("float32", "--model-dtype"),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Run the model over a corpus once and keep the activations of a few hooks on disk, in shards.

    Memory stays bounded whatever --tokens is; an interrupted run (even kill -9) resumes where it stopped
    and ends with exactly the store an uninterrupted run makes."""
    from ..data import load_corpus, pack_batches
    from ..models.load import free_memory
    from ..models.plan import auto_batch_size
    from ..store import cache_activations

    if dtype not in ("float16", "float32"):
        from ..errors import ShoestringError

        raise ShoestringError(f"store dtype '{dtype}' is not supported", "use --dtype float16 or float32")
    hook_list = _hook_list(hooks)
    docs = load_corpus(corpus, text_column=text_column)
    lm = load_model(model, model_dtype, device, quiet=json_out)
    names = [s.name for s in lm.resolve(hook_list)]
    batch = batch_size or auto_batch_size(lm, context_length, names, free_memory(str(lm.device)) or 2**31)
    tok = lm.tokenizer

    def stream(skip: int = 0):
        for b in pack_batches(docs, tok, context_length, batch, skip_contexts=skip):
            yield b.tokens, b.doc_ids, b.positions

    manifest = cache_activations(
        lm, stream(), hooks=names, out=out, target_tokens=tokens, context_length=context_length, corpus=corpus,
        dtype=dtype, shard_tokens=shard_tokens, stats_only=stats_only, topk=topk, progress=not json_out,
        skip_contexts_fn=stream,
        meta={"batch_size": batch},
    )
    result = {"out": out, "status": manifest.status, "tokens": manifest.n_tokens, "shards": len(manifest.shards),
              "hooks": manifest.hooks, "widths": manifest.widths, "dtype": manifest.dtype, "batch_size": batch,
              "mean_norms": {h: sum(s.norms[h] * s.n_tokens for s in manifest.shards) / max(manifest.n_tokens, 1) for h in manifest.hooks}}
    if json_out:
        return emit_json(result)
    console.print(f"[green]done[/green]: {result['tokens']:,} tokens in {result['shards']} shards at {out}")
    for h in manifest.hooks:
        console.print(f"  {h}: width {manifest.widths[h]}, mean norm {result['mean_norms'][h]:.2f}")


def plan(
    model: str = ModelArg,
    batch: int = typer.Option(1, "--batch", min=1),
    seq: int = typer.Option(256, "--seq", min=1),
    hooks: str = typer.Option("", "--hooks", help="comma-separated hooks to capture / cache"),
    tokens: int = typer.Option(0, "--tokens", min=0, help="store size on disk for this many tokens"),
    dtype: str = typer.Option("float32", "--dtype"),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Estimate memory: weights, forward activations, KV cache, captured hooks, store size on disk."""
    from ..models.load import free_memory
    from ..models.plan import auto_batch_size, plan as make_plan

    lm = load_model(model, dtype, device, quiet=json_out)
    hook_list = _hook_list(hooks)
    p = make_plan(lm, batch, seq, hook_list, tokens or None)
    free = free_memory(str(lm.device))
    result = {**p.as_dict(), "free": free, "batch": batch, "seq": seq, "hooks": hook_list,
              "auto_cache_batch": auto_batch_size(lm, seq, hook_list, free or 2**31) if hook_list else None}
    if json_out:
        return emit_json(result)
    t = Table(title=f"memory plan: {model}, batch {batch} x {seq} tokens", show_header=False)
    for key in ("weights", "forward_peak", "kv_cache", "captured", "total"):
        t.add_row(key, human_bytes(result[key]))
    if p.store_bytes_per_token:
        t.add_row("store per token", human_bytes(p.store_bytes_per_token))
    if p.store_total:
        t.add_row(f"store for {tokens:,} tokens", human_bytes(p.store_total))
    if free:
        t.add_row(f"free on {lm.device}", human_bytes(free))
    if result["auto_cache_batch"]:
        t.add_row("`cache` batch size (auto)", str(result["auto_cache_batch"]))
    console.print(t)
