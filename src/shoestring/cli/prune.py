"""``shoestring prune run``: score, cut and (optionally) recover a model for one domain, and measure what it cost
and saved; the pruned checkpoint and its plan go into the run directory."""

from __future__ import annotations

import typer

from ._common import DeviceOpt, JsonOpt, console, emit_json, load_model, print_table
from ._prune_opts import (BatchOpt, CalibOpt, ContrastOpt, EvalOpt, LengthOpt, OtherOpt, RecoverLrOpt,
                          TaskOpt)
from ._report import OutOpt, say_where

prune_app = typer.Typer(help="Structured pruning: importance, plans, surgery, recovery, measured speed.",
                        no_args_is_help=True)


@prune_app.command("run")
def run(
    model: str = typer.Option("smollm2-135m", "--model"),
    criterion: str = typer.Option("activation", "--criterion", help="magnitude, wanda, taylor, activation, ablation or entropy (heads only)"),
    task: str = TaskOpt,
    other: str = OtherOpt,
    contrast: float = ContrastOpt,
    heads: float = typer.Option(1 / 3, "--heads", help="share of key-value groups to remove per layer, in [0, 1)"),
    channels: float = typer.Option(1 / 3, "--channels", help="share of MLP channels to remove per layer, in [0, 1)"),
    global_: bool = typer.Option(False, "--global", help="choose model-wide (per-layer widths: loads through shoestring.load)"),
    calib: int = CalibOpt,
    evals: int = EvalOpt,
    length: int = LengthOpt,
    batch_size: int = BatchOpt,
    recover_tokens: int = typer.Option(0, "--recover-tokens", help="fine-tune on the task corpus for this many tokens"),
    recover_lr: float = RecoverLrOpt,
    lora_rank: int = typer.Option(0, "--lora-rank", help="recover with LoRA adapters of this rank (peft), merged after"),
    lora_lr: float = typer.Option(2e-4, "--lora-lr"),
    lm_eval: str = typer.Option("", "--lm-eval", help="lm-evaluation-harness tasks, e.g. arc_easy,hellaswag (needs their data)"),
    lm_eval_include: str = typer.Option(None, "--lm-eval-include", help="a folder of local lm-eval task YAMLs"),
    lm_eval_limit: int = typer.Option(None, "--lm-eval-limit", help="at most this many examples per task"),
    speed: bool = typer.Option(True, "--speed/--no-speed", help="measure prefill and decode speed"),
    device: str = DeviceOpt,
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Prune for one domain; perplexity per domain, parameters, prefill latency and decode tokens/s before and after."""
    from ..prune.run import PruneConfig, prune_experiment
    from ..runs import RunDir

    cfg = PruneConfig(criterion=criterion, task=task, other=other or None, contrast=contrast, head_ratio=heads,
                      channel_ratio=channels, uniform=not global_, calib_contexts=calib, eval_contexts=evals,
                      length=length, batch_size=batch_size, recover_tokens=recover_tokens, recover_lr=recover_lr,
                      lora_rank=lora_rank, lora_lr=lora_lr, lm_eval=[t for t in lm_eval.split(",") if t.strip()],
                      lm_eval_include=lm_eval_include, lm_eval_limit=lm_eval_limit, speed=speed).check()
    lm = load_model(model, "float32", device, quiet=json_out)
    config = {"model": model, **{k: v for k, v in vars(cfg).items() if k != "extra"}}
    run_dir = RunDir.create(out, "prune-run", config)
    run_dir.start()

    def progress(step, steps, loss):
        if not json_out and (step % 10 == 0 or step == steps):
            console.print(f"  recovery step {step}/{steps}: loss {loss:.3f}", highlight=False)

    result, pruned, plan = prune_experiment(lm, cfg, checkpoint=run_dir.path / "recovery", progress=progress)
    from ..prune.checkpoint import save_pruned

    plan.save(run_dir.path / "plan.json")
    result["checkpoint"] = save_pruned(pruned, lm.tokenizer, plan, run_dir.path / "model")
    run_dir.save_artifact("result", result)
    from ..report.prune import prune_page

    report = prune_page(result, plan, meta={"model": model}).save(run_dir.path / "report.html")
    head = {k: result.get(k) for k in ("params_removed", "flop_reduction", "perplexity_ratio", "prefill_speedup",
                                       "decode_speedup", "uniform")}
    run_dir.finish(head)
    if json_out:
        emit_json({"run": str(run_dir.path), **head})
        return
    _print_result(result, criterion)
    console.print(f"pruned model: {run_dir.path / 'model'} (loads with {result['checkpoint']['loads_with']})",
                  highlight=False, markup=False)
    say_where(report)


def _print_result(result: dict, criterion: str) -> None:
    rec = result["recovered"]
    rows = []
    for d in result["before"]["perplexity"]:
        cells = [result["before"], result["pruned"]] + ([rec] if rec else [])
        rows.append((d, *(f"{c['perplexity'][d]:.2f}" for c in cells), f"{result['perplexity_ratio'][d]:.2f}x",
                     *(f"{c['accuracy'][d]:.1%}" for c in (cells[0], cells[-1]))))
    stages = ["original", "pruned"] + (["recovered"] if rec else [])
    print_table(f"perplexity ({criterion}, {result['params_removed']:.1%} of parameters removed, "
                f"{result['flop_reduction']:.2f}x fewer FLOPs per token)",
                ["domain", *stages, "final / original", "accuracy before", "accuracy after"], rows)
    if result.get("lm_eval"):
        b, a = result["lm_eval"]["before"], result["lm_eval"]["after"]
        print_table("lm-evaluation-harness", ["task", "metric", "original", "final"],
                    [(t, m, f"{v:.4g}", f"{a[t].get(m, float('nan')):.4g}") for t, ms in b.items()
                     for m, v in ms.items() if isinstance(v, (int, float)) and not m.endswith("stderr")])
    if "prefill_speedup" in result:
        b, a = result["before"]["speed"], result["pruned"]["speed"]
        fl = result["flop_reduction"]
        print_table("speed (interleaved medians)", ["", "original", "pruned", "speed-up", "speed-up / FLOP reduction"],
                    [("prefill s", f"{b['prefill_s']:.3f}", f"{a['prefill_s']:.3f}", f"{result['prefill_speedup']:.2f}x",
                      f"{result['prefill_speedup'] / fl:.2f}"),
                     ("decode tokens/s", f"{b['decode_tokens_per_s']:.1f}", f"{a['decode_tokens_per_s']:.1f}",
                      f"{result['decode_speedup']:.2f}x", f"{result['decode_speedup'] / fl:.2f}")])


@prune_app.command("apply")
def apply(
    plan_path: str = typer.Argument(..., metavar="PLAN", help="a plan.json (from `prune run`, possibly edited)"),
    save: str = typer.Argument(..., metavar="FOLDER", help="where the pruned model is saved"),
    model: str = typer.Option("smollm2-135m", "--model"),
    device: str = DeviceOpt,
) -> None:
    """Apply a pruning plan to a model and save the result (a plain transformers checkpoint when the plan is uniform;
    otherwise per-layer widths that ``shoestring.load`` reads)."""
    from ..prune import PruningPlan, apply_plan, n_params

    plan = PruningPlan.load(plan_path)
    lm = load_model(model, "float32", device)
    before = n_params(lm.model)
    plan.check(lm.model.config)
    pruned = apply_plan(lm.model, plan)
    from ..prune.checkpoint import save_pruned

    how = save_pruned(pruned, lm.tokenizer, plan, save)
    console.print(f"{before:,} -> {n_params(pruned):,} parameters; saved to {save} (loads with {how['loads_with']})",
                  highlight=False, markup=False)


from .prune_curve import curve  # noqa: E402  (the commands live in their own files)
from .prune_skip import skip  # noqa: E402

prune_app.command("curve")(curve)
prune_app.command("skip")(skip)
