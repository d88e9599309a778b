"""Presigned multipart with declared part checksums, as the upload page sends it: S3 checks every
part against the SHA-256 signed into its URL, and the completion checks type and content where
the object lies (ranged reads), never reading it back whole."""

import base64
import hashlib
import urllib.error
import urllib.request

import pytest

from documents import multipart, multipart_verify
from documents.models import Document
from metis.objectstore import ranged, store
from tenants import db
from tests.documents.conftest import bucket_keys, pdf_bytes, png_bytes
from tests.documents.test_multipart import post_json

MiB = 1024 * 1024
PART = 8 * MiB


def checksums(content: bytes, part_size: int = PART) -> list[str]:
    slices = [content[at : at + part_size] for at in range(0, len(content), part_size)] or [b""]
    return [base64.b64encode(hashlib.sha256(part).digest()).decode() for part in slices]


def start(client, content: bytes, **overrides):
    """Start a checksummed upload of `content`, as the page does: no digest yet."""
    body = {
        "document_type": "bank-statement",
        "filename": "statement.pdf",
        "size": len(content),
        "content_type": "application/pdf",
        "part_size": PART,
        "checksummed": True,
        **overrides,
    }
    return post_json(client, "/documents/multipart/start/", body)


def part_urls(client, started: dict, numbers: list[int], sums: list[str]):
    return post_json(
        client,
        "/documents/multipart/parts/",
        {"ticket": started["ticket"], "part_numbers": numbers, "part_checksums": sums},
    )


def put_part(url: str, data: bytes, checksum: str | None) -> str:
    headers = {} if checksum is None else {"x-amz-checksum-sha256": checksum}
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(request) as response:
        return response.headers["ETag"]


def send(client, started: dict, content: bytes, sums: list[str], numbers=None) -> list[dict]:
    """Ask for each part's URL with its digest, then PUT the part with it."""
    numbers = numbers or list(range(1, started["part_count"] + 1))
    status, answer = part_urls(client, started, numbers, [sums[n - 1] for n in numbers])
    assert status == 200, answer
    size = started["part_size"]
    return [
        {
            "number": part["number"],
            "etag": put_part(
                part["url"],
                content[(part["number"] - 1) * size : part["number"] * size],
                sums[part["number"] - 1],
            ),
        }
        for part in answer["parts"]
    ]


def complete(client, started: dict, sums: list[str], sha256: str, parts: list | None = None):
    body = {"ticket": started["ticket"], "part_checksums": sums, "sha256": sha256}
    if parts is not None:
        body["parts"] = parts
    return post_json(client, "/documents/multipart/complete/", body)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def test_checksummed_upload_is_stored_byte_for_byte_and_recorded(
    s3_bucket, s3_server, tenant_client, tenant
):
    content = pdf_bytes(size=17 * MiB)  # 8 + 8 + 1 MiB
    sums = checksums(content)
    status, started = start(tenant_client, content)
    assert status == 201, started
    assert started["part_count"] == 3 and started["key"].startswith(f"tenants/{tenant.pk}/")
    assert started["parts"] == []  # each part's URL is asked for with its digest
    send(tenant_client, started, content, sums)

    # No part list: S3's own listing is used.
    status, done = complete(tenant_client, started, sums, sha(content))

    assert status == 201, done
    with db.tenant_context(tenant.pk):
        document = Document.objects.get(pk=done["id"])
    assert document.size_bytes == len(content)
    assert document.sha256 == hashlib.sha256(content).hexdigest()
    stored = s3_server.client().get_object(Bucket=s3_bucket, Key=document.storage_key)
    assert stored["Body"].read() == content
    assert stored["ServerSideEncryption"] == "AES256"
    assert document.version_id == (
        "" if stored.get("VersionId") in (None, "null") else stored["VersionId"]
    )
    assert document.etag == stored["ETag"]  # tiering's copy precondition
    assert s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_the_content_check_reads_a_large_pdf_by_a_few_ranges(s3_bucket, tenant):
    content = pdf_bytes(size=40 * MiB)
    documents = store.documents_store()
    documents.put_bytes(key=f"tenants/{tenant.pk}/x.pdf", data=content, content_type="x")
    raw = ranged.RangedObject(documents, f"tenants/{tenant.pk}/x.pdf", size=len(content))
    upload = multipart.MultipartUpload(
        tenant_id=str(tenant.pk),
        key=f"tenants/{tenant.pk}/x.pdf",
        upload_id="u",
        document_id="00000000-0000-0000-0000-000000000000",
        document_type="bank-statement",
        filename="x.pdf",
        size_bytes=len(content),
        sha256="0" * 64,
        content_type="application/pdf",
        replacing=False,
        part_size=PART,
    )
    facts = multipart_verify.verify_in_place(upload, version_id="")
    assert facts.content_type == "application/pdf" and facts.size_bytes == len(content)
    import io

    with io.BufferedReader(raw, buffer_size=8192) as stored:
        from documents.validation import check_content

        check_content(stored, content_type="application/pdf")
    assert raw.requests <= 3  # the first block and the last: of 160 in the object


def test_s3_refuses_a_part_whose_bytes_do_not_match_its_signed_checksum(
    s3_bucket, s3_server, tenant_client
):
    content = pdf_bytes(size=9 * MiB)
    sums = checksums(content)
    _, started = start(tenant_client, content)
    _, answer = part_urls(tenant_client, started, [1], sums[:1])
    first = answer["parts"][0]
    corrupted = b"X" + content[1:PART]
    with pytest.raises(urllib.error.HTTPError) as bad_body:
        put_part(first["url"], corrupted, sums[0])
    assert bad_body.value.code == 400  # BadDigest
    with pytest.raises(urllib.error.HTTPError) as other_digest:
        put_part(first["url"], corrupted, checksums(corrupted)[0])
    assert other_digest.value.code == 403  # the digest is signed into the URL
    with pytest.raises(urllib.error.HTTPError) as no_digest:
        put_part(first["url"], corrupted, None)
    assert no_digest.value.code == 403


def test_a_missing_part_is_refused_and_leaves_nothing(s3_bucket, s3_server, tenant_client, tenant):
    content = pdf_bytes(size=9 * MiB)
    sums = checksums(content)
    _, started = start(tenant_client, content)
    send(tenant_client, started, content, sums, numbers=[1])

    status, error = complete(tenant_client, started, sums, sha(content))

    assert (status, error["code"]) == (400, "size_mismatch")
    assert bucket_keys(s3_server, s3_bucket) == []
    with db.tenant_context(tenant.pk):
        assert not Document.objects.exists()


def test_completion_needs_one_digest_per_part_and_the_files_sha256(s3_bucket, tenant_client):
    content = pdf_bytes(size=9 * MiB)
    sums = checksums(content)
    _, started = start(tenant_client, content)
    send(tenant_client, started, content, sums)
    status, error = complete(tenant_client, started, sums[:1], sha(content))
    assert (status, error["code"], error["field"]) == (400, "bad_part_checksums", "part_checksums")
    status, error = complete(tenant_client, started, sums, "abc")
    assert (status, error["code"], error["field"]) == (400, "bad_checksum", "sha256")
    status, done = complete(tenant_client, started, sums, sha(content))
    assert status == 201, done


def test_part_urls_of_a_checksummed_upload_need_a_digest_each(s3_bucket, tenant_client):
    content = pdf_bytes()
    _, started = start(tenant_client, content)
    for sums in (["abc"], [], None):
        body = {"ticket": started["ticket"], "part_numbers": [1]}
        if sums is not None:
            body["part_checksums"] = sums
        status, error = post_json(tenant_client, "/documents/multipart/parts/", body)
        assert (status, error["field"]) == (400, "part_checksums"), error


@pytest.mark.parametrize("part_size", [1024, 1024 * MiB])
def test_start_refuses_a_part_size_out_of_bounds(s3_bucket, tenant_client, part_size):
    status, error = start(tenant_client, pdf_bytes(), part_size=part_size)
    assert (status, error["field"]) == (400, "part_size"), error


def test_a_duplicate_is_refused_at_completion_and_leaves_no_object(
    s3_bucket, s3_server, tenant_client, tenant
):
    from tests.documents.conftest import upload

    content = pdf_bytes()
    upload(tenant, content)
    sums = checksums(content)
    _, started = start(tenant_client, content)
    send(tenant_client, started, content, sums)
    status, error = complete(tenant_client, started, sums, sha(content))
    assert (status, error["code"]) == (400, "duplicate"), error
    assert started["key"] not in bucket_keys(s3_server, s3_bucket)


def test_a_damaged_pdf_is_refused_at_completion_and_leaves_no_object_and_no_row(
    s3_bucket, s3_server, tenant_client, tenant
):
    content = b"%PDF-1.7\n" + b"not a pdf at all\n" * 1000 + b"%%EOF\n"
    sums = checksums(content)
    _, started = start(tenant_client, content)
    send(tenant_client, started, content, sums)

    status, error = complete(tenant_client, started, sums, sha(content))

    assert (status, error["code"]) == (400, "unreadable"), error
    assert bucket_keys(s3_server, s3_bucket) == []
    with db.tenant_context(tenant.pk):
        assert not Document.objects.exists()


def test_content_sniffed_as_another_type_than_declared_is_refused(
    s3_bucket, s3_server, tenant_client
):
    content = png_bytes()
    sums = checksums(content)
    _, started = start(tenant_client, content, document_type="pan")  # declared a PDF
    send(tenant_client, started, content, sums)
    status, error = complete(tenant_client, started, sums, sha(content))
    assert (status, error["code"]) == (400, "content_mismatch")
    assert bucket_keys(s3_server, s3_bucket) == []


def test_an_image_is_decoded_where_it_lies(s3_bucket, tenant_client, tenant):
    content = png_bytes()
    sums = checksums(content)
    _, started = start(tenant_client, content, document_type="image", content_type="image/png")
    send(tenant_client, started, content, sums)
    status, done = complete(tenant_client, started, sums, sha(content))
    assert status == 201, done
    with db.tenant_context(tenant.pk):
        assert Document.objects.get(pk=done["id"]).content_type == "image/png"


# --- Another tenant, by every route ---------------------------------------------------------------


def test_another_tenant_can_neither_complete_nor_abort_nor_refresh_a_checksummed_upload(
    s3_bucket, s3_server, tenant_client, other_client, tenant, other_tenant
):
    content = pdf_bytes()
    sums = checksums(content)
    _, mine = start(tenant_client, content)
    send(tenant_client, mine, content, sums)
    ticket = {"ticket": mine["ticket"], "part_checksums": sums, "sha256": sha(content)}

    for path, extra in [
        ("/documents/multipart/parts/", {"part_numbers": [1]}),
        ("/documents/multipart/complete/", {}),
        ("/documents/multipart/abort/", {}),
    ]:
        status, error = post_json(other_client, path, {**ticket, **extra})
        assert status == 404, (path, error)

    uploads = s3_server.client().list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [upload["Key"] for upload in uploads] == [mine["key"]]  # untouched
    with db.tenant_context(other_tenant.pk):
        assert not Document.objects.exists()
    status, done = complete(tenant_client, mine, sums, sha(content))
    assert status == 201, done
    with db.tenant_context(tenant.pk):
        assert Document.objects.get(pk=done["id"]).storage_key == mine["key"]


def test_a_client_cannot_choose_the_key(s3_bucket, tenant_client, tenant, other_tenant):
    content = pdf_bytes()
    outside = f"tenants/{other_tenant.pk}/documents/bank-statements/x/y.pdf"
    status, started = start(tenant_client, content, key=outside, tenant_id=str(other_tenant.pk))
    assert status == 201
    assert started["key"].startswith(f"tenants/{tenant.pk}/documents/bank-statements/")
    _, answer = part_urls(tenant_client, started, [1], checksums(content))
    for part in answer["parts"]:
        assert f"/tenants/{tenant.pk}/" in part["url"] and str(other_tenant.pk) not in part["url"]
