"""Every client mistake is a 4xx JSON answer that names the field and the problem."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import override_settings

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_redis]

BIGINT_OVERFLOW = 2**63


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({}, "body", "required"),
        ({"body": ""}, "body", "blank"),
        ({"body": "   "}, "body", "blank"),
        ({"body": "x" * 5001}, "body", "5000"),
        ({"body": 12}, "body", "valid string"),
        ({"body": ["a"]}, "body", "valid string"),
        ({"body": None}, "body", "null"),
        ({"body": "nul\x00byte"}, "body", "Null characters"),
        ({"body": "ok", "media_url": "not a url"}, "media_url", "valid URL"),
        ({"body": "ok", "media_url": "https://x.example/" + "a" * 600}, "media_url", "500"),
    ],
)
def test_post_create_rejects(alice, payload, field, fragment):
    # json.dumps escapes to ASCII, so a lone surrogate travels as "\\ud800" like from a real client
    response = alice.api.post("/api/v1/posts/", json.dumps(payload), content_type="application/json")
    assert response.status_code == 400
    messages = " ".join(response.json()[field])
    assert fragment in messages


def test_unicode_bodies_are_fine(alice):
    body = "Zürich 🚀 日本語 " + "\u200b" + "ok"
    response = alice.api.post("/api/v1/posts/", {"body": body}, format="json")
    assert response.status_code == 201
    assert response.json()["body"] == body


def test_a_body_of_exactly_5000_chars_is_accepted(alice):
    assert alice.api.post("/api/v1/posts/", {"body": "é" * 5000}, format="json").status_code == 201


def test_malformed_json_is_400(alice):
    response = alice.api.post("/api/v1/posts/", data='{"body": ', content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


def test_lone_surrogates_are_refused_by_the_parser(alice):
    # json.dumps escapes to ASCII, so the surrogate travels as "\\ud800" like from a real client
    response = alice.api.post(
        "/api/v1/posts/", json.dumps({"body": "lone \ud800 surrogate"}), content_type="application/json"
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]


def test_json_that_is_not_an_object_is_400(alice):
    response = alice.api.post("/api/v1/posts/", data="[1, 2]", content_type="application/json")
    assert response.status_code == 400


def test_huge_numbers_in_json_are_400(alice):
    response = alice.api.post("/api/v1/posts/", data='{"body": 1' + "0" * 5000 + "}", content_type="application/json")
    assert response.status_code == 400


def test_unsupported_media_type_is_415(alice):
    response = alice.api.post("/api/v1/posts/", data="body=x", content_type="text/plain")
    assert response.status_code == 415


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_body_over_the_size_limit_is_413(alice):
    response = alice.api.post("/api/v1/posts/", {"body": "x" * 20_000}, format="json")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/posts/abc/",
        "/api/v1/posts/-1/",
        "/api/v1/posts/0/",
        "/api/v1/posts/1.5/",
        f"/api/v1/posts/{BIGINT_OVERFLOW}/",
        f"/api/v1/posts/{10**30}/",
        "/api/v1/posts/987654321/",
        f"/api/v1/users/{BIGINT_OVERFLOW}/follow/",
        "/api/v1/users/%00/",
        "/api/v1/nothing-here/",
    ],
)
def test_bad_or_unknown_ids_in_urls_are_json_404(alice, path):
    response = alice.api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "query",
    [
        "cursor=garbage",
        "cursor=" + base64.b64encode(b"p=not-a-date").decode(),
        "cursor=" + base64.b64encode(b"p=2026-01-01T00:00:00\x00").decode(),
        "page_size=0",
        "page_size=abc",
        "page_size=1000",
        "author=abc",
        f"author={BIGINT_OVERFLOW}",
        "author=-5",
    ],
)
def test_bad_query_parameters_are_400(alice, query):
    response = alice.api.get(f"/api/v1/posts/?{query}")
    assert response.status_code == 400, response.json()
    assert set(response.json()) & {"cursor", "page_size", "author"}


def test_a_forged_cursor_with_a_huge_offset_is_clamped_not_a_500(alice):
    cursor = base64.b64encode(b"o=99999999999999999999999&p=2026-01-01T00:00:00%2B00:00").decode()
    assert alice.api.get(f"/api/v1/posts/?cursor={cursor}").status_code == 200


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"display_name": "x" * 101}, "display_name"), ({"bio": 5}, "bio"), ({"bio": "a\x00b"}, "bio")],
)
def test_me_patch_rejects(alice, payload, field):
    response = alice.api.patch("/api/v1/me/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "body"), ({"body": "x" * 2001}, "body"), ({"body": {"a": 1}}, "body")],
)
def test_comment_rejects(alice_post, bob, payload, field):
    response = bob.api.post(f"/api/v1/posts/{alice_post.pk}/comments/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"username": "alice"},
        {"username": "a\x00", "password": "x"},
        {"username": "\ud800", "password": "x"},
        {"username": 1, "password": []},
    ],
)
def test_token_rejects(anonymous, payload):
    response = anonymous.post("/api/v1/auth/token/", json.dumps(payload), content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "position", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-13-01T00:00:00+00:00"]
)
def test_forged_cursor_positions_at_the_edge_of_time_are_not_500(alice, position):
    cursor = base64.b64encode(f"o=0&p={position}".replace("+", "%2B").encode()).decode()
    assert alice.api.get(f"/api/v1/posts/?cursor={cursor}").status_code in (200, 400)
