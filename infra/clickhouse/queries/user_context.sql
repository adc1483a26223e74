-- One user's relation to every author that matters to their feed: followed,
-- muted, decayed affinity (30 days of interactions) and the last hide (for
-- fatigue). ranking/candidates.py binds every parameter; the candidates query
-- then looks these values up by author (18.16 re-plans nested subqueries at
-- every level, so one deep query costs far more than two flat ones).
--
-- Latest version per replica id: argMax by _version, GROUP BY id, HAVING not
-- deleted (a WHERE on _deleted would let an older, undeleted version through).
-- Likes and comments can be counted twice (an event and a CDC row for the same
-- action): per author and day the larger of the two counts is taken, never the sum.
SELECT author_id, max(followed) AS followed, max(muted) AS muted, sum(affinity_part) AS affinity_raw,
       max(hide_part) AS last_hide_s
FROM
(
    -- no wrapper SELECT around these GROUP BYs: every level costs 18.16 a re-analysis
    SELECT argMax(followee_id, _version) AS author_id, toUInt8(1) AS followed, toUInt8(0) AS muted,
           0. AS affinity_part, toUInt32(0) AS hide_part
    FROM follows
    WHERE follower_id = %(user_id)s
    GROUP BY id
    HAVING argMax(_deleted, _version) = 0
    UNION ALL
    SELECT argMax(muted_id, _version), toUInt8(0), toUInt8(1), 0., toUInt32(0)
    FROM mutes
    WHERE user_id = %(user_id)s
    GROUP BY id
    HAVING argMax(_deleted, _version) = 0
    UNION ALL
    SELECT toInt64(author_id), toUInt8(0), toUInt8(0), 0., toUInt32(max(ts))
    FROM events
    WHERE user_id = %(user_id)s AND event_type = 'hide' AND ts >= toDateTime(%(fatigue_since_s)s)
    GROUP BY author_id
    UNION ALL
    -- one author and day per row, decayed by the day's age
    SELECT day_author_id, toUInt8(0), toUInt8(0),
           toFloat64(sum(ev_interactions) - sum(ev_likes) - sum(ev_comments)
                     + greatest(sum(ev_likes), sum(cdc_likes))
                     + greatest(sum(ev_comments), sum(cdc_comments)))
           * exp(-log(2) * dateDiff('day', day, toDate(%(today)s)) / %(affinity_half_life_days)s),
           toUInt32(0)
    FROM
    (
        SELECT toInt64(author_id) AS day_author_id, day, interactions AS ev_interactions, likes AS ev_likes,
               comments AS ev_comments, toUInt64(0) AS cdc_likes, toUInt64(0) AS cdc_comments
        FROM user_author_affinity_daily
        WHERE user_id = %(user_id)s AND day >= toDate(%(affinity_since)s)
        UNION ALL
        SELECT acted_author_id, day, toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(is_like),
               toUInt64(1 - is_like)
        FROM
        (
            SELECT id, argMax(post_id, _version) AS post_id, toDate(argMax(created_at, _version)) AS day,
                   argMax(_deleted, _version) AS deleted, toUInt8(1) AS is_like
            FROM likes
            WHERE user_id = %(user_id)s AND created_at >= toDateTime(%(affinity_since_s)s)
            GROUP BY id
            HAVING deleted = 0
            UNION ALL
            SELECT id, argMax(post_id, _version) AS post_id, toDate(argMax(created_at, _version)) AS day,
                   argMax(_deleted, _version) AS deleted, toUInt8(0) AS is_like
            FROM comments
            WHERE user_id = %(user_id)s AND created_at >= toDateTime(%(affinity_since_s)s)
            GROUP BY id
            HAVING deleted = 0
        ) AS acted
        -- ALL, not ANY: since 20.x ANY INNER keeps one left row per key too, and a
        -- like and a comment on one post share the key (one row per post on the right)
        ALL INNER JOIN
        (
            SELECT id AS post_id, argMax(author_id, _version) AS acted_author_id
            FROM posts
            WHERE id GLOBAL IN (SELECT post_id FROM likes WHERE user_id = %(user_id)s)
               OR id GLOBAL IN (SELECT post_id FROM comments WHERE user_id = %(user_id)s)
            GROUP BY id
        ) AS acted_posts USING post_id
    )
    GROUP BY day_author_id, day
)
GROUP BY author_id
