"""Resolve the tenant from the Host header and run each request inside its tenant context.

The context is a scope, not a transaction (tenants.db): the request holds a database connection
only while it runs queries, never while its body arrives, a password is hashed, S3 answers or a
page renders, so slow clients cannot drain the pool.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenants import auth, db, lookup, pool, replica, staff
from tenants.http import MetisRequest, StaffRequest
from tenants.models import DNS_LABEL

_LABEL = re.compile(DNS_LABEL)


class TenantMiddleware:
    """Serve tenant hosts inside their tenant's context, and staff hosts as the admin.

    - `<subdomain>.<base domain>`: the tenant's pages (settings.TENANT_URLCONF), scoped to that
      tenant; unknown → 404, inactive → 403 page, malformed → 400.
    - the bare base domain or an admin host: the staff site, scoped to the tenant a staff member
      chose explicitly (or none).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: MetisRequest) -> HttpResponse:
        # get_host() validates against ALLOWED_HOSTS and raises DisallowedHost (→ 400).
        host = request.get_host().rsplit(":", 1)[0].lower().rstrip(".")
        request.tenant = None
        if host in settings.METIS_ADMIN_HOSTS:
            # scope_for gives it the staff attributes before any view sees it.
            return self._serve_staff(cast(StaffRequest, request))
        base = "." + settings.METIS_BASE_DOMAIN
        subdomain = host[: -len(base)] if host.endswith(base) else ""
        if not _LABEL.match(subdomain):
            # Django's 400 for a host it does not serve, rendered by the site's handler400.
            raise DisallowedHost(f"Malformed tenant host name: {host!r}")
        tenant = lookup.tenant_for_subdomain(subdomain)
        if tenant is None:
            return render(request, "tenants/unknown_tenant.html", {"host": host}, status=404)
        if not tenant.is_active:
            return render(request, "tenants/inactive_tenant.html", {"tenant": tenant}, status=403)
        request.tenant = tenant
        request.urlconf = settings.TENANT_URLCONF
        with db.tenant_context(tenant.pk, atomic=False):
            request.tenant_user = auth.get_tenant_user(request)
            # Next comes the body (CSRF reads it) and the view: hold no connection meanwhile.
            pool.connection_release()
            return self.get_response(request)

    def _serve_staff(self, request: StaffRequest) -> HttpResponse:
        with staff.scope_for(request):
            return self.get_response(request)


class ReadYourWritesMiddleware:
    """Make each request one unit of read-your-writes (tenants/replica.py): once it wrote on the
    primary, its replica reads go to the primary too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = replica.unit_begin()
        try:
            return self.get_response(request)
        finally:
            replica.unit_end(token)
