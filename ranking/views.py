"""GET /api/v1/feed/explain/ (staff only: validates, ranks, explains) and GET /api/v1/suggestions/."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feed.models import Post, User
from feed.serializers import UserSerializer
from nova.breaker import CLICKHOUSE_FAILURES, BreakerOpen, guarded_clickhouse
from ranking.candidates import fetch_post_state
from ranking.explain import explain_post
from ranking.profiles import profile_for_user
from ranking.service import rank_feed
from ranking.suggestions import suggestions_for

_MAX_ID = 2**63 - 1  # bigint ids
# explain needs the ranker itself; there is no fallback to explain
_RANKER_UNAVAILABLE: tuple[type[BaseException], ...] = (BreakerOpen, *CLICKHOUSE_FAILURES)


class ExplainQuerySerializer(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1, max_value=_MAX_ID)
    post_id = serializers.IntegerField(min_value=1, max_value=_MAX_ID)


class ExplainView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        parameters=[
            OpenApiParameter("user_id", OpenApiTypes.INT64, required=True, description="Whose feed."),
            OpenApiParameter("post_id", OpenApiTypes.INT64, required=True, description="Which post."),
        ],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="Status (ranked, dropped, not_a_candidate), "
                "rank, reason, components, weights, features, score.",
            ),
            400: OpenApiResponse(description="Missing or malformed user_id/post_id."),
            403: OpenApiResponse(description="Not a staff user."),
            404: OpenApiResponse(description="No such user or post."),
            503: OpenApiResponse(description="ClickHouse unavailable (circuit breaker open, error or timeout)."),
        },
    )
    def get(self, request: Request) -> Response:
        query = ExplainQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        user = get_object_or_404(User, pk=query.validated_data["user_id"])
        post = get_object_or_404(Post, pk=query.validated_data["post_id"])
        runner = guarded_clickhouse()
        try:
            feed = rank_feed(user.pk, timezone.now(), profile_for_user(user.pk), runner)
            state = fetch_post_state(runner, user.pk, post.pk)
        except _RANKER_UNAVAILABLE as exc:
            return Response(
                {"detail": f"ClickHouse is unavailable, explain cannot rank now: {type(exc).__name__}"},
                status=503,
                headers={"Retry-After": str(int(settings.CIRCUIT_BREAKER.cool_down_seconds))},
            )
        return Response(explain_post(feed, post.pk, state))


# --- GET /api/v1/suggestions/ (ranking/suggestions.py)
class SuggestionsQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=settings.SUGGESTIONS_MAX_LIMIT, default=20)


class SuggestionsView(APIView):
    @extend_schema(
        parameters=[SuggestionsQuerySerializer],
        responses={
            200: inline_serializer("Suggestions", {"items": UserSerializer(many=True)}),
            400: OpenApiResponse(description="limit outside 1..50."),
            401: OpenApiResponse(description="No or bad credentials."),
        },
        description="Authors to follow: friends of friends, then the most followed; never yourself, someone you "
        "follow or mute, or an inactive account. Precomputed for active users, checked against your "
        "follows and mutes of the moment.",
    )
    def get(self, request: Request) -> Response:
        query = SuggestionsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        if request.user.pk is None:  # IsAuthenticated, the default permission, keeps this from happening
            raise NotAuthenticated
        users = suggestions_for(request.user.pk, query.validated_data["limit"])
        return Response({"items": UserSerializer(users, many=True).data})
