"""Who is acting, for the rows the database's own triggers write (audit/schema.py).

A request (audit/middleware.py) or a task binds an `Actor`; before each write statement on a
connection of ours, the wrapper below sets it transaction-locally (`app.audit_actor`,
`app.audit_ip`, `app.audit_request`), so the row-change trigger can name who wrote. Settings
are visible to any SQL in the transaction, so they attribute, they do not prove: see
docs/architecture.md, "Audit trail".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.db import transaction


@dataclass(frozen=True)
class Actor:
    type: str  # "tenant_user", "staff", "system", "anonymous"
    id: str = ""
    ip_address: str | None = None
    request_id: str = ""


_actor: ContextVar[Actor | None] = ContextVar("audit_actor", default=None)

_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE")
_SET_SQL = (
    "SELECT set_config('app.audit_actor', %s, true), set_config('app.audit_ip', %s, true), "
    "set_config('app.audit_request', %s, true)"
)


def current_actor() -> Actor | None:
    return _actor.get()


@contextmanager
def acting(actor: Actor) -> Iterator[Actor]:
    """Attribute the block's audited reads and writes to `actor`."""
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


# The log's own inserts carry their actor in the row: no setting needed.
_LOG_INSERT = re.compile(r'\s*INSERT\s+INTO\s+"?audit_log"?[\s(]', re.IGNORECASE)


def _is_write(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(_WRITES) and not _LOG_INSERT.match(sql)


def _actor_set(connection, actor: Actor) -> None:
    with connection.connection.cursor() as cursor:  # psycopg's own: no execute wrappers
        cursor.execute(
            _SET_SQL, [f"{actor.type}:{actor.id}", actor.ip_address or "", actor.request_id]
        )


def _actor_before_write(execute, sql, params, many, context):
    actor = _actor.get()
    if actor is None or not isinstance(sql, str) or not _is_write(sql):
        return execute(sql, params, many, context)
    connection = context["connection"]
    if connection.get_autocommit():
        # The setting must live in the write's own transaction.
        with transaction.atomic(using=connection.alias):
            _actor_set(connection, actor)
            return execute(sql, params, many, context)
    _actor_set(connection, actor)
    return execute(sql, params, many, context)


def wrapper_install(sender, connection, **kwargs) -> None:
    """Add the wrapper to each runtime connection once (connection_created)."""
    if connection.alias == "default" and _actor_before_write not in connection.execute_wrappers:
        connection.execute_wrappers.append(_actor_before_write)
