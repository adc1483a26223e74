from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from monitoring.health import run_checks


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; says nothing of its dependencies."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when every dependency answers; 503 names the ones that don't."""
    results = run_checks(settings.READINESS_TIMEOUT_SECONDS)
    ready = all(result.ok for result in results.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()},
        "failing": sorted(name for name, r in results.items() if not r.ok),
    }
    return JsonResponse(body, status=200 if ready else 503)
