"""The Celery app: configuration from Django settings (CELERY_*), tasks autodiscovered.

Logging is Django's (settings.LOGGING, metis/logs.py) in workers and beat too: the request id
of the request that enqueued a task travels in a message header, and each task's log lines
carry it with the task's id, name and tenant.
"""

import os
from typing import Any

from celery import Celery
from celery.signals import (
    beat_init,
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
)

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


REQUEST_ID_HEADER = "metis_request_id"


@setup_logging.connect
def _django_logging(**_kwargs) -> None:
    # Connected, this signal stops Celery from replacing the root logger's handlers with its
    # own format: settings.LOGGING stays in force (JSON lines with the task's fields).
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@before_task_publish.connect
def _send_request_id(headers: dict[str, Any] | None = None, **_kwargs) -> None:
    from metis import logs

    request_id = logs.current().get("request_id")
    if headers is not None and request_id and REQUEST_ID_HEADER not in headers:
        headers[REQUEST_ID_HEADER] = request_id


# Each running task's context tokens, by task id: eager tasks run nested inside their caller,
# and an eager retry inside the task it retries, with the same id.
_task_tokens: dict[str, list[Any]] = {}


@task_prerun.connect
def _bind_task(task_id: str, task, kwargs: dict | None = None, **_kwargs) -> None:
    from metis import logs

    tenant_id = (kwargs or {}).get("tenant_id")  # a TenantTask's tenant, from its message
    token = logs.bind(
        task_id=task_id,
        task_name=task.name,
        request_id=task.request.get(REQUEST_ID_HEADER),
        tenant_id=tenant_id if isinstance(tenant_id, str) else None,
    )
    # Each task is one unit of read-your-writes (tenants/replica.py).
    from tenants import replica

    _task_tokens.setdefault(task_id, []).append((token, replica.unit_begin()))


@task_postrun.connect
def _unbind_task(task_id: str, **_kwargs) -> None:
    from metis import logs

    tokens = _task_tokens.get(task_id)
    if tokens:
        from tenants import replica

        log_token, unit_token = tokens.pop()
        replica.unit_end(unit_token)
        logs.reset(log_token)
        if not tokens:
            del _task_tokens[task_id]


@before_task_publish.connect
def _heartbeat_sent(sender: str | None = None, **_kwargs) -> None:
    # Beat is the only sender of the heartbeat: its sending is beat's tick (metis.health).
    from metis.health import tasks

    if sender == tasks.TASK_NAME:
        tasks.beat_ticked()
