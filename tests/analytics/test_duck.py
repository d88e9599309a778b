"""The DuckDB connection factory: views over the export, then locked before use."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from analytics import duck, exports

# The export reads through the staff read role's own connection: data must be committed.
pytestmark = pytest.mark.committed


def open_export(kind: str, folder) -> duckdb.DuckDBPyConnection:
    """A connection of `kind` over the latest export: its objects in S3, or local copies."""
    manifest = exports.latest_export()
    if kind == "files":
        return duck.connect_files(views=exports.export_files_fetch(manifest, folder=folder))
    return duck.connect_s3(views={name: t["key"] for name, t in manifest["tables"].items()})


@pytest.fixture(params=["s3", "files"])
def locked(request, dataset, s3_bucket, tmp_path):
    exports.export_run()
    connection = open_export(request.param, tmp_path)
    yield connection
    connection.close()


@pytest.fixture
def local(dataset, s3_bucket, tmp_path):
    exports.export_run()
    connection = open_export("files", tmp_path)
    yield connection
    connection.close()


def test_httpfs_extension_ships_for_the_installed_duckdb():
    path = duck.httpfs_extension_path()
    assert path.is_file()
    assert f"v{duckdb.__version__}" in str(path)


def test_a_duckdb_without_its_httpfs_build_fails_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(duckdb, "__version__", "9.9.9")
    with pytest.raises(duck.DuckSetupError, match=r"no httpfs extension for DuckDB 9\.9\.9"):
        duck.httpfs_extension_path()


def test_locked_connection_reads_its_views(locked):
    assert locked.execute("SELECT count(*) FROM users").fetchone() == (3,)
    assert locked.execute("SELECT count(*) FROM tenants").fetchone() == (2,)


@pytest.mark.parametrize(
    "statement",
    [
        "SET enable_external_access = true",
        "RESET enable_external_access",
        "SET allowed_directories = ['/']",
        "SET allowed_paths = ['/etc/passwd']",
        "SET lock_configuration = false",
        "SET python_enable_replacements = true",
        "SET autoload_known_extensions = true",
        "PRAGMA threads = 64",
    ],
)
def test_locked_connection_refuses_setting_changes_even_without_the_statement_check(
    locked, statement
):
    with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
        locked.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        # httpfs itself is loaded by the trusted setup (a second LOAD is a no-op): aim at
        # extensions the connection has not loaded.
        "LOAD postgres_scanner",
        "LOAD sqlite_scanner",
        "LOAD '/tmp/evil.duckdb_extension'",
        "INSTALL httpfs",
        "INSTALL spatial",
        "ATTACH '/tmp/h4b-other.duckdb' AS other",
        "SELECT * FROM read_csv('/etc/passwd')",
    ],
)
def test_locked_connection_refuses_extensions_attach_and_files_by_itself(locked, statement):
    with pytest.raises(duckdb.PermissionException):
        locked.execute(statement)


def test_locked_connection_cannot_scan_python_objects_by_name(locked):
    secret_table = pa.table({"secret": ["do not read me"]})  # noqa: F841  (scanned by name)
    assert duckdb.connect().execute("SELECT * FROM secret_table").fetchall() == [
        ("do not read me",)
    ]  # what a default connection does
    with pytest.raises(duckdb.CatalogException):
        locked.execute("SELECT * FROM secret_table")


def test_query_over_the_memory_limit_fails_instead_of_spilling_to_disk(
    dataset, s3_bucket, settings, tmp_path, monkeypatch
):
    settings.DUCKDB_MEMORY_LIMIT = "64MB"
    monkeypatch.chdir(tmp_path)  # DuckDB's default spill folder is ./.tmp
    run = exports.export_run()
    connection = duck.connect_s3(views={name: t["key"] for name, t in run.tables.items()})
    with pytest.raises(duckdb.OutOfMemoryException):
        connection.execute(
            "SELECT count(*) FROM (SELECT * FROM range(30000000) ORDER BY random())"
        ).fetchall()
    connection.close()
    assert not (tmp_path / ".tmp").exists()


def test_s3_secret_is_scoped_to_the_bucket_and_redacted(dataset, s3_bucket, settings):
    run = exports.export_run()
    connection = duck.connect_s3(views={name: t["key"] for name, t in run.tables.items()})
    try:
        (scope, text) = connection.execute(
            "SELECT scope, secret_string FROM duckdb_secrets()"
        ).fetchone()
        assert scope == [f"s3://{s3_bucket}/"]
        assert settings.AWS_SECRET_ACCESS_KEY not in text
        with pytest.raises(duckdb.InvalidInputException, match="unredacted secrets is disabled"):
            connection.execute("SELECT secret_string FROM duckdb_secrets(redact := false)")
        assert connection.execute("SELECT count(*) FROM documents").fetchone() == (6,)
    finally:
        connection.close()


def test_files_connection_holds_no_secret_no_httpfs_and_no_address(local, settings):
    assert local.execute("SELECT count(*) FROM duckdb_secrets()").fetchone() == (0,)
    with pytest.raises(duckdb.PermissionException):
        local.execute(f"LOAD {duck.quote_literal(str(duck.httpfs_extension_path()))}")
    # httpfs registers the s3_* settings: not loaded, they do not even exist.
    with pytest.raises(duckdb.CatalogException):
        local.execute("SELECT current_setting('s3_endpoint')")
    everything = repr(local.execute("SELECT * FROM duckdb_settings()").fetchall())
    assert settings.AWS_S3_ENDPOINT_URL.split("//")[1] not in everything
    assert settings.AWS_STORAGE_BUCKET_NAME not in everything


def test_files_connection_reads_only_its_local_copies(local, tmp_path):
    (tmp_path / "beside.csv").write_text("secret\n42\n")
    assert local.execute("SELECT count(*) FROM documents").fetchone() == (6,)
    with pytest.raises(duckdb.PermissionException):
        local.execute(f"SELECT * FROM read_csv('{tmp_path / 'beside.csv'}')")
