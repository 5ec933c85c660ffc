"""A caching run killed with SIGKILL mid-shard resumes into exactly the store an uninterrupted run makes."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from kill_helpers import kill_after_shards
from store_helpers import T_CTX, random_batches, tiny_lm

from shoestring.store import ActivationStore, Manifest, cache_activations

HOOKS = ["blocks.1.hook_resid_post", "blocks.2.mlp.hook_post"]
KW = dict(hooks=HOOKS, target_tokens=T_CTX * 4 * 24, context_length=T_CTX, shard_tokens=T_CTX * 8, topk=2)

SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {helpers!r})
    from store_helpers import random_batches, tiny_lm
    from shoestring.store import cache_activations

    def slow(skip=0):
        for b in random_batches(skip=skip):
            time.sleep(0.15)  # a slow forward pass: the kill lands inside a shard
            yield b

    cache_activations(tiny_lm(), slow(), out={out!r}, progress=False,
                      skip_contexts_fn=lambda n: slow(skip=n), **{kw!r})
    """
)


def _run_and_kill(out: Path, after_shards: int) -> None:
    code = SCRIPT.format(helpers=str(Path(__file__).parent), out=str(out), kw=KW)
    # 0.35 s after the shard appears: 2-3 batches into the next one (a shard is 2 batches of 4 contexts)
    kill_after_shards([sys.executable, "-c", code], out, after_shards, settle=0.35, poll=0.05)


def test_kill_9_mid_shard_then_resume_equals_uninterrupted(tmp_path):
    ref = cache_activations(tiny_lm(), random_batches(), out=tmp_path / "ref", progress=False, **KW)
    out = tmp_path / "killed"
    _run_and_kill(out, after_shards=2)
    killed = Manifest.load(out)
    assert killed.status == "running" and 2 <= len(killed.shards) < len(ref.shards)
    _run_and_kill(out, after_shards=len(killed.shards) + 2)  # and once more, later
    resumed = cache_activations(tiny_lm(), random_batches(), out=out, progress=False,
                                skip_contexts_fn=lambda n: random_batches(skip=n), **KW)
    assert resumed.status == "done"
    assert [s.checksum for s in resumed.shards] == [s.checksum for s in ref.shards]
    assert [s.first_context for s in resumed.shards] == [s.first_context for s in ref.shards]
    a, b = ActivationStore(tmp_path / "ref"), ActivationStore(out)
    assert (a.tokens() == b.tokens()).all() and len(a) == len(b)  # no token twice, none missing
    assert b.verify() == []
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".lock"]  # no temp files
