"""Staff-account tables refuse writes outside a transaction sealed for accounts."""

from django.db import migrations

from tenants import accounts_seal

# The tables as they are at this migration; a table added later gets a migration of its own.
TABLES = (
    "auth_user",
    "auth_user_groups",
    "auth_user_user_permissions",
    "auth_group_permissions",
    "otp_totp_totpdevice",
    "otp_static_staticdevice",
    "otp_static_statictoken",
)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0008_password_reset_token"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [
        migrations.RunSQL(accounts_seal.create_sql(TABLES), accounts_seal.drop_sql(TABLES)),
    ]
