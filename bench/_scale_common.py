"""Shared by the scale benches: COPY seeding through a staging table, timing, clients.

COPY FROM is refused on a table with row-level security, so rows are copied into an unlogged
staging table without it (made by the owner, written by the app role), then moved with one
INSERT ... SELECT per chunk as the app role inside the tenant's context: RLS checks every row's
tenant_id, as for any insert. The audit trail's row trigger is off while seeding (one chained
audit row per seeded row would cost ~1 ms each), and always back on afterwards.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from django.conf import settings
from django.db import close_old_connections, connections
from django.test import Client

from tenants import db


def owner_execute(statement: str, params: Sequence | None = None) -> None:
    with connections["owner"].cursor() as cursor:
        cursor.execute(statement, params)


@contextmanager
def audit_trigger_off(*tables: str) -> Iterator[None]:
    """Seeding is no audited action: the row-change trigger is off, and always on again."""
    for table in tables:
        owner_execute(f"ALTER TABLE {table} DISABLE TRIGGER audit_row_change")
    try:
        yield
    finally:
        for table in tables:
            owner_execute(f"ALTER TABLE {table} ENABLE TRIGGER audit_row_change")


@contextmanager
def staging_table(table: str, columns: Sequence[str]) -> Iterator[str]:
    """An unlogged copy of `table`'s columns without RLS, writable by the app role; dropped."""
    staging = f"{table}_seed"
    app_role = connections["owner"].ops.quote_name(settings.DATABASES["default"]["USER"])
    owner_execute(f"DROP TABLE IF EXISTS {staging}")
    owner_execute(f"CREATE UNLOGGED TABLE {staging} (LIKE {table} INCLUDING DEFAULTS)")
    owner_execute(f"GRANT SELECT, INSERT, TRUNCATE ON {staging} TO {app_role}")
    try:
        yield staging
    finally:
        owner_execute(f"DROP TABLE IF EXISTS {staging}")


def copy_rows(staging: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """COPY `rows` into `staging` on the app role's connection; return how many."""
    count = 0
    with connections["default"].cursor() as cursor:
        statement = f"COPY {staging} ({', '.join(columns)}) FROM STDIN"
        with cursor.cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


def move_rows(
    staging: str, table: str, columns: Sequence[str], *, tenant_id=None, extra: Sequence[str] = ()
) -> None:
    """INSERT the staged rows into `table` (in `tenant_id`'s context when given), run `extra`
    statements in the same transaction, and empty the staging table."""
    names = ", ".join(columns)
    context = db.tenant_context(tenant_id) if tenant_id else _no_context()
    with context, connections["default"].cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging}")
        for statement in extra:
            cursor.execute(statement)
        cursor.execute(f"TRUNCATE {staging}")


@contextmanager
def _no_context() -> Iterator[None]:
    from django.db import transaction

    with transaction.atomic():
        yield


# --- Timing ------------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def p50(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def p95(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.2f} ms"


# --- Clients -----------------------------------------------------------------------------------


def tenant_client(subdomain: str, email: str, password: str) -> Client:
    client = Client(HTTP_HOST=f"{subdomain}.{settings.METIS_BASE_DOMAIN}")
    response = client.post("/login/", {"email": email, "password": password})
    assert response.status_code == 302, response.content[:500]
    close_old_connections()
    return client


def get_page(client: Client, path: str, expect: int = 200) -> bytes:
    response = client.get(path)
    assert response.status_code == expect, (path, response.status_code, response.content[:300])
    # The test client keeps connections across requests, unlike a WSGI server: hand it back at
    # the end of each request, as request_finished does in production.
    close_old_connections()
    return response.content


def page_samples(client: Client, path: str, runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        get_page(client, path)
    return [timed(lambda: get_page(client, path)) for _ in range(runs)]
