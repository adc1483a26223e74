from __future__ import annotations

import threading
from ipaddress import ip_address, ip_network

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitoring import exposition
from monitoring.health import cached_checks
from monitoring.metrics import FEED_CACHE_MEMORY
from monitoring.pipeline_lag import PipelineLagCollector
from nova.throttling import client_address

_registry: CollectorRegistry | None = None
_registry_lock = threading.Lock()


def _web_registry() -> CollectorRegistry:
    global _registry
    with _registry_lock:
        if _registry is None:
            # the scrape-time collectors are on REGISTRY already (nova/urls.py, monitoring/metrics.py)
            _registry = exposition.scrape_registry(FEED_CACHE_MEMORY, PipelineLagCollector())
        return _registry


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


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Every metric of this web: all gunicorn workers' under the multiprocess mode
    (django_prometheus's own view would miss the scrape-time gauges there), for
    clients in METRICS_ALLOWED_NETWORKS (everyone when empty)."""
    networks = [ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_NETWORKS]
    if networks:
        try:
            address = ip_address(client_address(request))
        except ValueError:
            address = None
        if address is None or not any(address in network for network in networks):
            return HttpResponse(
                "Forbidden: /metrics is restricted (METRICS_ALLOWED_NETWORKS).\n", status=403, content_type="text/plain"
            )
    return HttpResponse(generate_latest(_web_registry()), content_type=CONTENT_TYPE_LATEST)
