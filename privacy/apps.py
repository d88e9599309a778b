from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """The spec's privacy duties: data subjects, retention, erasure, portability."""

    name = "privacy"
    verbose_name = "Privacy"
