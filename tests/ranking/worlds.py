"""Generated worlds for the ranking tests: every rule gets exercised by chance
(in/out of network, window edges, deleted posts and relations, inactive
authors, mutes, hides, seen posts, likes by event and by CDC row)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from ranking.world import WEvent, World, WPost, WRelation, WUser

NOW = datetime(2026, 11, 20, 15, 30, 12, 345_678, tzinfo=UTC)
USER = 1
EVENT_TYPES = ["impression"] * 8 + ["view", "click", "click", "like", "comment", "share", "dwell", "hide"]


def generated_world(seed: int, users: int = 40, posts: int = 400) -> tuple[World, set[tuple[str, int]]]:
    """A world and the (table, id) of relations deleted after they were written."""
    rng = random.Random(seed)
    world = World(users=[WUser(i, active=rng.random() > 0.05 or i == USER) for i in range(1, users + 1)])

    def moment(hours_back_max: float) -> datetime:
        return NOW - timedelta(microseconds=rng.randrange(int(hours_back_max * 3_600_000_000)))

    for post_id in range(1, posts + 1):
        world.posts.append(WPost(post_id, rng.randrange(1, users + 1), moment(100), deleted=rng.random() < 0.03))
    # a post from the future (created after `now`) must not be a candidate
    world.posts.append(WPost(posts + 1, 2, NOW + timedelta(minutes=5)))
    relation_id = 0

    def relation(user: int, target: int, at: datetime) -> WRelation:
        nonlocal relation_id
        relation_id += 1
        return WRelation(relation_id, user, target, at)

    for author in rng.sample(range(2, users + 1), 15):
        world.follows.append(relation(USER, author, moment(500)))
    for _ in range(200):
        follower, followee = rng.sample(range(2, users + 1), 2)
        world.follows.append(relation(follower, followee, moment(500)))
    # muting a followee: their posts are candidates, dropped as muted
    for author in (world.follows[2].target_id, world.follows[3].target_id):
        world.mutes.append(relation(USER, author, moment(500)))
    for _ in range(600):
        post = rng.choice(world.posts[:posts])
        user = USER if rng.random() < 0.2 else rng.randrange(2, users + 1)
        at = post.created_at + (NOW - post.created_at) * rng.random()
        (world.likes if rng.random() < 0.7 else world.comments).append(relation(user, post.id, at))
    for _ in range(4000):
        post = rng.choice(world.posts[:posts])
        user = USER if rng.random() < 0.25 else rng.randrange(2, users + 1)
        event_type = rng.choice(EVENT_TYPES)
        if event_type == "hide" and user == USER and rng.random() < 0.7:
            event_type = "click"  # keep most of the user's posts visible
        at = post.created_at + (NOW - post.created_at) * rng.random()
        world.events.append(
            WEvent(
                user,
                post.id,
                post.author_id,
                event_type,
                at,
                dwell_ms=rng.randrange(1, 60_000) if event_type == "dwell" else 0,
            )
        )
    # an old hide (40 days) of a followed author: fatigue half faded
    world.events.append(WEvent(USER, 10_000, world.follows[0].target_id, "hide", NOW - timedelta(days=40)))
    deleted = {("follows", world.follows[1].id), ("likes", world.likes[0].id), ("mutes", world.mutes[0].id)}
    return world, deleted
