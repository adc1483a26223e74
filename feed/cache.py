"""The feed's Redis state: what a cached feed is, its keys and TTLs.

Keys (all under REDIS_KEY_PREFIX, values JSON):
- feed:snap:<user>          the user's current ranked snapshot (FEED_CACHE_TTL);
                            the first page reads it, invalidation deletes it
- feed:snap:<user>:<id>     the same snapshot by id (FEED_CURSOR_TTL), for the
                            next pages: a refresh that replaces the current
                            snapshot does not move the pages of an older one
- feed:lock:<user>          single flight: the one request that ranks on a miss
- feed:fresh:<user>         posts by followees created since (about) the
                            snapshot, pushed when they are written (list)
- feed:hidden:<user>        posts the user hid (set, FEED_HIDDEN_TTL), filtered at read
                            from every part of the feed
- feed:muted:<user>         authors the user muted since (set), filtered at read
- feed:changed:<user>       the user's follows or mutes changed a moment ago: a
                            snapshot built now lives only FEED_CHANGE_GRACE_SECONDS,
                            since ClickHouse may not have the change yet (CDC lag)
- feed:post:<id>            a hydrated post as the API shows it (FEED_POST_TTL)
- feed:active               sorted set: user id → last first-page read (epoch s),
                            what the warming task warms (feed/warming.py)

Every function here degrades to "no cache" when Redis is unavailable
(nova/redis.py): reads return nothing, writes are skipped.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from nova import redis as nova_redis
from nova.locks import RedisLock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotEntry:
    post_id: int
    author_id: int
    created_us: int
    score: float
    freshness: float
    engagement: float
    affinity: float
    fatigue: float
    network_factor: float
    out_of_network: bool

    def as_row(self) -> list[Any]:
        return [
            self.post_id,
            self.author_id,
            self.created_us,
            self.score,
            self.freshness,
            self.engagement,
            self.affinity,
            self.fatigue,
            self.network_factor,
            int(self.out_of_network),
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> SnapshotEntry:
        return cls(
            int(row[0]),
            int(row[1]),
            int(row[2]),
            float(row[3]),
            float(row[4]),
            float(row[5]),
            float(row[6]),
            float(row[7]),
            float(row[8]),
            bool(row[9]),
        )


@dataclass(frozen=True)
class Snapshot:
    """One ranked feed as served: enough to page it and to explain each item."""

    id: str
    user_id: int
    profile: str
    built_at: float  # epoch seconds
    cold_start: bool
    entries: tuple[SnapshotEntry, ...]

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "user": self.user_id,
                "profile": self.profile,
                "built_at": self.built_at,
                "cold_start": self.cold_start,
                "entries": [e.as_row() for e in self.entries],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Snapshot:
        data = json.loads(raw)
        return cls(
            id=data["id"],
            user_id=data["user"],
            profile=data["profile"],
            built_at=data["built_at"],
            cold_start=data["cold_start"],
            entries=tuple(SnapshotEntry.from_row(r) for r in data["entries"]),
        )


def new_snapshot_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True)
class FreshPost:
    post_id: int
    created_us: int
    author_id: int


@dataclass(frozen=True)
class FirstPageState:
    snapshot: Snapshot | None
    fresh: list[FreshPost]
    hidden: frozenset[int]
    muted: frozenset[int]
    redis_ok: bool


def _snap_key(user_id: int, snapshot_id: str | None = None) -> str:
    return nova_redis.key("feed", "snap", user_id, *([snapshot_id] if snapshot_id else []))


def _redis_call(action: Callable[[Any], Any], default: Any) -> tuple[Any, bool]:
    client = nova_redis.client()
    if client is None:
        return default, False
    try:
        return action(client), True
    except nova_redis.REDIS_ERRORS as exc:
        log.warning("redis unavailable, feed served uncached: %s", exc)
        nova_redis.mark_down()
        return default, False


# ------------------------------------------------------------------ reads
def first_page_state(user_id: int, now_s: float | None = None) -> FirstPageState:
    """The current snapshot, fresh posts, hidden posts and muted authors: one
    round trip, which also records the user as active (for warming) when
    `now_s` is given."""

    def read(client: Any) -> tuple[Any, ...]:
        pipe = client.pipeline(transaction=False)
        if now_s is not None:
            pipe.zadd(_active_key(), {str(user_id): now_s})
        pipe.get(_snap_key(user_id))
        pipe.lrange(nova_redis.key("feed", "fresh", user_id), 0, -1)
        pipe.smembers(nova_redis.key("feed", "hidden", user_id))
        pipe.smembers(nova_redis.key("feed", "muted", user_id))
        results = pipe.execute()
        return tuple(results[1:] if now_s is not None else results)

    result, ok = _redis_call(read, (None, [], set(), set()))
    raw_snapshot, raw_fresh, raw_hidden, raw_muted = result
    return FirstPageState(
        snapshot=Snapshot.from_json(raw_snapshot) if raw_snapshot else None,
        fresh=[_parse_fresh(item) for item in raw_fresh],
        hidden=frozenset(int(post_id) for post_id in raw_hidden),
        muted=frozenset(int(author_id) for author_id in raw_muted),
        redis_ok=ok,
    )


def snapshot_by_id(user_id: int, snapshot_id: str) -> tuple[Snapshot | None, frozenset[int], frozenset[int]]:
    """A snapshot a cursor points at (None once expired), the hidden posts and muted authors."""

    def read(client: Any) -> tuple[Any, ...]:
        pipe = client.pipeline(transaction=False)
        pipe.get(_snap_key(user_id, snapshot_id))
        pipe.smembers(nova_redis.key("feed", "hidden", user_id))
        pipe.smembers(nova_redis.key("feed", "muted", user_id))
        return tuple(pipe.execute())

    (raw, hidden, muted), _ = _redis_call(read, (None, set(), set()))
    return (
        (Snapshot.from_json(raw) if raw else None),
        frozenset(int(post_id) for post_id in hidden),
        frozenset(int(author_id) for author_id in muted),
    )


def _active_key() -> str:
    return nova_redis.key("feed", "active")


def active_users(since_s: float, forget_before_s: float) -> list[int]:
    """Users whose last first page is at or after `since_s`, most recent first;
    entries older than `forget_before_s` are dropped from the set."""

    def read(client: Any) -> list[int]:
        pipe = client.pipeline(transaction=False)
        pipe.zremrangebyscore(_active_key(), "-inf", f"({forget_before_s}")
        pipe.zrevrangebyscore(_active_key(), "+inf", since_s)
        return [int(user_id) for user_id in pipe.execute()[1]]

    return _redis_call(read, [])[0]


def snapshot_ttls(user_ids: list[int]) -> dict[int, int]:
    """Seconds left on each user's current snapshot (-2: none)."""

    def read(client: Any) -> dict[int, int]:
        pipe = client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.ttl(_snap_key(user_id))
        return dict(zip(user_ids, (int(ttl) for ttl in pipe.execute()), strict=True))

    return _redis_call(read, {})[0]


def hidden_posts(user_id: int) -> frozenset[int]:
    """Posts the user hid (for the backfill and the fallback, which come from Postgres)."""
    raw, _ = _redis_call(lambda c: c.smembers(nova_redis.key("feed", "hidden", user_id)), set())
    return frozenset(int(post_id) for post_id in raw)


def snapshot_age_seconds(user_id: int) -> float | None:
    """For the inspector: how old the user's current snapshot is, None if none."""
    raw, _ = _redis_call(lambda c: c.get(_snap_key(user_id)), None)
    return time.time() - Snapshot.from_json(raw).built_at if raw else None


# ------------------------------------------------------------------ writes
def store_snapshot(snapshot: Snapshot) -> bool:
    body = snapshot.to_json()

    def write(client: Any) -> None:
        changed = client.exists(nova_redis.key("feed", "changed", snapshot.user_id))
        ttl = settings.FEED_CHANGE_GRACE_SECONDS if changed else settings.FEED_CACHE_TTL_SECONDS
        pipe = client.pipeline(transaction=False)
        pipe.set(_snap_key(snapshot.user_id), body, ex=ttl)
        pipe.set(_snap_key(snapshot.user_id, snapshot.id), body, ex=settings.FEED_CURSOR_TTL_SECONDS)
        pipe.execute()

    return _redis_call(write, None)[1]


def invalidate_feed(user_id: int) -> None:
    """The user's follows or mutes changed: the next first page ranks again, and
    snapshots built during the grace period are short-lived (ClickHouse may not
    have the change yet). Pages of the old snapshot stay readable."""

    def write(client: Any) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.delete(_snap_key(user_id))
        pipe.set(nova_redis.key("feed", "changed", user_id), 1, ex=settings.FEED_CHANGE_GRACE_SECONDS)
        pipe.execute()

    _redis_call(write, None)


def push_fresh_post(follower_ids: Iterable[int], post_id: int, created_us: int, author_id: int) -> None:
    """A new post, onto each follower's fresh list (merged into their next first
    page until a new snapshot holds it). Capped: only the newest matter."""
    item = f"{post_id}:{created_us}:{author_id}"
    ttl = settings.FEED_CACHE_TTL_SECONDS + settings.FEED_FRESH_OVERLAP_SECONDS

    def write(client: Any) -> None:
        pipe = client.pipeline(transaction=False)
        for follower_id in follower_ids:
            key = nova_redis.key("feed", "fresh", follower_id)
            pipe.lpush(key, item)
            pipe.ltrim(key, 0, settings.FEED_FRESH_MAX - 1)
            pipe.expire(key, ttl)
        pipe.execute()

    _redis_call(write, None)


def forget_author(user_id: int, author_id: int, *, muted: bool) -> None:
    """Unfollow or mute: that author's fresh posts leave the user's list and the
    snapshot is invalidated. A muted author is also filtered at read time until
    the mute has surely reached ClickHouse (an unfollowed one may linger in a
    snapshot for the grace period: their posts may still be trending)."""
    key = nova_redis.key("feed", "fresh", user_id)
    muted_key = nova_redis.key("feed", "muted", user_id)

    def write(client: Any) -> None:
        for raw in client.lrange(key, 0, -1):
            if _parse_fresh(raw).author_id == author_id:
                client.lrem(key, 0, raw)
        if muted:
            client.sadd(muted_key, author_id)
            client.expire(muted_key, settings.FEED_CURSOR_TTL_SECONDS)

    _redis_call(write, None)
    invalidate_feed(user_id)


def unmute_author(user_id: int, author_id: int) -> None:
    _redis_call(lambda c: c.srem(nova_redis.key("feed", "muted", user_id), author_id), None)
    invalidate_feed(user_id)


def hide_posts(user_id: int, post_ids: Iterable[int]) -> None:
    """A hide accepted by the events API: gone from the user's next page at once,
    before the event reaches ClickHouse and the next ranking excludes it."""
    ids = list(post_ids)
    if not ids:
        return
    key = nova_redis.key("feed", "hidden", user_id)

    def write(client: Any) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.sadd(key, *ids)
        pipe.expire(key, settings.FEED_HIDDEN_TTL_SECONDS)
        pipe.execute()

    _redis_call(write, None)


# ------------------------------------------------------------------ single flight
def get_or_build(user_id: int, build: Callable[[], Snapshot]) -> tuple[Snapshot, bool]:
    """(snapshot, built_here). On a miss exactly one caller runs `build` (under a
    Redis lock); the others wait for its snapshot. If the builder fails, the lock
    is released and the next waiter tries. Without Redis, every caller builds."""
    client = nova_redis.client()
    if client is None:
        return build(), True
    lock = RedisLock(client, nova_redis.key("feed", "lock", user_id), settings.FEED_SINGLE_FLIGHT_LOCK_SECONDS)
    deadline = time.monotonic() + settings.FEED_SINGLE_FLIGHT_WAIT_SECONDS
    delay = 0.005
    try:
        while True:
            if lock.acquire():
                try:
                    # another caller may have stored it between our miss and the lock
                    raw = client.get(_snap_key(user_id))
                    if raw:
                        return Snapshot.from_json(raw), False
                    snapshot = build()
                    store_snapshot(snapshot)
                    return snapshot, True
                finally:
                    lock.release()
            raw = client.get(_snap_key(user_id))
            if raw:
                return Snapshot.from_json(raw), False
            if time.monotonic() > deadline:
                # the builder is stuck (its lock will expire): do not keep the reader waiting
                return build(), True
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
    except nova_redis.REDIS_ERRORS as exc:
        log.warning("redis unavailable during single flight, ranking uncached: %s", exc)
        nova_redis.mark_down()
        return build(), True


# ------------------------------------------------------------------ hydrated posts
def _post_key(post_id: int) -> str:
    return nova_redis.key("feed", "post", post_id)


def cached_posts(post_ids: list[int]) -> dict[int, dict[str, Any]]:
    if not post_ids:
        return {}
    raw, _ = _redis_call(lambda c: c.mget([_post_key(i) for i in post_ids]), [None] * len(post_ids))
    return {post_id: json.loads(value) for post_id, value in zip(post_ids, raw, strict=True) if value}


def cache_posts(posts: dict[int, dict[str, Any]]) -> None:
    if not posts:
        return

    def write(client: Any) -> None:
        pipe = client.pipeline(transaction=False)
        for post_id, body in posts.items():
            pipe.set(_post_key(post_id), json.dumps(body, separators=(",", ":")), ex=settings.FEED_POST_TTL_SECONDS)
        pipe.execute()

    _redis_call(write, None)


def invalidate_post(post_id: int) -> None:
    """A post was deleted, liked, unliked or commented: the next read hydrates it again."""
    _redis_call(lambda c: c.delete(_post_key(post_id)), None)


def redis_used_memory() -> float:
    """feed_cache_memory_bytes: Redis's used_memory (the feed is most of it)."""
    info, ok = _redis_call(lambda c: c.info("memory"), None)
    return float(info["used_memory"]) if ok and info else float("nan")


def _parse_fresh(raw: bytes | str) -> FreshPost:
    text = raw.decode() if isinstance(raw, bytes) else raw
    post_id, created_us, author_id = text.split(":")
    return FreshPost(int(post_id), int(created_us), int(author_id))
