"""Write activations to disk in resumable shards, memory bounded whatever the number of tokens.

>>> from shoestring.store import cache_activations  # doctest: +SKIP
>>> cache_activations(lm, batches, hooks=["blocks.5.hook_resid_post"], out="store/", target_tokens=10**6)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from safetensors.numpy import save_file

from ..errors import ShoestringError
from ..runs.atomic import atomic_path, is_temporary
from .manifest import Manifest, Shard
from .stats import StatsCollector

NP_DTYPES = {"float16": np.float16, "bfloat16": None, "float32": np.float32}


def model_fingerprint(lm) -> str:
    """Class, size, dtype and a hash of the config (without the transformers version): a store made by
    another model, or the same model in another dtype, is refused on resume."""
    cfg = lm.model.config.to_dict()
    cfg.pop("transformers_version", None)
    digest = hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]
    n = sum(p.numel() for p in lm.model.parameters())
    return f"{type(lm.model).__name__}:{n}:{str(lm.dtype).replace('torch.', '')}:{digest}"


def bytes_per_token(widths: dict[str, int], dtype: str, stats_only: bool = False) -> int:
    """Disk bytes per cached token: activations plus token id, document id, position and norms."""
    meta = 4 + 4 + 4 + 4 * len(widths)
    if stats_only:
        return 4 + 4 + 4
    size = 2 if dtype in ("float16", "bfloat16") else 4
    return meta + size * sum(widths.values())


def check_disk(out: Path, need: int) -> int:
    """Refuse when the folder's disk has less free space than ``need`` bytes (plus 5 %)."""
    probe = out if out.exists() else out.parent
    free = shutil.disk_usage(probe).free
    if need * 1.05 > free:
        raise ShoestringError(
            f"not enough disk at {out}: the store needs ~{need / 2**30:.2f} GiB, {free / 2**30:.2f} GiB free",
            "cache fewer --tokens, fewer --hooks, --dtype float16, or choose another --out",
        )
    return free


def _prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ShoestringError(f"cannot write to {out} ({err.strerror})", "choose a folder you can write to with --out") from None
    for leftover in out.iterdir():  # pieces of a shard that was being written when killed
        if is_temporary(leftover):
            leftover.unlink(missing_ok=True)


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).view(np.uint8).data)
    return h.hexdigest()


class _ShardBuffer:
    """Preallocated arrays for one shard: memory is O(shard), never O(store)."""

    def __init__(self, n_ctx: int, T: int, widths: dict[str, int], np_dtype, stats_only: bool):
        n = n_ctx * T
        self.acts = {} if stats_only else {h: np.empty((n, w), dtype=np_dtype) for h, w in widths.items()}
        self.norms = {h: np.empty(n, dtype=np.float32) for h in widths}
        self.tokens = np.empty(n, dtype=np.int32)
        self.doc_ids = np.empty(n, dtype=np.int32)
        self.positions = np.empty(n, dtype=np.int32)
        self.filled = 0

    def add(self, tokens, doc_ids, positions, acts: dict[str, torch.Tensor]) -> None:
        a, b = self.filled, self.filled + tokens.numel()
        self.tokens[a:b] = tokens.reshape(-1).numpy()
        self.doc_ids[a:b] = doc_ids.reshape(-1).numpy()
        self.positions[a:b] = positions.reshape(-1).numpy()
        for h, x in acts.items():  # x: [batch, pos, width]
            flat = x.reshape(-1, x.shape[-1])
            self.norms[h][a:b] = flat.float().norm(dim=-1).numpy()
            if h in self.acts:
                self.acts[h][a:b] = flat.numpy()
        self.filled = b

    def arrays(self) -> dict[str, np.ndarray]:
        n = self.filled
        out = {f"act:{h}": x[:n] for h, x in self.acts.items()}
        out.update({f"norm:{h}": x[:n] for h, x in self.norms.items()})
        out.update(tokens=self.tokens[:n], doc_ids=self.doc_ids[:n], positions=self.positions[:n])
        return out


def _flat_widths(lm, hooks: list[str]) -> dict[str, int]:
    """Width of each hook flattened to ``[token, width]`` (one small forward for all of them)."""
    shapes = lm.point_shapes(batch=1, pos=2)
    return {h: int(np.prod(shapes[h][2:])) for h in hooks}


def _token_meta(lm) -> dict:
    """What the reader needs to skip BOS / special tokens (``skip_bos``, ``skip_special``)."""
    tok = getattr(lm, "tokenizer", None)
    if tok is None:
        return {}
    return {"bos_token_id": tok.bos_token_id, "special_ids": sorted(set(tok.all_special_ids))}


def cache_activations(
    lm,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    *,
    hooks: list[str],
    out,
    target_tokens: int,
    context_length: int,
    corpus: str = "?",
    dtype: str = "float16",
    add_bos: bool = True,
    shard_tokens: int = 2**16,
    stats_only: bool = False,
    topk: int = 0,
    progress: bool = True,
    skip_contexts_fn=None,
    meta: dict | None = None,
    directions: dict[str, torch.Tensor] | None = None,
) -> Manifest:
    """Cache ``hooks`` for ``target_tokens`` tokens into ``out``; resume if ``out`` holds a partial store.

    Parameters
    ----------
    batches
        Packed contexts: ``(tokens [batch, T], doc_ids [batch, T], positions [batch, T])``, in a
        deterministic order. When resuming, ``skip_contexts_fn(n)`` is called to get the same stream
        after its first ``n`` contexts (else the first ``n`` are consumed and dropped).
    dtype
        ``float16`` (default), ``float32``; activations of several hooks are flattened to
        ``[token, width]`` (per-head points become ``head * d_head``).
    stats_only
        Keep running statistics (mean, variance, norms, top-k contexts) but not the activations.
    topk, directions
        Keep the ``topk`` largest activations per unit: per column of each hook, or, for a hook in
        ``directions``, per row of that ``[m, width]`` matrix (projections onto those directions).
    """
    out = Path(out)
    if dtype not in ("float16", "float32"):
        raise ShoestringError(f"store dtype '{dtype}' is not supported", "use --dtype float16 or float32")
    specs = lm.resolve(hooks)
    hooks = [s.name for s in specs]
    if not hooks:
        raise ShoestringError("no hook points to cache", "name at least one with --hooks, e.g. blocks.5.hook_resid_post")
    if any(s.pos_dim != 1 for s in specs):
        raise ShoestringError("attention patterns cannot be cached per token", "cache hook_z or hook_attn_out instead")
    widths = _flat_widths(lm, hooks)
    if directions:  # checked before anything is written
        unknown = set(directions) - set(hooks)
        if unknown:
            raise ShoestringError(f"directions given for hooks not cached: {sorted(unknown)}", f"cached hooks: {hooks}")
        for h, d in directions.items():
            if d.ndim != 2 or d.shape[1] != widths[h]:
                raise ShoestringError(f"directions for {h} have shape {tuple(d.shape)}", f"use [m, {widths[h]}]")
    T = context_length
    shard_ctx = max(1, shard_tokens // T)
    want = Manifest(
        model=lm.name, model_fingerprint=model_fingerprint(lm), hooks=hooks, widths=widths, dtype=dtype,
        context_length=T, corpus=corpus, add_bos=add_bos, shard_contexts=shard_ctx,
        target_tokens=int(target_tokens), stats_only=stats_only, meta={**_token_meta(lm), **(meta or {})},
        topk=int(topk), directions={h: list(d.shape) for h, d in (directions or {}).items()},
    )
    fresh = not out.exists()
    lock = _lock(out)
    try:
        return _cache(lm, batches, out, fresh, want, widths, hooks, T, shard_ctx, dtype, stats_only, topk,
                      directions, progress, skip_contexts_fn, target_tokens)
    finally:
        lock.close()  # releases the lock


def _lock(out: Path):
    """One writer per store: a second `shoestring cache` on the same folder is refused."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / ".lock", "w")
    except OSError as err:
        raise ShoestringError(f"cannot write to {out} ({err.strerror})", "choose a folder you can write to with --out") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ShoestringError(f"another process is writing the store at {out}", "wait for it, or use another --out") from None
    return handle


def _cache(lm, batches, out, fresh, want, widths, hooks, T, shard_ctx, dtype, stats_only, topk, directions,
           progress, skip_contexts_fn, target_tokens) -> Manifest:
    _prepare_out(out)
    manifest = want
    if (out / "manifest.json").exists():
        manifest = Manifest.load(out)
        manifest.check_same(want, out)
        manifest.target_tokens = int(target_tokens)  # more extends the store; fewer than it holds: done
        manifest.status = "running"
    target_ctx = max(1, manifest.target_tokens // T)
    done_ctx = manifest.n_contexts
    need = (target_ctx - done_ctx) * T * bytes_per_token(widths, dtype, stats_only)
    try:
        free = check_disk(out, need)
    except ShoestringError:
        if fresh:  # leave nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    if progress:
        print(f"shoestring cache: {target_ctx * T:,} tokens x {len(hooks)} hook(s) -> ~{need / 2**30:.2f} GiB more "
              f"on disk ({free / 2**30:.1f} GiB free); {done_ctx * T:,} tokens already done", flush=True)
    manifest.save(out)
    if done_ctx >= target_ctx:
        manifest.status = "done"
        manifest.save(out)
        return manifest

    stats = (StatsCollector.open(out, widths, topk=topk, upto_context=done_ctx, directions=directions)
             if (stats_only or topk) else None)
    stream = _contexts(batches, done_ctx, skip_contexts_fn)
    np_dtype = NP_DTYPES[dtype]
    torch_dtype = getattr(torch, dtype)
    bar = _progress(progress, target_ctx * T, done_ctx * T)
    buf = _ShardBuffer(shard_ctx, T, widths, np_dtype, stats_only)
    ctx_index = done_ctx
    try:
        for tokens, doc_ids, positions in stream:
            n = min(tokens.shape[0], target_ctx - ctx_index)
            if n <= 0:
                break
            tokens, doc_ids, positions = tokens[:n], doc_ids[:n], positions[:n]
            _, acts = lm.run_with_cache(tokens.to(lm.device), hooks, device="cpu", dtype=torch_dtype)
            flat = {h: acts[h].reshape(n, T, -1) for h in hooks}
            start = 0
            while start < n:  # a batch may straddle a shard boundary: fill, flush, go on
                take = min(n - start, shard_ctx - buf.filled // T)
                rows = slice(start, start + take)
                chunk = {h: x[rows] for h, x in flat.items()}
                if stats is not None:  # per chunk, so saved statistics match the shards exactly
                    stats.update(chunk, first_token=ctx_index * T)
                buf.add(tokens[rows], doc_ids[rows], positions[rows], chunk)
                ctx_index += take
                start += take
                bar.update(take * T)
                if buf.filled == shard_ctx * T or ctx_index == target_ctx:
                    _write_shard(out, manifest, buf, ctx_index, T, stats)
                    bar.set_postfix_str(f"disk {_du(out) / 2**30:.2f} GiB")
                    buf.filled = 0
            if ctx_index >= target_ctx:
                break
        if ctx_index < target_ctx and buf.filled:  # the corpus ran out: keep what was read
            _write_shard(out, manifest, buf, ctx_index, T, stats)
            buf.filled = 0
    finally:
        bar.close()
    if ctx_index < target_ctx:
        raise ShoestringError(
            f"the corpus ran out after {ctx_index * T:,} tokens (asked for {target_ctx * T:,}); those are saved",
            f"rerun with --tokens {ctx_index * T} to finish the store, or use a larger --corpus",
        )
    manifest.status = "done"
    manifest.meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    manifest.save(out)
    return manifest


def _contexts(batches, skip: int, skip_fn) -> Iterator:
    if skip and skip_fn is not None:
        yield from skip_fn(skip)
        return
    for tokens, doc_ids, positions in batches:
        if skip >= tokens.shape[0]:
            skip -= tokens.shape[0]
            continue
        yield tokens[skip:], doc_ids[skip:], positions[skip:]
        skip = 0


def _write_shard(out: Path, manifest: Manifest, buf: _ShardBuffer, ctx_end: int, T: int, stats) -> None:
    arrays = buf.arrays()
    n_ctx = buf.filled // T
    index = len(manifest.shards)
    name = f"shard-{index:05d}.safetensors"
    with atomic_path(out / name) as tmp:
        save_file(arrays, str(tmp))
    norms = {h: float(x[: buf.filled].mean()) for h, x in buf.norms.items()} if buf.filled else {}
    manifest.shards.append(Shard(name, ctx_end - n_ctx, n_ctx, buf.filled, _checksum(arrays), norms))
    if stats is not None:
        stats.save(out, upto_context=ctx_end)
    manifest.save(out)  # after the shard (and the stats covering it) are in place


def _du(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*") if f.is_file())


def _progress(enabled: bool, total: int, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="tok", unit_scale=True, disable=not enabled,
                desc="caching", dynamic_ncols=True, mininterval=1.0, smoothing=0.1)
