"""``shoestring prune run``: score, cut and (optionally) recover a model for one domain, and measure what it cost
and saved; the pruned checkpoint and its plan go into the run directory."""

from __future__ import annotations

import typer

from ._common import DeviceOpt, JsonOpt, console, emit_json, load_model, print_table
from ._report import OutOpt, say_where

prune_app = typer.Typer(help="Structured pruning: importance, plans, surgery, recovery, measured speed.",
                        no_args_is_help=True)


@prune_app.command("run")
def run(
    model: str = typer.Option("smollm2-135m", "--model"),
    criterion: str = typer.Option("wanda", "--criterion", help="magnitude, wanda, taylor or activation"),
    task: str = typer.Option("stdlib-code", "--task", help="the corpus of the domain to keep"),
    other: str = typer.Option("austen", "--other", help="the domain it may forget ('' for none)"),
    contrast: float = typer.Option(0.0, "--contrast", help="subtract this x the other domain's importance"),
    heads: float = typer.Option(1 / 3, "--heads", help="share of key-value groups to remove per layer, in [0, 1)"),
    channels: float = typer.Option(1 / 3, "--channels", help="share of MLP channels to remove per layer, in [0, 1)"),
    global_: bool = typer.Option(False, "--global", help="choose channels model-wide (not uniform: saved with a note)"),
    calib: int = typer.Option(32, "--calib", help="calibration contexts per domain"),
    evals: int = typer.Option(16, "--eval", help="held-out contexts per domain"),
    length: int = typer.Option(256, "--length"),
    batch_size: int = typer.Option(4, "--batch-size"),
    recover_tokens: int = typer.Option(0, "--recover-tokens", help="fine-tune on the task corpus for this many tokens"),
    recover_lr: float = typer.Option(5e-5, "--recover-lr"),
    device: str = DeviceOpt,
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Prune for one domain; perplexity per domain, parameters, prefill latency and decode tokens/s before and after."""
    from ..prune.run import PruneConfig, prune_experiment
    from ..runs import RunDir

    cfg = PruneConfig(criterion=criterion, task=task, other=other or None, contrast=contrast, head_ratio=heads,
                      channel_ratio=channels, uniform=not global_, calib_contexts=calib, eval_contexts=evals,
                      length=length, batch_size=batch_size, recover_tokens=recover_tokens, recover_lr=recover_lr).check()
    lm = load_model(model, "float32", device, quiet=json_out)
    config = {"model": model, **{k: v for k, v in vars(cfg).items() if k != "extra"}}
    run_dir = RunDir.create(out, "prune-run", config)
    run_dir.start()

    def progress(step, steps, loss):
        if not json_out and (step % 10 == 0 or step == steps):
            console.print(f"  recovery step {step}/{steps}: loss {loss:.3f}", highlight=False)

    result, pruned, plan = prune_experiment(lm, cfg, checkpoint=run_dir.path / "recovery", progress=progress)
    plan.save(run_dir.path / "plan.json")
    if plan.is_uniform():  # a plain config expresses it: AutoModelForCausalLM.from_pretrained loads it
        pruned.save_pretrained(run_dir.path / "model")
        lm.tokenizer.save_pretrained(run_dir.path / "model")
    else:  # per-layer widths: the weights, with the plan that re-creates the shapes
        from safetensors.torch import save_model

        (run_dir.path / "model").mkdir(exist_ok=True)
        save_model(pruned, str(run_dir.path / "model" / "pruned.safetensors"))
    run_dir.save_artifact("result", result)
    head = {k: result[k] for k in ("params_removed", "perplexity_ratio", "prefill_speedup", "decode_speedup", "uniform")}
    run_dir.finish(head)
    if json_out:
        emit_json({"run": str(run_dir.path), **head})
        return
    rows = []
    for d in result["before"]["perplexity"]:
        rec = result["recovered"]["perplexity"][d] if result["recovered"] else None
        rows.append((d, f"{result['before']['perplexity'][d]:.2f}", f"{result['pruned']['perplexity'][d]:.2f}",
                     "" if rec is None else f"{rec:.2f}", f"{result['perplexity_ratio'][d]:.2f}x"))
    print_table(f"perplexity ({criterion}, {result['params_removed']:.1%} of parameters removed)",
                ["domain", "original", "pruned", "recovered", "final / original"], rows)
    b, a = result["before"]["speed"], result["pruned"]["speed"]
    print_table("speed", ["", "original", "pruned", "ratio"],
                [("prefill s", f"{b['prefill_s']:.3f}", f"{a['prefill_s']:.3f}", f"{result['prefill_speedup']:.2f}x"),
                 ("decode tokens/s", f"{b['decode_tokens_per_s']:.1f}", f"{a['decode_tokens_per_s']:.1f}",
                  f"{result['decode_speedup']:.2f}x")])
    note = "" if plan.is_uniform() else " (per-layer widths: weights + plan.json; plain transformers cannot load it)"
    console.print(f"pruned model: {run_dir.path / 'model'}{note}", highlight=False, markup=False)
    say_where(run_dir.path)


@prune_app.command("apply")
def apply(
    plan_path: str = typer.Argument(..., metavar="PLAN", help="a plan.json (from `prune run`, possibly edited)"),
    save: str = typer.Argument(..., metavar="FOLDER", help="where the pruned model is saved"),
    model: str = typer.Option("smollm2-135m", "--model"),
    device: str = DeviceOpt,
) -> None:
    """Apply a pruning plan to a model and save the result (``save_pretrained`` when the plan is uniform)."""
    from ..prune import PruningPlan, apply_plan, n_params

    plan = PruningPlan.load(plan_path)
    lm = load_model(model, "float32", device)
    before = n_params(lm.model)
    plan.check(lm.model.config)
    if not plan.is_uniform():
        from ..errors import ShoestringError

        raise ShoestringError("the plan keeps different widths per layer, which a plain config cannot express",
                              "make the plan uniform (prune run without --global) to save a standard checkpoint")
    pruned = apply_plan(lm.model, plan)
    pruned.save_pretrained(save)
    lm.tokenizer.save_pretrained(save)
    console.print(f"{before:,} -> {n_params(pruned):,} parameters; saved to {save}", highlight=False, markup=False)
