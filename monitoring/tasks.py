"""Celery tasks of the monitoring app: thin wrappers around monitoring.services."""

from __future__ import annotations

from celery import shared_task

from analytics import clickhouse
from monitoring import services
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
