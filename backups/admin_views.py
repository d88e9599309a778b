"""The backups dashboard: the RPO/RTO tiles and the latest catalog rows (backups.admin_urls)."""

from __future__ import annotations

from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from backups import dashboard, pgbackrest
from backups.models import BackupRun, FailoverDrill, RestoreDrill, WalArchiveCheck
from tenants import replica


@replica.replica_view
def dashboard_view(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
    context = {
        **site.each_context(request),
        "title": "Backups: recovery targets",
        "tiles": dashboard.tiles(),
        # Red tiles on a machine without pgBackRest say why, and what to install.
        "setup_notice": pgbackrest.missing_notice(),
        "latest_runs": BackupRun.objects.all()[:10],
        "latest_drills": RestoreDrill.objects.select_related("backup")[:5],
        "latest_failover_drills": FailoverDrill.objects.all()[:5],
        "latest_checks": WalArchiveCheck.objects.all()[:5],
    }
    return TemplateResponse(request, "admin/backups/dashboard.html", context)
