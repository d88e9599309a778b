"""Take a backup now: physical (full/incr/diff), logical, tenant export, analytics, archive copy."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.management.commands import _common
from backups.models import BackupKind
from backups.services import archive_copy, logical, object_backups, physical, tenant_export
from tenants.models import Tenant


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument("kind", choices=[k.value for k in BackupKind])
        parser.add_argument("--tenant", help="Tenant id or subdomain (tenant-export).")
        parser.add_argument("--verify", action="store_true", help="Verify (and restore-test).")
        parser.add_argument(
            "--repo",
            type=int,
            choices=[1, 2],
            default=1,
            help="Repository of a physical backup (2: the second region).",
        )

    def handle(
        self, *args, kind: str, tenant: str | None, verify: bool, repo: int, **options
    ) -> None:
        bar = _common.progress(self, f"backup {kind}")
        try:
            if kind in ("full", "incr", "diff"):
                run = physical.backup_run_physical(kind=kind, repo=repo, on_progress=bar.update)
                if verify:
                    bar.step("verifying and restore-testing")
                    physical.backup_verify(
                        run=run, on_progress=_common.progress(self, "restore test").update
                    )
            elif kind == "logical":
                run = logical.backup_run_logical(on_progress=bar.update)
            elif kind == "tenant-export":
                if not tenant:
                    raise CommandError("--tenant is required for a tenant export")
                found = (
                    Tenant.objects.filter(subdomain=tenant).first()
                    or Tenant.objects.filter(pk=tenant if len(tenant) == 36 else None).first()
                )
                if found is None:
                    raise CommandError(f"no tenant {tenant!r}")
                run = tenant_export.tenant_export(tenant=found, on_progress=bar.update)
            elif kind == "analytics":
                run = _analytics_backup(bar)
            else:
                run = archive_copy.backup_archive_copy()
            if verify and kind in object_backups.OBJECT_KINDS:
                object_backups.object_backup_verify(run=run)
        except _common.EXPECTED_ERRORS as exc:
            raise _common.fail(exc) from exc
        bar.update(100)
        run.refresh_from_db()
        self.stdout.write(
            f"{run.kind} backup {run.label or run.pk}: {run.status}, {run.stored_bytes or 0} bytes "
            f"stored at {run.location}; verified={run.verified} restore_tested={run.restore_tested}"
        )


def _analytics_backup(bar):
    from analytics import clickhouse
    from backups.services import analytics

    with clickhouse.session() as client:
        return analytics.backup_run_analytics(client=client, on_progress=bar.update)
