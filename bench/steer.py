"""Steered batched generation side by side: plain HF ``generate``, shoestring's ``Steer`` + ``generate``,
repeng 0.4.0 (``ControlModel``) and steering-vectors (``SteeringVector.apply``), on SmolLM2-135M.

    python bench/steer.py              # builds the anchor venvs once, then runs (~13 min on 2 quiet cores)
    python bench/steer.py --quick      # 4 prompts, 8 tokens, 2 rounds: a smoke test -> bench/.cache/steer-quick.json

The work: the shipped sentiment prompts (16, left-padded in one batch), greedy, exactly ``--tokens`` new tokens
each (``min_new_tokens``), one mean-difference sentiment vector (fitted on the shipped pairs) added with
``--scale`` at the output of decoder block ``--layer`` (our ``blocks.L.hook_resid_post``, repeng's layer id L,
steering-vectors' ``decoder_block`` L: the logits check below shows they are one place). Every contender gets
the same token ids, the same vector and the same settings.

Contenders, all in the same interleaved rounds (``_common.interleave``: the starting contender rotates):
- here: plain HF ``model.generate`` on the pre-tokenised batch; ours, ``shoestring.steer.generate`` with a
  ``Steer`` (the user-facing call: it tokenises and decodes each time); plain ``generate`` on the batch of
  every sweep row; ours' dose-response sweep as **one** batch (``SteerRows``: each row its own scale);
- each anchor in its own venv (``bench/_steer_venvs.py``: repeng pulls numpy 1.26; steering-vectors pins
  transformers < 5, so it runs on transformers 4.x), as a server process (``bench/_steer_anchor.py``) loaded
  once and driven call by call over a pipe: plain HF ``generate`` in that process, the library's steered
  ``generate``, and its sweep (one ``generate`` per scale: one control per model at a time). Only one process
  computes at any moment; the anchor's time is taken around the request (the inner time, and so the pipe's
  cost, is recorded too).

Checks before timing (these calls are also every contender's warm-up): the greedy continuations (plain,
steered, every sweep scale) and the last-position logits of one steered forward, ours against each anchor;
the same logits with our vector moved one block earlier and later show how far off a layer-index slip would be.

Results: ``bench/results/steer.json``. An anchor that cannot install or run is recorded with the reason.
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

from _common import interleave, machine, paired_ratio, stats, write_atomic  # noqa: E402

ANCHORS = {"repeng": "repeng", "steering-vectors": "steervec"}  # anchor -> venv name in _steer_venvs
KEY = {"repeng": "repeng", "steering-vectors": "steering_vectors"}  # anchor -> key in the JSON


class Anchor:
    """A running ``_steer_anchor.py`` server in the anchor's venv; ``ask`` sends one request, waits for the reply."""

    def __init__(self, name: str, py: Path, job: Path, log: Path, threads: int):
        from _anchors import OFFLINE_ENV

        self.name, self.log = name, log
        env = {**os.environ, **OFFLINE_ENV, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
        cmd = [str(py), str(BENCH / "_steer_anchor.py"), "--anchor", name, "--job", str(job)]
        print("+", " ".join(cmd), flush=True)
        self._err = open(log, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
                                     env=env, bufsize=1)
        self._read()  # {"ready": true} once the model is loaded

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.last_error()}")
        rep = json.loads(line)
        if "error" in rep:
            raise RuntimeError(f"{self.name}: {rep['error']}")
        return rep

    def ask(self, **req) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def last_error(self) -> str:
        self._err.flush()
        lines = [x for x in Path(self.log).read_text().splitlines() if x.strip()]
        errs = [x for x in lines if "Error" in x or "error" in x]
        return ((errs or lines or ["(no output)"])[-1]).strip()[:300]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.ask(op="quit")
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            if self.proc.poll() is None:
                self.proc.kill()  # our own child, by its handle
                self.proc.wait()
        self._err.close()


def start_anchor(name: str, job: Path, tmp: Path, threads: int) -> tuple[Anchor | None, dict]:
    """Build the venv if needed and start the server; on failure (None, {"ran": False, "why": ...})."""
    import _steer_venvs

    try:
        py = _steer_venvs.ensure(ANCHORS[name])
    except Exception as e:  # noqa: BLE001 - pip failed: record why, keep the rest of the bench
        return None, {"ran": False, "why": f"install failed: {type(e).__name__}: {e}"[:400]}
    versions = _steer_venvs.installed_versions(ANCHORS[name])
    try:
        srv = Anchor(name, py, job, tmp / f"{name}.log", threads)
        info = srv.ask(op="info")
    except Exception as e:  # noqa: BLE001
        return None, {"ran": False, "why": f"run failed: {e}"[:400], "versions": versions}
    return srv, {"ran": True, "versions": versions, "process": info}


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return round(float((a - b).abs().max()), 6)


def agreement(ours: dict, theirs: dict, prompts: list[str], decode, scales: list[float], scale_logits: float) -> dict:
    """Continuations (token ids) and last-position logits, ours vs the anchor's."""

    def same(a, b):
        rows = (a == b).all(1)
        return {"identical_continuations": int(rows.sum()), "of": int(rows.numel())}

    out = {"plain": same(ours["plain_ids"], theirs["plain_ids"]),
           "steered": same(ours["steered_ids"], theirs["steered_ids"])}
    diff = [i for i in range(len(prompts)) if not bool((ours["steered_ids"][i] == theirs["steered_ids"][i]).all())]
    out["steered"]["first_difference"] = (
        {"prompt": prompts[diff[0]], "ours": decode(ours["steered_ids"][diff[0]]),
         "anchor": decode(theirs["steered_ids"][diff[0]])}
        if diff else None)
    sweep = [same(ours[f"sweep_ids_{s}"], theirs[f"sweep_ids_{s}"]) for s in scales]
    out["sweep"] = {"identical_continuations": sum(x["identical_continuations"] for x in sweep),
                    "of": sum(x["of"] for x in sweep),
                    "per_scale": {str(s): x for s, x in zip(scales, sweep)}}
    at = max_abs(ours["steered_logits"], theirs["steered_logits"])
    off = {k: max_abs(ours[k], theirs["steered_logits"]) for k in ours if k.startswith("steered_logits_at_")}
    out["logits"] = {
        "what": "last-position logits of one forward over the batch (generate's position ids), max |ours - anchor|",
        "scale_max_abs_logit": round(scale_logits, 3),
        "plain": max_abs(ours["plain_logits"], theirs["plain_logits"]),
        "steered_same_layer": at,
        **{f"ours_vector_{k.removeprefix('steered_logits_')}_vs_anchor": v for k, v in off.items()},
        "steering_effect_max_abs": max_abs(ours["steered_logits"], ours["plain_logits"]),
        "same_top1_steered": int((ours["steered_logits"].argmax(-1) == theirs["steered_logits"].argmax(-1)).sum()),
    }
    ok = at <= 1e-3 * max(1.0, scale_logits) and all(v > 100 * max(at, 1e-6) for v in off.values())
    out["layer_convention_ok"] = ok
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--layer", type=int, default=8)
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=8, help="at most this many timed rounds")
    ap.add_argument("--budget", type=float, default=420.0,
                    help="seconds of rounds, then stop (never before --min-rounds)")
    ap.add_argument("--min-rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=0,
                    help="untimed rounds first (the agreement checks already call every contender once)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sweep", default="2,4,6,8", help="scales of the dose-response sweep")
    ap.add_argument("--anchors", default="repeng,steering-vectors")
    ap.add_argument("--quick", action="store_true",
                    help="4 prompts, 8 tokens, 2 rounds, no warm-up: checks that it runs")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "steer.json")
    a = ap.parse_args()
    if a.quick:
        a.prompts, a.tokens, a.rounds, a.min_rounds, a.warmup, a.sweep = 4, 8, 2, 2, 0, "2,4"
        if a.out == BENCH / "results" / "steer.json":
            a.out = BENCH / ".cache" / "steer-quick.json"
    torch.set_num_threads(a.threads)
    facts = machine()

    import shoestring
    from shoestring.models.bundled import cached_dir
    from shoestring.steer import MeanDiff, Steer, generate
    from shoestring.steer.batch import SteerRows
    from shoestring.steer.experiment import shipped_pairs, shipped_prompts

    prompts = (shipped_prompts("sentiment") + shipped_prompts("negative"))[: a.prompts]
    lm = shoestring.load("smollm2-135m")
    pos, neg = shipped_pairs("sentiment")
    direction = MeanDiff(layers=(a.layer,)).fit(lm, pos, neg)
    v = direction.vectors[a.layer]
    steer = Steer(lm, direction, a.scale, layers=(a.layer,))
    n, L = a.tokens, a.layer
    scales = [float(x) for x in a.sweep.split(",")]
    enc = lm.tokenize(prompts)
    plen = enc["input_ids"].shape[1]
    gen = {"max_new_tokens": n, "min_new_tokens": n, "do_sample": False, "pad_token_id": lm.tokenizer.pad_token_id}
    rows = SteerRows.sweep(lm, L, [(direction, s) for s in scales], len(prompts))
    enc_big = lm.tokenize(prompts * len(scales))

    def plain():
        with torch.no_grad():
            return lm.model.generate(**enc, **gen)

    def ours():
        return generate(lm, prompts, steer, n, min_new_tokens=n)

    def plain_big():
        with torch.no_grad():
            return lm.model.generate(**enc_big, **gen)

    def ours_sweep():
        return generate(lm, prompts * len(scales), rows, n, min_new_tokens=n)

    # -- what ours produces (token ids, logits), for the agreement checks -----------------------------
    mine: dict[str, torch.Tensor] = {"plain_ids": plain()[:, plen:]}
    with torch.no_grad(), steer:
        mine["steered_ids"] = lm.model.generate(**enc, **gen)[:, plen:]
    with torch.no_grad(), rows:
        big = lm.model.generate(**enc_big, **gen)[:, plen:]
    for i, s in enumerate(scales):
        mine[f"sweep_ids_{s}"] = big[i * len(prompts):(i + 1) * len(prompts)]
    texts, sweep_texts = ours(), ours_sweep()
    api_consistent = (texts == lm.tokenizer.batch_decode(mine["steered_ids"], skip_special_tokens=True)
                      and sweep_texts == lm.tokenizer.batch_decode(big, skip_special_tokens=True))
    position_ids = enc["attention_mask"].long().cumsum(-1) - 1
    position_ids.masked_fill_(enc["attention_mask"] == 0, 1)  # as HF generate's prefill
    fwd = {**enc, "position_ids": position_ids}
    with torch.no_grad():
        mine["plain_logits"] = lm.model(**fwd).logits[:, -1]
        with steer:
            mine["steered_logits"] = lm.model(**fwd).logits[:, -1]
        for other in (L - 1, L + 1):
            if 0 <= other < lm.n_layers:
                with lm.edit({f"blocks.{other}.hook_resid_post": a.scale * v}):
                    mine[f"steered_logits_at_layer_{other}"] = lm.model(**fwd).logits[:, -1]
    scale_logits = float(mine["plain_logits"].abs().max())

    contenders = {"plain_hf_generate": plain, "shoestring_steered": ours,
                  "plain_hf_generate_sweep_batch": plain_big, "shoestring_sweep_one_batch": ours_sweep}
    anchors: dict[str, dict] = {}
    servers: dict[str, Anchor] = {}
    inner: dict[str, list[float]] = {}
    failed: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="steer-bench-", dir=BENCH / ".cache"))
    try:
        from safetensors.torch import load_file, save_file

        save_file({"v": v.contiguous()}, str(tmp / "v.safetensors"))
        job = {"model": str(cached_dir()), "layer": L, "vector": str(tmp / "v.safetensors"), "scale": a.scale,
               "sweep_scales": scales, "max_new_tokens": n, "threads": a.threads,
               "pad_token_id": lm.tokenizer.pad_token_id,
               "input_ids": enc["input_ids"].tolist(), "attention_mask": enc["attention_mask"].tolist(),
               "position_ids": position_ids.tolist()}
        (tmp / "job.json").write_text(json.dumps(job))
        for name in [x for x in a.anchors.split(",") if x]:
            srv, rec = start_anchor(name, tmp / "job.json", tmp, a.threads)
            anchors[name] = rec
            if srv is None:
                print(name, "did not run:", rec["why"], flush=True)
                continue
            try:
                srv.ask(op="outputs", path=str(tmp / f"{name}-outputs.safetensors"))
                theirs = load_file(str(tmp / f"{name}-outputs.safetensors"))
                decode = lambda ids: lm.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
                rec["agreement"] = agreement(mine, theirs, prompts, decode, scales, scale_logits)
            except Exception as e:  # noqa: BLE001
                anchors[name] = {**rec, "ran": False, "why": f"run failed: {e}"[:400]}
                srv.close()
                continue
            servers[name] = srv
            print(name, json.dumps({"process": rec["process"], "agreement": {k: rec["agreement"][k] for k in
                                    ("plain", "steered", "logits", "layer_convention_ok")}}), flush=True)
            for what, case in (("plain", "plain_hf_generate"), ("steered", "steered"),
                               ("sweep", "sweep_one_generate_per_scale")):
                key = f"{KEY[name]}.{case}"
                inner[key] = []

                def call(srv=srv, what=what, key=key, name=name):
                    if name in failed:
                        return
                    try:
                        inner[key].append(srv.ask(op="time", what=what)["s"])
                    except Exception as e:  # noqa: BLE001
                        failed[name] = f"failed while timing: {e}"[:400]

                contenders[key] = call

        print(f"timing {len(contenders)} contenders: up to {a.rounds} interleaved rounds, {a.budget:.0f} s budget",
              flush=True)
        t0 = time.perf_counter()
        times = interleave(contenders, a.rounds, budget_s=a.budget, min_repeats=a.min_rounds, warmup=a.warmup)
        rounds_s = time.perf_counter() - t0
    finally:
        for srv in servers.values():
            srv.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    for name, why in failed.items():
        anchors[name] = {**anchors[name], "ran": False, "why": why}
        for k in [k for k in times if k.startswith(KEY[name] + ".")]:
            times.pop(k)
    new_tokens, sweep_tokens = n * len(prompts), n * len(prompts) * len(scales)

    def case(k: str) -> dict:
        toks = sweep_tokens if "sweep" in k else new_tokens
        out = {**stats(times[k]), "tokens_per_s": round(toks / statistics.median(times[k]), 2), "new_tokens": toks}
        if k in inner:  # the anchor's own clock: what the pipe round trip added
            w = inner[k][-len(times[k]):]
            out["inner_median_s"] = round(statistics.median(w), 6)
            out["pipe_overhead_max_s"] = round(max(x - y for x, y in zip(times[k], w)), 6)
        return out

    cases = {k: case(k) for k in times}
    med = {k: statistics.median(t) for k, t in times.items()}
    ratios = {
        "ours_steered_vs_plain_tokens_per_s": paired_ratio(times["plain_hf_generate"], times["shoestring_steered"]),
        "ours_steered_vs_plain_tokens_per_s_from_medians":
            round(med["plain_hf_generate"] / med["shoestring_steered"], 4),
        "ours_steered_vs_plain_tokens_per_s_from_min":
            round(min(times["plain_hf_generate"]) / min(times["shoestring_steered"]), 4),
        "ours_sweep_batch_vs_plain_same_batch_tokens_per_s": paired_ratio(times["plain_hf_generate_sweep_batch"],
                                                                          times["shoestring_sweep_one_batch"]),
        "ours_sweep_batch_vs_plain_same_batch_tokens_per_s_from_min": round(
            min(times["plain_hf_generate_sweep_batch"]) / min(times["shoestring_sweep_one_batch"]), 4),
    }
    for name, rec in anchors.items():
        k = KEY[name]
        if not rec["ran"]:
            ratios[f"ours_vs_{k}"] = None
            continue
        st, pl, sw = times[f"{k}.steered"], times[f"{k}.plain_hf_generate"], times[f"{k}.sweep_one_generate_per_scale"]
        ratios[f"ours_vs_{k}"] = paired_ratio(st, times["shoestring_steered"])  # their time / ours: > 1, we are faster
        ratios[f"ours_vs_{k}_from_medians"] = round(med[f"{k}.steered"] / med["shoestring_steered"], 4)
        ratios[f"ours_vs_{k}_from_min"] = round(min(st) / min(times["shoestring_steered"]), 4)
        # each side's steered tokens/s over the plain generate of its own process (its own transformers)
        own = paired_ratio(pl, st)
        ratios[f"ours_vs_{k}_normalised"] = round(ratios["ours_steered_vs_plain_tokens_per_s"] / own, 4)
        ratios[f"{k}_steered_vs_own_plain_tokens_per_s"] = own
        ratios[f"{k}_process_plain_vs_our_plain_tokens_per_s"] = paired_ratio(times["plain_hf_generate"], pl)
        ratios[f"ours_sweep_vs_{k}_sweep"] = paired_ratio(sw, times["shoestring_sweep_one_batch"])
    ran = {n_: r for n_, r in anchors.items() if r["ran"]}
    checks = {
        "ours_steered_at_least_0_95x_plain": {"value": ratios["ours_steered_vs_plain_tokens_per_s"], "limit": 0.95,
                                              "ok": ratios["ours_steered_vs_plain_tokens_per_s"] >= 0.95},
        **{f"faster_than_{KEY[n_]}": {"value": ratios[f"ours_vs_{KEY[n_]}"], "limit": 1.0,
                                     "ok": ratios[f"ours_vs_{KEY[n_]}"] > 1.0} if r["ran"] else
           {"value": None, "ok": None, "why": r["why"]} for n_, r in anchors.items()},
        **{f"same_place_as_{KEY[n_]}": {"value": r["agreement"]["logits"]["steered_same_layer"],
                                        "ok": r["agreement"]["layer_convention_ok"]} for n_, r in ran.items()},
        "api_texts_match_token_ids": {"ok": api_consistent},
    }
    must_show = {
        **checks,
        "all_ok": all(c["ok"] for c in checks.values() if c["ok"] is not None),
        "also_reported": "ours_sweep_batch_vs_plain_same_batch_tokens_per_s (a 64-row batch with per-row scales vs "
                         "plain generate on the same 64 rows) and ours_sweep_vs_<anchor>_sweep: not part of the bar",
    }
    result = {
        "benchmark": "steer",
        "machine": {**facts, "load_average_at_end": os.getloadavg()},
        "venvs": {"shoestring": {"torch": torch.__version__, "transformers": facts["transformers"],
                                 "shoestring": _version("shoestring")},
                  **{n_: r.get("versions") for n_, r in anchors.items()}},
        "settings": {"model": "smollm2-135m (bundled GGUF, dequantised to float32)", "model_folder": str(cached_dir()),
                     "prompts": len(prompts), "prompt_tokens_padded": plen, "new_tokens_each": n, "greedy": True,
                     "min_new_tokens": n, "batched": True, "left_padding": True, "kv_cache": True, "layer": L,
                     "hook": direction.hook_name(L), "mode": "add", "scale": a.scale,
                     "vector": "MeanDiff on the shipped sentiment pairs", "vector_norm": round(float(v.norm()), 4),
                     "threads": a.threads,
                     "sweep_scales": scales, "sweep_rows": len(prompts) * len(scales), "rounds_max": a.rounds,
                     "rounds_done": len(times["plain_hf_generate"]), "budget_s": a.budget, "warmup": a.warmup,
                     "rounds_seconds": round(rounds_s, 1)},
        "protocol": "one process per library, each loaded once; every contender in the same interleaved rounds "
                    "(bench/_common.interleave, the starting contender rotating), one process computing at a time; "
                    "an anchor's call is timed here around a one-line pipe request (inner time and pipe overhead "
                    "recorded). Ratios named ours_vs_X are X's time / ours (above 1: we are faster); paired = median "
                    "over rounds of the same-round ratio.",
        "cases": cases,
        "ratios": ratios,
        "anchors": anchors,
        "must_show": must_show,
        "samples": {"prompt": prompts[0], "plain": lm.tokenizer.decode(mine["plain_ids"][0], skip_special_tokens=True),
                    "steered": texts[0]},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(a.out, result)
    print(json.dumps({"ratios": ratios, "must_show": {k: (c["ok"] if isinstance(c, dict) else c)
                                                      for k, c in must_show.items()}}, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
