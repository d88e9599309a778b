from django.db import migrations

from metis import beat

TIERING = "documents.tier_all_tenants"
RESTORES = "documents.check_restores"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Tier documents Standard → IA → Glacier (daily)",
        task=TIERING,
        schedule=beat.crontab_get(apps, minute="40", hour="2"),
        description="One tiering task per active tenant. Staff may edit or pause this.",
    )
    beat.periodic_task_ensure(
        apps,
        name="Check Glacier restores (every 15 minutes)",
        task=RESTORES,
        schedule=beat.interval_get(apps, every=15, period="minutes"),
        description="Marks requested restores ready. Staff may edit or pause this.",
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, TIERING, RESTORES)


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
