"""``shoestring prune skip``: layer skipping (a fixed set, or the least influential layers) and confidence-based
early exit at decode time, against the unmodified model on the same held-out text."""

from __future__ import annotations

import typer

from ._common import DeviceOpt, JsonOpt, emit_json, load_model, print_table
from ._report import OutOpt, say_where


def _ints(text: str) -> list[int]:
    from ..errors import ShoestringError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ShoestringError(f"'{text}' is not a comma-separated list of layer numbers", "write e.g. 20,21") from None


def _floats(text: str) -> list[float]:
    from ..errors import ShoestringError

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ShoestringError(f"'{text}' is not a comma-separated list of thresholds", "write e.g. 0.8,0.9") from None


def skip(
    model: str = typer.Option("smollm2-135m", "--model"),
    layers: str = typer.Option("", "--layers", help="layers to skip, e.g. 20,21"),
    auto: int = typer.Option(0, "--auto", help="skip this many least influential layers (Block Influence)"),
    exit_threshold: str = typer.Option("", "--exit-threshold", help="early-exit thresholds, e.g. 0.8,0.9"),
    exit_rule: str = typer.Option("softmax", "--exit-rule", help="softmax (top probability) or saturation (cosine)"),
    exit_layers: str = typer.Option("", "--exit-layers", help="layers checked for exit (default: every 4th from the middle)"),
    corpus: str = typer.Option("stdlib-code", "--corpus"),
    contexts: int = typer.Option(4, "--contexts", help="held-out contexts decoded token by token"),
    length: int = typer.Option(128, "--length"),
    prefix: int = typer.Option(64, "--prefix", help="tokens prefilled before decoding starts"),
    repeats: int = typer.Option(3, "--repeats", help="interleaved timing passes"),
    device: str = DeviceOpt,
    out: str = OutOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Skip layers or exit early while decoding: perplexity, accuracy, agreement with the full model, decode speed."""
    from ..prune.inference import InferenceConfig, inference_experiment
    from ..runs import RunDir

    cfg = InferenceConfig(corpus=corpus, skip=_ints(layers), skip_auto=auto, exit_thresholds=_floats(exit_threshold),
                          exit_rule=exit_rule, exit_layers=_ints(exit_layers) or None, contexts=contexts,
                          length=length, prefix=prefix, repeats=repeats).check()
    lm = load_model(model, "float32", device, quiet=json_out)
    run_dir = RunDir.create(out, "prune-skip", {"model": model, **vars(cfg)})
    run_dir.start()
    result = inference_experiment(lm, cfg)
    run_dir.save_artifact("result", result)
    head = {name: {k: v.get(k) for k in ("perplexity_ratio", "agreement", "decode_speedup", "mean_exit_layer")}
            for name, v in result["variants"].items()}
    run_dir.finish(head)
    if json_out:
        emit_json({"run": str(run_dir.path), **head})
        return
    rows = [(name, f"{v['perplexity']:.2f}", f"{v['perplexity_ratio']:.2f}x", f"{v['accuracy']:.1%}",
             f"{v['agreement']:.1%}", f"{v['decode_tokens_per_s']:.1f}", f"{v['decode_speedup']:.2f}x",
             "" if v.get("mean_exit_layer") is None else f"{v['mean_exit_layer']:.1f}")
            for name, v in result["variants"].items()]
    print_table(f"decode-time layer skipping on {corpus} ({contexts} x {length - prefix} tokens after a {prefix}-token prefill)",
                ["variant", "perplexity", "vs full", "accuracy", "agrees with full", "tokens/s", "speed-up",
                 "mean exit layer"], rows)
    say_where(run_dir.path)
