from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from feed.models import Follow, Mute, User

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_redis]


def test_token_for_valid_credentials_authenticates_requests(alice, anonymous):
    response = anonymous.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password"}, format="json")
    assert response.status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/v1/me/").json()["username"] == "alice"


def test_token_for_wrong_password_is_400(alice, anonymous):
    response = anonymous.post("/api/v1/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_register_creates_a_user_and_returns_a_token(anonymous):
    response = anonymous.post(
        "/api/v1/auth/register/",
        {"username": "dora", "password": "a-long-passphrase-42", "display_name": "Dora"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert User.objects.get(username="dora").check_password("a-long-passphrase-42")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "alice", "password": "a-long-passphrase-42"}, "username"),
        ({"username": "ALICE", "password": "a-long-passphrase-42"}, "username"),
        ({"username": "has space", "password": "a-long-passphrase-42"}, "username"),
        ({"username": "eve", "password": "123"}, "password"),
        ({"password": "a-long-passphrase-42"}, "username"),
    ],
)
def test_register_rejects_bad_accounts(alice, anonymous, payload, field):
    response = anonymous.post("/api/v1/auth/register/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_me_shows_and_edits_the_profile(alice):
    response = alice.api.patch(
        "/api/v1/me/", {"display_name": "Alice A.", "bio": "hi", "username": "mallory"}, format="json"
    )
    assert response.status_code == 200
    alice.user.refresh_from_db()
    assert (alice.user.display_name, alice.user.bio, alice.user.username) == ("Alice A.", "hi", "alice")


def test_me_needs_authentication(anonymous):
    assert anonymous.get("/api/v1/me/").status_code == 401


def test_user_profile_is_public_to_signed_in_users(alice, charlie):
    assert charlie.api.get(f"/api/v1/users/{alice.id}/").json() == {
        "id": alice.id,
        "username": "alice",
        "display_name": "Alice",
    }


def test_follow_is_idempotent_and_unfollow_too(alice, bob):
    url = f"/api/v1/users/{bob.id}/follow/"
    assert alice.api.post(url).status_code == 201
    assert alice.api.post(url).status_code == 200
    assert Follow.objects.filter(follower=alice.user, followee=bob.user).count() == 1
    assert alice.api.delete(url).status_code == 204
    assert alice.api.delete(url).status_code == 204
    assert not Follow.objects.exists()


def test_following_yourself_is_400(alice):
    response = alice.api.post(f"/api/v1/users/{alice.id}/follow/")
    assert response.status_code == 400
    assert response.json() == {"user": ["You cannot follow yourself."]}


def test_muting_yourself_is_400(alice):
    response = alice.api.post(f"/api/v1/users/{alice.id}/mute/")
    assert response.status_code == 400
    assert response.json() == {"user": ["You cannot mute yourself."]}


def test_mute_and_unmute(alice, charlie):
    url = f"/api/v1/users/{charlie.id}/mute/"
    assert alice.api.post(url).status_code == 201
    assert alice.api.post(url).status_code == 200
    assert Mute.objects.filter(user=alice.user, muted=charlie.user).exists()
    assert alice.api.delete(url).status_code == 204
    assert not Mute.objects.exists()


def test_followers_and_following_lists(alice, bob, charlie, django_assert_num_queries):
    for person in (bob, charlie):
        Follow.objects.create(follower=person.user, followee=alice.user)
    Follow.objects.create(follower=alice.user, followee=bob.user)
    followers = [
        f["user"]["username"] for f in charlie.api.get(f"/api/v1/users/{alice.id}/followers/").json()["results"]
    ]
    assert followers == ["charlie", "bob"]
    following = [
        f["user"]["username"] for f in charlie.api.get(f"/api/v1/users/{alice.id}/following/").json()["results"]
    ]
    assert following == ["bob"]
    # token auth, the user, one page of follows with the other side joined
    with django_assert_num_queries(3):
        charlie.api.get(f"/api/v1/users/{alice.id}/followers/")
    with django_assert_num_queries(3):
        charlie.api.get(f"/api/v1/users/{alice.id}/following/")


def test_unknown_user_is_404(alice):
    assert alice.api.post("/api/v1/users/987654321/follow/").status_code == 404
    assert alice.api.get("/api/v1/users/987654321/followers/").status_code == 404
