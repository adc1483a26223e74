"""POST /api/v1/events/ through the whole web stack against the real Postgres
and broker: every refusal with its status and message, and for a 202 the
messages on the topic with server-owned user_id, author_id and received_at."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_kafka, pytest.mark.requires_redis]

URL = "/api/v1/events/"


def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def event(post_id: int, **extra) -> dict:
    return {"event_id": str(uuid.uuid4()), "post_id": post_id, "event_type": "click", "ts": now_iso(), **extra}


def post_json(client: APIClient, body: object):  # the test client's response
    return client.post(URL, data=json.dumps(body), content_type="application/json")


# ------------------------------------------------------------------ reading the topic back
def messages_on(topic: str, want: int, timeout: float = 10.0) -> list:
    """The messages of `topic` from its start (until `want` arrived or the time is up)."""
    consumer = Consumer(
        {**settings.KAFKA.client_config(), "group.id": f"probe-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    found: list[Message] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < want and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                found.append(message)
    finally:
        consumer.close()
    return found


# ------------------------------------------------------------------ access
def test_anonymous_is_refused(world, kafka_topics) -> None:
    response = post_json(APIClient(), {"events": [event(world.bob_post.id)]})
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_bad_token_is_refused(world, kafka_topics) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token nope")
    assert post_json(client, {"events": [event(world.bob_post.id)]}).status_code == 401


def test_events_route_is_in_the_openapi_schema(client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/json") else None
    text = response.content.decode()
    assert "/api/v1/events/" in (schema["paths"] if schema else text)
    if schema:
        assert {"202", "400", "413", "503"} <= set(schema["paths"]["/api/v1/events/"]["post"]["responses"])


# ------------------------------------------------------------------ whole-request refusals
@pytest.mark.parametrize(
    ("raw", "status", "detail"),
    [
        (b"{not json", 400, "body: not valid JSON"),
        (b"", 400, 'body: must be a JSON object {"events": [...]}'),
        (b"\xff\xfe", 400, "body: not valid JSON"),
        (b"[]", 400, "body: must be a JSON object, not list"),
        (b"[" * 100_000, 400, "body: not valid JSON"),
        (b'{"events": [{"event_id": ' + b"[" * 40 + b"]" * 40 + b"}]}", 400, "body: nested deeper than 32 levels"),
        (b'{"event": []}', 400, 'body: must be a JSON object {"events": [...]}'),
        (b'{"events": 5}', 400, "events: must be a list"),
        (b'{"events": []}', 400, "events: must hold at least one event"),
        (b'{"events": [' + b",".join([b"{}"] * 501) + b"]}", 413, "events: 501 events; at most 500 per request"),
    ],
)
def test_malformed_requests(world, kafka_topics, raw, status, detail) -> None:
    response = world.client_for(world.alice).post(URL, data=raw, content_type="application/json")
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail)


def test_a_body_that_is_not_json_is_415(world) -> None:
    response = world.client_for(world.alice).post(URL, data="events=1", content_type="text/plain")
    assert response.status_code == 415


def test_body_over_the_size_limit_is_413(world, kafka_topics) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = {"events": [event(world.bob_post.id, surface="x" * 60)], "padding": "p" * limit}
    response = post_json(world.client_for(world.alice), body)
    assert response.status_code == 413
    assert f"the limit is {limit} bytes" in response.json()["detail"]


def test_all_bad_batch_is_400_with_each_reason(world, own_events_topic) -> None:
    events = [
        event(world.bob_post.id, event_type="purchase"),
        event(world.deleted_post.id),
        event(987_654_321),
        event(world.bob_post.id, ts=now_iso(timedelta(hours=1))),
        event(world.bob_post.id, ts=now_iso(-timedelta(days=8))),
        {"event_id": "x", "post_id": world.bob_post.id, "event_type": "click", "ts": now_iso()},
        "not an object",
    ]
    response = post_json(world.client_for(world.alice), {"events": events})
    assert response.status_code == 400
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, 7)
    assert body["errors"] == [
        {"index": 0, "reason": "event_type: must be one of click, comment, dwell, hide, impression, like, share, view"},
        {"index": 1, "reason": f"post_id: post {world.deleted_post.id} does not exist"},
        {"index": 2, "reason": "post_id: post 987654321 does not exist"},
        {"index": 3, "reason": "ts: more than 300s in the future"},
        {"index": 4, "reason": "ts: older than 604800s"},
        {"index": 5, "reason": "event_id: 'x' is not a UUID"},
        {"index": 6, "reason": "must be a JSON object"},
    ]
    assert messages_on(own_events_topic, want=1, timeout=1.0) == []


# ------------------------------------------------------------------ the 202 path
def test_accepted_events_are_on_the_topic_with_server_owned_fields(world, own_events_topic) -> None:
    good = [
        event(world.bob_post.id, event_type="impression", position=0, surface="home"),
        event(world.carol_post.id, event_type="dwell", dwell_ms=2500, user_id=world.bob.id, author_id=world.alice.id),
        event(world.bob_post.id, event_type="like", received_at="2001-01-01T00:00:00Z"),
    ]
    bad = event(world.bob_post.id, event_type="dwell")  # no dwell_ms
    before = datetime.now(UTC)
    response = post_json(world.client_for(world.alice), {"events": [good[0], bad, good[1], good[2]]})
    after = datetime.now(UTC)

    assert response.status_code == 202
    assert response.json() == {
        "accepted": 3,
        "rejected": 1,
        "errors": [{"index": 1, "reason": "dwell_ms: required for a dwell event"}],
    }
    messages = messages_on(own_events_topic, want=4, timeout=3.0)
    assert len(messages) == 3
    assert {m.key() for m in messages} == {str(world.alice.id).encode()}
    assert len({m.partition() for m in messages}) == 1  # keyed by user: one partition, in order
    values = {v["event_id"]: v for v in (orjson.loads(m.value()) for m in messages)}
    assert set(values) == {e["event_id"] for e in good}
    authors = {world.bob_post.id: world.bob.id, world.carol_post.id: world.carol.id}
    for sent in good:
        value = values[sent["event_id"]]
        assert value["user_id"] == world.alice.id  # never the body's user_id
        assert value["author_id"] == authors[sent["post_id"]]  # from Postgres, never the body's
        received = datetime.fromisoformat(value["received_at"])
        assert before - timedelta(milliseconds=1) <= received <= after  # stamped now, not the body's
        assert value["event_type"] == sent["event_type"]
    dwell = values[good[1]["event_id"]]
    assert (dwell["dwell_ms"], dwell["position"], dwell["surface"]) == (2500, None, None)
    assert values[good[0]["event_id"]]["surface"] == "home"


def test_a_full_batch_of_500_is_accepted(world, kafka_topics) -> None:
    events = [event(world.bob_post.id, event_type="impression", position=i) for i in range(500)]
    response = post_json(world.client_for(world.bob), {"events": events})
    assert response.status_code == 202
    assert response.json() == {"accepted": 500, "rejected": 0, "errors": []}


# ------------------------------------------------------------------ fuzz: never a 5xx
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
field_values = {
    "event_id": st.uuids().map(str) | json_values,
    "post_id": st.integers(min_value=-5, max_value=2**64) | json_values,
    "event_type": st.sampled_from(["click", "dwell", "like", "hide", "x"]) | json_values,
    "ts": st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | st.just(now_iso()) | json_values,
    "dwell_ms": st.integers() | json_values,
    "position": st.integers() | json_values,
    "surface": st.text(max_size=80) | json_values,
    "user_id": json_values,
}
event_like = st.fixed_dictionaries({}, optional=field_values) | json_values
bodies = st.fixed_dictionaries({"events": st.lists(event_like, max_size=8) | json_values}) | json_values


@pytest.mark.slow
@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_random_json_never_yields_a_5xx(world, kafka_topics, body) -> None:
    client = world.client_for(world.alice)
    response = client.post(
        URL,
        data=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS) if _encodable(body) else json.dumps(body),
        content_type="application/json",
    )
    assert response.status_code in {202, 400, 413}, response.content
    assert response["Content-Type"] == "application/json"


def _encodable(body) -> bool:
    try:
        orjson.dumps(body)
    except TypeError:  # integers over 64 bits: send them with the stdlib encoder
        return False
    return True
