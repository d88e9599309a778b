"""The Celery app: configuration from Django settings (CELERY_*), tasks autodiscovered."""

import os

from celery import Celery
from celery.signals import beat_init, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")

app = Celery("metis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
@beat_init.connect
def _refuse_unsafe_database(**_kwargs) -> None:
    # Workers and beat refuse to start against a database role that RLS would not bind.
    # Celery logs and swallows exceptions from signal handlers; SystemExit gets through.
    from django.core.management.base import SystemCheckError

    from tenants import checks

    try:
        checks.require_safe_database()
    except SystemCheckError as exc:
        raise SystemExit(str(exc)) from exc
