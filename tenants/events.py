"""The event types tenants record: sign-in and staff access (registered with metis.events)."""

from metis.events import recorder

SIGN_IN = recorder.register("auth.sign_in")
SIGN_OUT = recorder.register("auth.sign_out")
# No addresses in analytics: the email's domain only.
SIGN_IN_FAILED = recorder.register("auth.sign_in_failed", data=("email_domain",))
STAFF_TENANT_ACCESS = recorder.register("staff.tenant_access", data=("path",))  # staff_id set
# A sign-in lockout on the tenant's page: its scope (account or address), no address or email.
SIGN_IN_LOCKED = recorder.register("auth.sign_in_locked", data=("scope",))
# Passwords (tenants/passwords.py), user set; no data: never an address or a token.
PASSWORD_RESET_REQUESTED = recorder.register("auth.password_reset_requested")
PASSWORD_RESET_COMPLETED = recorder.register("auth.password_reset_completed")
PASSWORD_CHANGED = recorder.register("auth.password_changed")
