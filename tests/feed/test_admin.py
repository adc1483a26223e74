"""Every social admin page renders, and a changelist costs the same few queries at any size."""

from __future__ import annotations

import pytest

from feed.models import Comment, Follow, Like, Mute, Post, User

pytestmark = pytest.mark.requires_postgres

MODELS = ["user", "post", "follow", "like", "comment", "mute"]


@pytest.fixture
def staff_client(client, alice, bob, charlie, alice_post):
    admin = User.objects.create_superuser("root", password="root-password")
    Follow.objects.create(follower=bob.user, followee=alice.user)
    Like.objects.create(user=bob.user, post=alice_post)
    Comment.objects.create(user=charlie.user, post=alice_post, body="hi")
    Mute.objects.create(user=charlie.user, muted=alice.user)
    client.force_login(admin)
    return client


@pytest.mark.parametrize("model", MODELS)
def test_changelist_search_and_add_pages_render(staff_client, model):
    assert staff_client.get(f"/admin/feed/{model}/").status_code == 200
    assert staff_client.get(f"/admin/feed/{model}/?q=alice").status_code == 200
    assert staff_client.get(f"/admin/feed/{model}/add/").status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_changelist_queries_do_not_grow_with_rows(staff_client, model, alice, bob, django_assert_max_num_queries):
    # more rows of every kind: a per-row query (N+1) would push the count past the bound
    for i in range(20):
        user = User.objects.create_user(f"extra{i}")
        post = Post.objects.create(author=user, body=f"extra {i}")
        Follow.objects.create(follower=user, followee=alice.user)
        Like.objects.create(user=user, post=post)
        Comment.objects.create(user=user, post=post, body="x")
        Mute.objects.create(user=user, muted=bob.user)
    with django_assert_max_num_queries(10):
        assert staff_client.get(f"/admin/feed/{model}/").status_code == 200


def test_post_change_page_uses_a_raw_id_widget(staff_client, alice_post):
    page = staff_client.get(f"/admin/feed/post/{alice_post.pk}/change/").content.decode()
    assert 'class="vForeignKeyRawIdAdminField"' in page
