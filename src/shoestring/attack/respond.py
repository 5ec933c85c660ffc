"""How the target model answers during an attack, optionally under compression: the same suite on the plain model,
under a KV-cache policy, or with layers skipped (compression x safety).

``compression`` is a label:

- ``"none"``: batched greedy generation;
- ``"kv:<policy>:<keep>"``: each prompt decoded in a :class:`~shoestring.kv.session.KVSession` whose cache keeps
  ``keep`` (a fraction, e.g. 0.5) of the prompt's tokens under the policy (``streaming``, ``h2o``, ``snapkv``...);
- ``"skip:<l1>+<l2>..."``: those decoder layers replaced by the identity (:class:`~shoestring.prune.skip.SkipLayers`)
  for every forward pass of the attack, GCG's included;
- a pruned model is a model: pass its folder (``shoestring prune run`` writes one) as the model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from ..errors import ShoestringError, nearest


def parse_compression(label: str) -> tuple[str, dict]:
    """``"none"`` / ``"kv:snapkv:0.5"`` / ``"skip:17+25"`` -> ``(kind, settings)``; a bad label is one clear error."""
    label = (label or "none").strip()
    if label == "none":
        return "none", {}
    kind, _, rest = label.partition(":")
    if kind == "kv":
        from ..kv.policies import POLICIES

        name, _, keep = rest.partition(":")
        if name not in POLICIES:
            hint = nearest(name, POLICIES)
            raise ShoestringError(f"unknown KV policy '{name}' in --compression {label}",
                                  f"use one of {', '.join(POLICIES)}" + (f" (did you mean {hint[0]}?)" if hint else ""))
        try:
            keep_f = float(keep or 0.5)
        except ValueError:
            raise ShoestringError(f"'{keep}' is not a fraction in --compression {label}", "write e.g. kv:snapkv:0.5") from None
        if not 0 < keep_f <= 1:
            raise ShoestringError(f"the KV keep fraction {keep_f} is outside (0, 1]", "write e.g. kv:snapkv:0.5")
        return "kv", {"policy": name, "keep": keep_f}
    if kind == "skip":
        try:
            layers = [int(x) for x in rest.split("+") if x.strip()]
        except ValueError:
            raise ShoestringError(f"'{rest}' is not a list of layers in --compression {label}", "write e.g. skip:17+25") from None
        if not layers:
            raise ShoestringError(f"--compression {label} names no layers", "write e.g. skip:17+25")
        return "skip", {"layers": layers}
    raise ShoestringError(f"unknown compression '{label}'",
                          "use none, kv:<policy>:<keep fraction> (e.g. kv:snapkv:0.5) or skip:<layers> (e.g. skip:17+25); "
                          "for a pruned model pass its folder as --model")


def chat_ids(lm, texts: list[str], chat: bool = True) -> list[torch.Tensor]:
    """Each user message through the chat template (if the tokenizer has one) as 1-D token ids."""
    tok = lm.tokenizer
    out = []
    for t in texts:
        if chat and getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template([{"role": "user", "content": t}], tokenize=True, add_generation_prompt=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
        else:
            ids = tok(t)["input_ids"]
        out.append(torch.tensor(list(ids), dtype=torch.long))
    return out


@dataclass
class Responder:
    """Greedy responses of ``lm`` to token-id prompts, under ``compression``; ``batch`` prompts per generate call."""

    lm: object
    max_new_tokens: int = 64
    compression: str = "none"
    batch: int = 8
    _kind: str = field(default="none", init=False, repr=False)
    _settings: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ShoestringError(f"max_new_tokens must be at least 1 (got {self.max_new_tokens})", "pass --max-new-tokens 64")
        self._kind, self._settings = parse_compression(self.compression)

    def active(self):
        """A context for the attack's whole run: layer skipping is on for every forward pass (else nothing)."""
        if self._kind == "skip":
            from ..prune.skip import SkipLayers

            return SkipLayers(self.lm.model, self._settings["layers"])
        return contextlib.nullcontext()

    def texts(self, prompts: list[str], chat: bool = True) -> list[str]:
        return self.ids(chat_ids(self.lm, prompts, chat))

    @torch.no_grad()
    def ids(self, prompts: list[torch.Tensor]) -> list[str]:
        # under layer skipping every response is generated with the layers skipped (transforms and the benign set
        # included, not only inside a search's ``active()`` block; entering it again there is harmless)
        with self.active():
            if self._kind == "kv":
                return [self._kv_one(p) for p in prompts]
            out: list[str] = []
            for i in range(0, len(prompts), self.batch):
                out.extend(self._batch(prompts[i:i + self.batch]))
            return out

    def _batch(self, prompts: list[torch.Tensor]) -> list[str]:
        tok, dev = self.lm.tokenizer, self.lm.device
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        n = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), n), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), n), dtype=torch.long)
        for r, p in enumerate(prompts):  # left padding
            ids[r, n - len(p):] = p
            mask[r, n - len(p):] = 1
        gen = self.lm.model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), do_sample=False,
                                     max_new_tokens=self.max_new_tokens, pad_token_id=pad)
        return tok.batch_decode(gen[:, n:], skip_special_tokens=True)

    def _kv_one(self, prompt: torch.Tensor) -> str:
        from ..kv.policies import POLICIES
        from ..kv.session import KVSession

        budget = max(1, int(round(self._settings["keep"] * len(prompt))))
        session = KVSession(self.lm, POLICIES[self._settings["policy"]](), budget=budget)
        new = session.generate(prompt[None].to(self.lm.device), self.max_new_tokens,
                               eos_token_id=self.lm.tokenizer.eos_token_id)
        return self.lm.tokenizer.decode(new[0], skip_special_tokens=True)
