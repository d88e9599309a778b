# The schedules in a migration of their own: the first one's triggers lock the beat table until
# it commits, and these rows are written through another connection.
from django.db import migrations

from metis import beat

PARTITIONS = "audit.partitions_ensure"
ANCHORS = "audit.anchor_all"


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


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, PARTITIONS, ANCHORS)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_audit_log")]

    operations = [migrations.RunPython(schedule, unschedule)]
