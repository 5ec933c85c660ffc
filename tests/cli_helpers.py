"""Shared plumbing of the CLI tests: run `shoestring` in-process, check one-line errors, a tiny model folder."""

from __future__ import annotations

import pytest
import torch
import transformers as T

from shoestring.cli.main import main


def cli(capsys, *argv):
    """Run ``shoestring ARGV`` in this process: ``(exit code, stdout, stderr)``."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def one_line(code, err, *words):
    """Exit code 2 and exactly one ``shoestring: error:`` line that names every word of ``words``."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("shoestring: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


def tiny_smol_dir(folder):
    """Save a tiny random Llama with the bundled SmolLM2 tokenizer (real tokenisation, millisecond forwards)."""
    from shoestring.models.bundled import cached_dir

    tok = T.AutoTokenizer.from_pretrained(cached_dir())
    torch.manual_seed(0)
    cfg = T.LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        num_key_value_heads=2, intermediate_size=64, bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id)
    T.AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
