from django.db import migrations

from metis import beat

TASK = "tenants.clear_expired_sessions"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Clear expired sessions (daily)",
        task=TASK,
        schedule=beat.crontab_get(apps, minute="17", hour="3"),
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, TASK)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
