"""Log lines that say when, who and what: JSON (or text), with the request, tenant, user and task.

One context variable holds the fields of the work in hand. `RequestLogMiddleware`, first in the
middleware, binds the request id before anything else runs (taken from `X-Request-ID` when it
is a sane token, else made) and echoes it in the response; once the tenant middleware has
resolved the tenant and the user, it binds their ids (never an email) and, at the end, logs one
line for the request. metis/celery.py carries the request id into the tasks enqueued meanwhile
(a message header) and binds each task's id, name and tenant while it runs. `ContextFilter`,
on the handler, copies the fields onto every record, whoever logged it.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from tenants import db as tenant_db

FIELDS = ("request_id", "tenant_id", "user_id", "user_type", "task_id", "task_name")

# Read-only mappings, replaced (never changed in place) so that a reset restores the old one.
_fields: ContextVar[Mapping[str, str]] = ContextVar("log_fields", default=MappingProxyType({}))

# What an upstream proxy or client may send as X-Request-ID: a token, not a payload. Anything
# else (newlines forging log lines, a 10 KB header, quotes) is replaced by an id of our own.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+/-]{0,127}")

REQUEST_ID_HEADER = "X-Request-ID"


def current() -> Mapping[str, str]:
    """Return the fields bound for the work in hand."""
    return _fields.get()


def bind(**fields: object) -> Token[Mapping[str, str]]:
    """Add `fields` (None values are left out) to the context; return the token to reset it."""
    values = {name: str(value) for name, value in fields.items() if value is not None}
    return _fields.set(MappingProxyType({**_fields.get(), **values}))


def reset(token: Token[Mapping[str, str]]) -> None:
    _fields.reset(token)


@contextmanager
def bound(**fields: object) -> Iterator[None]:
    """Bind `fields` for the block."""
    token = bind(**fields)
    try:
        yield
    finally:
        reset(token)


def request_id_from(header: str | None) -> str:
    """Return `header` if it is a sane request id, else a new one."""
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class ContextFilter(logging.Filter):
    """Give every record the context's fields (None where unbound); it filters nothing out."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _fields.get()
        for name in FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, fields.get(name))
        if getattr(record, "tenant_id", None) is None:
            # Code inside a tenant context (a service, a TenantTask) names its tenant there.
            tenant = tenant_db.current_tenant_id()
            record.tenant_id = str(tenant) if tenant else None
        return True


def _utc_iso(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(BaseJsonFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, then the rest."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # Django's request loggers attach the request object: its repr has the full path
            # and query string, where reset tokens live (the route is logged instead). Celery's
            # task lines attach `data`, with the task's arguments: an email, say.
            reserved_attrs=[*_RESERVED, "request", "server_time", "data"],
            **kwargs,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_iso(record.created)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # Unbound context fields are left out rather than written as null on every line.
        return {key: value for key, value in log_data.items() if value is not None}


class TextFormatter(logging.Formatter):
    """A line for people (`LOG_FORMAT=text`, e.g. `make run`): the bound fields at the end."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_iso(record.created)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(
            f"{name}={value}" for name in FIELDS if (value := getattr(record, name, None))
        )
        return f"{line} [{context}]" if context else line


# The attributes every LogRecord has, which the JSON formatter must not repeat as extras.
_RESERVED = [
    *logging.makeLogRecord({}).__dict__.keys(),
    "message",
    "asctime",
]

request_logger = logging.getLogger("metis.request")


class RequestLogMiddleware:
    """Bind the request's id, tenant and user to its log lines; log one line per request.

    First in MIDDLEWARE, so every line of the request has the id, and every response echoes it
    in `X-Request-ID`. `process_view` runs after the tenant middleware resolved the tenant and
    the user, just before the view.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        # For the apps' audit rows: they may not import this wiring module.
        request.request_id = request_id  # type: ignore[attr-defined]
        token = bind(request_id=request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            match = request.resolver_match
            # The route, not the path: a path may carry a secret (a password-reset token).
            route = match.route if match else None
            request_logger.info(
                "%s %s %s",
                request.method,
                route or "-",
                response.status_code,
                extra={
                    "method": request.method,
                    "route": route,
                    "view": match.view_name if match else None,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                },
            )
        finally:
            reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        # Tenant hosts: the tenant and its signed-in user (tenants.middleware). Staff hosts: the
        # tenant a staff member chose, if any, and the staff user. Ids only, never emails.
        tenant = getattr(request, "tenant", None) or getattr(request, "staff_tenant", None)
        user_type: str | None = "staff"
        if getattr(request, "tenant", None) is not None:
            user, user_type = getattr(request, "tenant_user", None), "tenant"
        else:
            user = getattr(request, "user", None)
        if user is None or not getattr(user, "is_authenticated", True):
            user, user_type = None, None
        # Unreset on purpose: __call__ resets the whole context when the request ends.
        bind(
            tenant_id=tenant.pk if tenant else None,
            user_id=user.pk if user else None,
            user_type=user_type,
        )
