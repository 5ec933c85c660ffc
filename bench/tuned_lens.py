"""Tuned lens vs logit lens on SmolLM2: fit on ~1M tokens here, then the per-layer KL to the final layer.

    python bench/tuned_lens.py                     # 1M tokens (~50-70 min on 2 cores); resumable
    python bench/tuned_lens.py --tokens 100000     # a shorter fit

Fits :func:`shoestring.observe.fit_tuned_lens` on the training documents of a corpus (``austen`` when
the Debian package is present, else ``stdlib-code``; a 10% document split is held out), checkpointing
into ``bench/.cache/tuned-lens-<corpus>-<tokens>`` so an interrupted run resumes. Then
:func:`shoestring.observe.lens_kl` measures mean KL(final || lens) per layer on held-out documents of
the same corpus and on ``stdlib-prose`` (out of domain), for the logit lens and the tuned lens.
Writes ``bench/results/tuned_lens.json`` with ``tuned_beats_logit_layers`` (the layers, all but the
last, where the tuned lens has the lower KL) and the fit's tokens/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import machine, write_atomic  # noqa: E402

RESULTS = HERE / "results" / "tuned_lens.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--eval-tokens", type=int, default=4096)
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(2)

    import shoestring
    from shoestring.data import list_builtins, load_corpus, split
    from shoestring.observe.tuned_lens_fit import fit_tuned_lens, lens_kl

    here = [b.name for b in list_builtins() if b.available]
    corpus_name = args.corpus or ("austen" if "austen" in here else "stdlib-code")
    lm = shoestring.load()
    train, val = split(load_corpus(corpus_name), val_fraction=0.1, seed=0)
    folder = HERE / ".cache" / f"tuned-lens-{corpus_name}-{args.tokens}"
    t0 = time.perf_counter()
    lens = fit_tuned_lens(lm, train, tokens=args.tokens, out=folder)
    fit_s = time.perf_counter() - t0
    evals = {}
    for name, corpus in ((f"{corpus_name} (held-out documents)", val), ("stdlib-prose (out of domain)", "stdlib-prose")):
        t1 = time.perf_counter()
        res = lens_kl(lm, {"logit": None, "tuned": lens}, corpus, tokens=args.eval_tokens)
        last = lm.n_layers - 1
        beats = [L for L in range(last) if res["tuned"]["kl"][L] < res["logit"]["kl"][L]]
        evals[name] = {**res, "eval_s": round(time.perf_counter() - t1, 1), "tuned_beats_logit_layers": beats,
                       "tuned_beats_logit_at_every_layer_but_last": beats == list(range(last))}
        print(name, "tuned < logit at", len(beats), "of", last, "layers")
    write_atomic(Path(args.out), {
        "machine": machine(), "model": lm.name, "fit": {**lens.meta, "wall_s_this_run": round(fit_s, 1),
        "note": "wall_s_this_run covers only this process (a resumed fit did part of the work earlier)"},
        "eval": evals})
    print("wrote", args.out)


if __name__ == "__main__":
    main()
