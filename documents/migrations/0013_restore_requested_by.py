"""Who asked for a document's restore, and when they were mailed that it is ready.

The requester is a tenant user of the same tenant (a composite key, as the other references)."""

import django.db.models.deletion
import tenants.foreign_keys
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('documents', '0012_seal_tenant_policies'),
        ('tenants', '0009_accounts_write_seal'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='document',
            name='restore_notified_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='document',
            name='restore_requested_by',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tenants.tenantuser'),
        ),
        migrations.AddConstraint(
            model_name='document',
            constraint=tenants.foreign_keys.TenantForeignKey(field='restore_requested_by', name='documents_restore_requested_by_same_tenant'),
        ),
    ]
