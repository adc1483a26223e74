CREATE MATERIALIZED VIEW IF NOT EXISTS events_sink_offsets_mv TO events_sink_offsets AS
SELECT
    _topic AS topic,
    _partition AS partition,
    _generation AS generation,
    maxState(_offset) AS max_offset
FROM events
GROUP BY topic, partition, generation;
