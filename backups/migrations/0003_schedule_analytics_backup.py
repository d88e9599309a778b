from django.db import migrations

TASK = "backups.backup_analytics"


def schedule(apps, schema_editor):
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    periodic_task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    daily, _ = crontab_model.objects.get_or_create(
        minute="50", hour="1", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    periodic_task_model.objects.get_or_create(
        name="Backups: analytics events to Parquet (daily)",
        defaults={
            "task": TASK,
            "crontab": daily,
            "description": "Staff may edit or pause this (backups).",
        },
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [("backups", "0002_schedule_backups")]

    operations = [migrations.RunPython(schedule, unschedule)]
