"""The SQL workbench admin page (analytics.admin_urls puts it in the admin site).

Superusers only, not every staff member: the exports hold every tenant's rows, and crossing
tenants is a superuser right elsewhere too (the all-tenants admin mode).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone

from analytics import exports, workbench
from tenants import client_ip, two_factor

EXAMPLE_SQL = """SELECT t.name AS tenant, count(*) AS documents, sum(d.size_bytes) AS bytes
FROM documents d JOIN tenants t ON t.id = d.tenant_id
WHERE d.deleted_at IS NULL
GROUP BY t.name ORDER BY documents DESC"""


def workbench_view(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
    if not request.user.is_superuser:
        raise PermissionDenied("The SQL workbench spans every tenant: superusers only.")
    if not two_factor.recently_confirmed(request):
        return redirect(two_factor.confirm_url(request, next_url=request.path))
    sql = request.POST.get("sql", "") if request.method == "POST" else ""
    result = None
    if request.method == "POST":
        result = workbench.workbench_query_run(
            staff=request.user, sql=sql, ip_address=client_ip.client_ip(request)
        )
        if request.POST.get("format") == "csv" and result.ok:
            response = HttpResponse(workbench.result_csv(result), content_type="text/csv")
            stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
            response["Content-Disposition"] = f'attachment; filename="workbench-{stamp}.csv"'
            return response
    context = {
        **site.each_context(request),
        "title": "SQL workbench",
        "sql": sql or EXAMPLE_SQL,
        "result": result,
        "manifest": exports.latest_export(),
        "tables": {table.name: list(table.columns) for table in exports.TABLES},
        "max_rows": settings.DUCKDB_WORKBENCH_MAX_ROWS,
    }
    status = 400 if result is not None and not result.ok else 200
    return TemplateResponse(request, "analytics/workbench.html", context, status=status)
