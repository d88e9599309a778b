"""Monitoring fixtures: read one figure the way Prometheus would, through the /metrics registry."""

from __future__ import annotations

from django.conf import settings
from prometheus_client import CollectorRegistry, multiprocess

from monitoring import exposition

# The real ClickHouse engine in a private directory, a fresh database per test (as analytics').
from tests.analytics.conftest import chdb_dir, clickhouse_db  # noqa: F401


def figure(name: str, **labels: str) -> float | None:
    """Return the current value of sample `name` with exactly `labels`, or None if absent."""
    return exposition.registry().get_sample_value(name, labels)


def figures(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Return every sample of `name`: {sorted label pairs: value}."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in exposition.registry().collect()
        for sample in family.samples
        if sample.name == name
    }


def counted(name: str, **labels: str) -> float:
    """Return a counter or histogram sample summed over every process's files (0 if none yet)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    return registry.get_sample_value(name, labels) or 0.0
