from django.db import migrations

EXPORT_TASK = "analytics.export_parquet"
REPORTS_TASK = "analytics.usage_reports_weekly"


def schedule(apps, schema_editor):
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    periodic_task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    daily, _ = crontab_model.objects.get_or_create(
        minute="40", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    weekly, _ = crontab_model.objects.get_or_create(
        minute="10", hour="4", day_of_week="1", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    periodic_task_model.objects.get_or_create(
        name="Export tenants, users and documents to Parquet (daily)",
        defaults={
            "task": EXPORT_TASK,
            "crontab": daily,
            "description": "Feeds the SQL workbench. Staff may edit or pause this.",
        },
    )
    periodic_task_model.objects.get_or_create(
        name="Usage report per tenant (weekly, Monday)",
        defaults={
            "task": REPORTS_TASK,
            "crontab": weekly,
            "description": "Last week's CSV under tenants/<id>/reports/. Staff may edit or pause this.",
        },
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        task__in=[EXPORT_TASK, REPORTS_TASK]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0010_workbench_query"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
