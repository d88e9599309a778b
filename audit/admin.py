"""Staff search the audit log in the admin: read-only. In a tenant's context it shows that
tenant's rows; in the all-tenants mode every tenant's and the system chain, through the staff
read role (tenants/routers.py), as every tenant table does."""

from __future__ import annotations

from django.contrib import admin

from audit.models import AuditEntry
from tenants import admin as tenants_admin


@admin.register(AuditEntry)
class AuditEntryAdmin(tenants_admin.ReplicaChangelistMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "tenant_id",
        "seq",
        "action",
        "actor_type",
        "actor_id",
        "target_type",
        "target_id",
        "ip_address",
    )
    list_filter = ("actor_type", "target_type")
    search_fields = ("=action", "=actor_id", "=target_id", "=ip_address", "=request_id")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
