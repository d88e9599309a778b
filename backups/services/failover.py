"""Failover drills: stop the primary, promote its standby, move the application there, time it.

The drill is a real failover of the database the application uses: run it on a drill pair, or
in a window where losing the primary is the point. Its steps, timed from the stop:

1. a writer commits numbered markers on the primary with `synchronous_commit = remote_apply`
   (each commit returns only once the standby has applied it), and keeps going;
2. the primary stops (`pg_ctl stop -m immediate`: a crash, no shutdown checkpoint) under it;
3. the standby is promoted (`pg_ctl promote`) and this process's database aliases are pointed at
   it (the other processes follow DATABASE_URL, a DNS name or PgBouncer: docs/operations.md);
4. a tenant page is asked for through Django's test client until it answers 200 (RTO);
5. the markers the primary acknowledged are looked for on the promoted server (RPO: the
   acknowledged commits it lacks, 0 expected with remote_apply).

The drill's row is written on the primary before the stop (so it reached the standby) and
finished on the promoted server, where the application's catalog now lives.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import psycopg
from django.db import connections, transaction
from django.test import Client
from django.utils import timezone

from backups import cluster, config
from backups.models import FailoverDrill, FailoverDrillMarker, JobStatus
from tenants import lookup
from tenants.models import Tenant

logger = logging.getLogger(__name__)

# The aliases that follow the primary; the replica aliases keep pointing where they did.
PRIMARY_ALIASES = ("default", "owner", "staff_read")
MARKERS_BEFORE_STOP = 50  # commits the writer makes before the stop, so it is in full flow
PROBE_INTERVAL_SECONDS = 0.05


class FailoverError(RuntimeError):
    """Raised when the drill cannot go on (nothing to probe, the promotion failed)."""


@dataclass(frozen=True)
class FailoverPair:
    """The primary to stop and the standby to promote (local data directories), and the
    application role's URL on the standby (what DATABASE_URL becomes)."""

    primary: config.Target
    standby: config.Target
    standby_url: str


@dataclass
class _MarkerWriter:
    """Commit markers 1, 2, 3... on the primary until it goes away; keep the acknowledged ones."""

    conninfo: dict
    drill_id: int
    acknowledged: list[int] = field(default_factory=list)
    error: str = ""
    started: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        table = FailoverDrillMarker._meta.db_table
        try:
            with psycopg.connect(**self.conninfo, autocommit=True, connect_timeout=5) as conn:
                conn.execute("SET synchronous_commit = remote_apply")
                seq = 0
                while not self.stop.is_set():
                    seq += 1
                    # One statement in autocommit: its own transaction, acknowledged on return.
                    conn.execute(
                        f'INSERT INTO "{table}" (drill_id, seq) VALUES (%s, %s)',
                        [self.drill_id, seq],
                    )
                    self.acknowledged.append(seq)
                    if seq == MARKERS_BEFORE_STOP:
                        self.started.set()
        except psycopg.Error as exc:
            self.error = str(exc).strip()
        finally:
            self.started.set()


def _conninfo(alias: str) -> dict:
    settings_dict = connections[alias].settings_dict
    info = {
        "dbname": settings_dict["NAME"],
        "user": settings_dict["USER"],
        "password": settings_dict["PASSWORD"],
        "host": settings_dict["HOST"],
        "port": settings_dict["PORT"],
    }
    for name in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
        if name in settings_dict.get("OPTIONS", {}):
            info[name] = settings_dict["OPTIONS"][name]
    return {name: value for name, value in info.items() if value}


def _server(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    return unquote(parts.hostname or ""), str(parts.port or 5432), parts.path.lstrip("/")


def database_repoint(url: str) -> None:
    """Point this process's primary aliases at the server of `url` (same roles, new server)."""
    host, port, name = _server(url)
    for alias in PRIMARY_ALIASES:
        connection = connections[alias]
        connection.close()
        connection.close_pool()
        connection.settings_dict.update(
            HOST=host, PORT=port, NAME=name or connection.settings_dict["NAME"]
        )


def _promote(target: config.Target) -> None:
    cluster.run_tool(
        [target.tool("pg_ctl"), "-D", str(target.data_dir), "-w", "-t", "60", "promote"],
        os_user=target.os_user,
        timeout=70,
    )


def _probe_until_served(host: str, *, deadline: float) -> int:
    """Ask for the tenant's sign-in page until it answers 200; return the last status."""
    client = Client(HTTP_HOST=host, raise_request_exception=False)
    status = 0
    while time.monotonic() < deadline:
        # The tenant lookup is cached: forget it, so the page must read the new primary.
        subdomain = host.split(".", 1)[0]
        lookup.tenant_lookup_forget(subdomain)
        try:
            status = client.get("/login/").status_code
        except Exception:  # a half-connected pool may raise before the middleware answers
            logger.debug("failover probe failed", exc_info=True)
            status = 0
        if status == 200:
            return status
        time.sleep(PROBE_INTERVAL_SECONDS)
    return status


def failover_drill_run(
    *,
    pair: FailoverPair,
    rto_target_seconds: float,
    tenant_subdomain: str | None = None,
    base_domain: str,
    timeout: float = 120,
    on_step: Callable[[str], None] | None = None,
) -> FailoverDrill:
    """Fail the application's database over to its standby; record and return the drill."""
    step = on_step or (lambda name: None)
    tenants = Tenant.objects.active().order_by("created_at")
    tenant = (
        tenants.filter(subdomain=tenant_subdomain).first() if tenant_subdomain else tenants.first()
    )
    if tenant is None:
        raise FailoverError(
            f"no active tenant {tenant_subdomain or ''} to probe: the RTO is measured on a "
            "tenant page"
        )
    host = f"{tenant.subdomain}.{base_domain}"
    drill = FailoverDrill.objects.create(
        primary=str(pair.primary.data_dir),
        standby=str(pair.standby.data_dir),
        standby_server="{}:{}/{}".format(*_server(pair.standby_url)),
        probe_host=host,
        rto_target_seconds=rto_target_seconds,
        pid=os.getpid(),
        host=socket.gethostname(),
    )
    try:
        result = _fail_over(drill, pair=pair, host=host, timeout=timeout, step=step)
    except Exception as exc:
        _record(drill, status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[-2000:])
        raise
    _record(drill, status=JobStatus.SUCCEEDED, **result)
    return FailoverDrill.objects.get(pk=drill.pk)


def _fail_over(
    drill: FailoverDrill, *, pair: FailoverPair, host: str, timeout: float, step
) -> dict:
    writer = _MarkerWriter(conninfo=_conninfo("default"), drill_id=drill.pk)
    thread = threading.Thread(target=writer.run, name="failover-markers", daemon=True)
    step("markers")
    thread.start()
    writer.started.wait(timeout=30)
    if not thread.is_alive():
        raise FailoverError(f"the marker writer stopped before the failover: {writer.error}")

    step("stop primary")
    stopped = time.monotonic()
    steps: dict[str, float] = {}
    cluster.stop(pair.primary, mode="immediate")
    steps["primary_stopped"] = time.monotonic() - stopped
    writer.stop.set()
    thread.join(timeout=30)
    logger.info("failover drill: the marker writer stopped: %s", writer.error or "asked to")
    step("promote standby")
    _promote(pair.standby)
    steps["standby_promoted"] = time.monotonic() - stopped
    database_repoint(pair.standby_url)
    step("probe tenant page")
    status = _probe_until_served(host, deadline=stopped + timeout)
    served = time.monotonic() - stopped
    steps["tenant_page_served"] = served
    if status != 200:
        raise FailoverError(f"{host}/login/ answered {status} for {timeout:.0f}s after the stop")

    step("count markers")
    acknowledged = set(writer.acknowledged)
    found = set(FailoverDrillMarker.objects.filter(drill_id=drill.pk).values_list("seq", flat=True))
    return {
        "rto_seconds": served,
        "markers_acknowledged": len(acknowledged),
        "markers_found": len(acknowledged & found),
        "rpo_transactions_lost": len(acknowledged - found),
        "steps": {name: round(seconds, 3) for name, seconds in steps.items()},
    }


def _record(drill: FailoverDrill, *, status: str, **values) -> None:
    """Finish the drill's row wherever `default` now points (it may lack the row: create it)."""
    now = timezone.now()
    fields = {
        name: getattr(drill, name)
        for name in ("primary", "standby", "standby_server", "probe_host", "started_at")
    }
    with transaction.atomic():
        # The promoted server may still name a synchronous standby it does not have yet: the
        # record must not wait for one.
        with connections["default"].cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = local")
        FailoverDrill.objects.update_or_create(
            pk=drill.pk,
            defaults={
                **fields,
                "rto_target_seconds": drill.rto_target_seconds,
                "status": status,
                "finished_at": now,
                "heartbeat_at": now,
                "progress": 100,
                **values,
            },
        )
        FailoverDrillMarker.objects.filter(drill_id=drill.pk).delete()
