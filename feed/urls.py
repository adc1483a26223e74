from __future__ import annotations

from django.urls import path, register_converter

from feed import views
from feed.converters import BigIntIdConverter

register_converter(BigIntIdConverter, "id")

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("auth/register/", views.RegisterView.as_view(), name="auth-register"),
    path("auth/logout/", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/password/", views.PasswordChangeView.as_view(), name="auth-password"),
    path("me/", views.MeView.as_view(), name="me"),
    path("feed/", views.FeedView.as_view(), name="feed"),
    path("posts/", views.PostListCreateView.as_view(), name="post-list"),
    path("posts/<id:pk>/", views.PostDetailView.as_view(), name="post-detail"),
    path("posts/<id:pk>/like/", views.PostLikeView.as_view(), name="post-like"),
    path("posts/<id:pk>/comments/", views.PostCommentsView.as_view(), name="post-comments"),
    path("users/<id:pk>/", views.UserDetailView.as_view(), name="user-detail"),
    path("users/<id:pk>/follow/", views.UserFollowView.as_view(), name="user-follow"),
    path("users/<id:pk>/mute/", views.UserMuteView.as_view(), name="user-mute"),
    path("users/<id:pk>/followers/", views.UserFollowersView.as_view(), name="user-followers"),
    path("users/<id:pk>/following/", views.UserFollowingView.as_view(), name="user-following"),
]
