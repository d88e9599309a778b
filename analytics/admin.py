"""Staff admin: the event outbox (see what waits or was set aside, requeue, deliver now), the
batches on their way to ClickHouse, and the workbench audit."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest

from analytics import services
from analytics.models import WorkbenchQuery
from metis.admin_readonly import ReadOnlyAdminMixin
from metis.events.models import EventOutbox, EventOutboxBatch, OutboxStatus
from tenants.admin import TenantOwnedAdmin


@admin.register(EventOutbox)
class EventOutboxAdmin(TenantOwnedAdmin):
    list_display = ["occurred_at", "event_type", "status", "attempts", "short_error"]
    list_filter = ["status", "event_type"]
    search_fields = ["event_type", "last_error"]
    actions = ["requeue_rejected", "deliver_now"]
    readonly_fields = [f.name for f in EventOutbox._meta.fields if f.name != "tenant"]

    @admin.display(description="last error")
    def short_error(self, obj: EventOutbox) -> str:
        return obj.last_error[:120]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # events come from record_event only

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Requeue the selected rejected events (after fixing the cause)")
    def requeue_rejected(self, request: HttpRequest, queryset) -> None:
        if request.staff_tenant is None:
            messages.error(request, "Choose one tenant context to requeue its events.")
            return
        ids = list(queryset.filter(status=OutboxStatus.REJECTED).values_list("pk", flat=True))
        count = services.outbox_requeue_rejected(tenant_id=request.staff_tenant.pk, ids=ids)
        messages.success(request, f"Requeued {count} events.")

    @admin.action(description="Deliver this tenant's pending events now")
    def deliver_now(self, request: HttpRequest, queryset) -> None:
        from analytics import tasks

        if request.staff_tenant is None:
            messages.error(request, "Choose one tenant context first.")
            return
        tenant_id = str(request.staff_tenant.pk)
        transaction.on_commit(lambda: tasks.drain_tenant_outbox.delay(tenant_id))
        messages.success(request, "Delivery queued; the worker sends the events shortly.")


@admin.register(EventOutboxBatch)
class EventOutboxBatchAdmin(ReadOnlyAdminMixin, TenantOwnedAdmin):
    """Events the drain claimed and has not delivered yet: read-only (the drain settles them)."""

    list_display = ["token", "oldest_at", "size", "claimed_at", "attempts", "short_error"]
    fields = ["token", "oldest_at", "size", "claimed_at", "attempts", "last_error"]
    readonly_fields = fields

    @admin.display(description="last error")
    def short_error(self, obj: EventOutboxBatch) -> str:
        return obj.last_error[:120]


# --- DuckDB SQL workbench audit ---------------------------------------------------------------
@admin.register(WorkbenchQuery)
class WorkbenchQueryAdmin(admin.ModelAdmin):
    """The audit of workbench runs: read-only, nobody edits or deletes it here."""

    list_display = ("started_at", "staff", "status", "row_count", "duration_ms", "short_sql")
    list_filter = ("status",)
    search_fields = ("sql", "staff__username")
    readonly_fields = [field.name for field in WorkbenchQuery._meta.fields]
    change_list_template = "analytics/workbench_audit_change_list.html"

    @admin.display(description="SQL")
    def short_sql(self, obj: WorkbenchQuery) -> str:
        return obj.sql if len(obj.sql) <= 80 else obj.sql[:77] + "..."

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
