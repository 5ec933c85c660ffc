"""`shoestring observe tuned-lens`: fit, save, evaluate; bad input is one line."""

from __future__ import annotations

import json

import pytest

from cli_helpers import cli as _run, one_line as _one_line
from shoestring.observe import TunedLens


def test_bad_inputs_are_one_line(capsys, tmp_path):
    code, _, err = _run(capsys, "observe", "tuned-lens", "smollm2-135m", "--out", str(tmp_path), "--val-fraction", "1.5")
    _one_line(code, err, "--val-fraction 1.5", "0.1")
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, "observe", "lens", "smollm2-135m", "The capital", "--tuned-lens", str(tmp_path / "empty"))
    if "No such option" not in err:  # the --tuned-lens option of `observe lens`
        _one_line(code, err, "holds no tuned lens", "shoestring observe tuned-lens")


@pytest.mark.slow
def test_fit_and_evaluate_on_smollm2(capsys, tmp_path):
    out = tmp_path / "lens"
    code, text, _ = _run(capsys, "observe", "tuned-lens", "smollm2-135m", "--out", str(out), "--corpus", "stdlib-prose",
                         "--tokens", "3000", "--eval-tokens", "256", "--context-length", "128", "--json")
    data = json.loads(text)
    assert code == 0 and data["fit"]["tokens"] == 3000
    kl = data["eval"]
    assert len(kl["logit"]["kl"]) == 30 and kl["tuned"]["kl"][-1] == pytest.approx(0.0, abs=1e-3)
    # even 3k tokens of fitting beat the logit lens on held-out text at most layers
    assert len(kl["tuned_beats_logit_layers"]) >= 20
    assert TunedLens.load(out).n_layers == 30 and (out / "eval.json").is_file()
