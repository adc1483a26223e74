from django.urls import path

from pipeline.api import EventsView

urlpatterns = [
    path("events/", EventsView.as_view(), name="events-ingest"),
]
