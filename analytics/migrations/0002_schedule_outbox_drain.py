from django.db import migrations

DRAIN, PURGE = "analytics.drain_outbox", "analytics.purge_sent_outbox"


def schedule(apps, schema_editor):
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    periodic_task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every_10s, _ = interval_model.objects.get_or_create(every=10, period="seconds")
    periodic_task_model.objects.get_or_create(
        name="Deliver analytics events to ClickHouse",
        defaults={
            "task": DRAIN,
            "interval": every_10s,
            "expires": None,
            "description": "Drains the event outbox. Staff may edit the interval or pause it.",
        },
    )
    daily, _ = crontab_model.objects.get_or_create(
        minute="41", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    periodic_task_model.objects.get_or_create(
        name="Purge delivered analytics events from the outbox (daily)",
        defaults={"task": PURGE, "crontab": daily, "description": "Staff may edit or pause this."},
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        task__in=[DRAIN, PURGE]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
