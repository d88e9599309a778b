"""The monthly region-loss drill in Celery beat: a restore from the second region alone.

On the 15th, half a month from the restore drill on the 1st (they share one lock). With no
second region configured the task records nothing and says so in the worker's log.
"""

from django.db import migrations

from metis import beat

TASK = "backups.region_loss_drill"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Backups: region-loss drill from the second region (monthly)",
        task=TASK,
        schedule=beat.crontab_get(apps, minute="0", hour="5", day_of_month="15"),
        description="Staff may edit or pause this (backups).",
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, TASK)


class Migration(migrations.Migration):
    dependencies = [("backups", "0005_second_region_repo")]

    operations = [migrations.RunPython(schedule, unschedule)]
