"""Celery tasks of the monitoring app: thin wrappers around monitoring.services and
monitoring.alerts.services."""

from __future__ import annotations

from celery import shared_task

from analytics import clickhouse
from monitoring import services
from monitoring.alerts import notify
from monitoring.alerts import services as alert_services
from tenants.tasks import RETRY_TRANSIENT, TRANSIENT_ERRORS

# Beat sends one a minute: a try must end within it, and retries stay few and close together,
# so an outage leaves gaps in the charts rather than a pile of late samples.
SAMPLE_LIMITS = {"soft_time_limit": 45, "time_limit": 55}
SAMPLE_RETRY = {
    **RETRY_TRANSIENT,
    "autoretry_for": (*TRANSIENT_ERRORS, clickhouse.ClickHouseUnavailable),
    "retry_backoff": 5,
    "retry_backoff_max": 15,
    "max_retries": 2,
}


@shared_task(
    name="monitoring.record_metrics_sample", ignore_result=True, **SAMPLE_LIMITS, **SAMPLE_RETRY
)
def record_metrics_sample() -> int:
    """Store the current metric figures in ClickHouse (beat: every minute). Idempotent within
    a minute (deduplicated insert); a missed minute is a gap in the charts, nothing more."""
    return services.metrics_sample_record()


# Beat sends one a minute; a late one is worthless (the next is on its way), so it never
# retries and ends well within its minute.
@shared_task(
    name="monitoring.evaluate_alerts", ignore_result=True, soft_time_limit=40, time_limit=50
)
def evaluate_alerts() -> None:
    """Evaluate every alert rule and open or resolve alerts (beat: every minute). Idempotent:
    one active alert per key, and a run that finds another running steps aside."""
    alert_services.alerts_evaluate()


# Exponential from 2 s, at most 10 min apart, jittered: a mail server or webhook that is down
# for up to about 50 minutes still gets the message; evaluation never waits for it.
NOTIFY_OPTIONS = {
    "bind": True,
    "ignore_result": True,
    "autoretry_for": (notify.DeliveryError,),
    "retry_backoff": 2,
    "retry_backoff_max": 10 * 60,
    "retry_jitter": True,
    "max_retries": 12,
    "soft_time_limit": 60,
    "time_limit": 75,
}


@shared_task(name="monitoring.send_alert_email", **NOTIFY_OPTIONS)
def send_alert_email(self, notification_id: int) -> None:
    """Mail an alert's notification to ALERT_EMAILS. Idempotent: a sent one is not sent again
    (a crash between the send and its record may send it twice)."""
    alert_services.notification_deliver(
        notification_id=notification_id, last_try=self.request.retries >= self.max_retries
    )


@shared_task(name="monitoring.send_alert_webhook", **NOTIFY_OPTIONS)
def send_alert_webhook(self, notification_id: int) -> None:
    """Post an alert's notification to ALERT_WEBHOOK_URL. Idempotent: a sent one is not sent
    again (a crash between the send and its record may send it twice)."""
    alert_services.notification_deliver(
        notification_id=notification_id, last_try=self.request.retries >= self.max_retries
    )
