from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from tenants import db, services
from tenants.models import Tenant, TenantUser

DEMO_PASSWORD = "metis-demo-password"
DEMO_TENANTS = [
    ("acme", "Acme Lending", "alice@acme.example", "Alice Acme"),
    ("globex", "Globex Finance", "gina@globex.example", "Gina Globex"),
]


class Command(BaseCommand):
    help = "Create the demo tenants, one user each and a staff login (idempotent); print them."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, port, **options):
        base = settings.METIS_BASE_DOMAIN
        lines = []
        for subdomain, name, email, user_name in DEMO_TENANTS:
            tenant = Tenant.objects.filter(subdomain=subdomain).first() or services.tenant_create(
                name=name, subdomain=subdomain
            )
            with db.tenant_context(tenant.pk):
                exists = TenantUser.objects.for_tenant(tenant).filter(email=email).exists()
                if not exists:
                    services.tenant_user_create(
                        tenant=tenant, email=email, name=user_name, password=DEMO_PASSWORD
                    )
            lines.append(
                f"  {name:<16} http://{subdomain}.{base}:{port}/   {email} / {DEMO_PASSWORD}"
            )
        staff_model = get_user_model()
        if not staff_model.objects.filter(username="staff").exists():
            staff_model.objects.create_superuser("staff", "staff@metis.example", DEMO_PASSWORD)
        self.stdout.write("Demo tenants (tenant users sign in on their own host):")
        self.stdout.write("\n".join(lines))
        self.stdout.write(
            f"Staff admin:       http://{base}:{port}/admin/   staff / {DEMO_PASSWORD}\n"
            "  Staff sign in with a second factor. At the first sign-in the admin shows a QR\n"
            "  code: scan it with an authenticator app (Google Authenticator, 1Password,\n"
            "  FreeOTP...) or type in the key shown under it, enter the app's six-digit code,\n"
            "  and keep the backup codes the next page shows.\n"
            "  `python manage.py staff_two_factor_reset staff` starts the enrolment over."
        )
