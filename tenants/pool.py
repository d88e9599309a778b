"""The runtime database pool: what a returned connection forgets, and when to return one.

Django's psycopg pool hands a connection to one thread at a time. A connection held while a
client trickles a body, a password is hashed or S3 answers is one the others wait for, so code
gives it back (`connection_release`) as soon as its database work is done; and whatever a
connection's last user set for the session (settings, temporary objects, advisory locks) is
discarded on the way back, so it never reaches the next user.

When PostgreSQL is down, the pool cannot open a connection, and each request would wait the
pool's whole timeout (DATABASE_POOL_TIMEOUT, 5 s) for one before its 503. `DownBreaker`
remembers the last failed connect instead: while it stands, a request that would have to wait
for a new connection checks with a quick connect of its own (one request at a time; the others
fail at once, and metis/unavailable.py answers 503), and either the database is back and the
failure forgotten, or it is renewed. A merely busy pool (every connection in use, no connect
failed) is not affected: its requests wait the timeout, as they should.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connections
from psycopg_pool import ConnectionPool

# DISCARD ALL, as PostgreSQL documents it, but keeping cached plans (DISCARD PLANS): a plan
# carries nothing of a user's, and re-planning the seal check after every return cost ~0.5 ms
# per transaction (bench/rls_overhead.py). One simple-protocol round trip.
SESSION_RESET_SQL = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD SEQUENCES; DISCARD TEMP"
)


def connection_reset(conn) -> None:
    """The pool's reset hook: leave nothing of the last user's session on the connection."""
    conn.autocommit = True  # the reset cannot run inside a transaction block
    conn.execute(SESSION_RESET_SQL)


def connection_release(using: str = "default") -> None:
    """Give the alias's connection back to its pool, unless a transaction still needs it.

    Only pooled aliases: without a pool, closing would mean reconnecting at the next query
    (and behind transaction-mode PgBouncer an idle client connection holds no server anyway).
    """
    connection = connections[using]
    if (
        connection.connection is not None
        and not connection.in_atomic_block
        and connection.settings_dict["OPTIONS"].get("pool")
    ):
        connection.close()


@dataclass
class _Failure:
    at: float  # time.monotonic() of the last connect that failed
    error: str


class DownBreaker:
    """Per process and per server (host, port): the last failed connect, until one succeeds."""

    def __init__(self) -> None:
        self._failures: dict[tuple[str, str], _Failure] = {}
        self._lock = threading.Lock()
        self._checking: set[tuple[str, str]] = set()

    def failed(self, server: tuple[str, str], error: Exception) -> None:
        self._failures[server] = _Failure(time.monotonic(), str(error).strip().splitlines()[0])

    def succeeded(self, server: tuple[str, str]) -> None:
        self._failures.pop(server, None)

    def check(self, pool: Any, connect_params: dict[str, Any]) -> None:
        """Raise psycopg.OperationalError at once if the server refused our last connect and
        the pool has no idle connection to give; else return (the pool serves, or waits its
        timeout). One request at a time finds out with a quick connect of its own: refused, it
        fails at once too; accepted (the server is back), the failure is forgotten. No fixed
        memory: a server that came back a moment after refusing is used at once."""
        server = _server_of(connect_params)
        failure = self._failures.get(server)
        if failure is None or pool.get_stats().get("pool_available", 0) > 0:
            return
        if self._begin_check(server):
            try:
                psycopg.connect(**{**connect_params, "connect_timeout": 2}).close()
            except psycopg.OperationalError as exc:
                self.failed(server, exc)
            else:
                self.succeeded(server)
                return
            finally:
                self._checking.discard(server)
            failure = self._failures.get(server) or failure
        raise psycopg.OperationalError(
            f"PostgreSQL at {server[0]}:{server[1]} is not accepting connections "
            f"(last try {time.monotonic() - failure.at:.1f} s ago: {failure.error})"
        )

    def _begin_check(self, server: tuple[str, str]) -> bool:
        with self._lock:
            if server in self._checking:
                return False
            self._checking.add(server)
            return True


breaker = DownBreaker()


def _server_of(params: dict[str, Any]) -> tuple[str, str]:
    return str(params.get("host") or ""), str(params.get("port") or "")


class ServerDown(BaseException):
    """PostgreSQL refused a connect. A BaseException on purpose: psycopg_pool's check loop
    retries an Exception until its timeout, and gives up at once on anything else."""


def connection_check(conn: psycopg.Connection) -> None:
    """The pool's check before it hands out a connection (DATABASE_POOL_CHECK).

    A dead idle connection is either a restarted server (take another, or open one) or a
    stopped one; only a connect tells which. Refused: the breaker learns it and the request
    gets its 503 now, not after the pool's timeout spent opening connections that cannot open.
    """
    try:
        ConnectionPool.check_connection(conn)
    except psycopg.OperationalError:
        info = conn.info
        params: dict[str, Any] = {
            "host": info.host,
            "port": info.port,
            "dbname": info.dbname,
            "user": info.user,
        }
        try:
            psycopg.connect(**params, password=info.password, connect_timeout=2).close()
        except psycopg.OperationalError as refused:
            breaker.failed(_server_of(params), refused)
            raise ServerDown(str(refused).strip().splitlines()[0]) from refused
        raise


class BreakerConnection(psycopg.Connection):
    """The pool's connection class: each connect it opens tells the breaker how it went."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any):
        server = _server_of({**psycopg.conninfo.conninfo_to_dict(conninfo), **kwargs})
        try:
            connection = super().connect(conninfo, **kwargs)
        except psycopg.OperationalError as exc:
            breaker.failed(server, exc)
            raise
        breaker.succeeded(server)
        return connection
