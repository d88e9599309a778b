"""DuckDB connections over the Parquet exports, locked down before anyone else's SQL runs.

Every connection is in-memory, and is opened one of two ways:

- `connect_files` for SQL someone else typed (the workbench): the views read local copies of
  the export files. No extension is loaded and no secret is created, so no SQL can learn a
  credential or the object store's address (`duckdb_secrets()`, `which_secret`, the `s3_*`
  settings, an HTTP error message): DuckDB never had one.
- `connect_s3` for SQL written here (the usage reports): it loads the httpfs extension from the
  pinned `duckdb-extension-httpfs` wheel (the DuckDB wheel does not bundle it and nothing may be
  downloaded at run time), creates an S3 secret from the storage settings, scoped to the
  bucket, and reads the export objects where they are.

Then both lock: only the exact files behind the views stay readable (`allowed_paths`), all other
file, network and extension access is switched off (`enable_external_access = false`), Python
replacement scans are off (so SQL cannot read this process's DataFrames by name), and
`lock_configuration = true` makes every later `SET`/`RESET` fail.

Callers that run SQL they did not write still check the statement type first: DuckDB's guards
do not stop a `COPY ... TO` into one of the allowed paths.
"""

from __future__ import annotations

import pathlib
from urllib.parse import urlparse

import duckdb
from django.conf import settings

from metis.objectstore import store


class DuckSetupError(RuntimeError):
    """DuckDB cannot be prepared as configured (missing extension, version mismatch)."""


def quote_literal(value: str) -> str:
    """Return `value` as a DuckDB string literal (for DDL, which takes no parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


def httpfs_extension_path() -> pathlib.Path:
    """Return the httpfs extension file shipped by the pinned wheel, for this DuckDB version."""
    try:
        import duckdb_extension_httpfs
    except ImportError as exc:
        raise DuckSetupError("duckdb-extension-httpfs is not installed") from exc
    folder = pathlib.Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    path = folder / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    if not path.is_file():
        shipped = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise DuckSetupError(
            f"no httpfs extension for DuckDB {duckdb.__version__} (the wheel ships {shipped}); "
            "pin duckdb and duckdb-extension-httpfs to the same version"
        )
    return path


def object_url(key: str) -> str:
    """Return where DuckDB reads the object `key`: an s3:// URL in the documents bucket."""
    return store.documents_store().url_of(key)


def s3_secret_sql(scope: str) -> str:
    reader = store.documents_store().endpoint
    endpoint = urlparse(reader.url)
    options = {
        "TYPE": "s3",
        "KEY_ID": quote_literal(reader.access_key),
        "SECRET": quote_literal(reader.secret_key),
        "REGION": quote_literal(reader.region),
        "URL_STYLE": quote_literal("vhost" if reader.addressing_style == "virtual" else "path"),
        # Only the exports can be read with this key, whatever the SQL names.
        "SCOPE": quote_literal(scope),
    }
    if endpoint.netloc:
        options["ENDPOINT"] = quote_literal(endpoint.netloc)
        options["USE_SSL"] = "true" if endpoint.scheme == "https" else "false"
    body = ", ".join(f"{name} {value}" for name, value in options.items())
    return f"CREATE SECRET export_reader ({body})"


def _open() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_persistent_secrets": False,
            "threads": settings.DUCKDB_THREADS,
            "memory_limit": settings.DUCKDB_MEMORY_LIMIT,
            # No spilling to disk: a query that needs more than the memory limit fails instead
            # of writing temporary files on the server.
            "temp_directory": "",
        }
    )


def _create_views_and_lock(connection: duckdb.DuckDBPyConnection, sources: dict[str, str]) -> None:
    for name, source in sources.items():
        connection.execute(
            f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet({quote_literal(source)})'
        )
    allowed = ", ".join(quote_literal(source) for source in sources.values())
    connection.execute(f"SET allowed_paths = [{allowed}]")
    connection.execute("SET enable_external_access = false")
    connection.execute("SET python_enable_replacements = false")
    connection.execute("SET enable_progress_bar = false")
    connection.execute("SET lock_configuration = true")


def connect_files(*, views: dict[str, pathlib.Path]) -> duckdb.DuckDBPyConnection:
    """Return a locked connection with `views` (name -> local Parquet file), for anyone's SQL.

    Only those files can be read. The connection holds no credential, no address of any
    server and no extension; nothing can be written outside memory, no setting changed.
    """
    connection = _open()
    try:
        _create_views_and_lock(connection, {name: str(path) for name, path in views.items()})
    except BaseException:
        connection.close()
        raise
    return connection


def connect_s3(*, views: dict[str, str]) -> duckdb.DuckDBPyConnection:
    """Return a locked connection with `views` (name -> object key of a Parquet file).

    Only for SQL written in this code base: the connection holds the bucket's S3 secret, and
    `duckdb_secrets()` shows its key id and endpoint to any SQL run on it. Only the files
    behind the views can be read; nothing written outside memory, no extension loaded, no
    setting changed.
    """
    connection = _open()
    try:
        urls = {name: object_url(key) for name, key in views.items()}
        connection.execute(f"LOAD {quote_literal(str(httpfs_extension_path()))}")
        connection.execute(s3_secret_sql(store.documents_store().url_of("")))
        _create_views_and_lock(connection, urls)
    except BaseException:
        connection.close()
        raise
    return connection
