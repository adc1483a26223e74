"""POST /api/v1/events/: thin view over pipeline.ingest.ingest_events."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import orjson
from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feed.models import Post
from monitoring import metrics
from pipeline.event_schema import TimeWindow
from pipeline.ingest import BatchRejected, events_of, ingest_events
from pipeline.producer import PublishFailed, get_publisher


def live_post_authors(post_ids: Iterable[int]) -> dict[int, int]:
    """{post id: author id} for posts that exist and are not soft-deleted: one query."""
    return dict(Post.objects.filter(id__in=list(post_ids), deleted_at__isnull=True).values_list("id", "author_id"))


def _publish(messages: list[tuple[bytes, bytes]]) -> None:
    get_publisher().publish(messages, timeout=settings.EVENTS_PRODUCE_TIMEOUT_SECONDS)


class EventsView(APIView):

    @extend_schema(
        request={"application/json": {"type": "object", "properties": {"events": {"type": "array"}}}},
        responses={202: OpenApiResponse(description="{accepted, rejected, errors: [{index, reason}]}"),
                   400: OpenApiResponse(description="malformed body, or every event rejected"),
                   413: OpenApiResponse(description="over EVENTS_MAX_BATCH events or the body size limit"),
                   503: OpenApiResponse(description="the broker did not acknowledge in time; Retry-After")},
    )
    def post(self, request: Request) -> Response:
        received_at = datetime.now(timezone.utc)
        try:
            # orjson on the raw body: the stdlib parser behind request.data is 5x slower
            events = events_of(orjson.loads(request.body), settings.EVENTS_MAX_BATCH)
        except orjson.JSONDecodeError as exc:
            return Response({"detail": f"body: not valid JSON ({exc})"}, status=400)
        except BatchRejected as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        window = TimeWindow(
            max_future_skew=timedelta(seconds=settings.EVENTS_MAX_FUTURE_SKEW_SECONDS),
            max_age=timedelta(seconds=settings.EVENTS_MAX_AGE_SECONDS),
        )
        try:
            result = ingest_events(events, request.user.pk, received_at, window, live_post_authors, _publish)
        except PublishFailed as exc:
            metrics.EVENTS_RECEIVED.labels("unavailable").inc(len(events))
            return Response(
                {"detail": f"events not accepted, retry with the same event_ids: {exc}"},
                status=503, headers={"Retry-After": str(settings.EVENTS_RETRY_AFTER_SECONDS)},
            )
        metrics.EVENTS_RECEIVED.labels("accepted").inc(result.accepted)
        metrics.EVENTS_RECEIVED.labels("rejected").inc(result.rejected)
        body = {"accepted": result.accepted, "rejected": result.rejected, "errors": result.errors}
        return Response(body, status=202 if result.accepted else 400)
