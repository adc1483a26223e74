-- Targets of the events materialized views (views/0022, 0023).
-- SummingMergeTree: rows with the same key are added up on merge; reads still
-- use sum(...) GROUP BY, because merges are eventual.
CREATE TABLE IF NOT EXISTS post_engagement_hourly
(
    post_id UInt64,
    author_id UInt64,
    hour DateTime('UTC'),
    impressions UInt64,
    views UInt64,
    clicks UInt64,
    likes UInt64,
    comments UInt64,
    shares UInt64,
    hides UInt64,
    dwell_events UInt64,
    dwell_ms_total UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (post_id, hour, author_id);

CREATE TABLE IF NOT EXISTS user_author_affinity_daily
(
    user_id UInt64,
    author_id UInt64,
    day Date,
    interactions UInt64,
    clicks UInt64,
    likes UInt64,
    comments UInt64,
    shares UInt64,
    hides UInt64,
    dwell_ms_total UInt64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (user_id, author_id, day);
