"""Evaluate the rules into alerts, acknowledge them, and deliver their notifications.

The flapping guard: an alert opens (and people are told) the first time its condition holds;
it resolves (and people are told) only once every evaluation for ALERT_RESOLVE_AFTER_SECONDS
has seen it clear. A condition that comes and goes within that time stays one open alert.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from monitoring.alerts import notify, rules
from monitoring.models import (
    Alert,
    AlertNotification,
    AlertState,
    Channel,
    DeliveryState,
    NotificationEvent,
)

logger = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """What one evaluation did; `skipped`: another evaluation held the lock."""

    opened: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    failed_rules: list[str] = field(default_factory=list)
    skipped: bool = False


def alerts_evaluate(
    *, now: datetime.datetime | None = None, only: list[str] | None = None
) -> Evaluation:
    """Run the enabled rules (or those named in `only`) and open, refresh or resolve alerts.

    Idempotent: a second run at the same moment opens nothing new (one active alert per key)
    and sends nothing twice. Figures are read first, outside any transaction; then one short
    transaction, under a lock so that two evaluations never interleave, writes the alerts.
    """
    now = now or timezone.now()
    evaluation = Evaluation()
    findings: dict[str, tuple[rules.Rule, list[rules.Finding]]] = {}
    for rule in rules.rules_enabled(only):
        try:
            found = rule.check(now)
        except Exception:
            logger.exception("alerts: the %s rule could not read its figures", rule.name)
            evaluation.failed_rules.append(rule.name)
            continue
        if found is not None:
            findings[rule.name] = (rule, found)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext('monitoring.alerts'))")
            if not cursor.fetchone()[0]:
                evaluation.skipped = True
                return evaluation
        for rule, found in findings.values():
            _rule_apply(rule, found, now=now, evaluation=evaluation)
    return evaluation


def _rule_apply(
    rule: rules.Rule,
    found: list[rules.Finding],
    *,
    now: datetime.datetime,
    evaluation: Evaluation,
) -> None:
    active = {
        alert.subject: alert
        for alert in Alert.objects.active().filter(rule=rule.name).select_for_update()
    }
    for finding in found:
        alert = active.pop(finding.subject, None)
        if alert is None:
            alert = Alert.objects.create(
                rule=rule.name,
                subject=finding.subject,
                severity=rule.severity,
                message=finding.message,
                value=finding.value,
                threshold=finding.threshold,
                first_seen_at=now,
                last_seen_at=now,
            )
            _notifications_send(alert, NotificationEvent.OPENED)
            evaluation.opened.append(alert)
            continue
        alert.message, alert.value, alert.threshold = (
            finding.message,
            finding.value,
            finding.threshold,
        )
        alert.last_seen_at, alert.clear_since = now, None
        alert.save(update_fields=["message", "value", "threshold", "last_seen_at", "clear_since"])
    resolve_after = datetime.timedelta(seconds=settings.ALERT_RESOLVE_AFTER_SECONDS)
    for alert in active.values():  # active, and not found this time: clear
        alert.clear_since = alert.clear_since or now
        if now - alert.clear_since < resolve_after:
            alert.save(update_fields=["clear_since"])
            continue
        alert.state, alert.resolved_at = AlertState.RESOLVED, now
        alert.save(update_fields=["clear_since", "state", "resolved_at"])
        _notifications_send(alert, NotificationEvent.RESOLVED)
        evaluation.resolved.append(alert)


def _notifications_send(alert: Alert, event: str) -> None:
    """Record one notification per configured channel; its task sends it once we commit."""
    from monitoring import tasks  # tasks wrap this module

    channels = {
        Channel.EMAIL: (bool(settings.ALERT_EMAILS), tasks.send_alert_email),
        Channel.WEBHOOK: (bool(settings.ALERT_WEBHOOK_URL), tasks.send_alert_webhook),
    }
    for channel, (configured, task) in channels.items():
        if not configured:
            continue
        notification = AlertNotification.objects.create(alert=alert, event=event, channel=channel)
        transaction.on_commit(partial(task.delay, notification.pk))


def notification_deliver(*, notification_id: int, last_try: bool) -> AlertNotification:
    """Send one notification unless it was sent already; record how it went.

    Raises notify.DeliveryError when a later try may succeed (the task retries it); on the
    last try the notification is marked failed. Holds no transaction while it sends.
    """
    notification = AlertNotification.objects.select_related("alert").get(pk=notification_id)
    if notification.state == DeliveryState.SENT:
        return notification  # a redelivered task: people were told already
    send = notify.email_send if notification.channel == Channel.EMAIL else notify.webhook_send
    notification.attempts += 1
    try:
        send(notification.alert, notification.event)
    except notify.DeliveryError as error:
        notification.last_error = str(error)[:2000]
        retry = error.transient and not last_try
        notification.state = DeliveryState.RETRYING if retry else DeliveryState.FAILED
        notification.save(update_fields=["attempts", "last_error", "state"])
        if retry:
            raise
        logger.error("alerts: %s not delivered: %s", notification, error)
        return notification
    notification.state, notification.sent_at = DeliveryState.SENT, timezone.now()
    notification.save(update_fields=["attempts", "state", "sent_at"])
    return notification


def alerts_acknowledge(*, alerts: QuerySet[Alert], user) -> int:
    """Mark the open ones among `alerts` acknowledged by `user`, now; return how many.

    They stay active (no duplicate opens) and still resolve, with a notification, when their
    condition clears.
    """
    with transaction.atomic():
        return alerts.filter(state=AlertState.OPEN).update(
            state=AlertState.ACKNOWLEDGED, acknowledged_by=user, acknowledged_at=timezone.now()
        )
