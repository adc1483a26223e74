"""Who is asking, for the views that require a signed-in user."""

from __future__ import annotations

from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from feed.models import User


def signed_in_user(request: Request) -> User:
    """The user of a view that requires authentication (the default permission):
    DRF types `request.user` as possibly anonymous."""
    if not isinstance(request.user, User):
        raise NotAuthenticated()
    return request.user
