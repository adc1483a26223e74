-- One post as the replicas know it, and its author's relation to the user:
-- what explain needs to say why a post is not among a user's candidates.
-- Latest version per id, as in feed_candidates.sql.
SELECT
    post_id, latest_author_id AS author_id, latest_created_at_us AS created_at_us, deleted,
    latest_author_id GLOBAL NOT IN
    (
        SELECT id
        FROM
        (
            SELECT id, argMax(is_active, _version) AS active, argMax(_deleted, _version) AS user_deleted
            FROM users
            WHERE id GLOBAL IN (SELECT author_id FROM posts WHERE id = %(post_id)s)
            GROUP BY id
            HAVING active = 0 OR user_deleted = 1
        )
    ) AS author_active,
    latest_author_id GLOBAL IN
    (
        SELECT latest_followee_id
        FROM
        (
            SELECT id, argMax(followee_id, _version) AS latest_followee_id, argMax(_deleted, _version) AS follow_deleted
            FROM follows
            WHERE follower_id = %(user_id)s
            GROUP BY id
            HAVING follow_deleted = 0
        )
    ) AS author_followed
FROM
(
    SELECT id AS post_id, argMax(author_id, _version) AS latest_author_id,
           argMax(created_at_us, _version) AS latest_created_at_us,
           argMax(_deleted, _version) = 1 OR argMax(isNotNull(deleted_at), _version) = 1 AS deleted
    FROM posts
    WHERE id = %(post_id)s
    GROUP BY id
)
