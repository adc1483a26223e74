-- The most engaged posts of the window, for the feed's fallback (users who
-- follow nobody) and anyone else who needs "what is popular now". Bound by
-- ranking/trending.py (clickhouse-driver escapes each value; nothing is
-- formatted in); refreshed by the `refresh_trending` periodic task.
--
-- Same rules and counts as the out-of-network part of feed_candidates.sql:
-- a live post (latest replica version not deleted, deleted_at null) created in
-- [since, now] by an author who is not inactive or deleted; engagement from the
-- events aggregates plus likes/comments from the CDC replicas, taking the larger
-- of the two counts per post (one like can arrive as an event and as a row);
-- weighted actions clicks + 2 likes + 3 comments + 4 shares, at least 1.
-- Runs on ClickHouse 18.16 and current releases (docs/ranking.md, Portability):
-- no CTEs, one JOIN per SELECT, aliases on joined subqueries.
SELECT post_id, author_id, clicks + 2 * likes + 3 * comments + 4 * shares AS weighted_actions
FROM
(
    SELECT post_id, latest_author_id AS author_id
    FROM
    (
        SELECT id AS post_id, argMax(author_id, _version) AS latest_author_id,
               argMax(_deleted, _version) AS deleted, argMax(isNull(deleted_at), _version) AS live
        FROM posts
        WHERE created_at >= toDateTime(%(since_s)s) AND created_at <= toDateTime(%(now_s)s)
        GROUP BY id
        HAVING deleted = 0 AND live = 1
    )
    WHERE latest_author_id GLOBAL NOT IN
        (
            SELECT id
            FROM
            (
                SELECT id, argMax(is_active, _version) AS active, argMax(_deleted, _version) AS user_deleted
                FROM users
                GROUP BY id
                HAVING active = 0 OR user_deleted = 1
            )
        )
) AS window_posts
ALL INNER JOIN
(
    SELECT post_id, sum(ev_clicks) AS clicks,
           greatest(sum(ev_likes), sum(cdc_likes)) AS likes,
           greatest(sum(ev_comments), sum(cdc_comments)) AS comments,
           sum(ev_shares) AS shares
    FROM
    (
        SELECT toInt64(hourly_post_id) AS post_id, clicks AS ev_clicks, likes AS ev_likes,
               comments AS ev_comments, shares AS ev_shares, toUInt64(0) AS cdc_likes, toUInt64(0) AS cdc_comments
        FROM
        (
            -- the raw UInt64 column in WHERE, so the primary key (post_id, hour) is used
            SELECT post_id AS hourly_post_id, clicks, likes, comments, shares
            FROM post_engagement_hourly
            WHERE hour >= toDateTime(%(since_hour_s)s)
              AND post_id GLOBAL IN (SELECT toUInt64(id) FROM posts WHERE created_at >= toDateTime(%(since_s)s))
        )
        UNION ALL
        SELECT liked_post_id, toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(1), toUInt64(0)
        FROM
        (
            SELECT id, argMax(post_id, _version) AS liked_post_id, argMax(_deleted, _version) AS deleted
            FROM likes
            WHERE created_at >= toDateTime(%(since_s)s)
            GROUP BY id
            HAVING deleted = 0
        )
        UNION ALL
        SELECT commented_post_id, toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(1)
        FROM
        (
            SELECT id, argMax(post_id, _version) AS commented_post_id, argMax(_deleted, _version) AS deleted
            FROM comments
            WHERE created_at >= toDateTime(%(since_s)s)
            GROUP BY id
            HAVING deleted = 0
        )
    )
    GROUP BY post_id
) AS engagement_counts USING post_id
WHERE weighted_actions > 0
ORDER BY weighted_actions DESC, post_id DESC
LIMIT %(limit)s
