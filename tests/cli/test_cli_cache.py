"""`shoestring cache` from the command line: bad input is one line with exit 2; a killed run resumes exactly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import cli, one_line, tiny_smol_dir
from kill_helpers import kill_after_shards

from shoestring.store import ActivationStore, Manifest


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_smol_dir(tmp_path_factory.mktemp("tiny-smol"))


def base(tiny_dir, out, hooks="blocks.1.hook_resid_post", tokens=2048):
    return ["cache", tiny_dir, "--corpus", "stdlib-prose", "--hooks", hooks, "--tokens", tokens, "--out", out,
            "--context-length", 64, "--shard-tokens", 512, "--batch-size", 4, "--json"]


def test_cache_json_and_store(tiny_dir, tmp_path, capsys):
    code, out, _ = cli(capsys, *base(tiny_dir, tmp_path / "s"))
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "done" and data["tokens"] == 2048 and data["shards"] == 4
    store = ActivationStore(tmp_path / "s")
    assert store.manifest.meta["bos_token_id"] is not None and store.tokens()[0] == store.manifest.meta["bos_token_id"]
    assert len(list(store.batches("blocks.1.hook_resid_post", 100, skip_bos=True))) > 0


def test_missing_and_empty_corpus(tiny_dir, tmp_path, capsys):
    args = base(tiny_dir, tmp_path / "s")
    args[args.index("stdlib-prose")] = tmp_path / "no-such-corpus"
    one_line(*cli(capsys, *args)[::2], "no file or folder")
    (tmp_path / "empty.txt").write_text("")
    args[args.index(tmp_path / "no-such-corpus")] = tmp_path / "empty.txt"
    one_line(*cli(capsys, *args)[::2], "has no documents")
    assert not (tmp_path / "s").exists()


def test_unknown_hook(tiny_dir, tmp_path, capsys):
    one_line(*cli(capsys, *base(tiny_dir, tmp_path / "s", hooks="blocks.1.hook_resid_pots"))[::2], "unknown hook point", "did you mean")
    one_line(*cli(capsys, *base(tiny_dir, tmp_path / "s", hooks="blocks.7.hook_resid_post"))[::2], "layer 7 is out of range")
    assert not (tmp_path / "s").exists()


def test_unwritable_and_full_output(tiny_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    one_line(*cli(capsys, *base(tiny_dir, tmp_path / "a-file" / "s"))[::2], "cannot write")
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 4096, 4096))
    one_line(*cli(capsys, *base(tiny_dir, tmp_path / "full"))[::2], "not enough disk", "GiB")
    assert not (tmp_path / "full").exists()


def test_resume_with_other_hooks_is_refused(tiny_dir, tmp_path, capsys):
    assert cli(capsys, *base(tiny_dir, tmp_path / "s"))[0] == 0
    before = (tmp_path / "s" / "manifest.json").read_bytes()
    one_line(*cli(capsys, *base(tiny_dir, tmp_path / "s", hooks="blocks.2.hook_resid_post"))[::2], "hooks=")
    assert (tmp_path / "s" / "manifest.json").read_bytes() == before  # nothing touched


def test_bad_store_dtype(tiny_dir, tmp_path, capsys):
    one_line(*cli(capsys, *base(tiny_dir, tmp_path / "s"), "--dtype", "int8")[::2], "int8", "float16")


@pytest.mark.slow
def test_kill_9_the_command_mid_run_then_resume(tiny_dir, tmp_path, capsys):
    tokens = 64 * 4 * 300
    ref_args = base(tiny_dir, tmp_path / "ref", tokens=tokens)
    assert cli(capsys, *ref_args)[0] == 0
    out = tmp_path / "killed"
    exe = Path(sys.executable).parent / "shoestring"
    cmd = [str(exe), *map(str, base(tiny_dir, out, tokens=tokens))]
    kill_after_shards(cmd, out, 5, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = Manifest.load(out)
    assert killed.status == "running" and 5 <= len(killed.shards) < 150
    code, stdout, _ = cli(capsys, *base(tiny_dir, out, tokens=tokens))  # the same command resumes
    assert code == 0 and json.loads(stdout)["status"] == "done"
    ref, got = Manifest.load(tmp_path / "ref"), Manifest.load(out)
    assert [s.checksum for s in got.shards] == [s.checksum for s in ref.shards]
    a, b = ActivationStore(tmp_path / "ref"), ActivationStore(out)
    assert len(a) == len(b) == tokens and (a.tokens() == b.tokens()).all()
