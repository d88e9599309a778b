"""One registry of everything: every process's counters plus the scrape-time figures."""

from __future__ import annotations

from django.conf import settings
from prometheus_client import CollectorRegistry, multiprocess

from monitoring.collectors import ScrapeCollector


def registry() -> CollectorRegistry:
    """Return a fresh registry reading the multiprocess files and the scrape-time figures."""
    registry = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    registry.register(ScrapeCollector())
    return registry
