"""The feed API benchmark's URLconf: the product's URLs plus two views that exist
only to compare GET /api/v1/feed/ with (bench/feed_api.py; never in nova/urls.py).

- /bench/ceiling/ and /bench/ceiling-noauth/: the ceiling. A plain Django view
  that reads the keys the feed's cached first page reads, the user's snapshot
  (GET) and the first page's hydrated posts (MGET), and returns them as JSON
  without any feed logic (no fresh merge, hidden/muted filters, cursor, DRF).
  /bench/ceiling/ authenticates the token as the feed does (DRF's
  TokenAuthentication: one Postgres query); /bench/ceiling-noauth/ maps the
  token to a user from a file the bench wrote ($BENCH_FEED_TOKENS), the bare
  minimum. A missing snapshot or post key answers 409: the bench must warm them,
  and wrk counts a 409 as an error, so a cold ceiling cannot pass for a fast one.
- /bench/naive/: what the feed replaces. A DRF view that builds the page from
  Postgres on every request: followed authors' recent posts with like and
  comment counts, newest first, serialized by the product's PostSerializer
  (the product's visible_posts() query: counts by correlated subqueries).
"""

from __future__ import annotations

import json
import os

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feed.models import Follow
from feed.serializers import PostSerializer
from feed.services import visible_posts
from nova import redis as nova_redis
from nova.urls import handler404  # noqa: F401  (the product's JSON 404s)
from nova.urls import urlpatterns as product_urlpatterns

PAGE = 20


def _load_tokens() -> dict[str, int]:
    path_ = os.environ.get("BENCH_FEED_TOKENS")
    if not path_ or not os.path.exists(path_):
        return {}
    with open(path_) as handle:
        return {token: int(user_id) for token, user_id in json.load(handle).items()}


_TOKENS = _load_tokens()


def _cached_page(user_id: int) -> HttpResponse:
    client = nova_redis.client()
    if client is None:
        return JsonResponse({"detail": "Redis is down"}, status=503)
    raw = client.get(nova_redis.key("feed", "snap", user_id))
    if raw is None:
        return JsonResponse({"detail": "no snapshot cached"}, status=409)
    entries = json.loads(raw)["entries"][:PAGE]
    posts = [
        post
        for post in client.mget([nova_redis.key("feed", "post", row[0]) for row in entries])
        if isinstance(post, bytes)
    ]
    if len(posts) < len(entries):  # a post key is missing
        return JsonResponse({"detail": "post cache cold"}, status=409)
    return HttpResponse(b'{"source":"cache","items":[' + b",".join(posts) + b"]}", content_type="application/json")


def ceiling(request: HttpRequest) -> HttpResponse:
    try:
        found = TokenAuthentication().authenticate(Request(request))
    except AuthenticationFailed:
        found = None
    if found is None:
        return JsonResponse({"detail": "Invalid token."}, status=401)
    return _cached_page(found[0].pk)


def ceiling_noauth(request: HttpRequest) -> HttpResponse:
    header = request.headers.get("Authorization", "")
    user_id = _TOKENS.get(header.removeprefix("Token "))
    if user_id is None:
        return JsonResponse({"detail": "Invalid token."}, status=401)
    return _cached_page(user_id)


class NaiveFeedView(APIView):
    def get(self, request: Request) -> Response:
        followees = Follow.objects.filter(follower_id=request.user.pk).values("followee_id")
        posts = visible_posts().filter(author_id__in=followees).order_by("-created_at", "-id")[:PAGE]
        return Response({"items": PostSerializer(posts, many=True).data})


urlpatterns = [
    *product_urlpatterns,
    path("bench/ceiling/", ceiling, name="bench-ceiling"),
    path("bench/ceiling-noauth/", ceiling_noauth, name="bench-ceiling-noauth"),
    path("bench/naive/", NaiveFeedView.as_view(), name="bench-naive"),
]
