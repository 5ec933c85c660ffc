"""Activation store: caching throughput vs the bare forward pass, reader rows/s, peak RSS at 1M tokens.

    python bench/store.py                 # the full run (1M tokens of SmolLM2; ~15-40 min on 2 cores)
    python bench/store.py --tokens 65536  # a shorter RSS/reader run

Writes ``bench/results/store.json``. Cases (same model, same corpus, same contexts, fp32 model,
fp16 store, ``torch.set_num_threads(2)``, interleaved, medians):

- ``bare_forward``: the plain HF forward pass over the contexts (the full model: what a user runs
  without shoestring);
- ``capture_no_disk``: shoestring's forward up to the cached layer with the capture, nothing written;
- ``cache``: ``cache_activations`` over the same contexts, shards written to disk.

``cache_vs_forward_speedup`` = bare forward time / cache time for the same tokens (>= 0.9 is the
bar: caching may not be slower than just running the model). It is above 1 because caching stops the
forward after the last requested layer; ``cache_vs_capture_speedup`` isolates the cost of writing.
Then one ``shoestring cache`` process caches ``--tokens`` tokens: its peak RSS (getrusage of the
child) against weights + 1 GiB, and the reader's shuffled rows/s over that store, warm (page cache)
and cold (after dropping the page cache, where the machine allows it).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import interleave, machine, paired_ratio, stats, write_atomic  # noqa: E402

RESULTS = HERE / "results" / "store.json"


def throughput(lm, hook: str, corpus, T: int, B: int, n_batches: int, repeats: int) -> dict:
    from shoestring.data import pack_batches
    from shoestring.store import cache_activations

    batches = list(itertools.islice(pack_batches(corpus, lm.tokenizer, T, B), n_batches))
    tokens = n_batches * B * T
    work = Path(tempfile.mkdtemp(prefix="bench-store-"))

    def bare():
        with torch.no_grad():
            for b in batches:
                lm.model(input_ids=b.tokens)

    def capture_no_disk():
        for b in batches:
            lm.run_with_cache(b.tokens, [hook], device="cpu", dtype=torch.float16)

    def cache():
        out = work / "s"
        shutil.rmtree(out, ignore_errors=True)
        cache_activations(lm, ((b.tokens, b.doc_ids, b.positions) for b in batches), hooks=[hook], out=out,
                          target_tokens=tokens, context_length=T, shard_tokens=B * T * 4, progress=False)

    times = interleave({"bare_forward": bare, "capture_no_disk": capture_no_disk, "cache": cache},
                       repeats=repeats, warmup=1, min_repeats=min(repeats, 3))
    shutil.rmtree(work, ignore_errors=True)
    cases = {k: {**stats(v), "tokens_per_s": round(tokens / sorted(v)[len(v) // 2], 1)}
             for k, v in times.items()}
    return {
        "tokens_per_call": tokens,
        "cases": cases,
        "cache_vs_forward_speedup": paired_ratio(times["bare_forward"], times["cache"]),
        "cache_vs_capture_speedup": paired_ratio(times["capture_no_disk"], times["cache"]),
    }


def peak_rss_run(model: str, corpus: str, hook: str, tokens: int, T: int, out: Path) -> dict:
    """One `shoestring cache` process; its peak RSS is the kernel's high-water mark (VmHWM) of that
    process, polled until it exits. (getrusage(RUSAGE_CHILDREN) would also count the bench process
    itself, copied by fork before exec.)"""
    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).parent / "shoestring"
    cmd = [str(exe), "cache", model, "--corpus", corpus, "--hooks", hook, "--tokens", str(tokens),
           "--out", str(out), "--context-length", str(T), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    hwm = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"shoestring cache failed: {stderr.strip().splitlines()[-1:]}")
    return {"command": " ".join(cmd), "tokens": tokens, "wall_s": round(wall, 1),
            "tokens_per_s": round(tokens / wall, 1), "peak_rss_bytes": hwm,
            "peak_rss_note": "VmHWM of the `shoestring cache` process (includes loading the model)",
            "disk_bytes": sum(f.stat().st_size for f in out.glob("*") if f.is_file())}


def _drop_page_cache() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def reader_rate(store_dir: Path, hook: str, batch: int, cold: bool) -> dict:
    from shoestring.store import ActivationStore

    dropped = _drop_page_cache() if cold else None
    store = ActivationStore(store_dir)
    rows = 0
    t0 = time.perf_counter()
    for x in store.batches(hook, batch, shuffle=True, seed=0):
        rows += x.shape[0]
    dt = time.perf_counter() - t0
    return {"rows": rows, "width": store.width(hook), "dtype": store.manifest.dtype, "batch": batch,
            "seconds": round(dt, 3), "rows_per_s": round(rows / dt, 1),
            **({"page_cache_dropped": dropped} if cold else {})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--hook", default="blocks.3.hook_resid_post")
    ap.add_argument("--corpus", default="stdlib-code")
    ap.add_argument("--context-length", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--throughput-batches", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / ".cache" / "store-bench"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(2)

    import shoestring
    from shoestring.data import load_corpus

    lm = shoestring.load()
    corpus = load_corpus(args.corpus)
    weights = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    report = {"machine": machine(), "model": "smollm2-135m", "hook": args.hook, "corpus": args.corpus,
              "context_length": args.context_length, "batch": args.batch, "weights_bytes": weights}
    print(f"throughput: {args.throughput_batches} x {args.batch} x {args.context_length} tokens, {args.repeats} rounds", flush=True)
    report["throughput"] = throughput(lm, args.hook, corpus, args.context_length, args.batch,
                                      args.throughput_batches, args.repeats)
    del lm
    out = Path(args.out)
    print(f"peak RSS: caching {args.tokens:,} tokens in a child process...", flush=True)
    report["cache_run"] = peak_rss_run("smollm2-135m", args.corpus, args.hook, args.tokens, args.context_length, out)
    report["reader"] = {"warm": reader_rate(out, args.hook, 4096, cold=False),
                        "cold": reader_rate(out, args.hook, 4096, cold=True)}
    rss = report["cache_run"]["peak_rss_bytes"]
    report["must_show"] = {
        "cache_vs_forward_speedup": report["throughput"]["cache_vs_forward_speedup"],
        "cache_at_least_0.9x_forward": report["throughput"]["cache_vs_forward_speedup"] >= 0.9,
        "reader_rows_per_s_cold": report["reader"]["cold"]["rows_per_s"],
        "reader_at_least_1M_rows_per_s": min(report["reader"]["cold"]["rows_per_s"], report["reader"]["warm"]["rows_per_s"]) >= 1e6,
        "peak_rss_bytes": rss,
        "peak_rss_limit_bytes": weights + 2**30,
        "peak_rss_under_weights_plus_1GiB": rss < weights + 2**30,
        "tokens_cached": report["cache_run"]["tokens"],
    }
    write_atomic(RESULTS, report)
    t = report["throughput"]["cases"]
    print(f"bare forward {t['bare_forward']['tokens_per_s']:.0f} tok/s | capture (no disk) {t['capture_no_disk']['tokens_per_s']:.0f} tok/s"
          f" | cache {t['cache']['tokens_per_s']:.0f} tok/s | cache_vs_forward_speedup {report['throughput']['cache_vs_forward_speedup']}")
    print(f"cache run: {args.tokens:,} tokens in {report['cache_run']['wall_s']} s, peak RSS {rss / 2**30:.2f} GiB"
          f" (limit {(weights + 2**30) / 2**30:.2f} GiB)")
    print(f"reader: warm {report['reader']['warm']['rows_per_s']:,.0f} rows/s, cold {report['reader']['cold']['rows_per_s']:,.0f} rows/s")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
