-- The spec's events table (columns, engine, partitioning and ordering exactly as specified).
-- Retries are made safe on insert: every batch carries an insert_deduplication_token that
-- PostgreSQL stored before the insert, and non_replicated_deduplication_window makes a plain
-- MergeTree remember the last 10,000 tokens, so a re-sent batch is dropped, not added twice.
-- event_id is the outbox row's id. The CHECK constraints are the table's guard against rows
-- no dashboard could read; a row violating one is set aside in the outbox with the error.
CREATE TABLE IF NOT EXISTS ${TABLE:events} ${ON_CLUSTER}
(
    event_id UUID,
    tenant_id UUID,
    event_type String,
    event_data String,
    user_id Nullable(UUID),
    timestamp DateTime64(3),
    created_date Date MATERIALIZED toDate(timestamp),
    CONSTRAINT event_type_is_dotted_name CHECK match(event_type, '^[a-z][a-z_]*(\\.[a-z_]+)+$'),
    CONSTRAINT event_data_is_json CHECK isValidJSON(event_data)
)
ENGINE = ${ENGINE:MergeTree:events}
PARTITION BY created_date
ORDER BY (tenant_id, event_type, timestamp)
SETTINGS non_replicated_deduplication_window = 10000;

${DISTRIBUTED:events:cityHash64(tenant_id)};
