"""Events ingestion, the API's one domain call: validate a batch, fill in the
server-owned fields, publish, and say what was taken.

1. validate each event (pipeline/event_schema.py); a bad one is rejected with
   its index and reason, the rest go on;
2. look up every post of the batch in one query: author_id comes from the post,
   never from the client; an unknown or soft-deleted post rejects its event
   (events about a deleted post would only feed aggregates nobody reads);
3. stamp user_id (the authenticated user) and received_at, publish keyed by
   user id and wait for the broker's acknowledgement of all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.event_schema import EventRejected, TimeWindow, build_message, validate_client_event


class BatchRejected(ValueError):
    """The request as a whole is malformed (400) or too large (413)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class IngestResult:
    accepted: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    # posts the user hid in this batch (accepted): the feed drops them at once
    hidden_post_ids: list[int] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.errors)


def events_of(body: Any, max_batch: int) -> list[Any]:
    if not isinstance(body, dict) or "events" not in body:
        raise BatchRejected('body: must be a JSON object {"events": [...]}')
    events = body["events"]
    if not isinstance(events, list):
        raise BatchRejected("events: must be a list")
    if not events:
        raise BatchRejected("events: must hold at least one event")
    if len(events) > max_batch:
        raise BatchRejected(f"events: {len(events)} events; at most {max_batch} per request", status=413)
    return events


def ingest_events(
    events: list[Any],
    user_id: int,
    received_at: datetime,
    window: TimeWindow,
    post_authors: Callable[[Iterable[int]], dict[int, int]],
    publish: Callable[[list[tuple[bytes, bytes]]], None],
) -> IngestResult:
    """Validate, enrich and publish; `publish` raises if the broker did not take all."""
    result = IngestResult()
    valid: list[tuple[int, dict[str, Any]]] = []
    for index, event in enumerate(events):
        try:
            valid.append((index, validate_client_event(event, received_at, window)))
        except EventRejected as exc:
            result.errors.append({"index": index, "reason": str(exc)})
    authors = post_authors({fields["post_id"] for _, fields in valid}) if valid else {}
    key = str(user_id).encode()
    messages = []
    for index, fields in valid:
        author_id = authors.get(fields["post_id"])
        if author_id is None:
            result.errors.append({"index": index, "reason": f"post_id: post {fields['post_id']} does not exist"})
            continue
        messages.append((key, build_message(fields, user_id, author_id, received_at)))
        if fields["event_type"] == "hide":
            result.hidden_post_ids.append(fields["post_id"])
    result.errors.sort(key=lambda error: error["index"])
    if messages:
        publish(messages)
    result.accepted = len(messages)
    return result
