"""Erasure reaches the DR bucket: every copied version of the subject's documents is deleted
there too, read back from the DR server; another subject's copies stay."""

from __future__ import annotations

import pytest

from documents import replication
from documents.models import DocumentVersion
from tenants import db
from tests.documents.dr import dr_bucket, dr_server, versions_of
from tests.privacy.conftest import erase, upload_versions

__all__ = ["dr_bucket", "dr_server"]

pytestmark = pytest.mark.committed


def _replicate(document) -> list[DocumentVersion]:
    with db.tenant_context(document.tenant_id, atomic=False):
        for version in versions_of(document):
            assert replication.version_replicate(version_id=version.pk) == replication.COPIED
    return versions_of(document)


def _dr_entries(server, bucket: str, folder: str) -> list[dict]:
    listing = server.client().list_object_versions(Bucket=bucket, Prefix=folder)
    return [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]


def test_erasing_a_borrower_deletes_every_version_in_the_dr_bucket(
    versioned_bucket, dr_server, dr_bucket, clickhouse_db, tenant, staff_user, approver
):
    mine = upload_versions(tenant, subject_ref="CUST-1", versions=2)
    theirs = upload_versions(tenant, subject_ref="CUST-2", versions=1)
    my_versions, their_versions = _replicate(mine), _replicate(theirs)
    folders = {version.storage_key.rsplit("/", 1)[0] + "/" for version in my_versions}
    assert sum(len(_dr_entries(dr_server, dr_bucket, folder)) for folder in folders) == 2
    # A stray delete marker in the DR bucket goes too.
    dr_server.client().delete_object(Bucket=dr_bucket, Key=my_versions[0].storage_key)

    _, receipt = erase(tenant, kind="borrower", ref="CUST-1", staff=staff_user, approver=approver)

    assert all(_dr_entries(dr_server, dr_bucket, folder) == [] for folder in folders)
    [kept] = their_versions
    assert _dr_entries(dr_server, dr_bucket, kept.storage_key) != []
    assert receipt["erased"]["s3_dr"] == {"versions": 2, "delete_markers": 1}
    assert receipt["verified"]["s3_dr.versions_and_markers"] == 0
    assert set(receipt["verified"].values()) == {0}
