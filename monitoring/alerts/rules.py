"""The alert rules: each reads current figures (monitoring/figures.py) and says what is wrong.

A rule's check returns one Finding per subject whose condition holds now (an empty list: all
clear), or None when it cannot judge here (the database's disk on another machine); a check that
raises is skipped for this evaluation. Thresholds are settings (ALERT_*, docs/operations.md).
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from monitoring import figures
from monitoring.models import CounterBaseline, Severity


@dataclass(frozen=True)
class Finding:
    subject: str
    message: str
    value: float | None = None
    threshold: float | None = None


Check = Callable[[datetime.datetime], "list[Finding] | None"]


@dataclass(frozen=True)
class Rule:
    name: str
    severity: Severity
    check: Check


def db_connections(now: datetime.datetime) -> list[Finding]:
    current = figures.database_connections()
    percent = 100 * current.in_use / current.max
    limit = settings.ALERT_DB_CONNECTIONS_PERCENT
    if percent <= limit:
        return []
    return [
        Finding(
            "",
            f"Database connections at {percent:.0f} % of max_connections "
            f"({current.in_use} of {current.max}; threshold {limit:g} %).",
            percent,
            limit,
        )
    ]


def db_slow_query(now: datetime.datetime) -> list[Finding]:
    limit = settings.ALERT_DB_SLOW_QUERY_SECONDS
    queries = figures.running_queries(slower_than=limit)
    if not queries.slow:
        return []
    pids = ", ".join(str(pid) for pid in queries.slow_pids[:10])
    return [
        Finding(
            "",
            f"{queries.slow} quer{'y' if queries.slow == 1 else 'ies'} running longer than "
            f"{limit:g} s (longest {queries.longest_seconds:.0f} s; pid {pids}).",
            queries.longest_seconds,
            limit,
        )
    ]


def db_disk(now: datetime.datetime) -> list[Finding] | None:
    limit = settings.ALERT_DB_DISK_PERCENT
    capacity = settings.ALERT_DB_DISK_CAPACITY_BYTES
    if capacity:
        used = figures.database_size_bytes()
        percent = 100 * used / capacity
        where = f"database {used / 2**30:.1f} GiB of ALERT_DB_DISK_CAPACITY_BYTES {capacity}"
    else:
        try:
            volume = os.statvfs(settings.ALERT_DB_DISK_PATH)
        except OSError:
            return None  # the server is elsewhere: set a capacity to judge it
        # As df counts: blocks reserved for root are neither used nor available.
        used_blocks = volume.f_blocks - volume.f_bfree
        percent = 100 * used_blocks / max(used_blocks + volume.f_bavail, 1)
        where = f"volume of {settings.ALERT_DB_DISK_PATH}"
    if percent <= limit:
        return []
    return [
        Finding(
            "",
            f"Database disk {percent:.0f} % full ({where}; threshold {limit:g} %).",
            percent,
            limit,
        )
    ]


def db_replica_lag(now: datetime.datetime) -> list[Finding]:
    seconds = figures.replica_lag_seconds()
    limit = settings.ALERT_DB_REPLICA_LAG_SECONDS
    if seconds is None or seconds <= limit:
        return []
    if math.isinf(seconds):
        return [Finding("", "The read replica cannot be reached: its reads go to the primary.")]
    return [
        Finding(
            "",
            f"The read replica is {seconds:.0f} s behind the primary (threshold {limit:g} s); "
            "past REPLICA_MAX_LAG_SECONDS its reads go to the primary.",
            seconds,
            limit,
        )
    ]


def backup_failed(now: datetime.datetime) -> list[Finding]:
    return [
        Finding(
            kind,
            f"The latest {run.get_kind_display()} backup, started "
            f"{run.started_at:%Y-%m-%d %H:%M}Z, failed: {run.error.strip()[:300] or 'no detail'}",
        )
        for kind, run in sorted(figures.latest_backup_runs().items())
        if run.status == "failed"
    ]


def backup_stale(now: datetime.datetime) -> list[Finding]:
    limit = settings.ALERT_BACKUP_MAX_AGE_HOURS
    good = figures.last_good_backup()
    if good is None:
        return [Finding("", "No verified, restore-tested physical backup on record.", None, limit)]
    hours = (now - good.started_at).total_seconds() / 3600
    if hours <= limit:
        return []
    return [
        Finding(
            "",
            f"The newest good physical backup ({good.label or good.pk}) is {hours:.1f} h old "
            f"(threshold {limit:g} h).",
            hours,
            limit,
        )
    ]


def wal_archive(now: datetime.datetime) -> list[Finding]:
    check = figures.latest_archive_check()
    if check is None:
        return [Finding("", "WAL archiving has never been checked.")]
    problems = []
    if not check.ok:
        detail = check.detail.strip().splitlines()[-1:] or ["no detail"]
        problems.append(f"failing at the check of {check.checked_at:%Y-%m-%d %H:%M}Z: {detail[0]}")
    check_minutes = (now - check.checked_at).total_seconds() / 60
    if check_minutes > settings.ALERT_WAL_CHECK_MAX_AGE_MINUTES:
        problems.append(
            f"last checked {check_minutes:.0f} min ago "
            f"(threshold {settings.ALERT_WAL_CHECK_MAX_AGE_MINUTES:g} min)"
        )
    archive_limit = settings.ALERT_WAL_ARCHIVE_MAX_AGE_SECONDS
    if check.age_seconds is not None and check.age_seconds > archive_limit:
        problems.append(
            f"no WAL had reached the archive for {check.age_seconds:.0f} s "
            f"(threshold {archive_limit:g} s)"
        )
    if not problems:
        return []
    return [Finding("", "WAL archiving: " + "; ".join(problems) + ".", check.age_seconds)]


def restore_drill(now: datetime.datetime) -> list[Finding]:
    drill = figures.latest_finished_drill()
    limit = settings.ALERT_DRILL_MAX_AGE_DAYS
    if drill is None:
        return [Finding("", "No restore drill on record.", None, limit)]
    when = f"{drill.started_at:%Y-%m-%d %H:%M}Z"
    if drill.status == "failed" or not drill.checks_passed:
        reason = drill.error.strip()[:300] or "its checks did not pass"
        return [Finding("", f"The latest restore drill ({when}) failed: {reason}")]
    days = (now - drill.started_at).total_seconds() / 86400
    if days <= limit:
        return []
    return [
        Finding(
            "",
            f"The latest restore drill ({when}) is {days:.0f} days old (threshold {limit:g} days).",
            days,
            limit,
        )
    ]


def outbox_backlog(now: datetime.datetime) -> list[Finding]:
    pending, limit = figures.outbox(now).pending, settings.ALERT_OUTBOX_PENDING_MAX
    if pending <= limit:
        return []
    return [
        Finding(
            "",
            f"{pending} events wait in the outbox for ClickHouse (threshold {limit}).",
            pending,
            limit,
        )
    ]


def outbox_delay(now: datetime.datetime) -> list[Finding]:
    age = figures.outbox(now).oldest_pending_age_seconds
    limit = settings.ALERT_OUTBOX_OLDEST_SECONDS
    if age <= limit:
        return []
    return [
        Finding(
            "",
            f"The oldest undelivered outbox event is {age:.0f} s old (threshold {limit:g} s).",
            age,
            limit,
        )
    ]


S3_BASELINE = "s3_errors"


def s3_errors(now: datetime.datetime) -> list[Finding]:
    """S3 calls that failed since the previous evaluation, per operation, as a rate a minute.

    The counters are the multiprocess totals of this machine's processes; the first reading
    (or the first after the baseline was lost) only sets the baseline.
    """
    ignored = set(settings.ALERT_S3_IGNORED_CODES)
    totals: dict[str, float] = {}
    for (operation, code), count in figures.s3_error_totals().items():
        if code not in ignored:
            totals[operation] = totals.get(operation, 0.0) + count
    baseline = CounterBaseline.objects.filter(name=S3_BASELINE).first()
    CounterBaseline.objects.update_or_create(
        name=S3_BASELINE, defaults={"totals": totals, "read_at": now}
    )
    if baseline is None:
        return []
    minutes = max((now - baseline.read_at).total_seconds() / 60, 1.0)
    limit = settings.ALERT_S3_ERRORS_PER_MINUTE
    findings = []
    for operation, total in sorted(totals.items()):
        before = baseline.totals.get(operation, 0.0)
        # A total below the baseline: the counters restarted (a deploy empties their files).
        added = total - before if total >= before else total
        rate = added / minutes
        if rate > limit:
            findings.append(
                Finding(
                    operation,
                    f"S3 {operation}: {added:.0f} failed calls in the last {minutes:.1f} min "
                    f"({rate:.1f}/min; threshold {limit}/min; ignored codes: "
                    f"{', '.join(sorted(ignored)) or 'none'}).",
                    rate,
                    limit,
                )
            )
    return findings


def celery_queue(now: datetime.datetime) -> list[Finding]:
    limit = settings.ALERT_CELERY_QUEUE_MAX
    return [
        Finding(
            queue,
            f"Celery queue {queue}: {depth} messages waiting (threshold {limit}).",
            depth,
            limit,
        )
        for queue, depth in sorted(figures.queue_depths().items())
        if depth > limit
    ]


RULES = [
    Rule("db_connections", Severity.WARNING, db_connections),
    Rule("db_slow_query", Severity.CRITICAL, db_slow_query),
    Rule("db_disk", Severity.WARNING, db_disk),
    Rule("db_replica_lag", Severity.WARNING, db_replica_lag),
    Rule("backup_failed", Severity.CRITICAL, backup_failed),
    Rule("backup_stale", Severity.CRITICAL, backup_stale),
    Rule("wal_archive", Severity.CRITICAL, wal_archive),
    Rule("restore_drill", Severity.WARNING, restore_drill),
    Rule("outbox_backlog", Severity.WARNING, outbox_backlog),
    Rule("outbox_delay", Severity.WARNING, outbox_delay),
    Rule("s3_errors", Severity.WARNING, s3_errors),
    Rule("celery_queue", Severity.WARNING, celery_queue),
]


def rules_enabled(only: list[str] | None = None) -> list[Rule]:
    """Return the rules to evaluate: all but ALERT_RULES_DISABLED, or just those in `only`."""
    known = {rule.name for rule in RULES}
    unknown = set(only or ()) - known
    if unknown:
        raise ValueError(f"unknown alert rules: {', '.join(sorted(unknown))}")
    disabled = set(settings.ALERT_RULES_DISABLED)
    return [
        rule
        for rule in RULES
        if (rule.name in only if only is not None else rule.name not in disabled)
    ]
