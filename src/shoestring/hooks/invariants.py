"""The checks that make hook names trustworthy, run by the tests and on a model's first load.

1. capturing changes no logits;
2. ``resid_post[L]`` equals HF ``hidden_states[L + 1]`` (all but the last layer, where HF applies the
   final norm);
3. ``resid_post = resid_pre + attn_out + mlp_out`` (for parallel blocks too: both branches read
   ``resid_pre``), and ``resid_mid = resid_pre + attn_out`` for sequential blocks;
4. the per-head contributions ``hook_result`` plus the output bias sum to the output projection
   (which is ``attn_out`` except where a norm follows attention: Gemma 2/3, OLMo 2);
5. ``hook_pattern @ v`` reproduces ``hook_z``, head by head;
6. ``ln_final`` + unembedding of the last ``resid_post`` gives the model's logits.
"""

from __future__ import annotations

import torch


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).abs().max() / (b.abs().max() + 1e-6))


@torch.no_grad()
def check_invariants(lm, input_ids: torch.Tensor | None = None, tol: float | None = None) -> dict:
    """Run every invariant on ``input_ids`` (default: 4 fixed tokens) and report relative errors.

    Returns
    -------
    dict
        ``{"errors": {check: max relative error}, "failed": [checks over tol], "ok": bool}``.
    """
    anat = lm.anatomy
    if tol is None:
        tol = 1e-4 if lm.dtype == torch.float32 else 3e-2
    if input_ids is None:
        input_ids = torch.tensor([[1, 5, 9, 2]]) % anat.d_vocab
    input_ids = input_ids.to(lm.device)
    errors: dict[str, float] = {}
    o_out: dict[int, torch.Tensor] = {}
    handles = [
        anat.block(L).o_proj.register_forward_hook(lambda m, a, o, L=L: o_out.__setitem__(L, o))
        for L in range(anat.n_layers)
    ]
    try:
        plain = lm.model(input_ids=input_ids, output_hidden_states=True)
        with lm.capture(list(lm.hook_points)) as acts:
            logits = lm.model(input_ids=input_ids).logits
    finally:
        for h in handles:
            h.remove()
    errors["capture_changes_nothing"] = _rel(logits, plain.logits)
    hs = plain.hidden_states
    for L in range(anat.n_layers):
        b = f"blocks.{L}"
        pre, post = acts[f"{b}.hook_resid_pre"], acts[f"{b}.hook_resid_post"]
        attn, mlp = acts[f"{b}.hook_attn_out"], acts[f"{b}.hook_mlp_out"]
        if L < anat.n_layers - 1:
            errors[f"{b}.resid_post=hidden_states"] = _rel(post, hs[L + 1])
        errors[f"{b}.resid_post=pre+attn+mlp"] = _rel(pre + attn + mlp, post)
        if f"{b}.hook_resid_mid" in acts:
            errors[f"{b}.resid_mid=pre+attn"] = _rel(pre + attn, acts[f"{b}.hook_resid_mid"])
        bias = getattr(anat.block(L).o_proj, "bias", None)
        heads = acts[f"{b}.attn.hook_result"].sum(dim=2) + (bias if bias is not None else 0)
        errors[f"{b}.sum_heads=out_proj"] = _rel(heads, o_out[L])
        pattern, v = acts[f"{b}.attn.hook_pattern"], acts[f"{b}.attn.hook_v"]
        v = v.repeat_interleave(anat.n_heads // anat.n_kv_heads, dim=2)  # GQA
        z = torch.einsum("bhqk,bkhd->bqhd", pattern.float(), v.float())
        errors[f"{b}.pattern@v=z"] = _rel(z, acts[f"{b}.attn.hook_z"])
    relogits = lm.unembed(acts[f"blocks.{anat.n_layers - 1}.hook_resid_post"])
    errors["unembed(resid_post[-1])=logits"] = _rel(relogits, plain.logits)
    failed = [k for k, v in errors.items() if not v <= tol]
    return {"errors": errors, "failed": failed, "ok": not failed, "tol": tol}
