-- Metric samples, one row per series per minute (monitoring/services.py): what the admin's
-- Monitoring page charts. `labels` holds the Prometheus labels (tenant, tier, queue, ...).
-- A redelivered sample task carries the same insert_deduplication_token (its minute), which
-- non_replicated_deduplication_window makes a plain MergeTree drop.
CREATE TABLE IF NOT EXISTS ${TABLE:metrics} ${ON_CLUSTER}
(
    timestamp DateTime64(3),
    name LowCardinality(String),
    labels Map(LowCardinality(String), String),
    value Float64
)
ENGINE = ${ENGINE:MergeTree:metrics}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (name, timestamp)
TTL toDateTime(timestamp) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000;

${DISTRIBUTED:metrics:cityHash64(name)};
