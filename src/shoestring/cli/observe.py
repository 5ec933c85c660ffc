"""``shoestring observe lens|heads|pattern|patch|dla|probe|neuron|geometry|tour``: look inside a model.

Every command writes a run directory (config, env, metrics, the full result) with a ``report.html`` page
(see :mod:`shoestring.cli._report`) and prints the page's path; ``--json`` prints the result instead.
"""

from __future__ import annotations

import typer

from ..errors import ShoestringError
from ._common import DeviceOpt, DtypeOpt, JsonOpt, console, emit_json, load_model, print_table
from ._report import NoReportOpt, OutOpt, say_where, write_run

observe_app = typer.Typer(help="Look inside: logit lens, the attention-head census, one head's pattern, patching, "
                               "attribution, probes, neurons, geometry, and a tour of them all in one report.",
                          no_args_is_help=True)


def _page(title: str, model: str, **meta):
    from ..report import Page

    return Page(title, meta={"model": model, **meta})


@observe_app.command()
def lens(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    prompt: str = typer.Argument(...),
    target: str = typer.Option(None, "--target", help="one token to follow across layers, e.g. ' Paris'"),
    position: int = typer.Option(-1, "--position"),
    top: int = typer.Option(3, "--top", min=1),
    tuned_lens: str = typer.Option(None, "--tuned-lens", help="a folder saved by TunedLens.save: show both lenses"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    out: str = OutOpt,
    no_report: bool = NoReportOpt,
    json_out: bool = JsonOpt,
) -> None:
    """The logit lens: what each layer's residual would predict (top tokens, target rank, entropy, KL);
    with --tuned-lens, the tuned lens beside it."""
    from ..observe import TunedLens, logit_lens
    from ..report import add_lens

    tuned = TunedLens.load(tuned_lens) if tuned_lens else None  # before loading the model: a bad folder fails fast
    lm = load_model(model, dtype, device, quiet=json_out)
    r = logit_lens(lm, prompt, target=target, position=position)
    rt = logit_lens(lm, prompt, target=target, position=position, lens=tuned) if tuned is not None else None
    rows = r.rows(top)
    result = {"model": model, "prompt": prompt, "target": target, "position": position, "layers": rows}
    if rt is not None:
        result["tuned_lens"] = {"folder": str(tuned_lens), "layers": rt.rows(top)}
    page = _page("Logit lens" + (" and tuned lens" if rt is not None else ""), model, prompt=prompt)
    add_lens(page, r, rt, prompt=prompt, target=target, k=top)
    last = rows[-1]
    metrics = {"n_layers": len(rows), "final_top_token": last["top_tokens"][0],
               **({"final_target_rank": last["target_rank"],
                   "first_layer_target_top1": next((x["layer"] for x in rows if x["target_rank"] == 0), None)}
                  if target else {}),
               "kl_to_final": [x["kl_to_final"] for x in rows],
               **({"tuned_kl_to_final": [x["kl_to_final"] for x in result["tuned_lens"]["layers"]]} if rt else {})}
    config = {"model": model, "prompt": prompt, "target": target, "position": position, "top": top,
              "tuned_lens": tuned_lens, "dtype": dtype, "device": device}
    where = write_run("observe-lens", config, result, metrics=metrics, page=page, out=out, no_report=no_report)
    if json_out:
        return emit_json(result)
    cells = []
    for i, r in enumerate(rows):
        tops = ", ".join(f"{tok!r} {p:.2f}" for tok, p in zip(r["top_tokens"], r["top_probs"]))
        extra = (f"{r['target_prob']:.4f}", str(r["target_rank"])) if target else ()
        tuned_cells = ()
        if rt is not None:
            t = result["tuned_lens"]["layers"][i]
            tuned_cells = (", ".join(f"{tok!r} {p:.2f}" for tok, p in zip(t["top_tokens"], t["top_probs"])),
                           f"{t['kl_to_final']:.2f}")
        cells.append((str(r["layer"]), tops, f"{r['entropy']:.2f}", f"{r['kl_to_final']:.2f}", *extra, *tuned_cells))
    print_table(f"logit lens at position {position}",
                ("layer", "top tokens", "entropy", "KL to final") + (("target p", "rank") if target else ())
                + (("tuned lens: top tokens", "tuned KL") if rt is not None else ()), cells)
    say_where(where)


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
    out: str = OutOpt,
    no_report: bool = NoReportOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Score every head on repeated random tokens; list the strongest for one score."""
    from ..observe import head_census
    from ..observe.heads import SCORES
    from ..report import add_heads

    if score not in SCORES:
        raise ShoestringError(f"unknown head score '{score}'", f"use one of {', '.join(SCORES)}")
    lm = load_model(model, dtype, device, quiet=json_out)
    census = head_census(lm, seq_len=seq_len, batch=batch, seed=seed)
    best = census.top(score, top)
    result = {"model": model, "score": score, "seq_len": seq_len, "batch": batch, "seed": seed,
              "top": best, "scores": {k: v.tolist() for k, v in census.scores.items()}}
    page = _page("Attention-head census", model)
    add_heads(page, census, k=min(top, 10))
    config = {"model": model, "score": score, "top": top, "seq_len": seq_len, "batch": batch, "seed": seed,
              "dtype": dtype, "device": device}
    metrics = {"score": score, "top": best, **{f"best_{k}": census.top(k, 1)[0] for k in census.scores}}
    where = write_run("observe-heads", config, result, metrics=metrics, page=page, out=out, no_report=no_report)
    if json_out:
        return emit_json(result)
    print_table(f"{score} heads ({batch} x random {seq_len} tokens, repeated)", ("layer", "head", "score"),
                [(str(r["layer"]), str(r["head"]), f"{r['score']:.3f}") for r in best])
    say_where(where)


@observe_app.command()
def pattern(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    prompt: str = typer.Argument(...),
    layer: int = typer.Option(..., "--layer"),
    head: int = typer.Option(..., "--head"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    out: str = OutOpt,
    no_report: bool = NoReportOpt,
    json_out: bool = JsonOpt,
) -> None:
    """One head's attention pattern on a prompt (only that layer's pattern is computed)."""
    from ..observe import attention_pattern
    from ..report import add_pattern

    lm = load_model(model, dtype, device, quiet=json_out)
    tokens, p = attention_pattern(lm, prompt, layer, head)  # [query, key]
    result = {"model": model, "layer": layer, "head": head, "tokens": tokens,
              "pattern": [[round(float(x), 4) for x in row] for row in p]}
    strongest = [int(p[i].argmax()) for i in range(len(tokens))]
    page = _page(f"Attention pattern of L{layer}H{head}", model)
    add_pattern(page, tokens, p, layer, head, prompt)
    config = {"model": model, "prompt": prompt, "layer": layer, "head": head, "dtype": dtype, "device": device}
    metrics = {"n_tokens": len(tokens), "strongest_key": strongest,
               "mean_max_weight": round(float(p.max(-1).values.mean()), 4)}
    where = write_run("observe-pattern", config, result, metrics=metrics, page=page, out=out, no_report=no_report)
    if json_out:
        return emit_json(result)
    print_table(f"L{layer}H{head}: each token's strongest key", ("query", "attends to", "weight"),
                [(repr(tok), repr(tokens[j]), f"{float(p[i, j]):.3f}") for i, (tok, j) in enumerate(zip(tokens, strongest))])
    say_where(where)


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
    out: str = OutOpt,
    no_report: bool = NoReportOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Activation patching: how much of the clean behaviour each (layer, position) or head restores
    (1 = all of it, 0 = none), normalised between the corrupted and clean runs."""
    from ..observe import patch_heads, patch_residual
    from ..report import add_patch

    lm = load_model(model, dtype, device, quiet=json_out)
    if heads:
        r = patch_heads(lm, clean, corrupt, answer, wrong, metric=metric)
    else:
        r = patch_residual(lm, clean, corrupt, answer, wrong, hook=hook, metric=metric)
    best = r.top(top)
    result = {"model": model, "hook": r.hook, "metric": r.metric, "clean": r.clean, "corrupt": r.corrupt,
              "columns": r.columns, "grid": [[round(float(x), 4) for x in row] for row in r.grid], "top": best}
    page = _page("Activation patching", model)
    add_patch(page, r, clean, corrupt, answer, wrong, k=min(top, 10))
    config = {"model": model, "clean": clean, "corrupt": corrupt, "answer": answer, "wrong": wrong, "hook": hook,
              "metric": metric, "heads": heads, "top": top, "dtype": dtype, "device": device}
    metrics = {k: result[k] for k in ("hook", "metric", "clean", "corrupt", "top")}
    where = write_run("observe-patch", config, result, metrics=metrics, page=page, out=out, no_report=no_report)
    if json_out:
        return emit_json(result)
    print_table(f"patching {r.hook} ({r.metric}): clean {r.clean:.3f}, corrupt {r.corrupt:.3f}",
                ("layer", "head" if heads else "position", "restored"),
                [(str(row["layer"]), str(row["column"]), f"{row['score']:.3f}") for row in best])
    say_where(where)


@observe_app.command()
def dla(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    prompt: str = typer.Argument(...),
    target: str = typer.Option(..., "--target", help="one token, e.g. ' Paris'"),
    wrong: str = typer.Option(None, "--wrong", help="one token: attribute the logit difference instead"),
    top: int = typer.Option(10, "--top", min=1),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    out: str = OutOpt,
    no_report: bool = NoReportOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Direct logit attribution: each head's and MLP's direct contribution to the target logit at the last
    position (through the final norm, frozen at its actual scale); the parts sum to the logit."""
    from ..observe import direct_logit_attribution
    from ..report import add_dla

    lm = load_model(model, dtype, device, quiet=json_out)
    r = direct_logit_attribution(lm, prompt, target, wrong)
    best = r.top(top)
    result = {"model": model, "prompt": prompt, "target": target, "wrong": wrong, "logit": r.logit,
              "sum_of_parts": r.total(), "top": best}
    page = _page("Direct logit attribution", model)
    add_dla(page, r, prompt, target, wrong, k=top)
    config = {"model": model, "prompt": prompt, "target": target, "wrong": wrong, "top": top, "dtype": dtype,
              "device": device}
    full = {**result, "heads": r.heads.tolist(), "mlps": r.mlps.tolist(), "attn_bias": r.attn_bias.tolist(),
            "embed": r.embed, "constant": r.constant}
    where = write_run("observe-dla", config, full, metrics=result, page=page, out=out, no_report=no_report)
    if json_out:
        return emit_json(result)
    print_table(f"direct logit attribution: logit {r.logit:.3f}, sum of parts {r.total():.3f}",
                ("part", "contribution"), [(row["part"], f"{row['contribution']:+.3f}") for row in best])
    say_where(where)


@observe_app.command()
def probe(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    data: str = typer.Option("sentiment", "--data", help="bundled set (sentiment, tense) or a CSV/JSONL with text,label"),
    hook: str = typer.Option("blocks.*.hook_resid_post", "--hook", help="hook point(s); a glob probes every layer"),
    position: str = typer.Option("last", "--position", help="last or mean"),
    task: str = typer.Option("classification", "--task", help="classification or regression"),
    seed: int = typer.Option(0, "--seed"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    out: str = OutOpt,
    no_report: bool = NoReportOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Linear probes on every layer: validation accuracy (or R^2) with bootstrap CIs, a shuffled-label
    baseline and the control task (selectivity = accuracy - control accuracy). The full report is saved
    as artifacts/probe_report.json in the run directory."""
    import json

    from ..observe import load_labelled, probe_texts
    from ..report import add_probe

    if position not in ("last", "mean"):
        raise ShoestringError(f"unknown position '{position}'", "use --position last or mean")
    if task not in ("classification", "regression"):
        raise ShoestringError(f"unknown task '{task}'", "use --task classification or regression")
    ds = load_labelled(data)
    lm = load_model(model, dtype, device, quiet=json_out)
    report = probe_texts(lm, ds.texts, ds.labels, hook=hook, position=position, task=task, seed=seed)
    rows = report.rows()
    result = {"model": model, "data": data, "metric": report.metric, "best_layer": report.best_layer, "rows": rows}
    page = _page(f"Linear probes: {data}", model)
    add_probe(page, report, data)
    config = {"model": model, "data": data, "hook": hook, "position": position, "task": task, "seed": seed,
              "dtype": dtype, "device": device}
    best = rows[report.layers.index(report.best_layer)]
    metrics = {"metric": report.metric, "best_layer": report.best_layer, "best_score": best[report.metric],
               **({"best_selectivity": best["selectivity"]} if "selectivity" in best else {}), "rows": rows}
    where = write_run("observe-probe", config, result, metrics=metrics, page=page, out=out, no_report=no_report,
                      artifacts={"probe_report": json.loads(report.to_json())})
    if json_out:
        return emit_json(result)
    cols = ["layer", report.metric, "95% CI", "shuffled"] + (["control", "selectivity"] if "control" in rows[0] else [])
    cells = []
    for r in rows:
        row = [str(r["layer"]), f"{r[report.metric]:.3f}", f"{r['ci_low']:.2f}-{r['ci_high']:.2f}", f"{r.get('shuffled', float('nan')):.3f}"]
        if "control" in r:
            row += [f"{r['control']:.3f}", f"{r['selectivity']:+.3f}"]
        cells.append(row)
    print_table(f"probe '{data}' ({len(ds.texts)} examples): best layer {report.best_layer}", cols, cells)
    say_where(where)


@observe_app.command()
def neuron(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    layer: int = typer.Option(..., "--layer"),
    neuron_index: int = typer.Option(..., "--neuron"),
    corpus: str = typer.Option("stdlib-prose", "--corpus", help="where to look for its top activations"),
    contexts: int = typer.Option(32, "--contexts", min=1, help="contexts of --context-length tokens to read"),
    context_length: int = typer.Option(64, "--context-length", min=4),
    top: int = typer.Option(10, "--top", min=1),
    text: list[str] = typer.Option(None, "--text", help="also highlight its activation on this text (repeatable)"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    out: str = OutOpt,
    no_report: bool = NoReportOpt,
    json_out: bool = JsonOpt,
) -> None:
    """An MLP neuron: the tokens it promotes and suppresses through the unembedding, and the tokens of a
    corpus where it fires most (with their contexts and a histogram of its activations)."""
    import itertools

    from ..data import load_corpus, pack_batches
    from ..observe import direct_logit_effect, neuron_direction, token_activations, top_activating
    from ..report import add_neuron

    docs = load_corpus(corpus)
    lm = load_model(model, dtype, device, quiet=json_out)
    effect = direct_logit_effect(lm, neuron_direction(lm, layer, neuron_index), k=top)
    hook = f"blocks.{layer}.mlp.hook_post"
    batches = (b.tokens for b in itertools.islice(pack_batches(docs, lm.tokenizer, context_length, 8), -(-contexts // 8)))
    acts = top_activating(lm, batches, hook, unit=neuron_index, k=top)
    result = {"model": model, "layer": layer, "neuron": neuron_index, **effect, **acts}
    lines = [(f"text {i + 1}", *token_activations(lm, t, hook, unit=neuron_index)) for i, t in enumerate(text or [])]
    if lines:
        result["texts"] = [{"tokens": toks, "values": vals} for _, toks, vals in lines]
    page = _page(f"Neuron L{layer}N{neuron_index}", model)
    add_neuron(page, f"L{layer}N{neuron_index}", effect, acts, texts=lines, corpus=corpus)
    config = {"model": model, "layer": layer, "neuron": neuron_index, "corpus": corpus, "contexts": contexts,
              "context_length": context_length, "top": top, "text": list(text or []), "dtype": dtype, "device": device}
    metrics = {"promotes": effect["promotes"], "suppresses": effect["suppresses"], "mean": acts["mean"],
               "fraction_positive": acts["fraction_positive"], "max": acts["histogram"]["max"],
               "top_tokens": [r["token"] for r in acts["top"]]}
    where = write_run("observe-neuron", config, result, metrics=metrics, page=page, out=out, no_report=no_report)
    if json_out:
        return emit_json(result)
    console.print(f"L{layer}N{neuron_index} promotes: " + ", ".join(f"{t!r}" for t, _ in effect["promotes"]))
    console.print(f"L{layer}N{neuron_index} suppresses: " + ", ".join(f"{t!r}" for t, _ in effect["suppresses"]))
    print_table(f"where it fires most in {corpus} (mean {acts['mean']:.3f}, {acts['fraction_positive']:.0%} > 0)",
                ("activation", "context", "token"),
                [(f"{r['value']:.3f}", repr(r["context"][-60:]), repr(r["token"])) for r in acts["top"]])
    say_where(where)


@observe_app.command()
def geometry(
    model: str = typer.Argument(..., help="alias, folder, .gguf file or hub id"),
    data: str = typer.Option("sentiment", "--data", help="bundled labelled set or a CSV/JSONL with text,label"),
    layer: int = typer.Option(..., "--layer"),
    k: int = typer.Option(2, "--k", min=2, help="k-means clusters"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    out: str = OutOpt,
    no_report: bool = NoReportOpt,
    json_out: bool = JsonOpt,
) -> None:
    """PCA and k-means of one layer's last-token activations for a labelled set: variance explained,
    cluster silhouette, and how well the clusters and the first component line up with the labels."""
    from ..observe import collect, geometry_summary, load_labelled
    from ..report import add_geometry

    ds = load_labelled(data)
    lm = load_model(model, dtype, device, quiet=json_out)
    name = f"blocks.{layer}.hook_resid_post"
    lm.resolve(name)
    X = collect(lm, ds.texts, hook=name)[layer]
    summary = geometry_summary(X, ds.labels, k=k)
    result = {"model": model, "layer": layer, **{key: v for key, v in summary.items() if key != "clusters"}}
    page = _page(f"Geometry of layer {layer}: {data}", model)
    add_geometry(page, summary, layer, data, ds.label_names, ds.texts)
    config = {"model": model, "data": data, "layer": layer, "k": k, "dtype": dtype, "device": device}
    metrics = {key: v for key, v in result.items() if key != "map"}
    where = write_run("observe-geometry", config, {**result, "clusters": summary["clusters"]}, metrics=metrics,
                      page=page, out=out, no_report=no_report)
    if json_out:
        return emit_json(result)
    agree = result["kmeans_label_agreement"]
    console.print(f"layer {layer}, {result['n']} examples of '{data}': PC1+PC2 explain "
                  f"{sum(result['explained_variance']):.1%}; k-means silhouette {result['kmeans_silhouette']:.3f}; "
                  f"label silhouette {result['label_silhouette']:.3f}; PC1 vs label r = {result['pc1_label_correlation']:+.3f}"
                  + (f"; clusters match labels {agree:.1%}" if agree is not None else ""))
    say_where(where)


from .observe_tour import tour  # noqa: E402  (its own file; registered here)

observe_app.command()(tour)
observe_app.command("report", help="The same as `observe tour`: a short tour of the observe tools into one report.")(tour)
