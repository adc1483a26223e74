"""Portability proof: the migrations and every ranking query run on a current
ClickHouse (chDB, in-process) as on the local 18.16, with the same answers.

The same small world (ranking.world) is written to a chDB session and to a
private database on the local 18.16 server; rank_feed (feed_candidates.sql,
user_context.sql, user_post_flags.sql), fetch_post_state (post_state.sql) and
fetch_trending (trending_posts.sql) must agree: the same feed in the same order, the same drops with the same
reasons, the same features, and scores within 1e-6.

chDB is a test requirement (requirements-test.txt): without it these tests fail,
they are never skipped.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from nova.clickhouse import make_client, server_version
from pipeline.clickhouse_migrations import MigrationRunner, discover
from ranking.candidates import QUERIES_DIR, PostState, fetch_post_state, load_query
from ranking.params import RankingParams
from ranking.service import RankedFeed, rank_feed
from ranking.trending import fetch_trending
from ranking.world import WEvent, World, WPost, WRelation, WUser, write_world

SCORE_TOLERANCE = 1e-6
NOW = datetime(2024, 6, 15, 12, 0, 0, tzinfo=UTC)
# a release "current" enough to prove the claim (chdb 4.4.0 embeds 26.9)
CURRENT_AT_LEAST = (24, 1)

VIEWER = 1
FOLLOWED = (2, 3, 4)
MUTED_AUTHOR = 5  # followed and muted
TRENDING_AUTHORS = (6, 7)
INACTIVE_AUTHOR = 8  # followed, inactive
OTHER = 9  # engages with everyone, follows nobody: a cold-start feed
NEWCOMER = 10  # no follows, no activity

PROFILES = (
    RankingParams(),  # product defaults: the small world is a cold start
    RankingParams(
        name="port",
        cold_start_min_candidates=3,
        feed_length=6,
        author_cap=2,
        author_cap_window=3,
        max_out_of_network_in_a_row=1,
    ),
)


def _ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def small_world() -> World:
    users = [WUser(u) for u in (VIEWER, *FOLLOWED, MUTED_AUTHOR, *TRENDING_AUTHORS, OTHER, NEWCOMER)]
    users.append(WUser(INACTIVE_AUTHOR, active=False))
    posts = [
        WPost(101, 2, _ago(hours=1)),
        WPost(102, 2, _ago(hours=5)),
        WPost(103, 2, _ago(hours=30)),
        WPost(104, 2, _ago(hours=2, minutes=10)),
        WPost(201, 3, _ago(hours=3)),
        WPost(202, 3, _ago(hours=80)),  # 202: outside the in-network window
        WPost(301, 4, _ago(hours=1, minutes=30), deleted=True),
        WPost(302, 4, _ago(hours=4)),  # hidden by the viewer
        WPost(303, 4, _ago(hours=6)),  # seen by the viewer
        WPost(304, 4, _ago(hours=9)),
        WPost(501, MUTED_AUTHOR, _ago(hours=2)),
        WPost(601, 6, _ago(hours=3, minutes=20)),
        WPost(602, 6, _ago(hours=30)),  # 602: outside the trending window
        WPost(603, 6, _ago(hours=12)),
        WPost(701, 7, _ago(hours=1, minutes=5)),
        WPost(702, 7, _ago(hours=8)),  # 702: no engagement
        WPost(801, INACTIVE_AUTHOR, _ago(hours=1, minutes=40)),
        WPost(1001, VIEWER, _ago(hours=7)),
        WPost(901, OTHER, _ago(hours=200)),  # outside every window
    ]
    follows = [
        WRelation(10 + i, VIEWER, author, _ago(days=20))
        for i, author in enumerate((*FOLLOWED, MUTED_AUTHOR, INACTIVE_AUTHOR))
    ]
    mutes = [WRelation(1, VIEWER, MUTED_AUTHOR, _ago(days=3))]
    likes = [
        WRelation(1, VIEWER, 101, _ago(minutes=50)),
        WRelation(2, VIEWER, 201, _ago(hours=2)),
        WRelation(3, VIEWER, 202, _ago(hours=70)),
        WRelation(4, OTHER, 601, _ago(hours=3)),
        WRelation(5, OTHER, 101, _ago(minutes=40)),
        WRelation(6, 3, 701, _ago(hours=1)),
        WRelation(7, VIEWER, 603, _ago(hours=11)),
        WRelation(8, OTHER, 103, _ago(hours=29)),
    ]
    comments = [
        WRelation(1, VIEWER, 201, _ago(hours=2, minutes=30)),
        WRelation(2, OTHER, 601, _ago(hours=2, minutes=50)),
        WRelation(3, OTHER, 304, _ago(hours=8)),
        WRelation(4, VIEWER, 102, _ago(days=12)),  # older than its post: only the affinity window counts it
    ]
    author = {p.id: p.author_id for p in posts}

    def ev(user: int, post: int, kind: str, when: datetime, dwell_ms: int = 0) -> WEvent:
        return WEvent(user, post, author[post], kind, when, dwell_ms)

    events = [
        # the viewer: impressions (seen within 7 days, and one older), clicks, a like also in CDC, a share, a hide
        ev(VIEWER, 303, "impression", _ago(days=2)),
        ev(VIEWER, 104, "impression", _ago(days=10)),
        ev(VIEWER, 101, "impression", _ago(minutes=55)),
        ev(VIEWER, 101, "click", _ago(minutes=54)),
        ev(VIEWER, 101, "like", _ago(minutes=50)),
        ev(VIEWER, 201, "click", _ago(hours=2, minutes=40)),
        ev(VIEWER, 201, "dwell", _ago(hours=2, minutes=39), dwell_ms=12_000),
        ev(VIEWER, 102, "share", _ago(hours=4)),
        ev(VIEWER, 302, "hide", _ago(days=1)),
        ev(VIEWER, 304, "view", _ago(hours=8)),
        ev(VIEWER, 701, "click", _ago(minutes=30)),
        # everyone else: engagement that makes posts trend (or not)
        *(
            ev(OTHER, post, "impression", _ago(hours=h))
            for post, h in ((601, 3), (701, 1), (102, 4), (103, 20), (201, 2), (602, 29), (702, 7), (603, 11))
        ),
        ev(OTHER, 601, "click", _ago(hours=2, minutes=55)),
        ev(OTHER, 601, "like", _ago(hours=2, minutes=54)),
        ev(OTHER, 601, "share", _ago(hours=2, minutes=53)),
        ev(OTHER, 701, "click", _ago(minutes=59)),
        ev(OTHER, 701, "share", _ago(minutes=58)),
        ev(OTHER, 602, "click", _ago(hours=29)),
        ev(OTHER, 603, "click", _ago(hours=10)),
        ev(OTHER, 102, "click", _ago(hours=3, minutes=50)),
        ev(OTHER, 103, "like", _ago(hours=19)),
        ev(OTHER, 302, "hide", _ago(hours=3)),
        ev(3, 701, "impression", _ago(hours=1, minutes=1)),
        ev(3, 701, "like", _ago(hours=1)),
        ev(4, 101, "impression", _ago(minutes=45)),
        ev(4, 101, "comment", _ago(minutes=44)),
        ev(OTHER, 801, "click", _ago(hours=1)),  # the inactive author's post stays out anyway
        ev(OTHER, 301, "click", _ago(hours=1)),  # so does the deleted post
    ]
    return World(users=users, posts=posts, follows=follows, likes=likes, comments=comments, mutes=mutes, events=events)


@pytest.fixture(scope="module")
def chdb_runner() -> Iterator[object]:
    """A chDB session with every migration applied, statement by statement, in order."""
    from tests.support.chdb_runner import ChdbRunner

    missing = None
    try:
        runner = ChdbRunner("nova_port")
    except ImportError as exc:
        missing = str(exc)
    if missing:  # CI installs chdb: without it this is a failure, never a skip
        pytest.fail(missing, pytrace=False)
    try:
        for migration in discover(settings.CLICKHOUSE_SQL_DIR):
            for statement in migration.statements():
                try:
                    runner.execute(statement)
                except Exception as exc:
                    pytest.fail(
                        f"migration {migration.name} fails on chDB {runner.version}:\n{statement}\n{exc}", pytrace=False
                    )
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="module")
def clickhouse_port_db() -> Iterator[object]:
    """A private database on the local server (18.16), every migration applied; dropped at the end."""
    database = f"nova_port_{uuid.uuid4().hex[:12]}"
    config = settings.CLICKHOUSE
    admin = make_client(config, database="default")
    client = make_client(config, database=database)
    try:
        MigrationRunner(client, admin, database, settings.CLICKHOUSE_SQL_DIR).apply()
        yield client
    finally:
        client.disconnect()
        admin.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.disconnect()


@pytest.fixture(scope="module")
def both(chdb_runner, clickhouse_port_db) -> tuple[object, object]:
    """(18.16 client, chDB runner reporting failures by query file), the same world written to each."""
    assert server_version(clickhouse_port_db) < CURRENT_AT_LEAST, "the reference server should be the old one (18.16)"
    world = small_world()
    write_world(clickhouse_port_db, world)
    write_world(chdb_runner, world)
    return clickhouse_port_db, _NamedQueries(chdb_runner)


def _created_objects() -> set[str]:
    names = set()
    for migration in discover(settings.CLICKHOUSE_SQL_DIR):
        for statement in migration.statements():
            match = re.match(
                r"CREATE\s+(?:MATERIALIZED\s+VIEW|TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?`?(\w+)`?",
                statement,
                re.IGNORECASE,
            )
            if match:
                names.add(match.group(1))
    return names


def test_every_migration_applies_on_current_clickhouse(chdb_runner) -> None:
    assert chdb_runner.version >= CURRENT_AT_LEAST, f"chDB embeds ClickHouse {chdb_runner.version}, not a current one"
    for migration in discover(settings.CLICKHOUSE_SQL_DIR):
        if migration.requires:
            assert chdb_runner.version >= migration.requires, f"{migration.name} is gated above chDB's version"
    expected = _created_objects()
    assert expected, "no CREATE statement found in the migrations"
    present = {
        name for (name,) in chdb_runner.execute("SELECT name FROM system.tables WHERE database = currentDatabase()")
    }
    assert expected <= present, f"missing on chDB: {sorted(expected - present)}"


def _feed_summary(feed: RankedFeed) -> dict[str, object]:
    return {
        "cold_start": feed.cold_start,
        "items": [item.post_id for item in feed.items],
        "dropped": [(d.post_id, d.reason) for d in feed.dropped],
    }


def _candidate_mismatches(reference: RankedFeed, other: RankedFeed) -> list[str]:
    """Every feature and component of every candidate (feed and dropped), floats within the tolerance."""
    problems = []
    ours = [*(i.candidate for i in reference.items), *(d.candidate for d in reference.dropped)]
    theirs = {c.post_id: c for c in (*(i.candidate for i in other.items), *(d.candidate for d in other.dropped))}
    for candidate in ours:
        twin = theirs.get(candidate.post_id)
        if twin is None:
            problems.append(f"post {candidate.post_id}: missing")
            continue
        for part in ("features", "components"):
            a, b = getattr(candidate, part), getattr(twin, part)
            for field in fields(a):
                x, y = getattr(a, field.name), getattr(b, field.name)
                same = (
                    math.isclose(x, y, rel_tol=0, abs_tol=SCORE_TOLERANCE)
                    if isinstance(x, float) or isinstance(y, float)
                    else x == y and type(x) is type(y)
                )
                if not same:
                    problems.append(f"post {candidate.post_id} {part}.{field.name}: 18.16 {x!r}, chDB {y!r}")
        for flag in ("seen", "hidden", "muted"):
            if getattr(candidate, flag) != getattr(twin, flag):
                problems.append(
                    f"post {candidate.post_id} {flag}: 18.16 {getattr(candidate, flag)}, chDB {getattr(twin, flag)}"
                )
    return problems


class _NamedQueries:
    """Runs on chDB; a failing query is reported by its file in infra/clickhouse/queries/."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.names = {load_query(path.stem): path.name for path in sorted(QUERIES_DIR.glob("*.sql"))}

    def execute(self, query, params=None):
        try:
            return self.runner.execute(query, params)
        except Exception as exc:
            name = self.names.get(query, "a statement that is not a ranking query")
            message = str(exc)
            if len(message) > 900:
                message = f"{message[:600]} [...] {message[-300:]}"
            raise AssertionError(f"{name} fails on chDB (ClickHouse {self.runner.version}): {message}") from None


@pytest.mark.requires_clickhouse
def test_ranking_queries_agree_on_chdb_and_18_16(both) -> None:
    """rank_feed: user_context.sql, user_post_flags.sql and feed_candidates.sql on each server."""
    server, current = both
    problems = []
    for user_id in (VIEWER, OTHER, NEWCOMER):
        for profile in PROFILES:
            label = f"user {user_id}, profile {profile.name}"
            old = rank_feed(user_id, NOW, profile, server)
            new = rank_feed(user_id, NOW, profile, current)
            if _feed_summary(new) != _feed_summary(old):
                problems.append(
                    f"{label}: feed and drops differ\n  18.16 {_feed_summary(old)}\n  chDB  {_feed_summary(new)}"
                )
            if [i.score for i in new.items] != pytest.approx([i.score for i in old.items], rel=0, abs=SCORE_TOLERANCE):
                problems.append(f"{label}: feed scores differ by more than {SCORE_TOLERANCE}")
            problems.extend(f"{label}: {problem}" for problem in _candidate_mismatches(old, new))
    assert not problems, "chDB and 18.16 rank differently:\n" + "\n".join(problems)


@pytest.mark.requires_clickhouse
def test_post_state_agrees_on_chdb_and_18_16(both) -> None:
    """post_state.sql (explain) for every post of the world, and one that does not exist."""
    server, current = both
    for post_id in (*sorted(p.id for p in small_world().posts), 999_999):
        for user_id in (VIEWER, OTHER):
            old_state: PostState | None = fetch_post_state(server, user_id, post_id)
            assert fetch_post_state(current, user_id, post_id) == old_state, (user_id, post_id)

    def state_of(post_id: int) -> PostState:
        state = fetch_post_state(server, VIEWER, post_id)
        assert state is not None, post_id
        return state

    assert state_of(301).deleted
    assert not state_of(801).author_active
    assert state_of(201).author_followed
    assert fetch_post_state(server, VIEWER, 999_999) is None


@pytest.mark.requires_clickhouse
def test_the_world_exercises_every_rule(both) -> None:
    """The comparison means something: on the reference server, the small world has
    trending posts, drops for every reason, and posts every filter keeps out."""
    server, _ = both
    viewer = rank_feed(VIEWER, NOW, PROFILES[1], server)
    reasons = {d.post_id: d.reason for d in viewer.dropped}
    candidates = {i.post_id for i in viewer.items} | set(reasons)
    assert not viewer.cold_start
    assert (reasons.get(302), reasons.get(501), reasons.get(303)) == ("hidden", "muted", "seen")
    assert {601, 701} <= candidates, "trending posts are candidates"
    assert not {202, 301, 602, 702, 801, 901} & candidates, "out of window, deleted, unengaged or inactive"
    assert any(i.candidate.out_of_network for i in viewer.items)
    assert "beyond_feed_length" in reasons.values()
    assert "saturated" in {d.reason for d in rank_feed(VIEWER, NOW, PROFILES[0], server).dropped}
    features = {
        c.post_id: c.features for c in (*(i.candidate for i in viewer.items), *(d.candidate for d in viewer.dropped))
    }
    # likes: the larger of events (1) and CDC rows (2); the comment only as an event
    assert (features[101].likes, features[101].comments, features[101].clicks) == (2, 1, 1)
    assert features[304].last_hide_s > 0 and features[201].affinity_raw > 0
    assert rank_feed(OTHER, NOW, PROFILES[0], server).items, "a cold-start feed from trending posts"


@pytest.mark.requires_clickhouse
def test_trending_posts_agree_on_chdb_and_18_16(both) -> None:
    """trending_posts.sql (the refresh_trending task) over several windows and limits."""
    server, current = both
    for window_hours, limit in ((24, 200), (24, 2), (6, 200), (72, 200)):
        old = fetch_trending(server, NOW, window_hours, limit)
        assert fetch_trending(current, NOW, window_hours, limit) == old, (window_hours, limit)
    trending = [(p.post_id, p.weighted_actions) for p in fetch_trending(server, NOW, 24, 200)]
    # 601: click, like (event and CDC row: once), comment (CDC), share = 10; 701: two clicks, a like, a share
    # = 8; 101: a click, two likes (CDC; one also an event), a comment (event) = 8, older id after 701
    assert trending[:3] == [(601, 10), (701, 8), (101, 8)]
    assert not {301, 602, 702, 801} & {post_id for post_id, _ in trending}, "deleted, old, unengaged or inactive"
