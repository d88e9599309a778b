"""`audit.partitions_ensure` keeps months ahead, each made as the migration makes them: guarded
against TRUNCATE (row triggers come from the parent), indexed, and reachable only through the
log (no grant on the partition itself). The runtime role calls it but cannot drop one."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from audit import tasks

_TRIGGERS_SQL = """
SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND tgenabled <> 'D'
"""
_INDEXES_SQL = "SELECT indexdef FROM pg_indexes WHERE tablename = %s"


def _months_from_now(count: int) -> list[str]:
    first = timezone.now().date().replace(day=1)
    names = []
    for months in range(count + 1):
        year, month = divmod(first.month - 1 + months, 12)
        names.append(f"audit_log_{first.year + year}_{month + 1:02d}")
    return names


def test_partitions_ensure_makes_the_months_ahead_guarded_and_without_grants(committed_db):
    # Committed: the owner's connection, which inspects them, sees only committed tables.
    made = tasks.partitions_ensure(months_ahead=5)
    assert made == _months_from_now(5)
    assert tasks.partitions_ensure(months_ahead=5) == made  # idempotent
    runtime = settings.DATABASES["default"]["USER"]
    staff_read = settings.DATABASES["staff_read"]["USER"]
    with connections["owner"].cursor() as cursor:
        for partition in made[-2:]:  # the two the migration did not make
            cursor.execute(
                "SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = %s::regclass",
                [partition],
            )
            assert cursor.fetchone() == ("audit_log",)
            cursor.execute(_TRIGGERS_SQL, [partition])
            triggers = {row[0] for row in cursor.fetchall()}
            assert {
                "audit_log_chain",
                "audit_log_no_update",
                "audit_log_no_delete",
                "audit_log_no_truncate",
            } <= triggers
            cursor.execute(_INDEXES_SQL, [partition])
            indexes = " ".join(row[0] for row in cursor.fetchall())
            assert "(tenant_id, created_at)" in indexes and "(tenant_id, seq)" in indexes
            for role in (runtime, staff_read, "public"):
                for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"):
                    cursor.execute(
                        "SELECT has_table_privilege(%s, %s, %s)", [role, partition, privilege]
                    )
                    assert cursor.fetchone() == (False,), (role, partition, privilege)


@pytest.mark.django_db
def test_partitions_are_made_only_in_the_bounded_range():
    with (
        pytest.raises(DatabaseError, match="from last month to 24 months ahead"),
        transaction.atomic(),
        connections["default"].cursor() as cursor,
    ):
        cursor.execute("SELECT metis_audit_partition_ensure((now() + interval '25 months')::date)")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE {partition}",
        "ALTER TABLE audit_log DETACH PARTITION {partition}",
        "ALTER TABLE audit_log DETACH PARTITION audit_log_default",
    ],
)
def test_the_runtime_role_cannot_drop_or_detach_a_partition(statement):
    """No trigger fires on DROP or DETACH: ownership is the guard (retention drops as owner)."""
    (partition, *_) = tasks.partitions_ensure(months_ahead=0)
    with (
        pytest.raises(DatabaseError, match="must be owner"),
        transaction.atomic(),
        connections["default"].cursor() as cursor,
    ):
        cursor.execute(statement.format(partition=partition))


@pytest.mark.django_db
def test_the_retention_run_is_scheduled_daily():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="audit.retention_run")
    assert task.enabled and task.crontab.hour == "0" and task.crontab.day_of_month == "*"


@pytest.mark.django_db(databases=["default", "owner"])
def test_a_dry_run_lists_the_months_due_and_drops_nothing(settings):
    import io

    from django.core.management import call_command

    settings.AUDIT_RETENTION_DAYS = 0  # this month is not over: still nothing is due
    out = io.StringIO()
    call_command("audit_retention", "--dry-run", stdout=out)
    assert out.getvalue().startswith("0 partition(s) past 0 days")
