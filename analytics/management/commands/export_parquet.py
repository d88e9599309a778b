"""Export tenants, users and documents to Parquet under system/exports/ in object storage."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from analytics import exports


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
        run = exports.export_run(chunk_size=chunk_size, progress=None if quiet else self._progress)
        for name, table in run.tables.items():
            self.stdout.write(f"{name}: {table['rows']} rows -> {table['key']}")
        self.stdout.write(self.style.SUCCESS(f"export {run.run_id} complete"))
        for run_id in exports.export_prune(keep=keep):
            self.stdout.write(f"deleted old export {run_id}")

    def _progress(self, table: str, done: int, total: int) -> None:
        percent = 100 if total == 0 else done * 100 // total
        bar = "#" * (percent // 5)
        self.stderr.write(f"\r{table:<10} [{bar:<20}] {percent:3d}% {done}/{total}", ending="")
        if done >= total:
            self.stderr.write("")
