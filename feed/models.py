"""The source of truth: the social graph and its content, in Postgres.

Table names are the plain plural nouns so CDC topics read like Debezium's own
(`nova.public.posts`). Published tables have REPLICA IDENTITY FULL (see
migration 0002) so delete and update events carry the whole old row; users uses
its primary key instead, because its CDC column list leaves out the secrets (0003).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class User(AbstractUser):
    display_name = models.CharField(max_length=100, blank=True)
    bio = models.TextField(max_length=500, blank=True)

    class Meta:
        db_table = "users"


class Post(models.Model):
    author = models.ForeignKey(User, on_delete=models.CASCADE, related_name="posts")
    body = models.TextField(max_length=5000)
    media_url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # soft delete: the row stays so CDC, events and ranking can see it was removed
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "posts"
        indexes = [
            models.Index(fields=["author", "-created_at"], name="posts_author_recent"),
            models.Index(fields=["-created_at"], name="posts_recent"),
        ]

    def __str__(self) -> str:
        # ids only: admin lists call this per row, and a related object would cost a query
        return f"post {self.pk} by user {self.author_id}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class Follow(models.Model):
    follower = models.ForeignKey(User, on_delete=models.CASCADE, related_name="following")
    followee = models.ForeignKey(User, on_delete=models.CASCADE, related_name="followers")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "follows"
        constraints = [
            models.UniqueConstraint(fields=["follower", "followee"], name="follows_unique_pair"),
            models.CheckConstraint(condition=~Q(follower=F("followee")), name="follows_no_self_follow"),
        ]
        indexes = [models.Index(fields=["followee", "-created_at"], name="follows_followee_recent")]

    def __str__(self) -> str:
        return f"user {self.follower_id} follows user {self.followee_id}"


class Like(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="likes")
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="likes")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "likes"
        constraints = [models.UniqueConstraint(fields=["user", "post"], name="likes_unique_user_post")]
        indexes = [models.Index(fields=["post"], name="likes_post")]

    def __str__(self) -> str:
        return f"user {self.user_id} likes post {self.post_id}"


class Comment(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="comments")
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="comments")
    body = models.TextField(max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "comments"
        indexes = [models.Index(fields=["post", "-created_at"], name="comments_post_recent")]

    def __str__(self) -> str:
        return f"comment {self.pk} by user {self.user_id} on post {self.post_id}"


class Mute(models.Model):
    """`user` hides `muted` (an author) from their feed."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="mutes")
    muted = models.ForeignKey(User, on_delete=models.CASCADE, related_name="muted_by")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "mutes"
        constraints = [
            models.UniqueConstraint(fields=["user", "muted"], name="mutes_unique_pair"),
            models.CheckConstraint(condition=~Q(user=F("muted")), name="mutes_no_self_mute"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} mutes user {self.muted_id}"
