"""Issue 13's findings against the real services: brute force gets 429, hostile JSON gets
400, a paused Redis still gets 200s; plus logout, password change, events quota and
deactivated users."""

from __future__ import annotations

import time

import pytest
import redis
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from feed.models import Comment, Follow, Post
from nova import redis as nova_redis

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_redis]

TOKEN = "/api/v1/auth/token/"


def _login(client: APIClient, username: str, password: str, **headers: str):
    return client.post(
        TOKEN, {"username": username, "password": password}, format=None, content_type=None, follow=False, **headers
    )


def test_brute_force_on_one_username_gets_429_with_retry_after(alice, anonymous, settings):
    limit = 10  # the default API_THROTTLE_AUTH_USERNAME, 10/15min
    statuses = [
        _login(anonymous, "alice", f"guess-{i}", HTTP_X_FORWARDED_FOR=f"10.0.{i}.1").status_code
        for i in range(limit + 2)
    ]
    assert statuses == [400] * limit + [429, 429]
    refused = _login(anonymous, "alice", "alice-password", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert refused.status_code == 429  # even the right password, until the window ends
    assert 0 < int(refused["Retry-After"]) <= 15 * 60


def test_rotating_x_forwarded_for_does_not_reset_the_address_limit(alice, anonymous, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "auth_address": "5/15min"}
    statuses = [_login(anonymous, f"user{i}", "x", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(7)]
    assert statuses == [400] * 5 + [429, 429]


def test_with_a_trusted_proxy_the_address_comes_from_x_forwarded_for(alice, anonymous, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "auth_address": "2/15min"}
    settings.API_NUM_PROXIES = 1
    for _ in range(2):
        assert _login(anonymous, "nobody", "x", HTTP_X_FORWARDED_FOR="spoofed, 198.51.100.7").status_code == 400
    assert _login(anonymous, "nobody2", "x", HTTP_X_FORWARDED_FOR="other, 198.51.100.7").status_code == 429
    # another client behind the same proxy is not blocked
    assert _login(anonymous, "alice", "alice-password", HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 200


def test_logout_deletes_the_token(alice):
    assert alice.api.post("/api/v1/auth/logout/").status_code == 204
    assert alice.api.get("/api/v1/me/").status_code == 401


def test_password_change_rotates_the_token(alice):
    wrong = alice.api.post("/api/v1/auth/password/", {"old_password": "nope", "new_password": "a-new-passphrase-77"})
    assert wrong.status_code == 400 and "old_password" in wrong.json()
    response = alice.api.post(
        "/api/v1/auth/password/", {"old_password": "alice-password", "new_password": "a-new-passphrase-77"}
    )
    assert response.status_code == 200
    assert alice.api.get("/api/v1/me/").status_code == 401  # the old token is gone
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert fresh.get("/api/v1/me/").json()["username"] == "alice"
    alice.user.refresh_from_db()
    assert alice.user.check_password("a-new-passphrase-77")


NESTED = "[" * 100_000


@pytest.mark.parametrize(
    "method,path",
    [
        ("post", "/api/v1/auth/register/"),
        ("post", TOKEN),
        ("post", "/api/v1/posts/"),
        ("patch", "/api/v1/me/"),
        ("post", "/api/v1/auth/password/"),
        ("post", "/api/v1/events/"),
    ],
)
@pytest.mark.parametrize("body", [NESTED, '{"body": ' + "[" * 40 + "]" * 40 + "}", "[1]", "{"])
def test_hostile_bodies_are_400_on_every_endpoint(alice, method, path, body):
    response = getattr(alice.api, method)(path, data=body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith("body: ")


def test_events_have_their_own_quota(alice, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "events": "3/min", "user": "1000/min"}
    # three unknown posts: rejected by validation (400) yet counted against the quota
    batch = {
        "events": [
            {
                "event_id": f"00000000-0000-4000-8000-00000000000{i}",
                "post_id": 10**12,
                "event_type": "like",
                "ts": "2026-01-01T00:00:00Z",
            }
            for i in range(3)
        ]
    }
    assert alice.api.post("/api/v1/events/", batch).status_code == 400
    over = alice.api.post("/api/v1/events/", batch)
    assert over.status_code == 429 and int(over["Retry-After"]) > 0
    assert alice.api.get("/api/v1/me/").status_code == 200  # the read budget is untouched


def test_deactivated_users_are_hidden_wherever_listed(alice, bob, charlie, alice_post):
    bob_post = Post.objects.create(author=bob.user, body="bob's")
    Comment.objects.create(user=bob.user, post=alice_post, body="bob's comment")
    Follow.objects.create(follower=bob.user, followee=alice.user)
    Follow.objects.create(follower=alice.user, followee=bob.user)
    bob.user.is_active = False
    bob.user.save()
    api = charlie.api
    assert bob_post.pk not in [p["id"] for p in api.get("/api/v1/posts/").json()["results"]]
    assert api.get(f"/api/v1/posts/{bob_post.pk}/").status_code == 404
    assert api.get(f"/api/v1/posts/{alice_post.pk}/comments/").json()["results"] == []
    assert api.get(f"/api/v1/users/{alice.id}/followers/").json()["results"] == []
    assert api.get(f"/api/v1/users/{alice.id}/following/").json()["results"] == []


def _fail_open_count() -> float:
    return sum(
        REGISTRY.get_sample_value("api_throttle_fail_open_total", {"limit": name}) or 0.0
        for name in ("user", "anon", "auth_address", "auth_username")
    )


def test_redis_paused_the_api_still_answers_200(private_redis, alice, anonymous, settings, transactional_db):
    settings.REDIS_SOCKET_TIMEOUT = 0.3
    nova_redis.reset()
    assert alice.api.get("/api/v1/me/").status_code == 200
    before = _fail_open_count()
    admin = redis.Redis(port=private_redis.port)
    admin.execute_command("CLIENT", "PAUSE", "4000", "ALL")
    try:
        started = time.monotonic()
        assert alice.api.get("/api/v1/me/").status_code == 200
        assert alice.api.get("/api/v1/posts/").status_code == 200
        assert _login(anonymous, "alice", "alice-password").status_code == 200
        assert time.monotonic() - started < 3.5  # still within the pause
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
    assert _fail_open_count() > before
