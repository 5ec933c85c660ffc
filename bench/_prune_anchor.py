"""One measured pruning run of ``bench/prune.py``, in a fresh process: ours in the project's ``.venv``,
Torch-Pruning's in its own venv (``bench/_prune_venv.py``; the project is installed there too, so both sides load
SmolLM2 with ``shoestring.load()`` and are measured by the same ``perplexity`` / ``measure_speed``).

    python bench/_prune_anchor.py --job JOB.json --case CASE --out OUT.json [--after]
    python bench/_prune_anchor.py --job JOB.json --op tp-heads --out OUT.json

A fresh process per run keeps memory honest: the peak is the process RSS (sampled every 2 ms) above its level with
the model and token ids loaded, with no allocator cache left over from an earlier run. Cases (``CASES``):
``unpruned``; ``ours.<wanda|taylor|magnitude>@<default|channels>`` (default = 1/3 of the key-value groups and 1/3 of
the MLP channels per layer; channels = MLP channels only); ``tp.<taylor|magnitude>@channels`` (Torch-Pruning's
``MetaPruner`` on the MLP channels, :func:`prune_tp`). Timed: the pruning (ours: score, plan, cut; Torch-Pruning:
dependency graph, gradients, prune step). Not timed: with ``--after`` the held-out perplexity, parameters, kept
channels and a save_pretrained / from_pretrained round trip; always ``measure_speed`` of the result.
``--op tp-heads``: what Torch-Pruning does when asked for head pruning (its LLM example's settings, :func:`tp_heads`).

``JOB.json``: ``data`` (a safetensors file of ``calib_i`` / ``eval_i`` batches and ``prompt``), ``threads``,
``head_ratio``, ``channel_ratio``, ``speed_tokens``, ``tmp`` (a scratch folder for the save check).
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import threading
import time
from pathlib import Path

import torch

CASES = ["unpruned", "ours.wanda@default", "ours.taylor@default", "ours.wanda@channels", "ours.taylor@channels",
         "ours.magnitude@channels", "tp.taylor@channels", "tp.magnitude@channels"]


class Phases:
    """RSS sampled on a thread every ``every`` s; the peak above ``base`` is kept per named phase."""

    def __init__(self, every: float = 0.002):
        from shoestring.kv.measure import rss_bytes

        self.rss, self.every = rss_bytes, every
        self.base, self.phase, self.peak, self.times = rss_bytes(), None, {}, {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._note()
            self._stop.wait(self.every)

    def _note(self) -> None:
        if self.phase is not None:
            self.peak[self.phase] = max(self.peak.get(self.phase, 0), self.rss())

    def start(self, name: str) -> None:
        self._note()
        self.phase = name
        self.times[name] = time.perf_counter()
        self._note()

    def end(self) -> None:
        self._note()
        self.times[self.phase] = time.perf_counter() - self.times[self.phase]
        self.phase = None

    def close(self) -> dict:
        self._stop.set()
        self._t.join()
        above = {k: max(0, v - self.base) for k, v in self.peak.items()}
        return {"seconds": {k: round(v, 4) for k, v in self.times.items()},
                "total_s": round(sum(self.times.values()), 4),
                "peak_bytes": above, "peak_bytes_total": max(above.values(), default=0), "base_rss_bytes": self.base,
                "retained_bytes": max(0, self.rss() - self.base)}


def load_job(path: str) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    job = json.loads(Path(path).read_text())
    t = load_file(job["data"])
    data = {"calib": [t[f"calib_{i}"] for i in range(sum(k.startswith("calib_") for k in t))],
            "eval": [t[f"eval_{i}"] for i in range(sum(k.startswith("eval_") for k in t))], "prompt": t["prompt"]}
    return job, data


def prune_ours(model, criterion: str, granularity: str, calib: list, job: dict, ph: Phases) -> dict:
    """shoestring: ``CRITERIA[criterion]().score``, ``plan_from_scores`` (uniform), ``apply_plan`` in place."""
    from shoestring.prune.importance import CRITERIA
    from shoestring.prune.select import plan_from_scores
    from shoestring.prune.surgery import apply_plan

    heads = job["head_ratio"] if granularity == "default" else 0.0
    ph.start("score")
    scores = CRITERIA[criterion]().score(model, calib)
    ph.end()
    ph.start("plan")
    plan = plan_from_scores(model, scores, heads, job["channel_ratio"], uniform=True)
    ph.end()
    ph.start("cut")
    apply_plan(model, plan)
    ph.end()
    return {"api": f"CRITERIA['{criterion}']().score -> plan_from_scores(head_ratio={heads:.4g}, channel_ratio="
                   f"{job['channel_ratio']:.4g}, uniform=True) -> apply_plan"}


def tp_channel_pruner(model, example, importance, ratio: float):
    """Torch-Pruning's ``MetaPruner`` on the MLP channels only, local (per layer) ranking at ``ratio``.

    Every attention projection and every ``down_proj`` (whose outputs are the residual stream) are
    ``ignored_layers``, as is ``lm_head``: left as roots they would also prune the hidden size (what TP's LLM
    example does) or, for q/k/v, never return (see ``tp_heads``). ``output_transform`` picks the logits: without
    it the trace fails on transformers 5 (``'tuple' object has no attribute 'grad_fn'``, from the cache)."""
    import torch_pruning as tp

    blocks = model.model.layers
    ignored = [model.lm_head] + [b.self_attn for b in blocks] + [b.mlp.down_proj for b in blocks]
    return tp.pruner.MetaPruner(model, example, importance=importance, global_pruning=False, pruning_ratio=ratio,
                                ignored_layers=ignored, round_to=None, output_transform=lambda out: out.logits)


def prune_tp(model, criterion: str, calib: list, job: dict, ph: Phases) -> dict:
    """Torch-Pruning 1.6.x: build the pruner (dependency graph), then for Taylor accumulate gradients over the
    calibration batches with plain ``loss.backward()`` (``.grad`` sums over batches, as TP's Taylor importance
    and LLM-Pruner expect), then one ``pruner.step()``."""
    import torch_pruning as tp

    taylor = criterion == "taylor"
    imp = tp.importance.GroupTaylorImportance() if taylor else tp.importance.GroupMagnitudeImportance(p=2)
    ph.start("graph")
    pruner = tp_channel_pruner(model, calib[0][:1, :16], imp, job["channel_ratio"])
    ph.end()
    if taylor:
        ph.start("grads")
        model.zero_grad(set_to_none=True)
        for ids in calib:
            model(input_ids=ids, labels=ids).loss.backward()
        ph.end()
    ph.start("prune")
    pruner.step()
    ph.end()
    model.zero_grad(set_to_none=True)
    return {"api": f"MetaPruner(importance={type(imp).__name__}, global_pruning=False, pruning_ratio="
                   f"{job['channel_ratio']:.4g}, ignored_layers=[lm_head, self_attn.*, mlp.down_proj]"
                   ", output_transform=logits).step()"
                   + (" after loss.backward() on each calibration batch" if taylor else "")}


def row_ids(model) -> list[dict]:
    """Per layer, each MLP channel's index keyed by the bytes of its ``gate_proj`` row (to read back which kept)."""
    return [{b.mlp.gate_proj.weight[i].detach().numpy().tobytes(): i for i in range(b.mlp.gate_proj.out_features)}
            for b in model.model.layers]


def kept_channels(model, ids: list[dict]) -> list[list[int]]:
    """The original indices of the MLP channels each layer still has (its rows are copied, not changed, by a cut)."""
    return [[ids[j][r.detach().numpy().tobytes()] for r in b.mlp.gate_proj.weight]
            for j, b in enumerate(model.model.layers)]


def shapes(model) -> dict:
    b = model.model.layers
    widths = lambda f: sorted({f(x) for x in b})  # noqa: E731
    return {"q_out": widths(lambda x: x.self_attn.q_proj.out_features),
            "k_out": widths(lambda x: x.self_attn.k_proj.out_features),
            "v_out": widths(lambda x: x.self_attn.v_proj.out_features),
            "o_in": widths(lambda x: x.self_attn.o_proj.in_features),
            "mlp_channels": widths(lambda x: x.mlp.gate_proj.out_features),
            "down_in": widths(lambda x: x.mlp.down_proj.in_features), "hidden": model.config.hidden_size}


@torch.no_grad()
def save_check(model, side: str, probe: torch.Tensor, tmp: Path) -> dict:
    """``save_pretrained`` then plain ``AutoModelForCausalLM.from_pretrained``; logits compared on ``probe``.
    Torch-Pruning leaves the config as it was, so its model is first tried as it is, then with
    ``config.intermediate_size`` set from the pruned layers, as TP's LLM example does by hand."""
    from transformers import AutoModelForCausalLM

    ref = model(input_ids=probe).logits

    def roundtrip(tag: str) -> dict:
        folder = tmp / f"save-{side}-{tag}"
        try:
            model.save_pretrained(folder)
            back = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
            diff = float((back(input_ids=probe).logits - ref).abs().max())
            return {"reloads": diff < 1e-4, "max_abs_logit_diff": diff}
        except Exception as e:  # noqa: BLE001 - what happened is the result
            return {"reloads": False, "error": f"{type(e).__name__}: {e}"[:500]}
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    out = {"as_is": roundtrip("as-is"), "config_intermediate_size": model.config.intermediate_size,
           "gate_proj_rows": model.model.layers[0].mlp.gate_proj.out_features}
    if side == "tp" and not out["as_is"]["reloads"]:
        model.config.intermediate_size = model.model.layers[0].mlp.gate_proj.out_features
        out["config_fixed_by_hand"] = roundtrip("fixed")
    out["ok"] = any(v.get("reloads") for v in out.values() if isinstance(v, dict))
    return out


def run_case(job: dict, data: dict, case: str, after: bool) -> dict:
    """Load SmolLM2, prune it as ``case`` says while timing it and sampling memory, then measure the result.

    Parameters
    ----------
    job, data
        Settings and token ids (:func:`load_job`).
    case, after
        One of ``CASES``; whether to add perplexity, kept channels and the save check (first round only).

    Returns
    -------
    dict
        ``pruning`` (:meth:`Phases.close`), parameters, layer widths, ``speed``, and the ``after`` measures.
    """
    import shoestring
    from shoestring.prune.evaluate import perplexity
    from shoestring.prune.speed import measure_speed
    from shoestring.prune.surgery import n_params

    t0 = time.perf_counter()
    lm = shoestring.load()
    model = lm.model.eval()
    rec: dict = {"case": case, "load_s": round(time.perf_counter() - t0, 3), "threads": torch.get_num_threads()}
    before = n_params(model)
    ids = row_ids(model) if after else None
    gc.collect()
    ph = Phases()
    try:
        if case.startswith("ours."):
            crit, gran = case[5:].split("@")
            rec["how"] = prune_ours(model, crit, gran, data["calib"], job, ph)
        elif case.startswith("tp."):
            crit, _ = case[3:].split("@")
            rec["how"] = prune_tp(model, crit, data["calib"], job, ph)
    finally:
        rec["pruning"] = ph.close()
    model.eval()
    after_n = n_params(model)
    rec.update(params_before=before, params_after=after_n, params_removed=round(1 - after_n / before, 6),
               shape=shapes(model))
    if after:
        rec["kept_channels"] = kept_channels(model, ids)
        del ids
        rec["perplexity"] = perplexity(model, data["eval"])
        rec["save_pretrained"] = save_check(model, case.split(".")[0], data["eval"][0][:1, :32], Path(job["tmp"]))
    gc.collect()
    s = measure_speed(model, data["prompt"], job["speed_tokens"])
    rec["speed"] = {k: s[k] for k in ("prefill_s", "decode_tokens_per_s", "peak_bytes_above_start", "prefill_samples",
                                      "decode_samples")}
    return rec


class Runaway(Exception):
    """A dependency group passed the cap while Torch-Pruning was still adding to it."""


def group_sizes(model, example, names: list[str], cap: int = 5000) -> dict:
    """Size of Torch-Pruning's out-channel group of each layer-0 module in ``names`` (``Group.add_dep`` capped at
    ``cap`` for this diagnosis only: a group that passes it is reported as still growing, not waited for)."""
    import torch_pruning as tp
    from torch_pruning.dependency import group as tp_group

    DG = tp.DependencyGraph().build_dependency(model, example_inputs=example, output_transform=lambda o: o.logits)
    add, out = tp_group.Group.add_dep, {}

    def capped(self, dep, idxs):
        if len(self._group) >= cap:
            raise Runaway
        add(self, dep, idxs)

    tp_group.Group.add_dep = capped
    try:
        for name in names:
            mod, t0 = model.model.layers[0].get_submodule(name), time.perf_counter()
            try:
                g = DG.get_pruning_group(mod, tp.prune_linear_out_channels, list(range(mod.out_features)))
                out[name] = {"deps": len(g), "s": round(time.perf_counter() - t0, 3)}
            except Runaway:
                out[name] = {"deps": f">= {cap}, still growing (stopped)", "s": round(time.perf_counter() - t0, 3)}
    finally:
        tp_group.Group.add_dep = add
    return out


def rope_check() -> dict:
    """The same group sizes on a 1-layer random Llama of SmolLM2's widths, with the rotary embedding as it is and
    with ``apply_rotary_pos_emb`` replaced by the identity (a diagnosis, not a fix), GQA and plain multi-head."""
    import transformers as T
    from transformers.models.llama import modeling_llama

    out, real = {}, modeling_llama.apply_rotary_pos_emb
    for kv in (3, 9):
        for rope in (True, False):
            cfg = T.LlamaConfig(vocab_size=256, hidden_size=576, intermediate_size=1536, num_hidden_layers=1,
                                num_attention_heads=9, num_key_value_heads=kv, head_dim=64)
            torch.manual_seed(0)
            m = T.LlamaForCausalLM(cfg).eval()
            if not rope:
                modeling_llama.apply_rotary_pos_emb = lambda q, k, *args, **kwargs: (q, k)
            try:
                got = group_sizes(m, torch.randint(0, 256, (1, 16)), ["self_attn.q_proj", "self_attn.v_proj"], cap=3000)
            finally:
                modeling_llama.apply_rotary_pos_emb = real
            out[f"kv_heads_{kv}_{'rope' if rope else 'rope_as_identity'}"] = {k: v["deps"] for k, v in got.items()}
    return out


def tp_heads(job: dict, data: dict, out: Path) -> None:
    """What Torch-Pruning does when asked for head pruning on SmolLM2 (transformers 5.23), step by step.

    Parameters
    ----------
    job, data
        The job settings and token ids (:func:`load_job`).
    out
        Written after every step, so a caller that kills this process at its time limit still reads the steps done.
    """
    import torch_pruning as tp

    import shoestring

    model = shoestring.load().model.eval()
    c = model.config
    ex = data["calib"][0][:1, :16]
    rec: dict = {"model": {"heads": c.num_attention_heads, "kv_heads": c.num_key_value_heads, "head_dim": c.head_dim,
                           "attn_implementation": c._attn_implementation}}

    def save() -> None:
        out.write_text(json.dumps(rec, indent=1))

    try:  # 1. the documented call, without output_transform
        tp.DependencyGraph().build_dependency(model, example_inputs=ex)
        rec["trace_without_output_transform"] = "ok"
    except Exception as e:  # noqa: BLE001
        rec["trace_without_output_transform"] = f"{type(e).__name__}: {e}"[:300]
    save()
    # 2. each layer-0 root's group on SmolLM2, then the cause, on a 1-layer random Llama
    rec["smollm2_layer0_groups"] = group_sizes(model, ex, ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                          "self_attn.o_proj", "mlp.gate_proj"])
    save()
    rec["one_layer_rope_check"] = rope_check()
    save()
    # 3. TP's LLM example settings (heads of q/k/v, prune_num_heads, no head dims), hidden size left alone
    num_heads = {}
    for b in model.model.layers:
        num_heads.update({b.self_attn.q_proj: c.num_attention_heads, b.self_attn.k_proj: c.num_key_value_heads,
                          b.self_attn.v_proj: c.num_key_value_heads})
    ignored = [model.lm_head] + [x for b in model.model.layers for x in (b.self_attn.o_proj, b.mlp.down_proj)]
    rec["metapruner_heads"] = {"returned": False, "call": "MetaPruner(num_heads={q: 9, k: 3, v: 3}, "
                               "prune_num_heads=True, prune_head_dims=False, head_pruning_ratio=1/3, "
                               "pruning_ratio=1/3, ignored_layers=[lm_head, o_proj, down_proj], "
                               "output_transform=logits)", "started_epoch_s": time.time()}
    save()
    t0 = time.perf_counter()
    pruner = tp.pruner.MetaPruner(model, ex, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  global_pruning=False, pruning_ratio=job["channel_ratio"], ignored_layers=ignored,
                                  num_heads=num_heads, prune_num_heads=True, prune_head_dims=False,
                                  head_pruning_ratio=job["head_ratio"],
                                  output_transform=lambda o: o.logits)
    pruner.step()
    rec["metapruner_heads"].update(returned=True, s=round(time.perf_counter() - t0, 3), shape=shapes(model))
    save()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--job", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--case", choices=CASES)
    ap.add_argument("--op", choices=["case", "tp-heads"], default="case")
    ap.add_argument("--after", action="store_true", help="also perplexity, parameters and the save check")
    a = ap.parse_args()
    job, data = load_job(a.job)
    torch.set_num_threads(job["threads"])
    if a.op == "tp-heads":
        tp_heads(job, data, a.out)
        return
    if not a.case:
        raise SystemExit("error: --case is needed with --op case")
    rec = run_case(job, data, a.case, a.after)
    import importlib.metadata as md

    rec["versions"] = {n: md.version(n) for n in ("torch", "transformers")}
    if a.case.startswith("tp."):
        import torch_pruning as tp

        rec["versions"].update({"torch-pruning": md.version("torch-pruning"),
                                "torch_pruning.__version__": tp.__version__})
    a.out.write_text(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
