from django.apps import AppConfig


class TenantsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tenants"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from tenants import (
            accounts_seal,
            checks,  # noqa: F401  (registers the system checks)
            lookup,
        )

        post_migrate.connect(_seal_key_refresh, sender=self)
        accounts_seal.receivers_connect()
        lookup.receivers_connect()


def _seal_key_refresh(sender, using, plan=None, **kwargs) -> None:
    """Install the current seal key at every migrate, so a rotated key takes effect."""
    from django.db import connections

    from tenants import seal

    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f"{seal.PRIVATE_SCHEMA}.tenant_seal_key"])
        if cursor.fetchone()[0] is None:
            return  # migrated backwards past the seal
    seal.seal_key_install(connection)
