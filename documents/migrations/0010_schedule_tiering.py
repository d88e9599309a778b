from django.db import migrations

TIERING = "documents.tier_all_tenants"
RESTORES = "documents.check_restores"


def schedule(apps, schema_editor):
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    periodic_task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    nightly, _ = crontab_model.objects.get_or_create(
        minute="40", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    every_15_minutes, _ = interval_model.objects.get_or_create(every=15, period="minutes")
    periodic_task_model.objects.get_or_create(
        name="Tier documents Standard → IA → Glacier (daily)",
        defaults={
            "task": TIERING,
            "crontab": nightly,
            "description": "One tiering task per active tenant. Staff may edit or pause this.",
        },
    )
    periodic_task_model.objects.get_or_create(
        name="Check Glacier restores (every 15 minutes)",
        defaults={
            "task": RESTORES,
            "interval": every_15_minutes,
            "description": "Marks requested restores ready. Staff may edit or pause this.",
        },
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        task__in=[TIERING, RESTORES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
