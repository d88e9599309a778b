# The schedules in a migration of their own: the first one's triggers lock the beat table until
# it commits, and these rows are written through another connection.
from django.db import migrations

from metis import beat

PARTITIONS = "audit.partitions_ensure"
ANCHORS = "audit.anchor_all"
RETENTION = "audit.retention_export"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Audit log: partitions three months ahead (daily)",
        task=PARTITIONS,
        schedule=beat.crontab_get(apps, minute="10", hour="0"),
    )
    beat.periodic_task_ensure(
        apps,
        name="Audit log: anchor each chain's head in object storage (daily)",
        task=ANCHORS,
        schedule=beat.crontab_get(apps, minute="20", hour="0"),
    )
    beat.periodic_task_ensure(
        apps,
        name="Audit log: export months past retention to Parquet, then drop them (monthly)",
        task=RETENTION,
        schedule=beat.crontab_get(apps, minute="30", hour="1", day_of_month="2"),
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, PARTITIONS, ANCHORS, RETENTION)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_audit_log")]

    operations = [migrations.RunPython(schedule, unschedule)]
