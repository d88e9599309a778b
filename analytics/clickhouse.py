"""The one way to reach ClickHouse: `with clickhouse.session() as client:` (clickhouse-connect).

Two backends, chosen by settings, same client API:

- `CLICKHOUSE_URL` set: a real server over HTTP(S). One client per process and thread, reused.
- unset: the embedded engine, clickhouse-connect's chdb backend on `CLICKHOUSE_CHDB_PATH`. chdb
  lets only one process at a time open a data directory, so every process (web, worker, beat,
  management commands) opens it for one operation only, under an exclusive file lock next to the
  directory, and closes it at the end, which releases the directory for the next process. Opening
  costs about 0.1-0.15 s; the dashboard cache and the outbox batches amortise it. Nested sessions
  in one thread share the open client; threads of one process take turns.

Failing to reach the server (connection refused, lock not obtained in time, engine not opening)
raises `ClickHouseUnavailable`: callers treat it as "try again later", never as bad data.
"""

from __future__ import annotations

import fcntl
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver import exceptions as ch_exceptions
from clickhouse_connect.driver.client import Client
from django.conf import settings

from tenants import db

# ClickHouse error codes that mean "this data is wrong", not "the server is unwell": a row
# raising one of these is set aside, never retried (see analytics/services.py).
REJECTION_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        469,  # VIOLATED_CONSTRAINT
    }
)
_CODE = re.compile(r"Code: (\d+)\.")


class ClickHouseUnavailable(RuntimeError):
    """ClickHouse cannot be reached now; the operation may succeed later."""


def database_name() -> str:
    """Return the ClickHouse database Metis uses (the URL's path, else CLICKHOUSE_DATABASE)."""
    if settings.CLICKHOUSE_URL:
        path = urlparse(settings.CLICKHOUSE_URL).path.strip("/")
        if path:
            return path
    return settings.CLICKHOUSE_DATABASE


def is_embedded() -> bool:
    return not settings.CLICKHOUSE_URL


def error_code(exc: BaseException) -> int | None:
    """Return the ClickHouse error code carried by `exc`, if any."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def is_rejection(exc: BaseException) -> bool:
    """Return True when `exc` says the data itself is unacceptable (retrying cannot help)."""
    if isinstance(exc, ValueError | TypeError):  # the client could not serialise a value
        return True
    return isinstance(exc, ch_exceptions.DatabaseError) and error_code(exc) in REJECTION_CODES


def _not_migrated(exc: Exception, database: str | None) -> Exception:
    if error_code(exc) == 81:  # UNKNOWN_DATABASE
        return ClickHouseUnavailable(
            f"ClickHouse database {database!r} does not exist: run `manage.py clickhouse_migrate`"
        )
    return exc


# --- The embedded engine: one process at a time, one operation at a time ----------------------
_process_lock = threading.RLock()  # threads of this process take turns
_embedded: dict[str, object] = {"client": None, "path": None}


def _lock_path(data_dir: Path) -> Path:
    return data_dir.parent / f".{data_dir.name}.lock"


def _acquire_file_lock(data_dir: Path, timeout: float):
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    handle = open(_lock_path(data_dir), "a+")  # noqa: SIM115 (closed by _release_file_lock)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                raise ClickHouseUnavailable(
                    f"another process held the embedded ClickHouse at {data_dir} for {timeout}s"
                ) from None
            time.sleep(0.02)


def _release_file_lock(handle) -> None:
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


@contextmanager
def _embedded_session(database: str | None, lock_timeout: float | None) -> Iterator[Client]:
    data_dir = Path(settings.CLICKHOUSE_CHDB_PATH).resolve()
    # Threads of this process wait their turn for as long as it takes, unless told otherwise.
    if not _process_lock.acquire(timeout=-1 if lock_timeout is None else lock_timeout):
        raise ClickHouseUnavailable(f"this process held the embedded ClickHouse {lock_timeout}s")
    try:
        if _embedded["client"] is not None and _embedded["path"] == data_dir:
            yield _embedded["client"]  # nested in this thread: share the open engine
            return
        wait = settings.CLICKHOUSE_LOCK_TIMEOUT if lock_timeout is None else lock_timeout
        lock = _acquire_file_lock(data_dir, wait)
        try:
            kwargs = {"database": database} if database else {}
            try:
                client = clickhouse_connect.get_client(dsn=f"chdb:///{data_dir}", **kwargs)
            except ch_exceptions.ProgrammingError as exc:  # the engine would not open
                raise ClickHouseUnavailable(str(exc)) from exc
            except ch_exceptions.DatabaseError as exc:
                raise _not_migrated(exc, database) from exc
            _embedded.update(client=client, path=data_dir)
            try:
                yield client
            finally:
                _embedded.update(client=None, path=None)
                client.close()  # releases the directory for the next process
        finally:
            _release_file_lock(lock)
    finally:
        _process_lock.release()


# --- A real server over HTTP ---------------------------------------------------------------------
_http_clients = threading.local()


def _http_client(database: str | None) -> Client:
    key = (settings.CLICKHOUSE_URL, database)
    cached = getattr(_http_clients, "clients", {})
    if key not in cached:
        kwargs = {"database": database} if database else {}
        cached[key] = clickhouse_connect.get_client(
            dsn=settings.CLICKHOUSE_URL, autogenerate_session_id=False, **kwargs
        )
        _http_clients.clients = cached
    return cached[key]


@contextmanager
def session(*, use_database: bool = True, lock_timeout: float | None = None) -> Iterator[Client]:
    """Yield a clickhouse-connect client bound to Metis's database, for one operation.

    Connection failures become `ClickHouseUnavailable`; errors ClickHouse returns for a query
    propagate as clickhouse-connect raises them. `lock_timeout`: how long to wait for the
    embedded engine (default CLICKHOUSE_LOCK_TIMEOUT; /readyz waits less).
    """
    database = database_name() if use_database else None
    db.connection_release()  # hold no PostgreSQL connection while ClickHouse answers
    try:
        if is_embedded():
            with _embedded_session(database, lock_timeout) as client:
                yield client
        else:
            try:
                client = _http_client(database)
            except ch_exceptions.DatabaseError as exc:
                raise _not_migrated(exc, database) from exc
            except ch_exceptions.Error as exc:
                raise ClickHouseUnavailable(str(exc)) from exc
            yield client
    except ch_exceptions.OperationalError as exc:
        raise ClickHouseUnavailable(str(exc)) from exc
