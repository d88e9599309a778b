from django.db import migrations

from metis import beat

TASK = "monitoring.record_metrics_sample"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Monitoring: store metric samples in ClickHouse (every minute)",
        task=TASK,
        schedule=beat.crontab_get(apps, minute="*"),
        description="Feeds the growth charts. Staff may edit or pause this.",
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, TASK)


class Migration(migrations.Migration):
    dependencies = [("django_celery_beat", "0019_alter_periodictasks_options")]

    operations = [migrations.RunPython(schedule, unschedule)]
