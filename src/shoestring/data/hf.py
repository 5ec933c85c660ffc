"""Hugging Face datasets: folders written by ``Dataset.save_to_disk`` and ``hf:org/name`` hub datasets.

Both need the optional ``datasets`` package; the hub also needs network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import ShoestringError
from .tables import _as_text, missing_column


def is_saved_dataset(folder: Path) -> bool:
    """Whether ``folder`` was written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return (folder / "dataset_dict.json").is_file() or (
        (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file())


def _datasets(what: str):
    try:
        import datasets
    except ImportError:
        raise ShoestringError(f"{what} needs the Hugging Face `datasets` package, which is not installed",
                              "run `pip install datasets`") from None
    return datasets


def _rows(ds, where: str, column: str, batch_rows: int = 1000) -> Iterator[tuple[str, str]]:
    if column not in (ds.column_names or []):
        raise missing_column(where, column, ds.column_names or [])
    row = 0
    for batch in ds.select_columns([column]).iter(batch_size=batch_rows):
        for value in batch[column]:
            text = _as_text(value)
            if text.strip():
                yield f"{where}#{row}", text
            row += 1


def saved_dataset(folder: Path, column: str) -> Iterator[tuple[str, str]]:
    """Rows of a saved dataset; for a ``DatasetDict``, its ``train`` split (or its only split)."""
    datasets = _datasets(f"reading the saved dataset {folder}")
    ds = datasets.load_from_disk(str(folder))
    where = str(folder)
    if isinstance(ds, datasets.DatasetDict):
        splits = sorted(ds.keys())
        name = "train" if "train" in splits else splits[0] if len(splits) == 1 else None
        if name is None:
            raise ShoestringError(f"{folder} holds the splits {', '.join(splits)} and none is 'train'",
                                  f"point at one split's folder, e.g. {folder / splits[0]}")
        ds, where = ds[name], f"{folder}/{name}"
    yield from _rows(ds, where, column)


def hub_dataset(name: str, column: str, builtins: list[str]) -> Iterator[tuple[str, str]]:
    """Rows of the ``train`` split of hub dataset ``name``, streamed (needs network)."""
    offline = f"offline, use a built-in corpus: {', '.join(builtins)}"
    try:
        import datasets
    except ImportError:
        raise ShoestringError(f"hf:{name} needs the `datasets` package and network",
                              f"run `pip install datasets`; {offline}") from None
    try:
        ds = datasets.load_dataset(name, split="train", streaming=True)
        first = next(iter(ds), None)
    except Exception as e:  # offline, unknown name, gated: all surface as one line
        raise ShoestringError(f"could not load hf:{name} from the Hugging Face hub ({type(e).__name__})",
                              f"check the name and the network; {offline}") from None
    if first is not None and column not in first:
        raise missing_column(f"hf:{name}", column, list(first))
    for row, example in enumerate(ds):
        text = _as_text(example.get(column))
        if text.strip():
            yield f"hf:{name}#{row}", text
