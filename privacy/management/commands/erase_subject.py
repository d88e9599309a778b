"""manage.py erase_subject --tenant acme --borrower CUST-1 --approved-by alice: erase one
subject everywhere and print the receipt (JSON)."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from privacy import services, subjects
from privacy.erasure import run
from privacy.models import SubjectKind
from tenants import db
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Erase a data subject (a tenant user or a borrower) from every store."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True, help="the tenant's subdomain")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--borrower", help="the borrower's subject reference")
        who.add_argument("--user", help="the tenant user's id")
        parser.add_argument("--requested-by", required=True, help="staff username asking")
        parser.add_argument("--approved-by", required=True, help="another staff username")
        parser.add_argument("--reason", default="")

    def handle(self, *args, **options) -> None:
        staff = get_user_model().objects
        try:
            tenant = Tenant.objects.get(subdomain=options["tenant"])
            asking = staff.get(username=options["requested_by"], is_staff=True)
            approving = staff.get(username=options["approved_by"], is_staff=True)
        except (Tenant.DoesNotExist, get_user_model().DoesNotExist) as exc:
            raise CommandError(str(exc)) from exc
        kind = SubjectKind.BORROWER if options["borrower"] else SubjectKind.USER
        ref = options["borrower"] or options["user"]
        try:
            with db.tenant_context(tenant.pk):
                request = services.erasure_request_create(
                    tenant=tenant, kind=kind, ref=ref, reason=options["reason"], staff=asking
                )
                services.erasure_request_approve(request=request, staff=approving)
        except (services.ErasureRefused, subjects.UnknownSubject) as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"erasing {kind} {ref} of {tenant.subdomain} (request {request.pk})")
        receipt = run.erasure_run(request_id=request.pk, tenant_id=tenant.pk)
        self.stdout.write(json.dumps(receipt, indent=2, default=str))
