-- Posts one user must not see again: hidden (ever, within the events kept) or
-- seen (an impression within seen_window_days). Reads by the events table's
-- primary key (user_id, ts, event_id).
SELECT toInt64(post_id) AS flagged_post_id, max(event_type = 'impression') AS seen, max(event_type = 'hide') AS hidden
FROM events
WHERE user_id = %(user_id)s
  AND (event_type = 'hide' OR (event_type = 'impression' AND ts >= toDateTime(%(seen_since_s)s)))
GROUP BY post_id
