"""Restore drills: restore the latest backup into a scratch cluster, check it, time it.

At the start the drill writes a marker into the live database: the row counts of every tenant
table, per tenant, taken while those tables are share-locked (no write can slip between the
counts and the marker's commit). The drill then waits for the marker's WAL to reach the
archive (RPO: how long that committed transaction could still have been lost), restores the
latest backup replaying up to the marker's transaction, and checks the restored counts against
the marker and every table and index with pg_amcheck (RTO: restore start to usable), and reads
the restored rows of every subject in the erasure ledger: none may be left.

`repo=2` is the region-loss drill: the backup, the wait for the marker's WAL and the restore
(its WAL replay too) all read the second region's repository alone, so it passes with the
first region's endpoint down; its RPO is commit to archived in the second region.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups import cluster, config, pgbackrest
from backups.models import BackupRun, JobStatus, RestoreDrill
from backups.services import restore, runs
from privacy.erasure import ledger

MARKER_DDL = """
CREATE SCHEMA IF NOT EXISTS metis_backup;
CREATE TABLE IF NOT EXISTS metis_backup.drill_marker (
    id bigserial PRIMARY KEY,
    recorded_at timestamptz NOT NULL,
    counts jsonb NOT NULL
)
"""

_TENANT_TABLES = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1
"""


@dataclass(frozen=True)
class Marker:
    id: int
    xid: str
    recorded_at: datetime.datetime
    segment: str
    counts: dict[str, dict[str, int]]


def tenant_table_counts(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    """Return {table: {tenant_id: rows}} for every table with a tenant_id column."""
    counts: dict[str, dict[str, int]] = {}
    for (table,) in conn.execute(_TENANT_TABLES).fetchall():
        rows = conn.execute(f"SELECT tenant_id::text, count(*) FROM {table} GROUP BY 1").fetchall()
        counts[table] = {str(tenant): n for tenant, n in rows}
    return counts


def marker_record(conn: psycopg.Connection) -> Marker:
    """Write the drill marker (counts under share locks) in the live database; return it."""
    conn.autocommit = True
    conn.execute(MARKER_DDL)
    with conn.transaction():
        tables = [row[0] for row in conn.execute(_TENANT_TABLES).fetchall()]
        for table in tables:
            conn.execute(f"LOCK TABLE {table} IN SHARE MODE")
        counts = tenant_table_counts(conn)
        marker_id, xid, recorded_at = conn.execute(
            "INSERT INTO metis_backup.drill_marker (recorded_at, counts) "
            "VALUES (clock_timestamp(), %s) RETURNING id, txid_current()::text, recorded_at",
            [json.dumps(counts)],
        ).fetchone()
    segment = conn.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())").fetchone()[0]
    return Marker(marker_id, xid, recorded_at, segment, counts)


def drill_run(
    *,
    force_wal_switch: bool = False,
    repo: int = 1,
    on_progress: Callable[[float], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    ctx: pgbackrest.Context | None = None,
) -> RestoreDrill:
    """Run a restore drill from repository `repo` end to end and record it; the scratch
    cluster is always removed.

    `force_wal_switch` closes the marker's WAL segment at once instead of waiting for
    archive_timeout (tests; the monthly drill waits, so its RPO is the real one).
    """
    ctx = ctx or pgbackrest.Context.current()
    ctx.repo.numbered(repo)  # a drill of a region that is not configured is a config error
    step = on_step or (lambda message: None)
    backup = (
        BackupRun.objects.physical()
        .filter(status=JobStatus.SUCCEEDED, expired_at__isnull=True, repo=repo)
        .order_by("-started_at")
        .first()
    )
    with runs.job_run_exclusive(
        RestoreDrill,
        lock="restore-drill",
        backup=backup,
        repo=repo,
        rto_target_seconds=settings.BACKUP_RTO_TARGET_SECONDS,
        rpo_target_seconds=settings.BACKUP_RPO_TARGET_SECONDS,
    ) as drill:
        if backup is None:
            raise RuntimeError(f"no successful physical backup in repository {repo} to drill with")
        step(f"recording the marker in {ctx.target.database}")
        with cluster.connect(ctx.target) as conn:
            marker = marker_record(conn)
            if force_wal_switch:
                conn.execute("SELECT pg_switch_wal()")
            step(f"waiting for WAL segment {marker.segment} to be archived in repository {repo}")
            timeout = settings.BACKUP_ARCHIVE_TIMEOUT_SECONDS * 3
            if repo == 1:
                cluster.wait_archived(conn, marker.segment, timeout=timeout)
            else:
                # pg_stat_archiver counts a segment once it reached every repository: with the
                # first region down it never does. Ask the second repository itself.
                wait_archived_in(ctx, marker.segment, repo=repo, timeout=timeout)
            archived_at = timezone.now()
        rpo = (archived_at - marker.recorded_at).total_seconds()
        scratch = cluster.scratch_directory(ctx.target.os_user, prefix="metis-drill-")
        target = config.Target(
            **{
                **ctx.target.__dict__,
                "data_dir": scratch / "data",
                "port": cluster.free_port(),
                "socket_dir": scratch,
            }
        )
        try:
            step(f"restoring {backup.label} to transaction {marker.xid}")
            heartbeat = runs.Heartbeat(drill, on_progress=on_progress)
            outcome = restore.restore_cluster(
                ctx=ctx,
                target=target,
                set_label=backup.label,
                target_xid=marker.xid,
                repo=repo,
                on_progress=heartbeat,
            )
            step("checking row counts and pg_amcheck")
            checks = _check(target, marker)
        finally:
            cluster.remove(target)
            cluster.remove_directory(scratch)
        passed = checks["counts_match"] and checks["amcheck_ok"] and not checks["erased_rows_left"]
        runs.job_succeed(
            drill,
            target_time=marker.recorded_at,
            reached_time=outcome.reached_time,
            rto_seconds=outcome.usable_after_seconds,
            rpo_seconds=rpo,
            database_bytes=checks.get("database_bytes"),
            checks_passed=passed,
            checks=checks,
        )
        if passed:
            with transaction.atomic():
                BackupRun.objects.filter(pk=backup.pk).update(
                    restore_tested=True, restore_tested_at=timezone.now()
                )
    return drill


def wait_archived_in(
    ctx: pgbackrest.Context, segment: str, *, repo: int, timeout: float = 90
) -> None:
    """Wait until repository `repo` holds WAL segment `segment` (or a later one)."""
    deadline = time.monotonic() + timeout
    newest = ""
    while time.monotonic() < deadline:
        newest = pgbackrest.newest_archived_wal(ctx, repo=repo)
        if newest >= segment:
            return
        time.sleep(0.5)
    raise cluster.ClusterError(
        f"WAL segment {segment} not in repository {repo} after {timeout}s (newest: {newest!r})"
    )


def _check(target: config.Target, marker: Marker) -> dict:
    with cluster.connect(target) as conn:
        row = conn.execute(
            "SELECT counts FROM metis_backup.drill_marker WHERE id = %s", [marker.id]
        ).fetchone()
        restored_counts = tenant_table_counts(conn)
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        # restore_cluster replayed the erasure ledger: read the restored rows to prove it.
        erased_left = {t: n for t, n in ledger.ledger_remaining_cluster(conn).items() if n}
    try:
        cluster.amcheck(target)
        amcheck_ok, amcheck_error = True, ""
    except cluster.ClusterError as exc:
        amcheck_ok, amcheck_error = False, str(exc)
    return {
        "marker_found": row is not None,
        "counts_match": row is not None and row[0] == marker.counts == restored_counts,
        "tables": len(marker.counts),
        "rows": sum(sum(per_tenant.values()) for per_tenant in marker.counts.values()),
        "erased_rows_left": erased_left,
        "amcheck_ok": amcheck_ok,
        "amcheck_error": amcheck_error[-2000:],
        "database_bytes": size,
    }
