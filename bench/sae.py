"""SAE training side by side with SAELens 6.54.12: same activations, same TopK configuration.

    python bench/sae.py                      # builds its store and the SAELens venv once, then runs
    python bench/sae.py --store DIR --steps 150 --rounds 2

What runs (one process here, SAELens in its own venv, ``bench/_saelens_venv.py``):

1. Activations: SmolLM2 ``blocks.15.hook_resid_post`` from an activation store of Austen (built with
   ``shoestring cache`` if missing). The first ``steps`` shuffled batches of ``StoreSource(seed=0)`` are
   written to one float32 file, scaled to ``E||x||^2 = d_in`` with the factor our trainer computes from the
   first batch (SAELens's ``expected_average_only_in`` normalisation does the same): both libraries train on
   exactly these batches, in this order.
2. Training, interleaved rounds: shoestring's ``train_saes`` reading **from the store on disk** (its real
   path; it re-reads and re-scales the same batches) and SAELens's ``SAETrainer`` fed the file **from
   memory**. TopK, width 4608, k 32, batch 4096, same steps and learning rate; each library keeps its own
   recipe otherwise (SAELens: constant lr, AuxK coefficient 1, decoder init norm 0.1, grad clip 1; ours:
   warm-up/decay, AuxK 1/32, geometric-median b_dec). Tokens/s over the steps after ``warmup`` for both.
3. Quality: both final SAEs are evaluated by the same code (``evaluate_sae``) on held-out Austen contexts
   the store does not hold: L0, explained variance, CE recovered vs zero- and mean-ablation, KL. The SAELens
   SAE is read with our ``load_sae`` (checking that we load SAELens checkpoints), and SAELens's
   ``SAE.load_from_disk`` reads ours (checking that SAELens loads ours): outputs are compared.

Results: ``bench/results/sae.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from _common import machine, write_atomic  # noqa: E402

HOOK = "blocks.15.hook_resid_post"


def ensure_store(path: Path, tokens: int) -> Path:
    from shoestring.store import ActivationStore

    try:
        ActivationStore(path)
        return path
    except Exception:
        pass
    cmd = [sys.executable, "-m", "shoestring.cli.main", "cache", "smollm2-135m", "--corpus", "austen", "--hooks", HOOK,
           "--tokens", str(tokens), "--out", str(path)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return path


def export_acts(store, steps: int, batch: int, path: Path) -> float:
    """The first ``steps`` batches of StoreSource(seed=0), scaled; returns the scale factor."""
    import math

    from safetensors.torch import save_file

    from shoestring.sae.sources import StoreSource

    src = StoreSource(store, HOOK, batch, seed=0, epochs=100)
    rows = []
    for i, (x, _) in enumerate(src.batches()):
        if i == steps:
            break
        rows.append(x)
    acts = torch.cat(rows)
    s = math.sqrt(acts.shape[1] / float(rows[0].pow(2).sum(-1).mean()))  # the trainer's own formula
    save_file({"acts": (acts * s).contiguous()}, str(path))
    return s


def run_ours(store, args, out: Path) -> dict:
    from shoestring.sae import make_sae
    from shoestring.sae.sources import StoreSource
    from shoestring.sae.train import TrainConfig, train_saes

    stamps = {}

    def on_step(step, row):
        stamps[step] = time.perf_counter()

    sae = make_sae("topk", 576, args.width, k=args.k, hook_name=HOOK, model_name="smollm2-135m", seed=args.seed)
    src = StoreSource(store, HOOK, args.batch, seed=0, epochs=100)
    cfg = TrainConfig(tokens=args.steps * args.batch, batch_size=args.batch, lr=args.lr, seed=args.seed, checkpoint_every=10**9)
    t0 = time.perf_counter()
    res = train_saes([sae], src, cfg, out=out, progress=False, on_step=on_step)[0]
    t1 = time.perf_counter()
    timed = args.steps - args.warmup
    secs = stamps[args.steps] - stamps[args.warmup]
    return {"tokens_per_s": timed * args.batch / secs, "seconds": secs, "timed_steps": timed, "fit_seconds": t1 - t0,
            "train_explained_variance": res["explained_variance"], "dead_fraction_train": res["dead_fraction"],
            "folder": res["folder"], "sae": sae}


def run_saelens(py: Path, acts: Path, args, out: Path) -> dict:
    cmd = [str(py), str(BENCH / "_sae_anchor.py"), "--acts", str(acts), "--out", str(out), "--d-sae", str(args.width),
           "--k", str(args.k), "--batch", str(args.batch), "--steps", str(args.steps), "--lr", str(args.lr),
           "--seed", str(args.seed), "--threads", str(torch.get_num_threads()), "--warmup", str(args.warmup),
           "--hook-name", HOOK, "--model-name", "smollm2-135m"]
    from _anchors import OFFLINE_ENV

    subprocess.run(cmd, check=True, env={**os.environ, **OFFLINE_ENV}, stdout=subprocess.DEVNULL)
    return json.loads((out / "result.json").read_text())


def saelens_reads_ours(py: Path, folder: Path, sae, tmp: Path) -> dict:
    """Load our checkpoint with SAELens's SAE.load_from_disk and compare its reconstruction with ours."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, sae.cfg.d_in, generator=g) * 60
    save_file({"x": x, "ours": sae(x).detach()}, str(tmp / "probe.safetensors"))
    code = ("import json,sys,torch; from safetensors.torch import load_file; from sae_lens import SAE;"
            f"t=load_file({str(tmp / 'probe.safetensors')!r}); s=SAE.load_from_disk({str(folder)!r}, device='cpu');"
            "y=s.decode(s.encode(t['x'])); print(json.dumps({'class': type(s).__name__, 'max_abs_diff': float((y-t['ours']).abs().max()),"
            "'ref_scale': float(t['ours'].abs().max())}))")
    from _anchors import OFFLINE_ENV

    p = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env={**os.environ, **OFFLINE_ENV})
    if p.returncode:
        return {"ok": False, "error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["ok"] = r["max_abs_diff"] <= 1e-3 * max(1.0, r["ref_scale"])
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, default=BENCH / ".cache" / "sae-store")
    ap.add_argument("--store-tokens", type=int, default=800_000)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--width", type=int, default=4608)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-tokens", type=int, default=8192)
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "sae.json")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    import _saelens_venv

    py = Path(_saelens_venv.ensure(False))
    store = ensure_store(args.store, args.store_tokens)
    work = Path(tempfile.mkdtemp(prefix="sae-bench-", dir=BENCH / ".cache"))
    acts = work / "acts.safetensors"
    scale = export_acts(store, args.steps, args.batch, acts)
    print(f"activations: {args.steps} x {args.batch} rows of {HOOK}, scale {scale:.5f}", flush=True)

    ours, theirs = [], []
    for r in range(args.rounds):  # interleaved; the order alternates
        order = ["ours", "saelens"] if r % 2 == 0 else ["saelens", "ours"]
        for who in order:
            if who == "ours":
                ours.append(run_ours(store, args, work / f"ours-{r}"))
                print(f"round {r} shoestring: {ours[-1]['tokens_per_s']:,.0f} tok/s", flush=True)
            else:
                theirs.append(run_saelens(py, acts, args, work / f"saelens-{r}"))
                print(f"round {r} SAELens:    {theirs[-1]['tokens_per_s']:,.0f} tok/s", flush=True)

    import shoestring
    from shoestring.cli.sae import heldout_contexts
    from shoestring.sae import load_sae
    from shoestring.sae.evaluate import evaluate_sae
    from shoestring.store import ActivationStore

    st = ActivationStore(store)
    lm = shoestring.load("smollm2-135m")
    skip = sum(s.n_contexts for s in st.manifest.shards)
    ctx = heldout_contexts(lm, st.manifest.corpus, st.manifest.context_length, max(1, args.eval_tokens // st.manifest.context_length), skip)
    if ctx is None:
        ctx = heldout_contexts(lm, "stdlib-prose", st.manifest.context_length, max(1, args.eval_tokens // st.manifest.context_length))
    ours_sae = load_sae(ours[-1]["folder"])
    their_sae = load_sae(work / f"saelens-{args.rounds - 1}" / "sae")
    their_sae.cfg.scaling_factor = scale  # it was trained on scaled inputs: fold the factor, as SAELens would
    their_sae.fold_scaling()
    quality = {}
    for name, sae in (("shoestring", ours_sae), ("sae_lens", their_sae)):
        ev = evaluate_sae(sae, lm, ctx, progress=True)
        quality[name] = {k: ev[k] for k in ("l0", "explained_variance", "fvu", "mse", "cosine", "ce_clean", "ce_sae", "ce_zero",
                                            "ce_mean", "ce_increase", "ce_recovered_zero", "ce_recovered_mean", "kl_sae",
                                            "kl_sae_se", "ce_sae_se", "dead_fraction", "tokens")}
        print(name, {k: round(v, 4) for k, v in quality[name].items()}, flush=True)
    interop = {"saelens_loads_ours": saelens_reads_ours(py, Path(ours[-1]["folder"]), ours_sae, work),
               "we_load_saelens": {"ok": True, "class": type(their_sae).__name__}}
    med_o = statistics.median(o["tokens_per_s"] for o in ours)
    med_t = statistics.median(t["tokens_per_s"] for t in theirs)
    q_o, q_t = quality["shoestring"], quality["sae_lens"]
    result = {
        "benchmark": "sae", "machine": machine(), "anchor": {"sae-lens": theirs[0].get("sae_lens_version"), "versions": theirs[0].get("versions")},
        "config": {"hook": HOOK, "model": "smollm2-135m", "width": args.width, "k": args.k, "batch": args.batch, "steps": args.steps,
                   "lr": args.lr, "warmup_steps_excluded": args.warmup, "rounds": args.rounds, "scale": scale,
                   "store": str(store), "store_tokens": len(st), "eval_contexts": len(ctx), "eval_tokens": quality["shoestring"]["tokens"]},
        "tokens_per_s": {"shoestring": [o["tokens_per_s"] for o in ours], "sae_lens": [t["tokens_per_s"] for t in theirs]},
        "median_tokens_per_s": {"shoestring": med_o, "sae_lens": med_t},
        "speedup": med_o / med_t,
        "quality": quality,
        "interop": interop,
        "must_show": {"speedup_at_least_1_5": med_o / med_t >= 1.5, "same_l0": abs(q_o["l0"] - q_t["l0"]) < 0.5,
                      "ev_equal_or_better": q_o["explained_variance"] >= q_t["explained_variance"] - 0.005,
                      "ce_recovered_equal_or_better": q_o["ce_recovered_mean"] >= q_t["ce_recovered_mean"] - 0.005},
        "notes": "shoestring reads from the store on disk; SAELens from memory. Tokens/s exclude the first "
                 f"{args.warmup} steps for both. Quality on held-out contexts the store does not hold; EV/CE tolerance 0.005.",
    }
    write_atomic(args.out, result)
    print(json.dumps({k: result[k] for k in ("median_tokens_per_s", "speedup", "must_show", "interop")}, indent=1))


if __name__ == "__main__":
    main()
