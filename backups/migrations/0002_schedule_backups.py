"""Backup schedules in Celery beat; staff edit or pause them in the admin."""

from django.db import migrations

from metis import beat

SCHEDULES = [
    # name, task, crontab (minute, hour, day_of_week, day_of_month), enabled
    ("Backups: full backup, verified (daily)", "backups.backup_full", ("30", "1", "*", "*"), True),
    ("Backups: incremental backup (every 6 hours)", "backups.backup_incremental",
     ("30", "7,13,19", "*", "*"), True),
    ("Backups: logical pg_dump (daily; for managed PostgreSQL)", "backups.backup_logical",
     ("0", "2", "*", "*"), False),
    ("Backups: archive copy to Glacier (weekly)", "backups.archive_copy", ("0", "4", "0", "*"), True),
    ("Backups: restore drill (monthly)", "backups.restore_drill", ("0", "5", "*", "1"), True),
    ("Backups: WAL archiving health (hourly)", "backups.archive_check", ("5", "*", "*", "*"), True),
    ("Backups: apply retention (daily)", "backups.apply_retention", ("0", "3", "*", "*"), True),
    ("Backups: reap dead jobs (every 5 minutes)", "backups.reap_dead_jobs",
     ("*/5", "*", "*", "*"), True),
    ("Backups: clean 30-day job history (daily)", "backups.cleanup_history",
     ("40", "3", "*", "*"), True),
]


def schedule(apps, schema_editor):
    for name, task, (minute, hour, day_of_week, day_of_month), enabled in SCHEDULES:
        crontab = beat.crontab_get(
            apps, minute=minute, hour=hour, day_of_week=day_of_week, day_of_month=day_of_month
        )
        beat.periodic_task_ensure(
            apps,
            name=name,
            task=task,
            schedule=crontab,
            description="Staff may edit or pause this (backups).",
            enabled=enabled,
        )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, *(task for _name, task, _cron, _enabled in SCHEDULES))


def default_retention(apps, schema_editor):
    apps.get_model("backups", "RetentionPolicy").objects.get_or_create(
        name="Default", defaults={"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}
    )


def remove_default_retention(apps, schema_editor):
    apps.get_model("backups", "RetentionPolicy").objects.filter(name="Default").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(schedule, unschedule),
        migrations.RunPython(default_retention, remove_default_retention),
    ]
