"""Random JSON, ids and cursors at the write endpoints: a 4xx is fine, a 5xx never.

The Django test client re-raises any exception a view lets escape, so a would-be
500 (a DataError from Postgres, an encoding error) fails the example loudly.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta, timezone
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feed.models import Post

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_redis]

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# every code point, lone surrogates and NUL included
any_text = st.text(alphabet=st.characters(codec=None, categories=None), max_size=60) | st.sampled_from(
    ["", " ", "\x00", "\ud800", "x" * 5001, "https://example.com/a.png", "alice", "a-long-passphrase-42"]
)
huge_ints = st.integers(min_value=-(2**200), max_value=2**200)
scalars = st.none() | st.booleans() | huge_ints | st.floats(allow_nan=False) | any_text
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4), max_leaves=12
)
FIELDS = ["body", "media_url", "display_name", "bio", "username", "password"]
payloads = st.fixed_dictionaries({}, optional={name: json_values for name in FIELDS}) | json_values
ids = st.integers(min_value=0, max_value=2**64) | st.sampled_from(["abc", "-1", "1e3", "%00", "９"])


def _send(client, method: str, path: str, payload: object):
    if method == "get":
        return client.get(path)
    # ensure_ascii keeps lone surrogates as \ud800 escapes, as a hostile client would send them
    return getattr(client, method)(path, data=json.dumps(payload), content_type="application/json")


@FUZZ
@given(payload=payloads)
def test_post_create(alice, payload):
    assert _send(alice.api, "post", "/api/v1/posts/", payload).status_code < 500


@FUZZ
@given(payload=payloads)
def test_me_patch(alice, payload):
    assert _send(alice.api, "patch", "/api/v1/me/", payload).status_code < 500


@FUZZ
@given(payload=payloads)
def test_comment_create(alice_post, bob, payload):
    assert _send(bob.api, "post", f"/api/v1/posts/{alice_post.pk}/comments/", payload).status_code < 500


@settings(FUZZ, max_examples=60)
@given(payload=payloads)
def test_token_and_register(anonymous, alice, payload):
    assert _send(anonymous, "post", "/api/v1/auth/token/", payload).status_code < 500
    assert _send(anonymous, "post", "/api/v1/auth/register/", payload).status_code < 500


@FUZZ
@given(
    target=ids,
    action=st.sampled_from(["users/{}/follow/", "users/{}/mute/", "posts/{}/like/", "posts/{}/"]),
    method=st.sampled_from(["post", "delete", "get"]),
)
def test_relations_with_random_ids(alice, bob, target, action, method):
    Post.objects.get_or_create(author=bob.user, body="target")
    assert _send(alice.api, method, "/api/v1/" + action.format(target), None).status_code < 500


# a URL carries bytes, so query strings get encodable text (no lone surrogates)
url_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)


aware_datetimes = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
    st.datetimes(),
    st.integers(min_value=-1439, max_value=1439),
)
# cursors shaped like DRF's own (o=offset, r=reverse, p=position) reach deeper than noise
forged_cursors = st.builds(
    lambda o, r, p: base64.b64encode(urlencode({"o": o, "r": r, "p": p}).encode()).decode(),
    huge_ints,
    st.sampled_from(["0", "1", "x"]),
    url_text | st.datetimes().map(str) | aware_datetimes,
)


@FUZZ
@given(
    cursor=forged_cursors | url_text | st.binary(max_size=80).map(lambda raw: base64.b64encode(raw).decode()),
    page_size=url_text,
)
def test_list_with_random_cursors(alice, cursor, page_size):
    response = alice.api.get("/api/v1/posts/", {"cursor": cursor, "page_size": page_size})
    assert response.status_code < 500


# hostile raw bodies: deep nesting (lists, objects, mixed; up to 200,000 levels) and
# bodies over the size limit, at every endpoint that takes a body
WRITE_PATHS = [
    "/api/v1/posts/",
    "/api/v1/me/",
    "/api/v1/auth/token/",
    "/api/v1/auth/register/",
    "/api/v1/auth/password/",
    "/api/v1/events/",
]


@settings(FUZZ, max_examples=40)
@given(
    depth=st.integers(min_value=1, max_value=200_000),
    opener=st.sampled_from(["[", '{"a":', '[{"a":']),
    closed=st.booleans(),
    path=st.sampled_from(WRITE_PATHS),
)
def test_deeply_nested_bodies_are_4xx(alice, depth, opener, closed, path):
    body = opener * depth + ("]" * depth if closed and opener == "[" else "")
    method = "patch" if path.endswith("/me/") else "post"
    response = getattr(alice.api, method)(path, data=body, content_type="application/json")
    assert response.status_code in (400, 413), response.content  # 413: over the size limit


@settings(FUZZ, max_examples=10)
@given(extra=st.integers(min_value=1, max_value=100_000), path=st.sampled_from(WRITE_PATHS))
def test_oversized_bodies_are_413(alice, extra, path):
    from django.conf import settings as django_settings

    body = '{"body": "' + "x" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + extra) + '"}'
    response = alice.api.post(path, data=body, content_type="application/json")
    assert response.status_code == 413
