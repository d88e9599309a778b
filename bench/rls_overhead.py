"""Measure what row-level security costs per query and per page, and what the pool saves.

Every figure is a ratio against a baseline measured in the same run, on the same data:

- queries: the same SQL, as the app role in a tenant context, on `users` (RLS forced) and on
  `users_norls` (a copy without RLS), alternated query by query;
- pages: the same tenant pages through the test client, with RLS on `users` as migrated and
  with RLS disabled on it, alternated block by block;
- pool: the same page with the psycopg pool as configured and without it (a new connection per
  request), alternated block by block;
- seal: the same pages and a one-lookup transaction with the sealed tenant context (a MAC per
  transaction, checked by `metis_sealed_tenant()`) and with the first design's plain
  `set_config('app.current_tenant', ...)` and a policy that trusts it, alternated block by block.

It builds a scratch database (`bench_metis`), seeds 10 tenants x 10,000 users, and drops the
database at the end, also on error. Run it with `make bench`, or:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/rls_overhead.py
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import django
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import close_old_connections, connections  # noqa: E402
from django.test import Client  # noqa: E402

from tenants import db, rls, services  # noqa: E402
from tenants.models import TenantUser  # noqa: E402
from tenants.postgres.base import DatabaseWrapper  # noqa: E402
from tests.support import scratch  # noqa: E402

DATABASE = "bench_metis"
TENANTS = 10
USERS_PER_TENANT = 10_000
SEED_CHUNK = 2_000
PASSWORD = "bench password, not a secret"
ROUNDS = 8  # page and pool blocks alternate this many times per side
WARMUP = 10  # query runs that warm the caches and are not kept

SELECT_USERS = "SELECT id, email, name FROM {table} WHERE tenant_id = %s"
QUERIES = [
    # (label, SQL with {table}, runs per table)
    ("lookup by email", SELECT_USERS + " AND email = %s", 3000),
    ("page of 50", SELECT_USERS + " ORDER BY email LIMIT 50", 2000),
    ("whole team (10,000 rows)", SELECT_USERS + " AND is_active ORDER BY email", 100),
]


# --- The scratch database ----------------------------------------------------------------------


def owner_execute(statement: str, params: list | None = None) -> None:
    with connections["owner"].cursor() as cursor:
        cursor.execute(statement, params)


# --- Seeding -----------------------------------------------------------------------------------


def email_of(number: int, subdomain: str) -> str:
    return f"user{number:05d}@{subdomain}.example"


def seed() -> list:
    """Create the tenants and their users; return the tenants."""
    tenants = [
        services.tenant_create(name=f"Bench Lender {n}", subdomain=f"bench{n}")
        for n in range(TENANTS)
    ]
    # One hash for every user: hashing 100,000 passwords would take longer than the benchmark.
    password_hash = make_password(PASSWORD)
    seeding = tqdm(total=TENANTS * USERS_PER_TENANT, desc="seeding users", disable=None)
    for tenant in tenants:
        for start in range(1, USERS_PER_TENANT + 1, SEED_CHUNK):
            stop = min(start + SEED_CHUNK, USERS_PER_TENANT + 1) - 1
            # As the app role in the tenant's context: RLS checks these inserts like any other.
            with db.tenant_context(tenant.pk), connections["default"].cursor() as cursor:
                cursor.execute(
                    "INSERT INTO users (tenant_id, email, name, password) "
                    "SELECT %s, format('user%%s@%%s.example', lpad(i::text, 5, '0'), %s), "
                    "'User ' || i, %s FROM generate_series(%s, %s) AS i",
                    [tenant.pk, tenant.subdomain, password_hash, start, stop],
                )
            seeding.update(stop - start + 1)
    seeding.close()
    return tenants


def copy_without_rls() -> None:
    """Copy `users` to `users_norls`: same rows, columns and indexes, no RLS."""
    # LIKE copies indexes and defaults, not row security. Owner-created tables are granted to
    # the app role by default privileges; the GRANT says so explicitly.
    owner_execute("CREATE TABLE users_norls (LIKE users INCLUDING ALL)")
    # FORCE applies the policies to the owner too: lift it for the copy (a scratch database).
    owner_execute("ALTER TABLE users NO FORCE ROW LEVEL SECURITY")
    owner_execute("INSERT INTO users_norls SELECT * FROM users")
    owner_execute("ALTER TABLE users FORCE ROW LEVEL SECURITY")
    app_role = connections["owner"].ops.quote_name(settings.DATABASES["default"]["USER"])
    owner_execute(f"GRANT SELECT ON users_norls TO {app_role}")
    owner_execute("ANALYZE users")
    owner_execute("ANALYZE users_norls")


def assert_rls_in_force() -> None:
    """Fail unless the app role sees no `users` row outside a context, and all of the copy."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM users_norls)")
        assert cursor.fetchone() == (0, TENANTS * USERS_PER_TENANT), "RLS is not in force"


# --- Timing helpers ----------------------------------------------------------------------------


def ms(samples: list[float]) -> tuple[float, float]:
    """Return the median and the 95th percentile of `samples` (seconds), in milliseconds."""
    p95 = statistics.quantiles(samples, n=20, method="inclusive")[18]
    return statistics.median(samples) * 1000, p95 * 1000


def report(title: str, sides: tuple[str, str], results: dict) -> None:
    """Print median and p95 of both sides and the ratio of medians, first side / second."""
    print(f"\n{title}")
    print(f"  {'':28}{sides[0]:>22}{sides[1]:>24}")
    print(f"  {'':28}{'median':>11}{'p95':>11}{'median':>13}{'p95':>11}{'ratio':>9}")
    for label, (first, second) in results.items():
        (first_median, first_p95), (second_median, second_p95) = ms(first), ms(second)
        print(
            f"  {label:28}{first_median:8.2f} ms{first_p95:8.2f} ms"
            f"{second_median:10.2f} ms{second_p95:8.2f} ms{first_median / second_median:8.2f}x"
        )


def requests_per_side(pages: dict[str, tuple[str, int]]) -> str:
    return ", ".join(f"{label} {ROUNDS * runs}" for label, (_, runs) in pages.items())


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


# --- 1. Queries: users (RLS) vs users_norls ----------------------------------------------------


def bench_queries(tenants: list) -> dict:
    """Return `{label: (users, users_norls)}`: each query on both tables in one transaction."""
    results = {}
    rng = random.Random(1)
    for label, query, runs in QUERIES:
        samples: dict[str, list[float]] = {"users": [], "users_norls": []}
        for run in range(WARMUP + runs):
            tenant = rng.choice(tenants)
            params = [tenant.pk]
            if "email = %s" in query:  # the lookup: a random user of that tenant
                params.append(email_of(rng.randint(1, USERS_PER_TENANT), tenant.subdomain))
            # Alternate which table goes first, so neither always gets the warmer cache.
            order = ["users", "users_norls"] if run % 2 else ["users_norls", "users"]
            rows = {}
            with db.tenant_context(tenant.pk), connections["default"].cursor() as cursor:
                for table in order:
                    start = time.perf_counter()
                    cursor.execute(query.format(table=table), params)
                    rows[table] = cursor.fetchall()
                    if run >= WARMUP:
                        samples[table].append(time.perf_counter() - start)
            assert rows["users"] == rows["users_norls"], "RLS changed the result"
        results[label] = (samples["users"], samples["users_norls"])
    return results


# --- 2. Pages: RLS on vs RLS disabled ----------------------------------------------------------


def signed_in_client(tenant) -> Client:
    client = Client(HTTP_HOST=f"{tenant.subdomain}.{settings.METIS_BASE_DOMAIN}")
    response = client.post(
        "/login/", {"email": email_of(1, tenant.subdomain), "password": PASSWORD}
    )
    assert response.status_code == 302, response.content[:500]
    close_old_connections()
    return client


def get_page(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    # The test client keeps connections across requests, unlike a WSGI server: close (or return
    # to the pool) at the end of each request, as request_finished does in production.
    close_old_connections()


def page_samples(client: Client, path: str, runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        get_page(client, path)
    return [timed(lambda: get_page(client, path)) for _ in range(runs)]


@contextmanager
def rls_disabled_on_users():
    """Disable RLS on `users` (scratch database only) and always turn it back on."""
    owner_execute("ALTER TABLE users NO FORCE ROW LEVEL SECURITY")
    owner_execute("ALTER TABLE users DISABLE ROW LEVEL SECURITY")
    try:
        yield
    finally:
        owner_execute("ALTER TABLE users ENABLE ROW LEVEL SECURITY")
        owner_execute("ALTER TABLE users FORCE ROW LEVEL SECURITY")


# --- 3. Requests: pooled vs a new connection each ----------------------------------------------


@contextmanager
def unpooled():
    """Run without the psycopg pool: with CONN_MAX_AGE=0 every request connects anew."""
    options = settings.DATABASES["default"]["OPTIONS"]
    connections["default"].close()
    connections["default"].close_pool()
    pool = options.pop("pool")
    try:
        yield
    finally:
        connections["default"].close()
        options["pool"] = pool
        # Open the new pool and wait for its min_size connections: their start-up is not timed.
        connections["default"].pool.open(wait=True)


# --- 4. The seal: sealed context vs the plain setting it replaced ------------------------------


@contextmanager
def plain_setting_context():
    """The first design, as a baseline: `users`' policy trusts `app.current_tenant`, and each
    transaction sets it with one `set_config` instead of being sealed (scratch database only)."""
    plain = "tenant_id = (SELECT NULLIF(current_setting('app.current_tenant', true), '')::uuid)"
    sealed = f"tenant_id = {rls.SEALED_TENANT_SQL}"
    policy = "ALTER POLICY tenant_isolation ON users USING ({0}) WITH CHECK ({0})"

    def set_plainly(self, tenant_id) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('app.current_tenant', %s, true)", [str(tenant_id or "")]
            )
        self.sealed_for = tenant_id

    owner_execute(policy.format(plain))
    original = DatabaseWrapper.transaction_seal
    DatabaseWrapper.transaction_seal = set_plainly  # type: ignore[method-assign]
    try:
        yield
    finally:
        DatabaseWrapper.transaction_seal = original  # type: ignore[method-assign]
        owner_execute(policy.format(sealed))


def bench_transactions(tenants: list) -> dict:
    """`{label: (sealed, plain)}` for one tenant transaction with one lookup, block by block."""
    rng = random.Random(2)
    samples: tuple[list[float], list[float]] = ([], [])

    def one_lookup() -> None:
        tenant = rng.choice(tenants)
        email = email_of(rng.randint(1, USERS_PER_TENANT), tenant.subdomain)
        with db.tenant_context(tenant.pk), connections["default"].cursor() as cursor:
            cursor.execute(
                SELECT_USERS.format(table="users") + " AND email = %s", [tenant.pk, email]
            )
            assert cursor.fetchone() is not None

    for _ in range(ROUNDS):
        for side, baseline in enumerate((contextlib.nullcontext, plain_setting_context)):
            with baseline():
                for run in range(WARMUP + 250):
                    elapsed = timed(one_lookup)
                    if run >= WARMUP:
                        samples[side].append(elapsed)
    return {"transaction, one lookup": samples}


# --- Alternating blocks ------------------------------------------------------------------------


def bench_alternating(
    client: Client,
    pages: dict[str, tuple[str, int]],
    baseline: Callable[[], AbstractContextManager],
) -> dict:
    """Return `{label: (as configured, inside baseline())}`; `pages[label] = (path, runs)`.

    The two sides alternate in blocks, ROUNDS times, so drift (caches, other processes on the
    machine) falls on both.
    """
    results = {label: ([], []) for label in pages}
    for _ in range(ROUNDS):
        for label, (path, runs) in pages.items():
            results[label][0].extend(page_samples(client, path, runs))
        with baseline():
            for label, (path, runs) in pages.items():
                results[label][1].extend(page_samples(client, path, runs))
    return results


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    print(f"scratch database {DATABASE}: creating and migrating")
    try:
        scratch.scratch_database_create(DATABASE)
        tenants = seed()
        copy_without_rls()
        assert_rls_in_force()
        tenant = tenants[0]
        client = signed_in_client(tenant)
        with db.tenant_context(tenant.pk):
            member = TenantUser.objects.for_tenant(tenant).get(
                email=email_of(5000, tenant.subdomain)
            )

        print("timing queries…", flush=True)
        queries = bench_queries(tenants)
        pages = {
            "team member page": (f"/team/{member.pk}/", 50),
            "home page (10,000 members)": ("/", 4),
        }
        print("timing pages…", flush=True)
        page_results = bench_alternating(client, pages, rls_disabled_on_users)
        print("timing the seal…", flush=True)
        seal_transactions = bench_transactions(tenants)
        seal_pages = bench_alternating(client, pages, plain_setting_context)
        print("timing the pool…", flush=True)
        pool_pages = {"team member page": pages["team member page"]}
        pool_results = bench_alternating(client, pool_pages, unpooled)

        runs = ", ".join(f"{label} {n}" for label, _, n in QUERIES)
        report(
            f"Queries, app role in a tenant context; runs per table: {runs}",
            ("users (RLS)", "users_norls (no RLS)"),
            queries,
        )
        report(
            f"Pages through the test client; requests per side: {requests_per_side(pages)}",
            ("RLS as migrated", "RLS disabled"),
            page_results,
        )
        report(
            f"Sealed context vs plain set_config; transactions per side: {ROUNDS * 250}",
            ("sealed", "plain set_config"),
            seal_transactions,
        )
        report(
            f"Tenant pages, sealed vs plain set_config; per side: {requests_per_side(pages)}",
            ("sealed", "plain set_config"),
            seal_pages,
        )
        report(
            f"Requests, pooled vs a new connection each; per side: {requests_per_side(pool_pages)}",
            ("pooled", "unpooled"),
            pool_results,
        )
    finally:
        scratch.scratch_database_drop(DATABASE)
        print(f"\nscratch database {DATABASE}: dropped")


if __name__ == "__main__":
    main()
