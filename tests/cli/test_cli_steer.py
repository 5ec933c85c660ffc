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
