-- Fires once per inserted block of `events`, so an event counts once exactly
-- when the pipeline inserts it once (DESIGN.md, Delivery guarantees).
CREATE MATERIALIZED VIEW IF NOT EXISTS post_engagement_hourly_mv TO post_engagement_hourly AS
SELECT
    post_id,
    author_id,
    toStartOfHour(ts) AS hour,
    toUInt64(countIf(event_type = 'impression')) AS impressions,
    toUInt64(countIf(event_type = 'view')) AS views,
    toUInt64(countIf(event_type = 'click')) AS clicks,
    toUInt64(countIf(event_type = 'like')) AS likes,
    toUInt64(countIf(event_type = 'comment')) AS comments,
    toUInt64(countIf(event_type = 'share')) AS shares,
    toUInt64(countIf(event_type = 'hide')) AS hides,
    toUInt64(countIf(event_type = 'dwell')) AS dwell_events,
    toUInt64(sumIf(dwell_ms, event_type = 'dwell')) AS dwell_ms_total
FROM events
GROUP BY post_id, author_id, hour;
