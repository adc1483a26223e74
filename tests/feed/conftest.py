"""The cast of every social API test (one named cast per area): alice and bob, who will
follow and like each other's posts, and charlie, who has no relation to anyone."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feed.models import Post, User


@dataclass
class Person:
    user: User
    api: APIClient

    @property
    def id(self) -> int:
        return self.user.pk


def _person(username: str) -> Person:
    user = User.objects.create_user(username=username, password=f"{username}-password", display_name=username.title())
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return Person(user, api)


@pytest.fixture
def alice(db) -> Person:
    return _person("alice")


@pytest.fixture
def bob(db) -> Person:
    return _person("bob")


@pytest.fixture
def charlie(db) -> Person:
    return _person("charlie")


@pytest.fixture
def anonymous(db) -> APIClient:
    return APIClient()


@pytest.fixture
def alice_post(alice: Person) -> Post:
    return Post.objects.create(author=alice.user, body="hello from alice")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # PBKDF2's deliberate slowness would dominate these tests; hashing itself is Django's
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
