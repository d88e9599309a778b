"""WSGI entry point; refuses to start against a database role that RLS would not bind."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")

application = get_wsgi_application()

from tenants import checks  # noqa: E402  (needs the app registry loaded above)

checks.require_safe_database()
