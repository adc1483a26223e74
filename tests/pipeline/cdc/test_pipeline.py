"""Postgres -> relay -> Kafka -> consumer -> ClickHouse, with real processes.

The relay and the consumer run as `python manage.py ...` subprocesses against the
pytest database (test_nova) in a private namespace (tests/pipeline/cdc/conftest.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from feed.models import Comment, Follow, Like, Mute, Post, User
from pipeline.topics import cdc_topic, dlq_topic
from tests.pipeline.cdc.conftest import CdcNamespace, send_sigterm, wait_until
from tests.pipeline.cdc.workload import compare

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_kafka, pytest.mark.requires_clickhouse]
FIXTURES = Path(__file__).parent / "debezium"


def converged(ns: CdcNamespace) -> bool:
    return compare(ns.pg, ns.ch) == {}


def produce(
    ns: CdcNamespace, table: str, messages: list[tuple[bytes | None, bytes | None]], partition: int = 0
) -> None:
    producer = Producer(ns.kafka.client_config())
    for key, value in messages:
        producer.produce(cdc_topic(ns.kafka, table), key=key, value=value, partition=partition)
    assert producer.flush(10) == 0


def read_dlq(ns: CdcNamespace, count: int, timeout: float = 15.0) -> list[Any]:
    consumer = Consumer({**ns.kafka.client_config(), "group.id": f"{ns.name}-dlq-reader"})
    consumer.assign([TopicPartition(dlq_topic(ns.kafka, "cdc"), p, 0) for p in range(3)])
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        found.extend(m for m in consumer.consume(100, timeout=0.2) if m.error() is None)
    consumer.close()
    return found


@pytest.mark.django_db(transaction=True)
def test_orm_changes_reach_clickhouse_exactly(cdc_ns: CdcNamespace) -> None:
    # rows that exist before the relay's first start arrive through the snapshot
    alice = User.objects.create_user("alice", email="alice@secret.example", password="pw", display_name="Alice")
    early = Post.objects.create(author=alice, body="before the slot existed")
    cdc_ns.start_relay()
    cdc_ns.start_consumer()

    bob = User.objects.create_user("bob", display_name="Bob")
    carol = User.objects.create_user("carol")
    post = Post.objects.create(author=bob, body="hello")
    Follow.objects.create(follower=alice, followee=bob)
    gone = Follow.objects.create(follower=carol, followee=bob)
    Like.objects.create(user=alice, post=post)
    Comment.objects.create(user=carol, post=post, body="nice")
    Mute.objects.create(user=carol, muted=alice)
    post.body = "hello, edited"
    post.save()
    early.deleted_at = early.created_at
    early.save()
    gone.delete()
    bob.display_name = "Bobby"
    bob.save()
    wait_until(lambda: converged(cdc_ns), 20, message=f"ClickHouse != Postgres: {compare(cdc_ns.pg, cdc_ns.ch)}")

    Like.objects.all().delete()
    Comment.objects.all().delete()
    carol.delete()  # cascades to her mute
    wait_until(lambda: converged(cdc_ns), 20, message=f"ClickHouse != Postgres: {compare(cdc_ns.pg, cdc_ns.ch)}")
    assert cdc_ns.ch.execute("SELECT count() FROM users FINAL WHERE _deleted = 1") == [(1,)]
    assert cdc_ns.ch.execute("SELECT body FROM posts FINAL WHERE id = %(id)s", {"id": post.id}) == [("hello, edited",)]

    # graceful stop: SIGTERM ends both processes cleanly
    for proc in cdc_ns.processes:
        assert send_sigterm(proc) == 0, cdc_ns.logs()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fixture", ["users_with_schema.json", "users_without_schema.json"])
def test_real_debezium_messages_land(cdc_ns: CdcNamespace, fixture: str) -> None:
    """Debezium's documented create/update/delete/tombstone, produced straight to the topic."""
    events = json.loads((FIXTURES / fixture).read_text())
    encode = lambda v: None if v is None else orjson.dumps(v)  # noqa: E731
    cdc_ns.start_consumer()
    produce(cdc_ns, "users", [(encode(events["create"]["key"]), encode(events["create"]["value"]))])
    select = "SELECT id, username, display_name, date_joined_us, is_active, _deleted FROM users FINAL"
    wait_until(lambda: cdc_ns.ch.execute(select) == [(9001, "anne", "Anne Kretchmar", 1_709_285_400_123_456, 1, 0)], 20)
    produce(cdc_ns, "users", [(encode(events["update"]["key"]), encode(events["update"]["value"]))])
    wait_until(lambda: cdc_ns.ch.execute(select)[0][2] == "Anne Marie Kretchmar", 20)
    produce(cdc_ns, "users", [(encode(e["key"]), encode(e["value"])) for e in (events["delete"], events["tombstone"])])
    wait_until(
        lambda: cdc_ns.ch.execute(select) == [(9001, "anne", "Anne Marie Kretchmar", 1_709_285_400_123_456, 1, 1)], 20
    )
    # replaying the older create after the delete changes nothing (its version is lower)
    produce(cdc_ns, "users", [(encode(events["create"]["key"]), encode(events["create"]["value"]))])
    time.sleep(1.5)
    assert cdc_ns.ch.execute(select)[0][5] == 1
    assert read_dlq(cdc_ns, 1, timeout=1.0) == []


@pytest.mark.django_db(transaction=True)
def test_garbage_and_unknown_table_go_to_the_dlq_and_the_partition_keeps_flowing(cdc_ns: CdcNamespace) -> None:
    def good(i: int) -> bytes:
        return orjson.dumps(
            {
                "before": None,
                "op": "c",
                "ts_ms": 1,
                "after": {"id": i, "follower_id": 1, "followee_id": 2, "created_at": "2024-01-01T00:00:00Z"},
                "source": {"schema": "public", "table": "follows", "lsn": 100 + i},
            }
        )

    # the documented Debezium example table (inventory.customers) is not one we replicate
    customers = orjson.dumps(
        {
            "before": None,
            "op": "c",
            "ts_ms": 1559033904863,
            "after": {"id": 1, "first_name": "Anne", "last_name": "Kretchmar", "email": "annek@noanswer.org"},
            "source": {
                "connector": "postgresql",
                "db": "postgres",
                "schema": "inventory",
                "table": "customers",
                "lsn": 24023128,
                "txId": 555,
                "snapshot": "false",
            },
        }
    )
    produce(
        cdc_ns,
        "follows",
        [(b'{"id":1}', good(1)), (b"k", b"\x00not json{"), (b'{"id":1}', customers), (b'{"id":2}', good(2))],
    )
    cdc_ns.start_consumer()
    wait_until(
        lambda: cdc_ns.ch.execute("SELECT id FROM follows FINAL ORDER BY id") == [(1,), (2,)], 20, message=cdc_ns.logs()
    )
    # dead letters keep their key, so they may sit in different DLQ partitions
    dead = sorted(read_dlq(cdc_ns, 2), key=lambda m: int(dict(m.headers())["source_offset"]))
    assert [m.value() for m in dead] == [b"\x00not json{", customers]
    headers = [dict(m.headers()) for m in dead]
    assert headers[0]["error"].startswith(b"not JSON")
    assert b"unknown table inventory.customers" in headers[1]["error"]
    assert headers[1]["source_topic"] == cdc_topic(cdc_ns.kafka, "follows").encode()
    assert (headers[0]["source_partition"], headers[0]["source_offset"]) == (b"0", b"1")
    assert (headers[1]["source_partition"], headers[1]["source_offset"]) == (b"0", b"2")


@pytest.mark.django_db(transaction=True)
def test_a_flood_of_garbage_stops_the_consumer(cdc_ns: CdcNamespace) -> None:
    produce(cdc_ns, "posts", [(None, b"garbage %d" % i) for i in range(1500)])
    proc = cdc_ns.start_consumer()
    assert proc.wait(60) != 0
    assert "stopping instead of draining the topic into the DLQ" in cdc_ns.logs()
