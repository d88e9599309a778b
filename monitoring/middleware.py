"""Time every request into the latency histogram, labelled by the view that answered it."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from monitoring import instruments


def view_label(request: HttpRequest) -> str:
    """Return the resolved view's name (`namespace:name`, else its dotted path), or a marker."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        # Answered before URL resolution (a bad host, an unknown tenant) or a 404.
        return "<unresolved>"
    return match.view_name or match._func_path


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        # Label values come from our URL names and a fixed method list, never from the client:
        # an unknown method would otherwise make a new series per request.
        method = request.method if request.method in _METHODS else "other"
        instruments.REQUEST_SECONDS.labels(
            view_label(request), method, f"{response.status_code // 100}xx"
        ).observe(time.perf_counter() - started)
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
