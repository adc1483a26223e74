from __future__ import annotations

from ipaddress import ip_address, ip_network

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView

from monitoring.health import cached_checks
from nova.throttling import client_address


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving; says nothing of its dependencies."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when every dependency answers; 503 names the ones that don't. Versions and
    error text only for staff (a signed-in admin session) or with DEBUG."""
    results = cached_checks(settings.READINESS_TIMEOUT_SECONDS, settings.READINESS_CACHE_SECONDS)
    ready = all(result.ok for result in results.values())
    detailed = settings.DEBUG or request.user.is_staff
    body = {
        "status": "ready" if ready else "unavailable",
        "checks": {name: {"ok": r.ok, **({"detail": r.detail} if detailed else {})} for name, r in results.items()},
        "failing": sorted(name for name, r in results.items() if not r.ok),
    }
    return JsonResponse(body, status=200 if ready else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    """django-prometheus's /metrics, for clients in METRICS_ALLOWED_NETWORKS (everyone when empty)."""
    networks = [ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_NETWORKS]
    if networks:
        try:
            address = ip_address(client_address(request))
        except ValueError:
            address = None
        if address is None or not any(address in network for network in networks):
            return HttpResponse("Forbidden: /metrics is restricted (METRICS_ALLOWED_NETWORKS).\n", status=403,
                                content_type="text/plain")
    return ExportToDjangoView(request)
