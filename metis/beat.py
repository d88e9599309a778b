"""Celery beat schedules written by data migrations, so staff can edit or pause them in the admin.

Migrations pass their historical `apps`; these helpers only get-or-create, so re-running a
migration (or a staff edit in between) never duplicates or overwrites a schedule.
"""

from __future__ import annotations

STAFF_MAY_EDIT = "Staff may edit or pause this."


def crontab_get(
    apps, *, minute: str, hour: str = "*", day_of_week: str = "*", day_of_month: str = "*"
):
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    crontab, _ = crontab_model.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        month_of_year="*",
        timezone="UTC",
    )
    return crontab


def interval_get(apps, *, every: int, period: str):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    interval, _ = interval_model.objects.get_or_create(every=every, period=period)
    return interval


def periodic_task_ensure(
    apps,
    *,
    name: str,
    task: str,
    schedule,
    description: str = STAFF_MAY_EDIT,
    enabled: bool = True,
) -> None:
    """Create the named periodic task on `schedule` (a crontab or an interval) if missing."""
    kind = "crontab" if schedule._meta.model_name == "crontabschedule" else "interval"
    apps.get_model("django_celery_beat", "PeriodicTask").objects.get_or_create(
        name=name,
        defaults={"task": task, kind: schedule, "description": description, "enabled": enabled},
    )


def periodic_tasks_remove(apps, *tasks: str) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task__in=tasks).delete()
