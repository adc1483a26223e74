-- CDC replica of Postgres `follows` (docs/architecture/cdc.md). One row per change;
-- ReplacingMergeTree keeps the highest _version per id. _version is the change's
-- LSN (0 for snapshot rows), so a replayed or reordered old change never wins.
-- A delete is a row with _deleted = 1: read with FINAL (or argMax) and _deleted = 0.
-- Timestamps: DateTime for queries plus *_us (epoch microseconds) for exactness,
-- as 18.16 has no DateTime64.
CREATE TABLE IF NOT EXISTS follows (
    id Int64,
    follower_id Int64,
    followee_id Int64,
    created_at DateTime('UTC'),
    created_at_us Int64,
    _deleted UInt8,
    _version UInt64
) ENGINE = ReplacingMergeTree(_version)
ORDER BY id;
