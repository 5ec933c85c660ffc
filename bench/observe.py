"""Side-by-side: shoestring's Observe tools vs TransformerLens 4.3, scikit-learn and tuned-lens 0.2, on CPU.

    python bench/observe.py                   # from the repo root, with the project's .venv python (~12-15 min)
    python bench/observe.py --quick           # 2 rounds, tiny budgets: checks that everything runs, measures nothing
    python bench/observe.py --only probes     # one case (logit_lens, head_census, patching, probes, tuned_lens)

Like ``bench/hooks.py`` the script re-executes itself inside ``bench/.cache/anchors-venv`` (built once by
``bench/_anchors.py``), so every contender runs in ONE process on SmolLM2-135M (``shoestring.load()``), fp32,
``torch.set_num_threads(2)``, with the same inputs. Each case first runs every contender once and checks
that they agree (that call is the warm-up), then times them interleaved (A B A B ..., the starting
contender rotating each round) and reports medians. Ratios: ``<anchor>_speedup`` = anchor time / our time
(above 1: we are faster), ``*_ratio`` = ours / reference.

Cases:
  logit_lens   ``logit_lens`` (30 layers, last position of a 64-token prompt) vs TransformerLens's one-call
               ``tools.analysis.logit_lens`` and its hand recipe (run_with_cache + accumulated_resid +
               apply_ln_to_stack + unembed); top-1 token per layer must agree.
  head_census  ``head_census`` (repeated random tokens) vs TL ``run_with_cache`` of ``hook_pattern`` + the same
               scores; all layers, and two layers (17, 18).
  patching     ``patch_residual`` (resid_pre, layers x positions) vs ``transformer_lens.patching.get_act_patch_resid_pre``.
  probes       ``probe_layers`` (CV-chosen L2, bootstrap CI, all 30 layers) vs scikit-learn ``LogisticRegressionCV``
               with the same split, folds and L2 grid, on the same features (fit only).
  tuned_lens   ``fit_tuned_lens`` (closed-form ridge, streamed) vs the tuned-lens package's training step (SGD on
               the KL to the final logits) on the same packed text for the same token budget: tokens/s, and the
               held-out KL per layer of each lens (``lens_kl``).

Result: ``bench/results/observe.json`` (written atomically) and a table on stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "observe.json"
sys.path.insert(0, str(HERE))

import _anchors  # noqa: E402
from _common import interleave, machine, paired_ratio, stats, write_atomic  # noqa: E402

# bench/ is on sys.path (the script's folder): bench/tuned_lens.py would shadow the tuned-lens package
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != HERE]

CASES = ("logit_lens", "head_census", "patching", "probes", "tuned_lens")
HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"

# 64 tokens with SmolLM2's tokenizer (checked at run time and recorded)
PROMPT = ("The old lighthouse keeper climbed the spiral stairs every evening at dusk, carrying a lamp, a book and a "
          "flask of tea. From the top he could see the whole bay: the fishing boats coming home, the gulls circling "
          "the harbour wall, and far out on the horizon the grey shape of the island where his brother")
CLEAN, CORRUPT, ANSWER, WRONG = "The Eiffel Tower is in the city of", "The Colosseum is in the city of", " Paris", " Rome"

# per case: max rounds, the time (s) after which rounds stop, and the rounds that always run. TransformerLens
# patching is ~270 forward passes (~45-50 s a call on 2 quiet cores), hence its 3 rounds.
FULL = {"rounds": {"logit_lens": 15, "head_census": 12, "patching": 3, "probes": 6},
        "budget_s": {"logit_lens": 30.0, "head_census": 30.0, "patching": 240.0, "probes": 90.0},
        "min_rounds": {"logit_lens": 5, "head_census": 5, "patching": 3, "probes": 4},
        "census": {"seq_len": 32, "batch": 4},
        "tuned_lens": {"fit_tokens": 2048, "eval_tokens": 1024, "context_length": 256, "batch_size": 4}}
QUICK = {"rounds": {k: 2 for k in FULL["rounds"]}, "budget_s": FULL["budget_s"],
         "min_rounds": {k: 2 for k in FULL["rounds"]},
         "census": {"seq_len": 8, "batch": 2},
         "tuned_lens": {"fit_tokens": 256, "eval_tokens": 128, "context_length": 64, "batch_size": 2}}


def _err(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:800]


def _max_diff(a, b) -> float:
    return float((a.float() - b.float()).abs().max())


# ---------------------------------------------------------------------------------------------
# shared state


class Ctx:
    """The model, the TransformerLens bridge (booted once, on its own copy), settings, anchor notes."""

    def __init__(self, lm, args, report):
        self.lm, self.args, self.report = lm, args, report
        self.cfg = QUICK if args.quick else FULL
        self._bridge = None
        self._bridge_tried = False

    def bridge(self):
        """TransformerBridge on a deep copy (it swaps submodules and switches to eager attention)."""
        if self._bridge_tried:
            return self._bridge
        self._bridge_tried = True
        tl = self.report["anchors"]["transformer_lens"]
        if not tl.get("version"):
            return None
        import torch

        try:
            from transformer_lens.model_bridge import TransformerBridge

            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._bridge = TransformerBridge.boot_transformers(
                    HUB_NAME, hf_model=copy.deepcopy(self.lm.model), tokenizer=self.lm.tokenizer, device="cpu",
                    dtype=torch.float32)
            self._bridge.eval()
            tl["boot_s"] = round(time.perf_counter() - t0, 3)
            inner = getattr(self._bridge, "original_model", None)
            tl["attn_implementation"] = getattr(getattr(inner, "config", None), "_attn_implementation", "unknown")
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            tl["error"] = _err(err)
        return self._bridge

    def time_group(self, case: str, runs: dict, ours: str) -> dict:
        """Interleaved rounds; per contender stats, and ``<anchor>_speedup`` = anchor / ours (median,
        median of same-round ratios, fastest calls)."""
        t0 = time.perf_counter()
        times = interleave(runs, self.cfg["rounds"][case], budget_s=self.cfg["budget_s"][case],
                           min_repeats=self.cfg["min_rounds"][case])
        out = {"rounds": len(times[ours]), "wall_s": round(time.perf_counter() - t0, 1),
               "cases": {k: stats(v) for k, v in times.items()}, "speedups": {}, "paired_speedups": {},
               "min_speedups": {}}
        for k, v in times.items():
            if k == ours:
                continue
            anchor = k
            out["speedups"][f"{anchor}_speedup"] = round(out["cases"][k]["median_s"] / out["cases"][ours]["median_s"], 4)
            out["paired_speedups"][f"{anchor}_speedup"] = paired_ratio(v, times[ours])
            out["min_speedups"][f"{anchor}_speedup"] = round(min(v) / min(times[ours]), 4)
        print(f"  {case}: {len(runs)} contenders x {out['rounds']} rounds in {out['wall_s']} s", flush=True)
        return out


# ---------------------------------------------------------------------------------------------
# 1. logit lens


def case_logit_lens(ctx: Ctx) -> dict:
    import torch

    from shoestring.observe import logit_lens

    lm = ctx.lm
    n = lm.n_layers
    ids = lm.tokenize(PROMPT)["input_ids"]
    res: dict = {"what": "logit lens: resid_post of every layer at the last position -> final norm -> unembed "
                         "-> log-softmax over the full vocabulary",
                 "prompt": PROMPT, "n_tokens": int(ids.shape[1]), "layers": n, "checks": {}}

    def ours():
        return logit_lens(lm, PROMPT).logprobs  # [n_layers, d_vocab]

    runs = {"shoestring_logit_lens": ours}
    tl = ctx.bridge()
    if tl is not None:
        try:
            from transformer_lens.tools.analysis.logit_lens import _residual_hook_names
            from transformer_lens.tools.analysis.logit_lens import logit_lens as tl_logit_lens
        except ImportError as err:
            tl_logit_lens, res["transformer_lens_tool_error"] = None, _err(err)
            wanted = {f"blocks.{L}.hook_resid_pre" for L in range(n)} | {f"blocks.{n - 1}.hook_resid_post"}
        else:
            wanted = set(_residual_hook_names(n, False))

        def tl_recipe():
            with torch.no_grad():
                _, cache = tl.run_with_cache(ids, names_filter=lambda s: s in wanted)
                stack = cache.accumulated_resid(layer=None, pos_slice=-1)  # [n+1, batch, d]: 0_pre .. final_post
                stack = cache.apply_ln_to_stack(stack[1:], layer=None, pos_slice=-1, recompute_ln=True)
                return tl.unembed(stack)[:, 0].float().log_softmax(-1)  # resid_post 0..n-1: [n, d_vocab]

        runs["transformer_lens_recipe"] = tl_recipe
        if tl_logit_lens is not None:
            def tl_tool():
                with torch.no_grad():
                    r = tl_logit_lens(tl, ids, layers=list(range(1, n + 1)), top_k=1, return_type="log_probs")
                return r.readout.top_ids.reshape(n), r.readout.values.reshape(n)

            runs["transformer_lens_logit_lens"] = tl_tool

    # correctness first (this call is every contender's warm-up)
    got = {k: fn() for k, fn in runs.items()}
    mine = got["shoestring_logit_lens"]
    top = mine.argmax(-1)
    res["shoestring_top1"] = [lm.tokenizer.decode([int(t)]) for t in top]
    for k, v in got.items():
        if k == "shoestring_logit_lens":
            continue
        ids_k, lp_k = (v.argmax(-1), v.max(-1).values) if isinstance(v, torch.Tensor) else v
        same = (ids_k == top)
        entry = {"top1_agree_layers": int(same.sum()), "of": n, "all_agree": bool(same.all()),
                 "disagree": [{"layer": int(L), "shoestring": lm.tokenizer.decode([int(top[L])]),
                               k: lm.tokenizer.decode([int(ids_k[L])])} for L in (~same).nonzero().flatten()],
                 "top1_logprob_max_abs_diff": _max_diff(lp_k, mine.max(-1).values)}
        if isinstance(v, torch.Tensor):
            entry["logprobs_max_abs_diff"] = _max_diff(v, mine)
        res["checks"][k] = entry
    res["checks"]["all_agree"] = all(e["all_agree"] for e in res["checks"].values())
    res["timing"] = ctx.time_group("logit_lens", runs, "shoestring_logit_lens")
    return res


# ---------------------------------------------------------------------------------------------
# 2. head census

SCORE_NAMES = ("previous_token", "duplicate_token", "induction", "sink", "local")


def census_ids(lm, seq_len: int, batch: int, seed: int = 0):
    """The inputs ``head_census`` builds: BOS + ``seq_len`` random tokens, repeated (same generator)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    vocab = lm.anatomy.d_vocab
    rand = torch.randint(min(1000, vocab // 4), vocab, (batch, seq_len), generator=g)
    bos = lm.tokenizer.bos_token_id
    parts = ([torch.full((batch, 1), bos)] if bos is not None else []) + [rand, rand]
    return torch.cat(parts, dim=1), (1 if bos is not None else 0)


def census_scores(patterns: list, seq_len: int, off: int, window: int = 3) -> dict:
    """The census's scores from ``[batch, head, q, k]`` patterns, one per layer (the same arithmetic)."""
    import torch

    T = patterns[0].shape[-1]
    q = torch.arange(T)
    second = q >= off + seq_len
    out = {k: [] for k in SCORE_NAMES}
    for pat in patterns:
        p = pat.float().mean(0)
        vals = (p[:, q[1:], q[1:] - 1].mean(-1),
                p[:, q[second], q[second] - seq_len].mean(-1),
                p[:, q[second], q[second] - seq_len + 1].mean(-1),
                p[:, 1:, 0].mean(-1),
                torch.stack([p[:, t, max(0, t - window + 1): t + 1].sum(-1) for t in range(T)], -1).mean(-1))
        for k, v in zip(SCORE_NAMES, vals):
            out[k].append(v)
    return {k: torch.stack(v) for k, v in out.items()}


def case_head_census(ctx: Ctx) -> dict:
    import torch

    from shoestring.observe import head_census

    lm = ctx.lm
    S, B = ctx.cfg["census"]["seq_len"], ctx.cfg["census"]["batch"]
    ids, off = census_ids(lm, S, B)
    res: dict = {"what": "attention-head census on BOS + repeated random tokens: previous-token, duplicate, "
                         "induction, sink and local scores per head",
                 "seq_len": S, "batch": B, "tokens_per_row": int(ids.shape[1]), "groups": {}, "checks": {}}
    tl = ctx.bridge()
    groups = {"all_layers": list(range(lm.n_layers)), "layers_17_18": [17, 18]}
    for group, layers in groups.items():
        def ours(layers=layers):
            return head_census(lm, seq_len=S, batch=B, seed=0, layers=layers).scores

        runs = {"shoestring_head_census": ours}
        if tl is not None:
            names = [f"blocks.{L}.attn.hook_pattern" for L in layers]
            wanted = set(names)

            def tl_census(names=names, wanted=wanted):
                x, o = census_ids(lm, S, B)
                with torch.no_grad():
                    _, cache = tl.run_with_cache(x, names_filter=lambda s: s in wanted)
                return census_scores([cache[nm] for nm in names], S, o)

            runs["transformer_lens_run_with_cache"] = tl_census
        got = {k: fn() for k, fn in runs.items()}
        mine = got["shoestring_head_census"]
        chk = {}
        for k, v in got.items():
            if k == "shoestring_head_census":
                continue
            diffs = {s: _max_diff(v[s], mine[s]) for s in SCORE_NAMES}
            ind_top = [int(i) for i in mine["induction"].flatten().topk(5).indices]
            chk[k] = {"max_abs_diff": diffs, "tolerance": 1e-3,
                      "induction_allclose": bool(torch.allclose(v["induction"], mine["induction"], atol=1e-3)),
                      "all_scores_allclose": all(d <= 1e-3 for d in diffs.values()),
                      "top5_induction_heads_same": ind_top == [int(i) for i in v["induction"].flatten().topk(5).indices]}
        H = mine["induction"].shape[1]
        top = mine["induction"].flatten().topk(min(5, mine["induction"].numel()))
        chk["shoestring_top_induction"] = [{"layer": layers[int(i) // H], "head": int(i) % H, "score": round(float(s), 4)}
                                           for s, i in zip(top.values, top.indices)]
        res["checks"][group] = chk
        res["groups"][group] = {"layers": layers, "timing": ctx.time_group("head_census", runs, "shoestring_head_census")}
    res["checks"]["all_agree"] = all(c["induction_allclose"] for g in res["checks"].values() if isinstance(g, dict)
                                     for c in g.values() if isinstance(c, dict))
    return res


# ---------------------------------------------------------------------------------------------
# 3. activation patching


def case_patching(ctx: Ctx) -> dict:
    import torch

    from shoestring.observe import patch_residual

    lm = ctx.lm
    clean_ids, corrupt_ids = lm.tokenize(CLEAN)["input_ids"], lm.tokenize(CORRUPT)["input_ids"]
    a, w = (lm.tokenizer.encode(t, add_special_tokens=False) for t in (ANSWER, WRONG))
    res: dict = {"what": "patch the clean resid_pre at every (layer, position) into the corrupt run; score "
                         "(logit_diff - corrupt) / (clean - corrupt), logit_diff = logit[answer] - logit[wrong] "
                         "at the last position",
                 "clean": CLEAN, "corrupt": CORRUPT, "answer": ANSWER, "wrong": WRONG,
                 "n_pos": int(clean_ids.shape[1]), "layers": lm.n_layers, "patches": lm.n_layers * int(clean_ids.shape[1]),
                 "shoestring_batch_size": 16, "checks": {}}
    assert len(a) == 1 and len(w) == 1 and clean_ids.shape == corrupt_ids.shape
    a, w = a[0], w[0]

    def ours():
        return patch_residual(lm, CLEAN, CORRUPT, ANSWER, WRONG, hook="resid_pre").grid

    runs = {"shoestring_patch_residual": ours}
    tl = ctx.bridge()
    if tl is not None:
        try:
            from transformer_lens.patching import get_act_patch_resid_pre
        except ImportError as err:  # not in this version: no hand loop here, say so
            res["transformer_lens_error"] = _err(err)
            get_act_patch_resid_pre = None
        if get_act_patch_resid_pre is not None:
            def ld(logits):
                return logits[0, -1, a] - logits[0, -1, w]

            def tl_patch():
                with torch.no_grad():
                    clean_logits, clean_cache = tl.run_with_cache(clean_ids, names_filter=lambda s: s.endswith("hook_resid_pre"))
                    clean_m, corrupt_m = float(ld(clean_logits)), float(ld(tl(corrupt_ids)))
                    grid = get_act_patch_resid_pre(tl, corrupt_ids, clean_cache,
                                                   lambda logits: (ld(logits) - corrupt_m) / (clean_m - corrupt_m))
                return grid

            runs["transformer_lens_get_act_patch_resid_pre"] = tl_patch
    got = {k: fn() for k, fn in runs.items()}
    mine = got["shoestring_patch_residual"]
    res["shoestring_grid_shape"] = list(mine.shape)
    for k, v in got.items():
        if k == "shoestring_patch_residual":
            continue
        same_shape = tuple(v.shape) == tuple(mine.shape)
        d = _max_diff(v, mine) if same_shape else None
        res["checks"][k] = {"shape": list(v.shape), "same_shape": same_shape, "max_abs_diff": d, "tolerance": 1e-3,
                            "allclose": same_shape and d <= 1e-3,
                            "argmax_same": same_shape and int(v.argmax()) == int(mine.argmax())}
    res["checks"]["all_agree"] = all(c["allclose"] for c in res["checks"].values())
    res["timing"] = ctx.time_group("patching", runs, "shoestring_patch_residual")
    return res


# ---------------------------------------------------------------------------------------------
# 4. linear probes


def case_probes(ctx: Ctx) -> dict:
    import numpy as np

    from shoestring.observe import collect, load_labelled, probe_layers
    from shoestring.observe.probe_fit import LOGISTIC_GRID, kfold, split_indices

    lm = ctx.lm
    data = load_labelled("sentiment")
    t0 = time.perf_counter()
    feats = collect(lm, data.texts)  # {layer: [n, d]}, resid_post of every layer at the last token
    collect_s = time.perf_counter() - t0
    labels = [int(y) for y in data.labels]
    n_boot, seed, val_fraction, k_folds = 1000, 0, 0.3, 5
    classes = sorted(set(labels))
    y = np.array([classes.index(v) for v in labels])
    tr, va = split_indices(labels, val_fraction, seed, stratify=True)
    k = max(2, min(k_folds, min(int((y[tr] == c).sum()) for c in range(len(classes)))))
    folds = kfold(y[tr].tolist(), k, seed, stratify=True)  # positions into the training split
    cv = [(np.setdiff1d(np.arange(len(tr)), np.array(held)), np.array(held)) for held in folds]
    grid = sorted(LOGISTIC_GRID)
    n_tr = len(tr)
    Cs = [1.0 / (lam * n_tr) for lam in grid]  # mean CE + l2/2 |w|^2  <=>  C * sum CE + 1/2 |w|^2
    res: dict = {"what": "one L2 logistic-regression probe per layer on the same features: L2 chosen by k-fold CV "
                         "(held-out log-loss) on the training split, refit, validation accuracy + 95% bootstrap CI",
                 "dataset": "sentiment", "n": len(labels), "n_train": n_tr, "n_val": len(va), "layers": len(feats),
                 "d": int(next(iter(feats.values())).shape[1]), "k_folds": k, "l2_grid": grid, "n_boot": n_boot,
                 "collect_s": round(collect_s, 3),
                 "notes": ["shoestring: probe_layers(control=False, shuffled=False) so both do the same work; standardises "
                           "each fit with its own training rows; binary: exact Newton in the dual",
                           "scikit-learn: StandardScaler fitted on the training split, then LogisticRegressionCV(Cs=1/(l2*n_train), "
                           "cv=the same folds, scoring='neg_log_loss', lbfgs, max_iter=1000), accuracy and a numpy "
                           "percentile bootstrap (n_boot) on the validation split; C maps exactly onto l2 for the refit "
                           "(fold fits see ~(k-1)/k of the rows, so their effective L2 is ~k/(k-1) larger)"],
                 "checks": {}}
    X = {L: f.numpy().astype(np.float64) for L, f in feats.items()}

    def ours():
        r = probe_layers(feats, labels, n_boot=n_boot, seed=seed, control=False, shuffled=False,
                         val_fraction=val_fraction, k_folds=k_folds)
        return {"accuracy": list(r.score), "l2": list(r.l2), "ci": list(zip(r.ci_low, r.ci_high))}

    runs = {"shoestring_probe_layers": ours}
    sk = ctx.report["anchors"]["scikit_learn"]
    if sk.get("version"):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegressionCV
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        def sklearn_cv():
            out = {"accuracy": [], "l2": [], "ci": []}
            rng = np.random.default_rng(seed)
            with threadpool_limits(ctx.args.threads), warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                for L in X:
                    sc = StandardScaler().fit(X[L][tr])
                    clf = LogisticRegressionCV(Cs=Cs, cv=cv, scoring="neg_log_loss", max_iter=1000)
                    clf.fit(sc.transform(X[L][tr]), y[tr])
                    correct = (clf.predict(sc.transform(X[L][va])) == y[va]).astype(np.float64)
                    boot = correct[rng.integers(0, len(va), (n_boot, len(va)))].mean(1)
                    lo, hi = np.quantile(boot, [0.025, 0.975])
                    out["accuracy"].append(float(correct.mean()))
                    out["l2"].append(float(1.0 / (float(clf.C_[0]) * n_tr)))
                    out["ci"].append((float(lo), float(hi)))
            return out

        runs["sklearn_logistic_regression_cv"] = sklearn_cv
    else:
        res["sklearn_error"] = sk.get("error")
    got = {k: fn() for k, fn in runs.items()}
    mine = got["shoestring_probe_layers"]
    res["shoestring"] = {"accuracy": [round(v, 4) for v in mine["accuracy"]], "l2": mine["l2"],
                         "ci": [[round(a, 4), round(b, 4)] for a, b in mine["ci"]],
                         "best_layer": int(np.argmax(mine["accuracy"])), "mean_accuracy": round(float(np.mean(mine["accuracy"])), 4)}
    for k, v in got.items():
        if k == "shoestring_probe_layers":
            continue
        diff = np.abs(np.array(v["accuracy"]) - np.array(mine["accuracy"]))
        res[k] = {"accuracy": [round(a, 4) for a in v["accuracy"]], "l2": [float(f"{x:.3g}") for x in v["l2"]],
                  "ci": [[round(a, 4), round(b, 4)] for a, b in v["ci"]], "best_layer": int(np.argmax(v["accuracy"])),
                  "mean_accuracy": round(float(np.mean(v["accuracy"])), 4)}
        one = 1.0 / len(va)
        res["checks"][k] = {"max_abs_accuracy_diff": round(float(diff.max()), 4),
                            "mean_abs_accuracy_diff": round(float(diff.mean()), 4),
                            "layers_within_one_example": int((diff <= one + 1e-9).sum()), "of": len(diff),
                            "same_l2_layers": int(sum(abs(np.log10(p) - np.log10(q)) < 0.01 for p, q in zip(v["l2"], mine["l2"]))),
                            "mean_accuracy_diff": round(float(np.mean(v["accuracy"]) - np.mean(mine["accuracy"])), 4),
                            "tolerance": "every layer within 2 validation examples",
                            "agree": bool(diff.max() <= 2 * one + 1e-9)}
    res["checks"]["all_agree"] = all(c["agree"] for c in res["checks"].values())
    res["timing"] = ctx.time_group("probes", runs, "shoestring_probe_layers")
    return res


# ---------------------------------------------------------------------------------------------
# 5. tuned lens


class PackageLensAdapter:
    """Lets ``lens_kl`` read the tuned-lens package's lens: resid_post of layer L is HF ``hidden_states[L+1]``,
    the package's translator index L+1 (index 0 is the embeddings); the last layer needs none."""

    def __init__(self, lens, n_layers: int):
        self.lens, self.n_layers = lens, n_layers

    def check_model(self, lm) -> None:
        assert self.n_layers == lm.n_layers

    def translate(self, layer: int, resid):
        import torch

        if layer in (self.n_layers - 1, -1):
            return resid
        with torch.no_grad():
            return self.lens.transform_hidden(resid, layer + 1)


def _package_compat(note: dict) -> None:
    """tuned-lens 0.2.0 asks ``isinstance(model, transformer_lens.HookedTransformer)`` whenever transformer-lens
    imports; transformer-lens 4.x removed that class and raises ImportError on the attribute. Its
    ``_transformer_lens_available`` flag only selects that TL branch: turn it off so the package takes its
    Hugging Face path (the same code it runs without transformer-lens installed). Recorded in the JSON."""
    from tuned_lens import model_surgery

    if not model_surgery._transformer_lens_available:
        return
    try:
        model_surgery.tl.HookedTransformer  # noqa: B018
    except ImportError as err:
        model_surgery._transformer_lens_available = False
        note["workaround"] = ("tuned_lens.model_surgery._transformer_lens_available set to False: with transformer-lens "
                              f"4.x installed beside it, its model checks fail ({_err(err)[:160]}...); the flag only "
                              "guards its HookedTransformer branch, so it now runs its plain Hugging Face path")


def _package_train(lm, batches, tokens: int, lens, n_steps: int, autocast: bool) -> dict:
    """The training step of tuned-lens 0.2.0's ``scripts/train_loop.py`` (``Train.execute``), in-process:
    frozen model forward with ``output_hidden_states``, KL(final || lens) per translator (labels = the final
    log-softmax, ``token_shift`` 0), one backward per layer under bf16 autocast, grad-norm clip 1.0, SGD
    (Nesterov, lr = 1 - momentum, momentum 0.9, weight decay 1e-3) with the linear schedule and no warm-up,
    one optimiser step per batch. Loss averaged over real tokens (packed batches mark padding / inserted BOS); the
    last batch is cut to exactly ``tokens`` real tokens, as ``fit_tuned_lens`` cuts its last batch."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    beta = 0.9
    params = [p for p in lens.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1.0 * (1 - beta), momentum=beta, nesterov=True, weight_decay=1e-3)
    sched = get_linear_schedule_with_warmup(opt, 0, max(1, n_steps))
    seen, steps, losses = 0, 0, []
    for toks, keep in batches:
        if seen >= tokens:
            break
        with torch.no_grad():
            out = lm.model(input_ids=toks, output_hidden_states=True)
        labels = out.logits.float().log_softmax(dim=-1)
        keep = keep & (keep.flatten().cumsum(0) <= tokens - seen).view_as(keep)  # the budget's last tokens
        mask = keep.to(labels.dtype)
        step_loss = []
        for i, h in enumerate(out.hidden_states[:-1]):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = lens(h, idx=i)
                kl = torch.sum(labels.exp() * (labels - logits.log_softmax(-1)), dim=-1)
                loss = (kl * mask).sum() / mask.sum().clamp(min=1)
            step_loss.append(float(loss))
            loss.backward()
        torch.nn.utils.clip_grad_norm_(lens.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)
        sched.step()
        seen += int(keep.sum())
        steps += 1
        losses.append(sum(step_loss) / len(step_loss))
    return {"tokens": seen, "steps": steps, "mean_train_kl_per_step": [round(x, 4) for x in losses]}


def case_tuned_lens(ctx: Ctx) -> dict:
    import torch

    from shoestring.data import list_builtins, load_corpus, pack_batches, split
    from shoestring.observe import fit_tuned_lens, lens_kl

    lm = ctx.lm
    c = ctx.cfg["tuned_lens"]
    T, B, N = c["context_length"], c["batch_size"], c["fit_tokens"]
    here = [b.name for b in list_builtins() if b.available]
    corpus_name = "austen" if "austen" in here else "stdlib-code"
    train, val = split(load_corpus(corpus_name), val_fraction=0.1, seed=0)
    res: dict = {"what": "fit a tuned lens on the same packed training text for the same token budget; tokens/s of "
                         "the fit, then mean KL(final || lens) per layer on held-out documents (lens_kl)",
                 "corpus": corpus_name, "split": "10% of documents held out (shoestring.data.split, seed 0)",
                 "context_length": T, "batch_size": B, "fit_tokens": N, "eval_tokens": c["eval_tokens"],
                 "checks": {}}
    pkg = ctx.report["anchors"]["tuned_lens"]

    def batches(batch_size):
        for b in pack_batches(train, lm.tokenizer, T, batch_size):
            yield b.tokens, b.doc_ids >= 0

    def fit_ours(tokens):
        t0 = time.perf_counter()
        lens = fit_tuned_lens(lm, train, tokens=tokens, context_length=T, batch_size=B, progress=False)
        return lens, time.perf_counter() - t0

    errors: list[str] = []

    def try_fit():
        try:
            return fit_ours(N)
        except Exception as err:  # noqa: BLE001 - record it, keep the other fits
            traceback.print_exc()
            errors.append(_err(err))
            return None

    # warm-up, both: one full fit of ours (untimed), one step of the package on a throwaway lens
    try_fit()
    new_lens = None
    if pkg.get("version"):
        try:
            from tuned_lens import TunedLens as PackageTunedLens

            _package_compat(pkg)
            new_lens = lambda: PackageTunedLens.from_model(lm.model)  # noqa: E731 - zero-init lens, the package's start
            _package_train(lm, batches(1), T, new_lens(), 1, ctx.args.tuned_lens_autocast)
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            pkg["error"] = _err(err)
            new_lens = None
    # timed: ours, the package, ours again (ours is short: two fits around the package's one)
    fits = [try_fit()]
    theirs = None
    if new_lens is not None:
        n_steps, got = 0, 0  # one context per step (the package's per-GPU batch is 1 by default)
        for _, keep in batches(1):
            if got >= N:
                break
            n_steps, got = n_steps + 1, got + int(keep.sum())
        lens_pkg = new_lens()
        t0 = time.perf_counter()
        theirs = _package_train(lm, batches(1), N, lens_pkg, n_steps, ctx.args.tuned_lens_autocast)
        theirs["fit_s"] = round(time.perf_counter() - t0, 3)
        theirs["tokens_per_s"] = round(theirs["tokens"] / theirs["fit_s"], 1)
        theirs["settings"] = {"optimizer": "SGD nesterov, lr 0.1 (lr_scale 1 x (1 - 0.9)), momentum 0.9, weight decay 1e-3",
                              "schedule": "linear decay to 0 over the steps, no warm-up (the package's SGD default)",
                              "tokens_per_step": T, "batch_size": 1, "grad_clip": 1.0,
                              "loss": "KL(final || lens), token_shift 0",
                              "autocast_bf16": ctx.args.tuned_lens_autocast,
                              "note": "the package's defaults are 2**18 tokens per step (gradient accumulation over "
                                      "per-GPU batches of 1) x 250 steps (65M tokens); at this budget that would be no "
                                      "step at all, so it steps after every context (its most favourable setting here); "
                                      "same contexts, in the same order, as shoestring's batches"}
        res["tuned_lens_package"] = theirs
    fits.append(try_fit())
    if errors:
        res["shoestring_fit_errors"] = errors
    good = [f for f in fits if f is not None]
    lens_ours = good[0][0] if good else None
    if good:
        secs = [f[1] for f in good]
        ours = {"fit_s": [round(x, 3) for x in secs], "median_fit_s": round(statistics.median(secs), 3),
                "tokens": int(lens_ours.meta["tokens"]), "ridge": lens_ours.meta["ridge"]}
        ours["tokens_per_s"] = round(ours["tokens"] / ours["median_fit_s"], 1)
        res["shoestring_fit_tuned_lens"] = ours
        if len(good) == 2:
            res["checks"]["shoestring_refit_identical"] = bool(torch.equal(good[0][0].weight, good[1][0].weight))
        if theirs is not None:
            res["checks"]["same_token_budget"] = theirs["tokens"] == ours["tokens"]
            res["checks"]["all_agree"] = res["checks"]["same_token_budget"]
            res["fit_throughput_speedup"] = round(ours["tokens_per_s"] / theirs["tokens_per_s"], 2)

    lenses = {"logit": None}
    if lens_ours is not None:
        lenses["shoestring"] = lens_ours
    if theirs is not None:
        lenses["tuned_lens_package"] = PackageLensAdapter(lens_pkg, lm.n_layers)
    t0 = time.perf_counter()
    kl = lens_kl(lm, lenses, val, tokens=c["eval_tokens"], context_length=T, batch_size=B, progress=False)
    res["eval_s"] = round(time.perf_counter() - t0, 1)
    res["heldout_kl"] = kl
    last = lm.n_layers - 1
    summ = {"eval_tokens": kl["tokens"]}
    mean = {k: sum(kl[k]["kl"][:last]) / last for k in lenses}  # layers 0 .. n-2 (the last is the model itself)
    for k in lenses:
        summ[f"{k}_mean_kl_layers_0_{last - 1}"] = round(mean[k], 4)
    for k in lenses:
        if k != "logit":
            summ[f"{k}_below_logit_lens_layers"] = [L for L in range(last) if kl[k]["kl"][L] < kl["logit"]["kl"][L]]
    if "shoestring" in lenses and "tuned_lens_package" in lenses:
        summ["shoestring_below_package_layers"] = [L for L in range(last)
                                                   if kl["shoestring"]["kl"][L] < kl["tuned_lens_package"]["kl"][L]]
        summ["mean_kl_ratio"] = round(mean["shoestring"] / max(mean["tuned_lens_package"], 1e-12), 4)
        summ["mean_kl_ratio_note"] = "shoestring / package mean KL over layers 0..n-2 at the same token budget (below 1: ours is closer)"
    res["summary"] = summ
    return res


# ---------------------------------------------------------------------------------------------
# report


def summary(cases: dict) -> dict:
    """One line per case: the checks' verdict and the headline speedups (median, paired, from the fastest calls)."""
    out = {}
    for name, r in cases.items():
        if "error" in r:
            out[name] = {"error": r["error"]}
            continue
        s = {"checks_agree": r.get("checks", {}).get("all_agree")}
        timings = {"": r["timing"]} if "timing" in r else {f"{g}.": v["timing"] for g, v in r.get("groups", {}).items()}
        for prefix, t in timings.items():
            for k, v in t["speedups"].items():
                s[prefix + k] = {"median": v, "paired": t["paired_speedups"][k], "min": t["min_speedups"][k]}
        if name == "tuned_lens":
            s["fit_throughput_speedup"] = r.get("fit_throughput_speedup")
            s.update({k: v for k, v in r.get("summary", {}).items() if "mean_kl" in k or "ratio" in k})
        out[name] = s
    return out


def table(cases: dict) -> str:
    lines = []
    for name, r in cases.items():
        lines.append(f"\n== {name} ==")
        if "error" in r:
            lines.append(f"  ERROR {r['error']}")
            continue
        timings = {"": r["timing"]} if "timing" in r else {g: v["timing"] for g, v in r.get("groups", {}).items()}
        for group, t in timings.items():
            if group:
                lines.append(f"[{group}]")
            ours = next(iter(t["cases"]))
            lines.append(f"  {'contender':<44}{'median ms':>11}{'min':>10}{'max':>10}{'n':>4}{'speedup':>9}{'paired':>8}")
            for k, st in t["cases"].items():
                sp = t["speedups"].get(f"{k}_speedup", "") if k != ours else ""
                pr = t["paired_speedups"].get(f"{k}_speedup", "") if k != ours else ""
                lines.append(f"  {k:<44}{st['median_s'] * 1e3:>11.1f}{st['min_s'] * 1e3:>10.1f}{st['max_s'] * 1e3:>10.1f}"
                             f"{st['n']:>4}{sp:>9}{pr:>8}")
        if name == "tuned_lens":
            o, p = r.get("shoestring_fit_tuned_lens", {}), r.get("tuned_lens_package")
            lines.append(f"  shoestring fit_tuned_lens: {o.get('tokens')} tokens, {o.get('tokens_per_s')} tok/s")
            if p:
                lines.append(f"  tuned-lens package (SGD): {p['tokens']} tokens, {p['tokens_per_s']} tok/s, {p['steps']} steps; "
                             f"fit_throughput_speedup {r.get('fit_throughput_speedup')}")
            for k, v in r.get("summary", {}).items():
                lines.append(f"  {k}: {v}")
        checks = r.get("checks", {})
        lines.append(f"  checks agree: {checks.get('all_agree')}")
    return "\n".join(lines)


def run(args) -> int:
    os.environ.update(_anchors.OFFLINE_ENV)
    os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens's patching loop draws a progress bar
    warnings.filterwarnings("ignore")
    import importlib.metadata as md

    import torch

    import shoestring

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    cfg = QUICK if args.quick else FULL
    report: dict = {
        "bench": "observe",
        "command": "python bench/observe.py" + (" --quick" if args.quick else "")
                   + (f" --only {' '.join(args.only)}" if args.only else ""),
        "quick": args.quick,
        "note": "--quick: 2 rounds and tiny budgets; checks that everything runs, measures nothing" if args.quick else None,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "shoestring": {"version": shoestring.__version__, "path": str(Path(shoestring.__file__).parent)},
        "venv": {"path": str(_anchors.VENV), "installed": _anchors.installed_versions(Path(sys.executable)),
                 "note": "one process, the anchors venv (bench/_anchors.py); tuned-lens installed with --no-deps"},
        "anchors": {},
        "settings": {"dtype": "float32", "threads": args.threads, "attn_default": "sdpa (TransformerLens: eager, own copy)",
                     "warmup": "each contender's correctness call is its warm-up",
                     "interleaved": "round-robin, the starting contender rotates each round",
                     "max_rounds": cfg["rounds"], "budget_s": cfg["budget_s"], "min_rounds": cfg["min_rounds"],
                     "speedup": "<anchor>_speedup = anchor median seconds / shoestring median seconds (above 1: shoestring "
                                "is faster); paired_speedups: median over rounds of the same-round ratio; min_speedups: "
                                "fastest call / fastest call"},
        "cases": {},
    }
    for key, dist, mod in (("transformer_lens", "transformer-lens", "transformer_lens"),
                           ("scikit_learn", "scikit-learn", "sklearn"), ("tuned_lens", "tuned-lens", "tuned_lens")):
        try:
            report["anchors"][key] = {"version": md.version(dist)}
            __import__(mod)
        except Exception as err:  # noqa: BLE001
            report["anchors"][key] = {"version": None, "error": _err(err)}
    try:  # the package's own training entry point: does it import here?
        import tuned_lens.scripts.train_loop  # noqa: F401
        report["anchors"]["tuned_lens"]["train_cli_imports"] = True
    except Exception as err:  # noqa: BLE001
        report["anchors"]["tuned_lens"]["train_cli_imports"] = False
        report["anchors"]["tuned_lens"]["train_cli_error"] = _err(err)
        report["anchors"]["tuned_lens"]["note"] = (
            "installed with --no-deps: its CLI (tuned_lens.scripts.train_loop) needs simple-parsing, datasets, wandb, "
            "plotly and torchdata's dataloader2 (removed in torchdata 0.10; 0.9.0 does import beside torch 2.13), "
            "so the bench runs the body of Train.execute in-process with the package's own TunedLens module on the "
            "same model and packed batches (see bench/observe.py::_package_train)")
    print(f"bench/observe.py: torch {torch.__version__}, " + ", ".join(
        f"{k} {v.get('version')}" for k, v in report["anchors"].items()) +
        f", {torch.get_num_threads()} threads, loadavg {report['machine']['load_average_at_start'][0]:.2f}", flush=True)

    t0 = time.perf_counter()
    lm = shoestring.load()
    report["shoestring"]["load_s"] = round(time.perf_counter() - t0, 3)
    info = lm.info()
    report["model"] = {k: info[k] for k in ("name", "class", "parameters", "dtype", "attn_implementation", "n_layers",
                                            "d_model") if k in info}
    report["model"]["note"] = "shoestring.load(): bundled SmolLM2-135M-Instruct (GGUF dequantised to fp32, cached safetensors)"
    ctx = Ctx(lm, args, report)
    funcs = {"logit_lens": case_logit_lens, "head_census": case_head_census, "patching": case_patching,
             "probes": case_probes, "tuned_lens": case_tuned_lens}
    for name in CASES:
        if args.only and name not in args.only:
            continue
        print(f"-- {name}", flush=True)
        t1 = time.perf_counter()
        try:
            report["cases"][name] = funcs[name](ctx)
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            report["cases"][name] = {"error": _err(err)}
        report["cases"][name]["case_wall_s"] = round(time.perf_counter() - t1, 1)
        gc.collect()
    report["summary"] = summary(report["cases"])
    report["machine"]["load_average_at_end"] = os.getloadavg()
    report["wall_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    write_atomic(out, report)
    print(table(report["cases"]))
    print(f"\nwall {report['wall_s']} s   loadavg start {report['machine']['load_average_at_start'][0]:.2f} "
          f"end {report['machine']['load_average_at_end'][0]:.2f}")
    print(f"wrote {out}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 rounds and tiny budgets (smoke test, measures nothing)")
    p.add_argument("--only", nargs="*", choices=CASES, help="run only these cases")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-tuned-lens-autocast", dest="tuned_lens_autocast", action="store_false",
                   help="train the tuned-lens package's lens in fp32 instead of its bf16 autocast")
    p.add_argument("--out", default=None, help="results JSON (default bench/results/observe.json; "
                                               "--quick: bench/.cache/observe-quick.json)")
    args = p.parse_args()
    if args.out is None:
        args.out = str(HERE / ".cache" / "observe-quick.json") if args.quick else str(RESULTS)
    if not _anchors.in_anchors_venv():
        _anchors.reexec(__file__)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
