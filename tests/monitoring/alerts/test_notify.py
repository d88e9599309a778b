from __future__ import annotations

import datetime

import pytest

from monitoring.models import AlertNotification, DeliveryState
from tests.monitoring.alerts.conftest import ALERT_EMAIL, evaluate
from tests.monitoring.alerts.test_rules import _pending_events

pytestmark = pytest.mark.committed


def test_the_mail_and_the_post_carry_the_figure_the_threshold_and_the_admin_link(
    tenant, alerting, settings
):
    settings.ALERT_OUTBOX_PENDING_MAX = 0
    _pending_events(tenant, 1, age=datetime.timedelta(0))
    (alert,) = evaluate("outbox_backlog").opened
    (mail,) = alerting.smtp.messages
    assert mail["To"] == ALERT_EMAIL
    body = mail.get_payload(decode=True).decode()
    assert "1 events wait in the outbox for ClickHouse (threshold 0)." in body
    assert f"/admin/monitoring/alert/{alert.pk}/change/" in body
    (text,) = alerting.webhook.delivered()
    assert text.splitlines() == body.strip().splitlines()  # mail bodies travel with CRLF


def test_a_webhook_that_refuses_for_good_is_recorded_failed_and_not_retried(
    tenant, alerting, settings
):
    alerting.webhook.status = 410  # a Slack hook that was removed
    settings.ALERT_OUTBOX_PENDING_MAX = 0
    _pending_events(tenant, 1, age=datetime.timedelta(0))
    (alert,) = evaluate("outbox_backlog").opened
    webhook = AlertNotification.objects.get(alert=alert, channel="webhook")
    assert webhook.state == DeliveryState.FAILED and webhook.attempts == 1
    assert webhook.last_error == "webhook: HTTP 410"
    assert len(alerting.webhook.posts) == 1
    assert AlertNotification.objects.get(alert=alert, channel="email").state == "sent"


def test_no_channel_configured_records_no_notification(tenant, alerting, settings):
    settings.ALERT_EMAILS, settings.ALERT_WEBHOOK_URL = [], ""
    settings.ALERT_OUTBOX_PENDING_MAX = 0
    _pending_events(tenant, 1, age=datetime.timedelta(0))
    assert len(evaluate("outbox_backlog").opened) == 1
    assert not AlertNotification.objects.exists() and alerting.counts() == (0, 0)
