"""Admin for the social tables, built to stay usable at millions of rows.

`show_full_result_count = False` skips the extra COUNT(*) over the whole table,
`raw_id_fields` replaces <select> widgets that would load every user or post, and
`list_select_related` keeps a changelist page at one query.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models

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
    fieldsets = (*DjangoUserAdmin.fieldsets, ("Profile", {"fields": ("display_name", "bio")}))


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
