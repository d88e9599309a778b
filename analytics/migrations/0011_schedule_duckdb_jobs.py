from django.db import migrations

from metis import beat

EXPORT_TASK = "analytics.export_parquet"
REPORTS_TASK = "analytics.usage_reports_weekly"


def schedule(apps, schema_editor):
    beat.periodic_task_ensure(
        apps,
        name="Export tenants, users and documents to Parquet (daily)",
        task=EXPORT_TASK,
        schedule=beat.crontab_get(apps, minute="40", hour="2"),
        description="Feeds the SQL workbench. Staff may edit or pause this.",
    )
    beat.periodic_task_ensure(
        apps,
        name="Usage report per tenant (weekly, Monday)",
        task=REPORTS_TASK,
        schedule=beat.crontab_get(apps, minute="10", hour="4", day_of_week="1"),
        description="Last week's CSV under tenants/<id>/reports/. Staff may edit or pause this.",
    )


def unschedule(apps, schema_editor):
    beat.periodic_tasks_remove(apps, EXPORT_TASK, REPORTS_TASK)


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0010_workbench_query"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
