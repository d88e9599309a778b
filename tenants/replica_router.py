"""Send reads inside tenants.replica.replica_reads() to the replica, while it keeps up.

First in DATABASE_ROUTERS: where it answers None (no replica, not inside the block, the replica
lagging, the request already wrote), AllTenantsReadRouter and then the instance's own database
decide as before. In the all-tenants mode, tenant tables are read there by the staff read role
(`replica_staff_read`), as on the primary. Writes never go to a replica: an instance read there
and saved again is saved on the primary.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from tenants import db, replica, routers

_PRIMARY_AND_REPLICAS = {DEFAULT_DB_ALIAS, db.ALL_TENANTS_ALIAS, *replica.REPLICA_ALIASES}


def _instance_db(hints) -> str | None:
    instance = hints.get("instance")
    return getattr(getattr(instance, "_state", None), "db", None)


class ReplicaReadRouter:
    def db_for_read(self, model, **hints):
        instance = hints.get("instance")
        if instance is not None and instance._state.adding:
            return None  # a new row's validation (its foreign keys): about to write, read primary
        all_tenants = db.all_tenants_active() and routers.is_tenant_owned(model)
        alias = replica.read_alias(all_tenants=all_tenants)
        if alias is not None:
            return alias
        # A relation of a row read on the runtime role's replica connection, outside the block
        # (or once it lags): the primary, not the instance's replica.
        if _instance_db(hints) == replica.REPLICA_ALIAS:
            return DEFAULT_DB_ALIAS
        return None

    def db_for_write(self, model, **hints):
        if _instance_db(hints) == replica.REPLICA_ALIAS:
            return DEFAULT_DB_ALIAS
        return None

    def allow_relation(self, obj1, obj2, **hints):
        if {obj1._state.db, obj2._state.db} <= _PRIMARY_AND_REPLICAS:
            return True
        return None

    def allow_migrate(self, db_alias, app_label, **hints):
        return False if db_alias in replica.REPLICA_ALIASES else None
