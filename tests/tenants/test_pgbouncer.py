"""Behind a real PgBouncer in transaction mode, tenants share server connections, never rows.

`app.current_tenant` is set per transaction (set_config(..., true)), so a server connection that
PgBouncer hands from one tenant's transaction to the next tenant's, or to code with no tenant
context at all, carries nothing over. Pages, tasks and raw SQL of two tenants run here at once
from several threads through a PgBouncer with two server connections.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from metis.celery import app
from tenants.tasks import TenantTask
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD, TenantFactory, TenantUserFactory
from tests.support import staff
from tests.support.ports import free_port

pytestmark = pytest.mark.pgbouncer

SERVER_CONNECTIONS = 2  # default_pool_size: every transaction shares these two backends
THREADS = 6
OPERATIONS = 100
ADMIN_USER = "metis_bouncer_admin"  # exists only in PgBouncer's auth file, for its console


def _pgbouncer_binary() -> str | None:
    # Debian installs it in /usr/sbin, which a non-root PATH often lacks.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    return shutil.which("pgbouncer", path=path)


@dataclass(frozen=True)
class PgBouncer:
    port: int
    database: str

    def admin(self, command: str) -> list[dict]:
        """Run a console command (SHOW …) and return its rows as dicts."""
        with psycopg.connect(
            host="127.0.0.1", port=self.port, dbname="pgbouncer", user=ADMIN_USER, autocommit=True
        ) as conn:
            cursor = conn.execute(command)
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _write_config(workdir: Path, port: int, db: dict) -> Path:
    server = f"dbname={db['NAME']}"
    if db.get("HOST"):
        server = f"host={db['HOST']} port={db.get('PORT') or 5432} {server}"
    # auth_type=trust skips the client's password; PgBouncer still logs in to PostgreSQL with the
    # password listed here, so this also works against a server that wants one.
    users = f'"{db["USER"]}" "{db.get("PASSWORD") or ""}"\n"{ADMIN_USER}" ""\n'
    (workdir / "users.txt").write_text(users)
    config = workdir / "pgbouncer.ini"
    config.write_text(
        f"""\
[databases]
{db["NAME"]} = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {workdir / "users.txt"}
admin_users = {ADMIN_USER}
pool_mode = transaction
default_pool_size = {SERVER_CONNECTIONS}
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = {SERVER_CONNECTIONS}
max_client_conn = 200
ignore_startup_parameters = extra_float_digits,options
"""
    )
    return config


def _start(binary: str, workdir: Path, port: int, db: dict) -> subprocess.Popen | None:
    """Start PgBouncer on `port`; return it once its console answers, None if it exited."""
    config = _write_config(workdir, port, db)
    command = [binary, "-q", str(config)]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; it drops to this user after start-up. A Unix-socket
        # server (the embedded one) is reachable only by its socket directory's owner.
        user = _run_as_user(db.get("HOST") or "")
        entry = pwd.getpwnam(user)
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        command[1:1] = ["-u", user]
    log = (workdir / "pgbouncer.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        try:
            PgBouncer(port, db["NAME"]).admin("SHOW VERSION")
        except psycopg.OperationalError:
            time.sleep(0.05)
        else:
            return process
    _stop(process)
    return None


def _run_as_user(host: str) -> str:
    if host.startswith("/"):
        return pwd.getpwuid(os.stat(host).st_uid).pw_name
    return "postgres" if _user_exists("postgres") else "nobody"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def pgbouncer(django_db_setup) -> Iterator[PgBouncer]:
    """A real PgBouncer (transaction pooling, two server connections) before the test database."""
    binary = _pgbouncer_binary()
    if binary is None:
        pytest.skip("pgbouncer is not installed (apt-get install -y pgbouncer)")
    db = settings.DATABASES["default"]  # NAME is the test database once django_db_setup ran
    workdir = Path(tempfile.mkdtemp(prefix="metis-pgbouncer-"))
    try:
        for _attempt in range(3):  # another process may take the free port before PgBouncer
            port = free_port()
            process = _start(binary, workdir, port, db)
            if process is not None:
                break
        else:
            log = (workdir / "pgbouncer.log").read_text(errors="replace")
            pytest.fail(f"PgBouncer did not start:\n{log}")
        try:
            bouncer = PgBouncer(port, db["NAME"])
            # Fail here, with PgBouncer's log, if it cannot reach PostgreSQL as the app role.
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=port, dbname=db["NAME"], user=db["USER"]
                ) as conn:
                    conn.execute("SELECT 1")
            except psycopg.OperationalError as exc:
                log = (workdir / "pgbouncer.log").read_text(errors="replace")
                pytest.fail(f"no connection through PgBouncer: {exc}\n{log}")
            yield bouncer
        finally:
            _stop(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def default_through_pgbouncer(committed_db, pgbouncer) -> Iterator[PgBouncer]:
    """Point the `default` alias (the app role, Django's pool) at PgBouncer for one test."""
    db = settings.DATABASES["default"]
    # Every thread's connection reads this same dict, so changing it repoints them all.
    assert connections["default"].settings_dict is db
    saved = {key: db.get(key) for key in ("HOST", "PORT", "DISABLE_SERVER_SIDE_CURSORS")}
    connections["default"].close()
    connections["default"].close_pool()  # its connections still lead straight to PostgreSQL
    db.update(HOST="127.0.0.1", PORT=str(pgbouncer.port), DISABLE_SERVER_SIDE_CURSORS=True)
    try:
        yield pgbouncer
    finally:
        connections["default"].close()
        connections["default"].close_pool()
        db.update(saved)


@app.task(base=TenantTask, name="tests.pgbouncer_visible_users")
def pgbouncer_visible_users() -> dict:
    """Return the backend that ran the task's transaction, its tenant setting and the emails."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), metis_sealed_tenant()::text")
        pid, setting = cursor.fetchone()
        cursor.execute("SELECT email FROM users")
        emails = sorted(row[0] for row in cursor.fetchall())
    return {"pid": pid, "setting": setting, "emails": emails}


@dataclass(frozen=True)
class Outcome:
    kind: str  # "page", "task" or "raw"
    tenant: str | None  # subdomain, None for the raw query outside any tenant context
    emails: list[str]
    pid: int | None = None  # backend that served the transaction, where we can see it
    setting: str | None = None


_TEAM_EMAIL = re.compile(r"<td>([^<@\s]+@[^<\s]+)</td>")


def _page(client: Client, subdomain: str) -> Outcome:
    response = client.get("/")
    assert response.status_code == 200, response.content
    html = response.content.decode()
    assert f"<strong>{subdomain}</strong>" in html
    return Outcome("page", subdomain, sorted(_TEAM_EMAIL.findall(html)))


def _task(tenant_id: str, subdomain: str) -> Outcome:
    seen = pgbouncer_visible_users.apply(kwargs={"tenant_id": tenant_id}).get()
    return Outcome("task", subdomain, seen["emails"], seen["pid"], seen["setting"])


def _raw() -> Outcome:
    # One explicit transaction so that the pid is that of the backend that ran the SELECT.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), metis_sealed_tenant()::text")
        pid, setting = cursor.fetchone()
        cursor.execute("SELECT email FROM users")
        emails = sorted(row[0] for row in cursor.fetchall())
    return Outcome("raw", None, emails, pid, setting)


def test_tenants_share_pgbouncer_server_connections_but_never_rows(default_through_pgbouncer):
    bouncer = default_through_pgbouncer
    tenants = {
        "acme": TenantFactory(name="Acme Lending", subdomain="acme"),
        "globex": TenantFactory(name="Globex Finance", subdomain="globex"),
    }
    team = {
        "acme": ["alice@acme.example", "bob@acme.example"],
        "globex": ["gina@globex.example", "hank@globex.example"],
    }
    for subdomain, emails in team.items():
        for email in emails:
            TenantUserFactory(tenant=tenants[subdomain], email=email)
    connections["default"].close()

    # A fixed interleaving; thread k runs operations k, k + THREADS, … after signing in.
    pattern = [("page", "acme"), ("task", "globex"), ("page", "globex"), ("task", "acme")]
    pattern.append(("raw", None))
    operations = [pattern[i % len(pattern)] for i in range(OPERATIONS)]
    start = threading.Barrier(THREADS)

    def run_thread(index: int) -> list[Outcome]:
        try:
            clients = {}
            for subdomain, tenant in tenants.items():
                client = Client(HTTP_HOST=host_of(tenant))
                response = client.post(
                    "/login/", {"email": team[subdomain][0], "password": TEST_PASSWORD}
                )
                assert response.status_code == 302, response.content
                clients[subdomain] = client
            connections["default"].close()
            start.wait(timeout=30)
            outcomes = []
            for kind, subdomain in operations[index::THREADS]:
                if kind == "page":
                    outcomes.append(_page(clients[subdomain], subdomain))
                elif kind == "task":
                    outcomes.append(_task(str(tenants[subdomain].pk), subdomain))
                else:
                    outcomes.append(_raw())
                # As at the end of a real request or task: the connection goes back to the pool.
                connections["default"].close()
            return outcomes
        except BaseException:
            start.abort()  # release the other threads rather than leave them at the barrier
            raise
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=THREADS) as executor:
        futures = [executor.submit(run_thread, index) for index in range(THREADS)]
        outcomes = [outcome for future in futures for outcome in future.result()]
    servers = [row for row in bouncer.admin("SHOW SERVERS") if row["database"] == bouncer.database]

    assert len(outcomes) == OPERATIONS
    expected = {None: [], **team}
    leaked = [o for o in outcomes if set(o.emails) - set(expected[o.tenant])]
    assert leaked == []
    incomplete = [o for o in outcomes if o.emails != expected[o.tenant]]
    assert incomplete == []
    for outcome in outcomes:
        if outcome.kind == "task":
            assert outcome.setting == str(tenants[outcome.tenant].pk)
        elif outcome.kind == "raw":
            # The custom setting exists on a backend a tenant used before, but it is empty.
            assert outcome.setting in (None, "")

    # The server connections really were shared: all of this ran on at most two backends, the
    # ones PgBouncer reports, and the same backend served both tenants and tenant-less code.
    pids = {kind: set() for kind in ("acme", "globex", "raw")}
    for outcome in outcomes:
        if outcome.pid is not None:
            pids[outcome.tenant or "raw"].add(outcome.pid)
    used = set().union(*pids.values())
    assert all(pids.values())
    assert 1 <= len(used) <= SERVER_CONNECTIONS
    assert len(servers) <= SERVER_CONNECTIONS
    assert used <= {row["remote_pid"] for row in servers}
    assert pids["acme"] & pids["globex"]
    assert pids["raw"] & (pids["acme"] | pids["globex"])


@pytest.mark.committed
def test_staff_account_writes_are_sealed_through_pgbouncer(staff_user, default_through_pgbouncer):
    """The accounts seal travels as a bound parameter (an unnamed statement): PgBouncer in
    transaction mode passes it, and the writes of a staff sign-in succeed."""
    app = staff.authenticator_app(staff_user)
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    done = staff.sign_in(client, username="staffer", password=TEST_PASSWORD, app=app)
    assert done.status_code == 302 and client.get("/admin/").status_code == 200
    assert TOTPDevice.objects.get(user=staff_user).last_t > -1
    with pytest.raises(DatabaseError, match="refused"), connection.cursor() as cursor:
        cursor.execute("UPDATE auth_user SET is_superuser = true")
