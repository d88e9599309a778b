from django.db import migrations

from metis import beat

RETENTION = "audit.retention_run"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Audit log: export months past retention to Parquet, then drop them (daily)",
        task=RETENTION,
        schedule=beat.crontab_get(apps, minute="40", hour="0"),
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, RETENTION)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_retention_cut_bridges")]

    operations = [migrations.RunPython(schedule, unschedule)]
