"""Social writes: the one place that decides what a follow, like or delete means.

Views validate and serialize; these functions enforce the rules and touch the
database. Each raises a `SocialError` subclass for a rule a client broke, so the
API can map it to a 4xx without knowing the rule.

The feed cache (feed/cache.py) is kept in step here, by explicit calls after the
transaction commits (never before: a reader could cache the old state again):
a follow, unfollow, mute or unmute invalidates the user's ranked snapshot; a new
post goes onto the author's followers' fresh lists (docs/feed.md says why this
and not invalidation); a like, comment or delete refreshes the hydrated post.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework.authtoken.models import Token

from feed import cache
from feed.models import Comment, Follow, Like, Mute, Post, User
from ranking.scoring import epoch_us


class SocialError(Exception):
    """A client asked for something the rules forbid; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class SelfRelationError(SocialError):
    pass


class NotAuthorError(SocialError):
    pass


def _count_of(model: type[Like] | type[Comment]) -> Coalesce:
    # a correlated subquery per row instead of Count() over two joins, which would
    # multiply likes by comments
    counts = model.objects.filter(post=OuterRef("pk")).order_by().values("post").annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counts), Value(0))


def visible_posts() -> QuerySet[Post]:
    """Posts a reader may see (not deleted, author not deactivated), with author and counts in the same query."""
    return (
        Post.objects.filter(deleted_at__isnull=True, author__is_active=True)
        .select_related("author")
        .annotate(like_count=_count_of(Like), comment_count=_count_of(Comment))
    )


def create_post(author: User, body: str, media_url: str = "") -> Post:
    post = Post.objects.create(author=author, body=body, media_url=media_url)
    created_us = epoch_us(post.created_at)
    # the author sees their own post at once too
    readers = [author.pk, *Follow.objects.filter(followee=author).values_list("follower_id", flat=True)]
    transaction.on_commit(lambda: cache.push_fresh_post(readers, post.pk, created_us, author.pk))
    return visible_posts().get(pk=post.pk)


def delete_post(user: User, post: Post) -> None:
    """Soft delete: the row stays (CDC and ranking see the change as an update)."""
    if post.author_id != user.pk:
        raise NotAuthorError("post", "Only the author can delete a post.")
    Post.objects.filter(pk=post.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    transaction.on_commit(lambda: cache.invalidate_post(post.pk))


def follow(follower: User, followee: User) -> tuple[Follow, bool]:
    """Idempotent: following someone twice returns the existing follow."""
    if follower.pk == followee.pk:
        raise SelfRelationError("user", "You cannot follow yourself.")
    result = Follow.objects.get_or_create(follower=follower, followee=followee)
    if result[1]:
        transaction.on_commit(lambda: cache.invalidate_feed(follower.pk))
    return result


def unfollow(follower: User, followee: User) -> bool:
    deleted, _ = Follow.objects.filter(follower=follower, followee=followee).delete()
    if deleted:
        transaction.on_commit(lambda: cache.forget_author(follower.pk, followee.pk, muted=False))
    return deleted > 0


def like(user: User, post: Post) -> tuple[Like, bool]:
    result = Like.objects.get_or_create(user=user, post=post)
    if result[1]:
        transaction.on_commit(lambda: cache.invalidate_post(post.pk))
    return result


def unlike(user: User, post: Post) -> bool:
    deleted, _ = Like.objects.filter(user=user, post=post).delete()
    if deleted:
        transaction.on_commit(lambda: cache.invalidate_post(post.pk))
    return deleted > 0


def add_comment(user: User, post: Post, body: str) -> Comment:
    comment = Comment.objects.create(user=user, post=post, body=body)
    transaction.on_commit(lambda: cache.invalidate_post(post.pk))
    return comment


def mute(user: User, author: User) -> tuple[Mute, bool]:
    if user.pk == author.pk:
        raise SelfRelationError("user", "You cannot mute yourself.")
    result = Mute.objects.get_or_create(user=user, muted=author)
    if result[1]:
        transaction.on_commit(lambda: cache.forget_author(user.pk, author.pk, muted=True))
    return result


def unmute(user: User, author: User) -> bool:
    deleted, _ = Mute.objects.filter(user=user, muted=author).delete()
    if deleted:
        transaction.on_commit(lambda: cache.unmute_author(user.pk, author.pk))
    return deleted > 0


def register(username: str, password: str, display_name: str = "") -> User:
    try:
        # the serializer checked the name is free; this catches the race with a twin request
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password, display_name=display_name)
    except IntegrityError as exc:
        raise SocialError("username", "A user with that username already exists.") from exc


def change_password(user: User, new_password: str) -> Token:
    """Set the password and rotate the token: whoever held the old one is signed out."""
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


def update_profile(user: User, **fields: str) -> User:
    if fields:
        for name, value in fields.items():
            setattr(user, name, value)
        user.save(update_fields=list(fields))
    return user
