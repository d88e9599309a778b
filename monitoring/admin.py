"""Staff admin for alerts: read, filter, acknowledge. Rows are written by the evaluation only."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from monitoring.alerts import services
from monitoring.models import Alert, AlertNotification


class AlertNotificationInline(admin.TabularInline):
    model = AlertNotification
    fields = readonly_fields = ("event", "channel", "state", "attempts", "sent_at", "last_error")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "severity",
        "rule",
        "subject",
        "state",
        "message",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
        "acknowledged_by",
        "deliveries",
    ]
    list_filter = ["state", "severity", "rule"]
    search_fields = ["rule", "subject", "message"]
    date_hierarchy = "first_seen_at"
    list_select_related = ["acknowledged_by"]
    actions = ["acknowledge"]
    inlines = [AlertNotificationInline]
    readonly_fields = [f.name for f in Alert._meta.fields]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("notifications")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="notified")
    def deliveries(self, obj: Alert) -> str:
        return ", ".join(f"{n.event} {n.channel}: {n.state}" for n in obj.notifications.all())

    @admin.action(description="Acknowledge the selected alerts", permissions=["view"])
    def acknowledge(self, request: HttpRequest, queryset) -> None:
        count = services.alerts_acknowledge(alerts=queryset, user=request.user)
        messages.info(request, f"{count} alert(s) acknowledged by {request.user}.")
