"""Structured pruning side by side: shoestring's Wanda and Taylor scoring (time and peak memory) on SmolLM2-135M,
and shoestring against Torch-Pruning 1.6.1 at the same ratio and granularity: time and memory of the pruning,
held-out perplexity after it (no recovery), and the measured speed of the pruned model.

    python bench/prune.py          # builds Torch-Pruning's venv once, then runs (about 25-35 min on 2 quiet cores)
    python bench/prune.py --quick  # tiny settings, one round: checks that it runs -> bench/.cache/prune-quick.json

Every measured run is a fresh process (``bench/_prune_anchor.py``): ours under the project's ``.venv``,
Torch-Pruning's under ``bench/.cache/prune-venv`` (``bench/_prune_venv.py``: the same torch 2.13.0 and
transformers 5.23.0, the project installed too). Each loads SmolLM2 with ``shoestring.load()``, reads the same
token ids (a safetensors file written here), prunes, and is measured by the same code. The runs interleave: one
round runs every case once, the starting case rotating each round; the first round also measures perplexity,
parameters, which channels were kept and a save_pretrained / from_pretrained round trip.

Granularity. Ours by default removes 1/3 of the key-value groups (a group = one key head, one value head and the
3 query heads reading them) and 1/3 of the MLP channels, the same share in every layer. Torch-Pruning 1.6.1 cannot
prune SmolLM2's attention on transformers 5.23: the dependency group of a q/k/v projection never closes (see
``torch_pruning.tp_heads`` in the JSON; its own GQA mode would only drop query heads anyway, keeping every key-value
head). The matched comparison is therefore the closest granularity both support: 1/3 of the MLP channels of every layer,
nothing else (``*@channels`` cases), with Taylor and with weight magnitude on both sides.

Results: ``bench/results/prune.json``; ``*_speedup`` = their time / our time, ``*_ratio`` = ours / theirs
(memory: below 1 means we use less).
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

from _common import machine, paired_ratio, stats, write_atomic  # noqa: E402
from _prune_anchor import CASES  # noqa: E402
PAIRS = {"taylor": ("ours.taylor@channels", "tp.taylor@channels"),
         "magnitude": ("ours.magnitude@channels", "tp.magnitude@channels")}
TASK = "stdlib-code"


def prepare(a, tmp: Path) -> dict:
    """Calibration and held-out batches (``shoestring.prune.evaluate.batches``) and the speed prompt, to a file."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from shoestring.models.bundled import cached_dir
    from shoestring.prune.evaluate import batches

    tok = AutoTokenizer.from_pretrained(cached_dir())
    calib = batches(tok, TASK, a.calib, a.length, a.batch_size)
    held = batches(tok, TASK, a.eval, a.length, a.batch_size, skip=a.calib)
    prompt = held[0][:1, :a.speed_prompt].clone()  # as shoestring.prune.run does
    t = {f"calib_{i}": x.clone() for i, x in enumerate(calib)}
    t.update({f"eval_{i}": x.clone() for i, x in enumerate(held)}, prompt=prompt)
    save_file(t, str(tmp / "data.safetensors"))
    return {"calib_tokens": sum(x.numel() for x in calib), "calib_batches": len(calib),
            "eval_tokens": sum(x.numel() for x in held), "eval_batches": len(held), "prompt_tokens": prompt.shape[1]}


def env(threads: int) -> dict:
    from _anchors import OFFLINE_ENV

    return {**os.environ, **OFFLINE_ENV, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}


def last_line(text: str) -> str:
    lines = [x for x in text.splitlines() if x.strip()]
    errs = [x for x in lines if "Error" in x or "error" in x]
    return ((errs or lines or ["(no output)"])[-1]).strip()[:400]


def run_worker(py: Path, tmp: Path, case: str, after: bool, threads: int, timeout: float) -> dict:
    """Run ``case`` in a fresh process of the interpreter ``py`` (``bench/_prune_anchor.py``).

    Parameters
    ----------
    py, tmp, case
        The venv's python, the folder holding ``job.json``, and one of ``CASES``.
    after
        Also measure perplexity, parameters, kept channels and the save check (the first round).

    Returns
    -------
    dict
        The worker's record plus ``worker_wall_s``, or ``{"error": one line}``.
    """
    out = tmp / f"{case}.json"
    out.unlink(missing_ok=True)
    cmd = [str(py), str(BENCH / "_prune_anchor.py"), "--job", str(tmp / "job.json"), "--case", case, "--out", str(out)]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd + (["--after"] if after else []), env=env(threads), capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{case}: no result within {timeout:.0f} s (killed)"}
    wall = round(time.perf_counter() - t0, 3)
    if res.returncode != 0 or not out.exists():
        return {"error": f"{case} exited {res.returncode}: {last_line(res.stderr)}"}
    rec = json.loads(out.read_text())
    rec["worker_wall_s"] = wall
    return rec


def tp_heads(py: Path, tmp: Path, threads: int, limit: float) -> dict:
    """Ask Torch-Pruning for head pruning (``_prune_anchor.py --op tp-heads``) and stop it after ``limit`` s."""
    out = tmp / "tp-heads.json"
    cmd = [str(py), str(BENCH / "_prune_anchor.py"), "--job", str(tmp / "job.json"), "--op", "tp-heads",
           "--out", str(out)]
    print("+", " ".join(cmd), f"(stopped after {limit:.0f} s)", flush=True)
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, env=env(threads), capture_output=True, text=True, timeout=limit)
        err = last_line(res.stderr) if res.returncode else None
        killed = False
    except subprocess.TimeoutExpired:  # subprocess.run kills its own child
        err, killed = None, True
    rec = json.loads(out.read_text()) if out.exists() else {}
    rec.update(wall_s=round(time.perf_counter() - t0, 1), limit_s=limit, killed_at_limit=killed)
    if err:
        rec["error"] = err
    mp = rec.get("metapruner_heads")
    if mp and not mp.get("returned"):
        ran = round(time.time() - mp.pop("started_epoch_s"), 1)
        mp["what"] = (f"MetaPruner(...) had not returned after {ran} s, when it was stopped: its __init__ collects "
                      "every root's group, and the q/k/v groups never close (see smollm2_layer0_groups and "
                      "one_layer_rope_check)")
        mp["running_s_when_stopped"] = ran
    return rec


def med(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 6) if xs else None


def summarise(recs: list[dict]) -> dict:
    """Per case: timing, memory and speed over rounds; the first round's perplexity, parameters and save check."""
    ok = [r for r in recs if "error" not in r]
    if not ok:
        return {"ran": False, "errors": [r["error"] for r in recs]}
    first = ok[0]
    out: dict = {"ran": True, "rounds": len(ok), "how": first.get("how")}
    p = [r["pruning"] for r in ok]
    if p[0]["seconds"]:
        out["pruning_s"] = stats([x["total_s"] for x in p])
        out["phase_median_s"] = {k: med([x["seconds"][k] for x in p]) for k in p[0]["seconds"]}
        peaks = [x["peak_bytes_total"] for x in p]
        out["peak_bytes"] = {"median": int(statistics.median(peaks)), "min": min(peaks), "max": max(peaks),
                             "samples": peaks,
                             "how": "process RSS above its level with the model loaded, sampled every 2 ms"}
        out["phase_peak_bytes_median"] = {k: int(statistics.median(x["peak_bytes"].get(k, 0) for x in p))
                                          for k in p[0]["seconds"]}
        out["retained_bytes_median"] = int(statistics.median(x["retained_bytes"] for x in p))
    pre = [r["speed"]["prefill_s"] for r in ok]
    dec = [r["speed"]["decode_tokens_per_s"] for r in ok]
    out["speed"] = {"prefill_s": stats(pre), "decode_tokens_per_s": {"median": med(dec), "min": round(min(dec), 4),
                    "max": round(max(dec), 4), "samples": [round(x, 4) for x in dec]},
                    "what": "per round: measure_speed's median of 3 (prefill of the prompt; greedy decoding)"}
    for k in ("perplexity", "params_before", "params_after", "params_removed", "shape", "save_pretrained"):
        if k in first:
            out[k] = first[k]
    out["load_s_median"] = med([r["load_s"] for r in ok])
    out["worker_wall_s"] = [r["worker_wall_s"] for r in ok]
    if len(ok) < len(recs):
        out["errors"] = [r["error"] for r in recs if "error" in r]
    return out


def scoring(raw: dict) -> dict:
    """Our scoring alone (time and peak memory of ``score``), per criterion, over every case that ran it."""
    out = {}
    for crit in ("wanda", "taylor", "magnitude"):
        recs = [r for c, v in raw.items() if c.startswith(f"ours.{crit}@") for r in v if "error" not in r]
        if recs:
            secs = [r["pruning"]["seconds"]["score"] for r in recs]
            peaks = [r["pruning"]["peak_bytes"]["score"] for r in recs]
            out[crit] = {"score_s": stats(secs), "score_peak_bytes": {"median": int(statistics.median(peaks)),
                         "min": min(peaks), "max": max(peaks)}, "from_cases": sorted({r["case"] for r in recs})}
    return out


def jaccard(a: list[list[int]], b: list[list[int]]) -> dict:
    j = [len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(a, b)]
    return {"mean": round(statistics.fmean(j), 4), "min": round(min(j), 4), "identical_layers": sum(x == 1 for x in j),
            "layers": len(j)}


def side_by_side(cases: dict, raw: dict) -> dict:
    """Ours against Torch-Pruning per criterion, at the matched granularity (MLP channels only).

    Returns
    -------
    dict
        ``{criterion: row}``; ``*_speedup`` = their time / our time (time per token for decoding), paired per
        round where possible; ``peak_memory_ratio`` = our median peak / theirs; kept-channel Jaccard per layer.
    """
    out = {}
    for crit, (o, t) in PAIRS.items():
        co, ct = cases.get(o, {}), cases.get(t, {})
        row: dict = {"ours": o, "torch_pruning": t}
        if not (co.get("ran") and ct.get("ran")):
            row["why_missing"] = "one side did not run: see cases"
            out[crit] = row
            continue
        so, st = ([r["pruning"]["total_s"] for r in raw[c] if "error" not in r] for c in (o, t))
        n = min(len(so), len(st))
        po, pt = co["speed"], ct["speed"]
        row.update(
            pruning_time_speedup=paired_ratio(st[:n], so[:n]),
            pruning_time_speedup_from_medians=round(statistics.median(st) / statistics.median(so), 4),
            pruning_time_speedup_from_min=round(min(st) / min(so), 4),
            peak_memory_ratio=round(co["peak_bytes"]["median"] / max(1, ct["peak_bytes"]["median"]), 4),
            perplexity={"ours": co.get("perplexity"), "torch_pruning": ct.get("perplexity")},
            params_removed={"ours": co.get("params_removed"), "torch_pruning": ct.get("params_removed")},
            result_prefill_speedup=round(pt["prefill_s"]["median_s"] / po["prefill_s"]["median_s"], 4),
            result_decode_speedup=round(po["decode_tokens_per_s"]["median"] / pt["decode_tokens_per_s"]["median"], 4),
            save_pretrained_reloads={"ours": co.get("save_pretrained", {}).get("as_is", {}).get("reloads"),
                                     "torch_pruning": ct.get("save_pretrained", {}).get("as_is", {}).get("reloads"),
                                     "torch_pruning_config_fixed_by_hand": ct.get("save_pretrained", {})
                                     .get("config_fixed_by_hand", {}).get("reloads")})
        ko, kt = (next((r.get("kept_channels") for r in raw[c] if r.get("kept_channels")), None) for c in (o, t))
        if ko and kt:
            row["kept_channels_jaccard"] = jaccard(ko, kt)
        out[crit] = row
    return out


def progress(r: int, case: str, rec: dict) -> None:
    """One line per measured run."""
    if "error" in rec:
        print(f"round {r} {case:<26} error: {rec['error']}", flush=True)
        return
    p, sp = rec["pruning"], rec["speed"]
    ppl = f", ppl {rec['perplexity']:.3f}" if "perplexity" in rec else ""
    print(f"round {r} {case:<26} pruning {p['total_s']:.2f} s, peak +{p['peak_bytes_total'] / 2**20:.0f} MiB, prefill "
          f"{sp['prefill_s']:.3f} s, decode {sp['decode_tokens_per_s']:.1f} tok/s{ppl}", flush=True)


def vs_unpruned(summary: dict) -> None:
    """Add to each pruned case its perplexity ratio and speedups against the unpruned model (in place)."""
    base = summary.get("unpruned", {})
    if not base.get("ran"):
        return
    bp, bd = base["speed"]["prefill_s"]["median_s"], base["speed"]["decode_tokens_per_s"]["median"]
    for c, s in summary.items():
        if c != "unpruned" and s.get("ran"):
            s["vs_unpruned"] = {"perplexity_ratio": round(s["perplexity"] / base["perplexity"], 4)
                                if "perplexity" in s and "perplexity" in base else None,
                                "prefill_speedup": round(bp / s["speed"]["prefill_s"]["median_s"], 4),
                                "decode_speedup": round(s["speed"]["decode_tokens_per_s"]["median"] / bd, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calib", type=int, default=32, help="calibration contexts (shoestring.prune.run's default)")
    ap.add_argument("--eval", type=int, default=16, help="held-out contexts for perplexity")
    ap.add_argument("--length", type=int, default=256, help="tokens per context")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--head-ratio", type=float, default=1 / 3, help="share of key-value groups removed (ours, default)")
    ap.add_argument("--channel-ratio", type=float, default=1 / 3, help="share of MLP channels removed per layer")
    ap.add_argument("--speed-prompt", type=int, default=256)
    ap.add_argument("--speed-tokens", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="at most this many interleaved rounds")
    ap.add_argument("--min-rounds", type=int, default=2)
    ap.add_argument("--budget", type=float, default=1500.0, help="no round starts after this many seconds of rounds")
    ap.add_argument("--heads-limit", type=float, default=120.0, help="seconds Torch-Pruning's head pruning may try")
    ap.add_argument("--case-timeout", type=float, default=1800.0)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="4 calibration and 4 held-out contexts of 64 tokens, "
                    "32-token prompt, 4 new tokens, 1 round, 30 s for the head attempt: checks that it runs")
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "prune.json")
    a = ap.parse_args()
    if a.quick:
        a.calib, a.eval, a.length, a.batch_size, a.speed_prompt, a.speed_tokens = 4, 4, 64, 2, 32, 4
        a.rounds, a.min_rounds, a.heads_limit = 1, 1, 30.0
        if a.out == BENCH / "results" / "prune.json":
            a.out = BENCH / ".cache" / "prune-quick.json"
    if a.speed_prompt > a.length:
        raise SystemExit(f"error: --speed-prompt {a.speed_prompt} is longer than a context (--length {a.length})")
    cases = [c for c in a.cases.split(",") if c]
    if bad := [c for c in cases if c not in CASES]:
        raise SystemExit(f"error: unknown case(s) {bad}; known: {', '.join(CASES)}")
    torch.set_num_threads(a.threads)
    facts = machine()

    import _prune_venv
    from _anchors import OFFLINE_ENV, installed_versions
    from shoestring.models.bundled import cached_dir

    os.environ.update(OFFLINE_ENV)
    cached_dir()  # the GGUF -> safetensors cache, made here (only the project's .venv can) before any worker needs it
    CACHE = BENCH / ".cache"
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="prune-bench-", dir=CACHE))
    anchor: dict = {}
    try:
        data = prepare(a, tmp)
        job = {"data": str(tmp / "data.safetensors"), "threads": a.threads, "head_ratio": a.head_ratio,
               "channel_ratio": a.channel_ratio, "speed_tokens": a.speed_tokens, "tmp": str(tmp)}
        (tmp / "job.json").write_text(json.dumps(job))
        ours_py = Path(sys.executable)
        try:
            tp_py = _prune_venv.ensure()
            anchor["versions"] = _prune_venv.installed_versions()
        except Exception as e:  # noqa: BLE001 - pip failed: record why, run our side alone
            tp_py, anchor = None, {"ran": False, "why": f"install failed: {type(e).__name__}: {e}"[:400]}
        if tp_py is None:
            cases = [c for c in cases if not c.startswith("tp.")]
        else:
            anchor["tp_heads"] = tp_heads(tp_py, tmp, a.threads, a.heads_limit)
        raw: dict[str, list[dict]] = {c: [] for c in cases}
        t0 = time.perf_counter()
        for r in range(a.rounds):
            if r >= a.min_rounds and time.perf_counter() - t0 > a.budget:
                break
            live = [c for c in cases if not any("error" in x for x in raw[c])]
            s = r % len(live)
            for c in live[s:] + live[:s]:
                py = tp_py if c.startswith("tp.") else ours_py
                rec = run_worker(py, tmp, c, r == 0, a.threads, a.case_timeout)
                raw[c].append(rec)
                progress(r, c, rec)
        rounds_s = round(time.perf_counter() - t0, 1)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)

    summary = {c: summarise(v) for c, v in raw.items()}
    vs_unpruned(summary)
    tp_versions = next((r["versions"] for c in raw if c.startswith("tp.") for r in raw[c] if "versions" in r), None)
    result = {
        "benchmark": "prune",
        "machine": {**facts, "load_average_at_end": os.getloadavg()},
        "venvs": {"shoestring": installed_versions(Path(sys.executable), ["torch", "transformers", "shoestring"]),
                  "torch_pruning": anchor.get("versions"), "torch_pruning_as_run": tp_versions},
        "settings": {"model": "bundled SmolLM2-135M (shoestring.load(), float32, sdpa)", "task": TASK,
                     "calib_contexts": a.calib, "eval_contexts": a.eval, "length": a.length, "batch_size": a.batch_size,
                     **data, "head_ratio": a.head_ratio, "channel_ratio": a.channel_ratio, "uniform": True,
                     "speed_prompt": a.speed_prompt, "speed_tokens": a.speed_tokens, "threads": a.threads,
                     "rounds_max": a.rounds, "min_rounds": a.min_rounds, "budget_s": a.budget, "quick": a.quick,
                     "rounds_seconds": rounds_s},
        "protocol": "each measured run is a fresh process (ours: the project's .venv; Torch-Pruning: its own venv with "
                    "the same torch/transformers); rounds interleave every case, the first case rotating; timed = the "
                    "pruning only (ours: score + plan + cut; TP: dependency graph + gradients + prune step); memory = "
                    "peak process RSS above the loaded model; perplexity on held-out stdlib-code contexts after the "
                    "calibration ones, no recovery; speed = shoestring.prune.speed.measure_speed on the pruned model.",
        "granularity": {"default": "ours: 1/3 of key-value groups (3 query + 1 key + 1 value head each) and 1/3 of "
                        "MLP channels, every layer", "channels": "1/3 of MLP channels of every layer, attention and "
                        "hidden size untouched: the matched case (Torch-Pruning cannot prune this attention here, see "
                        "torch_pruning.tp_heads)"},
        "torch_pruning": anchor,
        "scoring": scoring(raw),
        "cases": summary,
        "side_by_side": side_by_side(summary, raw),
        "notes": _prune_venv.NOTES,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(a.out, result)
    table(summary, result["side_by_side"])
    print(f"wrote {a.out}")


def table(summary: dict, sbs: dict) -> None:
    print(f"\n{'case':<26}{'prune s':>9}{'peak MiB':>10}{'ppl':>12}{'removed':>9}{'prefill s':>11}{'decode tok/s':>14}")
    for c, s in summary.items():
        if not s.get("ran"):
            print(f"{c:<26} did not run: {s.get('errors')}")
            continue
        ps = s.get("pruning_s", {}).get("median_s")
        pk = s.get("peak_bytes", {}).get("median")
        ps, pk = ("-" if ps is None else f"{ps:.2f}"), ("-" if pk is None else f"{pk / 2**20:.0f}")
        print(f"{c:<26}{ps:>9}{pk:>10}"
              f"{s.get('perplexity', float('nan')):>12.3f}{s.get('params_removed', 0):>9.3f}"
              f"{s['speed']['prefill_s']['median_s']:>11.3f}{s['speed']['decode_tokens_per_s']['median']:>14.2f}")
    for crit, r in sbs.items():
        if "pruning_time_speedup" in r:
            print(f"{crit}: time speedup (TP/ours) {r['pruning_time_speedup']}, memory ratio (ours/TP) "
                  f"{r['peak_memory_ratio']}, kept-channel Jaccard {r.get('kept_channels_jaccard', {}).get('mean')}")


if __name__ == "__main__":
    main()
