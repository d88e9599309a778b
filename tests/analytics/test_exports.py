"""The Parquet export: every tenant's rows, no secrets, streamed, never visible half-written."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from analytics import exports
from metis.objectstore import store
from metis.objectstore.errors import StorageUnavailable
from tenants.models import Tenant
from tests.support.terminal import Terminal

# The export reads through the staff read role's own connection: data must be committed.
pytestmark = pytest.mark.committed


def _read_s3(s3_server, bucket, key):
    body = s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def _parquet(key) -> pq.ParquetFile:
    data = store.documents_store().read_bytes(key)
    assert data is not None, key
    return pq.ParquetFile(io.BytesIO(data))


def _top_level_names(prefix=exports.EXPORT_PREFIX) -> list[str]:
    """The first path segment of every object under `prefix` (the S3 view of "a folder")."""
    keys = store.documents_store().keys(prefix)
    return sorted({key[len(prefix) :].split("/", 1)[0] for key in keys})


def _assert_export_matches(read, dataset, manifest):
    every_user = dataset.users[dataset.tenant.pk] | dataset.users[dataset.other_tenant.pk]
    every_document = (
        dataset.documents[dataset.tenant.pk] | dataset.documents[dataset.other_tenant.pk]
    )
    tenants = read(manifest["tables"]["tenants"]["key"])
    users = read(manifest["tables"]["users"]["key"])
    documents = read(manifest["tables"]["documents"]["key"])
    assert set(tenants.column("id").to_pylist()) == {str(t.pk) for t in Tenant.objects.all()}
    assert set(users.column("id").to_pylist()) == {str(pk) for pk in every_user}
    assert set(documents.column("id").to_pylist()) == {str(pk) for pk in every_document}
    assert set(users.column("tenant_id").to_pylist()) == {
        str(dataset.tenant.pk),
        str(dataset.other_tenant.pk),
    }
    assert not any("password" in name for name in users.column_names)
    assert manifest["tables"]["users"]["rows"] == len(every_user) == users.num_rows
    assert manifest["tables"]["documents"]["rows"] == len(every_document)
    # Values survive the trip, not only ids.
    sizes = documents.column("size_bytes").to_pylist()
    assert sorted(sizes) == [100, 200, 300, 5000, 7000, 9000]
    ids, times = tenants.column("id").to_pylist(), tenants.column("created_at").to_pylist()
    created = dict(zip(ids, times, strict=True))
    assert created == {str(t.pk): t.created_at for t in Tenant.objects.all()}
    metadata = users.column("metadata").to_pylist()
    assert all(json.loads(value) == {} for value in metadata)


def test_export_writes_every_tenants_rows_to_s3_parquet(dataset, s3_bucket, s3_server):
    run = exports.export_run()
    manifest = exports.latest_export()
    assert manifest["run_id"] == run.run_id
    assert manifest["tables"]["users"]["key"] == f"system/exports/{run.run_id}/users.parquet"
    _assert_export_matches(lambda key: _read_s3(s3_server, s3_bucket, key), dataset, manifest)
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=manifest["tables"]["users"]["key"])
    assert head["ServerSideEncryption"] == "AES256"


def test_export_streams_rows_a_page_at_a_time(dataset, s3_bucket):
    calls = []
    run = exports.export_run(chunk_size=2, progress=lambda *call: calls.append(call))
    documents = [call for call in calls if call[0] == "documents"]
    assert documents == [
        ("documents", 0, 6),
        ("documents", 2, 6),
        ("documents", 4, 6),
        ("documents", 6, 6),
    ]
    parquet = _parquet(run.tables["documents"]["key"])
    assert parquet.metadata.num_row_groups == 3  # one row group per page written


def test_export_of_empty_tables_is_valid_parquet(tenant_db, s3_bucket):
    run = exports.export_run()
    users = _parquet(run.tables["users"]["key"]).read()
    assert users.num_rows == 0
    assert "email" in users.column_names


def _record_writes(monkeypatch, *, fail_on=None) -> list[str]:
    """Record the key of every object the export writes, in order; fail on the key `fail_on`
    picks (as the object store does: StorageUnavailable, nothing stored at that key)."""
    written = []
    real_file, real_bytes = store.ObjectStore.put_file, store.ObjectStore.put_bytes

    def check(key):
        written.append(key)
        if fail_on is not None and fail_on(key):
            raise StorageUnavailable(f"The object store failed while saving {key}")

    def put_file(self, *, key, **kwargs):
        check(key)
        return real_file(self, key=key, **kwargs)

    def put_bytes(self, *, key, **kwargs):
        check(key)
        return real_bytes(self, key=key, **kwargs)

    monkeypatch.setattr(store.ObjectStore, "put_file", put_file)
    monkeypatch.setattr(store.ObjectStore, "put_bytes", put_bytes)
    return written


def test_export_writes_the_manifest_and_latest_only_after_every_table(
    dataset, s3_bucket, monkeypatch
):
    written = _record_writes(monkeypatch)
    run = exports.export_run()
    folder = f"system/exports/{run.run_id}/"
    assert written == [
        *(f"{folder}{name}.parquet" for name in exports.TABLE_NAMES),
        f"{folder}manifest.json",
        exports.LATEST_KEY,
    ]


@pytest.mark.parametrize(
    "fails_at",
    ["users.parquet", "manifest.json", "latest.json"],
)
def test_failed_export_leaves_latest_on_the_previous_complete_run(
    dataset, s3_bucket, monkeypatch, fails_at
):
    first = exports.export_run()
    before = store.documents_store().read_bytes(exports.LATEST_KEY)
    written = _record_writes(monkeypatch, fail_on=lambda key: key.endswith(fails_at))
    with pytest.raises(StorageUnavailable):
        exports.export_run()
    assert store.documents_store().read_bytes(exports.LATEST_KEY) == before
    assert exports.latest_export()["run_id"] == first.run_id
    failed_run = written[0].split("/")[2]
    assert failed_run != first.run_id
    if fails_at != "latest.json":
        # Interrupted before its manifest: the run is never taken for a complete one.
        assert exports.export_manifest(failed_run) is None
        assert f"system/exports/{failed_run}/manifest.json" not in store.documents_store().keys(
            f"system/exports/{failed_run}/"
        )
    assert exports.export_manifest(first.run_id) == exports.latest_export()


def test_export_needs_the_all_tenants_mode_to_see_tenant_rows(dataset, s3_bucket, monkeypatch):
    """RLS stays on for the export: read as the runtime role, it would see no tenant rows."""
    from django.db import transaction

    from tenants import db

    monkeypatch.setattr(db, "all_tenants_context", lambda **kw: transaction.atomic())
    monkeypatch.setattr(db, "ALL_TENANTS_ALIAS", "default")
    run = exports.export_run()
    assert run.tables["users"]["rows"] == 0
    assert run.tables["documents"]["rows"] == 0
    assert run.tables["tenants"]["rows"] == 2  # the tenant registry is not tenant-owned


def test_export_parquet_command_reports_progress_and_keys(dataset, s3_bucket):
    out, err = io.StringIO(), Terminal()
    call_command("export_parquet", "--chunk-size", "1", stdout=out, stderr=err)
    finished = [frame for frame in err.getvalue().split("\r") if "100%" in frame]
    assert any(frame.startswith("documents: 100%|##########| 6/6 ") for frame in finished)
    manifest = exports.latest_export()
    assert f"documents: 6 rows -> {manifest['tables']['documents']['key']}" in out.getvalue()
    latest = store.documents_store().read_bytes("system/exports/latest.json")
    assert json.loads(latest) == manifest


def test_export_parquet_command_draws_no_progress_when_stderr_is_not_a_terminal(dataset, s3_bucket):
    err = io.StringIO()
    call_command("export_parquet", "--chunk-size", "1", stdout=io.StringIO(), stderr=err)
    assert err.getvalue() == ""


def test_prune_keeps_the_newest_runs_and_leaves_other_folders(dataset, s3_bucket):
    runs = [exports.export_run().run_id for _ in range(4)]
    documents = store.documents_store()
    notes = "system/exports/notes/readme.txt"
    documents.put_bytes(key=notes, data=b"hi", content_type="text/plain")
    assert _top_level_names() == sorted([*runs, "latest.json", "notes"])
    assert exports.export_prune(keep=2) == [runs[1], runs[0]]
    assert _top_level_names() == sorted([runs[2], runs[3], "latest.json", "notes"])
    assert documents.read_bytes(notes) == b"hi"
    for pruned in runs[:2]:  # every version gone, not hidden behind a delete marker
        assert not list(documents.versions(f"system/exports/{pruned}/"))
    assert exports.latest_export()["run_id"] == runs[3]


def test_prune_never_deletes_the_run_latest_points_at(dataset, s3_bucket, s3_server):
    first = exports.export_run().run_id
    client = s3_server.client()
    # A newer run that failed before its manifest: newest, but latest.json still names `first`.
    client.put_object(
        Bucket=s3_bucket, Key="system/exports/29991231T000000000000Z/users.parquet", Body=b"x"
    )
    assert exports.export_prune(keep=1) == []
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert f"system/exports/{first}/manifest.json" in keys
    second = exports.export_run().run_id
    assert exports.export_prune(keep=2) == [first]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert not any(key.startswith(f"system/exports/{first}/") for key in keys)
    assert f"system/exports/{second}/manifest.json" in keys


def test_export_parquet_command_prunes_old_runs(dataset, s3_bucket, capsys):
    old = exports.export_run().run_id
    call_command("export_parquet", "--keep", "1", "--quiet")
    assert f"deleted old export {old}" in capsys.readouterr().out
    assert old not in _top_level_names()
    assert store.documents_store().keys(f"system/exports/{old}/") == []
