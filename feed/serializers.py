"""Request and response shapes of the social API.

Every text field rejects NUL bytes (DRF's default) and lone UTF-16 surrogates:
Postgres refuses both, and a refusal there would be a 500 instead of a 400.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from feed.models import Comment, Follow, Post, User

POST_BODY_MAX = Post._meta.get_field("body").max_length
COMMENT_BODY_MAX = Comment._meta.get_field("body").max_length


def reject_surrogates(value: str) -> None:
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise serializers.ValidationError("Must be valid Unicode text (no lone surrogate code points).")


class TextField(serializers.CharField):
    """A CharField that wants a JSON string: DRF would quietly turn 12 into "12"."""

    def __init__(self, **kwargs: Any) -> None:  # CharField's own keyword arguments, passed on as they are
        super().__init__(**kwargs)
        self.validators.append(reject_surrogates)

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "username", "display_name"]
        read_only_fields = fields


class MeSerializer(serializers.ModelSerializer):
    display_name = TextField(max_length=100, allow_blank=True, required=False)
    bio = TextField(max_length=500, allow_blank=True, required=False)

    class Meta:
        model = User
        fields = ["id", "username", "display_name", "bio", "date_joined"]
        read_only_fields = ["id", "username", "date_joined"]


class PostSerializer(serializers.ModelSerializer):
    author = UserSerializer(read_only=True)
    body = TextField(max_length=POST_BODY_MAX, trim_whitespace=False)
    media_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    like_count = serializers.IntegerField(read_only=True)
    comment_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Post
        fields = ["id", "author", "body", "media_url", "created_at", "updated_at", "like_count", "comment_count"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_media_url(self, value: str) -> str:
        reject_surrogates(value)
        return value

    def validate_body(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


class PostListQuerySerializer(serializers.Serializer):
    author = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class CommentSerializer(serializers.ModelSerializer):
    user = UserSerializer(read_only=True)
    body = TextField(max_length=COMMENT_BODY_MAX)

    class Meta:
        model = Comment
        fields = ["id", "post", "user", "body", "created_at"]
        read_only_fields = ["id", "post", "created_at"]


class FollowerSerializer(serializers.ModelSerializer):
    user = UserSerializer(source="follower", read_only=True)

    class Meta:
        model = Follow
        fields = ["user", "created_at"]


class FolloweeSerializer(serializers.ModelSerializer):
    user = UserSerializer(source="followee", read_only=True)

    class Meta:
        model = Follow
        fields = ["user", "created_at"]


class RelationSerializer(serializers.Serializer):
    """The answer to follow/like/mute: whether the relation exists now and whether this call made it."""

    active = serializers.BooleanField()
    created = serializers.BooleanField()


class TokenRequestSerializer(serializers.Serializer):
    username = TextField(max_length=150)
    password = TextField(max_length=128, trim_whitespace=False, style={"input_type": "password"})

    def validate(self, attrs: dict) -> dict:
        user = authenticate(self.context.get("request"), username=attrs["username"], password=attrs["password"])
        if user is None:
            raise serializers.ValidationError(
                {"non_field_errors": ["Unable to log in with the given username and password."]}
            )
        attrs["user"] = user
        return attrs


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    user = UserSerializer()


class RegisterSerializer(serializers.Serializer):
    username = TextField(max_length=150)
    password = TextField(max_length=128, trim_whitespace=False, write_only=True, style={"input_type": "password"})
    display_name = TextField(max_length=100, required=False, allow_blank=True, default="")

    def validate_username(self, value: str) -> str:
        field = User._meta.get_field("username")
        for validator in field.validators:
            try:
                validator(value)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(list(exc.messages)) from exc
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("A user with that username already exists.")
        return value

    def validate(self, attrs: dict) -> dict:
        try:
            validate_password(attrs["password"], User(username=attrs["username"]))
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs


class PasswordChangeSerializer(serializers.Serializer):
    """The signed-in user (context["user"]) proves the current password and picks a valid new one."""

    old_password = TextField(max_length=128, trim_whitespace=False, write_only=True, style={"input_type": "password"})
    new_password = TextField(max_length=128, trim_whitespace=False, write_only=True, style={"input_type": "password"})

    def validate_old_password(self, value: str) -> str:
        if not self.context["user"].check_password(value):
            raise serializers.ValidationError("Your current password was entered incorrectly.")
        return value

    def validate_new_password(self, value: str) -> str:
        try:
            validate_password(value, self.context["user"])
        except DjangoValidationError as exc:
            raise serializers.ValidationError(list(exc.messages)) from exc
        return value
