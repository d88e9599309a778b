"""factory_boy factories; tenant-owned rows are created through the services, in context.

Tests are entry points: they open the tenant context a service requires, as the middleware or
a task would.
"""

import factory

from metis.events import recorder
from tenants import db, services
from tenants.models import Tenant, TenantUser

TEST_PASSWORD = "correct horse battery staple"


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Lender {n}")
    subdomain = factory.Sequence(lambda n: f"lender{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return services.tenant_create(**kwargs)


class TenantUserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TenantUser

    tenant = factory.SubFactory(TenantFactory)
    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = TEST_PASSWORD

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with db.tenant_context(kwargs["tenant"].pk):
            return services.tenant_user_create(**kwargs)


def event_record(*, tenant, event_type: str, **kwargs):
    """Record an event as an entry point would: inside the tenant's own context."""
    with db.tenant_context(getattr(tenant, "pk", tenant)):
        return recorder.record_event(tenant=tenant, event_type=event_type, **kwargs)
