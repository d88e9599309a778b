"""Log lines: JSON with time, level, logger, request id, tenant, user, and in tasks the task.

The lines are read as the configured handler writes them (settings.LOGGING, with its stream
pointed at a buffer), from real requests through the whole middleware, and from a real worker
process running a task that a real request enqueued.
"""

from __future__ import annotations

import copy
import io
import json
import logging.config
import re
import uuid

import pytest
from celery.app.routes import Router, prepare
from django.conf import settings
from django.test import Client

from metis import logs
from metis.celery import app
from tests.conftest import host_of
from tests.support import celery_worker

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _parse(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def json_log():
    """The configured JSON handler, writing to a buffer; return a reader of its lines."""
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["formatter"] = "json"
    buffer = io.StringIO()
    config["handlers"]["console"]["stream"] = buffer
    logging.config.dictConfig(config)
    yield lambda: _parse(buffer.getvalue())
    logging.config.dictConfig(settings.LOGGING)


def _request_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "metis.request"]


def test_request_line_has_time_level_logger_request_tenant_and_user(
    json_log, tenant_client, tenant, tenant_user
):
    response = tenant_client.get("/", HTTP_X_REQUEST_ID="edge-7f3a.42")

    assert response["X-Request-ID"] == "edge-7f3a.42"
    [line] = _request_lines(json_log())[-1:]
    assert ISO_UTC.match(line["time"])
    assert line["level"] == "INFO"
    assert line["request_id"] == "edge-7f3a.42"
    assert line["tenant_id"] == str(tenant.pk)
    assert line["user_id"] == str(tenant_user.pk) and line["user_type"] == "tenant"
    assert line["status"] == response.status_code and line["method"] == "GET"
    assert line["message"] == f"GET {line['route'] or '-'} {response.status_code}"
    assert "task_id" not in line
    assert tenant_user.email not in json.dumps(json_log())  # ids, never emails


def test_staff_request_line_names_the_staff_user(json_log, staff_client, staff_user):
    response = staff_client.get("/admin/")

    [line] = _request_lines(json_log())[-1:]
    assert line["request_id"] == response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])  # none sent: one is made
    assert line["user_id"] == str(staff_user.pk) and line["user_type"] == "staff"
    assert "tenant_id" not in line


@pytest.mark.parametrize(
    "hostile",
    [
        'abc\n{"level": "CRITICAL", "message": "forged"}',
        "x" * 10_000,
        "abc def",
        "<script>",
    ],
)
def test_hostile_request_id_is_replaced(json_log, tenant, hostile):
    response = Client(HTTP_HOST=host_of(tenant)).get("/login/", HTTP_X_REQUEST_ID=hostile)

    made = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    [line] = _request_lines(json_log())
    assert line["request_id"] == made
    assert "forged" not in json.dumps(json_log()) and "xxxxxxxxxx" not in json.dumps(json_log())


def test_anonymous_tenant_request_has_the_tenant_and_no_user(json_log, tenant):
    Client(HTTP_HOST=host_of(tenant)).get("/login/")

    [line] = _request_lines(json_log())
    assert line["tenant_id"] == str(tenant.pk)
    assert "user_id" not in line


def test_the_context_ends_with_the_request(json_log, tenant_client):
    tenant_client.get("/")
    logging.getLogger("tests.after").warning("after the request")

    [after] = [line for line in json_log() if line["logger"] == "tests.after"]
    assert after["level"] == "WARNING"
    assert "request_id" not in after and "tenant_id" not in after


def test_text_format_shows_the_bound_fields():
    record = logging.makeLogRecord({"name": "x", "levelname": "INFO", "msg": "hello"})
    with logs.bound(request_id="r-1", task_id="t-1"):
        logs.ContextFilter().filter(record)
    line = logs.TextFormatter().format(record)
    assert re.match(r"^\d{4}-\d\d-\d\dT\S+Z INFO x: hello \[request_id=r-1 task_id=t-1\]$", line)


@pytest.fixture
def private_queue(monkeypatch, settings):
    """Send the password-reset task to a queue of the test's own, on the real Redis."""
    if not settings.REDIS_URL:
        pytest.skip("needs a real Redis broker (REDIS_URL)")
    queue = f"test-{uuid.uuid4().hex}"
    router = Router(
        routes=prepare({"tenants.password_reset_request": {"queue": queue}}),
        queues=app.amqp.queues,
        create_missing=True,
        app=app,
    )
    monkeypatch.setattr(app.amqp, "router", router)
    return queue


@pytest.mark.redis
@pytest.mark.committed
def test_request_id_travels_into_the_task_and_its_log_lines(
    json_log, private_queue, tenant, tenant_user, tmp_path
):
    log = tmp_path / "worker.log"
    worker = celery_worker.start(queue=private_queue, transport_options={}, log=log)
    try:
        response = Client(HTTP_HOST=host_of(tenant)).post(
            "/password-reset/", {"email": tenant_user.email}, HTTP_X_REQUEST_ID="req-from-edge-1"
        )
        assert response.status_code == 302

        def task_lines() -> list[dict]:
            return [
                line
                for line in _parse(log.read_text())
                if line.get("task_name") == "tenants.password_reset_request"
            ]

        lines = celery_worker.wait_for(task_lines, timeout=30, what="the task's log lines")
    finally:
        worker.kill()
        worker.wait()

    succeeded = next(line for line in lines if "succeeded" in line["message"])
    assert succeeded["request_id"] == "req-from-edge-1"
    assert re.fullmatch(r"[0-9a-f-]{36}", succeeded["task_id"])
    assert succeeded["task_id"] in succeeded["message"]
    assert succeeded["tenant_id"] == str(tenant.pk)
    assert succeeded["logger"] == "celery.app.trace" and ISO_UTC.match(succeeded["time"])
    assert tenant_user.email not in json.dumps(lines)
