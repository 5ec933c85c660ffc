"""``shoestring demo``: the default model, its anatomy, a generation under capture and what was captured;
then the closed loop (a sentiment direction from the shipped pairs, steered vs unsteered vs a random
control, VADER and fluency judges, 95% intervals, side effects, an HTML report); optionally the
observation tour (logit lens, induction heads, a probe curve, ...) as a second report."""

from __future__ import annotations

import time

import torch
import typer

from ._common import DeviceOpt, DtypeOpt, JsonOpt, console, emit_json, human_bytes, load_model, print_table
from ._report import OutOpt, say_where


def demo(
    model: str = typer.Option("smollm2-135m", "--model", help="alias, folder, .gguf file or hub id"),
    prompt: str = typer.Option("The capital of France is", "--prompt"),
    max_new_tokens: int = typer.Option(12, "--max-new-tokens", "-n", min=1),
    loop: bool = typer.Option(True, "--loop/--no-loop", help="run the closed steering loop and write its report"),
    spec: str = typer.Option("", "--spec", help="the loop's experiment spec (TOML; default: the shipped demo.toml)"),
    tour: bool = typer.Option(False, "--tour/--no-tour", help="also run the observation tour and write its report"),
    dtype: str = DtypeOpt,
    device: str = DeviceOpt,
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Load the default model, show its anatomy, generate while capturing, and read the captures:
    a logit lens over the layers and the attention of the last prompt token. Then the closed loop
    (`shoestring steer run` on the shipped demo spec): the steered sentiment shift with its 95% interval
    against a random control, the fluency cost, and the report. `--tour` adds the observation tour."""
    from ..hooks.invariants import check_invariants

    t0 = time.perf_counter()
    lm = load_model(model, dtype, device, quiet=json_out)
    load_s = time.perf_counter() - t0
    a = lm.anatomy
    check = check_invariants(lm, lm.tokenize(prompt)["input_ids"])
    mid = a.n_layers // 2
    names = ["blocks.*.hook_resid_post", f"blocks.{mid}.attn.hook_pattern"]
    t0 = time.perf_counter()
    with lm.capture(names, device="cpu") as acts:
        completion = lm.generate(prompt, max_new_tokens=max_new_tokens)[0]
    gen_s = time.perf_counter() - t0
    prompt_ids = lm.tokenize(prompt)["input_ids"][0]
    n_prompt = len(prompt_ids)
    tokens = [lm.tokenizer.decode([int(t)]) for t in prompt_ids]
    # Logit lens: what each layer's residual at the last prompt position would predict.
    lens = []
    with torch.no_grad():
        for L in sorted({0, *range(0, a.n_layers, max(1, a.n_layers // 6)), a.n_layers - 1}):
            resid = acts[f"blocks.{L}.hook_resid_post"][:, n_prompt - 1].to(lm.device, lm.dtype)
            probs = lm.unembed(resid).float().softmax(-1)[0]
            p, i = probs.max(-1)
            lens.append({"layer": L, "top_token": lm.tokenizer.decode([int(i)]), "prob": round(float(p), 4)})
    prefill_pattern = acts.calls(f"blocks.{mid}.attn.hook_pattern")[0]  # [1, head, q, k]
    attn = prefill_pattern[0, :, n_prompt - 1].mean(0)  # last prompt token, averaged over heads
    top = attn.topk(min(3, n_prompt))
    attention = [{"token": tokens[int(j)], "position": int(j), "weight": round(float(w), 4)} for w, j in zip(top.values, top.indices)]
    from .observe_tour import print_tour, run_tour

    summary = report = induction = None
    if tour and json_out:
        summary, report = run_tour(lm, model, dtype=dtype, device=device, out=out, quiet=True)
        induction = summary["induction_heads"][:3]
    elif not tour:  # with the tour, its census names the induction heads
        from ..observe import head_census

        induction = head_census(lm, seq_len=32, batch=2).top("induction", 3)
    steering = None
    if loop and json_out:
        steering = _steer_loop(lm, model, spec, out, quiet=True)
    resid = acts["blocks.0.hook_resid_post"]
    result = {
        "model": model,
        "load_seconds": round(load_s, 2),
        "anatomy": a.summary(),
        "parameters": lm.info()["parameters"],
        "hook_points": len(lm.hook_points),
        "hook_check": {"ok": check["ok"], "max_relative_error": max(check["errors"].values()), "failed": check["failed"]},
        "prompt": prompt,
        "completion": completion,
        "generate_seconds": round(gen_s, 2),
        "captured": {
            "points": len(acts),
            "forward_calls": len(acts.calls("blocks.0.hook_resid_post")),
            "resid_post_shape": list(resid.shape),
            "bytes": acts.nbytes(),
        },
        "logit_lens": lens,
        "attention_layer": mid,
        "attention_of_last_prompt_token": attention,
        "induction_heads": induction,
        **({"tour": summary, "report": str(report)} if tour else {}),
        **({"steering": steering} if loop else {}),
    }
    if json_out:
        return emit_json(result)
    console.rule(f"[bold]shoestring demo[/bold]: {model}")
    console.print(f"loaded in {load_s:.1f} s: {result['parameters']:,} parameters, {a.layout.name} layout, "
                  f"{a.n_layers} layers, d_model {a.d_model}, {a.n_heads} heads / {a.n_kv_heads} kv heads, "
                  f"{'parallel' if a.parallel else 'sequential'} blocks, {len(lm.hook_points)} hook points")
    status = "[green]hold[/green]" if check["ok"] else f"[red]FAIL: {check['failed']}[/red]"
    console.print(f"hook invariants {status} (max relative error {result['hook_check']['max_relative_error']:.1e})")
    console.print(f"\n[bold]{prompt}[/bold][cyan]{completion}[/cyan]   ({gen_s:.1f} s, {max_new_tokens} tokens)")
    console.print(f"captured {len(acts)} points over {result['captured']['forward_calls']} forward calls "
                  f"(prefill + decode steps): resid_post {tuple(resid.shape)}, {human_bytes(acts.nbytes())}")
    print_table(f"logit lens at the last prompt token ({tokens[-1]!r})", ("layer", "top token", "prob"),
           [(str(r["layer"]), repr(r["top_token"]), f"{r['prob']:.3f}") for r in lens])
    print_table(f"layer {mid}: where the last prompt token attends (mean over heads)", ("token", "position", "weight"),
           [(repr(r["token"]), str(r["position"]), f"{r['weight']:.3f}") for r in attention])
    if not tour:
        print_table("strongest induction heads (random tokens, repeated)", ("layer", "head", "score"),
                    [(str(r["layer"]), str(r["head"]), f"{r['score']:.3f}") for r in induction])
    else:
        summary, report = run_tour(lm, model, dtype=dtype, device=device, out=out)  # the census is part of it
        console.rule(f"[bold]observation tour[/bold] ({summary['total_seconds']:.0f} s)")
        print_tour(summary)
        say_where(report)
    if loop:
        _steer_loop(lm, model, spec, out, quiet=False)


def _steer_loop(lm, model: str, spec_path: str, out: str, quiet: bool) -> dict:
    """The closed loop on the loaded model: run the spec, print (or return) its headline and report path."""
    from ..steer.experiment import Spec, shipped_spec
    from .steer_loop import print_effects, print_headline, run_loop

    path = spec_path or shipped_spec("demo")
    spec = Spec.from_toml(path)
    spec.model = model
    t0 = time.perf_counter()
    if not quiet:
        console.rule(f"[bold]closed loop[/bold]: steering toward positive sentiment ({path})")
    run_dir, report, head, result = run_loop(spec, lm, out, "Demo: steering toward positive sentiment", quiet=quiet,
                                             extra_config={"spec_path": str(path)})
    seconds = time.perf_counter() - t0
    if not quiet:
        print_effects(result)
        print_headline(head)
        console.print(f"closed loop: {seconds:.0f} s, run directory {run_dir.path}", highlight=False)
        say_where(report)
    return {"run": str(run_dir.path), "report": str(report), "seconds": round(seconds, 1), **head}

