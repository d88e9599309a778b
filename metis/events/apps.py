from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EventsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "metis.events"
    label = "events"
    verbose_name = "Events"

    def ready(self) -> None:
        # Each app declares its event types in `<app>/events.py`, beside the feature.
        autodiscover_modules("events")
