from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from monitoring import views as monitoring_views
from monitoring.pipeline_lag import register_pipeline_lag_collector

# /metrics (monitoring.views.metrics) also exports the pipeline lag the Celery
# worker reports through Redis. Registered with the URLconf, which only processes
# serving HTTP load: the consumers' and the relay's own /metrics must not repeat it.
register_pipeline_lag_collector()

api_v1 = [
    # each app adds its routes to its own urls.py
    path("", include("feed.urls")),
    path("", include("pipeline.urls")),
    path("", include("ranking.urls")),
]

# unmatched API paths (unknown route, non-numeric or out-of-range id) answer JSON too
handler404 = "nova.api.not_found"

urlpatterns = [
    path("healthz", monitoring_views.healthz, name="healthz"),
    path("readyz", monitoring_views.readyz, name="readyz"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("admin/", admin.site.urls),
    path("metrics", monitoring_views.metrics, name="metrics"),
]
