from __future__ import annotations

from django.urls import path

from ranking import views

urlpatterns = [
    path("feed/explain/", views.ExplainView.as_view(), name="feed-explain"),
    path("suggestions/", views.SuggestionsView.as_view(), name="suggestions"),
]
