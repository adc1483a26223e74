"""The relay against the real Postgres (pgoutput slot) and broker."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from django.conf import settings
from django.db import connection, transaction
from prometheus_client import REGISTRY

from feed.models import Follow, Post, User
from pipeline.cdc import relay as relay_module
from pipeline.cdc.process import postgres_connector
from pipeline.cdc.relay import DeliveryFailed, Relay, parse_lsn
from pipeline.topics import cdc_topic
from tests.pipeline.cdc.conftest import CdcNamespace

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_kafka]


def make_relay(ns: CdcNamespace, producer_factory: Any = None, **cdc: Any) -> Relay:
    from dataclasses import replace

    db = settings.DATABASES["default"]
    return Relay(
        replace(ns.cdc, **cdc),
        ns.kafka,
        connect=postgres_connector(db),
        producer_factory=producer_factory or (lambda: relay_module.make_producer(ns.kafka)),
        db_name=db["NAME"],
    )


def start(relay: Relay) -> None:
    relay.open()
    relay.ensure_publication()
    relay.ensure_slot()


def read_topic(ns: CdcNamespace, table: str, count: int, timeout: float = 10.0) -> list[tuple[Any, Any]]:
    """(key, value) pairs of a CDC topic in partition order; JSON decoded."""
    consumer = Consumer({**ns.kafka.client_config(), "group.id": f"{ns.name}-reader", "enable.auto.commit": False})
    topic = cdc_topic(ns.kafka, table)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        for message in consumer.consume(1000, timeout=0.2):
            if message.error() is None:
                messages.append(message)
    time.sleep(0.2)
    messages.extend(m for m in consumer.consume(1000, timeout=0.2) if m.error() is None)
    consumer.close()
    messages.sort(key=lambda m: (m.partition(), m.offset()))
    return [
        (orjson.loads(m.key()) if m.key() else None, orjson.loads(m.value()) if m.value() else None) for m in messages
    ]


def relayed_changes(table: str, op: str) -> float:
    """cdc_relay_changes_total{table, op} in this process (the relay under test runs here)."""
    return REGISTRY.get_sample_value("cdc_relay_changes_total", {"table": table, "op": op}) or 0.0


def pump_until_idle(relay: Relay) -> int:
    total = 0
    for _ in range(20):
        result = relay.pump()
        total += result.records
        if result.caught_up and result.records == 0:
            break
    return total


@pytest.mark.django_db(transaction=True)
def test_changes_become_debezium_envelopes(cdc_ns: CdcNamespace) -> None:
    relay = make_relay(cdc_ns)
    start(relay)
    assert relay.snapshot_pending()
    relay.snapshot()  # empty tables: nothing to emit, but the snapshot is then done
    assert not relay.snapshot_pending()

    alice = User.objects.create_user("alice", email="alice@secret.example", password="hunter2-secret")
    bob = User.objects.create_user("bob", email="bob@secret.example", password="pw")
    post = Post.objects.create(author=alice, body="hello")
    post.body = "edited"
    post.save()
    follow = Follow.objects.create(follower=alice, followee=bob)
    follow_id = follow.id
    follow.delete()
    # a primary-key change: Debezium's delete + tombstone + create
    Post.objects.filter(id=post.id).update(id=post.id + 1000)
    pump_until_idle(relay)

    posts = read_topic(cdc_ns, "posts", 5)
    old_key = [value["op"] if value else None for key, value in posts if key == {"id": post.id}]
    new_key = [value["op"] if value else None for key, value in posts if key == {"id": post.id + 1000}]
    assert old_key == ["c", "u", "d", None]
    assert new_key == ["c"]
    posts = [(k, v) for k, v in posts if k == {"id": post.id}]
    created, updated = posts[0][1], posts[1][1]
    assert created["before"] is None and created["after"]["body"] == "hello"
    assert updated["before"]["body"] == "hello" and updated["after"]["body"] == "edited"
    assert updated["source"]["lsn"] > created["source"]["lsn"]
    assert updated["source"]["txId"] and updated["source"]["ts_ms"] and updated["source"]["snapshot"] == "false"
    assert created["after"]["created_at"].endswith("Z") and created["after"]["author_id"] == alice.id

    follows = read_topic(cdc_ns, "follows", 3)
    assert [(k, v["op"] if v else None) for k, v in follows] == [
        ({"id": follow_id}, "c"),
        ({"id": follow_id}, "d"),
        ({"id": follow_id}, None),
    ]
    assert follows[1][1]["before"]["follower_id"] == alice.id  # REPLICA IDENTITY FULL: the whole old row

    users = read_topic(cdc_ns, "users", 2)
    assert sorted(v["after"]["username"] for _, v in users) == ["alice", "bob"]
    for _, value in users:
        assert set(value["after"]) == {"id", "username", "display_name", "date_joined", "is_active"}
    raw = orjson.dumps(users)
    assert b"secret.example" not in raw and b"pbkdf2" not in raw and b"hunter2" not in raw


@pytest.mark.django_db(transaction=True)
def test_unchanged_toast_is_filled_from_the_old_row(cdc_ns: CdcNamespace) -> None:
    relay = make_relay(cdc_ns)
    start(relay)
    relay.snapshot()
    author = User.objects.create_user("toast")
    body = secrets.token_hex(3000)[:5000]  # incompressible enough to be stored out of line
    post = Post.objects.create(author=author, body=body)
    with connection.cursor() as cursor:
        # touch another column only: pgoutput sends body as 'u' (unchanged TOAST)
        cursor.execute("UPDATE posts SET media_url = 'https://x.example/a.png' WHERE id = %s", [post.id])
    pump_until_idle(relay)
    posts = read_topic(cdc_ns, "posts", 2)
    update = posts[-1][1]
    assert update["op"] == "u"
    assert update["after"]["media_url"] == "https://x.example/a.png"
    assert update["after"]["body"] == body


@pytest.mark.django_db(transaction=True)
def test_slot_advances_only_past_acknowledged_messages(cdc_ns: CdcNamespace) -> None:
    # a producer whose broker never answers: nothing can be acknowledged
    dead = lambda: Producer({"bootstrap.servers": "127.0.0.1:9", "message.timeout.ms": 1000, "log_level": 0})  # noqa: E731
    relay = make_relay(cdc_ns, producer_factory=dead)
    start(relay)
    relay._set_snapshot_done(True)
    before = cdc_ns.slot_confirmed_lsn()
    assert before is not None
    User.objects.create_user("carol")
    relayed_before = relayed_changes("users", "c")
    with pytest.raises(DeliveryFailed):
        relay.pump()
    assert cdc_ns.slot_confirmed_lsn() == before, "the slot moved past a change the broker never acknowledged"
    assert relayed_changes("users", "c") == relayed_before, "a change the broker never acknowledged was counted"
    relay.close()

    # the same change is still in the slot and reaches a live broker
    live = make_relay(cdc_ns)
    start(live)
    pump_until_idle(live)
    users = read_topic(cdc_ns, "users", 1)
    assert [v["after"]["username"] for _, v in users] == ["carol"]
    assert relayed_changes("users", "c") == relayed_before + 1
    assert cdc_ns.slot_position() > parse_lsn(before)


@pytest.mark.django_db(transaction=True)
def test_idle_tables_still_confirm_progress(cdc_ns: CdcNamespace) -> None:
    relay = make_relay(cdc_ns, idle_confirm_interval=0.0)
    start(relay)
    relay._set_snapshot_done(True)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS cdc_unpublished_probe (x int)")
        cursor.execute("INSERT INTO cdc_unpublished_probe SELECT generate_series(1, 1000)")
        cursor.execute("SELECT pg_current_wal_flush_lsn()::text")
        written_to = parse_lsn(cursor.fetchone()[0])
    result = relay.pump()
    assert result.records == 0 and result.caught_up
    assert cdc_ns.slot_position() >= written_to
    lag_bytes, lag_seconds = relay.report_lag()
    assert lag_bytes >= 0 and lag_seconds < 5


class FlushSpy(Producer):
    """The real producer, counting flushes; `fail_at` makes that flush report an unacknowledged message."""

    def __init__(self, config: dict[str, Any], fail_at: int | None = None) -> None:
        super().__init__(config)
        self.flushes = 0
        self.fail_at = fail_at

    def flush(self, *args: Any) -> int:
        self.flushes += 1
        remaining = super().flush(*args)
        return 1 if self.flushes == self.fail_at else remaining


@pytest.mark.django_db(transaction=True)
def test_peeks_are_bounded_and_a_failure_inside_a_large_transaction_loses_nothing(
    cdc_ns: CdcNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_module, "PRODUCE_CHUNK", 200)
    producers: list[FlushSpy] = []

    def spy(fail_at: int | None = None) -> Any:
        def factory() -> FlushSpy:
            conf = {
                **cdc_ns.kafka.client_config(),
                "acks": "all",
                "enable.idempotence": True,
                "partitioner": "murmur2_random",
            }
            producers.append(FlushSpy(conf, fail_at))
            return producers[-1]

        return factory

    relay = make_relay(cdc_ns, producer_factory=spy(), peek_max_rows=100)
    start(relay)
    relay._set_snapshot_done(True)
    author = User.objects.create_user("bulk")  # one transaction of one change
    # 300 small transactions: a peek stops once it holds 100 rows (3 per transaction)
    for i in range(300):
        Post.objects.create(author=author, body=f"s{i}")
    first = relay.pump()
    assert 100 <= first.rows <= 105 and not first.caught_up, first
    pump_until_idle(relay)

    # a transaction larger than a peek: Postgres never splits it, so one peek returns
    # it whole; the relay streams it and bounds its producer queue (a flush every 200)
    with transaction.atomic():
        Post.objects.bulk_create([Post(author=author, body=f"p{i}") for i in range(1500)])
    before = cdc_ns.slot_confirmed_lsn()
    assert before is not None
    relay.close()
    # the 4th flush (800 changes produced) reports an unacknowledged message
    failing = make_relay(cdc_ns, producer_factory=spy(fail_at=4), peek_max_rows=100)
    start(failing)
    with pytest.raises(DeliveryFailed):
        failing.pump()
    assert producers[-1].flushes == 4
    assert cdc_ns.slot_confirmed_lsn() == before, "the slot moved inside a transaction that was not all acknowledged"
    failing.close()

    again = make_relay(cdc_ns, producer_factory=spy(), peek_max_rows=100)
    start(again)
    result = again.pump()
    assert result.records == 1500 and producers[-1].flushes == 1500 // 200 + 1
    assert cdc_ns.slot_position() > parse_lsn(before)
    # at least once: every change of the transaction is on the topic, the first 800 twice
    bodies = [v["after"]["body"] for _, v in read_topic(cdc_ns, "posts", 300 + 800 + 1500)]
    big = [body for body in bodies if body.startswith("p")]
    assert set(big) == {f"p{i}" for i in range(1500)}
    assert len(big) == 800 + 1500
    again.close()


@pytest.mark.django_db(transaction=True)
def test_snapshot_emits_existing_rows_then_the_stream(cdc_ns: CdcNamespace) -> None:
    author = User.objects.create_user("early")
    Post.objects.bulk_create([Post(author=author, body=f"old{i}") for i in range(5)])
    relay = make_relay(cdc_ns)
    start(relay)
    assert relay.snapshot_pending()
    assert relay.snapshot() == 6
    Post.objects.create(author=author, body="new")
    pump_until_idle(relay)
    posts = [v for _, v in read_topic(cdc_ns, "posts", 6)]
    snapshot = [v for v in posts if v["op"] == "r"]
    assert sorted(v["after"]["body"] for v in snapshot) == [f"old{i}" for i in range(5)]
    assert [v["after"]["body"] for v in posts if v["op"] == "c"] == ["new"]
    users = [v for _, v in read_topic(cdc_ns, "users", 1)]
    assert users[0]["op"] == "r" and users[0]["source"]["snapshot"] == "true"
    # the very last snapshot record is marked, as Debezium does
    assert [v["after"]["body"] for v in posts + users if v["source"]["snapshot"] == "last"] == ["old4"]
