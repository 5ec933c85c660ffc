"""``shoestring prune curve``: quality against size, criteria x pruning ratios, each cell one pruning experiment
in its own run folder (a rerun resumes with the missing cells); the curve's report goes into its own run
folder. Registered in :mod:`shoestring.cli.prune` with ``prune_app.command("curve")(curve)``."""

from __future__ import annotations

import typer

from ..errors import ShoestringError
from ._common import DeviceOpt, JsonOpt, console, emit_json, load_model, print_table
from ._prune_opts import (BatchOpt, CalibOpt, ContrastOpt, EvalOpt, LengthOpt, OtherOpt, RecoverLrOpt,
                          TaskOpt)
from ._report import OutOpt, say_where


def parse_ratios(text: str) -> list:
    """``"0.2,0.3"`` -> ``[0.2, 0.3]`` (heads and channels alike); ``"0.25:0.1"`` -> ``[[0.25, 0.1]]`` (heads:channels)."""
    out = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        try:
            out.append([float(v) for v in item.split(":")] if ":" in item else float(item))
        except ValueError:
            raise ShoestringError(f"--ratios '{text}' is not a comma-separated list of shares",
                                  "e.g. --ratios 0.2,0.3,0.4 or --ratios 0.25:0.1,0.5:0.2 (heads:channels)") from None
        if isinstance(out[-1], list) and len(out[-1]) != 2:
            raise ShoestringError(f"--ratios item '{item}' is not heads:channels", "e.g. --ratios 0.25:0.1,0.5:0.2")
    return out


def headline(result: dict) -> dict:
    """Per cell (``criterion@heads/channels``): the share of parameters removed and final / original perplexity."""
    out = {}
    for c in result["cells"]:
        out[f"{c['criterion']}@{c['head_ratio']:g}/{c['channel_ratio']:g}"] = {
            "params_removed": c["params_removed"], "perplexity_ratio": c["perplexity_ratio"],
            "flop_reduction": c.get("flop_reduction"), "decode_speedup": c.get("decode_speedup"), "run": c["run"]}
    return out


def print_curve(result: dict) -> None:
    """One table: a row per cell, the task's and the other domain's perplexity (pruned -> final, and the ratio)."""
    cells = result["cells"]
    task, other = result["config"]["task"], result["config"]["other"] or None
    domains = [task] + ([other] if other else [])
    cols = ["criterion", "heads", "channels", "removed"]
    for d in domains:
        cols += [f"{d} ppl", f"{d} x"]
    rows = []
    for c in cells:
        row = [c["criterion"], f"{c['head_ratio']:g}", f"{c['channel_ratio']:g}", f"{c['params_removed']:.1%}"]
        for d in domains:
            pruned = c["pruned"]["perplexity"][d]
            rec = (c["recovered"] or {}).get("perplexity", {}).get(d)
            row += [f"{pruned:.2f}" + (f" -> {rec:.2f}" if rec is not None else ""), f"{c['perplexity_ratio'][d]:.2f}x"]
        rows.append(tuple(row))
    print_table(f"quality vs size (perplexity after pruning{' -> after recovery' if cells and cells[0]['recovered'] else ''};"
                f" x = final / original)", cols, rows)


def curve(
    model: str = typer.Option("smollm2-135m", "--model"),
    criteria: str = typer.Option("magnitude,wanda,taylor", "--criteria",
                                 help="comma-separated: magnitude, wanda, taylor, activation, ablation"),
    ratios: str = typer.Option("0.2,0.3,0.4,0.5", "--ratios",
                               help="shares removed per layer, heads and channels alike (0.2,0.3) or as "
                                    "heads:channels pairs (0.25:0.1,0:0.3); each in [0, 1)"),
    task: str = TaskOpt,
    other: str = OtherOpt,
    contrast: float = ContrastOpt,
    calib: int = CalibOpt,
    evals: int = EvalOpt,
    length: int = LengthOpt,
    batch_size: int = BatchOpt,
    recover_tokens: int = typer.Option(0, "--recover-tokens", help="fine-tune every cell on the task corpus for this many tokens"),
    recover_lr: float = RecoverLrOpt,
    speed: bool = typer.Option(True, "--speed/--no-speed", help="time prefill and decode in every cell (off: faster)"),
    speed_tokens: int = typer.Option(32, "--speed-tokens", help="decode tokens timed per cell (fewer: faster cells)"),
    speed_repeats: int = typer.Option(5, "--speed-repeats", help="interleaved timing repeats per model"),
    device: str = DeviceOpt,
    executor: str = typer.Option("local", "--executor", help="local (one process per cell) or ray"),
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Every criterion x ratio, each cell a run folder (a rerun resumes); perplexity per domain against the share
    of parameters removed, before and after recovery, in one report."""
    from ..prune.curve import check_config, check_model, prune_curve
    from ..report.prune import curve_page
    from ._report import write_run

    config = {"model": model, "device": device, "criteria": [x.strip() for x in criteria.split(",") if x.strip()],
              "ratios": parse_ratios(ratios), "task": task, "other": other, "contrast": contrast,
              "calib_contexts": calib, "eval_contexts": evals, "length": length, "batch_size": batch_size,
              "recover_tokens": recover_tokens, "recover_lr": recover_lr, "speed": speed, "speed_tokens": speed_tokens,
              "speed_repeats": speed_repeats}
    c = check_config(config, executor)  # names, shares, counts: before the model loads
    lm = load_model(model, "float32", device, quiet=json_out)
    check_model(c, lm)  # widths that a ratio would not cut, corpora too small: before any cell runs
    del lm
    n = {"done": 0, "total": 0}

    def started(total, todo):
        n["total"] = total
        if not json_out:
            console.print(f"{total} cells ({total - todo} already done), one process each", highlight=False)

    def ended(row):
        n["done"] += 1
        if json_out:
            return
        p, m = row["config"], row["metrics"] or {}
        what = (f"{m['params_removed']:.1%} removed" if "params_removed" in m else row["status"]) + \
               (f" ({row['error']})" if row.get("error") else "")
        console.print(f"  [{n['done']}/{n['total']}] {p['criterion']} at heads {p['head_ratio']:g}, channels "
                      f"{p['channel_ratio']:g}: {what}", highlight=False, markup=False)

    result = prune_curve(c, root=out, executor=executor, on_start=started, on_result=ended)
    head = headline(result)
    page = curve_page(result["cells"], meta={"model": model, "task": task})
    report = write_run("prune-curve", c, result, metrics=head, page=page, out=out)
    if json_out:
        emit_json({"report": str(report), "cells": head})
        return
    print_curve(result)
    say_where(report)
