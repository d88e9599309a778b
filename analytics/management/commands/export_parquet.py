"""Export tenants, users and documents to Parquet under system/exports/ in object storage."""

from __future__ import annotations

from typing import TextIO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from analytics import exports


class TableBars:
    """The export's progress callback: one tqdm bar per table, drawn only on a terminal.

    A table's bar closes when the next table starts, or at close() after the last one.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bar: tqdm | None = None
        self.table = ""

    def __call__(self, table: str, done: int, total: int) -> None:
        if self.bar is None or self.table != table:
            self.close()
            self.table = table
            self.bar = tqdm(total=total, desc=table, file=self.stream, disable=None, unit="row")
        self.bar.total = total  # rows written while counting make it grow
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Command(BaseCommand):
    help = "Export tenants, users and documents from PostgreSQL to Parquet in object storage."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=exports.DEFAULT_CHUNK_SIZE,
            help="rows read and written per page (default %(default)s)",
        )
        parser.add_argument(
            "--keep",
            type=int,
            default=None,
            help="then delete all but this many newest runs (default DUCKDB_EXPORT_KEEP_RUNS)",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress on stderr")

    def handle(self, *args, chunk_size: int, keep: int | None, quiet: bool, **options) -> None:
        keep = settings.DUCKDB_EXPORT_KEEP_RUNS if keep is None else keep
        if chunk_size < 1 or keep < 1:
            raise CommandError("--chunk-size and --keep must be at least 1")
        bars = TableBars(self.stderr._out)
        try:
            run = exports.export_run(chunk_size=chunk_size, progress=None if quiet else bars)
        finally:
            bars.close()
        for name, table in run.tables.items():
            self.stdout.write(f"{name}: {table['rows']} rows -> {table['key']}")
        self.stdout.write(self.style.SUCCESS(f"export {run.run_id} complete"))
        for run_id in exports.export_prune(keep=keep):
            self.stdout.write(f"deleted old export {run_id}")
