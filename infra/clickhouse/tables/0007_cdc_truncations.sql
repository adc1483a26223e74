-- TRUNCATEs the CDC consumer applied (docs/architecture/cdc.md): the table and the
-- truncate's LSN. A truncate arrives in one partition of its table's topic; a change
-- made before it can still be unconsumed in another partition. Any row change of
-- `table` older than max(lsn) is covered by the truncate: the consumer reads this
-- table after each write and marks such rows deleted again.
CREATE TABLE IF NOT EXISTS cdc_truncations (
    table String,
    lsn UInt64,
    applied_at DateTime('UTC') DEFAULT now()
) ENGINE = ReplacingMergeTree
ORDER BY (table, lsn);
