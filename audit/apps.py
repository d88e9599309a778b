from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from audit import checks, context  # noqa: F401  (checks register themselves)

        connection_created.connect(context.wrapper_install)
