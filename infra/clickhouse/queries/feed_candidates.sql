-- Scored feed candidates for one user. ranking/candidates.py binds every
-- parameter (clickhouse-driver escapes each value; nothing is formatted in),
-- including the user's context from user_context.sql: the in-network authors
-- (followees and the user), and affinity and last hide per author as parallel
-- arrays, looked up with transform().
--
-- Runs on ClickHouse 18.16 and on current releases (docs/ranking.md): no CTEs,
-- one JOIN per SELECT, log(1 + x) rather than log1p. A replica row is read as
-- the latest version of its id (argMax by _version ... GROUP BY id HAVING not
-- deleted), which is right before merges too.
--
-- Layers, innermost first:
--   1. posts of the window, live, by active authors: in-network (in_network_window)
--      or out-of-network (trending_window)
--   2. + engagement per post: events aggregates, and likes/comments from the CDC
--      replicas (the larger count of the two sources, never their sum: one like
--      can arrive as an event and as a row); LIMIT BY keeps every in-network post
--      and the trending_pool out-of-network posts with the most weighted actions
--   3. components and score: ranking/scoring.py is the same math in Python
SELECT
    post_id, author_id, created_at_us, out_of_network,
    impressions, clicks, likes, comments, shares, affinity_raw, last_hide_s,
    freshness, engagement, affinity, fatigue, network_factor,
    (%(weight_freshness)s * freshness + %(weight_engagement)s * engagement + %(weight_affinity)s * affinity)
        * network_factor * fatigue AS score
FROM
(
    SELECT
        post_id, author_id, created_at_us, out_of_network, impressions, clicks, likes, comments, shares,
        transform(author_id, %(context_authors)s, %(context_affinity)s, 0.) AS affinity_raw,
        transform(author_id, %(context_authors)s, %(context_last_hide_s)s, toUInt32(0)) AS last_hide_s,
        exp(-log(2) * greatest(%(now_us)s - created_at_us, 0) / 3600000000 / %(freshness_half_life_hours)s) AS freshness,
        least(1., log(1 + clicks + 2 * likes + 3 * comments + 4 * shares)
                  / log(1 + impressions + %(engagement_prior)s)) AS engagement,
        affinity_raw / greatest(%(user_max_affinity_raw)s, %(affinity_floor)s) AS affinity,
        if(last_hide_s = 0, 1.,
           least(1., %(hide_fatigue_factor)s + (1 - %(hide_fatigue_factor)s)
                     * greatest(%(now_s)s - toInt64(last_hide_s), 0) / 86400 / %(hide_fatigue_days)s)) AS fatigue,
        if(out_of_network = 1, %(out_of_network_factor)s, 1.) AS network_factor
    FROM
    (
        SELECT
            post_id, latest_author_id AS author_id, latest_created_at_us AS created_at_us,
            -- transform() is a hash lookup; has() would scan the array for every post
            if(transform(latest_author_id, %(in_network_authors)s, %(in_network_authors)s, toInt64(0)) = 0,
               toUInt8(1), toUInt8(0)) AS out_of_network,
            if(out_of_network = 1, toInt64(0), post_id) AS pool_key
        FROM
        (
            SELECT id AS post_id, argMax(author_id, _version) AS latest_author_id,
                   argMax(created_at_us, _version) AS latest_created_at_us,
                   argMax(_deleted, _version) AS deleted, argMax(isNull(deleted_at), _version) AS live
            FROM posts
            WHERE created_at >= toDateTime(%(in_network_since_s)s) AND created_at <= toDateTime(%(now_s)s)
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
          AND (out_of_network = 0 OR latest_created_at_us >= %(trending_since_us)s)
    ) AS window_posts
    ANY LEFT JOIN
    (
        SELECT post_id, sum(ev_impressions) AS impressions, sum(ev_clicks) AS clicks,
               greatest(sum(ev_likes), sum(cdc_likes)) AS likes,
               greatest(sum(ev_comments), sum(cdc_comments)) AS comments,
               sum(ev_shares) AS shares
        FROM
        (
            SELECT toInt64(hourly_post_id) AS post_id, impressions AS ev_impressions, clicks AS ev_clicks,
                   likes AS ev_likes, comments AS ev_comments, shares AS ev_shares,
                   toUInt64(0) AS cdc_likes, toUInt64(0) AS cdc_comments
            FROM
            (
                -- the raw UInt64 column in WHERE, so the primary key (post_id, hour) is used
                SELECT post_id AS hourly_post_id, impressions, clicks, likes, comments, shares
                FROM post_engagement_hourly
                WHERE hour >= toDateTime(%(in_network_since_hour_s)s)
                  AND post_id GLOBAL IN (SELECT toUInt64(id) FROM posts WHERE created_at >= toDateTime(%(in_network_since_s)s))
            )
            UNION ALL
            SELECT liked_post_id, toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(1), toUInt64(0)
            FROM
            (
                SELECT id, argMax(post_id, _version) AS liked_post_id, argMax(_deleted, _version) AS deleted
                FROM likes
                WHERE created_at >= toDateTime(%(in_network_since_s)s)
                GROUP BY id
                HAVING deleted = 0
            )
            UNION ALL
            SELECT commented_post_id, toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(1)
            FROM
            (
                SELECT id, argMax(post_id, _version) AS commented_post_id, argMax(_deleted, _version) AS deleted
                FROM comments
                WHERE created_at >= toDateTime(%(in_network_since_s)s)
                GROUP BY id
                HAVING deleted = 0
            )
        )
        GROUP BY post_id
    ) AS engagement_counts USING post_id
    WHERE out_of_network = 0 OR clicks + likes + comments + shares > 0
    ORDER BY out_of_network, clicks + 2 * likes + 3 * comments + 4 * shares DESC, post_id DESC
    LIMIT %(trending_pool)s BY pool_key
)
ORDER BY score DESC, post_id DESC
