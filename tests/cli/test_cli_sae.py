"""`shoestring sae ...` from the command line: a whole run on a tiny model, and bad input as one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli_helpers import cli, one_line, tiny_smol_dir

from shoestring.sae import load_sae, make_sae, save_sae

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_smol_dir(tmp_path_factory.mktemp("tiny-smol-sae"))


@pytest.fixture(scope="module")
def store(tiny_dir, tmp_path_factory):
    from shoestring.cli.main import main

    out = tmp_path_factory.mktemp("sae-store") / "s"
    with pytest.raises(SystemExit) as exc:
        main(["cache", str(tiny_dir), "--corpus", "stdlib-prose", "--hooks", HOOK, "--tokens", "12288", "--out", str(out),
              "--context-length", "64", "--shard-tokens", "4096", "--batch-size", "8", "--json"])
    assert exc.value.code == 0
    return out


def train_args(tiny_dir, store, runs, *extra):
    return ["sae", "train", tiny_dir, "--store", store, "--hook", HOOK, "--width", 64, "--tokens", 8192,
            "--batch-size", 512, "--eval-tokens", 256, "--out", runs, "--json", *extra]


def test_train_writes_a_run_with_saelens_folders_and_a_browser(tiny_dir, store, tmp_path, capsys):
    code, out, err = cli(capsys, *train_args(tiny_dir, store, tmp_path / "runs", "--k", "4,8"))
    assert code == 0, err
    data = json.loads(out)
    run = Path(data["run"])
    assert [r["k"] for r in data["saes"]] == [4, 8]
    for i, row in enumerate(data["saes"]):
        folder = run / f"sae-{i}"
        cfg = json.loads((folder / "cfg.json").read_text())
        assert cfg["architecture"] == "topk" and cfg["k"] == row["k"] and cfg["d_in"] == 32 and cfg["d_sae"] == 64
        assert cfg["metadata"]["hook_name"] == HOOK
        ev = json.loads((folder / "eval.json").read_text())["eval"]
        assert ev["l0"] <= row["k"] + 1e-6
        assert ev["kl_zero"] > 0 and "ce_recovered_mean" in ev  # a random tiny model: zeroing changes, not always hurts
        assert load_sae(folder).cfg.k == row["k"]
    html = (run / "report.html").read_text()
    assert "feature" in html.lower() and "<script" in html
    assert json.loads((run / "metrics.json").read_text())["saes"][0]["k"] == 4
    log = [json.loads(r) for r in (run / "train" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 16


def test_k_larger_than_width(tiny_dir, store, tmp_path, capsys):
    one_line(*cli(capsys, *train_args(tiny_dir, store, tmp_path / "runs", "--k", "65"))[::2], "k=65", "width 64")


def test_store_and_corpus_are_exclusive(tiny_dir, store, tmp_path, capsys):
    one_line(*cli(capsys, *train_args(tiny_dir, store, tmp_path / "runs", "--corpus", "stdlib-prose"))[::2], "--store", "--corpus")


def test_unknown_architecture_and_hook(tiny_dir, store, tmp_path, capsys):
    one_line(*cli(capsys, *train_args(tiny_dir, store, tmp_path / "runs", "--arch", "topkk"))[::2], "unknown SAE architecture", "topk")
    args = train_args(tiny_dir, store, tmp_path / "runs")
    args[args.index(HOOK)] = "blocks.0.hook_resid_post"
    one_line(*cli(capsys, *args)[::2], "holds no", HOOK)


def test_store_of_another_width(tiny_dir, store, tmp_path, capsys):
    sae = make_sae("topk", 48, 96, k=4, hook_name=HOOK)
    folder = save_sae(sae, tmp_path / "wide-sae")
    one_line(*cli(capsys, "sae", "browse", folder, "--store", store, "--model", tiny_dir)[::2], "width 32", "width 48")


def test_checkpoint_without_or_with_a_wrong_cfg(tiny_dir, tmp_path, capsys):
    folder = save_sae(make_sae("topk", 32, 64, k=4, hook_name=HOOK), tmp_path / "sae")
    (folder / "cfg.json").unlink()
    one_line(*cli(capsys, "sae", "eval", folder, "--model", tiny_dir)[::2], "no cfg.json")
    (folder / "cfg.json").write_text(json.dumps({"architecture": "topk", "d_in": 16, "d_sae": 64, "k": 4, "dtype": "float32"}))
    one_line(*cli(capsys, "sae", "eval", folder, "--model", tiny_dir)[::2], "W_enc", "d_in=16")
    (folder / "cfg.json").write_text(json.dumps({"architecture": "topk", "d_in": 32, "k": 4}))
    one_line(*cli(capsys, "sae", "eval", folder, "--model", tiny_dir)[::2], "lacks d_sae")
    (folder / "cfg.json").write_text("{not json")
    one_line(*cli(capsys, "sae", "eval", folder, "--model", tiny_dir)[::2], "not valid JSON")
    one_line(*cli(capsys, "sae", "eval", tmp_path / "nowhere", "--model", tiny_dir)[::2], "no SAE checkpoint")


def test_eval_search_and_contrast(tiny_dir, tmp_path, capsys):
    sae = make_sae("topk", 32, 64, k=4, hook_name=HOOK, model_name=str(tiny_dir))
    folder = save_sae(sae, tmp_path / "sae")
    code, out, err = cli(capsys, "sae", "eval", folder, "--tokens", 256, "--context-length", 64, "--out", tmp_path / "runs", "--json")
    assert code == 0, err
    ev = json.loads(out)
    assert ev["l0"] <= 4 and ev["tokens"] == 4 * 63 and ev["ce_zero"] > 0
    (run,) = (tmp_path / "runs").glob("sae-eval-*")
    assert json.loads((run / "metrics.json").read_text())["ce_sae"] == ev["ce_sae"]
    assert "density_histogram" in json.loads((run / "artifacts" / "result.json").read_text())
    code, out, err = cli(capsys, "sae", "search", folder, "def main(): return 1", "--top", 3, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert 1 <= len(rows) <= 3
    (tmp_path / "a.txt").write_text("good day\ngreat day\n")
    (tmp_path / "b.txt").write_text("")
    one_line(*cli(capsys, "sae", "contrast", folder, "--a", tmp_path / "a.txt", "--b", tmp_path / "b.txt")[::2], "holds no text")


def test_toy_recovers_its_dictionary(capsys):
    torch.manual_seed(0)
    code, out, err = cli(capsys, "sae", "toy", "--d", 32, "--features", 96, "--width", 192, "--k", 4, "--steps", 400, "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["mean_max_cosine"] > 0.9 > r["random_baseline"]


def test_streamed_training_evaluates_on_unseen_text(tiny_dir, tmp_path, capsys):
    args = ["sae", "train", tiny_dir, "--corpus", "stdlib-prose", "--hook", HOOK, "--width", 64, "--k", 4,
            "--tokens", 2048, "--batch-size", 256, "--context-length", 32, "--eval-tokens", 64, "--out", tmp_path / "runs", "--json"]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    row = json.loads(out)["saes"][0]
    assert row["steps"] == 8 and row["eval"]["tokens"] == 2 * 31
    assert not (Path(json.loads(out)["run"]) / "report.html").exists()  # no store: no feature browser


def test_model_of_another_width_than_the_store(store, tmp_path, capsys):
    import transformers as T

    from shoestring.models.bundled import cached_dir

    tok = T.AutoTokenizer.from_pretrained(cached_dir())
    cfg = T.LlamaConfig(vocab_size=len(tok), hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, intermediate_size=64)
    T.AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "wide")
    tok.save_pretrained(tmp_path / "wide")
    args = ["sae", "train", tmp_path / "wide", "--store", store, "--hook", HOOK, "--width", 64, "--k", 4,
            "--tokens", 1024, "--batch-size", 256, "--out", tmp_path / "runs"]
    one_line(*cli(capsys, *args)[::2], "width 32", "has 48")
