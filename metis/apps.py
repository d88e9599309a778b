"""The admin app, configured to use Metis's admin site (metis.admin_site) as the default one."""

from django.contrib.admin import apps as admin_apps


class MetisAdminConfig(admin_apps.AdminConfig):
    default_site = "metis.admin_site.MetisAdminSite"

    def ready(self) -> None:
        super().ready()
        from metis import checks  # noqa: F401  (registers the deploy checks)
        from metis.objectstore import clients
        from tenants import db

        # S3 round trips never hold a pooled database connection (tenants.pool).
        clients.before_each_use(db.connection_release)
