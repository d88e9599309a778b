from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        # prometheus_client writes its per-process files here from the first count on.
        Path(settings.PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
        if not settings.METRICS_ENABLED:
            return
        from celery import signals

        from metis.objectstore import clients
        from monitoring import instruments

        clients.on_client_event("after-call.s3", instruments.s3_call_counted)
        clients.on_client_event("after-call-error.s3", instruments.s3_call_failed_counted)
        signals.task_failure.connect(instruments.task_failure_counted, weak=False)
