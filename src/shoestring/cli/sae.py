"""``shoestring sae train|eval|browse|search|toy``: sparse autoencoders from a store or a stream.

``sae train`` writes a run directory (rerun the same command to resume an interrupted run)::

    runs/sae-train-<id>/
      config.toml, env.json, status.json, metrics.json
      train/checkpoint/, train/train_log.jsonl
      sae-0/  sae_weights.safetensors + cfg.json (SAELens format) + training.json + eval.json
      report.html   the feature browser of the first SAE (with --browser)
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ShoestringError
from ._common import DeviceOpt, JsonOpt, console, emit_json, load_model, print_table
from ._report import OutOpt, say_where, write_run

sae_app = typer.Typer(help="Sparse autoencoders: train (from a store or streamed), evaluate, browse features.",
                      no_args_is_help=True)


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ShoestringError(f"{what} '{text}' is not a comma-separated list of integers", f"pass e.g. {what} 32 or {what} 16,32,64")
    if not vals or min(vals) < 1:
        raise ShoestringError(f"{what} '{text}' must hold positive integers", f"pass e.g. {what} 32")
    return vals


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ShoestringError(f"{what} '{text}' is not a comma-separated list of numbers", f"pass e.g. {what} 5.0")


def heldout_contexts(lm, corpus: str, context_length: int, n_contexts: int, skip_contexts: int = 0):
    """``[n, T]`` token ids packed from the named ``corpus`` after its first ``skip_contexts``, or None."""
    from ..data import load_corpus
    from ..data.pack import take_contexts

    return take_contexts(load_corpus(corpus), lm.tokenizer, context_length, n_contexts, skip_contexts)


def check_store_width(store, hook: str, d_in: int, what: str = "the SAE") -> None:
    width = store.width(hook)
    if width != d_in:
        raise ShoestringError(f"the store's '{hook}' has width {width} but {what} reads width {d_in}",
                              "use a store cached from the SAE's model and hook, or an SAE trained on this one")


@sae_app.command("train")
def train(
    model: str = typer.Argument(None, help="model (default: the store's model, or smollm2-135m)"),
    store: str = typer.Option(None, "--store", help="activation store to train from (see `shoestring cache`)"),
    corpus: str = typer.Option(None, "--corpus", help="without --store: stream activations from the model over this corpus"),
    hook: str = typer.Option(..., "--hook", help="hook the SAE reads, e.g. blocks.15.hook_resid_post"),
    hook_out: str = typer.Option(None, "--hook-out", help="transcoder: the hook to reconstruct (e.g. blocks.5.hook_mlp_out)"),
    arch: str = typer.Option("topk", "--arch", help="topk, batchtopk, standard (ReLU + L1) or jumprelu"),
    width: int = typer.Option(..., "--width", min=1, help="number of latents (d_sae), e.g. 8x the hook's width"),
    k: str = typer.Option("32", "--k", help="active latents for topk/batchtopk; a list (16,32,64) trains one SAE each, in one pass"),
    l1: str = typer.Option("5.0", "--l1", help="sparsity coefficient for standard (L1) / jumprelu (L0); a list trains one each"),
    tokens: int = typer.Option(1_000_000, "--tokens", min=1, help="training tokens"),
    batch_size: int = typer.Option(4096, "--batch-size", min=1),
    lr: float = typer.Option(4e-4, "--lr", min=0.0),
    epochs: int = typer.Option(1, "--epochs", min=1, help="passes over the store"),
    b_dec_init: str = typer.Option("geometric_median", "--b-dec-init", help="geometric_median, mean or zeros"),
    compute_dtype: str = typer.Option("float32", "--dtype", help="float32 or bfloat16 (autocast; weights stay float32)"),
    seed: int = typer.Option(0, "--seed"),
    eval_tokens: int = typer.Option(8192, "--eval-tokens", min=0, help="held-out tokens for CE/KL evaluation; 0 skips it"),
    eval_corpus: str = typer.Option(None, "--eval-corpus", help="default: the training corpus, after what the store holds"),
    browser: bool = typer.Option(True, "--browser/--no-browser", help="write the feature browser (needs --store)"),
    context_length: int = typer.Option(256, "--context-length", min=4),
    device: str = DeviceOpt,
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Train one or several SAEs (or transcoders) in one pass, evaluate them, and write a run directory."""
    from ..runs import RunDir
    from ..sae import make_sae, sae_class
    from ..sae.sources import StoreSource, StreamSource
    from ..sae.train import TrainConfig, train_saes

    cls = sae_class(arch)
    if (store is None) == (corpus is None):
        raise ShoestringError("pass exactly one of --store and --corpus", "--store DIR trains from cached activations; --corpus NAME streams them from the model")
    sweep = [("k", v) for v in _ints(k, "--k")] if cls.architecture in ("topk", "batchtopk") else [("l1", v) for v in _floats(l1, "--l1")]
    for _, v in sweep:
        if cls.architecture in ("topk", "batchtopk") and v > width:
            raise ShoestringError(f"k={v} is larger than the SAE width {width}", f"pass --k <= {width} or a larger --width")
    tc = TrainConfig(tokens=tokens, batch_size=batch_size, lr=lr, b_dec_init=b_dec_init, compute_dtype=compute_dtype, seed=seed)
    tc.check()
    st = None
    if store:
        from ..store import ActivationStore

        st = ActivationStore(store)
        model = model or st.manifest.model
        st.width(hook)
        if hook_out:
            st.width(hook_out)
    lm = load_model(model or "smollm2-135m", "float32", device, quiet=json_out)
    if st is not None:
        src = StoreSource(st, hook, batch_size, hook_out=hook_out, seed=seed, epochs=epochs)
    else:
        from ..data import load_corpus

        src = StreamSource(lm, load_corpus(corpus), hook, batch_size, hook_out=hook_out, context_length=context_length, seed=seed)
    if st is not None:  # the model must be the one the store was cached from (same widths)
        shapes = lm.point_shapes(batch=1, pos=2)
        for h, width_ in ((hook, src.d_in), (hook_out, src.d_out)):
            if h and h in shapes and shapes[h][-1] != width_:
                raise ShoestringError(f"the store's '{h}' has width {width_} but {model}'s has {shapes[h][-1]}",
                                      f"train with the store's own model ({st.manifest.model}) or cache a store from {model}")
    config = {"model": model or "smollm2-135m", "store": str(Path(store).resolve()) if store else None, "corpus": corpus,
              "hook": hook, "hook_out": hook_out, "arch": cls.architecture, "width": width, "sweep": [list(s) for s in sweep],
              "tokens": tokens, "batch_size": batch_size, "lr": lr, "epochs": epochs, "b_dec_init": b_dec_init,
              "dtype": compute_dtype, "seed": seed, "device": device}
    run = RunDir.create(out, "sae-train", config)
    run.start()
    if not json_out:
        console.print(f"run: {run.path}" + (" (resuming)" if (run.path / "train" / "checkpoint").exists() else ""), markup=False, highlight=False)
    saes = []
    for key, v in sweep:
        extra = {"l1_coefficient": v} if cls.architecture == "standard" and key == "l1" else {"l0_coefficient": v} if key == "l1" else {}
        saes.append(make_sae(cls.architecture, src.d_in, width, k=v if key == "k" else None, hook_name=hook,
                             hook_name_out=hook_out, d_out=src.d_out, model_name=config["model"], device=lm.device.type,
                             seed=seed + len(saes), **extra))
    results = train_saes(saes, src, tc, out=run.path / "train", progress=not json_out)
    streamed = 0 if st is not None else -(-tc.steps * batch_size // src.buffer_tokens) * src.buffer_contexts
    rows = _evaluate_all(saes, results, lm, st, config, eval_tokens, eval_corpus, context_length, run, json_out, streamed)
    page = None
    if browser and st is not None:
        page = _browser(saes[0], st, lm, run.path / "report.html", f"{cls.architecture} SAE, {hook}, width {width}")
    run.finish({"saes": rows})
    if json_out:
        emit_json({"run": str(run.path), "saes": rows})
        return
    _print_rows(rows)
    say_where(page or run.path)


def _evaluate_all(saes, results, lm, st, config, eval_tokens, eval_corpus, context_length, run, quiet,
                  streamed_contexts: int = 0) -> list[dict]:
    """Evaluate on text the SAEs never saw: after the store's contexts, or after the streamed ones."""
    import shutil

    from ..runs.atomic import write_json
    from ..sae.evaluate import density_histogram, evaluate_sae

    ctx = None
    if eval_tokens:
        corpus = eval_corpus or (st.manifest.corpus if st is not None else config["corpus"])
        skip = 0 if eval_corpus else sum(s.n_contexts for s in st.manifest.shards) if st is not None else streamed_contexts
        if st is not None and not eval_corpus:  # the store's packing, so that skipping its contexts is exact
            context_length = st.manifest.context_length
        n = max(1, eval_tokens // context_length)
        ctx = heldout_contexts(lm, corpus, context_length, n, skip)
        if ctx is None:
            raise ShoestringError(f"no held-out text left in '{corpus}' after the {skip:,} contexts used for training",
                                  "pass --eval-corpus with other text (e.g. stdlib-prose)")
    rows = []
    for i, (sae, res) in enumerate(zip(saes, results)):
        row = {k: v for k, v in res.items() if k not in ("density", "folder")}
        row["density_histogram"] = density_histogram(res["density"])
        if ctx is not None:
            ev = evaluate_sae(sae, lm, ctx, progress=not quiet)
            row["eval"] = {k: v for k, v in ev.items() if k != "density"}
        folder = run.path / f"sae-{i}"
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(res["folder"], folder)
        write_json(folder / "eval.json", row)
        row["folder"] = str(folder)
        rows.append(row)
    return rows


def _print_rows(rows) -> None:
    cols = ["SAE", "k", "L0", "EV (train)", "EV (held out)", "CE rec. zero", "CE rec. mean", "ΔCE", "dead", "dense", "tok/s"]
    out = []
    for i, r in enumerate(rows):
        e = r.get("eval", {})
        f = lambda key, fmt="{:.3f}": fmt.format(e[key]) if key in e else "-"  # noqa: E731
        out.append([str(i), str(r.get("k") or "-"), f"{r['l0']:.1f}", f"{r['explained_variance']:.3f}", f("explained_variance"),
                    f("ce_recovered_zero"), f("ce_recovered_mean"), f("ce_increase"), f"{r['dead_fraction']:.1%}",
                    f"{r['dense_fraction']:.1%}", f"{r['tokens_per_s']:,.0f}"])
    print_table("SAEs", cols, out)


def _browser(sae, st, lm, path: Path, title: str, latents=None) -> Path:
    from ..report.sae import feature_browser
    from ..sae.features import feature_stats

    stats = feature_stats(sae, st, progress=True)
    return Path(feature_browser(sae, stats, st, lm.tokenizer, lm=lm, latents=latents, out_path=path, title=title))


def _load(sae_path: str, hook: str | None):
    from ..sae import load_sae

    return load_sae(sae_path, hook_name=hook)


def _sae_and_model(sae_path: str, hook: str | None, model: str | None, device: str, quiet: bool):
    """The SAE, and the model it reads (``--model``, else the SAE's own ``model_name``)."""
    sae = _load(sae_path, hook)
    return sae, load_model(model or sae.cfg.model_name or "smollm2-135m", "float32", device, quiet=quiet)


@sae_app.command("eval")
def evaluate(
    sae_path: str = typer.Argument(..., metavar="SAE", help="SAELens-format folder (sae_weights.safetensors + cfg.json) or params.npz"),
    model: str = typer.Option(None, "--model", help="default: the SAE's model_name"),
    corpus: str = typer.Option("stdlib-prose", "--corpus"),
    tokens: int = typer.Option(8192, "--tokens", min=4),
    hook: str = typer.Option(None, "--hook", help="override the SAE's hook (needed for Gemma Scope npz)"),
    context_length: int = typer.Option(256, "--context-length", min=4),
    device: str = DeviceOpt,
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """L0, explained variance, CE/KL spliced vs clean, zero- and mean-ablation, dead and dense fractions.

    Writes a run directory (metrics.json holds the numbers, artifacts/result.json the density histogram)."""
    from ..sae.evaluate import density_histogram, evaluate_sae

    sae, lm = _sae_and_model(sae_path, hook, model, device, json_out)
    ctx = heldout_contexts(lm, corpus, context_length, max(1, tokens // context_length))
    if ctx is None:
        raise ShoestringError(f"the corpus '{corpus}' gave no context of {context_length} tokens", "pass a bigger corpus or a smaller --context-length")
    full = evaluate_sae(sae.to(lm.device), lm, ctx, progress=not json_out)
    res = {k: v for k, v in full.items() if k != "density"}
    config = {"sae": str(Path(sae_path).resolve()), "model": model or sae.cfg.model_name, "hook": sae.cfg.hook_name,
              "corpus": corpus, "tokens": tokens, "context_length": context_length, "device": device}
    where = write_run("sae-eval", config, {**res, "density_histogram": density_histogram(full["density"])}, metrics=res, out=out)
    if json_out:
        emit_json(res)
        return
    print_table(f"{sae}", ["metric", "value"], [[k, f"{v:.4g}" if isinstance(v, float) else str(v)] for k, v in res.items()])
    say_where(where)


@sae_app.command("browse")
def browse(
    sae_path: str = typer.Argument(..., metavar="SAE"),
    store: str = typer.Option(..., "--store", help="activation store of the SAE's hook (top contexts come from it)"),
    model: str = typer.Option(None, "--model", help="for promoted/suppressed tokens; default: the store's model"),
    hook: str = typer.Option(None, "--hook"),
    features: str = typer.Option(None, "--features", help="comma-separated latents to include (default: the most active alive ones)"),
    device: str = DeviceOpt,
    out: str = OutOpt,
) -> None:
    """Write a self-contained HTML feature browser (list, search, one page per feature)."""
    from ..runs import RunDir
    from ..store import ActivationStore

    sae = _load(sae_path, hook)
    st = ActivationStore(store)
    check_store_width(st, sae.cfg.hook_name, sae.cfg.d_in)
    lm = load_model(model or st.manifest.model, "float32", device)
    latents = _ints(features, "--features") if features else None
    if latents and max(latents) >= sae.cfg.d_sae:
        raise ShoestringError(f"feature {max(latents)} is out of range", f"the SAE has {sae.cfg.d_sae} latents: 0 to {sae.cfg.d_sae - 1}")
    run = RunDir.create(out, "sae-browse", {"sae": str(Path(sae_path).resolve()), "store": str(Path(store).resolve()), "features": features})
    run.start()
    page = _browser(sae, st, lm, run.path / "report.html", f"{sae}", latents)
    run.finish({"sae": str(sae_path)})
    say_where(page)


@sae_app.command("search")
def search(
    sae_path: str = typer.Argument(..., metavar="SAE"),
    text: str = typer.Argument(..., help="text to look for features in"),
    model: str = typer.Option(None, "--model"),
    hook: str = typer.Option(None, "--hook"),
    top: int = typer.Option(10, "--top", min=1),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Which features fire on this text, and on which tokens."""
    from ..sae.features import search_by_text

    sae, lm = _sae_and_model(sae_path, hook, model, device, json_out)
    rows = search_by_text(sae, lm, text, top=top)
    if json_out:
        emit_json(rows)
        return
    print_table(f"features firing on {text[:40]!r}", list(rows[0].keys()) if rows else ["latent"],
                [[str(v) for v in r.values()] for r in rows])


def _lines(path: str, what: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ShoestringError(f"{what} file {path} does not exist", "pass a text file with one example per line")
    rows = [r.strip() for r in p.read_text(errors="replace").splitlines() if r.strip()]
    if not rows:
        raise ShoestringError(f"{what} file {path} holds no text", "put one example per line")
    return rows


@sae_app.command("contrast")
def contrast(
    sae_path: str = typer.Argument(..., metavar="SAE"),
    set_a: str = typer.Option(..., "--a", help="text file, one example per line (the set features should fire on)"),
    set_b: str = typer.Option(..., "--b", help="text file, one example per line (the comparison set)"),
    model: str = typer.Option(None, "--model"),
    hook: str = typer.Option(None, "--hook"),
    top: int = typer.Option(10, "--top", min=1),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Features that fire more on set A than on set B (moderated t of each text's max activation)."""
    from ..sae.features import search_by_contrast

    a, b = _lines(set_a, "--a"), _lines(set_b, "--b")
    sae, lm = _sae_and_model(sae_path, hook, model, device, json_out)
    rows = search_by_contrast(sae, lm, a, b, top=top)
    if json_out:
        emit_json(rows)
        return
    print_table(f"features: {len(a)} texts in A vs {len(b)} in B", list(rows[0].keys()) if rows else ["latent"],
                [[f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()] for r in rows])


@sae_app.command("toy")
def toy(
    d: int = typer.Option(64, "--d", min=2, help="activation width"),
    features: int = typer.Option(256, "--features", min=2, help="true dictionary size (> d: superposition)"),
    p: float = typer.Option(0.02, "--p", help="firing probability of each true feature"),
    width: int = typer.Option(512, "--width", min=1),
    k: int = typer.Option(8, "--k", min=1),
    steps: int = typer.Option(1500, "--steps", min=1),
    json_out: bool = JsonOpt,
) -> None:
    """Ground truth: train a TopK SAE on activations from a known sparse dictionary; report how well it recovers it."""
    from ..sae import make_sae
    from ..sae.toy import ToyDictionary, mean_max_cosine
    from ..sae.train import TrainConfig, train_saes

    if not 0 < p < 1:
        raise ShoestringError(f"--p {p} is not a probability", "pass a number between 0 and 1, e.g. 0.02")
    truth = ToyDictionary(d=d, n_features=features, p=p)
    sae = make_sae("topk", d, width, k=k)

    class _Src:
        def batches(self, skip=0):
            return truth.batches(skip, 1024)

    res = train_saes([sae], _Src(), TrainConfig(tokens=1024 * steps, batch_size=1024, lr=3e-3), progress=not json_out)[0]
    out = {"mean_max_cosine": mean_max_cosine(truth.features, sae.W_dec.detach()),
           "random_baseline": mean_max_cosine(truth.features, make_sae("topk", d, width, k=k, seed=1).W_dec.detach()),
           "explained_variance": res["explained_variance"], "l0": res["l0"], "true_l0": features * p}
    if json_out:
        emit_json(out)
        return
    print_table("toy dictionary recovery", ["metric", "value"], [[k2, f"{v:.3f}"] for k2, v in out.items()])
