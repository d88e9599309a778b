from django.db import migrations

from metis import beat

DRAIN, PURGE = "analytics.drain_outbox", "analytics.purge_sent_outbox"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Deliver analytics events to ClickHouse",
        task=DRAIN,
        schedule=beat.interval_get(apps, every=10, period="seconds"),
        description="Drains the event outbox. Staff may edit the interval or pause it.",
    )
    beat.periodic_task_ensure(
        apps,
        name="Purge delivered analytics events from the outbox (daily)",
        task=PURGE,
        schedule=beat.crontab_get(apps, minute="41", hour="3"),
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, DRAIN, PURGE)


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
