"""``shoestring observe lens|heads|pattern``: look inside a model."""

from __future__ import annotations

import torch
import typer

from ..errors import ShoestringError
from ._common import DeviceOpt, DtypeOpt, JsonOpt, console, emit_json, load_model, print_table

observe_app = typer.Typer(help="Look inside: logit lens, the attention-head census, one head's pattern.",
                          no_args_is_help=True)


@observe_app.command()
def lens(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    prompt: str = typer.Argument(...),
    target: str = typer.Option(None, "--target", help="one token to follow across layers, e.g. ' Paris'"),
    position: int = typer.Option(-1, "--position"),
    top: int = typer.Option(3, "--top", min=1),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """The logit lens: what each layer's residual would predict (top tokens, target rank, entropy, KL)."""
    from ..observe import logit_lens

    lm = load_model(model, dtype, device, quiet=json_out)
    rows = logit_lens(lm, prompt, target=target, position=position).rows(top)
    if json_out:
        return emit_json({"model": model, "prompt": prompt, "target": target, "position": position, "layers": rows})
    cells = []
    for r in rows:
        tops = ", ".join(f"{tok!r} {p:.2f}" for tok, p in zip(r["top_tokens"], r["top_probs"]))
        extra = (f"{r['target_prob']:.4f}", str(r["target_rank"])) if target else ()
        cells.append((str(r["layer"]), tops, f"{r['entropy']:.2f}", f"{r['kl_to_final']:.2f}", *extra))
    print_table(f"logit lens at position {position}",
                ("layer", "top tokens", "entropy", "KL to final") + (("target p", "rank") if target else ()), cells)


@observe_app.command()
def heads(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    score: str = typer.Option("induction", "--score", help="induction, previous_token, duplicate_token, sink, local"),
    top: int = typer.Option(10, "--top", min=1),
    seq_len: int = typer.Option(32, "--seq-len", min=4),
    batch: int = typer.Option(4, "--batch", min=1),
    seed: int = typer.Option(0, "--seed"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Score every head on repeated random tokens; list the strongest for one score."""
    from ..observe import head_census
    from ..observe.heads import SCORES

    if score not in SCORES:
        raise ShoestringError(f"unknown head score '{score}'", f"use one of {', '.join(SCORES)}")
    lm = load_model(model, dtype, device, quiet=json_out)
    census = head_census(lm, seq_len=seq_len, batch=batch, seed=seed)
    best = census.top(score, top)
    if json_out:
        return emit_json({"model": model, "score": score, "seq_len": seq_len, "batch": batch, "seed": seed,
                          "top": best, "scores": {k: v.tolist() for k, v in census.scores.items()}})
    print_table(f"{score} heads ({batch} x random {seq_len} tokens, repeated)", ("layer", "head", "score"),
                [(str(r["layer"]), str(r["head"]), f"{r['score']:.3f}") for r in best])


@observe_app.command()
def pattern(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    prompt: str = typer.Argument(...),
    layer: int = typer.Option(..., "--layer"),
    head: int = typer.Option(..., "--head"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """One head's attention pattern on a prompt (only that layer's pattern is computed)."""
    lm = load_model(model, dtype, device, quiet=json_out)
    name = f"blocks.{layer}.attn.hook_pattern"
    lm.resolve(name)  # layer range
    if not 0 <= head < lm.anatomy.n_heads:
        raise ShoestringError(f"head {head} is out of range", f"layer {layer} has {lm.anatomy.n_heads} heads: 0 to {lm.anatomy.n_heads - 1}")
    enc = lm.tokenize(prompt)
    _, acts = lm.run_with_cache(enc, [name])
    p = acts[name][0, head].float()  # [query, key]
    tokens = [lm.tokenizer.decode([int(t)]) for t in enc["input_ids"][0]]
    if json_out:
        return emit_json({"model": model, "layer": layer, "head": head, "tokens": tokens,
                          "pattern": [[round(float(x), 4) for x in row] for row in p]})
    strongest = [int(p[i].argmax()) for i in range(len(tokens))]
    print_table(f"L{layer}H{head}: each token's strongest key", ("query", "attends to", "weight"),
                [(repr(tok), repr(tokens[j]), f"{float(p[i, j]):.3f}") for i, (tok, j) in enumerate(zip(tokens, strongest))])


@observe_app.command()
def patch(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    clean: str = typer.Option(..., "--clean", help="the prompt whose activations are patched in"),
    corrupt: str = typer.Option(..., "--corrupt", help="the prompt that receives them (same token length)"),
    answer: str = typer.Option(..., "--answer", help="one token, e.g. ' Paris'"),
    wrong: str = typer.Option(None, "--wrong", help="one token for a logit difference, e.g. ' Rome'"),
    hook: str = typer.Option("resid_pre", "--hook", help="resid_pre, resid_post, attn_out or mlp_out"),
    metric: str = typer.Option("logit_diff", "--metric", help="logit_diff or prob"),
    heads: bool = typer.Option(False, "--heads", help="patch single heads (hook_z) instead of layer x position"),
    top: int = typer.Option(10, "--top", min=1),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Activation patching: how much of the clean behaviour each (layer, position) or head restores
    (1 = all of it, 0 = none), normalised between the corrupted and clean runs."""
    from ..observe import patch_heads, patch_residual

    lm = load_model(model, dtype, device, quiet=json_out)
    if heads:
        r = patch_heads(lm, clean, corrupt, answer, wrong, metric=metric)
    else:
        r = patch_residual(lm, clean, corrupt, answer, wrong, hook=hook, metric=metric)
    best = r.top(top)
    if json_out:
        return emit_json({"model": model, "hook": r.hook, "metric": r.metric, "clean": r.clean, "corrupt": r.corrupt,
                          "columns": r.columns, "grid": [[round(float(x), 4) for x in row] for row in r.grid],
                          "top": best})
    print_table(f"patching {r.hook} ({r.metric}): clean {r.clean:.3f}, corrupt {r.corrupt:.3f}",
                ("layer", "head" if heads else "position", "restored"),
                [(str(row["layer"]), str(row["column"]), f"{row['score']:.3f}") for row in best])


@observe_app.command()
def dla(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    prompt: str = typer.Argument(...),
    target: str = typer.Option(..., "--target", help="one token, e.g. ' Paris'"),
    wrong: str = typer.Option(None, "--wrong", help="one token: attribute the logit difference instead"),
    top: int = typer.Option(10, "--top", min=1),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Direct logit attribution: each head's and MLP's direct contribution to the target logit at the last
    position (through the final norm, frozen at its actual scale); the parts sum to the logit."""
    from ..observe import direct_logit_attribution

    lm = load_model(model, dtype, device, quiet=json_out)
    r = direct_logit_attribution(lm, prompt, target, wrong)
    best = r.top(top)
    if json_out:
        return emit_json({"model": model, "prompt": prompt, "target": target, "wrong": wrong, "logit": r.logit,
                          "sum_of_parts": r.total(), "top": best})
    print_table(f"direct logit attribution: logit {r.logit:.3f}, sum of parts {r.total():.3f}",
                ("part", "contribution"), [(row["part"], f"{row['contribution']:+.3f}") for row in best])


@observe_app.command()
def probe(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    data: str = typer.Option("sentiment", "--data", help="bundled set (sentiment, tense) or a CSV/JSONL with text,label"),
    hook: str = typer.Option("blocks.*.hook_resid_post", "--hook", help="hook point(s); a glob probes every layer"),
    position: str = typer.Option("last", "--position", help="last or mean"),
    task: str = typer.Option("classification", "--task", help="classification or regression"),
    seed: int = typer.Option(0, "--seed"),
    out: str = typer.Option(None, "--out", help="write the report as JSON here (atomically)"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Linear probes on every layer: validation accuracy (or R^2) with bootstrap CIs, a shuffled-label
    baseline and the control task (selectivity = accuracy - control accuracy)."""
    from ..observe import load_labelled, probe_texts

    if position not in ("last", "mean"):
        raise ShoestringError(f"unknown position '{position}'", "use --position last or mean")
    if task not in ("classification", "regression"):
        raise ShoestringError(f"unknown task '{task}'", "use --task classification or regression")
    ds = load_labelled(data)
    lm = load_model(model, dtype, device, quiet=json_out)
    report = probe_texts(lm, ds.texts, ds.labels, hook=hook, position=position, task=task, seed=seed)
    if out:
        from ..runs.atomic import write_text

        write_text(out, report.to_json())
    rows = report.rows()
    if json_out:
        return emit_json({"model": model, "data": data, "metric": report.metric, "best_layer": report.best_layer, "rows": rows})
    cols = ["layer", report.metric, "95% CI", "shuffled"] + (["control", "selectivity"] if "control" in rows[0] else [])
    cells = []
    for r in rows:
        row = [str(r["layer"]), f"{r[report.metric]:.3f}", f"{r['ci_low']:.2f}-{r['ci_high']:.2f}", f"{r.get('shuffled', float('nan')):.3f}"]
        if "control" in r:
            row += [f"{r['control']:.3f}", f"{r['selectivity']:+.3f}"]
        cells.append(row)
    print_table(f"probe '{data}' ({len(ds.texts)} examples): best layer {report.best_layer}", cols, cells)


@observe_app.command()
def neuron(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    layer: int = typer.Option(..., "--layer"),
    neuron_index: int = typer.Option(..., "--neuron"),
    corpus: str = typer.Option("stdlib-prose", "--corpus", help="where to look for its top activations"),
    contexts: int = typer.Option(32, "--contexts", min=1, help="contexts of --context-length tokens to read"),
    context_length: int = typer.Option(64, "--context-length", min=4),
    top: int = typer.Option(10, "--top", min=1),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """An MLP neuron: the tokens it promotes and suppresses through the unembedding, and the tokens of a
    corpus where it fires most (with their contexts and a histogram of its activations)."""
    import itertools

    from ..data import load_corpus, pack_batches
    from ..observe import direct_logit_effect, neuron_direction, top_activating

    docs = load_corpus(corpus)
    lm = load_model(model, dtype, device, quiet=json_out)
    effect = direct_logit_effect(lm, neuron_direction(lm, layer, neuron_index), k=top)
    batches = (b.tokens for b in itertools.islice(pack_batches(docs, lm.tokenizer, context_length, 8), -(-contexts // 8)))
    acts = top_activating(lm, batches, f"blocks.{layer}.mlp.hook_post", unit=neuron_index, k=top)
    result = {"model": model, "layer": layer, "neuron": neuron_index, **effect, **acts}
    if json_out:
        return emit_json(result)
    console.print(f"L{layer}N{neuron_index} promotes: " + ", ".join(f"{t!r}" for t, _ in effect["promotes"]))
    console.print(f"L{layer}N{neuron_index} suppresses: " + ", ".join(f"{t!r}" for t, _ in effect["suppresses"]))
    print_table(f"where it fires most in {corpus} (mean {acts['mean']:.3f}, {acts['fraction_positive']:.0%} > 0)",
                ("activation", "context", "token"),
                [(f"{r['value']:.3f}", repr(r["context"][-60:]), repr(r["token"])) for r in acts["top"]])


@observe_app.command()
def geometry(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    data: str = typer.Option("sentiment", "--data", help="bundled labelled set or a CSV/JSONL with text,label"),
    layer: int = typer.Option(..., "--layer"),
    k: int = typer.Option(2, "--k", min=2, help="k-means clusters"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """PCA and k-means of one layer's last-token activations for a labelled set: variance explained,
    cluster silhouette, and how well the clusters and the first component line up with the labels."""
    from ..observe import collect, kmeans, load_labelled, pca, silhouette

    ds = load_labelled(data)
    lm = load_model(model, dtype, device, quiet=json_out)
    name = f"blocks.{layer}.hook_resid_post"
    lm.resolve(name)
    X = collect(lm, ds.texts, hook=name)[layer]
    p = pca(X, k=2)
    labels, _ = kmeans(X, k)
    y = torch.as_tensor(ds.labels)
    agree = max(float((labels == y).float().mean()), float((labels != y).float().mean())) if k == 2 else None
    result = {"model": model, "layer": layer, "n": len(ds.texts), "explained_variance": p.explained.tolist(),
              "kmeans_silhouette": silhouette(X, labels), "label_silhouette": silhouette(X, y),
              "kmeans_label_agreement": agree,
              "pc1_label_correlation": float(torch.corrcoef(torch.stack([p.projected[:, 0], y.float()]))[0, 1]),
              "map": [[round(float(a), 3), round(float(b), 3), int(c)] for (a, b), c in zip(p.projected, y)]}
    if json_out:
        return emit_json(result)
    console.print(f"layer {layer}, {result['n']} examples of '{data}': PC1+PC2 explain "
                  f"{sum(result['explained_variance']):.1%}; k-means silhouette {result['kmeans_silhouette']:.3f}; "
                  f"label silhouette {result['label_silhouette']:.3f}; PC1 vs label r = {result['pc1_label_correlation']:+.3f}"
                  + (f"; clusters match labels {agree:.1%}" if agree is not None else ""))
