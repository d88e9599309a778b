"""Reads of alerts for staff pages (the admin's Monitoring page shows these)."""

from __future__ import annotations

from monitoring.models import Alert


def open_alerts() -> list[Alert]:
    """Return the active alerts (open or acknowledged), critical first, then the oldest first."""
    return list(Alert.objects.active().most_urgent_first().select_related("acknowledged_by"))
