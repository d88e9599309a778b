"""The privacy app's models; each part keeps its own module (exports: privacy/exports/models.py)."""

from privacy.exports.models import Export, ExportScope, ExportStatus

__all__ = ["Export", "ExportScope", "ExportStatus"]
