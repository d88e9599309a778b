"""Read-only heavy work on the streaming standby, while it keeps up and nothing was written.

A replica is optional (`DATABASE_REPLICA_URL`, metis/settings.py): without one, this module
sends nothing anywhere. With one, reads go there only inside `replica_reads()`, which the heavy
read paths enter (dashboards, Parquet exports, staff change lists); every other read stays on
the primary, so no page that just saved a form reads an older copy of it.

Inside the block a read goes to the replica (tenants/replica_router.py) unless:
- the replica's replay lag is past `REPLICA_MAX_LAG_SECONDS` or it cannot be reached (the lag is
  read at most once per `REPLICA_LAG_CHECK_SECONDS` per process): then the primary answers;
- the request or task already wrote (any statement on `default` that is not a read): from then
  on it reads its own writes on the primary. The unit is the request (middleware), the Celery
  task (metis/celery.py), or else the outermost `replica_reads()` block.

The tenant context needs nothing here: the sealing backend (tenants/postgres) seals every
transaction of every alias, and the seal key and the policies replicate with the schema, so
row-level security binds the runtime role on the replica as on the primary.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import ParamSpec

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse
from django.template.response import SimpleTemplateResponse

from tenants import pool

P = ParamSpec("P")

REPLICA_ALIAS = "replica"
REPLICA_STAFF_READ_ALIAS = "replica_staff_read"
REPLICA_ALIASES = frozenset({REPLICA_ALIAS, REPLICA_STAFF_READ_ALIAS})

# 0 while the standby has replayed all it received (an idle primary sends no new commits, so
# "now - last replayed commit" would grow without any lag); a promoted replica has none.
LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN 0
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
    ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 'Infinity')
END::float8
"""

# Statements that never write; anything else on `default` counts as a write (a WITH may hold
# one: counted too, which only sends more reads to the primary).
_READ_VERBS = frozenset(
    {"SELECT", "SHOW", "EXPLAIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN"}
    | {"DECLARE", "FETCH", "CLOSE", "SET", "RESET"}
)


@dataclass
class _Unit:
    """One request or task: did it write on the primary yet?"""

    wrote: bool = False


_unit: ContextVar[_Unit | None] = ContextVar("replica_unit", default=None)
_reads_wanted: ContextVar[bool] = ContextVar("replica_reads", default=False)


def configured() -> bool:
    """True when a replica is configured (`DATABASE_REPLICA_URL`)."""
    return REPLICA_ALIAS in settings.DATABASES


def unit_begin() -> Token:
    """Start a request's or task's unit of read-your-writes; end it with `unit_end(token)`."""
    return _unit.set(_Unit())


def unit_end(token: Token) -> None:
    _unit.reset(token)


def wrote() -> bool:
    """True once the current request or task has written on the primary."""
    unit = _unit.get()
    return unit is not None and unit.wrote


@contextmanager
def replica_reads() -> Iterator[None]:
    """Send the block's reads to the replica while it keeps up and the unit has not written.

    Only for read-only work that tolerates a copy `REPLICA_MAX_LAG_SECONDS` old. Writes inside
    still go to the primary (and send the reads after them there too).
    """
    unit_token = unit_begin() if _unit.get() is None else None
    token = _reads_wanted.set(True)
    try:
        yield
    finally:
        _reads_wanted.reset(token)
        if unit_token is not None:
            unit_end(unit_token)
        if configured():
            pool.connection_release(REPLICA_ALIAS)


def read_alias(*, all_tenants: bool = False) -> str | None:
    """Return the replica alias a read should use now, or None for the primary."""
    if not (_reads_wanted.get() and configured()) or wrote():
        return None
    if not lag_acceptable():
        return None
    return REPLICA_STAFF_READ_ALIAS if all_tenants else REPLICA_ALIAS


def replica_view(view: Callable[P, HttpResponse]) -> Callable[P, HttpResponse]:
    """Run a read-only page's GET (and HEAD) inside `replica_reads()`, rendered there too.

    A TemplateResponse renders after the view returns, and its querysets are lazy: rendering
    it inside the block is what sends those reads to the replica. Other methods (a change
    list's actions) run as they are, on the primary.
    """

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        request = next((a for a in args if isinstance(a, HttpRequest)), None)
        if request is None or request.method not in ("GET", "HEAD"):
            return view(*args, **kwargs)
        with replica_reads():
            response = view(*args, **kwargs)
            if isinstance(response, SimpleTemplateResponse):
                response.render()
            return response

    return wrapper


# --- Lag ----------------------------------------------------------------------------------------
_lag_lock = threading.Lock()
_lag_checked: tuple[float, float] | None = None  # (time.monotonic() of the reading, lag)


def replica_lag_seconds() -> float:
    """Read the replica's replay lag now; infinity when it cannot be reached."""
    try:
        with connections[REPLICA_ALIAS].cursor() as cursor:
            cursor.execute(LAG_SQL)
            return float(cursor.fetchone()[0])
    except DatabaseError:
        connections[REPLICA_ALIAS].close()
        return math.inf


def current_lag_seconds() -> float:
    """Return the replica's lag, read at most once per REPLICA_LAG_CHECK_SECONDS."""
    global _lag_checked
    with _lag_lock:
        checked = _lag_checked
        if (
            checked is not None
            and time.monotonic() - checked[0] < settings.REPLICA_LAG_CHECK_SECONDS
        ):
            return checked[1]
    lag = replica_lag_seconds()
    with _lag_lock:
        _lag_checked = (time.monotonic(), lag)
    return lag


def lag_acceptable() -> bool:
    return current_lag_seconds() <= settings.REPLICA_MAX_LAG_SECONDS


def lag_cache_clear() -> None:
    """Forget the last lag reading (tests; after repointing the replica alias)."""
    global _lag_checked
    with _lag_lock:
        _lag_checked = None


# --- Writes on the primary ----------------------------------------------------------------------
def is_write(sql: object) -> bool:
    words = str(sql).lstrip(" (\n\t").split(None, 1)
    return not words or words[0].upper() not in _READ_VERBS


def note_write_before_execute(execute, sql, params, many, context):
    """An execute wrapper of `default`: mark the unit as having written before the statement."""
    unit = _unit.get()
    if unit is not None and not unit.wrote and is_write(sql):
        unit.wrote = True
    return execute(sql, params, many, context)
