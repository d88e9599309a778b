"""A private primary with a streaming standby, set up as production is, for the replica and
failover tests.

The primary is made with `initdb` (as the `postgres` OS user when we are root, like the backup
sandboxes: backups/cluster.py), listens on a free port of 127.0.0.1, and gets the application's
roles and a migrated database `metis`. A standby is a `pg_basebackup -R` copy of it, streaming
synchronously (`synchronous_standby_names`). More pairs are cloned from a migrated primary
(a base backup started as a primary of its own), so only one migration runs per session.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import connections

from backups import cluster, config
from tenants import replica, roles
from tests.support import scratch
from tests.support.backup_sandbox import default_os_user

BIN_DIR = Path("/usr/lib/postgresql/15/bin")
DATABASE = "metis"
STANDBY_NAME = "metis_standby"
PRIMARY_ALIASES = ("default", "owner", "staff_read")
_URL_SETTINGS = {
    "default": "DATABASE_URL",
    "owner": "DATABASE_OWNER_URL",
    "staff_read": "DATABASE_STAFF_READ_URL",
}


@dataclass
class Server:
    """One PostgreSQL server of a pair: its cluster and how to reach it."""

    target: config.Target

    @property
    def port(self) -> int:
        return self.target.port

    def admin(self, dbname: str = DATABASE, **kwargs) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, **kwargs
        )

    def url_for(self, alias_url: str) -> str:
        """`alias_url` (a role's URL) with this server's address and database."""
        parts = urlsplit(alias_url)
        login = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return parts._replace(netloc=f"{login}127.0.0.1:{self.port}", path=f"/{DATABASE}").geturl()

    def app_url(self) -> str:
        return self.url_for(settings.DATABASE_URL)

    def in_recovery(self) -> bool:
        with self.admin(autocommit=True) as conn:
            return conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]

    def destroy(self) -> None:
        cluster.remove(self.target)
        shutil.rmtree(self.target.socket_dir, ignore_errors=True)


@dataclass(frozen=True)
class Pair:
    primary: Server
    standby: Server


def _new_target(prefix: str) -> config.Target:
    os_user = default_os_user()
    root = cluster.scratch_directory(os_user, prefix=prefix)
    return config.Target(
        stanza="",
        data_dir=root / "data",
        port=cluster.free_port(),
        socket_dir=root,
        bin_dir=BIN_DIR,
        os_user=os_user,
        database=DATABASE,
    )


def _server_settings(target: config.Target) -> dict[str, str]:
    return {
        "port": str(target.port),
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(target.socket_dir),
        "wal_level": "replica",
        "max_wal_senders": "10",
        "hot_standby": "on",
        # A standby reports what it still reads, so the primary's vacuum does not cancel it.
        "hot_standby_feedback": "on",
        "max_connections": "60",
        "shared_buffers": "32MB",
        "synchronous_standby_names": "",
    }


def primary_create() -> Server:
    """initdb, start and return a primary (no database yet)."""
    target = _new_target("metis-primary-")
    cluster.initdb(target)
    cluster.write_settings(target, _server_settings(target))
    cluster.start(target)
    return Server(target)


def primary_clone(source: Server) -> Server:
    """Start a new primary from a base backup of `source` (its roles and migrated data)."""
    target = _new_target("metis-primary-")
    _base_backup(source, target, standby=False)
    cluster.write_settings(target, _server_settings(target))
    cluster.start(target)
    cluster.wait_until_usable(target, timeout=60)
    return Server(target)


def _base_backup(source: Server, target: config.Target, *, standby: bool) -> None:
    cluster.prepare_data_dir(target.data_dir, target.os_user)
    cluster.run_tool(
        [
            *(target.tool("pg_basebackup"), "-D", str(target.data_dir)),
            *("-h", "127.0.0.1", "-p", str(source.port), "-U", "postgres"),
            *("-X", "stream", "-c", "fast", *(["-R"] if standby else [])),
        ],
        os_user=target.os_user,
        timeout=300,
    )


def standby_create(primary: Server) -> Server:
    """A `pg_basebackup -R` standby of `primary`, streaming; made its synchronous standby."""
    target = _new_target("metis-standby-")
    _base_backup(primary, target, standby=True)
    values = _server_settings(target)
    # -R wrote primary_conninfo; the later line wins, naming us for synchronous_standby_names.
    values["primary_conninfo"] = (
        f"host=127.0.0.1 port={primary.port} user=postgres application_name={STANDBY_NAME}"
    )
    cluster.write_settings(target, values)
    cluster.start(target)
    standby = Server(target)
    with primary.admin(autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
        conn.execute("SELECT pg_reload_conf()")
        _wait_for(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM pg_stat_replication "
                    "WHERE application_name = %s AND sync_state = 'sync' AND state = 'streaming'",
                    [STANDBY_NAME],
                ).fetchone()[0]
                == 1
            ),
            what="the standby to stream synchronously",
        )
    return standby


def _wait_for(condition, *, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"waited {timeout}s for {what}")


def wait_replayed(primary: Server, standby: Server, *, timeout: float = 30) -> None:
    """Wait until the standby has replayed everything the primary has written so far."""
    with primary.admin(autocommit=True) as conn:
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    with standby.admin(autocommit=True) as conn:
        _wait_for(
            lambda: conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [str(lsn)]
            ).fetchone()[0],
            what=f"the standby to replay up to {lsn}",
            timeout=timeout,
        )


def database_migrate(primary: Server) -> None:
    """Create the roles and database `metis` on `primary` and migrate it as the owner role."""
    roles.database_roles_ensure(
        admin_url=f"postgres://postgres@127.0.0.1:{primary.port}/postgres",
        app_url=primary.url_for(settings.DATABASE_URL),
        owner_url=primary.url_for(settings.DATABASE_OWNER_URL),
        staff_read_url=primary.url_for(settings.DATABASE_STAFF_READ_URL),
        database=DATABASE,
        report=lambda line: None,
    )
    with aliases_pointed(primary):
        call_command("migrate", database="owner", verbosity=0)


class aliases_pointed:
    """Point the primary aliases at `primary` and (with `standby`) add the replica aliases
    there; put everything back on exit. Connections and pools are closed either way."""

    def __init__(self, primary: Server, standby: Server | None = None) -> None:
        self.primary = primary
        self.standby = standby
        self.saved: dict[str, dict] = {}

    def __enter__(self) -> aliases_pointed:
        scratch.close_all_connections()
        for alias in PRIMARY_ALIASES:
            self.saved[alias] = copy.copy(settings.DATABASES[alias])
            settings.DATABASES[alias].update(HOST="127.0.0.1", PORT=str(self.primary.port))
            settings.DATABASES[alias]["NAME"] = DATABASE
        if self.standby is not None:
            replica_aliases = {
                replica.REPLICA_ALIAS: "default",
                replica.REPLICA_STAFF_READ_ALIAS: "staff_read",
            }
            for alias, like in replica_aliases.items():
                config_ = copy.deepcopy(settings.DATABASES[like])
                config_.update(HOST="127.0.0.1", PORT=str(self.standby.port), NAME=DATABASE)
                settings.DATABASES[alias] = config_
            connections.configure_settings(settings.DATABASES)
        replica.lag_cache_clear()
        return self

    def __exit__(self, *exc_info) -> None:
        scratch.close_all_connections()
        for alias in (replica.REPLICA_ALIAS, replica.REPLICA_STAFF_READ_ALIAS):
            if alias in settings.DATABASES:
                del settings.DATABASES[alias]
                if hasattr(connections._connections, alias):
                    del connections[alias]
        for alias, saved in self.saved.items():
            settings.DATABASES[alias].clear()
            settings.DATABASES[alias].update(saved)
        replica.lag_cache_clear()
