"""The Parquet export: every tenant's rows, no secrets, streamed, never visible half-written."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from analytics import exports, objects
from tenants.models import Tenant


def _read_local(root, key):
    return pq.read_table(root / key)


def _read_s3(s3_server, bucket, key):
    body = s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


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


def test_export_writes_every_tenants_rows_to_local_parquet(dataset, local_object_storage):
    run = exports.export_run()
    manifest = exports.latest_export()
    assert manifest["run_id"] == run.run_id
    assert manifest["tables"]["users"]["key"] == f"system/exports/{run.run_id}/users.parquet"
    _assert_export_matches(lambda key: _read_local(local_object_storage, key), dataset, manifest)


def test_export_writes_every_tenants_rows_to_s3_parquet(dataset, s3_bucket, s3_server):
    run = exports.export_run()
    manifest = exports.latest_export()
    assert manifest["run_id"] == run.run_id
    _assert_export_matches(lambda key: _read_s3(s3_server, s3_bucket, key), dataset, manifest)
    head = s3_server.client().head_object(Bucket=s3_bucket, Key=manifest["tables"]["users"]["key"])
    assert head["ServerSideEncryption"] == "AES256"


def test_export_streams_rows_a_page_at_a_time(dataset, local_object_storage):
    calls = []
    run = exports.export_run(chunk_size=2, progress=lambda *call: calls.append(call))
    documents = [call for call in calls if call[0] == "documents"]
    assert documents == [
        ("documents", 0, 6),
        ("documents", 2, 6),
        ("documents", 4, 6),
        ("documents", 6, 6),
    ]
    parquet = pq.ParquetFile(local_object_storage / run.tables["documents"]["key"])
    assert parquet.metadata.num_row_groups == 3  # one row group per page written


def test_export_of_empty_tables_is_valid_parquet(db, local_object_storage):
    run = exports.export_run()
    users = pq.read_table(local_object_storage / run.tables["users"]["key"])
    assert users.num_rows == 0
    assert "email" in users.column_names


def test_failed_export_leaves_latest_on_the_previous_complete_run(
    dataset, local_object_storage, monkeypatch
):
    first = exports.export_run()
    real_put = objects.object_put_file
    uploads = []

    def failing_put(*, key, path, content_type):
        uploads.append(key)
        if len(uploads) == 2:
            raise OSError("disk full")
        real_put(key=key, path=path, content_type=content_type)

    monkeypatch.setattr(objects, "object_put_file", failing_put)
    with pytest.raises(OSError, match="disk full"):
        exports.export_run()
    assert exports.latest_export()["run_id"] == first.run_id
    failed_run = uploads[0].split("/")[2]
    assert failed_run != first.run_id
    assert exports.export_manifest(failed_run) is None
    # No temporary file is left beside the objects.
    assert not [p for p in local_object_storage.rglob("*") if p.name.endswith(".tmp")]


def test_export_needs_the_all_tenants_mode_to_see_tenant_rows(
    dataset, local_object_storage, monkeypatch
):
    """RLS stays on for the export: without the all-tenants context it would see no rows."""
    import contextlib

    from tenants import db

    monkeypatch.setattr(db, "all_tenants_context", contextlib.nullcontext)
    run = exports.export_run()
    assert run.tables["users"]["rows"] == 0
    assert run.tables["documents"]["rows"] == 0
    assert run.tables["tenants"]["rows"] == 2  # the tenant registry is not tenant-owned


def test_export_parquet_command_reports_progress_and_keys(dataset, local_object_storage, capsys):
    call_command("export_parquet", "--chunk-size", "1")
    out, err = capsys.readouterr()
    assert "100% 6/6" in err
    manifest = exports.latest_export()
    assert f"documents: 6 rows -> {manifest['tables']['documents']['key']}" in out
    assert json.loads((local_object_storage / "system/exports/latest.json").read_text()) == manifest


def test_prune_keeps_the_newest_runs_and_leaves_other_folders(dataset, local_object_storage):
    runs = [exports.export_run().run_id for _ in range(4)]
    stranger = local_object_storage / "system" / "exports" / "notes"
    stranger.mkdir()
    assert exports.export_prune(keep=2) == [runs[1], runs[0]]
    folders = sorted(p.name for p in (local_object_storage / "system" / "exports").iterdir())
    assert folders == sorted([runs[2], runs[3], "latest.json", "notes"])
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


def test_export_parquet_command_prunes_old_runs(dataset, local_object_storage, capsys):
    old = exports.export_run().run_id
    call_command("export_parquet", "--keep", "1", "--quiet")
    assert f"deleted old export {old}" in capsys.readouterr().out
    assert not (local_object_storage / "system" / "exports" / old).exists()
