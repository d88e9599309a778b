"""The event types documents record (registered with metis.events).

Every document event carries `document_id` and `document_type` (documents.audit adds them).
"""

from metis.events import recorder

_DOCUMENT = ("document_id", "document_type")

UPLOADED = recorder.register("document.uploaded", data=(*_DOCUMENT, "size_bytes", "version"))
DOWNLOADED = recorder.register("document.downloaded", data=_DOCUMENT)
DELETED = recorder.register("document.deleted", data=_DOCUMENT)
TIER_CHANGED = recorder.register(
    "document.tier_changed", data=(*_DOCUMENT, "from_class", "to_class")
)
RESTORE_REQUESTED = recorder.register("document.restore_requested", data=_DOCUMENT)
RESTORED = recorder.register("document.restored", data=_DOCUMENT)
