"""Export tenants, users and documents to Parquet under system/exports/ in object storage."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

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
        parser.add_argument("--quiet", action="store_true", help="no progress on stderr")

    def handle(self, *args, chunk_size: int, quiet: bool, **options) -> None:
        if chunk_size < 1:
            self.stderr.write("--chunk-size must be at least 1")
            sys.exit(2)
        run = exports.export_run(chunk_size=chunk_size, progress=None if quiet else self._progress)
        for name, table in run.tables.items():
            self.stdout.write(f"{name}: {table['rows']} rows -> {table['key']}")
        self.stdout.write(self.style.SUCCESS(f"export {run.run_id} complete"))

    def _progress(self, table: str, done: int, total: int) -> None:
        percent = 100 if total == 0 else done * 100 // total
        bar = "#" * (percent // 5)
        self.stderr.write(f"\r{table:<10} [{bar:<20}] {percent:3d}% {done}/{total}", ending="")
        if done >= total:
            self.stderr.write("")
