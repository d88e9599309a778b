from django.db import migrations

from metis import beat

SWEEP = "documents.replicate_all_tenants"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Copy documents to the DR bucket (every 5 minutes)",
        task=SWEEP,
        schedule=beat.interval_get(apps, every=5, period="minutes"),
        description=(
            "Stored versions not yet copied to DOCUMENTS_DR_BUCKET (a task lost, the DR away) "
            "are copied and verified. Does nothing without a DR bucket. Staff may edit or pause "
            "this."
        ),
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, SWEEP)


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0018_document_version_replication"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
