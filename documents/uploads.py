"""Receiving upload request bodies: to a temporary file, and never past the size limit.

Django already spools files over FILE_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) to a temporary file; the
handler below refuses a body whose Content-Length already says it is too large without reading
it, and stops storing a file as soon as it passes DOCUMENT_MAX_UPLOAD_BYTES. Either way an
oversized upload costs neither memory nor disk, and the request is flagged so the view can say
why.

Two bodies Django parses as simply missing the file, which the view would answer with "This
field is required": a body cut short before the file's closing boundary (Django drops the
partial file and tells the handlers, which flag the request), and a chunked body without a
Content-Length (Django reads no body at all). `body_problem` names both.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, QueryDict
from django.utils.datastructures import MultiValueDict

from tenants import json_body

# Room for the form's other fields and the multipart boundaries around the file.
_FORM_OVERHEAD = 64 * 1024


class SizeLimitUploadHandler(FileUploadHandler):
    """First in FILE_UPLOAD_HANDLERS: refuse a body too large to hold an acceptable file
    without reading it; otherwise count each file's bytes and stop past the limit."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > settings.DOCUMENT_MAX_UPLOAD_BYTES + _FORM_OVERHEAD:
            self.request.upload_too_large = True
            return QueryDict(), MultiValueDict()  # parse nothing; the view answers 413
        return None

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received += len(raw_data)
        if self.received > settings.DOCUMENT_MAX_UPLOAD_BYTES:
            self.request.upload_too_large = True
            # Read (and drop) the rest, so the client gets the answer instead of a reset.
            raise StopUpload(connection_reset=False)
        return raw_data  # pass the chunk on to the next handler

    def file_complete(self, file_size: int) -> None:
        return None

    def upload_interrupted(self) -> None:
        # The body ended inside a file: no closing boundary came (cut short, or sent wrong).
        self.request.upload_incomplete = True


def upload_too_large(request: HttpRequest) -> bool:
    return getattr(request, "upload_too_large", False)


def body_problem(request: HttpRequest) -> tuple[int, str] | None:
    """Return (status, message) when the upload's body could not be read whole, else None."""
    if json_body.chunked_without_length(request):
        return 411, (
            "The upload came chunked, without a Content-Length header, so it could not be "
            "read; nothing was saved. Send the file with its Content-Length."
        )
    if getattr(request, "upload_incomplete", False):
        return 400, (
            "The upload was incomplete: the request ended before the file did. Nothing was "
            "saved; upload the file again."
        )
    return None
