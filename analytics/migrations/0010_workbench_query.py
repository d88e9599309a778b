import django.db.models.deletion
import django.db.models.functions.datetime
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0002_schedule_outbox_drain"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='WorkbenchQuery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('sql', models.TextField()),
                ('export_run_id', models.CharField(blank=True, max_length=40)),
                ('started_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), editable=False)),
                ('duration_ms', models.PositiveIntegerField(blank=True, null=True)),
                ('row_count', models.PositiveIntegerField(blank=True, null=True)),
                ('truncated', models.BooleanField(default=False)),
                ('status', models.CharField(choices=[('running', 'Running'), ('ok', 'Succeeded'), ('refused', 'Refused'), ('failed', 'Failed'), ('timed-out', 'Timed out')], default='running', max_length=20)),
                ('error', models.TextField(blank=True)),
                ('ip_address', models.GenericIPAddressField(blank=True, null=True)),
                ('staff', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name_plural': 'workbench queries',
                'db_table': 'analytics_workbench_queries',
                'ordering': ['-started_at'],
                'indexes': [models.Index(fields=['staff', '-started_at'], name='workbench_staff_started')],
            },
        ),
    ]
