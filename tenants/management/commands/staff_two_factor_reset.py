"""Remove a staff member's second factors, so the next sign-in enrols a new app."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tenants import two_factor


class Command(BaseCommand):
    help = (
        "Remove a staff member's authenticator app and backup codes (a lost phone): their next "
        "sign-in asks them to set up a new app."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args, username: str, **options) -> None:
        user = get_user_model().objects.filter(username=username, is_staff=True).first()
        if user is None:
            raise CommandError(f"No staff member {username!r}.")
        removed = two_factor.second_factors_remove(user=user)
        self.stdout.write(f"Removed {removed} device(s) of {username}: they enrol at sign-in.")
