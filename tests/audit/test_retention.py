"""Retention end to end, with the clock moved: this month's partition, once past retention, is
exported to Parquet, verified, recorded as a cut and dropped; `audit_verify` still passes, from
the cut and through the archive, and still catches tampering in the rows that stay and in the
archive itself.

Dropping a partition is not something the shared test database can take back (the default
partition would then hold this month's rows), so this module migrates a scratch database of
its own. A month boundary is staged in it: two transactions whose start times straddle the
boundary insert out of order, so the dropped month holds a chain's seq n+1 while seq n stays.
"""

from __future__ import annotations

import io
import threading
import uuid
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from audit import anchors, archives, chain, recorder, retention
from audit.schema import GENESIS_HASH, SYSTEM_CHAIN
from metis.objectstore import store as objectstore
from tenants import db
from tests.audit.conftest import record_some
from tests.audit.test_verify import tampered
from tests.conftest import _test_database_name, bucket_delete
from tests.factories import TenantFactory
from tests.support import scratch
from tests.support import services as private_services

RETENTION_DAYS = 30


def _owner(sql: str, params=None):
    with connections["owner"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def _month_partition() -> str:
    return f"audit_log_{timezone.now():%Y_%m}"


def _straddling_inserts(tenant) -> tuple[datetime, datetime]:
    """Two inserts whose transaction starts are in one order and whose seqs are in the other:
    return (the late-started row's created_at, the early-started row's), i.e. (tB, tA)."""
    started, go = threading.Event(), threading.Event()
    early: dict = {}

    def early_transaction():
        try:
            with db.tenant_context(tenant.pk), connections["default"].cursor() as cursor:
                cursor.execute("SELECT now()")
                early["at"] = cursor.fetchone()[0]
                started.set()
                go.wait(10)
                early["row"] = recorder.record(action="test.began_early")
        finally:
            connections.close_all()

    thread = threading.Thread(target=early_transaction)
    thread.start()
    started.wait(10)
    with db.tenant_context(tenant.pk), connections["default"].cursor() as cursor:
        cursor.execute("SELECT now()")
        late_at = cursor.fetchone()[0]
        late = recorder.record(action="test.began_late")
    go.set()
    thread.join(10)
    assert early["row"].seq == late.seq + 1  # the later-started transaction took the seq first
    return late_at, early["at"]


def _split_month_at(partition: str, boundary) -> None:
    """Stage a month boundary at `boundary`: the month's partition keeps the rows before it (and
    is the one retention drops), a new partition takes the rest and everything after."""
    start, end = _owner(
        "SELECT date_trunc('month', %s::timestamptz), "
        "date_trunc('month', %s::timestamptz) + interval '1 month'",
        [boundary, boundary],
    )[0]
    for statement in (
        f"ALTER TABLE audit_log DETACH PARTITION {partition}",
        f"ALTER TABLE {partition} RENAME TO {partition}_whole",
        f"CREATE TABLE {partition} (LIKE audit_log INCLUDING DEFAULTS)",
        f"CREATE TABLE {partition}_after (LIKE audit_log INCLUDING DEFAULTS)",
        f"INSERT INTO {partition} SELECT * FROM {partition}_whole WHERE created_at < %(b)s",
        f"INSERT INTO {partition}_after SELECT * FROM {partition}_whole WHERE created_at >= %(b)s",
        f"DROP TABLE {partition}_whole",
        f"ALTER TABLE audit_log ATTACH PARTITION {partition} FOR VALUES FROM (%(s)s) TO (%(b)s)",
        f"ALTER TABLE audit_log ATTACH PARTITION {partition}_after "
        "FOR VALUES FROM (%(b)s) TO (%(e)s)",
    ):
        _owner(statement, {"b": boundary, "s": start, "e": end})


@pytest.fixture(scope="module")
def world(django_db_blocker, s3_server):
    """A scratch database and bucket with a month of audit rows, cut with the clock moved."""
    bucket = f"metis-test-retention-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    storage = {
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_S3_ADDRESSING_STYLE": "path",
        "AWS_S3_SSE": "AES256",
        "AUDIT_ANCHOR_BUCKET": "",
        "AUDIT_RETENTION_DAYS": RETENTION_DAYS,
    }
    with (
        django_db_blocker.unblock(),
        private_services.database_settings_kept(),
        override_settings(**storage),
    ):
        scratch.scratch_database_create(_test_database_name() + "_retention")
        acme, globex = TenantFactory(subdomain="acme"), TenantFactory(subdomain="globex")
        record_some(acme, 3)
        record_some(globex, 2)
        recorder.record(action="test.system")  # the system chain
        late_at, early_at = _straddling_inserts(acme)
        anchors.anchor_all()
        partition = _month_partition()
        _split_month_at(partition, early_at + (late_at - early_at) / 2)
        archived = _owner(f"SELECT count(*) FROM {partition}")[0][0]
        next_month = (timezone.now().replace(day=1) + timedelta(days=32)).replace(day=1)
        lines: list[str] = []
        cuts = retention.retention_run(
            now=next_month + timedelta(days=RETENTION_DAYS + 1), report=lines.append
        )
        record_some(acme, 2)  # after the cut: the chain goes on
        yield {
            "acme": acme,
            "globex": globex,
            "partition": partition,
            "archived": archived,
            "cuts": cuts,
            "lines": lines,
            "bucket": bucket,
        }
        scratch.scratch_database_drop(_test_database_name() + "_retention")
    bucket_delete(client, bucket)


def verify(*args: str) -> tuple[bool, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
    except CommandError:
        return False, err.getvalue()
    return True, out.getvalue()


def test_the_month_past_retention_is_archived_verified_and_dropped(world):
    partition = world["partition"]
    (cut,) = world["cuts"]
    assert cut.partition == partition and cut.rows == world["archived"] > 0
    assert _owner("SELECT to_regclass(%s)", [partition]) == [(None,)]
    # The archive in object storage holds exactly the dropped rows, hashes and all.
    (version,) = archives.versions_of(partition)
    table = pq.read_table(pa.BufferReader(objectstore.audit_store().read_version(cut.key, version)))
    assert table.num_rows == world["archived"]
    assert set(table.column("tenant_id").to_pylist()) >= {str(world["acme"].pk), None}
    # Progress was shown, stage by stage.
    assert any(
        f"{partition}: exported {cut.rows}/{cut.rows} rows (100%)" in x for x in world["lines"]
    )
    assert any("rows match the table" in line for line in world["lines"])
    # The run is itself on the record, in the system chain.
    with db.all_tenants_context(), connections[db.ALL_TENANTS_ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT target_id, metadata->>'rows' FROM audit_log "
            "WHERE action = 'audit.retention_cut' AND tenant_id IS NULL"
        )
        assert cursor.fetchall() == [(partition, str(cut.rows))]


def test_a_chain_whose_seqs_straddle_the_month_boundary_is_cut_with_a_bridge(world):
    """The early-started row (seq n+1) was dropped with its month; seq n stays."""
    acme = str(world["acme"].pk)
    (cut,) = [c for c in world["cuts"][0].cuts if c.chain == acme]
    (bridge,) = cut.bridges
    assert bridge == cut.last_seq + 2
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT seq FROM audit_log WHERE tenant_id = %s ORDER BY seq", [acme])
        staying = [row[0] for row in cursor.fetchall()]
    assert staying[0] == cut.last_seq + 1 and bridge not in staying
    assert {c.chain for c in world["cuts"][0].cuts} >= {acme, SYSTEM_CHAIN}


def test_verify_still_passes_from_the_cut_and_through_the_archives(world):
    ok, output = verify()
    assert ok, output
    assert "after the cut at seq" in output
    ok, output = verify("--archives")
    assert ok, output
    assert f"{archives.key_of(world['partition'])}: {world['archived']} rows read" in output


def test_tampering_with_a_row_that_stays_is_still_caught(world):
    acme = world["acme"]
    with connections["owner"].cursor() as cursor:
        cursor.execute(chain.ROWS_SQL, [acme.pk])
        row = cursor.fetchall()[-1]
    tampered("UPDATE audit_log SET target_id = 'other' WHERE id = %s", params=[row[0]])
    try:
        for mode in ((), ("--archives",)):
            ok, output = verify("--tenant", str(acme.pk), *mode)
            assert not ok
            assert f"row id {row[0]} (seq {row[1]}): content changed" in output
    finally:
        tampered("UPDATE audit_log SET target_id = %s WHERE id = %s", params=[row[8], row[0]])
    assert verify()[0]


def test_tampering_with_the_archive_is_caught(world):
    (cut,) = world["cuts"]
    store = objectstore.audit_store()
    (version,) = archives.versions_of(cut.partition)
    original = store.read_version(cut.key, version)
    table = pq.read_table(pa.BufferReader(original))
    actions = table.column("action").to_pylist()
    actions[0] = "nothing.happened"
    forged = pa.BufferOutputStream()
    pq.write_table(table.set_column(4, "action", pa.array(actions)), forged)
    # A forged version beside the true one: the cut's archive is no longer written once.
    store.put_bytes(key=cut.key, data=forged.getvalue().to_pybytes(), content_type="x")
    try:
        ok, output = verify()
        assert not ok
        assert f"the cut names the archive {cut.key}, which object storage holds in 2" in output
        # The true version deleted (by a credential that may): only the archive's rows tell.
        store.client.delete_object(Bucket=store.bucket, Key=cut.key, VersionId=version)
        assert verify()[0]
        ok, output = verify("--archives")
        assert not ok
        assert f"row id {table.column('id')[0].as_py()} " in output
        assert "content changed" in output
    finally:  # put the true archive back, alone, for the module's other tests
        for forged_version in archives.versions_of(cut.partition):
            store.client.delete_object(Bucket=store.bucket, Key=cut.key, VersionId=forged_version)
        store.put_bytes(key=cut.key, data=original, content_type=archives.CONTENT_TYPE)


def _chain_of(count: int) -> list[tuple]:
    """A sound chain of `count` rows, as chain.ROWS_SQL returns them."""
    rows, previous = [], GENESIS_HASH
    start = timezone.now()
    for seq in range(1, count + 1):
        fields = (seq, seq, None, start + timedelta(seconds=seq), "test.read", "system", "")
        fields += ("thing", str(seq), None, "", "{}", previous)
        previous = chain.row_hash(previous, (*fields, ""))
        rows.append((*fields, previous))
    return rows


def _cut_of(before, dropped_rows):
    """The cut after `before` once these rows (in seq order) are dropped."""
    run = retention._DroppedRun(before)
    assert list(run.tap(iter(dropped_rows))) == dropped_rows
    return run.cut()


def test_a_cut_with_a_bridge_then_the_next_cut_closes_it():
    rows = _chain_of(6)
    hashes = {row[1]: row[13] for row in rows}
    # January goes with seqs 1, 2, 3 and 5; seq 4 was stamped in February and stays.
    first = _cut_of(
        retention.Cut(SYSTEM_CHAIN, 0, GENESIS_HASH, {}), [rows[s - 1] for s in (1, 2, 3, 5)]
    )
    assert (first.last_seq, first.last_hash, first.bridges) == (3, hashes[3], {5: hashes[5]})
    walk = chain.chain_walk(
        None, [rows[3], rows[5]], start=(3, hashes[3]), bridges=first.bridges, keep=frozenset({5})
    )
    assert walk.findings == [] and walk.last_seq == 6 and walk.hashes[5] == (0, hashes[5])
    # February goes next: the bridge closes.
    second = _cut_of(first, [rows[3], rows[5]])
    assert (second.last_seq, second.bridges) == (6, {})


def test_a_wrong_bridge_or_a_changed_straggler_is_named():
    rows = _chain_of(6)
    hashes = {row[1]: row[13] for row in rows}
    staying = [rows[3], rows[5]]
    forged = chain.chain_walk(None, staying, start=(3, hashes[3]), bridges={5: "f" * 64})
    assert [(f.seq, f.problem[:9]) for f in forged.findings] == [(6, "prev_hash")]
    changed = (*rows[3][:8], "other", *rows[3][9:])
    walk = chain.chain_walk(None, [changed, rows[5]], start=(3, hashes[3]), bridges={5: hashes[5]})
    assert [(f.seq, f.problem[:15]) for f in walk.findings] == [(4, "content changed")]


def test_an_empty_month_gets_an_empty_archive(tmp_path):
    path = tmp_path / "empty.parquet"
    with archives.writer(path) as writer:
        writer.write_batch(archives.batch_of([]))
    assert list(archives.rows_in(path)) == []
    assert pq.read_schema(path).names == archives.SCHEMA.names


def test_an_archive_is_locked_where_the_server_has_object_lock(s3_server, locked_bucket, tmp_path):
    path = tmp_path / "audit_log_2019_01.parquet"
    with archives.writer(path) as writer:
        writer.write_batch(archives.batch_of([]))
    version = archives.store_once(partition="audit_log_2019_01", path=path)
    client, key = s3_server.client(), archives.key_of("audit_log_2019_01")
    retention_ = client.get_object_retention(Bucket=locked_bucket, Key=key, VersionId=version)
    assert retention_["Retention"]["Mode"] == "COMPLIANCE"
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(Bucket=locked_bucket, Key=key, VersionId=version)


def test_an_archive_is_refused_where_it_could_be_overwritten(s3_bucket, tmp_path):
    path = tmp_path / "audit_log_2019_01.parquet"
    with archives.writer(path) as writer:
        writer.write_batch(archives.batch_of([]))
    with pytest.raises(anchors.AnchorStoreUnsafe, match="neither Object Lock nor versioning"):
        archives.store_once(partition="audit_log_2019_01", path=path)
