"""The staff SQL workbench: read-only DuckDB queries over the latest Parquet export.

Three independent guards stand between the SQL a staff member types and the server:

- the statement check: DuckDB's own parser splits the text, and exactly one statement of type
  SELECT is accepted (so no CREATE/INSERT/COPY/ATTACH/SET/PRAGMA/INSTALL/LOAD/EXPORT);
- the locked connection (analytics.duck.connect_files): only the export files behind the views
  are readable, external access and extensions are off and the configuration is locked, so even
  a SELECT cannot call `read_csv('/etc/passwd')` or re-enable anything;
- nothing to steal: Python copies the export's files into a private temporary folder first,
  so DuckDB never holds the object store's credentials or address (no secret, no httpfs).

Each run is interrupted after a time limit, returns at most a row cap, and is written to the
audit table (`WorkbenchQuery`) before it starts, refused runs included.
"""

from __future__ import annotations

import csv
import io
import logging
import pathlib
import tempfile
import threading
import time
from dataclasses import dataclass, field

import duckdb
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from analytics import duck, exports
from analytics.models import WorkbenchQuery, WorkbenchQueryStatus
from metis.objectstore.errors import StorageUnavailable

logger = logging.getLogger(__name__)

MAX_SQL_LENGTH = 20_000
EXPORT_UNREADABLE = "The export could not be read from object storage (the server log says why)."
# After an interrupt, how long to wait for DuckDB to unwind before giving up on the thread.
INTERRUPT_GRACE_SECONDS = 5.0


class WorkbenchRefused(ValueError):
    """The SQL is not a single read-only SELECT."""


@dataclass
class WorkbenchResult:
    audit: WorkbenchQuery
    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.audit.status == WorkbenchQueryStatus.OK

    @property
    def error(self) -> str:
        return self.audit.error


def statement_check(sql: str) -> str:
    """Return `sql` if DuckDB parses it as exactly one SELECT; raise WorkbenchRefused if not."""
    if len(sql) > MAX_SQL_LENGTH:
        raise WorkbenchRefused(f"the query is longer than {MAX_SQL_LENGTH} characters")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise WorkbenchRefused(f"DuckDB cannot parse the query: {exc}") from exc
    if len(statements) != 1:
        raise WorkbenchRefused(f"send exactly one statement (got {len(statements)})")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise WorkbenchRefused(f"only SELECT queries run here (this is {kind.name})")
    return sql


def _execute_with_limit(
    connection: duckdb.DuckDBPyConnection, sql: str, *, max_rows: int, timeout: float
) -> tuple[dict, bool]:
    """Run `sql` in a thread, interrupting it after `timeout` seconds; return (outcome, done)."""
    outcome: dict = {}

    def work() -> None:
        try:
            cursor = connection.execute(sql)
            outcome["columns"] = [column[0] for column in cursor.description or []]
            # DuckDB streams results: fetching cap + 1 rows never computes the rest.
            outcome["rows"] = cursor.fetchmany(max_rows + 1)
        except BaseException as exc:  # reported to the caller, never lost in the thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="workbench-query", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        outcome["timed_out"] = True
        connection.interrupt()
        thread.join(INTERRUPT_GRACE_SECONDS)
    return outcome, not thread.is_alive()


def _run_over_export(manifest: dict, sql: str, *, max_rows: int, timeout: float) -> dict:
    """Copy the export to a private folder and run `sql` over the copy; return the outcome."""
    with tempfile.TemporaryDirectory(prefix="metis-workbench-") as folder:
        try:
            files = exports.export_files_fetch(manifest, folder=pathlib.Path(folder))
        except StorageUnavailable:
            # The store's message names its endpoint: the server log gets it, the page does not.
            logger.exception("workbench: export %s could not be read", manifest["run_id"])
            return {"unopened": EXPORT_UNREADABLE}
        try:
            connection = duck.connect_files(views=files)
        except duckdb.Error as exc:
            return {"unopened": f"The export could not be opened: {exc}"}
        outcome, done = _execute_with_limit(connection, sql, max_rows=max_rows, timeout=timeout)
        if done:
            connection.close()
        return outcome


def _finish(audit: WorkbenchQuery, started: float, **fields) -> WorkbenchQuery:
    fields["duration_ms"] = int((time.monotonic() - started) * 1000)
    for name, value in fields.items():
        setattr(audit, name, value)
    with transaction.atomic():
        audit.save(update_fields=list(fields))
    return audit


def workbench_query_run(
    *,
    staff: AbstractBaseUser,
    sql: str,
    ip_address: str | None = None,
    max_rows: int | None = None,
    timeout: float | None = None,
) -> WorkbenchResult:
    """Audit, check and run one workbench query for `staff`; return its rows (capped)."""
    max_rows = max_rows or settings.DUCKDB_WORKBENCH_MAX_ROWS
    timeout = timeout or settings.DUCKDB_WORKBENCH_TIMEOUT_SECONDS
    # Written before the query runs, so a refused or crashed run is on record. (It commits at
    # once unless the staff member's chosen tenant context wraps the request in a transaction.)
    with transaction.atomic():
        audit = WorkbenchQuery.objects.create(staff=staff, sql=sql, ip_address=ip_address)
    started = time.monotonic()
    result = WorkbenchResult(audit=audit)
    try:
        statement_check(sql)
    except WorkbenchRefused as exc:
        _finish(audit, started, status=WorkbenchQueryStatus.REFUSED, error=str(exc))
        return result
    manifest = exports.latest_export()
    if not manifest:
        _finish(
            audit,
            started,
            status=WorkbenchQueryStatus.FAILED,
            error="There is no export yet: run `manage.py export_parquet` first.",
        )
        return result
    audit.export_run_id = manifest["run_id"]
    outcome = _run_over_export(manifest, sql, max_rows=max_rows, timeout=timeout)
    if "unopened" in outcome:
        _finish(
            audit,
            started,
            export_run_id=audit.export_run_id,
            status=WorkbenchQueryStatus.FAILED,
            error=outcome["unopened"],
        )
        return result
    if outcome.get("timed_out"):
        _finish(
            audit,
            started,
            export_run_id=audit.export_run_id,
            status=WorkbenchQueryStatus.TIMED_OUT,
            error=f"Stopped after the {timeout:g} s time limit.",
        )
        return result
    if "error" in outcome:
        _finish(
            audit,
            started,
            export_run_id=audit.export_run_id,
            status=WorkbenchQueryStatus.FAILED,
            error=str(outcome["error"]),
        )
        return result
    rows = outcome["rows"]
    result.columns = outcome["columns"]
    result.truncated = len(rows) > max_rows
    result.rows = rows[:max_rows]
    _finish(
        audit,
        started,
        export_run_id=audit.export_run_id,
        status=WorkbenchQueryStatus.OK,
        row_count=len(result.rows),
        truncated=result.truncated,
    )
    return result


def _csv_safe(value) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet; filenames come from users.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else str(value)


def result_csv(result: WorkbenchResult) -> str:
    """Return the result's rows as CSV text with a header row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow([_csv_safe(value) for value in row])
    return out.getvalue()
