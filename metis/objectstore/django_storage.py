"""Django's default file storage, pointed at the documents bucket through django-storages.

The services use `ObjectStore` directly (versions, classes, multipart, presigning); this backend
is for Django code that expects a Storage (`default_storage`, a FileField). Its bucket,
endpoint, credentials and encryption come from the same place as the store's.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from storages.backends.s3 import S3Storage

from metis.objectstore.store import documents_store


class DocumentsStorage(S3Storage):
    def __init__(self, **overrides: Any) -> None:
        store = documents_store()
        options = {
            "bucket_name": store.bucket,
            "endpoint_url": store.endpoint.url or None,
            "region_name": store.endpoint.region,
            "access_key": store.endpoint.access_key or None,
            "secret_key": store.endpoint.secret_key or None,
            "addressing_style": store.endpoint.addressing_style,
            "signature_version": "s3v4",
            "object_parameters": store.sse,
            "default_acl": None,
            "file_overwrite": False,
            "querystring_expire": settings.PRESIGNED_URL_EXPIRES,
        }
        super().__init__(**{**options, **overrides})
