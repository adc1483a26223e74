"""The one parser of every API request body (REST_FRAMEWORK DEFAULT_PARSER_CLASSES).

orjson, then a depth and a shape check: each failure is a 400 naming what is
wrong, never a RecursionError (DRF's stdlib-json parser lets a body of 100,000
`[` through as a 500). Kept apart from nova/api.py: DRF imports this while
rest_framework.views is still loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

# the deepest nesting a request body may have; every API body is an object of
# scalars, lists of objects at most (events), so 32 leaves ample room
JSON_MAX_DEPTH = 32


def json_depth(value: object) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
    return deepest


def parse_json_object(raw: bytes, max_depth: int = JSON_MAX_DEPTH) -> dict[str, Any]:
    """The one way a request body becomes data: orjson, then depth and shape checks.

    Raises ParseError (400) with a message a client can act on. orjson itself
    refuses nesting over 1,024 levels instead of recursing, so a body of 100,000
    `[` is an ordinary decode error.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"body: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ParseError(f"body: must be a JSON object, not {type(data).__name__}")
    if json_depth(data) > max_depth:
        raise ParseError(f"body: nested deeper than {max_depth} levels")
    return data


class JSONObjectParser(BaseParser):
    """DRF's parser for every endpoint (REST_FRAMEWORK DEFAULT_PARSER_CLASSES).

    Reads at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes even when no Content-Length
    was declared (chunked), and parses with parse_json_object.
    """

    media_type = "application/json"

    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        if stream is None:  # an empty body
            raise ParseError("body: empty; a JSON object is expected")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestDataTooBig(f"Request body is over {limit} bytes.")
        return parse_json_object(raw)
