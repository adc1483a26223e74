-- Raw engagement events, one row per unique event_id (the pipeline removes
-- client retries in Redis and consumer replays by seeking past the offsets
-- kept here). ReplacingMergeTree is only a backstop for what slips through;
-- the aggregates below do not rely on it.
-- _topic/_partition/_offset/_generation: where the row came from ("offsets in
-- the sink"); _generation goes up when the pipeline sees the topic recreated.
-- Retention: 18.16 has no TTL; old monthly partitions are dropped with
-- ALTER TABLE events DROP PARTITION (docs/architecture/events.md).
-- Per-user reads use the primary key; per-post reads use the aggregates.
CREATE TABLE IF NOT EXISTS events
(
    event_id UUID,
    user_id UInt64,
    post_id UInt64,
    author_id UInt64,
    event_type Enum8('impression' = 1, 'view' = 2, 'click' = 3, 'like' = 4, 'comment' = 5, 'share' = 6, 'hide' = 7, 'dwell' = 8),
    ts DateTime('UTC'),
    received_at DateTime('UTC'),
    received_at_ms UInt64,
    dwell_ms UInt32,
    position Int32,
    surface String,
    _topic String,
    _partition UInt32,
    _offset UInt64,
    _generation UInt32,
    _inserted_at DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (user_id, ts, event_id);

-- The highest offset written per source partition, kept small so the
-- assignment-time seek does not scan `events`.
CREATE TABLE IF NOT EXISTS events_sink_offsets
(
    topic String,
    partition UInt32,
    generation UInt32,
    max_offset AggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree()
ORDER BY (topic, partition, generation);
