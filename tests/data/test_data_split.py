"""Split by document (stable, disjoint, covering) and deterministic shuffles."""

from __future__ import annotations

import pytest

from shoestring.data import load_corpus, split
from shoestring.errors import ShoestringError


def write_docs(folder, n, start=0):
    folder.mkdir(exist_ok=True)
    for i in range(start, start + n):
        (folder / f"doc{i:04d}.txt").write_text(f"document number {i}")


def test_split_disjoint_covering_and_near_fraction(tmp_path):
    write_docs(tmp_path / "c", 400)
    corpus = load_corpus(str(tmp_path / "c"))
    train, val = split(corpus, val_fraction=0.25, seed=0)
    t, v = {d.id for d in train}, {d.id for d in val}
    assert not t & v and t | v == {d.id for d in corpus}
    assert 70 <= len(v) <= 130  # 100 expected
    assert [d.id for d in train] == sorted(t)  # order kept


def test_split_is_stable_when_documents_are_added(tmp_path):
    folder = tmp_path / "c"
    write_docs(folder, 100, start=50)
    _, val_before = split(load_corpus(str(folder)), 0.2, seed=3)
    write_docs(folder, 50, start=0)  # new files sort before the old ones: ids shift, sources do not
    _, val_after = split(load_corpus(str(folder)), 0.2, seed=3)
    before = {d.source for d in val_before}
    after = {d.source for d in val_after}
    assert before and before == {s for s in after if int(s[-8:-4]) >= 50}


def test_split_seed_changes_it_deterministically(tmp_path):
    write_docs(tmp_path / "c", 100)
    corpus = load_corpus(str(tmp_path / "c"))
    def ids(c):
        return [d.id for d in c]

    assert ids(split(corpus, 0.3, seed=1)[1]) == ids(split(corpus, 0.3, seed=1)[1])
    assert ids(split(corpus, 0.3, seed=1)[1]) != ids(split(corpus, 0.3, seed=2)[1])
    assert ids(split(corpus, 0.0)[1]) == [] and ids(split(corpus, 1.0)[0]) == []


def test_split_rejects_bad_fraction(tmp_path):
    write_docs(tmp_path / "c", 3)
    with pytest.raises(ShoestringError, match="outside"):
        split(load_corpus(str(tmp_path / "c")), val_fraction=1.5)


@pytest.mark.parametrize("buffer_size", [None, 8])
def test_shuffled_is_a_deterministic_permutation(tmp_path, buffer_size):
    write_docs(tmp_path / "c", 60)
    corpus = load_corpus(str(tmp_path / "c"))
    a = [d.id for d in corpus.shuffled(0, buffer_size)]
    assert sorted(a) == list(range(60)) and a != list(range(60))
    assert a == [d.id for d in corpus.shuffled(0, buffer_size)]  # same seed, same order, on every iteration
    assert a != [d.id for d in corpus.shuffled(1, buffer_size)]


def test_exact_shuffle_keeps_relative_order_when_documents_are_added(tmp_path):
    folder = tmp_path / "c"
    write_docs(folder, 30)
    before = [d.source for d in load_corpus(str(folder)).shuffled(5)]
    write_docs(folder, 10, start=30)
    after = [d.source for d in load_corpus(str(folder)).shuffled(5)]
    assert [s for s in after if s in before] == before
