"""The SQL workbench: SELECTs over the export only; everything else refused, and all audited."""

from __future__ import annotations

import pathlib
import time
import urllib.parse

import pytest
from django.conf import settings
from django.test import Client

from analytics import exports, workbench
from analytics.models import WorkbenchQuery, WorkbenchQueryStatus
from metis.objectstore import store
from tests.factories import TEST_PASSWORD
from tests.support import staff

# The export reads through the staff read role's own connection: data must be committed.
pytestmark = pytest.mark.committed

URL = "/admin/analytics/workbench/"
PER_TENANT = (
    "SELECT t.subdomain, count(*) AS n FROM documents d JOIN tenants t ON t.id = d.tenant_id "
    "WHERE d.deleted_at IS NULL GROUP BY ALL ORDER BY 1"
)


@pytest.fixture
def export_run(dataset, s3_bucket):
    return exports.export_run()


def _run(staff_user, sql, **kwargs):
    return workbench.workbench_query_run(staff=staff_user, sql=sql, **kwargs)


def test_workbench_page_runs_a_select_over_the_export_run(staff_client, export_run):
    response = staff_client.post(URL, {"sql": PER_TENANT, "format": "html"})
    assert response.status_code == 200
    html = response.content.decode()
    assert '<table id="workbench-result">' in html
    assert "<td>acme</td><td>3</td>" in html
    assert "<td>globex</td><td>2</td>" in html
    assert export_run.run_id in html


def test_workbench_runs_a_select_over_a_local_copy_of_the_export_run(staff_user, export_run):
    result = _run(staff_user, PER_TENANT)
    assert result.ok, result.error
    assert result.rows == [("acme", 3), ("globex", 2)]
    assert result.audit.export_run_id == export_run.run_id


def test_workbench_csv_download_has_header_and_rows(staff_client, export_run):
    response = staff_client.post(URL, {"sql": PER_TENANT, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response.content.decode().splitlines() == ["subdomain,n", "acme,3", "globex,2"]


def test_workbench_csv_neutralises_spreadsheet_formulas(staff_user, export_run):
    result = _run(staff_user, "SELECT '=HYPERLINK(1)' AS a, -5 AS b")
    assert workbench.result_csv(result).splitlines()[1] == "'=HYPERLINK(1),-5"


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE stolen AS SELECT * FROM users",
        "INSERT INTO users (id) VALUES ('x')",
        "DROP VIEW users",
        "UPDATE users SET email = 'x'",
        "COPY users TO '/tmp/users.csv'",
        "COPY (SELECT * FROM users) TO 's3://metis/out.parquet'",
        "EXPORT DATABASE '/tmp/db'",
        "ATTACH '/tmp/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "LOAD '/tmp/evil.duckdb_extension'",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "SET allowed_directories = ['/']",
        "PRAGMA enable_profiling",
        "CALL pragma_version()",
        "SELECT 1; DROP VIEW users",
        "SELECT * FROM users; COPY users TO '/tmp/x.csv'",
        "EXPLAIN ANALYZE SELECT 1",
        "SELEC 1",
        "",
    ],
)
def test_workbench_refuses_anything_but_one_select(staff_user, export_run, sql):
    result = _run(staff_user, sql)
    assert result.audit.status == WorkbenchQueryStatus.REFUSED
    assert result.rows == []
    assert result.error


@pytest.mark.parametrize("target", ["export object", "server file"])
def test_copy_into_an_export_file_is_refused_and_the_export_is_intact(
    staff_user, export_run, tmp_path, target
):
    documents = store.documents_store()
    key = export_run.tables["users"]["key"]
    before = documents.read_bytes(key)
    assert before
    server_file = tmp_path / "stolen.csv"
    destination = documents.url_of(key) if target == "export object" else str(server_file)
    result = _run(staff_user, f"COPY (SELECT * FROM users) TO '{destination}'")
    assert result.audit.status == WorkbenchQueryStatus.REFUSED
    assert documents.read_bytes(key) == before
    assert not server_file.exists()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd', header = false)",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM read_json('/etc/passwd')",
        "SELECT * FROM read_csv('file:///etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM sniff_csv('/etc/passwd')",
        "SELECT * FROM parquet_metadata('/etc/passwd')",
        "SELECT * FROM query('SELECT * FROM read_csv(''/etc/passwd'')')",
        "SELECT * FROM read_csv('http://127.0.0.1:1/x')",
        "SELECT * FROM read_csv('s3://other-bucket/secret.csv')",
    ],
)
def test_workbench_cannot_read_the_servers_files(staff_user, export_run, sql):
    result = _run(staff_user, sql)
    assert result.audit.status == WorkbenchQueryStatus.FAILED
    assert result.rows == []
    # Refused by DuckDB's own guard (a bare path is not even taken for a file name).
    assert "Permission Error" in result.error or "Table with name /etc/passwd" in result.error
    assert "root:" not in result.error


def test_workbench_cannot_read_objects_next_to_the_export_nor_server_files(
    staff_user, export_run, tmp_path
):
    """Only the exact export objects are readable: not a tenant's documents, not by `..`, not
    by a wildcard, and no file on the server."""
    documents = store.documents_store()
    secret_key = "tenants/x/documents/secret.csv"
    documents.put_bytes(key=secret_key, data=b"ssn\n123-45-6789\n", content_type="text/csv")
    server_secret = tmp_path / "secret.csv"
    server_secret.write_text("ssn\n123-45-6789\n")
    bucket = documents.url_of("")  # s3://<bucket>/
    export_folder = documents.url_of(export_run.tables["users"]["key"]).rsplit("/", 1)[0]
    routes = [
        f"SELECT * FROM read_csv('{documents.url_of(secret_key)}')",
        f"SELECT * FROM read_csv('{export_folder}/../../../{secret_key}')",
        f"SELECT * FROM glob('{bucket}**')",
        f"SELECT * FROM read_csv('{bucket}tenants/*/documents/*.csv')",
        f"SELECT * FROM read_parquet('{bucket}system/exports/*/*.parquet')",
        f"SELECT * FROM read_csv('{bucket}system/exports/latest.json')",
        f"SELECT * FROM read_csv('{server_secret}')",
        f"SELECT * FROM read_text('{server_secret}')",
        f"SELECT * FROM glob('{tmp_path}/*')",
    ]
    for sql in routes:
        result = _run(staff_user, sql)
        assert result.audit.status == WorkbenchQueryStatus.FAILED, sql
        assert result.rows == [], sql
        assert "Permission Error" in result.error, (sql, result.error)
        assert "123-45-6789" not in result.error


def test_workbench_cannot_read_the_servers_environment(staff_user, export_run):
    result = _run(staff_user, "SELECT getenv('DATABASE_URL')")
    assert result.audit.status == WorkbenchQueryStatus.FAILED
    assert "getenv does not exist" in result.error


def test_workbench_stops_a_runaway_query_within_the_time_limit(staff_user, export_run):
    # 10^18 combinations of three small tables: endless CPU, bounded memory (so the memory
    # limit cannot end it first).
    started = time.monotonic()
    result = _run(
        staff_user,
        "SELECT count(*) FROM range(1000000) a, range(1000000) b, range(1000000) c",
        timeout=1,
    )
    elapsed = time.monotonic() - started
    assert result.audit.status == WorkbenchQueryStatus.TIMED_OUT, result.error
    assert elapsed < 1 + workbench.INTERRUPT_GRACE_SECONDS
    assert "1 s time limit" in result.error


def test_workbench_applies_the_row_cap(staff_user, export_run):
    result = _run(staff_user, "SELECT * FROM range(1000000000)", max_rows=50)
    assert result.ok
    assert len(result.rows) == 50
    assert result.truncated
    assert result.audit.row_count == 50
    assert result.audit.truncated


def test_workbench_audits_every_run_including_refused_and_failed(
    staff_client, staff_user, export_run
):
    queries = [PER_TENANT, "DROP VIEW users", "SELECT * FROM read_csv('/etc/passwd')"]
    for sql in queries:
        staff_client.post(URL, {"sql": sql, "format": "html"}, REMOTE_ADDR="10.1.2.3")
    audits = list(WorkbenchQuery.objects.order_by("id"))
    assert [(a.sql, a.status) for a in audits] == [
        (PER_TENANT, WorkbenchQueryStatus.OK),
        ("DROP VIEW users", WorkbenchQueryStatus.REFUSED),
        ("SELECT * FROM read_csv('/etc/passwd')", WorkbenchQueryStatus.FAILED),
    ]
    assert all(a.staff == staff_user and a.ip_address == "10.1.2.3" for a in audits)
    assert all(a.duration_ms is not None and a.started_at for a in audits)
    assert audits[0].row_count == 2
    assert "Permission Error" in audits[2].error


def test_workbench_without_an_export_says_so(staff_user, db, s3_bucket):
    result = _run(staff_user, "SELECT 1")
    assert result.audit.status == WorkbenchQueryStatus.FAILED
    assert "export_parquet" in result.error


def test_workbench_is_closed_to_anonymous_and_non_staff(tenant_db, staff_user_model, export_run):
    anonymous = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    response = anonymous.post(URL, {"sql": "SELECT 1"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    staff_user_model.objects.create_user("clerk", "c@metis.example", TEST_PASSWORD)
    clerk = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    clerk.login(username="clerk", password=TEST_PASSWORD)
    response = clerk.post(URL, {"sql": "SELECT 1"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not WorkbenchQuery.objects.exists()


def test_workbench_is_superuser_only_not_every_staff_member(
    tenant_db, staff_user_model, export_run
):
    support = staff_user_model.objects.create_user(
        "support", "s@metis.example", TEST_PASSWORD, is_staff=True
    )
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    client.force_login(support)
    staff.mark_verified(client, support)
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"sql": "SELECT 1"}).status_code == 403
    assert not WorkbenchQuery.objects.exists()


def test_workbench_is_not_served_on_tenant_hosts(tenant_client, export_run):
    assert tenant_client.post(URL, {"sql": "SELECT 1"}).status_code == 404
    assert not WorkbenchQuery.objects.exists()


def test_workbench_audit_list_links_to_the_workbench_and_cannot_be_edited(
    staff_client, staff_user, export_run
):
    _run(staff_user, "SELECT 42")
    response = staff_client.get("/admin/analytics/workbenchquery/")
    assert response.status_code == 200
    assert URL in response.content.decode()
    assert "SELECT 42" in response.content.decode()
    audit = WorkbenchQuery.objects.get()
    response = staff_client.post(
        f"/admin/analytics/workbenchquery/{audit.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    assert WorkbenchQuery.objects.filter(pk=audit.pk).exists()


def test_workbench_page_shows_the_export_and_its_tables(staff_client, export_run):
    response = staff_client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Export <strong>{export_run.run_id}</strong>" in html
    assert "<code>documents</code> 6 rows" in html
    assert "storage_class" in html  # the column list
    assert not WorkbenchQuery.objects.exists()  # looking is not running


# --- No credential, endpoint or server secret, whatever the SQL ----------------------------------

CREDENTIAL_PROBES = [
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM duckdb_secrets(redact := false)",
    "SELECT * FROM which_secret('s3://any-bucket/any.parquet', 's3')",
    "SELECT current_setting('s3_access_key_id')",
    "SELECT current_setting('s3_secret_access_key')",
    "SELECT current_setting('s3_endpoint')",
    "SELECT current_setting('s3_region'), current_setting('s3_url_style')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_views()",
    "SELECT * FROM duckdb_extensions()",
    "SELECT * FROM duckdb_functions() WHERE function_type = 'macro'",
    "SELECT getenv('AWS_SECRET_ACCESS_KEY')",
    "SELECT * FROM read_text('/proc/self/environ')",
    "SELECT * FROM read_blob('/proc/self/environ')",
    "SELECT * FROM read_csv('/proc/self/environ', header = false)",
    "SELECT * FROM read_text('/proc/self/cmdline')",
    "SELECT * FROM glob('/proc/self/*')",
    "SELECT * FROM read_text('.env')",
    "SELECT * FROM read_text('{env_file}')",
    "SELECT * FROM read_csv('{env_file}', header = false)",
    "SELECT * FROM read_text('~/.aws/credentials')",
    "SELECT * FROM read_parquet('s3://any-bucket/missing.parquet')",
    "SELECT * FROM read_parquet('s3://{bucket}/system/exports/missing.parquet')",
    "SELECT * FROM read_csv('{bucket_url}system/exports/latest.json')",
    "SELECT * FROM query('SELECT * FROM duckdb_secrets()')",
    "SELECT * FROM documents WHERE size_bytes = 'not a number'",
]


def forbidden_strings(settings) -> dict[str, str]:
    """The real credentials and the server's address: none may reach a workbench user."""
    endpoint = urllib.parse.urlsplit(settings.AWS_S3_ENDPOINT_URL)
    return {
        "key id": settings.AWS_ACCESS_KEY_ID,
        "secret": settings.AWS_SECRET_ACCESS_KEY,
        "endpoint host:port": endpoint.netloc,
        "endpoint port": f":{endpoint.port}",
    }


def revealed(result, forbidden: dict[str, str]) -> list[str]:
    text = "\n".join([result.error, *map(str, result.columns), *map(repr, result.rows)])
    return [name for name, value in forbidden.items() if value in text]


@pytest.mark.parametrize("probe", CREDENTIAL_PROBES)
def test_workbench_reveals_no_credential_nor_endpoint(staff_user, export_run, settings, probe):
    sql = probe.format(
        env_file=pathlib.Path(settings.BASE_DIR, "var", "test.env"),
        bucket=settings.AWS_STORAGE_BUCKET_NAME,
        bucket_url=store.documents_store().url_of(""),
    )
    result = _run(staff_user, sql)
    assert revealed(result, forbidden_strings(settings)) == [], (sql, result.rows, result.error)
    assert revealed(result, {"bucket": settings.AWS_STORAGE_BUCKET_NAME}) == [] or (
        settings.AWS_STORAGE_BUCKET_NAME in sql
    )
    assert not [row for row in result.rows if "AWS_" in repr(row)]  # no environment dump


def test_workbench_page_reveals_no_credential_nor_endpoint(staff_client, export_run, settings):
    for sql in ["SELECT * FROM duckdb_secrets()", "SELECT * FROM duckdb_settings()"]:
        html = staff_client.post(URL, {"sql": sql, "format": "html"}).content.decode()
        assert [name for name, value in forbidden_strings(settings).items() if value in html] == []


def test_workbench_views_read_local_copies_not_object_storage(staff_user, export_run, settings):
    result = _run(staff_user, "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal")
    assert result.ok, result.error
    assert sorted(name for name, _ in result.rows) == ["documents", "tenants", "users"]
    assert not [sql for _, sql in result.rows if "s3://" in sql or "http" in sql]


def test_workbench_still_answers_over_the_export_after_the_lockdown(staff_user, export_run):
    result = _run(staff_user, PER_TENANT)
    assert result.ok, result.error
    assert result.rows == [("acme", 3), ("globex", 2)]


def test_an_unreadable_export_fails_without_naming_the_storage(staff_user, export_run, settings):
    store.documents_store().purge(export_run.tables["users"]["key"])
    result = _run(staff_user, "SELECT count(*) FROM users")
    assert result.audit.status == WorkbenchQueryStatus.FAILED
    assert "could not be read" in result.error
    assert revealed(result, forbidden_strings(settings)) == []
