"""The event types exports record (registered with metis.events)."""

from metis.events import recorder

_EXPORT = ("export_id", "scope")

REQUESTED = recorder.register("export.requested", data=_EXPORT)
DOWNLOADED = recorder.register("export.downloaded", data=_EXPORT)
