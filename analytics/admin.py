"""Admin for analytics."""

from django.contrib import admin

from analytics.models import WorkbenchQuery


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
