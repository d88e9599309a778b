"""Current figures read directly: what /metrics shows and what the alert rules judge.

One function per figure, so the scrape-time collectors (monitoring/collectors.py) and the alert
rules (monitoring/alerts/rules.py) read the same SQL, catalog rows and counters.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.db import connections
from django.db.models import Count, Min, Sum
from prometheus_client import CollectorRegistry, multiprocess

from backups.models import BackupRun, RestoreDrill, WalArchiveCheck
from metis.events.models import EventOutbox, EventOutboxBatch
from tenants import db, replica


@dataclass(frozen=True)
class DatabaseConnections:
    by_state: dict[str, int]  # pg_stat_activity.state; `background` when not ours to see
    in_use: int  # sessions attached to a database: what max_connections limits
    max: int


def database_connections() -> DatabaseConnections:
    """Return the server's sessions by state, those counting against max_connections, and it.

    Another role's session shows its state and backend type only to a privileged reader, but
    every role sees its database (`datid`); the server's own processes have none.
    """
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(state, 'background'), count(*), count(datid) FROM pg_stat_activity"
            " GROUP BY 1"
        )
        rows = cursor.fetchall()
        cursor.execute("SELECT current_setting('max_connections')::int")
        maximum = cursor.fetchone()[0]
    return DatabaseConnections(
        by_state={state: count for state, count, _ in rows},
        in_use=sum(attached for _, _, attached in rows),
        max=maximum,
    )


@dataclass(frozen=True)
class RunningQueries:
    slow: int  # running longer than the threshold asked for
    longest_seconds: float
    slow_pids: tuple[int, ...]


def running_queries(*, slower_than: float) -> RunningQueries:
    """Return the client queries running now (state `active`) in the application's database:
    how many for longer than `slower_than` seconds, and the longest's age.

    Only `active` sessions: a job's advisory-lock holder sits `idle in transaction` for hours
    by design (backups/services/runs.py), and is no slow query.
    """
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pid, extract(epoch FROM clock_timestamp() - query_start)"
            " FROM pg_stat_activity"
            " WHERE state = 'active' AND backend_type = 'client backend'"
            " AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        ages = [(pid, float(seconds or 0)) for pid, seconds in cursor.fetchall()]
    slow = tuple(sorted(pid for pid, seconds in ages if seconds > slower_than))
    return RunningQueries(
        slow=len(slow),
        longest_seconds=max((seconds for _, seconds in ages), default=0.0),
        slow_pids=slow,
    )


def database_size_bytes() -> int:
    """Return pg_database_size of the application's database."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0])


@dataclass(frozen=True)
class Outbox:
    pending: int
    oldest_pending_age_seconds: float  # 0: none pending
    rejected: int


def outbox(now: datetime.datetime) -> Outbox:
    """Return every tenant's outbox backlog (through the staff read role).

    Events claimed by the drain and not yet delivered (in a batch row) still wait: they count.
    """
    with db.all_tenants_context():
        waiting = EventOutbox.objects.pending().order_by()
        outbox = waiting.aggregate(n=Count("id"), at=Min("occurred_at"))
        batches = EventOutboxBatch.objects.order_by().aggregate(n=Sum("size"), at=Min("oldest_at"))
        rejected = EventOutbox.objects.rejected().order_by().count()
    pending = outbox["n"] + (batches["n"] or 0)
    first = min((at for at in (outbox["at"], batches["at"]) if at), default=None)
    return Outbox(
        pending=pending,
        oldest_pending_age_seconds=(now - first).total_seconds() if first else 0.0,
        rejected=rejected,
    )


def last_good_backup() -> BackupRun | None:
    """Return the newest verified, restore-tested physical backup."""
    return BackupRun.objects.good().physical().first()


def latest_backup_runs() -> dict[str, BackupRun]:
    """Return the newest finished run of each backup kind."""
    latest: dict[str, BackupRun] = {}
    finished = BackupRun.objects.exclude(status="running").order_by("kind", "-started_at")
    for run in finished.distinct("kind"):
        latest[run.kind] = run
    return latest


def replica_lag_seconds() -> float | None:
    """Return the read replica's replay lag now (infinity: unreachable), or None without one."""
    return replica.replica_lag_seconds() if replica.configured() else None


def latest_archive_check() -> WalArchiveCheck | None:
    return WalArchiveCheck.objects.first()


def latest_finished_drill() -> RestoreDrill | None:
    return RestoreDrill.objects.exclude(status="running").first()


def queue_names() -> list[str]:
    """Return the Celery queues the settings name: the default, task_queues and the routes'."""
    conf = current_app.conf
    names = {conf.task_default_queue, *current_app.amqp.queues.keys()}
    routes = conf.task_routes
    for route in routes.values() if isinstance(routes, dict) else ():
        queue = route.get("queue") if isinstance(route, dict) else None
        if queue:
            names.add(getattr(queue, "name", queue))
    return sorted(names)


def queue_depths() -> dict[str, int]:
    """Return the messages waiting in each queue of queue_names()."""
    depths = {}
    with current_app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1)
        channel = connection.default_channel
        for name in queue_names():
            try:
                # Redis: the lengths of the queue's lists (one per priority).
                depths[name] = channel.queue_declare(queue=name, passive=True).message_count
            except connection.channel_errors:
                depths[name] = 0  # never declared: nothing was ever sent to it
    return depths


def s3_error_totals() -> dict[tuple[str, str], float]:
    """Return the S3 error counter of every process of this machine: {(operation, code): n}.

    The totals since the multiprocess directory was last emptied (at a deploy); they only grow
    until then.
    """
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    return {
        (sample.labels["operation"], sample.labels["code"]): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "metis_s3_errors_total"
    }
