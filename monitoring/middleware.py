"""feed_api_* metrics for every /api/ request, labelled by the URL's name
(bounded: never the raw path, which holds ids)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from monitoring import metrics


def _endpoint(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.url_name or match.view_name) if match else "unmatched"


class ApiMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        except Exception:
            # Django turns it into a 500 further out; count it, then let it go on
            metrics.FEED_API_ERRORS.labels(method=request.method, endpoint=_endpoint(request)).inc()
            metrics.FEED_API_REQUESTS.labels(method=request.method, status="500", endpoint=_endpoint(request)).inc()
            raise
        endpoint = _endpoint(request)
        metrics.FEED_API_DURATION.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        metrics.FEED_API_REQUESTS.labels(
            method=request.method, status=str(response.status_code), endpoint=endpoint
        ).inc()
        if response.status_code >= 500:
            metrics.FEED_API_ERRORS.labels(method=request.method, endpoint=endpoint).inc()
        return response
