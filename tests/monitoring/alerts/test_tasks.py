"""Notifications through a real worker: a mail server that is down and a webhook answering 503
are retried with backoff, and each gets its message once it is back."""

from __future__ import annotations

import datetime
import os
import signal
import uuid

import pytest
from celery.app.routes import Router, prepare

from metis.celery import app
from monitoring.alerts import services
from monitoring.models import AlertNotification, DeliveryState
from tests.monitoring.alerts.conftest import ALERT_EMAIL, SmtpServer, point_mail_at
from tests.monitoring.alerts.test_rules import _pending_events
from tests.support import celery_worker
from tests.support.ports import free_port


@pytest.fixture
def private_queue(monkeypatch, settings):
    """Send the notification tasks to a queue of the test's own, on the real Redis."""
    if not settings.REDIS_URL:
        pytest.skip("needs a real Redis broker (REDIS_URL)")
    queue = f"test-alerts-{uuid.uuid4().hex}"
    names = ("monitoring.send_alert_email", "monitoring.send_alert_webhook")
    routes = {name: {"queue": queue} for name in names}
    router = Router(routes=prepare(routes), queues=app.amqp.queues, create_missing=True, app=app)
    monkeypatch.setattr(app.amqp, "router", router)
    return queue


@pytest.mark.redis
@pytest.mark.committed
def test_a_down_mail_server_and_webhook_are_retried_until_they_return(
    tenant, settings, monkeypatch, private_queue, webhook_server, tmp_path
):
    smtp = SmtpServer(port=free_port())  # not started yet: connection refused
    webhook_server.status = 503
    settings.ALERT_EMAILS = [ALERT_EMAIL]
    settings.ALERT_WEBHOOK_URL = webhook_server.url
    settings.ALERT_OUTBOX_PENDING_MAX = 0
    point_mail_at(settings, smtp.port)
    monkeypatch.setenv("EMAIL_URL", f"smtp://127.0.0.1:{smtp.port}")
    monkeypatch.setenv("ALERT_EMAILS", ALERT_EMAIL)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook_server.url)
    worker = celery_worker.start(
        queue=private_queue, transport_options={}, log=tmp_path / "worker.log"
    )
    try:
        _pending_events(tenant, 1, age=datetime.timedelta(0))
        (alert,) = services.alerts_evaluate(only=["outbox_backlog"]).opened

        def retried() -> bool:
            states = AlertNotification.objects.filter(alert=alert)
            return states.count() == 2 and all(
                n.attempts >= 2 and n.state == DeliveryState.RETRYING for n in states
            )

        celery_worker.wait_for(retried, timeout=60, what="two failed tries of each")
        assert webhook_server.delivered() == [] and len(webhook_server.posts) >= 2
        smtp.start()
        webhook_server.status = 200

        def delivered() -> bool:
            states = AlertNotification.objects.filter(alert=alert)
            return all(n.state == DeliveryState.SENT for n in states)

        celery_worker.wait_for(delivered, timeout=90, what="both delivered")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        smtp.stop()
    assert len(smtp.messages) == 1
    assert smtp.subjects()[0].startswith("[Metis WARNING] outbox_backlog")
    assert len(webhook_server.delivered()) == 1
    # The record keeps the tries and the last failure that preceded the delivery.
    email, webhook = (
        AlertNotification.objects.get(alert=alert, channel=c) for c in ("email", "webhook")
    )
    assert email.sent_at and email.attempts >= 3 and "ConnectionRefused" in email.last_error
    assert webhook.sent_at and webhook.attempts >= 3 and webhook.last_error == "webhook: HTTP 503"
