"""Restore a logical dump into a database, or a tenant export into this database."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.management.commands import _common
from backups.models import BackupKind, BackupRun
from backups.services import logical, tenant_export


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("--run", type=int, required=True, help="Catalog id of the backup.")
        parser.add_argument(
            "--dbname", help="Logical: database to restore into (created if missing)."
        )
        parser.add_argument("--clean", action="store_true", help="Logical: drop objects first.")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Tenant export: replace the tenant's current rows.",
        )

    def handle(self, *args, run: int, dbname: str | None, clean: bool, replace: bool, **options):
        backup = BackupRun.objects.filter(pk=run).first()
        if backup is None:
            raise CommandError(f"no backup run {run}")
        try:
            if backup.kind == BackupKind.LOGICAL:
                if not dbname:
                    raise CommandError("--dbname is required for a logical restore")
                logical.logical_restore(
                    run=backup,
                    dbname=dbname,
                    clean=clean,
                    on_progress=_common.progress(self, "pg_restore").update,
                )
                self.stdout.write(f"restored {backup} into {dbname}")
            elif backup.kind == BackupKind.TENANT_EXPORT:
                counts = tenant_export.tenant_restore(run=backup, replace=replace)
                self.stdout.write(f"restored tenant {backup.tenant_id}: {counts}")
            else:
                raise CommandError(f"{backup.kind} backups are restored with `restore`")
        except (*_common.EXPECTED_ERRORS, tenant_export.TenantRestoreRefused) as exc:
            raise _common.fail(exc) from exc
