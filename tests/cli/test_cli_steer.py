"""`shoestring steer run|fit` from the command line on a tiny model; bad specs are one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import cli, one_line, tiny_smol_dir

from shoestring.steer import Direction


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_smol_dir(tmp_path_factory.mktemp("tiny-smol-steer-cli"))


def spec(tmp_path, tiny_dir, judge="sentiment", layers="[1]"):
    p = tmp_path / "spec.toml"
    p.write_text(f'model = "{tiny_dir}"\n[prompts]\nbuiltin = "sentiment"\nlimit = 3\n[sweep]\nlayers = {layers}\n'
                 f'scales = [0.0, 40.0]\n[generation]\nmax_new_tokens = 4\nseeds = [0]\n[[judges]]\nname = "{judge}"\n'
                 '[side_effects]\ntexts = 1\ncontext_length = 16\n')
    return p


def test_steer_run_writes_a_run_directory(tiny_dir, tmp_path, capsys):
    code, out, err = cli(capsys, "steer", "run", spec(tmp_path, tiny_dir), "--out", tmp_path / "runs", "--json")
    assert code == 0, err
    data = json.loads(out)
    run = Path(data["run"])
    assert data["judge"] == "sentiment" and "ci_low" in data["effect"]
    result = json.loads((run / "artifacts" / "result.json").read_text())
    assert [c["scale"] for c in result["cells"]] == [0.0, 40.0]
    import pyarrow.parquet as pq

    assert pq.read_table(run / "samples.parquet").num_rows == 3 * (1 + 2 * 2)


def test_bad_specs(tiny_dir, tmp_path, capsys):
    one_line(*cli(capsys, "steer", "run", spec(tmp_path, tiny_dir, judge="vibes"))[::2], "unknown judge 'vibes'")
    one_line(*cli(capsys, "steer", "run", spec(tmp_path, tiny_dir, layers="[9]"), "--out", tmp_path / "runs")[::2], "out of range")
    one_line(*cli(capsys, "steer", "run", tmp_path / "missing.toml")[::2], "no spec file")


def test_steer_fit_saves_a_direction(tiny_dir, tmp_path, capsys):
    code, out, err = cli(capsys, "steer", "fit", tiny_dir, "--out", tmp_path / "d", "--layers", "0,1")
    assert code == 0, err
    assert Direction.load(tmp_path / "d").layers == [0, 1]
    one_line(*cli(capsys, "steer", "fit", tiny_dir, "--out", tmp_path / "d", "--layers", "x")[::2], "--layers")


def _direction(folder, layers=(1, 2), shape=(32,), model="smollm2-135m"):
    import torch

    torch.manual_seed(0)
    return Direction({layer: torch.randn(*shape) for layer in layers}, "mean_diff", model=model).save(folder)


def test_steer_export_and_import(tmp_path, capsys):
    import torch

    d = Direction.load(_direction(tmp_path / "d"))
    code, out, err = cli(capsys, "steer", "export", tmp_path / "d", "--to", "gguf", "--out", tmp_path / "v.gguf",
                         "--scale", "2")
    assert code == 0, err
    assert "--control-vector" in out
    code, out, err = cli(capsys, "steer", "import", tmp_path / "v.gguf", "--out", tmp_path / "back", "--model", "tiny")
    assert code == 0, err
    back = Direction.load(tmp_path / "back")
    assert back.layers == [1, 2] and back.model == "tiny" and back.hook == "blocks.{layer}.hook_resid_post"
    assert all(torch.allclose(back.vectors[k], 2 * d.vectors[k]) for k in (1, 2))
    code, out, err = cli(capsys, "steer", "export", tmp_path / "d", "--to", "lm-eval", "--out", tmp_path / "s.pt",
                         "--layers", "2", "--scale", "4")
    assert code == 0, err
    assert "lm_eval --model steered --model_args pretrained=HuggingFaceTB/SmolLM2-135M-Instruct,steer_path=" in out
    config = torch.load(tmp_path / "s.pt", weights_only=True)
    assert list(config) == ["layers.2"] and config["layers.2"]["steering_coefficient"] == 4.0


def test_steer_export_import_bad_inputs(tmp_path, capsys):
    import gguf
    import numpy as np

    _direction(tmp_path / "d", layers=(0, 1))
    _direction(tmp_path / "seq", shape=(3, 32))
    one_line(*cli(capsys, "steer", "export", tmp_path / "d", "--to", "onnx", "--out", tmp_path / "x")[::2],
             "unknown export format 'onnx'")
    one_line(*cli(capsys, "steer", "export", tmp_path / "nope", "--to", "gguf", "--out", tmp_path / "x.gguf")[::2],
             "no direction")
    one_line(*cli(capsys, "steer", "export", tmp_path / "seq", "--to", "gguf", "--out", tmp_path / "x.gguf")[::2],
             "sequence")
    one_line(*cli(capsys, "steer", "export", tmp_path / "d", "--to", "gguf", "--out", tmp_path / "x.gguf")[::2],
             "block 0")
    one_line(*cli(capsys, "steer", "export", tmp_path / "d", "--to", "lm-eval", "--out", tmp_path / "x.csv")[::2],
             ".pt or .pth")
    one_line(*cli(capsys, "steer", "import", tmp_path / "missing.gguf", "--out", tmp_path / "o")[::2], "no file")
    (tmp_path / "junk.gguf").write_text("junk")
    one_line(*cli(capsys, "steer", "import", tmp_path / "junk.gguf", "--out", tmp_path / "o")[::2], "not a GGUF")
    w = gguf.GGUFWriter(str(tmp_path / "model.gguf"), "llama")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    one_line(*cli(capsys, "steer", "import", tmp_path / "model.gguf", "--out", tmp_path / "o")[::2],
             "not a control vector")
    assert not (tmp_path / "o").exists()


def _loop_spec(tmp_path, tiny_dir, direction: str, name="bad.toml"):
    p = tmp_path / name
    p.write_text(f'model = "{tiny_dir}"\n[direction]\n{direction}\n[prompts]\ntexts = ["hi"]\n[sweep]\nlayers = [1]\n'
                 'scales = [1.0]\n[[judges]]\nname = "sentiment"\n')
    return p


def test_bad_loop_inputs_are_one_line_and_leave_no_run(tiny_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    unequal = _loop_spec(tmp_path, tiny_dir, 'positive = ["good", "great"]\nnegative = ["bad"]')
    one_line(*cli(capsys, "steer", "run", unequal, "--out", runs)[::2], "unequal length")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    one_line(*cli(capsys, "steer", "run", _loop_spec(tmp_path, tiny_dir, f'pairs = "{empty}"'), "--out", runs)[::2], "is empty")
    wide = _direction(tmp_path / "wide", layers=(1,), shape=(48,))
    one_line(*cli(capsys, "steer", "run", _loop_spec(tmp_path, tiny_dir, f'method = "file"\npath = "{wide}"'),
                  "--out", runs)[::2], "width 48")
    assert not runs.exists() or not any(runs.iterdir())  # refused before a run directory was made
