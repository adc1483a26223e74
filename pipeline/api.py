"""POST /api/v1/events/: thin view over pipeline.ingest.ingest_events."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feed.auth import signed_in_user
from feed.cache import hide_posts
from feed.models import Post
from monitoring import metrics
from nova import throttling
from pipeline.event_schema import EVENT_TYPES, TimeWindow
from pipeline.ingest import BatchRejected, events_of, ingest_events
from pipeline.producer import PublishFailed, get_publisher


def live_post_authors(post_ids: Iterable[int]) -> dict[int, int]:
    """{post id: author id} for posts that exist and are not soft-deleted: one query."""
    return dict(Post.objects.filter(id__in=list(post_ids), deleted_at__isnull=True).values_list("id", "author_id"))


def _publish(messages: list[tuple[bytes, bytes]]) -> None:
    get_publisher().publish(messages, timeout=settings.EVENTS_PRODUCE_TIMEOUT_SECONDS)


# OpenAPI only: validation is pipeline/event_schema.py (pure, unit-tested), so a
# rejected event is reported by index while the rest of the batch goes on
_EVENT_SCHEMA = inline_serializer(
    "ClientEvent",
    {
        "event_id": serializers.UUIDField(),
        "post_id": serializers.IntegerField(min_value=1),
        "event_type": serializers.ChoiceField(choices=sorted(EVENT_TYPES)),
        "ts": serializers.DateTimeField(help_text="ISO 8601; rejected outside [now - max age, now + max skew]"),
        "dwell_ms": serializers.IntegerField(required=False, allow_null=True, help_text="required for dwell"),
        "position": serializers.IntegerField(required=False, allow_null=True),
        "surface": serializers.CharField(required=False, allow_null=True, max_length=64),
    },
)
_RESULT_SCHEMA = inline_serializer(
    "EventsIngestResult",
    {
        "accepted": serializers.IntegerField(),
        "rejected": serializers.IntegerField(),
        "errors": inline_serializer(
            "RejectedEvent",
            {
                "index": serializers.IntegerField(),
                "reason": serializers.CharField(),
            },
            many=True,
        ),
    },
)


class EventsView(APIView):
    # events have their own per-user quota (events per minute, below), not the read budget
    throttle_classes: list = []

    @extend_schema(
        request=inline_serializer("EventsBatch", {"events": _EVENT_SCHEMA.__class__(many=True)}),
        responses={
            202: OpenApiResponse(_RESULT_SCHEMA, description="every accepted event acknowledged by the broker"),
            400: OpenApiResponse(_RESULT_SCHEMA, description="malformed body ({detail}), or every event rejected"),
            413: OpenApiResponse(description="over EVENTS_MAX_BATCH events or the body size limit"),
            415: OpenApiResponse(description="the body is not application/json"),
            429: OpenApiResponse(description="over the user's events quota (API_THROTTLE_EVENTS); Retry-After"),
            503: OpenApiResponse(description="the broker did not acknowledge in time; Retry-After"),
        },
    )
    def post(self, request: Request) -> Response:
        received_at, user_id = datetime.now(UTC), signed_in_user(request).pk
        try:
            # request.data: nova.parsers.JSONObjectParser (orjson, depth and size limits); 415 for other types
            events = events_of(request.data, settings.EVENTS_MAX_BATCH)
        except BatchRejected as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        wait = throttling.hit("events", str(user_id), throttling.rate_of("events"), cost=len(events))
        if wait is not None:
            raise Throttled(wait, detail="Over your events quota; retry the same event_ids later.")
        window = TimeWindow(
            max_future_skew=timedelta(seconds=settings.EVENTS_MAX_FUTURE_SKEW_SECONDS),
            max_age=timedelta(seconds=settings.EVENTS_MAX_AGE_SECONDS),
        )
        try:
            result = ingest_events(events, user_id, received_at, window, live_post_authors, _publish)
        except PublishFailed as exc:
            metrics.EVENTS_RECEIVED.labels("unavailable").inc(len(events))
            return Response(
                {"detail": f"events not accepted, retry with the same event_ids: {exc}"},
                status=503,
                headers={"Retry-After": str(settings.EVENTS_RETRY_AFTER_SECONDS)},
            )
        # after the broker acknowledged: a hide that was not accepted must not hide anything
        hide_posts(user_id, result.hidden_post_ids)
        metrics.EVENTS_RECEIVED.labels("accepted").inc(result.accepted)
        metrics.EVENTS_RECEIVED.labels("rejected").inc(result.rejected)
        body = {"accepted": result.accepted, "rejected": result.rejected, "errors": result.errors}
        return Response(body, status=202 if result.accepted else 400)
