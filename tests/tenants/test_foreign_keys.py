"""References between tenant tables are composite (tenant_id, fk) keys; the check refuses a model
that forgets one."""

from django.db import models
from django.test.utils import isolate_apps

from tenants import foreign_keys
from tenants.foreign_keys import TenantForeignKey, TenantKey
from tenants.models import TenantOwnedModel


@isolate_apps("tenants")
def test_check_refuses_a_plain_foreign_key_between_tenant_models():
    class Parent(TenantOwnedModel):
        class Meta:
            app_label = "tenants"

    class Child(TenantOwnedModel):
        parent = models.ForeignKey(Parent, on_delete=models.CASCADE)

        class Meta:
            app_label = "tenants"

    errors = foreign_keys.tenant_reference_errors([Parent, Child])
    assert sorted(error.id for error in errors) == ["tenants.E006", "tenants.E007", "tenants.E008"]
    assert all("Child.parent" in error.msg for error in errors)


@isolate_apps("tenants")
def test_check_accepts_a_composite_reference():
    class Parent(TenantOwnedModel):
        class Meta:
            app_label = "tenants"
            constraints = [TenantKey(name="parent_tenant_id_key")]

    class Child(TenantOwnedModel):
        parent = models.ForeignKey(Parent, on_delete=models.CASCADE, db_constraint=False)

        class Meta:
            app_label = "tenants"
            constraints = [TenantForeignKey(field="parent", name="child_parent_same_tenant")]

    assert foreign_keys.tenant_reference_errors([Parent, Child]) == []


def test_constraints_deconstruct_to_themselves():
    for constraint in (
        TenantKey(name="x_tenant_id_key"),
        TenantForeignKey(field="document", name="x_document_same_tenant"),
    ):
        path, args, kwargs = constraint.deconstruct()
        assert path.startswith("tenants.foreign_keys.")
        assert type(constraint)(*args, **kwargs) == constraint
