"""``shoestring prune run`` end to end on a tiny Llama with the real SmolLM2 tokenizer: the run directory holds a
plan and a checkpoint that plain transformers reloads with the same logits; bad inputs are one line."""

from __future__ import annotations

import json

import pytest
import torch
import transformers as T

from cli_helpers import cli, one_line, tiny_smol_dir
from shoestring.prune import PruningPlan

SMALL = ["--task", "stdlib-prose", "--other", "stdlib-code", "--calib", "2", "--eval", "2", "--length", "32",
         "--batch-size", "2"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_smol_dir(tmp_path_factory.mktemp("tiny") / "m")


def test_prune_run_writes_a_reloadable_checkpoint(tiny, tmp_path, capsys):
    code, out, err = cli(capsys, "prune", "run", "--model", tiny, "--out", tmp_path, "--heads", "0.5",
                         "--channels", "0.5", "--recover-tokens", "128", "--recover-lr", "1e-3", "--json", *SMALL)
    assert code == 0, err
    head = json.loads(out)
    assert head["params_removed"] > 0 and head["uniform"] is True  # (the 49k-token embedding dominates)
    run = next(tmp_path.glob("prune-run-*"))
    plan = PruningPlan.load(run / "plan.json")
    assert "Kept widths per layer" in (run / "report.html").read_text()
    assert all(len(v) == 1 for v in plan.kv_groups.values()) and all(len(v) == 32 for v in plan.channels.values())
    result = json.loads((run / "artifacts" / "result.json").read_text())
    assert result["recovered"]["steps"] == 2 and set(result["perplexity_ratio"]) == {"stdlib-prose", "stdlib-code"}
    model = T.AutoModelForCausalLM.from_pretrained(run / "model").eval()
    assert model.config.intermediate_size == 32 and model.config.num_key_value_heads == 1
    ids = torch.randint(2, 100, (1, 9))
    with torch.no_grad():
        a = model(input_ids=ids).logits
        b = T.AutoModelForCausalLM.from_pretrained(run / "model").eval()(input_ids=ids).logits
    assert torch.equal(a, b)


@pytest.mark.parametrize("extra, words", [
    (["--heads", "1.0"], ["head ratio 1.0", "[0, 1)"]),
    (["--channels", "0", "--heads", "0"], ["nothing would be pruned"]),
    (["--criterion", "vibes"], ["unknown criterion 'vibes'"]),
    (["--heads", "0.1"], ["removes no key-value group"]),
    (["--length", "1000000"], ["fewer than one batch"]),
    (["--recover-tokens", "3"], ["smaller than one batch"]),
])
def test_bad_prune_inputs_are_one_line(tiny, tmp_path, capsys, extra, words):
    code, _, err = cli(capsys, "prune", "run", "--model", tiny, "--out", tmp_path, *SMALL, *extra)
    one_line(code, err, *words)


def test_apply_an_edited_plan_and_refuse_one_for_another_model(tiny, tmp_path, capsys):
    import shoestring
    from shoestring.prune import model_shape

    m = shoestring.load(str(tiny)).model
    shape = model_shape(m.config)
    plan = PruningPlan(shape, channels={i: list(range(0, 64, 2)) for i in range(shape["num_hidden_layers"])})
    plan.save(tmp_path / "plan.json")
    code, out, err = cli(capsys, "prune", "apply", tmp_path / "plan.json", tmp_path / "saved", "--model", tiny)
    assert code == 0, err
    assert T.AutoModelForCausalLM.from_pretrained(tmp_path / "saved").config.intermediate_size == 32
    PruningPlan({**shape, "hidden_size": 64}, channels={0: [1]}).save(tmp_path / "other.json")
    code, _, err = cli(capsys, "prune", "apply", tmp_path / "other.json", tmp_path / "x", "--model", tiny)
    one_line(code, err, "made for another model", "hidden_size 64 vs 32")


def test_prune_skip_compares_variants_against_the_full_model(tiny, tmp_path, capsys):
    code, out, err = cli(capsys, "prune", "skip", "--model", tiny, "--out", tmp_path, "--auto", "1",
                         "--exit-threshold", "0.01,1.0", "--exit-rule", "saturation", "--exit-layers", "1",
                         "--corpus", "stdlib-prose", "--contexts", "2", "--length", "24", "--prefix", "8",
                         "--repeats", "1", "--json")
    assert code == 0, err
    head = json.loads(out)
    skipped = [k for k in head if k.startswith("skip ")]
    assert len(skipped) == 1 and skipped[0] in ("skip 1", "skip 2")  # one layer, never layer 0
    assert set(head) - {"run"} == {"full", skipped[0], "exit saturation>=0.01", "exit saturation>=1"}
    assert head["full"]["agreement"] == 1.0 and head["full"]["perplexity_ratio"] == 1.0
    assert head["exit saturation>=1"]["mean_exit_layer"] == 2  # never exits: every step reaches the last layer
    assert head["exit saturation>=0.01"]["mean_exit_layer"] == 1  # always exits at the checked layer
    result = json.loads((next(tmp_path.glob("prune-skip-*")) / "artifacts" / "result.json").read_text())
    assert result["skip"] != [0] and len(result["block_influence"]) == 3


@pytest.mark.parametrize("extra, words", [
    ([], ["nothing to compare"]),
    (["--layers", "0"], ["layer 0 cannot be skipped"]),
    (["--layers", "a,b"], ["not a comma-separated list"]),
    (["--exit-threshold", "1.5"], ["outside (0, 1]"]),
    (["--exit-threshold", "0.9", "--exit-rule", "vibes"], ["unknown early-exit rule"]),
    (["--exit-threshold", "0.9", "--exit-layers", "2"], ["must lie in 0..1"]),
    (["--layers", "1", "--prefix", "40"], ["leaves nothing to decode"]),
])
def test_bad_skip_inputs_are_one_line(tiny, tmp_path, capsys, extra, words):
    code, _, err = cli(capsys, "prune", "skip", "--model", tiny, "--out", tmp_path, "--corpus", "stdlib-prose",
                       "--contexts", "1", "--length", "24", "--prefix", "8", "--repeats", "1", *extra)
    one_line(code, err, *words)


def test_prune_run_with_lora_recovery_and_a_local_lm_eval_task(tiny, tmp_path, capsys):
    pytest.importorskip("peft")
    pytest.importorskip("lm_eval")
    from lm_eval_task import local_task

    (tmp_path / "tasks").mkdir()
    tasks = local_task(tmp_path / "tasks")
    code, out, err = cli(capsys, "prune", "run", "--model", tiny, "--out", tmp_path / "runs", "--heads", "0.5",
                         "--channels", "0.5", "--recover-tokens", "128", "--lora-rank", "4", "--lora-lr", "1e-2",
                         "--lm-eval", "tiny_mc", "--lm-eval-include", tasks, "--no-speed", *SMALL)
    assert code == 0, err
    assert "lm-evaluation-harness" in out and "tiny_mc" in out
    result = json.loads((next((tmp_path / "runs").glob("prune-run-*")) / "artifacts" / "result.json").read_text())
    assert result["recovered"]["lora"]["rank"] == 4 and result["recovered"]["steps"] == 2
    assert 0 <= result["lm_eval"]["after"]["tiny_mc"]["acc"] <= 1 and "prefill_speedup" not in result
    code, _, err = cli(capsys, "prune", "run", "--model", tiny, "--out", tmp_path / "runs", "--lora-rank", "4", *SMALL)
    one_line(code, err, "needs a positive rank and a recovery budget")
