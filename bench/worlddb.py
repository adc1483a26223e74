"""A bench/worldgen.py world written into Nova's databases the way the product
would hold it (bench/feed_api.py, bench/load_stack.py): Postgres, the source of
truth the API reads, by COPY with the generator's ids and an API token per user;
ClickHouse, what the ranking reads, as CDC and the events consumer would have
written it. Call after django.setup(), with the target databases in the settings."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from django.db import connection, transaction
from worldgen import EventSource

from ranking.world import World, write_world

WORDS = (
    "today finally shipped coffee morning build release bug fix deploy feed ranking kafka postgres latency "
    "cache weekend hiking photo city music album launch team meeting idea design sunset river bread recipe "
    "garden book chapter train travel code review lunch tired happy excited new old small big fast slow"
).split()
CLICKHOUSE_SETTINGS: dict[str, object] = {"max_execution_time": 60}


def copy_rows(table: str, columns: list[str], rows: Iterable[tuple[object, ...]]) -> int:
    count = 0
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def write_postgres(world: World, seed: int) -> dict[str, int]:
    """The world's users, posts, follows, likes, comments and mutes with the ids
    ClickHouse has, and an API token per user; sequences moved past the ids;
    VACUUM ANALYZE at the end (not by autovacuum in the middle of a timed run).
    The database must be migrated and empty."""
    from django.contrib.auth.hashers import make_password

    rng = random.Random(seed)
    unusable = make_password(None)
    joined = datetime(2020, 1, 1, tzinfo=UTC)

    def sentence(low: int, high: int) -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(low, high))).capitalize()

    users = [
        "id", "password", "is_superuser", "username", "first_name", "last_name",
        "email", "is_staff", "is_active", "date_joined", "display_name", "bio",
    ]  # fmt: skip
    counts: dict[str, int] = {}
    with transaction.atomic():
        counts["users"] = copy_rows(
            "users",
            users,
            (
                (u.id, unusable, False, f"user{u.id}", "", "", "", False, u.active, joined, f"User {u.id}", "")
                for u in world.users
            ),
        )
        counts["posts"] = copy_rows(
            "posts",
            ["id", "author_id", "body", "media_url", "created_at", "updated_at", "deleted_at"],
            (
                (
                    p.id,
                    p.author_id,
                    sentence(5, 40),
                    "",
                    p.created_at,
                    p.created_at,
                    p.created_at if p.deleted else None,
                )
                for p in world.posts
            ),
        )
        counts["follows"] = copy_rows(
            "follows",
            ["id", "follower_id", "followee_id", "created_at"],
            ((r.id, r.user_id, r.target_id, r.created_at) for r in world.follows),
        )
        counts["likes"] = copy_rows(
            "likes",
            ["id", "user_id", "post_id", "created_at"],
            ((r.id, r.user_id, r.target_id, r.created_at) for r in world.likes),
        )
        counts["comments"] = copy_rows(
            "comments",
            ["id", "user_id", "post_id", "body", "created_at"],
            ((r.id, r.user_id, r.target_id, sentence(2, 20), r.created_at) for r in world.comments),
        )
        seen: set[tuple[int, int]] = set()
        mutes = []
        for r in world.mutes:  # the generator may draw a pair twice; Postgres has a unique constraint
            if (r.user_id, r.target_id) not in seen:
                seen.add((r.user_id, r.target_id))
                mutes.append(r)
        counts["mutes"] = copy_rows(
            "mutes",
            ["id", "user_id", "muted_id", "created_at"],
            ((r.id, r.user_id, r.target_id, r.created_at) for r in mutes),
        )
        counts["tokens"] = copy_rows(
            "authtoken_token",
            ["key", "user_id", "created"],
            ((secrets.token_hex(20), u.id, joined) for u in world.users),
        )
        with connection.cursor() as cursor:
            for table in ("users", "posts", "follows", "likes", "comments", "mutes"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return counts


def write_clickhouse(
    client, database: str, world: World, source: EventSource, events: int, give_up: Callable[[], bool] = lambda: False
) -> None:
    """The world's rows and `events` events into the migrated ClickHouse `database`
    (client on it), then wait for its merges (at most 180 s), so that a timed run
    does not start beside them. `give_up` is asked after each chunk of events."""
    write_world(client, world)
    written = 0
    for chunk in source.chunks(events):
        write_world(client, World(events=chunk))
        written += len(chunk)
        if give_up():
            raise SystemExit(f"time limit reached while writing events ({written:,} written)")
    started = time.monotonic()
    while client.execute("SELECT count() FROM system.merges WHERE database = %(d)s", {"d": database})[0][0]:
        if time.monotonic() - started > 180:
            print("merges still running after 180 s: going on", flush=True)
            return
        time.sleep(1)
