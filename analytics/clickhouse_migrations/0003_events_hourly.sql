-- The dashboards' rollup: events per tenant, hour and event type (and, for document.uploaded,
-- the document type), kept by a materialized view on every insert into `events`. A
-- SummingMergeTree adds rows of the same key together when parts merge; readers still GROUP BY
-- and sum(), since merges come when they come. `events` is signed so that a correction can
-- subtract (analytics/services.py: events_rollup_reconcile, run after an erasure deletes events).
-- Deduplication: a batch the outbox re-sends with the same insert_deduplication_token is dropped
-- by `events`, and the view's block derived from it is dropped here too, which needs this
-- table's own non_replicated_deduplication_window (a replicated table keeps tokens anyway).
CREATE TABLE IF NOT EXISTS ${TABLE:events_hourly} ${ON_CLUSTER}
(
    tenant_id UUID,
    hour DateTime,
    event_type LowCardinality(String),
    document_type LowCardinality(String),
    events Int64
)
ENGINE = ${ENGINE:SummingMergeTree:events_hourly}
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, event_type, document_type)
SETTINGS non_replicated_deduplication_window = 10000;

${DISTRIBUTED:events_hourly:cityHash64(tenant_id)};

CREATE MATERIALIZED VIEW IF NOT EXISTS ${TABLE:events_hourly_mv} ${ON_CLUSTER}
TO ${TABLE:events_hourly}
AS SELECT
    tenant_id,
    toStartOfHour(timestamp) AS hour,
    event_type,
    if(event_type = 'document.uploaded', JSONExtractString(event_data, 'document_type'), '')
        AS document_type,
    toInt64(count()) AS events
FROM ${TABLE:events}
GROUP BY tenant_id, hour, event_type, document_type;

-- Backfill: add what `events` holds and the rollup does not (raw count minus rolled-up sum, per
-- key). The view exists before this runs, so events inserted meanwhile are counted once, by
-- whichever of the two saw them; running it again inserts nothing (idempotent by construction,
-- as every other statement here is by IF NOT EXISTS).
INSERT INTO events_hourly (tenant_id, hour, event_type, document_type, events)
SELECT tenant_id, hour, event_type, document_type, raw.events - rolled.events
FROM
(
    SELECT
        tenant_id,
        toStartOfHour(timestamp) AS hour,
        event_type,
        if(event_type = 'document.uploaded', JSONExtractString(event_data, 'document_type'), '')
            AS document_type,
        toInt64(count()) AS events
    FROM events
    GROUP BY tenant_id, hour, event_type, document_type
) AS raw
FULL OUTER JOIN
(
    SELECT tenant_id, hour, event_type, document_type, sum(events) AS events
    FROM events_hourly
    GROUP BY tenant_id, hour, event_type, document_type
) AS rolled
USING (tenant_id, hour, event_type, document_type)
WHERE raw.events != rolled.events
SETTINGS join_use_nulls = 0, insert_deduplicate = 0;
