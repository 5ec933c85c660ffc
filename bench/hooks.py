"""Side-by-side: shoestring hooks vs plain Hugging Face, TransformerLens 4.x and nnsight, on CPU.

    python bench/hooks.py            # from the repo root, with the project's .venv python
    python bench/hooks.py --quick    # 2 repeats per case: a smoke test, not a measurement

The script re-executes itself inside ``bench/.cache/anchors-venv`` (built once by
``bench/_anchors.py``) so every contender runs in ONE process, on the same model objects where
possible, with the same inputs, fp32, ``torch.set_num_threads(2)``. Calls are interleaved
(A B C A B C ..., the starting contender rotating each round) after a warm-up call each, and
reported as median / min / max seconds. Every contender's captured tensors are checked against the
HF ``output_hidden_states`` reference before timing, so nobody is timed doing the wrong work.

Result: ``bench/results/hooks.json`` (written atomically) and a table on stdout. See bench/README.md.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import platform
import sys
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "hooks.json"
sys.path.insert(0, str(HERE))

import _anchors  # noqa: E402
from _common import interleave, paired_ratio, stats, write_atomic  # noqa: E402

OFFLINE_ENV = _anchors.OFFLINE_ENV


# ---------------------------------------------------------------------------------------------
# helpers


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _fingerprint(model):
    import torch

    with torch.no_grad():
        return [(p.data_ptr(), float(p.double().sum())) for p in model.parameters()]


def _diff(a, b) -> float:
    return float((a.float() - b.float()).abs().max())


def _first(x):
    return x[0] if isinstance(x, (tuple, list)) else x


class Model:
    """One model under test and its contenders."""

    def __init__(self, key, lm, model, tok, seed_vocab, hub_name, notes):
        self.key, self.lm, self.model, self.tok = key, lm, model, tok
        self.vocab = seed_vocab
        self.hub_name = hub_name
        self.notes = notes
        self.n = lm.anatomy.n_layers
        self.mid = self.n // 2
        self.one = f"blocks.{self.mid}.hook_resid_post"
        self.blocks_path = next(n for n, m in model.named_modules() if m is lm.anatomy.blocks)
        self.eager = None
        self.tl = None
        self.nn = None
        self.errors: dict[str, str] = {}


def build_gpt2_random(lm_smol):
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    import shoestring

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(GPT2Config(), dtype=torch.float32).eval()
    tok = copy.deepcopy(lm_smol.tokenizer)  # TL wants a tokenizer; inputs are token ids anyway
    lm = shoestring.LM(model, tok, name="gpt2-random", check=False)
    return Model("gpt2-random", lm, model, tok, model.config.vocab_size, "gpt2",
                 "transformers GPT2Config() defaults, random weights (torch.manual_seed(0)); "
                 "tokenizer: SmolLM2's (unused: inputs are random token ids)")


def prime(m: Model) -> None:
    """One ``output_hidden_states=True`` forward before anything is copied or counted.

    transformers 5 installs its output-capturing forward hooks (``install_output_capuring_hook``,
    2 per decoder layer) lazily, on the first call that asks for hidden states, and leaves them on
    the model. Doing that call first puts the same hooks on the shared model and on every copy, and
    keeps them out of the "hooks left behind" check.
    """
    import torch

    with torch.no_grad():
        m.model(input_ids=torch.zeros(1, 4, dtype=torch.long), output_hidden_states=True)
    m.transformers_own_hooks = _hook_count(m.model)


def setup_anchors(m: Model, report: dict) -> None:
    """Eager copy, TransformerLens bridge (own copy), nnsight wrapper (same object)."""
    import torch

    m.eager = copy.deepcopy(m.model)
    m.eager.set_attn_implementation("eager")
    m.eager.eval()
    if report["transformer_lens"].get("version"):
        try:
            from transformer_lens.model_bridge import TransformerBridge

            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.tl = TransformerBridge.boot_transformers(
                    m.hub_name, hf_model=copy.deepcopy(m.model), tokenizer=m.tok, device="cpu", dtype=torch.float32
                )
            m.tl.eval()
            report["transformer_lens"].setdefault("boot_s", {})[m.key] = round(time.perf_counter() - t0, 3)
        except Exception as err:  # noqa: BLE001
            m.errors["transformer_lens"] = f"{type(err).__name__}: {err}"[:600]
            traceback.print_exc()
    if report["nnsight"].get("version"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    from nnsight import LanguageModel

                    m.nn = LanguageModel(m.model, tokenizer=m.tok)
                except Exception:  # noqa: BLE001 - the newer entry point
                    from nnsight import TransformersModel

                    m.nn = TransformersModel(m.model, task="text-generation")
            envoy = m.nn
            for part in m.blocks_path.split("."):
                envoy = getattr(envoy, part)
            m.nn_blocks = envoy
        except Exception as err:  # noqa: BLE001
            m.errors["nnsight"] = f"{type(err).__name__}: {err}"[:600]
            m.nn = None
            traceback.print_exc()


def contenders(m: Model, ids) -> dict:
    """name -> zero-arg callable returning {layer: resid_post tensor} (or None for plain forwards)."""
    import torch

    all_layers = list(range(m.n))
    out: dict = {}

    def hf_sdpa():
        with torch.no_grad():
            m.model(input_ids=ids)

    def hf_eager():
        with torch.no_grad():
            m.eager(input_ids=ids)

    def hf_hidden_states():
        with torch.no_grad():
            hs = m.model(input_ids=ids, output_hidden_states=True).hidden_states
        return {L: hs[L + 1] for L in range(m.n - 1)}  # the last one is after the final norm

    out["hf_sdpa"] = hf_sdpa
    out["hf_eager"] = hf_eager
    out["hf_output_hidden_states"] = hf_hidden_states

    def ss(names, layers):
        def run():
            with m.lm.capture(names) as acts, torch.no_grad():
                m.model(input_ids=ids)
            return {L: acts[f"blocks.{L}.hook_resid_post"] for L in layers}

        return run

    out["shoestring_capture_one_resid_post"] = ss(m.one, [m.mid])
    out["shoestring_capture_all_resid_post"] = ss("blocks.*.hook_resid_post", all_layers)

    if m.tl is not None:

        def tl(layers):
            wanted = {f"blocks.{L}.hook_resid_post" for L in layers}

            def run():
                with torch.no_grad():
                    _, cache = m.tl.run_with_cache(ids, names_filter=lambda n: n in wanted)
                return {L: cache[f"blocks.{L}.hook_resid_post"] for L in layers}

            return run

        out["transformer_lens_capture_one_resid_post"] = tl([m.mid])
        out["transformer_lens_capture_all_resid_post"] = tl(all_layers)

    if m.nn is not None:

        def nn(layers):
            def run():
                saved = []
                with torch.no_grad(), m.nn.trace(ids):
                    for L in layers:
                        saved.append(m.nn_blocks[L].output.save())
                return {L: _first(s) for L, s in zip(layers, saved)}

            return run

        out["nnsight_capture_one_resid_post"] = nn([m.mid])
        out["nnsight_capture_all_resid_post"] = nn(all_layers)
    return out


def _hidden(model, blocks, n: int, ids):
    """HF hidden_states[L + 1] for L < n-1 plus the last block's raw output (a plain torch hook), and
    HF's own last hidden state (after the final norm)."""
    import torch

    box = {}
    h = blocks[n - 1].register_forward_hook(lambda mod, a, o: box.__setitem__("x", _first(o)))
    try:
        with torch.no_grad():
            hs = model(input_ids=ids, output_hidden_states=True).hidden_states
    finally:
        h.remove()
    return {**{L: hs[L + 1] for L in range(n - 1)}, n - 1: box["x"]}, hs[-1]


def reference(m: Model, ids) -> dict:
    """The captures every contender must match, on the sdpa model and on the eager copy (TransformerLens
    runs eager attention, whose fp32 sums differ from sdpa's); HF's last hidden state is checked too."""
    import torch

    ref, last = _hidden(m.model, m.lm.anatomy.blocks, m.n, ids)
    with torch.no_grad():
        normed = m.lm.anatomy.final_norm(ref[m.n - 1])
    eager_blocks = next(mod for n, mod in m.eager.named_modules() if n == m.blocks_path)
    eager, _ = _hidden(m.eager, eager_blocks, m.n, ids)
    return {"ref": ref, "eager": eager, "last_normed_matches_hidden_states": _diff(normed, last)}


def check(m: Model, runs: dict, ids) -> dict:
    import torch

    r = reference(m, ids)
    ref = r["ref"]
    checks = {
        "_last_block_final_norm_vs_hidden_states_max_abs_diff": r["last_normed_matches_hidden_states"],
        "_hf_eager_vs_sdpa_max_abs_diff": max(_diff(r["eager"][L], ref[L]) for L in ref),
        "_hf_eager_vs_sdpa_max_rel_diff": max(_diff(r["eager"][L], ref[L]) / float(ref[L].abs().max()) for L in ref),
    }
    for name, fn in runs.items():
        got = fn()
        if got is None:
            continue
        diffs = {L: _diff(got[L], ref[L]) for L in got}
        rel = {L: diffs[L] / max(float(ref[L].abs().max()), 1e-12) for L in got}
        shapes_ok = all(got[L].shape == ref[L].shape for L in got)
        exact = shapes_ok and all(torch.allclose(got[L].float(), ref[L].float(), atol=1e-4, rtol=1e-4) for L in got)
        entry = {"layers": len(got), "max_abs_diff": max(diffs.values()), "max_rel_diff": max(rel.values()),
                 "shapes_ok": shapes_ok, "allclose_sdpa_ref": exact}
        if name.startswith("transformer_lens_"):  # eager attention inside: compare with HF eager too
            entry["max_abs_diff_vs_hf_eager"] = max(_diff(got[L], r["eager"][L]) for L in got)
            entry["allclose_eager_ref"] = shapes_ok and all(
                torch.allclose(got[L].float(), r["eager"][L].float(), atol=1e-4, rtol=1e-4) for L in got)
        # the claim: same values up to fp32 summation order (max |diff| <= 1e-4 of the largest |value|)
        entry["allclose"] = shapes_ok and (exact or entry.get("allclose_eager_ref", False) or max(rel.values()) <= 1e-4)
        checks[name] = entry
    return checks


# ---------------------------------------------------------------------------------------------
# one model


def bench_model(m: Model, report: dict, reps: dict) -> dict:
    import torch

    res: dict = {"name": m.key, "notes": m.notes, "info": {}, "anchor_errors": m.errors, "cases": {},
                 "ratios": {}, "paired_ratios": {}, "min_ratios": {}, "checks": {}}
    info = m.lm.info()
    res["info"] = {k: info[k] for k in ("class", "parameters", "dtype", "attn_implementation", "n_layers", "d_model")
                   if k in info}
    res["info"]["mid_layer"] = m.mid
    res["info"]["eager_copy_attn_implementation"] = m.eager.config._attn_implementation
    if m.tl is not None:
        hf_inner = getattr(m.tl, "original_model", None)
        res["info"]["transformer_lens_attn_implementation"] = getattr(
            getattr(hf_inner, "config", None), "_attn_implementation", "unknown")

    hooks_before = _hook_count(m.model)
    fp_before = _fingerprint(m.model)
    gen = torch.Generator().manual_seed(1)

    for n_tok in (256, 16):
        ids = torch.randint(0, m.vocab, (1, n_tok), generator=gen)
        runs = contenders(m, ids)
        res["checks"][f"tokens_{n_tok}"] = check(m, runs, ids)
        t0 = time.perf_counter()
        times = interleave(runs, reps[n_tok], budget_s=reps["budget_s"][n_tok])
        print(f"  {m.key} 1x{n_tok}: {len(runs)} contenders x {len(times['hf_sdpa'])} rounds in {time.perf_counter() - t0:.1f} s",
              flush=True)
        group = f"tokens_{n_tok}"
        res["cases"][group] = {k: stats(v) for k, v in times.items()}
        base = res["cases"][group]["hf_sdpa"]["median_s"]
        ratios, paired, mins = {}, {}, {}
        for k, v in times.items():
            if k == "hf_sdpa":
                continue
            ratios[f"{k}_ratio"] = round(res["cases"][group][k]["median_s"] / base, 4)
            paired[f"{k}_ratio"] = paired_ratio(v, times["hf_sdpa"])
            mins[f"{k}_ratio"] = round(min(v) / min(times["hf_sdpa"]), 4)
        eager = res["cases"][group]["hf_eager"]["median_s"]
        for k in list(times):
            if k.startswith("transformer_lens_"):
                ratios[f"{k}_vs_hf_eager_ratio"] = round(res["cases"][group][k]["median_s"] / eager, 4)
                paired[f"{k}_vs_hf_eager_ratio"] = paired_ratio(times[k], times["hf_eager"])
        res["ratios"][group] = ratios
        res["paired_ratios"][group] = paired
        res["min_ratios"][group] = mins

    # generation: greedy, 32 new tokens, plain vs one steering edit at the middle layer
    prompt = torch.randint(0, m.vocab, (1, 8), generator=gen)
    mask = torch.ones_like(prompt)
    pad = m.tok.pad_token_id if m.tok.pad_token_id is not None and m.tok.pad_token_id < m.vocab else 0
    with torch.no_grad():
        hs = m.model(input_ids=prompt, output_hidden_states=True).hidden_states[m.mid + 1]
    vec = torch.randn(hs.shape[-1], generator=gen)
    vec = 4.0 * vec / vec.norm() * hs[0].norm(dim=-1).mean()  # 4x the typical residual norm

    def gen_plain():
        with torch.no_grad():
            return m.model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=32, min_new_tokens=32,
                                    do_sample=False, pad_token_id=pad)

    def gen_edit():
        with m.lm.edit({m.one: vec}), torch.no_grad():
            return m.model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=32, min_new_tokens=32,
                                    do_sample=False, pad_token_id=pad)

    a, b = gen_plain(), gen_edit()
    res["checks"]["generate"] = {
        "plain_len": int(a.shape[1]), "edit_len": int(b.shape[1]),
        "same_length": a.shape == b.shape,
        "new_tokens_changed_by_edit": int((a[0, 8:] != b[0, 8:]).sum()) if a.shape == b.shape else None,
        "steering_vector_norm": round(float(vec.norm()), 4),
    }
    t0 = time.perf_counter()
    gtimes = interleave({"generate_plain": gen_plain, "generate_edit": gen_edit}, reps["generate"],
                        budget_s=reps["budget_s"]["generate"], min_repeats=4)
    print(f"  {m.key} generate: 2 contenders x {len(gtimes['generate_plain'])} rounds in {time.perf_counter() - t0:.1f} s", flush=True)
    res["cases"]["generate_32"] = {k: stats(v) for k, v in gtimes.items()}
    res["ratios"]["generate_32"] = {"generate_edit_ratio": round(
        res["cases"]["generate_32"]["generate_edit"]["median_s"] / res["cases"]["generate_32"]["generate_plain"]["median_s"], 4)}
    res["paired_ratios"]["generate_32"] = {"generate_edit_ratio": paired_ratio(gtimes["generate_edit"], gtimes["generate_plain"])}
    res["min_ratios"]["generate_32"] = {"generate_edit_ratio": round(min(gtimes["generate_edit"]) / min(gtimes["generate_plain"]), 4)}

    # nobody left hooks behind or changed the weights of the shared model
    res["checks"]["shared_model"] = {
        "transformers_own_output_capture_hooks": getattr(m, "transformers_own_hooks", None),
        "hooks_before": hooks_before,
        "hooks_after": _hook_count(m.model),
        "shoestring_dispatchers_left": m.lm._registry.active(),
        "weights_unchanged": _fingerprint(m.model) == fp_before,
        "nnsight_wraps_same_object": (getattr(m.nn, "_module", None) is m.model) if m.nn is not None else None,
    }
    return res


# ---------------------------------------------------------------------------------------------
# report


def must_show(models: dict) -> dict:
    out: list[dict] = []

    def add(claim, model, group, value, limit, value_from_min=None):
        out.append({"claim": claim, "model": model, "case": group, "value": value, "limit": limit,
                    "ok": value is not None and value <= limit, "value_from_min_s": value_from_min,
                    "ok_from_min_s": value_from_min is not None and value_from_min <= limit})

    for key, res in models.items():
        if "error" in res:
            out.append({"claim": "model ran", "model": key, "ok": False, "error": res["error"]})
            continue
        for group in ("tokens_256", "tokens_16"):
            c = res["cases"][group]
            r = res["ratios"][group]
            add("shoestring all resid_post capture <= 1.05x plain HF forward", key, group,
                r["shoestring_capture_all_resid_post_ratio"], 1.05,
                res["min_ratios"][group]["shoestring_capture_all_resid_post_ratio"])
            for what in ("one", "all"):
                s = c[f"shoestring_capture_{what}_resid_post"]["median_s"]
                for anchor in ("transformer_lens", "nnsight"):
                    k = f"{anchor}_capture_{what}_resid_post"
                    if k in c:
                        add(f"shoestring <= {anchor} ({what} resid_post), median seconds ratio", key, group,
                            round(s / c[k]["median_s"], 4), 1.0,
                            round(c[f"shoestring_capture_{what}_resid_post"]["min_s"] / c[k]["min_s"], 4))
                    else:
                        out.append({"claim": f"shoestring <= {anchor} ({what} resid_post)", "model": key,
                                    "case": group, "ok": None, "note": f"{anchor} did not run"})
            bad = [k for k, v in res["checks"][group].items() if isinstance(v, dict) and not v["allclose"]]
            out.append({"claim": "every capture equals the HF hidden_states reference", "model": key, "case": group,
                        "ok": not bad, "failed": bad})
        add("generate under one lm.edit <= 1.05x plain generate", key, "generate_32",
            res["ratios"]["generate_32"]["generate_edit_ratio"], 1.05, res["min_ratios"]["generate_32"]["generate_edit_ratio"])
        sm = res["checks"]["shared_model"]
        out.append({"claim": "shared model left as found (hooks, weights)", "model": key,
                    "ok": sm["hooks_after"] == sm["hooks_before"] and sm["weights_unchanged"]
                    and sm["shoestring_dispatchers_left"] == 0})
    decided = [c["ok"] for c in out if c["ok"] is not None]
    decided_min = [c.get("ok_from_min_s", c["ok"]) for c in out if c["ok"] is not None]
    return {"all_ok": all(decided), "all_ok_from_min_s": all(decided_min),
            "note": "value/ok use medians; value_from_min_s/ok_from_min_s use the fastest call of each case, "
                    "which is what a busy machine distorts least (load only ever adds time)",
            "checks": out}


def table(models: dict) -> str:
    lines = []
    for key, res in models.items():
        if "error" in res:
            lines.append(f"{key}: ERROR {res['error']}")
            continue
        lines.append(f"\n== {key} ==")
        lines.append(f"{'case':<46}{'median ms':>11}{'min':>9}{'max':>9}{'n':>4}{'x hf_sdpa':>11}{'paired':>8}")
        for group, cases in res["cases"].items():
            lines.append(f"[{group}]")
            base = "generate_plain" if group.startswith("generate") else "hf_sdpa"
            for k, s in cases.items():
                rk = "generate_edit_ratio" if k == "generate_edit" else f"{k}_ratio"
                ratio = res["ratios"][group].get(rk) if k != base else 1.0
                paired = res["paired_ratios"][group].get(rk) if k != base else None
                lines.append(f"  {k:<44}{s['median_s'] * 1e3:>11.1f}{s['min_s'] * 1e3:>9.1f}{s['max_s'] * 1e3:>9.1f}"
                             f"{s['n']:>4}{ratio if ratio is not None else '':>11}{paired if paired is not None else '':>8}")
            for rk, v in res["ratios"][group].items():
                if rk.endswith("_vs_hf_eager_ratio"):
                    lines.append(f"  {rk:<44}{'':>11}{'':>9}{'':>9}{'':>4}{v:>11}")
    return "\n".join(lines)



def run(args) -> int:
    os.environ.update(OFFLINE_ENV)
    warnings.filterwarnings("ignore")
    import importlib.metadata as md

    import torch
    import transformers

    import shoestring

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load_start = os.getloadavg()

    report: dict = {
        "bench": "hooks",
        "command": "python bench/hooks.py" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpu_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "loadavg_at_start": [round(x, 2) for x in load_start],
        },
        "shoestring": {"version": shoestring.__version__, "path": str(Path(shoestring.__file__).parent)},
        "venv": {"path": str(_anchors.VENV), "installed": _anchors.installed_versions(Path(sys.executable))},
        "transformer_lens": {},
        "nnsight": {},
        "settings": {"dtype": "float32", "attn_default": "sdpa", "warmup_calls": 1, "warmup_note": "the correctness check's call is the warm-up",
                     "max_rounds": {str(k): v for k, v in args.reps.items() if k != "budget_s"},
                     "budget_s_per_group": {str(k): v for k, v in args.reps["budget_s"].items()},
                     "min_rounds": {"forward": 5, "generate": 4}, "interleaved": "round-robin, start rotates each round",
                     "check_tolerance": "allclose(atol=1e-4, rtol=1e-4) against the HF sdpa reference, or (TransformerLens) "
                                        "against HF eager, or max |diff| <= 1e-4 x max |reference|"},
        "models": {},
    }
    for key, dist, mod in (("transformer_lens", "transformer-lens", "transformer_lens"), ("nnsight", "nnsight", "nnsight")):
        try:
            report[key]["version"] = md.version(dist)
            __import__(mod)
        except Exception as err:  # noqa: BLE001
            report[key] = {"version": None, "error": f"{type(err).__name__}: {err}"[:600]}

    print(f"bench/hooks.py: torch {torch.__version__}, transformers {transformers.__version__}, "
          f"TL {report['transformer_lens'].get('version')}, nnsight {report['nnsight'].get('version')}, "
          f"{torch.get_num_threads()} threads, loadavg {load_start[0]:.2f}", flush=True)

    t0 = time.perf_counter()
    smol = shoestring.load()
    report["shoestring"]["load_s"] = round(time.perf_counter() - t0, 3)

    builders = [("gpt2-random", lambda: build_gpt2_random(smol)),
                ("smollm2-135m", lambda: Model("smollm2-135m", smol, smol.model, smol.tokenizer,
                                               smol.anatomy.d_vocab, "HuggingFaceTB/SmolLM2-135M-Instruct",
                                               "shoestring.load(): bundled SmolLM2-135M-Instruct (Q4_1 GGUF "
                                               "dequantised to fp32)"))]
    for key, build in builders:
        if args.only and key not in args.only:
            continue
        print(f"-- {key}", flush=True)
        try:
            m = build()
            prime(m)
            setup_anchors(m, report)
            report["models"][key] = bench_model(m, report, args.reps)
        except Exception as err:  # noqa: BLE001
            traceback.print_exc()
            report["models"][key] = {"error": f"{type(err).__name__}: {err}"[:800]}
        finally:
            m = None
            gc.collect()

    for key in ("transformer_lens", "nnsight"):
        errs = {k: r["anchor_errors"][key] for k, r in report["models"].items() if key in r.get("anchor_errors", {})}
        if errs:
            report[key]["errors"] = errs
    try:
        report["must_show"] = must_show(report["models"])
    except Exception as err:  # noqa: BLE001 - never lose the measurements over the summary
        traceback.print_exc()
        report["must_show"] = {"all_ok": None, "error": f"{type(err).__name__}: {err}", "checks": []}
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    write_atomic(out, report)
    try:
        print(table(report["models"]))
    except Exception:  # noqa: BLE001
        traceback.print_exc()
    print("\nmust_show:")
    for c in report["must_show"]["checks"]:
        v = f" value {c['value']} (from min {c.get('value_from_min_s')}; limit {c['limit']})" if "value" in c else ""
        print(f"  [{'ok ' if c['ok'] else ('n/a' if c['ok'] is None else 'NO ')}] {c['model']} {c.get('case', '')}: "
              f"{c['claim']}{v}")
    print(f"\nall_ok: {report['must_show']['all_ok']}  (from min: {report['must_show'].get('all_ok_from_min_s')})   wall {report['wall_s']} s   "
          f"loadavg start {load_start[0]:.2f} end {report['machine']['loadavg_at_end'][0]:.2f}")
    print(f"wrote {out}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 repeats per case (smoke test)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", nargs="*", help="gpt2-random and/or smollm2-135m")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    # max rounds per group, and a time budget per group and model after which rounds stop (min 5 rounds)
    budget = {256: 45.0, 16: 30.0, "generate": 45.0}
    args.reps = ({256: 2, 16: 2, "generate": 2, "budget_s": budget} if args.quick
                 else {256: 15, 16: 40, "generate": 10, "budget_s": budget})
    if not _anchors.in_anchors_venv():
        _anchors.reexec(__file__)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
