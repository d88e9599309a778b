"""Archived audit rows read one chain at a time, in bounded memory, whatever the archives' size.

The rows of the given Parquet files go into a DuckDB file on local disk, sorted by chain, then
seq and id (DuckDB sorts out of core). Reading one chain then touches only its row groups (the
zone maps skip the rest), and rows come back in batches as the tuples `chain.ROWS_SQL` gives.
A row stored identically twice (two versions of one archive) is kept once; a different row
under the same seq stays, for the walk to name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb

from audit import archives, chain

_BATCH = 10_000
_COLUMNS = ", ".join(field.name for field in archives.SCHEMA)


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class ArchivedRows:
    """The rows of some archive files, by chain. Use as a context manager."""

    def __init__(self, paths: list[Path], directory: Path) -> None:
        self._db = duckdb.connect(str(directory / "archived.duckdb"))
        self._db.execute("SET TimeZone = 'UTC'")
        self._db.execute(f"SET temp_directory = {_quoted(directory / 'spill')}")
        self._empty = not paths
        if self._empty:
            return
        files = "[" + ", ".join(_quoted(path) for path in paths) + "]"
        self._db.execute(
            f"CREATE TABLE archived AS SELECT DISTINCT {_COLUMNS}, "
            f"coalesce(tenant_id, '') AS chain_key FROM read_parquet({files}) "
            "ORDER BY chain_key, seq, id"
        )

    def __enter__(self) -> ArchivedRows:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._db.close()

    def last_seqs(self) -> dict[str, int]:
        """Each archived chain's name and its highest archived seq."""
        if self._empty:
            return {}
        found = self._db.execute(
            "SELECT any_value(tenant_id), max(seq) FROM archived GROUP BY chain_key"
        ).fetchall()
        return {chain.chain_name(tenant): last for tenant, last in found}

    def rows(self, name: str) -> Iterator[tuple]:
        """One chain's archived rows in (seq, id) order."""
        if self._empty:
            return
        key = "" if name == chain.SYSTEM_CHAIN else name
        reader = self._db.execute(
            f"SELECT {_COLUMNS} FROM archived WHERE chain_key = ? ORDER BY seq, id", [key]
        ).fetch_record_batch(_BATCH)
        for batch in reader:
            batch = batch.cast(archives.SCHEMA) if batch.schema != archives.SCHEMA else batch
            yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)
