"""Admin for the social tables, built to stay usable at millions of rows.

`show_full_result_count = False` skips the extra COUNT(*) over the whole table,
`raw_id_fields` replaces <select> widgets that would load every user or post, and
`list_select_related` keeps a changelist page at one query.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from feed.inspector import find_user, inspect_feed
from feed.models import Comment, Follow, Like, Mute, Post, User


class LargeTableAdmin(admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 50
    date_hierarchy = "created_at"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    show_full_result_count = False
    list_display = ("id", "username", "display_name", "email", "is_staff", "is_active", "date_joined")
    search_fields = ("username", "display_name", "email")
    fieldsets = (*(DjangoUserAdmin.fieldsets or ()), ("Profile", {"fields": ("display_name", "bio")}))

    # the feed inspector; the user list and each change page link to it
    # (templates admin/feed/user/change_list.html, change_form.html)
    def get_urls(self) -> list[URLPattern]:
        # before the default routes: "<path:object_id>/" would take "inspect-feed/"
        inspector = path(
            "inspect-feed/", self.admin_site.admin_view(self.inspect_feed_view), name="feed_user_inspect_feed"
        )
        return [inspector, *super().get_urls()]

    def inspect_feed_view(self, request: HttpRequest) -> TemplateResponse:
        """Feed inspector: the user's feed as served, with scores and drops (feed/inspector.py)."""
        # admin_view lets any staff user in; reading someone's feed is viewing that user
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = InspectFeedForm(request.GET or None)
        inspection = inspect_feed(form.cleaned_data["user"], form.cleaned_data["limit"]) if form.is_valid() else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Feed inspector",
            "opts": self.opts,
            "form": form,
            "inspection": inspection,
        }
        return TemplateResponse(
            request, "admin/feed/user/inspect_feed.html", context, status=404 if form.unknown_user else 200
        )


class InspectFeedForm(forms.Form):
    user = forms.CharField(label="User id or username", max_length=150)
    limit = forms.IntegerField(min_value=1, max_value=50, required=False, label="Items")
    unknown_user = False

    def clean_user(self) -> User:
        user = find_user(self.cleaned_data["user"])
        if user is None:
            self.unknown_user = True
            raise forms.ValidationError(f'No user with id or username "{self.cleaned_data["user"]}".')
        return user

    def clean_limit(self) -> int:
        return self.cleaned_data["limit"] or settings.FEED_PAGE_SIZE


@admin.register(Post)
class PostAdmin(LargeTableAdmin):
    list_display = ("id", "author", "short_body", "created_at", "deleted_at")
    list_filter = ("created_at", ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("author__username", "body")
    raw_id_fields = ("author",)
    list_select_related = ("author",)
    readonly_fields = ("updated_at",)
    # Django 6 makes https the default scheme; opt in now (and silence its warning)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(description="body")
    def short_body(self, post: Post) -> str:
        return post.body[:80]


@admin.register(Follow)
class FollowAdmin(LargeTableAdmin):
    list_display = ("id", "follower", "followee", "created_at")
    list_filter = ("created_at",)
    search_fields = ("follower__username", "followee__username")
    raw_id_fields = ("follower", "followee")
    list_select_related = ("follower", "followee")


@admin.register(Like)
class LikeAdmin(LargeTableAdmin):
    list_display = ("id", "user", "post_id", "created_at")
    list_filter = ("created_at",)
    search_fields = ("user__username",)
    raw_id_fields = ("user", "post")
    list_select_related = ("user",)


@admin.register(Comment)
class CommentAdmin(LargeTableAdmin):
    list_display = ("id", "user", "post_id", "short_body", "created_at")
    list_filter = ("created_at",)
    search_fields = ("user__username", "body")
    raw_id_fields = ("user", "post")
    list_select_related = ("user",)

    @admin.display(description="body")
    def short_body(self, comment: Comment) -> str:
        return comment.body[:80]


@admin.register(Mute)
class MuteAdmin(LargeTableAdmin):
    list_display = ("id", "user", "muted", "created_at")
    list_filter = ("created_at",)
    search_fields = ("user__username", "muted__username")
    raw_id_fields = ("user", "muted")
    list_select_related = ("user", "muted")
