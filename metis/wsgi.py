"""WSGI entry point; refuses to start against a database role that RLS would not bind."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")

django_application = get_wsgi_application()

from django.conf import settings  # noqa: E402  (after setup, like the check below)

from metis import body_deadline  # noqa: E402
from tenants import checks  # noqa: E402  (needs the app registry loaded above)

checks.require_safe_database()

# The largest body the app accepts: one document plus Django's cap on the other form fields.
application = body_deadline.RequestBodyDeadline(
    django_application,
    timeout=settings.REQUEST_BODY_TIMEOUT,
    min_rate=settings.REQUEST_BODY_MIN_RATE,
    max_bytes=settings.DOCUMENT_MAX_UPLOAD_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
)
