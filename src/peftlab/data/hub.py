"""A task's records from any dataset 🤗 ``datasets`` can read: ``data.source``, ``data.columns``, ``data.splits``.

::

    load_source_split(data_config, split, required, loader=None) -> list[dict]   # records as the task reads them
    load_rows(source, split) -> datasets.Dataset
    NamedLoader(name, hub_id, licence, columns, convert, splits={}, subset=None)

``data.loader`` names one of the studies' datasets: a :class:`NamedLoader`, declared by the task whose
records it makes (``Task.loaders``; the registry is :func:`peftlab.tasks.get_loader`), converts its schema;
``data.source`` then defaults to its hub id and may be a local copy in that schema.

``data.source`` is a local ``.json``/``.jsonl``/``.parquet``/``.csv`` file (its one split is ``train``), a
directory of such files named after their splits (``train.parquet``, ``test.parquet``, ...), or a hub id
(loaded from the Hub or the local HF cache; offline and unknown ids are one-line errors). ``data.splits``
names the source split for each of peftlab's ``train``/``validation``/``test``, in ``datasets``' own split
syntax, so one file can serve all three (``test: "train[90%:]"``). ``data.columns`` maps a record key the
task reads (``instruction``, ``reference``, ``id``) to the source's column. Sizes (``data.train_size``...)
apply afterwards, as for ``data.dir``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from peftlab.errors import UserError, first_line

BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
"""File suffix -> the ``datasets`` builder that reads it."""


@dataclass(frozen=True)
class NamedLoader:
    """One of the studies' datasets by name (``data.loader``): where it is and how a row of its published
    schema becomes a record of the task that declares it (``Task.loaders``)."""

    name: str
    hub_id: str
    licence: str
    columns: tuple[str, ...]
    """Source columns the loader reads (checked before any row is converted)."""
    convert: Callable[[dict, int], dict | None]
    """One source row (and its index) -> a record, or None to leave the row out."""
    splits: dict[str, str] = field(default_factory=dict)
    """peftlab split -> source split (datasets' syntax), where it is not the same name."""
    subset: str | None = None
    """The hub dataset's default configuration (``data.subset`` overrides it)."""


def _load_arguments(source: str) -> dict:
    path = Path(source).expanduser()
    if path.is_file():
        builder = BUILDERS.get(path.suffix)
        if builder is None:
            raise UserError(f"data.source {source}: cannot read '{path.suffix}' files; use one of {', '.join(BUILDERS)}")
        return {"path": builder, "data_files": {"train": str(path)}}
    if path.is_dir():
        files = {item.stem: item for item in sorted(path.iterdir()) if item.suffix in BUILDERS}
        builders = {BUILDERS[item.suffix] for item in files.values()}
        if not files or len(builders) > 1:
            raise UserError(f"data.source {source}: a directory needs split files of one type "
                            f"(train.parquet, test.parquet, ...); found {sorted(item.name for item in files.values())}")
        return {"path": builders.pop(), "data_files": {stem: str(item) for stem, item in files.items()}}
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise UserError(f"data.source {source}: no such file or directory")
    return {"path": source}  # a hub id


def load_rows(source: str, split: str, subset: str | None = None):
    """Split ``split`` (datasets' syntax) of ``source`` as a ``datasets.Dataset``; ``subset`` is the hub
    dataset's configuration (ignored for local files, which have none)."""
    if importlib.util.find_spec("datasets") is None:
        raise UserError("data.source needs the datasets package: pip install 'peftlab[datasets]'")
    import datasets

    arguments = _load_arguments(source)
    if subset and "data_files" not in arguments:
        arguments["name"] = subset
    try:
        return datasets.load_dataset(**arguments, split=split)
    except ValueError as error:  # an unknown split or a bad slice
        raise UserError(f"data.source {source}: split '{split}': {first_line(error)} (choose with data.splits."
                        "train/validation/test, e.g. data.splits.test='train[90%:]')") from None
    except (FileNotFoundError, ConnectionError, OSError) as error:
        raise UserError(f"data.source {source}: cannot load it (offline, or no such dataset?): {first_line(error)}") from None


def load_source_split(data_config, split: str, required: dict[str, type],
                      loader: NamedLoader | None = None) -> list[dict]:
    """The records of peftlab split ``split`` (train, validation or test) from ``data.source``, each with
    the ``required`` keys (of those types) taken from their mapped columns; other columns are kept. With
    ``loader`` (the task's loader that ``data.loader`` names), its schema converted instead.

    Raises:
        UserError: no ``datasets`` package, an unreadable source, a missing split or column, a wrong type.
    """
    if loader is not None:
        return _named(loader, data_config, split)
    source = data_config.source
    rows = load_rows(source, data_config.splits.get(split, split), data_config.subset)
    names = list(rows.column_names)
    mapping = {key: data_config.columns.get(key, key) for key in (*required, "id")}
    for key, column in mapping.items():
        if column not in names and (key in required or key in data_config.columns):
            raise UserError(f"data.source {source}: no column '{column}' for '{key}' (columns: {', '.join(names)}; "
                            f"map one with data.columns.{key}=COLUMN)")
    records = []
    for index, row in enumerate(rows):
        record = {**row, **{key: row[column] for key, column in mapping.items() if column in row}}
        for key, kind in required.items():
            if not isinstance(record[key], kind):
                raise UserError(f"data.source {source} ({split}) row {index + 1}: '{mapping[key]}' must be "
                                f"{kind.__name__}, got {type(record[key]).__name__}")
        if "id" in record and not isinstance(record["id"], str):
            record["id"] = str(record["id"])
        records.append(record)
    return records


def _named(loader: NamedLoader, data_config, split: str) -> list[dict]:
    source = data_config.source or loader.hub_id
    split_name = data_config.splits.get(split) or loader.splits.get(split, split)
    rows = load_rows(source, split_name, data_config.subset or loader.subset)
    return loader_records(loader, rows, source)


def loader_records(loader: NamedLoader, rows, source: str) -> list[dict]:
    """The records of ``rows`` (a ``datasets.Dataset`` in the loader's schema).

    Raises:
        UserError: a column of the schema is missing (the source is not in this loader's schema).
    """
    missing = [column for column in loader.columns if column not in rows.column_names]
    if missing:
        raise UserError(f"data.source {source} is not in the {loader.name} schema: no column "
                        f"{', '.join(missing)} (columns: {', '.join(rows.column_names)})")
    return [record for index, row in enumerate(rows) if (record := loader.convert(row, index)) is not None]
