"""Template context processors of the documents app."""

from __future__ import annotations

from documents import replication


def primary_storage(request) -> dict:
    """`primary_storage_down` for the documents pages' banner. A callable, so only a template
    that shows the banner asks (and the answer is cached a few seconds; no DR bucket: False)."""
    return {"primary_storage_down": replication.primary_down}
