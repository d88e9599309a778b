"""Readiness checks: each service Metis needs, probed concurrently under one short deadline.

A check raises on failure; `readiness()` turns that into a short reason (the exception's kind,
an S3 error code, "timed out"), never its message: messages carry host names, URLs and paths,
and /readyz answers anyone. No check reads tenant data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import psycopg
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from psycopg_pool import PoolTimeout

from analytics import clickhouse
from metis.objectstore import store
from metis.objectstore.errors import error_code
from tenants.pool import ServerDown

# Where the heartbeat task (metis.health.tasks) and beat record their last sign of life.
WORKER_KEY = "metis:health:worker"
BEAT_KEY = "metis:health:beat"


class CheckFailed(Exception):
    """A check's own verdict, already phrased for /readyz."""


@dataclass(frozen=True)
class Result:
    ok: bool
    reason: str
    required: bool

    def as_json(self) -> dict:
        return {"ok": self.ok, "reason": self.reason, "required": self.required}


def check_postgres(timeout: float) -> str:
    """Borrow a connection from the web pool (or open one) for `SELECT 1`, and give it back."""
    connection = connections["default"]
    pool = connection.pool  # type: ignore[attr-defined]
    if pool is None:
        params = {**connection.get_connection_params(), "connect_timeout": max(1, int(timeout))}
        with psycopg.connect(**params) as conn:
            conn.execute("SELECT 1")
        return "ok"
    pool.open()  # as Django does before each checkout (a no-op once open)
    try:
        conn = pool.getconn(timeout=timeout)
    except ServerDown:  # the pool's check found the server refusing (tenants/pool.py)
        raise CheckFailed("unreachable: connections refused") from None
    except PoolTimeout:
        stats = pool.get_stats()
        if stats.get("pool_size", 0) >= pool.max_size and not stats.get("pool_available"):
            raise CheckFailed(f"pool exhausted: all {pool.max_size} connections in use") from None
        raise CheckFailed("unreachable: no connection within the deadline") from None
    try:
        conn.execute("SELECT 1")
    finally:
        pool.putconn(conn)
    return "ok"


def check_redis(timeout: float) -> str:
    if not settings.REDIS_URL:
        return "not used (file cache)"
    # The cache's own client (its timeouts): the cache calls themselves ignore errors.
    caches["default"].client.get_client(write=True).ping()  # type: ignore[attr-defined]
    return "ok"


def check_s3(timeout: float) -> str:
    documents = store.documents_store()
    documents.client.head_bucket(Bucket=documents.bucket)
    return "ok"


def check_clickhouse(timeout: float) -> str:
    with clickhouse.session(lock_timeout=timeout) as client:
        client.command("SELECT 1")
    return "ok" if clickhouse.is_embedded() is False else "ok (embedded)"


def check_broker(timeout: float) -> str:
    from metis.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    return "ok"


def _age_check(key: str, what: str) -> Callable[[float], str]:
    def check(timeout: float) -> str:
        seen = caches["default"].get(key)
        if seen is None:
            raise CheckFailed(f"no {what} seen (or the cache is unavailable)")
        age = time.time() - float(seen)
        if age > settings.HEALTH_HEARTBEAT_MAX_AGE:
            raise CheckFailed(f"last {what} {age:.0f} s ago")
        return f"last {what} {age:.0f} s ago"

    return check


CHECKS: dict[str, Callable[[float], str]] = {
    "postgres": check_postgres,
    "redis": check_redis,
    "s3": check_s3,
    "clickhouse": check_clickhouse,
    "broker": check_broker,
    "worker": _age_check(WORKER_KEY, "heartbeat"),
    "beat": _age_check(BEAT_KEY, "tick"),
}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, ClientError):
        return f"refused: {error_code(exc) or 'error'}"
    if isinstance(exc, clickhouse.ClickHouseUnavailable):
        return "unavailable"
    return f"unreachable: {type(exc).__name__}"


def readiness(timeout: float | None = None) -> dict[str, Result]:
    """Run every check at once; return each one's result within about `timeout` seconds."""
    timeout = settings.HEALTH_CHECK_TIMEOUT if timeout is None else timeout
    required = set(settings.HEALTH_READY_REQUIRED)
    executor = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")
    futures = {name: executor.submit(check, timeout) for name, check in CHECKS.items()}
    deadline = time.monotonic() + timeout
    results = {}
    for name, future in futures.items():
        try:
            reason, ok = future.result(timeout=max(0.0, deadline - time.monotonic())), True
        except FutureTimeout:
            reason, ok = f"timed out after {timeout:g} s", False
        except Exception as exc:  # any failure is the check's answer
            reason, ok = _reason(exc), False
        results[name] = Result(ok=ok, reason=reason, required=name in required)
    # A check stuck past the deadline finishes (its own socket timeouts end it) on its own.
    executor.shutdown(wait=False, cancel_futures=True)
    return results
