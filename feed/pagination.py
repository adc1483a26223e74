"""Cursor pagination whose bad cursors are the client's fault (400), not a 404."""

from __future__ import annotations

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request


def _is_datetime(text: str) -> bool:
    try:
        parsed = parse_datetime(text)
    except ValueError:
        return False
    return parsed is not None and parsed.tzinfo is not None


class StableCursorPagination(CursorPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
    ordering = ("-created_at", "-id")

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]}) from exc
        # a client can forge any position; every list here is ordered by a timestamp
        # first, and a non-timestamp would fail inside the ORM as a 500
        # (djangorestframework-stubs types position as int; DRF decodes it from the "p" query string)
        if cursor is not None and cursor.position is not None and not _is_datetime(cursor.position):  # type: ignore[arg-type]
            raise ValidationError({self.cursor_query_param: ["Invalid cursor."]})
        return cursor

    def get_page_size(self, request: Request) -> int | None:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= self.max_page_size):
            raise ValidationError({self.page_size_query_param: [f"Must be an integer from 1 to {self.max_page_size}."]})
        return super().get_page_size(request)
