from django.contrib import admin
from django.urls import include, path

from monitoring import views as monitoring_views

urlpatterns = [
    path("healthz", monitoring_views.healthz, name="healthz"),
    path("readyz", monitoring_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("", include("django_prometheus.urls")),
]
