"""The audit log's database side: table, chain, append-only guards, partitions, write triggers.

Applied by migration 0001 as the owner role. Everything that makes the log trustworthy lives in
PostgreSQL, in the same transaction as the write it records, so no code path can skip it:

- `audit_log` is partitioned by month on `created_at` (the database's `now()`, nothing else);
- `metis_audit_chain()` (BEFORE INSERT) takes a per-chain advisory lock, reads the chain's head
  from `audit_chain_heads`, and sets `seq`, `prev_hash` and `hash = sha256(prev_hash ||
  canonical row)`: concurrent inserts queue on the lock, so a chain never forks;
- `metis_audit_refuse()` refuses UPDATE and DELETE (row triggers) and TRUNCATE (a statement
  trigger: row triggers do not fire on TRUNCATE), for every role, the owner included; the
  grants give the runtime role INSERT and SELECT only;
- `metis_audit_row_change()` records writes to tenants, tenant users, documents, schedules and
  the existing staff/workbench audit tables as log rows: names of changed columns, never values.
"""

from __future__ import annotations

# Rows of staff and system actions (no tenant) chain under this id.
SYSTEM_CHAIN = "00000000-0000-0000-0000-000000000000"
GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock(key1, key2): key1 names the audit chains, so no other lock collides.
LOCK_NAMESPACE = 7_270_013

# A field of the canonical row: its length, a colon, the text and a semicolon; NULL is "-;".
# Length-prefixed, so no value can imitate a field boundary. audit/chain.py builds the same.
CANONICAL_SQL = """
CREATE FUNCTION metis_audit_field(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL THEN '-' ELSE length(value)::text || ':' || value END || ';'
$$;

CREATE FUNCTION metis_audit_canonical(row_ audit_log) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT metis_audit_field(row_.seq::text)
        || metis_audit_field(row_.tenant_id::text)
        || metis_audit_field(((extract(epoch FROM row_.created_at) * 1000000)::bigint)::text)
        || metis_audit_field(row_.action)
        || metis_audit_field(row_.actor_type)
        || metis_audit_field(row_.actor_id)
        || metis_audit_field(row_.target_type)
        || metis_audit_field(row_.target_id)
        || metis_audit_field(row_.ip_address)
        || metis_audit_field(row_.request_id)
        || metis_audit_field(row_.metadata::text)
$$;
"""

TABLE_SQL = """
CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY,
    created_at timestamptz NOT NULL DEFAULT now(),
    tenant_id uuid,
    seq bigint NOT NULL DEFAULT 0,
    prev_hash char(64) NOT NULL DEFAULT '',
    hash char(64) NOT NULL DEFAULT '',
    action varchar(100) NOT NULL,
    actor_type varchar(20) NOT NULL DEFAULT '',
    actor_id varchar(64) NOT NULL DEFAULT '',
    target_type varchar(50) NOT NULL DEFAULT '',
    target_id varchar(64) NOT NULL DEFAULT '',
    ip_address varchar(45),
    request_id varchar(64) NOT NULL DEFAULT '',
    metadata jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX audit_log_tenant_created ON audit_log (tenant_id, created_at);
CREATE INDEX audit_log_tenant_seq ON audit_log (tenant_id, seq);
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;

-- One row per chain: its last seq and hash. Only the chain trigger (the owner) writes it.
CREATE TABLE audit_chain_heads (
    chain uuid PRIMARY KEY,
    seq bigint NOT NULL,
    hash char(64) NOT NULL
);

-- Per chain, the last row retention exported to Parquet and dropped: where verifying resumes.
CREATE TABLE audit_retention_cuts (
    chain uuid PRIMARY KEY,
    last_seq bigint NOT NULL,
    last_hash char(64) NOT NULL,
    export_key text NOT NULL,
    cut_at timestamptz NOT NULL DEFAULT now()
);
"""

CHAIN_SQL = f"""
CREATE FUNCTION metis_audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    chain_id uuid := coalesce(NEW.tenant_id, '{SYSTEM_CHAIN}'::uuid);
    head record;
BEGIN
    IF NEW.created_at IS DISTINCT FROM now() THEN
        RAISE EXCEPTION 'audit_log.created_at is set by the database'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, hashtext(chain_id::text));
    SELECT h.seq, h.hash INTO head FROM audit_chain_heads h WHERE h.chain = chain_id;
    NEW.seq := coalesce(head.seq, 0) + 1;
    NEW.prev_hash := coalesce(head.hash, '{GENESIS_HASH}');
    NEW.hash := encode(sha256(convert_to(NEW.prev_hash || metis_audit_canonical(NEW), 'UTF8')),
                       'hex');
    INSERT INTO audit_chain_heads AS h (chain, seq, hash) VALUES (chain_id, NEW.seq, NEW.hash)
        ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION metis_audit_chain();
"""

APPEND_ONLY_SQL = """
CREATE FUNCTION metis_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: the audit log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION metis_audit_refuse();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION metis_audit_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION metis_audit_refuse();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log_default
    FOR EACH STATEMENT EXECUTE FUNCTION metis_audit_refuse();
CREATE TRIGGER audit_chain_heads_no_truncate BEFORE TRUNCATE ON audit_chain_heads
    FOR EACH STATEMENT EXECUTE FUNCTION metis_audit_refuse();
"""

# Row triggers on the parent are cloned onto every partition; statement triggers (TRUNCATE) and
# privileges are not, hence this function. A partition is reached only through the parent (whose
# privileges and RLS apply), so it keeps no grant for anyone but its owner.
PARTITION_SQL = """
CREATE FUNCTION metis_audit_partition_ensure(month date) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    name text := 'audit_log_' || to_char(first_day, 'YYYY_MM');
    grantees text;
BEGIN
    IF first_day NOT BETWEEN date_trunc('month', now())::date - interval '1 month'
                         AND date_trunc('month', now())::date + interval '24 months' THEN
        RAISE EXCEPTION 'audit partitions are made from last month to 24 months ahead, not %',
            first_day;
    END IF;
    IF to_regclass(name) IS NOT NULL THEN
        RETURN name;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
                   name, first_day, first_day + interval '1 month');
    EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION metis_audit_refuse()', name);
    SELECT string_agg(DISTINCT quote_ident(grantee), ', ') INTO grantees
        FROM information_schema.role_table_grants
        WHERE table_schema = current_schema() AND table_name = name
          AND grantee NOT IN (current_user, 'PUBLIC');
    IF grantees IS NOT NULL THEN
        EXECUTE format('REVOKE ALL ON %I FROM %s', name, grantees);
    END IF;
    RETURN name;
END $$;
"""

ALL_WRITES = "INSERT OR UPDATE OR DELETE"
# Writes to these tables become log rows: (table, how its row names the tenant, target type,
# operations, columns whose change alone is not worth a row). "id" is a tenant's own row; ""
# is no tenant (the system chain).
WATCHED_TABLES = (
    ("tenants", "id", "tenant", ALL_WRITES, ""),
    ("users", "tenant_id", "tenant_user", ALL_WRITES, ""),
    ("documents", "tenant_id", "document", ALL_WRITES, ""),
    ("staff_tenant_access", "tenant_id", "staff_tenant_access", "INSERT", ""),
    ("analytics_workbench_queries", "", "workbench_query", "INSERT", ""),
    # Beat stamps every run on its schedule row: only staff edits are worth a row.
    (
        "django_celery_beat_periodictask",
        "",
        "schedule",
        ALL_WRITES,
        "last_run_at,total_run_count,date_changed",
    ),
    ("backups_retentionpolicy", "", "backup_retention", ALL_WRITES, ""),
)

# Who caused the write: transaction-local settings the application sets before a write
# (audit/context.py). SQL can set them too, so they attribute, they do not prove: the row
# itself (the table, the operation, the changed columns) is the database's own account.
ROW_CHANGE_SQL = """
CREATE FUNCTION metis_audit_row_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    tenant_column text := TG_ARGV[0];
    target_type text := TG_ARGV[1];
    ignored text[] := string_to_array(TG_ARGV[2], ',');
    actor text := coalesce(current_setting('app.audit_actor', true), '');
    old_row jsonb := CASE WHEN TG_OP = 'INSERT' THEN '{}' ELSE to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN '{}' ELSE to_jsonb(NEW) END;
    row_ jsonb := CASE WHEN TG_OP = 'DELETE' THEN old_row ELSE new_row END;
    changed text[];
BEGIN
    SELECT coalesce(array_agg(key ORDER BY key), '{}') INTO changed
        FROM jsonb_object_keys(old_row || new_row) AS key
        WHERE old_row -> key IS DISTINCT FROM new_row -> key;
    IF TG_OP = 'UPDATE' AND changed <@ coalesce(ignored, '{}') THEN
        RETURN NULL;
    END IF;
    INSERT INTO audit_log (tenant_id, action, actor_type, actor_id, target_type, target_id,
                           ip_address, request_id, metadata)
    VALUES (
        CASE WHEN tenant_column = '' THEN NULL ELSE (row_ ->> tenant_column)::uuid END,
        target_type || '.' || lower(TG_OP),
        coalesce(nullif(split_part(actor, ':', 1), ''), 'database'),
        left(split_part(actor, ':', 2), 64),
        target_type,
        left(coalesce(row_ ->> 'id', ''), 64),
        left(nullif(current_setting('app.audit_ip', true), ''), 45),
        left(coalesce(current_setting('app.audit_request', true), ''), 64),
        jsonb_build_object('table', TG_TABLE_NAME, 'columns', to_jsonb(changed))
    );
    RETURN NULL;
END $$;
"""


def watch_sql(
    table: str, tenant_column: str, target_type: str, operations: str, ignored: str
) -> str:
    return (
        f"CREATE TRIGGER audit_row_change AFTER {operations} ON {table} FOR EACH ROW "
        f"EXECUTE FUNCTION metis_audit_row_change('{tenant_column}', '{target_type}', "
        f"'{ignored}');"
    )


def unwatch_sql(table: str) -> str:
    return f"DROP TRIGGER IF EXISTS audit_row_change ON {table};"


# Policies: a tenant reads and writes only its own rows (the seal, as on every tenant table);
# staff and system rows (no tenant) may be added by the runtime role but read only by the staff
# read role; the owner's chain and row-change triggers (SECURITY DEFINER) write any row.
RLS_SQL = """
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (tenant_id = (SELECT metis_sealed_tenant()))
    WITH CHECK (tenant_id = (SELECT metis_sealed_tenant()));
CREATE POLICY staff_read_all_tenants ON audit_log FOR SELECT TO metis_read_all_tenants
    USING (true);
CREATE POLICY system_rows_insert ON audit_log FOR INSERT WITH CHECK (tenant_id IS NULL);
CREATE POLICY owner_triggers ON audit_log TO CURRENT_USER USING (true) WITH CHECK (true);
"""

# The runtime role (and anyone else the default privileges reached) keeps INSERT and SELECT on
# the log and nothing on the heads; the staff read role may read both.
GRANTS_SQL = """
DO $$
DECLARE
    grantee_ text;
BEGIN
    FOR grantee_ IN
        SELECT DISTINCT grantee FROM information_schema.role_table_grants
        WHERE table_schema = current_schema()
          AND table_name IN ('audit_log', 'audit_log_default', 'audit_chain_heads',
                             'audit_retention_cuts')
          AND grantee NOT IN (current_user, 'PUBLIC')
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_log FROM %I',
                       grantee_);
        EXECUTE format('REVOKE ALL ON audit_log_default, audit_chain_heads, audit_retention_cuts '
                       'FROM %I', grantee_);
    END LOOP;
END $$;
REVOKE ALL ON audit_log, audit_log_default, audit_chain_heads, audit_retention_cuts FROM PUBLIC;
GRANT SELECT ON audit_chain_heads, audit_retention_cuts TO metis_read_all_tenants;
GRANT SELECT ON audit_log TO metis_read_all_tenants;
"""

DROP_SQL = """
DROP TABLE IF EXISTS audit_log CASCADE;
DROP TABLE IF EXISTS audit_chain_heads CASCADE;
DROP TABLE IF EXISTS audit_retention_cuts CASCADE;
DROP FUNCTION IF EXISTS metis_audit_partition_ensure(date);
DROP FUNCTION IF EXISTS metis_audit_row_change();
DROP FUNCTION IF EXISTS metis_audit_chain();
DROP FUNCTION IF EXISTS metis_audit_refuse();
DROP FUNCTION IF EXISTS metis_audit_canonical(audit_log);
DROP FUNCTION IF EXISTS metis_audit_field(text);
"""
