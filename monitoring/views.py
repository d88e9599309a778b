"""/metrics on the staff host, in Prometheus's text format, for a token or an allowed network."""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitoring import exposition
from tenants import client_ip

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4)
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)
    except ValueError as error:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {error}") from error


def scrape_allowed(request: HttpRequest) -> bool:
    """Return True for the bearer of METRICS_TOKEN or a client in METRICS_ALLOWED_NETWORKS."""
    token = settings.METRICS_TOKEN
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(offered.strip(), token):
        return True
    address = client_ip.client_ip(request)
    if not address:
        return False
    client = ipaddress.ip_address(address)
    return any(
        client.version == network.version and client in network
        for network in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    )


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Return every metric; 401 (token asked) or 403 for anyone else."""
    if not settings.METRICS_ENABLED:
        raise Http404
    if not scrape_allowed(request):
        if settings.METRICS_TOKEN:
            response = HttpResponse("A metrics token is required.\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return HttpResponse("Metrics are not served to this address.\n", status=403)
    return HttpResponse(generate_latest(exposition.registry()), content_type=CONTENT_TYPE_LATEST)
