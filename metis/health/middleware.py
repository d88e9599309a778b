"""`/healthz` and `/readyz`, answered first in the middleware chain, on any Host.

A load balancer probes with the pod's address as Host: that is not in ALLOWED_HOSTS, names no
tenant and is plain HTTP, so ALLOWED_HOSTS, TenantMiddleware and SecurityMiddleware's SSL
redirect would each refuse it. This middleware runs before all of them and never calls
`request.get_host()`.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from metis.health import checks

LIVE_PATHS = frozenset({"/healthz", "/healthz/"})
READY_PATHS = frozenset({"/readyz", "/readyz/"})


def _answer(body: dict, status: int) -> JsonResponse:
    response = JsonResponse(body, status=status)
    response["Cache-Control"] = "no-store"
    return response


class HealthMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in LIVE_PATHS:
            # Liveness: the process answers. No database, no network: a dependency's outage
            # must not get every pod restarted.
            return _answer({"status": "ok"}, 200)
        if request.path in READY_PATHS:
            return self.ready()
        return self.get_response(request)

    def ready(self) -> JsonResponse:
        results = checks.readiness()
        failing = sorted(name for name, r in results.items() if r.required and not r.ok)
        body = {
            "status": "unavailable" if failing else "ok",
            "failing": failing,
            "checks": {name: result.as_json() for name, result in results.items()},
        }
        return _answer(body, 503 if failing else 200)
