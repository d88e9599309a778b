"""A 503 with Retry-After and a plain message when a service Metis needs is down, not a 500.

What counts as an outage (`outage_of`): the database pool exhausted (`PoolTimeout`) or
PostgreSQL unreachable (Django's OperationalError/InterfaceError), Redis refusing where nothing
degrades (the sign-in throttle fails closed: tenants/throttle.py), the broker refusing a task,
the object store unreachable or answering 5xx, ClickHouse unavailable. Anything else is a bug
and stays a 500.

Django turns an exception into a response at the middleware layer it escapes from, so one
middleware cannot catch them all. Two paths: `process_exception` answers for the views (no 500
is rendered or logged), and a `got_request_exception` receiver marks the request when a
middleware (the tenant lookup, the session) raised, so that this middleware, placed outside
those, swaps the 500 it gets back for the 503. It leaves handler500 to its owners.

The page renders without the request's context processors (they would read the session and
the user: the database and Redis), from the error pages' templates (metis/errors.py): the
tenant pages' style on tenant hosts, the admin's on the staff host; JSON for JSON requests.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import psycopg
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from django.conf import settings
from django.contrib import admin
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django_redis.exceptions import ConnectionInterrupted
from kombu.exceptions import OperationalError as BrokerError
from psycopg_pool import PoolTimeout
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from analytics.clickhouse import ClickHouseUnavailable
from metis.objectstore.errors import StorageUnavailable, error_status

logger = logging.getLogger("metis.unavailable")

_MARK = "_metis_outage"
# Paths that speak JSON whatever the Accept header says (documents/urls.py: the multipart API).
JSON_PREFIXES = ("/documents/multipart/",)


@dataclass(frozen=True)
class Outage:
    service: str  # short name, also in the JSON body and the log
    message: str  # what the person reads
    retry_after: int  # seconds


def _busy() -> Outage:
    return Outage(
        "database",
        "We have more requests than we can serve right now. Please try again in a few seconds.",
        settings.UNAVAILABLE_RETRY_AFTER_BUSY,
    )


def _pool_exhausted() -> bool:
    """True when every connection of the pool is in use: busy. Else the pool cannot connect."""
    pool = connections["default"].pool  # type: ignore[attr-defined]
    if pool is None:
        return False
    stats = pool.get_stats()
    return stats.get("pool_size", 0) >= pool.max_size and not stats.get("pool_available")


def _down(service: str, what: str) -> Outage:
    return Outage(
        service,
        f"{what} is unavailable for a moment. Please try again shortly.",
        settings.UNAVAILABLE_RETRY_AFTER,
    )


def _connection_errors() -> tuple[type[Exception], ...]:
    # psycopg's own, raised outside Django's error wrapper (the seal's raw statements).
    return (psycopg.OperationalError, psycopg.InterfaceError)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def outage_of(exc: BaseException) -> Outage | None:
    """Return the outage `exc` (or an exception it wraps) reports, or None for anything else."""
    chain = _chain(exc)
    if any(isinstance(e, PoolTimeout) for e in chain) and _pool_exhausted():
        return _busy()
    for e in chain:
        if isinstance(e, (OperationalError, InterfaceError, *_connection_errors())):
            return _down("database", "Our database")
        if type(e) is psycopg.DatabaseError and e.sqlstate is None:
            # No SQLSTATE: the server never answered. The tenant seal's raw statement
            # (tenants/postgres) raises this when the connection died under it.
            return _down("database", "Our database")
        if isinstance(e, ConnectionInterrupted | RedisConnectionError | RedisTimeoutError):
            return _down("redis", "Signing in (and a few other actions)")
        if isinstance(e, BrokerError):
            return _down("broker", "Our job queue")
        if isinstance(e, StorageUnavailable | BotoConnectionError | HTTPClientError):
            return _down("s3", "Document storage")
        if isinstance(e, ClientError) and (error_status(e) or 0) >= 500:
            return _down("s3", "Document storage")
        if isinstance(e, ClickHouseUnavailable):
            return _down("clickhouse", "Analytics")
    return None


def _mark(sender, request: HttpRequest | None = None, **kwargs) -> None:
    exc = sys.exc_info()[1]
    if request is None or exc is None:
        return
    # A receiver that raises escapes Django's handler altogether (the server's own bare 500):
    # whatever goes wrong here, the request keeps the 500 it was getting.
    try:
        outage = outage_of(exc)
    except Exception:
        logger.exception("could not classify %r", exc)
        return
    if outage is not None:
        setattr(request, _MARK, outage)


def wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return (
        request.path.startswith(JSON_PREFIXES)
        or "application/json" in accept
        or request.content_type == "application/json"
    )


def _is_staff_host(request: HttpRequest) -> bool:
    host = request.META.get("HTTP_HOST", "").rsplit(":", 1)[0].lower().rstrip(".")
    return host in settings.METIS_ADMIN_HOSTS


def unavailable_response(request: HttpRequest, outage: Outage) -> HttpResponse:
    """The 503 for `outage`: JSON or a page, with Retry-After; no database, no Redis."""
    response: HttpResponse
    if wants_json(request):
        response = JsonResponse(
            {"error": outage.message, "service": outage.service, "retry_after": outage.retry_after},
            status=503,
        )
    else:
        # The error pages' templates (metis/errors.py), as their 500 uses them: no context
        # processors, and only the tenant (already loaded, or None) of the request, no user.
        template = "errors/admin.html" if _is_staff_host(request) else "errors/tenant.html"
        context = {
            "status": 503,
            "title": "Temporarily unavailable",
            "message": f"{outage.message} Try again in about {outage.retry_after} seconds.",
            "server_error": True,  # no links that would need the session
            "request": SimpleNamespace(tenant=getattr(request, "tenant", None)),
            "site_header": admin.site.site_header,
            "site_title": admin.site.site_title,
        }
        response = HttpResponse(loader.render_to_string(template, context), status=503)
    response["Retry-After"] = str(outage.retry_after)
    response["Cache-Control"] = "no-store"
    return response


class ServiceUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        got_request_exception.connect(_mark, dispatch_uid="metis.unavailable")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        outage = getattr(request, _MARK, None)
        if outage is not None and response.status_code == 500:
            self._log(request, outage, "a middleware")
            return unavailable_response(request, outage)
        if response.status_code == 503 and not response.has_header("Retry-After"):
            # A view's own 503 (the upload page with S3 down, a dashboard without ClickHouse).
            response["Retry-After"] = str(settings.UNAVAILABLE_RETRY_AFTER)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        outage = outage_of(exception)
        if outage is None:
            return None
        self._log(request, outage, "the view")
        return unavailable_response(request, outage)

    def _log(self, request: HttpRequest, outage: Outage, where: str) -> None:
        exc = sys.exc_info()[1]
        logger.warning(
            "503 %s unavailable in %s: %s %s",
            outage.service,
            where,
            request.method,
            request.path,
            exc_info=exc is not None,
        )
