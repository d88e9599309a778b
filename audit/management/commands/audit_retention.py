"""manage.py audit_retention [--dry-run]: export each month past AUDIT_RETENTION_DAYS to
Parquet in object storage, verify the stored copy, record the chains' cuts, drop the month."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from audit import retention


class Command(BaseCommand):
    help = "Archive and drop the audit log's months past AUDIT_RETENTION_DAYS (the daily task)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="only list the months that are due"
        )

    def handle(self, *args, dry_run=False, **options):
        try:
            done = retention.retention_run(report=self.stdout.write, dry_run=dry_run)
        except retention.RetentionRefused as exc:
            raise CommandError(f"audit_retention: {exc}", returncode=1) from exc
        if not dry_run:
            self.stdout.write(self.style.SUCCESS(f"audit_retention: {len(done)} month(s) cut"))
