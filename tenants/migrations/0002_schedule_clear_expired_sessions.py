from django.db import migrations

TASK = "tenants.clear_expired_sessions"


def schedule(apps, schema_editor):
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    periodic_task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    daily, _ = crontab_model.objects.get_or_create(
        minute="17", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    periodic_task_model.objects.get_or_create(
        name="Clear expired sessions (daily)",
        defaults={"task": TASK, "crontab": daily, "description": "Staff may edit or pause this."},
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule, unschedule)]
