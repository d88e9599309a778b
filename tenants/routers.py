"""Send reads of tenant tables to the staff read role, and only inside all_tenants_context().

The runtime role has no path to every tenant's rows; `staff_read` connects as a SELECT-only
role that the all-tenants policies admit. Writes never go there: an instance read in the
all-tenants mode and saved again is refused by the read-only role.
"""

from __future__ import annotations

import functools

from tenants import db, rls

_SAME_DATABASE = {"default", db.ALL_TENANTS_ALIAS}


@functools.cache
def is_tenant_owned(model) -> bool:
    return any(isinstance(c, rls.RowLevelSecurity) for c in model._meta.constraints)


class AllTenantsReadRouter:
    def db_for_read(self, model, **hints):
        if db.all_tenants_active() and is_tenant_owned(model):
            return db.ALL_TENANTS_ALIAS
        return None

    def db_for_write(self, model, **hints):
        return None

    def allow_relation(self, obj1, obj2, **hints):
        if {obj1._state.db, obj2._state.db} <= _SAME_DATABASE:
            return True
        return None

    def allow_migrate(self, db_alias, app_label, **hints):
        return False if db_alias == db.ALL_TENANTS_ALIAS else None
