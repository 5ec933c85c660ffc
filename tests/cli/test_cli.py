"""The `shoestring` command: every bad input is one line on stderr with exit code 2; --json parses."""

from __future__ import annotations

import json
import os

import pytest
import torch

from shoestring.cli.main import main
from shoestring.errors import ShoestringError
from shoestring.models.load import check_fits


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path, monkeypatch):
    """observe commands and the demo write run directories: keep them out of the work tree."""
    monkeypatch.setenv("SHOESTRING_RUNS", str(tmp_path / "runs"))


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def assert_one_line_error(code, err, *words):
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("shoestring: error: ")
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize(
    "argv, words",
    [
        (["info", "nonsense-model"], ["unknown model 'nonsense-model'", "shoestring models"]),
        (["info", "someorg/somemodel"], ["cannot load 'someorg/somemodel'", "smollm2-135m"]),
        (["info", "/etc/hostname"], ["not a .gguf"]),
        (["info", "smollm2-135m", "--dtype", "float13"], ["unknown dtype 'float13'", "bfloat16"]),
        (["info", "smollm2-135m", "--device", "tpu"], ["unknown device 'tpu'", "cpu"]),
        (["generate"], ["Missing argument", "--help"]),
        (["no-such-command"], ["No such command"]),
        (["info", "smollm2-135m", "--no-such-flag"], ["No such option"]),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, words):
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, *words)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_gpu_is_one_line(capsys):
    code, _, err = run(capsys, "info", "smollm2-135m", "--device", "cuda")
    assert_one_line_error(code, err, "not available", "--device cpu")


def test_debug_shows_the_traceback():
    with pytest.raises(ShoestringError):
        main(["--debug", "info", "nonsense-model"])


def test_out_of_memory_estimate_names_size_and_fix():
    with pytest.raises(ShoestringError) as exc:
        check_fits(10**13, torch.float32, "cpu", None)  # 40 TB of weights
    msg = str(exc.value)
    assert "out of memory" in msg and "GiB" in msg and "bfloat16" in msg
    check_fits(1000, torch.float32, "cpu", None)  # tiny: fits
    check_fits(10**13, torch.float32, "cpu", "auto")  # device_map spreads it: not refused here


def test_models_json_lists_default_and_layouts(capsys):
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    data = json.loads(out)
    assert any(a["alias"] == "smollm2-135m" and a["default"] for a in data["aliases"])
    names = {lay["layout"] for lay in data["layouts"]}
    assert {"gpt2", "llama", "gpt_neox", "gptj", "opt", "gemma2", "olmo2", "phi3", "phi", "mixtral"} <= names


@pytest.mark.slow
def test_unknown_hook_and_layer_out_of_range(capsys):
    code, _, err = run(capsys, "generate", "smollm2-135m", "hi", "-n", "1", "--capture", "blocks.0.hook_resid_pst")
    assert_one_line_error(code, err, "unknown hook point", "did you mean", "blocks.0.hook_resid_post")
    code, _, err = run(capsys, "generate", "smollm2-135m", "hi", "-n", "1", "--capture", "blocks.30.hook_resid_post")
    assert_one_line_error(code, err, "layer 30 is out of range", "0 to 29")


@pytest.mark.slow
def test_info_json(capsys):
    code, out, _ = run(capsys, "info", "smollm2-135m", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["n_layers"] == 30 and data["d_model"] == 576 and data["n_kv_heads"] == 3
    assert data["parameters"] == 134_515_008
    shapes = {p["name"]: p["shape"] for p in data["points"]}
    assert shapes["blocks.0.hook_resid_post"] == [1, 4, 576]
    assert shapes["blocks.0.attn.hook_k"] == [1, 4, 3, 64]
    assert shapes["blocks.0.attn.hook_pattern"] == [1, 9, 4, 4]
    assert shapes["blocks.0.mlp.hook_post"] == [1, 4, 1536]
    assert len(data["all_point_names"]) == data["hook_points"]


@pytest.mark.slow
def test_generate_json_with_capture(capsys):
    code, out, _ = run(capsys, "generate", "smollm2-135m", "The capital of France is", "-n", "4",
                       "--capture", "blocks.5.hook_resid_post", "--json")
    assert code == 0
    data = json.loads(out)
    assert "Paris" in data["completions"][0]
    n_prompt = 5  # "The capital of France is"
    # prefill (5 positions) + 3 decode steps (the 4th new token is never fed back)
    assert data["captured"]["blocks.5.hook_resid_post"]["shape"] == [1, n_prompt + 3, 576]


@pytest.mark.slow
def test_demo_json(capsys):
    code, out, _ = run(capsys, "demo", "--json", "-n", "4", "--tour", "--no-loop")
    assert code == 0
    data = json.loads(out)
    assert data["hook_check"]["ok"], data["hook_check"]
    assert "Paris" in data["completion"]
    assert data["captured"]["points"] == 31  # 30 resid_post + 1 pattern
    assert data["captured"]["forward_calls"] == 4
    assert data["logit_lens"][-1]["layer"] == 29 and data["logit_lens"][-1]["top_token"].strip() == "Paris"
    assert abs(sum(r["weight"] for r in data["attention_of_last_prompt_token"])) <= 1.0 + 1e-4
    assert data["induction_heads"][0]["score"] > 0.5
    # the observation tour: its report, a factual lens, named induction heads, a probe curve with selectivity
    tour = data["tour"]
    assert data["report"].endswith("report.html") and os.path.isfile(data["report"])
    assert tour["lens"]["rows"][-1]["target_rank"] == 0
    assert data["induction_heads"] == tour["induction_heads"][:3]
    rows = tour["probe"]["rows"]
    assert len(rows) > 1 and all("selectivity" in r for r in rows)


@pytest.mark.slow
def test_demo_runs_the_closed_loop(capsys):
    """The demo's steering loop on SmolLM2 (greedy, deterministic): the best cell's sentiment shift has a 95%
    interval above zero and above the random control's, and its fluency cost and side effects are reported."""
    code, out, _ = run(capsys, "demo", "--json", "-n", "2")
    assert code == 0
    s = json.loads(out)["steering"]
    assert s["judge"] == "sentiment" and s["significant"] and s["beats_control"]
    assert s["effect"]["ci_low"] > 0 and s["vs_control"]["ci_low"] > 0 and s["effect"]["mean"] > s["control"]["mean"]
    assert "fluency" in s["other_judges"] and s["kl_neutral"] > 0 and s["ppl_ratio_neutral"] > 0
    assert os.path.isfile(s["report"]) and os.path.isdir(os.path.join(s["run"], "artifacts", "direction"))
    assert s["example"]["unsteered"] != s["example"]["steered"]


@pytest.mark.slow
def test_first_use_conversion_keeps_errors_one_line(capsys, tmp_path, monkeypatch):
    """In an empty SHOESTRING_HOME the bundled GGUF is converted for real; the error that follows is
    still the only line on stderr (no progress bars from the GGUF loader), and the cache is complete."""
    monkeypatch.setenv("SHOESTRING_HOME", str(tmp_path / "home"))
    code, out, err = run(capsys, "generate", "smollm2-135m", "hi", "-n", "1", "--capture", "blocks.0.hook_resid_pst")
    assert_one_line_error(code, err, "unknown hook point")
    assert out == ""
    cache = tmp_path / "home" / "models" / "smollm2-135m-instruct-q4_1"
    assert (cache / "shoestring.json").exists() and (cache / "model.safetensors").stat().st_size > 500e6


def test_observe_unknown_score_is_one_line(capsys):
    code, _, err = run(capsys, "observe", "heads", "smollm2-135m", "--score", "inductoin")
    assert_one_line_error(code, err, "unknown head score", "induction")


@pytest.mark.slow
def test_observe_bad_inputs_and_json(capsys):
    code, _, err = run(capsys, "observe", "lens", "smollm2-135m", "The capital of France is", "--target", " Parisian")
    assert_one_line_error(code, err, "is 2 tokens", "single token")
    code, _, err = run(capsys, "observe", "pattern", "smollm2-135m", "a b c", "--layer", "3", "--head", "9")
    assert_one_line_error(code, err, "head 9 is out of range", "0 to 8")
    code, _, err = run(capsys, "observe", "pattern", "smollm2-135m", "a b c", "--layer", "30", "--head", "0")
    assert_one_line_error(code, err, "layer 30 is out of range")
    code, out, _ = run(capsys, "observe", "heads", "smollm2-135m", "--top", "3", "--json")
    data = json.loads(out)
    assert code == 0 and data["top"][0]["score"] > 0.5 and len(data["scores"]["induction"]) == 30


@pytest.mark.slow
def test_observe_patch_and_dla(capsys):
    clean = "The Eiffel Tower is in the city of"
    code, _, err = run(capsys, "observe", "patch", "smollm2-135m", "--clean", clean, "--corrupt", "Rome", "--answer", " Paris")
    assert_one_line_error(code, err, "9 tokens", "same token count")
    code, out, _ = run(capsys, "observe", "dla", "smollm2-135m", clean, "--target", " Paris", "--wrong", " Rome", "--json")
    data = json.loads(out)
    assert code == 0 and abs(data["sum_of_parts"] - data["logit"]) < 1e-2 and data["logit"] > 0
    # the patching grid itself on SmolLM2 is tested in tests/observe/test_patching.py (slow)


def test_observe_probe_bad_labels_is_one_line(capsys, tmp_path):
    one_class = tmp_path / "one.jsonl"
    one_class.write_text("".join(f'{{"text": "sentence {i}", "label": 1}}\n' for i in range(20)))
    code, _, err = run(capsys, "observe", "probe", "smollm2-135m", "--data", str(one_class))
    assert_one_line_error(code, err, "one class")
    code, _, err = run(capsys, "observe", "probe", "smollm2-135m", "--position", "first")
    assert_one_line_error(code, err, "--position last or mean")


@pytest.mark.slow
def test_observe_neuron_and_geometry(capsys):
    code, out, _ = run(capsys, "observe", "neuron", "smollm2-135m", "--layer", "20", "--neuron", "100",
                       "--contexts", "8", "--top", "3", "--json")
    data = json.loads(out)
    assert code == 0 and len(data["promotes"]) == 3 and len(data["top"]) == 3
    assert data["top"][0]["value"] >= data["top"][-1]["value"]
    assert sum(data["histogram"]["counts"]) == 8 * 64
    code, _, err = run(capsys, "observe", "neuron", "smollm2-135m", "--layer", "20", "--neuron", "5000")
    assert_one_line_error(code, err, "neuron 5000 is out of range", "0 to 1535")
    code, out, _ = run(capsys, "observe", "geometry", "smollm2-135m", "--layer", "15", "--json")
    data = json.loads(out)
    assert code == 0 and data["n"] == 210 and len(data["map"]) == 210
    assert abs(data["pc1_label_correlation"]) > 0.5  # sentiment is a main direction of variation there
