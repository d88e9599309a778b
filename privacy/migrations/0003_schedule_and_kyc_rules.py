from django.db import migrations

from metis import beat

ERASE_DUE = "privacy.erase_due"


def schedule_and_rules(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Erase held data whose retention has expired (daily)",
        task=ERASE_DUE,
        schedule=beat.crontab_get(apps, minute="17", hour="2"),
    )
    # Indian lenders keep KYC records five years after the relationship ends.
    rule = apps.get_model("privacy", "RetentionRule")
    for document_type in ("pan", "aadhar"):
        rule.objects.get_or_create(
            document_type=document_type,
            defaults={"name": "KYC: 5 years after the relationship ends", "years": 5},
        )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, ERASE_DUE)



class Migration(migrations.Migration):
    dependencies = [
        ("privacy", "0002_subjects_and_erasure"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_and_rules, unschedule)]
