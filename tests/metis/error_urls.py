"""The real URLconfs (and their error handlers, imported by name) plus views that fail.

tests/metis/test_errors.py points ROOT_URLCONF and TENANT_URLCONF here; were a handler missing
from the real module, importing it here would fail.
"""

from django.core.exceptions import PermissionDenied
from django.urls import path

from metis import tenant_urls, urls


def forbidden(request):
    raise PermissionDenied("not for you")


def broken(request):
    raise RuntimeError("a bug")


_failing = [path("forbidden/", forbidden), path("broken/", broken)]


class Staff:
    urlpatterns = [*_failing, *urls.urlpatterns]
    handler400 = urls.handler400
    handler403 = urls.handler403
    handler404 = urls.handler404
    handler500 = urls.handler500


class Tenant:
    urlpatterns = [*_failing, *tenant_urls.urlpatterns]
    handler400 = tenant_urls.handler400
    handler403 = tenant_urls.handler403
    handler404 = tenant_urls.handler404
    handler500 = tenant_urls.handler500
