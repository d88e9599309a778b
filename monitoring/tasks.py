"""Celery tasks of the monitoring app: thin wrappers around monitoring.services."""

from __future__ import annotations

from celery import shared_task

from monitoring import services


@shared_task(name="monitoring.record_metrics_sample", ignore_result=True)
def record_metrics_sample() -> int:
    """Store the current metric figures in ClickHouse (beat: every minute). Idempotent within
    a minute (deduplicated insert); a missed minute is a gap in the charts, nothing more."""
    return services.metrics_sample_record()
