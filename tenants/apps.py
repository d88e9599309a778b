from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class TenantsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tenants"

    def ready(self) -> None:
        from tenants import checks  # noqa: F401  (registers the system checks)


class MetisAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "tenants.admin_site.MetisAdminSite"
