"""The Monitoring page: tiles of the current figures, charts of a window, the open alerts.

Every tenant's figures: the admin site lets in 2FA-verified staff only, never a tenant user.
"""

from __future__ import annotations

from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from analytics import clickhouse
from monitoring import charts, downsample, tiles
from monitoring.alerts import queries as alert_queries


def monitoring_view(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
    key = request.GET.get("window") or downsample.DEFAULT_WINDOW
    window = downsample.WINDOWS.get(key)
    context = {
        **site.each_context(request),
        "title": "Monitoring",
        "windows": downsample.WINDOWS.values(),
        "window": window,
        "open_alerts": alert_queries.open_alerts(),
    }
    if window is None:
        context["error"] = f"Unknown window {key!r}: choose one of the links above."
        return TemplateResponse(request, "admin/monitoring/dashboard.html", context, status=400)
    now = timezone.now()
    status = 200
    try:
        # One session: the embedded engine opens once for every query of the page.
        with clickhouse.session() as client:
            context["sampled_at"], context["tiles"] = tiles.tiles(client, now=now)
            context["chart_data"] = charts.charts(client, window=window, now=now)
    except clickhouse.ClickHouseUnavailable as exc:
        context["error"] = (
            f"The stored figures are unavailable: ClickHouse cannot be reached ({exc}). "
            "/metrics still serves the current ones. Try again shortly."
        )
        status = 503
    return TemplateResponse(request, "admin/monitoring/dashboard.html", context, status=status)
