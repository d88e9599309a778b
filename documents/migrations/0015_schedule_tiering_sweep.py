from django.db import migrations

from metis import beat

SWEEP = "documents.sweep_interrupted_tiering"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Finish interrupted tiering (every 5 minutes)",
        task=SWEEP,
        schedule=beat.interval_get(apps, every=5, period="minutes"),
        description=(
            "Documents whose tiering run died between the S3 copy and the row's update get the "
            "class their object is in. Staff may edit or pause this."
        ),
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, SWEEP)


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0014_document_tiering_claim"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
