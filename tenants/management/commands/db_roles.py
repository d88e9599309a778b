from django.conf import settings
from django.core.management.base import BaseCommand

from tenants import roles


class Command(BaseCommand):
    help = "Create the owner and application roles, the database and the grants (idempotent)."
    requires_system_checks = []  # runs before the tables exist

    def add_arguments(self, parser):
        parser.add_argument(
            "--admin-url",
            default=settings.DATABASE_ADMIN_URL or settings.DATABASE_OWNER_URL,
            help="A connection allowed to create roles (default: DATABASE_ADMIN_URL).",
        )

    def handle(self, *args, admin_url, **options):
        roles.database_roles_ensure(
            admin_url=admin_url,
            app_url=settings.DATABASE_URL,
            owner_url=settings.DATABASE_OWNER_URL,
            staff_read_url=settings.DATABASE_STAFF_READ_URL,
            report=self.stdout.write,
        )
