from django.db import migrations

from metis import beat

TASK = "backups.backup_analytics"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Backups: analytics events to Parquet (daily)",
        task=TASK,
        schedule=beat.crontab_get(apps, minute="50", hour="1"),
        description="Staff may edit or pause this (backups).",
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, TASK)


class Migration(migrations.Migration):
    dependencies = [("backups", "0002_schedule_backups")]

    operations = [migrations.RunPython(schedule, unschedule)]
