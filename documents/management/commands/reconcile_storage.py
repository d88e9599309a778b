"""Report (and with --repair fix) drift between the object store and the document rows."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from documents import reconcile


class Command(BaseCommand):
    help = (
        "Find objects under tenants/ without rows, rows without objects, and stale multipart "
        "uploads; --repair deletes the orphans, drops the rows, aborts the uploads."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repair", action="store_true", help="fix what is found")
        parser.add_argument(
            "--min-age-minutes",
            type=int,
            default=60,
            help="leave objects and uploads younger than this (an upload may be committing)",
        )

    def handle(self, *args, repair: bool, min_age_minutes: int, **options):
        drift = reconcile.storage_drift_find(
            min_age=timedelta(minutes=min_age_minutes), stream=self.stderr._out
        )
        for key in drift.objects_without_rows:
            self.stdout.write(f"object without row: {key}")
        for tenant_id, document_id, number, key in drift.rows_without_objects:
            self.stdout.write(
                f"row without object: tenant {tenant_id} document {document_id} v{number} {key}"
            )
        for key, upload_id in drift.stale_uploads:
            self.stdout.write(f"stale multipart upload: {key} ({upload_id})")
        summary = (
            f"{len(drift.objects_without_rows)} object(s) without rows, "
            f"{len(drift.rows_without_objects)} row(s) without objects, "
            f"{len(drift.stale_uploads)} stale upload(s)"
        )
        if not drift:
            self.stdout.write(self.style.SUCCESS("No drift: " + summary))
            return
        if not repair:
            raise CommandError(f"Drift found: {summary}. Run again with --repair to fix it.")
        reconcile.storage_drift_repair(drift=drift, stream=self.stderr._out)
        self.stdout.write(self.style.SUCCESS(f"Repaired: {summary}"))
