"""The social write API: each view validates, calls one function of feed.services, serializes."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import PermissionDenied, Throttled, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feed import services
from feed.auth import signed_in_user
from feed.cursors import CursorError
from feed.models import Comment, Follow, Post, User
from feed.pagination import StableCursorPagination
from feed.read import read_feed
from feed.serializers import (
    CommentSerializer,
    FolloweeSerializer,
    FollowerSerializer,
    MeSerializer,
    PasswordChangeSerializer,
    PostListQuerySerializer,
    PostSerializer,
    RegisterSerializer,
    RelationSerializer,
    TokenRequestSerializer,
    TokenSerializer,
    UserSerializer,
)
from nova import throttling

# --- documented error shapes (nova.api.exception_handler renders every one as JSON)
_detail = inline_serializer("ErrorDetail", {"detail": serializers.CharField()})
_field_errors = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="Invalid input: an object mapping each offending field (or `non_field_errors`, "
    '`detail`) to a list of messages, e.g. `{"body": ["Ensure this field has no more than 5000 characters."]}`.',
)
E400 = {400: _field_errors}
E401 = {401: OpenApiResponse(_detail, description="No or invalid credentials.")}
E403 = {403: OpenApiResponse(_detail, description="Authenticated, but not allowed to do this.")}
E404 = {404: OpenApiResponse(_detail, description="No such object (or it was deleted).")}
E413 = {413: OpenApiResponse(_detail, description="Request body over the size limit (API_MAX_BODY_BYTES).")}
E415 = {415: OpenApiResponse(_detail, description="Body is not JSON (or another accepted media type).")}
READ_ERRORS = {**E401, **E404}
WRITE_ERRORS = {**E400, **E401, **E404, **E413, **E415}


def _raise_as_validation(error: services.SocialError) -> None:
    raise ValidationError({error.field: [error.message]}) from error


def _relation_response(created: bool) -> Response:
    return Response(
        RelationSerializer({"active": True, "created": created}).data,
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


_relation_responses = {
    201: OpenApiResponse(RelationSerializer, description="Created now."),
    200: OpenApiResponse(RelationSerializer, description="Already existed (repeating is not an error)."),
    204: OpenApiResponse(description="Removed, or there was nothing to remove."),
}


# --- auth
E429 = {429: OpenApiResponse(_detail, description="Too many attempts: wait the `Retry-After` seconds.")}


def _check_auth_attempts(request: Request) -> str | None:
    """429 while this username or client address has too many recent failures; the username tried."""
    username = request.data.get("username") if isinstance(request.data, dict) else None
    wait = throttling.auth_wait(request, username)
    if wait is not None:
        raise Throttled(wait, detail="Too many failed attempts for this username or address.")
    return username


def _valid_or_count_failure(request: Request, username: object, form: serializers.Serializer) -> None:
    if not form.is_valid():
        throttling.record_auth_failure(request, username)
        raise ValidationError(form.errors)


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        summary="Obtain an API token",
        description="Exchange a username and password for the user's token; send it as `Authorization: Token <key>`. "
        "After API_THROTTLE_AUTH_USERNAME failures for a username, or API_THROTTLE_AUTH_ADDRESS from one client "
        "address, every attempt answers 429 until the window ends.",
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, **E400, **E413, **E415, **E429},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        username = _check_auth_attempts(request)
        form = TokenRequestSerializer(data=request.data, context={"request": request})
        _valid_or_count_failure(request, username, form)
        user = form.validated_data["user"]
        token, _ = Token.objects.get_or_create(user=user)
        return Response(TokenSerializer({"token": token.key, "user": user}).data)


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        summary="Create an account",
        description="Refused attempts count like failed sign-ins; API_THROTTLE_REGISTER_ADDRESS limits the accounts "
        "one client address creates.",
        request=RegisterSerializer,
        responses={201: TokenSerializer, **E400, **E413, **E415, **E429},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        username = _check_auth_attempts(request)
        form = RegisterSerializer(data=request.data)
        _valid_or_count_failure(request, username, form)
        wait = throttling.hit(
            "register_address", throttling.client_address(request), throttling.rate_of("register_address")
        )
        if wait is not None:
            raise Throttled(wait, detail="Too many accounts created from this address.")
        try:
            user = services.register(**form.validated_data)
        except services.SocialError as error:
            _raise_as_validation(error)
        token = Token.objects.create(user=user)
        return Response(TokenSerializer({"token": token.key, "user": user}).data, status=status.HTTP_201_CREATED)


class LogoutView(APIView):
    @extend_schema(
        summary="Sign out: delete your token",
        description="The token used for this request stops working at once; POST auth/token/ issues a new one.",
        request=None,
        responses={204: OpenApiResponse(description="Token deleted."), **E401},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        Token.objects.filter(user=signed_in_user(request)).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChangeView(APIView):
    @extend_schema(
        summary="Change your password",
        description="Checks the current password and rotates the token: the old one stops working, "
        "the answer carries the new one.",
        request=PasswordChangeSerializer,
        responses={200: TokenSerializer, **E400, **E401, **E413, **E415, **E429},
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        user = signed_in_user(request)
        username = user.get_username()
        wait = throttling.auth_wait(request, username)
        if wait is not None:
            raise Throttled(wait, detail="Too many failed attempts for this username or address.")
        form = PasswordChangeSerializer(data=request.data, context={"user": user})
        _valid_or_count_failure(request, username, form)
        token = services.change_password(user, form.validated_data["new_password"])
        return Response(TokenSerializer({"token": token.key, "user": user}).data)


class MeView(APIView):
    @extend_schema(summary="The signed-in user", responses={200: MeSerializer, **E401}, tags=["users"])
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(signed_in_user(request)).data)

    @extend_schema(
        summary="Edit your display name and bio",
        request=MeSerializer,
        responses={200: MeSerializer, **E400, **E401, **E413, **E415},
        tags=["users"],
    )
    def patch(self, request: Request) -> Response:
        form = MeSerializer(signed_in_user(request), data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        user = services.update_profile(signed_in_user(request), **form.validated_data)
        return Response(MeSerializer(user).data)


# --- posts
class PostListCreateView(generics.GenericAPIView):
    serializer_class = PostSerializer
    pagination_class = StableCursorPagination

    @extend_schema(
        summary="Recent posts, newest first",
        parameters=[OpenApiParameter("author", int, description="Only this author's posts.")],
        responses={200: PostSerializer(many=True), **E400, **E401},
        tags=["posts"],
    )
    def get(self, request: Request) -> Response:
        query = PostListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        posts = services.visible_posts()
        if "author" in query.validated_data:
            posts = posts.filter(author_id=query.validated_data["author"])
        page = self.paginate_queryset(posts)
        return self.get_paginated_response(PostSerializer(page, many=True).data)

    @extend_schema(
        summary="Publish a post",
        request=PostSerializer,
        responses={201: PostSerializer, **E400, **E401, **E413, **E415},
        tags=["posts"],
    )
    def post(self, request: Request) -> Response:
        form = PostSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        post = services.create_post(signed_in_user(request), **form.validated_data)
        return Response(PostSerializer(post).data, status=status.HTTP_201_CREATED)


def _visible_post(pk: int) -> Post:
    return get_object_or_404(services.visible_posts(), pk=pk)


class PostDetailView(APIView):
    @extend_schema(summary="One post", responses={200: PostSerializer, **READ_ERRORS}, tags=["posts"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(PostSerializer(_visible_post(pk)).data)

    @extend_schema(
        summary="Delete your post",
        description="Soft delete: the post disappears from every endpoint (404 afterwards). "
        "Someone else's post answers 403.",
        responses={204: OpenApiResponse(description="Deleted."), **E401, **E403, **E404},
        tags=["posts"],
    )
    def delete(self, request: Request, pk: int) -> Response:
        try:
            services.delete_post(signed_in_user(request), _visible_post(pk))
        except services.NotAuthorError as error:
            raise PermissionDenied(error.message) from error
        return Response(status=status.HTTP_204_NO_CONTENT)


class PostLikeView(APIView):
    @extend_schema(
        summary="Like a post (idempotent)",
        request=None,
        responses={**_relation_responses, **READ_ERRORS},
        tags=["posts"],
    )
    def post(self, request: Request, pk: int) -> Response:
        _, created = services.like(signed_in_user(request), _visible_post(pk))
        return _relation_response(created)

    @extend_schema(
        summary="Unlike a post (idempotent)", responses={204: _relation_responses[204], **READ_ERRORS}, tags=["posts"]
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.unlike(signed_in_user(request), _visible_post(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PostCommentsView(generics.GenericAPIView):
    serializer_class = CommentSerializer
    pagination_class = StableCursorPagination

    def get_queryset(self) -> QuerySet[Comment]:
        # a deactivated user's comments are hidden like their posts
        return Comment.objects.filter(user__is_active=True).select_related("user")

    @extend_schema(
        summary="Comments on a post, newest first",
        responses={200: CommentSerializer(many=True), **E400, **READ_ERRORS},
        tags=["posts"],
    )
    def get(self, request: Request, pk: int) -> Response:
        post = _visible_post(pk)
        page = self.paginate_queryset(self.get_queryset().filter(post=post))
        return self.get_paginated_response(CommentSerializer(page, many=True).data)

    @extend_schema(
        summary="Comment on a post",
        request=CommentSerializer,
        responses={201: CommentSerializer, **WRITE_ERRORS},
        tags=["posts"],
    )
    def post(self, request: Request, pk: int) -> Response:
        post = _visible_post(pk)
        form = CommentSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        comment = services.add_comment(signed_in_user(request), post, form.validated_data["body"])
        return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


# --- users and the graph
def _user(pk: int) -> User:
    return get_object_or_404(User.objects.filter(is_active=True), pk=pk)


class UserDetailView(APIView):
    @extend_schema(summary="A user's public profile", responses={200: UserSerializer, **READ_ERRORS}, tags=["users"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(UserSerializer(_user(pk)).data)


class UserFollowView(APIView):
    @extend_schema(
        summary="Follow a user (idempotent)",
        request=None,
        responses={**_relation_responses, **E400, **READ_ERRORS},
        description="400 when you try to follow yourself.",
        tags=["users"],
    )
    def post(self, request: Request, pk: int) -> Response:
        try:
            _, created = services.follow(signed_in_user(request), _user(pk))
        except services.SelfRelationError as error:
            _raise_as_validation(error)
        return _relation_response(created)

    @extend_schema(
        summary="Unfollow a user (idempotent)", responses={204: _relation_responses[204], **READ_ERRORS}, tags=["users"]
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.unfollow(signed_in_user(request), _user(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserMuteView(APIView):
    @extend_schema(
        summary="Mute an author: hide their posts from your feed (idempotent)",
        request=None,
        responses={**_relation_responses, **E400, **READ_ERRORS},
        description="400 when you try to mute yourself.",
        tags=["users"],
    )
    def post(self, request: Request, pk: int) -> Response:
        try:
            _, created = services.mute(signed_in_user(request), _user(pk))
        except services.SelfRelationError as error:
            _raise_as_validation(error)
        return _relation_response(created)

    @extend_schema(
        summary="Unmute an author (idempotent)",
        responses={204: _relation_responses[204], **READ_ERRORS},
        tags=["users"],
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.unmute(signed_in_user(request), _user(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserFollowersView(generics.GenericAPIView):
    serializer_class = FollowerSerializer
    pagination_class = StableCursorPagination

    @extend_schema(
        summary="Who follows this user, newest first",
        responses={200: FollowerSerializer(many=True), **E400, **READ_ERRORS},
        tags=["users"],
    )
    def get(self, request: Request, pk: int) -> Response:
        follows = Follow.objects.filter(followee=_user(pk), follower__is_active=True).select_related("follower")
        page = self.paginate_queryset(follows)
        return self.get_paginated_response(FollowerSerializer(page, many=True).data)


class UserFollowingView(generics.GenericAPIView):
    serializer_class = FolloweeSerializer
    pagination_class = StableCursorPagination

    @extend_schema(
        summary="Whom this user follows, newest first",
        responses={200: FolloweeSerializer(many=True), **E400, **READ_ERRORS},
        tags=["users"],
    )
    def get(self, request: Request, pk: int) -> Response:
        follows = Follow.objects.filter(follower=_user(pk), followee__is_active=True).select_related("followee")
        page = self.paginate_queryset(follows)
        return self.get_paginated_response(FolloweeSerializer(page, many=True).data)


# --- the feed (feed/read.py)
class FeedQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=settings.FEED_PAGE_MAX, default=settings.FEED_PAGE_SIZE)
    cursor = serializers.CharField(required=False, max_length=4096, trim_whitespace=False)


_feed_item = inline_serializer(
    "FeedItem",
    {
        "id": serializers.IntegerField(),
        "author": UserSerializer(),
        "body": serializers.CharField(),
        "media_url": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
        "like_count": serializers.IntegerField(),
        "comment_count": serializers.IntegerField(),
        "rank": serializers.IntegerField(help_text="1-based position in the feed, continuing across pages"),
        "score": serializers.FloatField(allow_null=True, help_text="null for fresh, backfill and fallback items"),
    },
)
_feed_page = inline_serializer(
    "FeedPage",
    {
        "source": serializers.ChoiceField(choices=["cache", "ranked", "fallback"]),
        "profile": serializers.CharField(allow_null=True, help_text="the ranking profile; null for the fallback"),
        "items": _feed_item.__class__(many=True),
        "next_cursor": serializers.CharField(allow_null=True, help_text="null at the end of the feed"),
    },
)


class FeedView(APIView):
    @extend_schema(
        parameters=[FeedQuerySerializer],
        responses={
            200: _feed_page,
            400: OpenApiResponse(
                _detail,
                description="limit outside 1..50, or a malformed, altered, "
                "foreign or expired cursor (the detail says which).",
            ),
            **E401,
        },
    )
    def get(self, request: Request) -> Response:
        query = FeedQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            page = read_feed(
                signed_in_user(request).pk, query.validated_data["limit"], query.validated_data.get("cursor")
            )
        except CursorError as exc:
            raise ValidationError({"cursor": [str(exc)]}) from exc
        return Response(
            {"source": page.source, "profile": page.profile, "items": page.items, "next_cursor": page.next_cursor}
        )
