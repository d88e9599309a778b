"""An export's progress is committed as it runs: another connection (a page) sees it move."""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection

from privacy.exports import archive, services, tasks
from privacy.exports.models import Export, ExportScope, ExportStatus
from tenants import db
from tests.documents.conftest import pdf_bytes, upload

pytestmark = [pytest.mark.committed, pytest.mark.usefixtures("s3_bucket", "clickhouse_db")]


def test_progress_is_visible_while_the_export_runs(tenant, tenant_user, tenant_client, monkeypatch):
    for number in range(3):
        upload(tenant, pdf_bytes(f"file {number}"), user=tenant_user)
    with db.tenant_context(tenant.pk):
        export = services.export_request(requested_by=tenant_user, scope=ExportScope.USER)
    seen: list[dict] = []
    copy = archive._copy_object

    def copy_and_look(*args, **kwargs):
        # From another thread (its own connection), as a browser polling the page would.
        def look():
            response = tenant_client.get(f"/exports/{export.pk}/", HTTP_ACCEPT="application/json")
            seen.append(response.json())

        watcher = threading.Thread(target=look)
        watcher.start()
        watcher.join()
        return copy(*args, **kwargs)

    monkeypatch.setattr(archive, "_copy_object", copy_and_look)
    monkeypatch.setattr(services, "PROGRESS_EVERY_SECONDS", 0)
    result = tasks.export_build.apply(
        kwargs={"export_id": str(export.pk), "tenant_id": str(tenant.pk)}
    )
    assert result.get() == ExportStatus.READY
    assert [s["status"] for s in seen] == ["running"] * 3
    percents = [s["percent"] for s in seen]
    assert percents == sorted(percents) and 0 < percents[0] < 100
    assert percents[-1] > percents[0]
    assert all("document files" in s["stage"] for s in seen[1:])
    with db.tenant_context(tenant.pk):
        assert Export.objects.get(pk=export.pk).progress_percent == 100


@pytest.mark.parametrize("column", ["subject_user_id", "requested_by_id"])
def test_export_cannot_reference_another_tenants_user(tenant, other_tenant_user, column):
    # Deferred composite foreign keys: checked at COMMIT, hence a committed test.
    with (
        pytest.raises(IntegrityError),
        db.tenant_context(tenant.pk),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            f"INSERT INTO privacy_exports (tenant_id, scope, subject_ref, status, "
            f"progress_percent, progress_note, object_key, version_id, sha256, summary, "
            f"error, {column}) VALUES (%s, 'user', '', 'queued', 0, '', '', '', '', '{{}}', "
            f"'', %s)",
            [tenant.pk, other_tenant_user.pk],
        )
    with db.tenant_context(tenant.pk):
        assert not Export.objects.exists()
