"""Backup housekeeping: reap dead runs, check archiving, apply retention, clean old history."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from backups.management.commands import _common
from backups.services import archiving, retention, runs


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["reap", "archive-check", "expire", "cleanup"])

    def handle(self, *args, action: str, **options) -> None:
        try:
            if action == "reap":
                self.stdout.write(f"reaped {runs.jobs_reap()} dead job(s)")
            elif action == "archive-check":
                check = archiving.archive_check_record()
                self.stdout.write(
                    f"{check}: last {check.last_archived_wal} age {check.age_seconds}s"
                )
            elif action == "expire":
                self.stdout.write(f"expired: {retention.retention_apply() or 'nothing'}")
            else:
                self.stdout.write(f"deleted: {runs.history_cleanup()}")
        except _common.EXPECTED_ERRORS as exc:
            raise _common.fail(exc) from exc
