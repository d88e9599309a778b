"""The admin app, configured to use Metis's admin site (metis.admin_site) as the default one."""

from django.contrib.admin import apps as admin_apps


class MetisAdminConfig(admin_apps.AdminConfig):
    default_site = "metis.admin_site.MetisAdminSite"
