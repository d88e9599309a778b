"""Every way an upload is refused, each with its clear message, and nothing stored."""

import io

import pytest

from documents import services
from documents.validation import DocumentRejected, clean_filename, sniff_content_type
from tenants import db
from tests.documents.conftest import (
    jpeg_bytes,
    pdf_bytes,
    png_bytes,
    stored_keys,
    upload,
)
from tests.support.pdfs import write_pdf


def refused(
    tenant, content: bytes, document_type="bank-statement", name="s.pdf"
) -> DocumentRejected:
    with pytest.raises(DocumentRejected) as error:
        upload(tenant, content, document_type=document_type, name=name)
    return error.value


def test_magic_bytes_decide_the_type_not_the_name():
    assert sniff_content_type(b"%PDF-1.4 ...") == "application/pdf"
    assert sniff_content_type(jpeg_bytes()) == "image/jpeg"
    assert sniff_content_type(png_bytes()) == "image/png"
    assert sniff_content_type(b"GIF89a") is None
    assert sniff_content_type(b"PK\x03\x04") is None


def test_empty_file_is_refused(s3_bucket, tenant):
    error = refused(tenant, b"")
    assert (error.code, error.message) == ("empty", "The file is empty.")
    assert stored_keys() == []


def test_file_over_the_configured_limit_is_refused(s3_bucket, settings, tenant):
    settings.DOCUMENT_MAX_UPLOAD_BYTES = 2048
    error = refused(tenant, pdf_bytes(size=4096))
    assert error.code == "too_large"
    assert error.message == "The file is 4.0 KB; the limit is 2.0 KB."
    assert stored_keys() == []


def test_a_text_file_named_pdf_is_refused(s3_bucket, tenant):
    error = refused(tenant, b"just some text, honest", name="statement.pdf")
    assert error.code == "unknown_content"
    assert "not a PDF, JPEG or PNG (judged by its content, not its name)" in error.message
    assert stored_keys() == []


@pytest.mark.parametrize(
    ("document_type", "content", "message"),
    [
        ("bank-statement", png_bytes, "A Bank statement must be a PDF; this file is a PNG."),
        ("report", jpeg_bytes, "A Report must be a PDF; this file is a JPEG."),
        ("image", pdf_bytes, "A Image must be a JPEG or PNG; this file is a PDF."),
    ],
    ids=["png-statement", "jpeg-report", "pdf-image"],
)
def test_types_not_allowed_for_the_document_type_are_refused(
    s3_bucket, tenant, document_type, content, message
):
    error = refused(tenant, content(), document_type=document_type)
    assert (error.code, error.message) == ("content_not_allowed", message)


@pytest.mark.parametrize("document_type", ["pan", "aadhar"])
def test_identity_documents_accept_pdf_jpeg_and_png(s3_bucket, tenant, document_type):
    for content in (pdf_bytes(), jpeg_bytes(), png_bytes()):
        upload(tenant, content, document_type=document_type)
    assert len(stored_keys()) == 3


def test_unknown_document_type_is_refused(s3_bucket, tenant):
    error = refused(tenant, pdf_bytes(), document_type="passport")
    assert error.code == "bad_type"


def test_duplicate_content_in_the_same_tenant_is_reported(s3_bucket, tenant):
    content = pdf_bytes()
    first = upload(tenant, content, name="march.pdf")
    error = refused(tenant, content, name="march-again.pdf")
    assert error.code == "duplicate"
    assert "already stored as “march.pdf” (Bank statement, uploaded " in error.message
    assert error.params["document_id"] == str(first.pk)
    assert stored_keys() == [first.storage_key]


def test_same_content_in_another_tenant_is_not_a_duplicate(s3_bucket, tenant, other_tenant):
    content = pdf_bytes()
    upload(tenant, content)
    upload(other_tenant, content)
    assert len(stored_keys()) == 2


def test_deleted_document_content_may_be_uploaded_again(s3_bucket, tenant):
    content = pdf_bytes()
    with db.tenant_context(tenant.pk):
        services.document_delete(document=upload(tenant, content))
    upload(tenant, content)


def test_replacing_with_identical_content_is_refused(s3_bucket, tenant):
    content = pdf_bytes()
    document = upload(tenant, content)
    with (
        db.tenant_context(tenant.pk),
        pytest.raises(DocumentRejected, match="identical to the current version"),
    ):
        services.document_replace(document=document, file=io.BytesIO(content), filename="x.pdf")


def test_replacing_a_deleted_document_is_refused(s3_bucket, tenant):
    with db.tenant_context(tenant.pk):
        document = services.document_delete(document=upload(tenant))
    with db.tenant_context(tenant.pk), pytest.raises(DocumentRejected, match="deleted"):
        services.document_replace(document=document, file=io.BytesIO(pdf_bytes()), filename="x.pdf")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("C:\\Users\\me\\pan card.pdf", "pan card.pdf"),
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("bad\x00name\r\n.pdf", "bad_name__.pdf"),
        ("", "document"),
        ("a" * 300 + ".pdf", "a" * 247 + ".pdf"),
    ],
)
def test_filenames_are_cleaned_for_display(given, kept):
    assert clean_filename(given) == kept


# --- Content checks are bounded: a 256 MB PDF costs a fraction of a second, never minutes -----


@pytest.mark.parametrize("whole", [True, False], ids=["well formed", "cut short"])
def test_a_256_mb_pdf_is_judged_in_well_under_a_second(tmp_path, whole):
    import time

    from documents.validation import check_content

    path = tmp_path / "large.pdf"
    with path.open("w+b") as file:
        write_pdf(file, 256 * 1024 * 1024)  # sparse: the filler is never written
        if not whole:
            file.truncate(file.tell() - 40)  # the %%EOF and the table's end are gone
        assert file.tell() > 255 * 1024 * 1024 or not whole
        file.seek(0)
        began = time.monotonic()
        if whole:
            check_content(file, content_type="application/pdf")
        else:
            with pytest.raises(DocumentRejected, match="cut short"):
                check_content(file, content_type="application/pdf")
        assert time.monotonic() - began < 1.0
