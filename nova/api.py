"""API plumbing shared by every endpoint: JSON errors, never a 500 for client input."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class RequestTooLargeMiddleware:
    """413 with a JSON body for a declared body over DATA_UPLOAD_MAX_MEMORY_SIZE.

    Django itself would raise RequestDataTooBig later, when the body is read,
    which surfaces as a bare 400; a client deserves to know the limit.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return JsonResponse({"detail": f"Content-Length {raw!r} is not a number."}, status=400)
        if limit is not None and length > limit:
            return JsonResponse({"detail": f"Request body is {length} bytes; the limit is {limit} bytes."}, status=413)
        return self.get_response(request)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "Request body is over the size limit."}, status=413)
    return drf_exception_handler(exc, context)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """JSON 404 under /api/ (a client parses it); Django's HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"No route or object at {request.path}."}, status=404)
    return page_not_found(request, exception)
