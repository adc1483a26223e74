-- Interactions of a user with an author per day: everything but passive
-- impressions/views counts as an interaction; hides are kept apart too, for
-- negative feedback. Events of unknown authors (author_id 0) are not kept.
CREATE MATERIALIZED VIEW IF NOT EXISTS user_author_affinity_daily_mv TO user_author_affinity_daily AS
SELECT
    user_id,
    author_id,
    toDate(ts) AS day,
    toUInt64(countIf(event_type IN ('click', 'like', 'comment', 'share', 'dwell'))) AS interactions,
    toUInt64(countIf(event_type = 'click')) AS clicks,
    toUInt64(countIf(event_type = 'like')) AS likes,
    toUInt64(countIf(event_type = 'comment')) AS comments,
    toUInt64(countIf(event_type = 'share')) AS shares,
    toUInt64(countIf(event_type = 'hide')) AS hides,
    toUInt64(sumIf(dwell_ms, event_type = 'dwell')) AS dwell_ms_total
FROM events
WHERE author_id != 0
GROUP BY user_id, author_id, day;
