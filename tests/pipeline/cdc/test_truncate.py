"""A TRUNCATE in Postgres empties the ClickHouse replica (pgoutput's Truncate
message -> Debezium `op: t` -> the CDC consumer), also when a change made
before the truncate is applied after it (it sat in another partition)."""

from __future__ import annotations

import orjson
import pytest

from feed.models import Follow, Like, Post, User
from tests.pipeline.cdc.conftest import CdcNamespace, wait_until
from tests.pipeline.cdc.test_pipeline import converged, produce
from tests.pipeline.cdc.workload import compare

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_kafka, pytest.mark.requires_clickhouse]


def _follow(id_: int, lsn: int, op: str = "c") -> tuple[bytes, bytes]:
    return orjson.dumps({"id": id_}), orjson.dumps(
        {
            "before": None,
            "op": op,
            "ts_ms": 1,
            "after": {"id": id_, "follower_id": 1, "followee_id": 2, "created_at": "2024-01-01T00:00:00Z"},
            "source": {"schema": "public", "table": "follows", "lsn": lsn},
        }
    )


def _truncate(lsn: int) -> tuple[None, bytes]:
    return None, orjson.dumps(
        {
            "before": None,
            "after": None,
            "op": "t",
            "ts_ms": 1,
            "source": {"schema": "public", "table": "follows", "lsn": lsn},
        }
    )


def _live_follows(ns: CdcNamespace) -> list[int]:
    return [row[0] for row in ns.ch.execute("SELECT id FROM follows FINAL WHERE _deleted = 0 ORDER BY id")]


@pytest.mark.django_db(transaction=True)
def test_postgres_truncate_empties_the_replica_and_later_rows_stay(cdc_ns: CdcNamespace) -> None:
    """The real pipeline: relay and consumer as processes, TRUNCATE run in Postgres."""
    users = [User.objects.create_user(f"u{i}") for i in range(30)]
    post = Post.objects.create(author=users[0], body="p")
    cdc_ns.start_relay()
    cdc_ns.start_consumer()
    for a in users[:20]:
        for b in users[20:]:
            Follow.objects.create(follower=a, followee=b)
        Like.objects.create(user=a, post=post)
    wait_until(lambda: converged(cdc_ns), 30, message=f"{compare(cdc_ns.pg, cdc_ns.ch)}\n{cdc_ns.logs()}")
    assert len(_live_follows(cdc_ns)) == 200

    # one statement, two tables (pgoutput sends one Truncate message naming both)
    cdc_ns.pg.execute("TRUNCATE follows, likes")
    later = Follow.objects.create(follower=users[0], followee=users[1])
    wait_until(lambda: converged(cdc_ns), 30, message=f"{compare(cdc_ns.pg, cdc_ns.ch)}\n{cdc_ns.logs()}")
    assert _live_follows(cdc_ns) == [later.id]
    assert cdc_ns.ch.execute("SELECT count() FROM likes FINAL WHERE _deleted = 0") == [(0,)]
    assert sorted(cdc_ns.ch.execute("SELECT table FROM cdc_truncations")) == [("follows",), ("likes",)]


@pytest.mark.django_db(transaction=True)
def test_a_change_older_than_an_applied_truncate_does_not_survive_it(cdc_ns: CdcNamespace) -> None:
    """Partition 0 carries a truncate at LSN 200; partition 1 a change made before it
    (LSN 150), consumed only after the truncate was applied, and one made after (250)."""
    cdc_ns.start_consumer()
    produce(cdc_ns, "follows", [_follow(1, 100), _truncate(200)], partition=0)
    # the truncate is recorded before it marks the rows: wait for both
    wait_until(
        lambda: cdc_ns.ch.execute("SELECT count() FROM cdc_truncations") == [(1,)] and _live_follows(cdc_ns) == [],
        30,
        message=cdc_ns.logs(),
    )

    produce(cdc_ns, "follows", [_follow(2, 150), _follow(3, 250)], partition=1)
    wait_until(lambda: 3 in _live_follows(cdc_ns), 30, message=cdc_ns.logs())
    assert _live_follows(cdc_ns) == [3]
    # a later change of a truncated key is a new row and wins over the truncate
    produce(cdc_ns, "follows", [_follow(2, 300, op="u")], partition=2)
    wait_until(lambda: _live_follows(cdc_ns) == [2, 3], 30, message=cdc_ns.logs())
