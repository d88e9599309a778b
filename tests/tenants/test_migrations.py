"""Migrations match the models, and the RLS constraint round-trips through them."""

from io import StringIO

import pytest
from django.core.management import call_command

from tenants.models import TenantUser
from tenants.rls import RowLevelSecurity


# With a router, makemigrations checks the history on every alias.
@pytest.mark.django_db(databases=["default", "owner", "staff_read"])
def test_no_model_change_lacks_a_migration():
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


def test_every_tenant_owned_model_declares_rls():
    constraints = [c for c in TenantUser._meta.constraints if isinstance(c, RowLevelSecurity)]
    assert [c.name for c in constraints] == ["tenants_tenantuser_rls"]


def test_rls_constraint_deconstructs_to_itself():
    constraint = RowLevelSecurity(name="x_rls", column="owner_tenant_id")
    path, args, kwargs = constraint.deconstruct()
    assert path == "tenants.rls.RowLevelSecurity"
    assert RowLevelSecurity(*args, **kwargs) == constraint
