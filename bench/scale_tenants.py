"""Ten thousand tenants: does a tenant's page get slower as the tenant registry grows?

The same tenant pages are timed with 10 tenants and with 10,000 (9,990 more seeded with COPY),
in one run on the same database:

- the home page of a signed-in user (the host → tenant lookup, the session, the team list);
- the sign-in page, anonymous;
- the sign-in page on a host drawn at random from every tenant, its cached lookup dropped just
  before (a miss: the lookup reads the tenant row by its unique subdomain, then caches it);
- the home page with the lookup cache off (every request reads the row), to show what the
  cache saves.

The two sizes alternate in 4 blocks (the extra tenants seeded, measured, deleted); the figure is
p50 with 10,000 tenants / p50 with 10 (goal <= 1.2x). It also checks that a rename and a
deactivation are seen by the very next request. Scratch database `bench_scale_tenants`,
dropped at the end:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/scale_tenants.py [--tenants 10000]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import django
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
os.environ["CACHE_KEY_PREFIX"] = f"bench-tenants-{uuid.uuid4().hex[:8]}"  # its own cache keys
django.setup()

from django.core.cache import caches  # noqa: E402
from django.test import Client  # noqa: E402

from bench import _scale_common as common  # noqa: E402
from tenants import db, lookup, services  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tests.support import scratch  # noqa: E402

DATABASE = "bench_scale_tenants"
PASSWORD = "bench password, not a secret"
SMALL = 10
CHUNK = 2_000
ROUNDS = 4
EXTRA_PREFIX = "lender"
TENANT_COLUMNS = ["name", "subdomain", "is_active", "updated_at"]


def seed_extra(count: int) -> None:
    """COPY `count` more tenants (the registry has no RLS: no tenant context to open)."""
    rows = ((f"Lender {n:05d}", f"{EXTRA_PREFIX}{n:05d}", True, common_now()) for n in range(count))
    with (
        common.audit_trigger_off("tenants"),
        common.staging_table("tenants", TENANT_COLUMNS) as staging,
        tqdm(total=count, desc="seeding tenants", unit="tenant", mininterval=2) as bar,
    ):
        batch: list[tuple] = []
        for row in rows:
            batch.append(row)
            if len(batch) == CHUNK:
                common.copy_rows(staging, TENANT_COLUMNS, batch)
                common.move_rows(staging, "tenants", TENANT_COLUMNS)
                bar.update(len(batch))
                batch = []
        if batch:
            common.copy_rows(staging, TENANT_COLUMNS, batch)
            common.move_rows(staging, "tenants", TENANT_COLUMNS)
            bar.update(len(batch))
    common.owner_execute("ANALYZE tenants")


def common_now():
    from django.utils import timezone

    return timezone.now()


def drop_extra() -> None:
    with common.audit_trigger_off("tenants"):
        common.owner_execute("DELETE FROM tenants WHERE subdomain LIKE %s", [EXTRA_PREFIX + "%"])
    common.owner_execute("ANALYZE tenants")


@contextmanager
def lookup_uncached():
    """Every lookup misses: the tenants cache swapped for Django's dummy cache."""
    from django.core.cache.backends.dummy import DummyCache

    original = lookup._cache
    dummy = DummyCache("", {})
    lookup._cache = lambda: dummy  # type: ignore[assignment]
    try:
        yield
    finally:
        lookup._cache = original  # type: ignore[assignment]


def measure(clients, anonymous, hosts: list[str], runs: int, results: dict) -> None:
    """Add `runs` samples of each page to `results`."""
    rng = random.Random(len(hosts) + len(results.get("home", [])))
    for client in clients:
        common.page_samples(client, "/", 1)
    for _ in range(runs):
        client = rng.choice(clients)
        results["home"].append(common.timed(lambda c=client: common.get_page(c, "/")))
        page = rng.choice(anonymous)
        results["sign-in"].append(common.timed(lambda p=page: common.get_page(p, "/login/")))
        host = rng.choice(hosts)
        visitor = Client(HTTP_HOST=host)
        lookup.tenant_lookup_forget(host.split(".")[0])  # a miss on both sides
        results["sign-in, lookup missed"].append(
            common.timed(lambda v=visitor: common.get_page(v, "/login/"))
        )
    with lookup_uncached():
        for _ in range(runs):
            client = rng.choice(clients)
            samples = results["home, lookup not cached"]
            samples.append(common.timed(lambda c=client: common.get_page(c, "/")))


def invalidation_check(tenant: Tenant, client: Client) -> None:
    """A rename and a deactivation are seen by the very next request."""
    host = f"{tenant.subdomain}.localhost"
    common.get_page(Client(HTTP_HOST=host), "/login/")  # cached now
    tenant = Tenant.objects.get(pk=tenant.pk)
    tenant.name = "Renamed Lender"
    tenant.save()
    assert b"Renamed Lender" in common.get_page(Client(HTTP_HOST=host), "/login/")
    tenant.is_active = False
    tenant.save()
    common.get_page(Client(HTTP_HOST=host), "/login/", expect=403)
    tenant.is_active = True
    tenant.save()
    common.get_page(client, "/")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("metis.request").setLevel(logging.WARNING)  # one line per request
    print(f"scratch database {DATABASE}: creating and migrating", flush=True)
    try:
        scratch.scratch_database_create(DATABASE)
        small = []
        for n in range(SMALL):
            tenant = services.tenant_create(name=f"Bench Lender {n}", subdomain=f"bench{n}")
            with db.tenant_context(tenant.pk):
                services.tenant_user_create(
                    tenant=tenant, email=f"user@bench{n}.example", name="User", password=PASSWORD
                )
            small.append(tenant)
        clients = [
            common.tenant_client(t.subdomain, f"user@{t.subdomain}.example", PASSWORD)
            for t in small
        ]
        anonymous = [Client(HTTP_HOST=f"{t.subdomain}.localhost") for t in small]
        small_hosts = [f"{t.subdomain}.localhost" for t in small]
        caches["tenants"].clear()

        labels = ["home", "sign-in", "sign-in, lookup missed", "home, lookup not cached"]
        small_side: dict[str, list[float]] = {label: [] for label in labels}
        large_side: dict[str, list[float]] = {label: [] for label in labels}
        all_hosts = small_hosts + [
            f"{EXTRA_PREFIX}{n:05d}.localhost" for n in range(args.tenants - SMALL)
        ]
        per_block = max(1, args.runs // ROUNDS)
        total = args.tenants
        for round_number in range(ROUNDS):
            # The two sizes alternate block by block: drift on this shared machine falls on both.
            print(f"round {round_number + 1}/{ROUNDS}: {SMALL} tenants", flush=True)
            measure(clients, anonymous, small_hosts, per_block, small_side)
            seed_extra(args.tenants - SMALL)
            total = Tenant.objects.count()
            print(f"round {round_number + 1}/{ROUNDS}: {total:,} tenants", flush=True)
            measure(clients, anonymous, all_hosts, per_block, large_side)
            if round_number == 0:
                invalidation_check(small[0], clients[0])
                print("invalidation: a rename and a deactivation were seen by the next request")
            drop_extra()

        print(f"\nTenant pages, {per_block * ROUNDS} requests per side (goal: p50 ratio <= 1.2x)")
        print(f"  {'page':26}{f'{SMALL} tenants':>14}{f'{total:,} tenants':>16}  ratio")
        for label in labels:
            ratio = common.p50(large_side[label]) / common.p50(small_side[label])
            verdict = "met" if ratio <= 1.2 else "NOT met"
            print(
                f"  {label:26}{common.ms(common.p50(small_side[label])):>14}"
                f"{common.ms(common.p50(large_side[label])):>16}  {ratio:.2f}x {verdict}"
            )
        cached = common.p50(large_side["home"]) / common.p50(large_side["home, lookup not cached"])
        print(f"  home page, cached / uncached lookup with {total:,} tenants: {cached:.2f}x")
        print(
            f"  p95 with {total:,} tenants: "
            + ", ".join(
                f"{label} {common.p95(samples) * 1000:.1f} ms"
                for label, samples in large_side.items()
            )
        )
    finally:
        scratch.scratch_database_drop(DATABASE)
        print(f"\nscratch database {DATABASE}: dropped")


if __name__ == "__main__":
    main()
