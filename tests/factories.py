"""factory_boy factories; tenant-owned rows are created through the services, in context."""

import factory

from tenants import services
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
        return services.tenant_user_create(**kwargs)
