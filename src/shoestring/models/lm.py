"""The :class:`LM` wrapper: an unmodified HF model, its tokenizer, its anatomy and its hook points."""

from __future__ import annotations

import fnmatch
import re
import warnings

import torch

from ..errors import ShoestringError, nearest
from ..hooks import Capture, Edit, PointSpec, build_points
from ..hooks.registry import HookRegistry
from .anatomy import detect

_CHECKED: set[str] = set()


class _StopForward(Exception):
    """Raised by a hook to end a forward pass early (caught by :meth:`LM.run_with_cache`)."""


def _raise_stop(raw):
    raise _StopForward  # model classes whose hooks passed the 4-token self-check this process


class LM:
    """A causal LM, unmodified, with TransformerLens-named hook points.

    Attributes
    ----------
    model, tokenizer
        The Hugging Face objects, as loaded (no module is replaced, no weight is changed).
    anatomy
        Where blocks, attention, MLP, norms and unembedding live (:class:`Anatomy`).
    hook_points
        ``{name: PointSpec}`` in forward order.
    """

    def __init__(self, model, tokenizer, name: str = "model", check: bool = True):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.anatomy = detect(model)
        self.hook_points: dict[str, PointSpec] = build_points(self.anatomy)
        self._registry = HookRegistry(model)
        self._resolved: dict[tuple, tuple] = {}  # names -> specs (a glob is matched once)
        if tokenizer is not None and tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        key = f"{type(model).__name__}/{model.config._attn_implementation}"
        if check and key not in _CHECKED:
            from ..hooks.invariants import check_invariants

            report = check_invariants(self)
            if report["ok"]:
                _CHECKED.add(key)
            else:
                warnings.warn(
                    f"shoestring: hook invariants fail for {type(model).__name__}: {report['failed']}. "
                    "Hook values may not mean what their names say; please report this model.",
                    stacklevel=2,
                )

    # -- basic facts --------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def n_layers(self) -> int:
        return self.anatomy.n_layers

    def __repr__(self) -> str:
        a = self.anatomy
        return f"LM({self.name!r}, {a.layout.name} layout, {a.n_layers} layers, d_model {a.d_model})"

    def info(self) -> dict:
        """Parameters, layers, heads and weight memory, JSON-ready."""
        n_params = sum(p.numel() for p in self.model.parameters())
        n_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters())
        return {
            "name": self.name,
            "class": type(self.model).__name__,
            "parameters": n_params,
            "weight_bytes": n_bytes,
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": str(self.device),
            "attn_implementation": self.model.config._attn_implementation,
            **self.anatomy.summary(),
            "hook_points": len(self.hook_points),
        }

    def point_shapes(self, batch: int = 1, pos: int = 4) -> dict[str, list[int]]:
        """The shape of every hook point for a ``batch x pos`` input (runs one small forward)."""
        ids = torch.randint(0, min(self.anatomy.d_vocab, 1000), (batch, pos), device=self.device)
        with self.capture(list(self.hook_points)) as acts, torch.no_grad():
            self.model(input_ids=ids)
        return {name: list(acts.calls(name)[0].shape) for name in self.hook_points if acts.calls(name)}

    # -- hook points ----------------------------------------------------------------------------
    def resolve(self, names) -> list[PointSpec]:
        """Names or glob patterns -> hook point specs; a clear error for unknown names or layers."""
        if isinstance(names, str):
            names = [names]
        key = tuple(names) if all(isinstance(n, str) for n in names) else None
        if key is not None and key in self._resolved:
            return list(self._resolved[key])
        out: dict[str, PointSpec] = {}
        for name in names:
            if name in self.hook_points:
                out[name] = self.hook_points[name]
                continue
            m = re.match(r"blocks\.(-?\d+)\.(.+)", name)
            if m and not any(c in name for c in "*?["):
                layer = int(m.group(1))
                if not 0 <= layer < self.n_layers:
                    raise ShoestringError(
                        f"layer {layer} is out of range in '{name}'",
                        f"{self.name} has {self.n_layers} layers: use 0 to {self.n_layers - 1}",
                    )
            matched = fnmatch.filter(self.hook_points, name) if any(c in name for c in "*?[") else []
            if not matched:
                hint = nearest(name, self.hook_points)
                raise ShoestringError(
                    f"unknown hook point '{name}'",
                    (f"did you mean {', '.join(hint)}?" if hint else "see `shoestring info MODEL` for the list"),
                )
            out.update((n, self.hook_points[n]) for n in matched)
        if key is not None:
            self._resolved[key] = tuple(out.values())
        return list(out.values())

    def capture(self, names, **options) -> Capture:
        """Keep activations: ``with lm.capture(names) as acts:`` (see :class:`Capture`)."""
        return Capture(self, names, **options)

    def edit(self, edits) -> Edit:
        """Change activations: ``with lm.edit({name: fn_or_vector}):`` (see :class:`Edit`)."""
        return Edit(self, edits)

    # -- running --------------------------------------------------------------------------------
    def tokenize(self, texts, padding_side: str = "left", chat: bool = False, **kwargs):
        """Texts -> a batch on the model's device (left padding by default, right for scoring)."""
        if isinstance(texts, str):
            texts = [texts]
        if chat:
            texts = [
                self.tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True)
                for t in texts
            ]
        old = self.tokenizer.padding_side
        self.tokenizer.padding_side = padding_side
        try:
            enc = self.tokenizer(texts, return_tensors="pt", padding=True, **kwargs)
        finally:
            self.tokenizer.padding_side = old
        return enc.to(self.device)

    def forward(self, inputs, **kwargs) -> torch.Tensor:
        """Logits ``[batch, pos, d_vocab]`` for texts, a token tensor or a tokenizer batch."""
        if isinstance(inputs, (str, list)):
            inputs = self.tokenize(inputs)
        if isinstance(inputs, torch.Tensor):
            inputs = {"input_ids": inputs.to(self.device)}
        with torch.no_grad():
            return self.model(**inputs, **kwargs).logits

    __call__ = forward

    def run_with_cache(self, inputs, names, *, stop_early: bool = True, **capture_options):
        """Run a forward pass and return ``(logits_or_None, acts)``.

        With ``stop_early`` the forward stops right after the last block that holds a requested point
        (then no logits are returned): caching layer 5 of 30 costs a fifth of a forward pass.
        ``capture_options`` are those of :meth:`capture` (``device``, ``dtype``, ``pos``, ``detach``).
        """
        if isinstance(inputs, (str, list)):
            inputs = self.tokenize(inputs)
        if isinstance(inputs, torch.Tensor):
            inputs = {"input_ids": inputs.to(self.device)}
        capture = self.capture(names, **capture_options)
        stop_spec = self._stop_point(capture.specs) if stop_early else None
        logits = None
        with capture, torch.set_grad_enabled(not capture_options.get("detach", True) and torch.is_grad_enabled()):
            remove = None
            if stop_spec is not None:
                remove = self._registry.add(stop_spec, _raise_stop, edit=False, post=True)
            try:
                logits = self.model(**inputs).logits
            except _StopForward:
                pass
            finally:
                if remove is not None:
                    remove()
        return logits, capture

    def _stop_point(self, specs) -> PointSpec | None:
        """The block output after which nothing requested remains (None: run to the end)."""
        if any(s.layer is None and s.name not in ("hook_embed", "hook_pos_embed") for s in specs):
            return None  # ln_final / logits need the whole model
        last = max((s.layer for s in specs if s.layer is not None), default=None)
        if last is None:  # embeddings only: stop after the first block starts
            return self.hook_points["blocks.0.hook_resid_pre"]
        if last == self.n_layers - 1:
            return None
        return self.hook_points[f"blocks.{last}.hook_resid_post"]

    def generate(self, prompts, max_new_tokens: int = 32, chat: bool = False, do_sample: bool = False, **kwargs) -> list[str]:
        """Generate continuations for one or several prompts (batched, left-padded); returns the new text."""
        enc = self.tokenize(prompts, chat=chat)
        kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=do_sample, **kwargs)
        return self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:
        """``ln_final`` then the unembedding (and the final soft-cap, Gemma 2): residual -> logits."""
        x = self.anatomy.final_norm(resid) if self.anatomy.final_norm is not None else resid
        logits = self.anatomy.unembed(x)
        cap = self.anatomy.logit_softcap
        return torch.tanh(logits / cap) * cap if cap else logits
