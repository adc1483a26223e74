"""Named users and posts for the API tests: Alice and Bob have tokens, Bob and
Carol write posts, a deleted post exists; an anonymous client has no access."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feed.models import Post, User
from pipeline.topics import all_topics, ensure_topics


@dataclass
class World:
    alice: User
    bob: User
    carol: User
    bob_post: Post
    carol_post: Post
    deleted_post: Post

    def client_for(self, user: User) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        return client


@pytest.fixture
def world(db) -> World:
    alice, bob, carol = (User.objects.create_user(name, password="pw") for name in ("alice", "bob", "carol"))
    return World(
        alice=alice,
        bob=bob,
        carol=carol,
        bob_post=Post.objects.create(author=bob, body="bob's post"),
        carol_post=Post.objects.create(author=carol, body="carol's post"),
        deleted_post=Post.objects.create(author=carol, body="gone", deleted_at=timezone.now()),
    )


@pytest.fixture(scope="session")
def kafka_topics() -> None:
    """The events topic with the configured partition count (tansu would
    otherwise auto-create it on first produce with its own default)."""
    from django.conf import settings

    from nova.kafka import admin_client

    ensure_topics(
        admin_client(settings.KAFKA),
        all_topics(settings.KAFKA),
        partitions=settings.KAFKA.partitions,
        replication_factor=settings.KAFKA.replication_factor,
    )


@pytest.fixture
def own_events_topic(settings, unique_name) -> Iterator[str]:
    """This test's own events topic: the process's publisher is swapped for one
    that writes there (and put back after), so the test reads back exactly what
    it caused from offset 0 — tansu under-reports high watermarks of batched
    writes, so "messages after the watermark" cannot be trusted."""
    from nova.kafka import admin_client
    from pipeline import producer
    from pipeline.topics import events_topic

    settings.KAFKA = dataclasses.replace(settings.KAFKA, topic_prefix=unique_name)
    topic = events_topic(settings.KAFKA)
    ensure_topics(
        admin_client(settings.KAFKA),
        [topic],
        partitions=settings.KAFKA.partitions,
        replication_factor=settings.KAFKA.replication_factor,
    )
    previous, producer._publisher = producer._publisher, None
    try:
        yield topic
    finally:
        if producer._publisher is not None:
            producer._publisher.producer.flush(5)
        producer._publisher = previous
