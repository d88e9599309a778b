"""The tenant URLconf with the restore URLs included, as the lead will wire them at merge."""

from documents.restore_urls import urlpatterns as restore_urlpatterns
from tenants.urls import urlpatterns as tenant_urlpatterns

urlpatterns = [*tenant_urlpatterns, *restore_urlpatterns]
