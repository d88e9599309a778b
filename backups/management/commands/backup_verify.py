"""Verify a backup (checksums of every file, then a restore test); only then is it good."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.management.commands import _common
from backups.models import BackupRun, JobStatus
from backups.services import object_backups, physical


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("--run", type=int, help="Catalog id (default: newest unverified).")
        parser.add_argument("--no-restore-test", action="store_true")

    def handle(self, *args, run: int | None, no_restore_test: bool, **options) -> None:
        finished = BackupRun.objects.filter(status=JobStatus.SUCCEEDED, expired_at__isnull=True)
        backup = finished.filter(pk=run).first() if run else finished.filter(verified=False).first()
        if backup is None:
            raise CommandError("no such finished backup" if run else "nothing left to verify")
        try:
            if backup.kind in object_backups.OBJECT_KINDS:
                object_backups.object_backup_verify(run=backup)
            else:
                physical.backup_verify(
                    run=backup,
                    restore_test=not no_restore_test,
                    on_progress=_common.progress(self, "restore test").update,
                )
        except _common.EXPECTED_ERRORS as exc:
            raise _common.fail(exc) from exc
        verdict = "GOOD" if backup.is_good() else "NOT GOOD"
        self.stdout.write(
            f"{backup}: verified={backup.verified} "
            f"restore_tested={backup.restore_tested} -> {verdict}"
        )
        if not backup.verified:
            raise CommandError(backup.error[:2000])
