"""A tiny offline lm-evaluation-harness task (a YAML and a JSON-lines file), for the pruning tests."""

from __future__ import annotations

import json

ITEMS = [("The cat sat on the", ["mat", "ocean floor of seven"]), ("One, two, three,", ["four", "purple"]),
         ("import numpy as", ["np", "the king"]), ("Good morning, how are", ["you", "tables"])]


def local_task(folder, data_file=None):
    """A multiple-choice task reading a JSON-lines file (no network): answer 0 is the likely continuation."""
    data = folder / "items.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": 0}) + "\n" for q, c in ITEMS))
    (folder / "tiny_mc.yaml").write_text(f"""task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file or data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""")
    return folder
