"""Every source kind on small files written to tmp_path: text, lines, folder, glob, JSONL, CSV, Parquet, HF."""

from __future__ import annotations

import csv
import json
import sys

import pytest

pytest_plugins = ["data_fixtures"]  # fixtures: tok, texts, text_dir, jsonl_file

from shoestring.data import Document, load_corpus


def test_text_file_is_one_document(tmp_path, texts):
    path = tmp_path / "a.txt"
    path.write_text(texts[1])
    docs = list(load_corpus(str(path)))
    assert docs == [Document(0, texts[1], str(path))]


def test_split_lines_skips_blank_lines(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("first line\n\n  \nsecond line\nthird\n")
    docs = list(load_corpus(str(path), split_lines=True))
    assert [d.text for d in docs] == ["first line", "second line", "third"]
    assert [d.source for d in docs] == [f"{path}:1", f"{path}:4", f"{path}:5"]
    assert [d.id for d in docs] == [0, 1, 2]


def test_folder_reads_txt_and_md_sorted_recursively(text_dir, texts):
    docs = list(load_corpus(str(text_dir)))
    names = [d.source.split("notes/")[1] for d in docs]
    assert names == ["n0.txt", "n1.txt", "n2.txt", "n3.txt", "n4.md", "sub/n5.txt"]  # no .json, no hidden file
    assert [d.text for d in docs] == texts
    assert [d.id for d in docs] == list(range(6))


def test_glob_matches_sorted(text_dir, texts):
    docs = list(load_corpus(str(text_dir / "*.txt")))
    assert [d.text for d in docs] == texts[:4]
    deep = list(load_corpus(str(text_dir / "**" / "*.txt")))
    assert [d.text for d in deep] == texts[:4] + [texts[5]]


def test_glob_mixes_kinds(tmp_path, texts, jsonl_file):
    (tmp_path / "z.txt").write_text("plain text file")
    docs = list(load_corpus(str(tmp_path / "*"), text_column="body"))
    assert [d.text for d in docs] == texts + ["plain text file"]


def test_jsonl(jsonl_file, texts):
    docs = list(load_corpus(str(jsonl_file), text_column="body"))
    assert [d.text for d in docs] == texts
    assert docs[2].source == f"{jsonl_file}:3"


def test_jsonl_skips_blank_lines_and_empty_texts(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": ""}\n{"text": null}\n{"text": "b"}\n')
    assert [(d.id, d.text, d.source) for d in load_corpus(str(path))] == [(0, "a", f"{path}:1"), (1, "b", f"{path}:5")]


@pytest.mark.parametrize("suffix,delimiter", [(".csv", ","), (".tsv", "\t")])
def test_csv(tmp_path, texts, suffix, delimiter):
    path = tmp_path / f"docs{suffix}"
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(["title", "content"])
        w.writerows([f"t{i}", t] for i, t in enumerate(texts))
    docs = list(load_corpus(str(path), text_column="content"))
    assert [d.text for d in docs] == texts  # embedded newlines and commas survive
    assert docs[0].source == f"{path}:1"


def test_parquet(tmp_path, texts):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"n": list(range(len(texts))), "text": texts}), path, row_group_size=2)
    docs = list(load_corpus(str(path)))
    assert [d.text for d in docs] == texts
    assert docs[3].source == f"{path}#3"


def test_limit_docs(text_dir, texts):
    corpus = load_corpus(str(text_dir), limit_docs=2)
    assert [d.text for d in corpus] == texts[:2] and len(corpus) == 2


def test_corpus_is_reiterable_and_deterministic(jsonl_file):
    corpus = load_corpus(str(jsonl_file), text_column="body")
    assert list(corpus) == list(corpus) == list(load_corpus(str(jsonl_file), text_column="body"))


def test_saved_hf_dataset(tmp_path, texts):
    datasets = pytest.importorskip("datasets", reason="the optional `datasets` package is not installed")
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(tmp_path / "ds"))
    assert [d.text for d in load_corpus(str(tmp_path / "ds"))] == texts
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts[:2]})}).save_to_disk(str(tmp_path / "dd"))
    assert [d.text for d in load_corpus(str(tmp_path / "dd"))] == texts[:2]


def test_saved_hf_dataset_without_datasets_says_pip_install(tmp_path, monkeypatch):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"_data_files": []}))
    (folder / "dataset_info.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(Exception) as err:
        load_corpus(str(folder))
    assert type(err.value).__name__ == "ShoestringError" and "pip install datasets" in str(err.value)


def test_hub_offline_names_the_builtins(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(Exception) as err:
        load_corpus("hf:someone/some-dataset")
    msg = str(err.value)
    assert "\n" not in msg and "stdlib-code" in msg and "austen" in msg and "pip install datasets" in msg
