"""Chunked column tables: append rows in memory, stream them to a directory, read them back.

A :class:`ChunkedTable` holds equal-length numpy columns (1-D, or 2-D such as a weight matrix
[n, r]). Rows are appended as arrays (no per-row Python work); with a directory attached they
are written as numbered ``.npz`` chunks and dropped from memory, so a long run keeps bounded
memory. The on-disk layout, one folder per table::

    <folder>/index.json      {"columns": {name: [dtype, trailing shape]}, "chunks": [{"file",
                              "rows"}], "meta": {...}}; rewritten (atomically) after each chunk
    <folder>/000000.npz      one chunk: an array per column, same row count (no pickles)

A chunk file not named in ``index.json`` (left by a crash between the two writes) is ignored
and overwritten later. Pandas reads a table as ``pandas.DataFrame(ChunkedTable.open(folder)
.read())`` for 1-D columns, or with :meth:`ChunkedTable.to_frame`.

API (what an incremental checkpoint needs):

* ``ChunkedTable(columns, directory=None)`` / ``ChunkedTable.open(directory)``: create / reopen,
* ``append(**arrays)``, ``flush()`` (write pending rows as one chunk; a no-op without a folder),
* ``length`` (rows written plus rows pending), ``truncate(n)`` (keep the first ``n`` rows, on
  disk and in memory: roll back to a checkpoint's row count), ``read(names=None, start=0,
  stop=None)`` (concatenated columns).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chemistry.storage import write_atomically

__all__ = ["ChunkedTable", "FLUSH_ROWS"]

#: Pending rows that trigger an automatic flush when a directory is attached.
FLUSH_ROWS = 1 << 20
INDEX = "index.json"


def _spec(array: np.ndarray) -> list[Any]:
    return [array.dtype.str, list(array.shape[1:])]


class ChunkedTable:
    """Equal-length columns, appended in chunks, optionally streamed to ``directory``.

    Args:
        columns: ``{name: (dtype, trailing shape)}``, e.g. ``{"uid": (np.int64, ()),
            "weights": (np.float32, (14,))}``.
        directory: the table's folder (created), or None to keep every row in memory until
            :meth:`attach` is called.
        flush_rows: pending rows that trigger an automatic :meth:`flush` (with a directory).
        meta: JSON-serialisable facts saved with the index (e.g. the names behind codes).
    """

    def __init__(
        self,
        columns: Mapping[str, tuple[Any, Sequence[int]]],
        directory: str | os.PathLike | None = None,
        *,
        flush_rows: int = FLUSH_ROWS,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.columns = {
            name: (np.dtype(dtype), tuple(int(s) for s in shape))
            for name, (dtype, shape) in columns.items()
        }
        self.flush_rows = int(flush_rows)
        self.meta: dict[str, Any] = dict(meta or {})
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0
        self._chunks: list[dict[str, Any]] = []
        self._written_rows = 0
        self.directory: Path | None = None
        if directory is not None:
            self.attach(directory)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, directory: str | os.PathLike) -> ChunkedTable:
        """Reopen a table written to ``directory`` (only the chunks its index names count).

        Raises:
            ValueError: if the folder holds no readable ``index.json``.
        """
        directory = Path(directory)
        try:
            index = json.loads((directory / INDEX).read_text(encoding="utf-8"))
            columns = {name: (dtype, shape) for name, (dtype, shape) in index["columns"].items()}
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{directory} holds no readable chunked table ({error})") from None
        table = cls(columns, meta=index.get("meta"))
        table.directory = directory
        table._chunks = list(index["chunks"])
        table._written_rows = sum(int(chunk["rows"]) for chunk in table._chunks)
        return table

    def attach(self, directory: str | os.PathLike) -> None:
        """Stream to ``directory`` from now on; rows held in memory are written at once.

        An existing table in the folder is replaced; attaching to the folder already attached
        only flushes.
        """
        directory = Path(directory)
        if self.directory is not None and self.directory.resolve() == directory.resolve():
            self.flush(force_index=True)
            return
        directory.mkdir(parents=True, exist_ok=True)
        if self.directory is not None and self._written_rows:
            self._pending.insert(0, self._read_written())
            self._pending_rows += self._written_rows
        self.directory = directory
        self._chunks, self._written_rows = [], 0
        self.flush(force_index=True)

    # ------------------------------------------------------------------ writing

    def append(self, **arrays: Any) -> None:
        """Append rows: one array per column, equal lengths (dtypes are converted).

        Raises:
            ValueError: for a missing or unknown column, or columns of different lengths.
        """
        if set(arrays) != set(self.columns):
            raise ValueError(
                f"append needs exactly the columns {sorted(self.columns)}, got {sorted(arrays)}"
            )
        chunk = {}
        rows = None
        for name, (dtype, shape) in self.columns.items():
            array = np.asarray(arrays[name], dtype=dtype)
            if array.ndim == 0:
                array = array.reshape(1)
            if array.shape[1:] != shape:
                raise ValueError(f"column {name!r} needs rows of shape {shape}, got {array.shape}")
            if rows is None:
                rows = len(array)
            elif len(array) != rows:
                raise ValueError(f"column {name!r} has {len(array)} rows, expected {rows}")
            chunk[name] = array
        if not rows:
            return
        self._pending.append(chunk)
        self._pending_rows += rows
        if self.directory is not None and self._pending_rows >= self.flush_rows:
            self.flush()

    def flush(self, *, force_index: bool = False) -> None:
        """Write the pending rows as one chunk file and update the index (needs a directory)."""
        if self.directory is None:
            if len(self._pending) > 64:  # keep the list short: merge into one block
                self._pending = [self._merged(self._pending)]
            return
        if self._pending_rows:
            merged = self._merged(self._pending)
            name = f"{len(self._chunks):06d}.npz"

            def save(temporary: str) -> None:
                with open(temporary, "wb") as handle:
                    np.savez(handle, **merged)

            write_atomically(self.directory / name, save)
            self._chunks.append({"file": name, "rows": self._pending_rows})
            self._written_rows += self._pending_rows
            self._pending, self._pending_rows = [], 0
        elif not force_index:
            return
        self._write_index()

    def _write_index(self) -> None:
        assert self.directory is not None
        index = {
            "columns": {
                name: _spec(np.empty((0, *shape), dtype))
                for name, (dtype, shape) in self.columns.items()
            },
            "chunks": self._chunks,
            "meta": self.meta,
        }
        text = json.dumps(index, indent=1, sort_keys=True)

        def write(temporary: str) -> None:
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(text)

        write_atomically(self.directory / INDEX, write)

    def truncate(self, rows: int) -> None:
        """Keep only the first ``rows`` rows (in memory and on disk); more rows: no change."""
        rows = max(int(rows), 0)
        if rows >= self.length:
            return
        if rows >= self._written_rows:
            keep = self._merged(self._pending)
            self._pending = [{k: v[: rows - self._written_rows] for k, v in keep.items()}]
            self._pending_rows = rows - self._written_rows
            return
        self._pending, self._pending_rows = [], 0
        kept, total = [], 0
        for chunk in self._chunks:
            if total + chunk["rows"] <= rows:
                kept.append(chunk)
                total += chunk["rows"]
                continue
            if total < rows:  # the chunk that straddles the cut: rewrite its head
                head = self._load(chunk)
                self._pending = [{k: v[: rows - total] for k, v in head.items()}]
                self._pending_rows = rows - total
            break
        assert self.directory is not None
        for chunk in self._chunks[len(kept) :]:
            (self.directory / chunk["file"]).unlink(missing_ok=True)
        self._chunks, self._written_rows = kept, total
        self.flush(force_index=True)

    # ------------------------------------------------------------------ reading

    @property
    def length(self) -> int:
        """Rows in the table: written plus pending."""
        return self._written_rows + self._pending_rows

    def __len__(self) -> int:
        return self.length

    def _load(self, chunk: Mapping[str, Any]) -> dict[str, np.ndarray]:
        assert self.directory is not None
        with np.load(self.directory / chunk["file"], allow_pickle=False) as archive:
            return {name: archive[name] for name in self.columns}

    def _merged(self, parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        if len(parts) == 1:
            return parts[0]
        return {
            name: np.concatenate([p[name] for p in parts])
            if parts
            else np.empty((0, *shape), dtype)
            for name, (dtype, shape) in self.columns.items()
        }

    def _read_written(self) -> dict[str, np.ndarray]:
        return self._merged([self._load(chunk) for chunk in self._chunks])

    def read(
        self, names: Sequence[str] | None = None, start: int = 0, stop: int | None = None
    ) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` of the columns ``names`` (default all), concatenated."""
        names = list(self.columns) if names is None else list(names)
        stop = self.length if stop is None else min(stop, self.length)
        parts, offset = [], 0
        blocks = [(c, c["rows"]) for c in self._chunks] + [
            (p, len(next(iter(p.values())))) for p in self._pending
        ]
        for block, rows in blocks:
            lo, hi = max(start - offset, 0), min(stop - offset, rows)
            if lo < hi:
                data = self._load(block) if "file" in block else block
                parts.append({name: data[name][lo:hi] for name in names})
            offset += rows
        if not parts:
            return {
                name: np.empty((0, *self.columns[name][1]), self.columns[name][0]) for name in names
            }
        return {name: np.concatenate([p[name] for p in parts]) for name in names}

    def to_frame(self) -> Any:
        """The table as a ``pandas.DataFrame`` (a 2-D column becomes ``name_0 .. name_{r-1}``)."""
        import pandas as pd

        data = {}
        for name, values in self.read().items():
            if values.ndim == 1:
                data[name] = values
            else:
                for j in range(values.shape[1]):
                    data[f"{name}_{j}"] = values[:, j]
        return pd.DataFrame(data)
