"""References between tenant tables become composite (tenant_id, <fk>) keys (tenants.foreign_keys).

Rows are kept. The single-column constraints are dropped (db_constraint=False), then each
TenantForeignKey is added where every tenant's rows are visible: if any row already points at
another tenant's document or user, the migration stops, naming the table, the column and the
count, and is rolled back. Nothing is deleted.
"""

import django.db.models.deletion
import tenants.foreign_keys
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('documents', '0010_schedule_tiering'),
        ('tenants', '0003_users_tenant_key'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='document',
            name='uploaded_by',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tenants.tenantuser'),
        ),
        migrations.AlterField(
            model_name='documentaccess',
            name='document',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='accesses', to='documents.document'),
        ),
        migrations.AlterField(
            model_name='documentaccess',
            name='user',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tenants.tenantuser'),
        ),
        migrations.AlterField(
            model_name='documentversion',
            name='document',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name='versions', to='documents.document'),
        ),
        migrations.AlterField(
            model_name='documentversion',
            name='uploaded_by',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tenants.tenantuser'),
        ),
        migrations.AddConstraint(
            model_name='document',
            constraint=tenants.foreign_keys.TenantKey(name='documents_tenant_id_key'),
        ),
        migrations.AddConstraint(
            model_name='document',
            constraint=tenants.foreign_keys.TenantForeignKey(field='uploaded_by', name='documents_uploaded_by_same_tenant'),
        ),
        migrations.AddConstraint(
            model_name='documentaccess',
            constraint=tenants.foreign_keys.TenantForeignKey(field='document', name='document_access_log_document_same_tenant'),
        ),
        migrations.AddConstraint(
            model_name='documentaccess',
            constraint=tenants.foreign_keys.TenantForeignKey(field='user', name='document_access_log_user_same_tenant'),
        ),
        migrations.AddConstraint(
            model_name='documentversion',
            constraint=tenants.foreign_keys.TenantForeignKey(field='document', name='document_versions_document_same_tenant'),
        ),
        migrations.AddConstraint(
            model_name='documentversion',
            constraint=tenants.foreign_keys.TenantForeignKey(field='uploaded_by', name='document_versions_uploaded_by_same_tenant'),
        ),
    ]
