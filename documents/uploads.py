"""Receiving upload request bodies: to a temporary file, and never past the size limit.

Django already spools files over FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) to a temporary file; the
handler below also stops reading a file as soon as it passes DOCUMENT_MAX_UPLOAD_BYTES, so an
oversized upload costs neither memory nor disk, and flags the request so the view can say why.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest


class SizeLimitUploadHandler(FileUploadHandler):
    """First in FILE_UPLOAD_HANDLERS: count each file's bytes, stop past the limit."""

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.DOCUMENT_MAX_UPLOAD_BYTES:
            self.request.upload_too_large = True
            raise StopUpload(connection_reset=True)
        return raw_data  # pass the chunk on to the next handler

    def file_complete(self, file_size: int) -> None:
        return None


def upload_too_large(request: HttpRequest) -> bool:
    return getattr(request, "upload_too_large", False)
