"""Staff admin for the backup catalog and the retention policy (the dashboard: admin_views.py)."""

from __future__ import annotations

from functools import partial

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat

from backups import tasks
from backups.models import (
    BackupRun,
    FailoverDrill,
    RestoreDrill,
    RetentionPolicy,
    WalArchiveCheck,
)
from tenants import admin as tenants_admin


class ReadOnlyCatalogAdmin(tenants_admin.ReplicaChangelistMixin, admin.ModelAdmin):
    """Catalog rows are written by the jobs only; staff read them (on the replica, if any)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(BackupRun)
class BackupRunAdmin(ReadOnlyCatalogAdmin):
    list_display = [
        "kind",
        "label",
        "repo",
        "status",
        "good",
        "verified",
        "restore_tested",
        "started_at",
        "finished_at",
        "duration",
        "size",
        "stored",
        "short_checksum",
        "location",
        "expired_at",
    ]
    list_filter = ["kind", "repo", "status", "verified", "restore_tested"]
    search_fields = ["label", "location", "checksum"]
    date_hierarchy = "started_at"
    list_select_related = ["tenant"]
    actions = ["verify_selected"]
    change_list_template = "admin/backups/backuprun/change_list.html"

    @admin.display(boolean=True)
    def good(self, obj: BackupRun) -> bool:
        return obj.is_good()

    @admin.display(description="size")
    def size(self, obj: BackupRun) -> str:
        return filesizeformat(obj.size_bytes) if obj.size_bytes is not None else "—"

    @admin.display(description="stored")
    def stored(self, obj: BackupRun) -> str:
        return filesizeformat(obj.stored_bytes) if obj.stored_bytes is not None else "—"

    @admin.display(description="checksum")
    def short_checksum(self, obj: BackupRun) -> str:
        return obj.checksum[:19]

    @admin.action(description="Verify (and restore-test) the selected backups")
    def verify_selected(self, request: HttpRequest, queryset) -> None:
        # Verification restores into a scratch cluster: minutes, so a worker does it.
        ids = list(
            queryset.filter(status="succeeded", expired_at__isnull=True).values_list(
                "pk", flat=True
            )
        )
        for run_id in ids:
            transaction.on_commit(partial(tasks.verify_backup.delay, run_id))
        messages.info(request, f"Verification queued for {len(ids)} backup(s).")


@admin.register(WalArchiveCheck)
class WalArchiveCheckAdmin(ReadOnlyCatalogAdmin):
    list_display = [
        "checked_at",
        "ok",
        "in_repository",
        "last_archived_wal",
        "last_archived_at",
        "age_seconds",
        "failed_count",
        "last_failed_wal",
    ]
    list_filter = ["ok"]
    date_hierarchy = "checked_at"


@admin.register(RestoreDrill)
class RestoreDrillAdmin(ReadOnlyCatalogAdmin):
    list_display = [
        "started_at",
        "repo",
        "status",
        "checks_passed",
        "rto_seconds",
        "rto_target_seconds",
        "rto_ok",
        "rpo_seconds",
        "rpo_target_seconds",
        "rpo_ok",
        "backup",
        "reached_time",
    ]
    list_filter = ["repo", "status", "checks_passed"]
    list_select_related = ["backup"]

    @admin.display(boolean=True, description="RTO met")
    def rto_ok(self, obj: RestoreDrill) -> bool:
        return obj.rto_met()

    @admin.display(boolean=True, description="RPO met")
    def rpo_ok(self, obj: RestoreDrill) -> bool:
        return obj.rpo_met()


@admin.register(FailoverDrill)
class FailoverDrillAdmin(ReadOnlyCatalogAdmin):
    """Failover drills (manage.py failover_drill), beside the restore drills."""

    list_display = [
        "started_at",
        "status",
        "rto_seconds",
        "rto_target_seconds",
        "rto_ok",
        "rpo_transactions_lost",
        "markers_acknowledged",
        "rpo_ok",
        "synchronous_commit",
        "standby_server",
    ]
    list_filter = ["status"]
    readonly_fields = ["steps", "error"]

    @admin.display(boolean=True, description="RTO met")
    def rto_ok(self, obj: FailoverDrill) -> bool:
        return obj.rto_met()

    @admin.display(boolean=True, description="RPO met")
    def rpo_ok(self, obj: FailoverDrill) -> bool:
        return obj.rpo_met()


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "keep_daily", "keep_weekly", "keep_monthly", "is_active", "updated_at"]
