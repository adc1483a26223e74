from __future__ import annotations

import pytest

from feed.models import Comment, Like, Post

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_redis]


def test_alice_publishes_a_post(alice):
    response = alice.api.post(
        "/api/v1/posts/", {"body": "first!", "media_url": "https://img.example/1.png"}, format="json"
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["body"] == "first!"
    assert data["author"] == {"id": alice.id, "username": "alice", "display_name": "Alice"}
    assert data["like_count"] == 0 and data["comment_count"] == 0
    assert Post.objects.get(pk=data["id"]).author == alice.user


def test_anonymous_cannot_publish(anonymous):
    response = anonymous.post("/api/v1/posts/", {"body": "x"}, format="json")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_bob_reads_alices_post_with_counts(alice_post, bob, charlie):
    Like.objects.create(user=bob.user, post=alice_post)
    Like.objects.create(user=charlie.user, post=alice_post)
    Comment.objects.create(user=bob.user, post=alice_post, body="nice")
    data = bob.api.get(f"/api/v1/posts/{alice_post.pk}/").json()
    assert (data["like_count"], data["comment_count"]) == (2, 1)


def test_list_filters_by_author_and_hides_deleted(alice, bob):
    kept = Post.objects.create(author=alice.user, body="kept")
    Post.objects.create(author=alice.user, body="gone", deleted_at="2026-01-01T00:00:00Z")
    Post.objects.create(author=bob.user, body="bob's")
    ids = [p["id"] for p in bob.api.get(f"/api/v1/posts/?author={alice.id}").json()["results"]]
    assert ids == [kept.pk]


def test_list_pages_with_a_cursor_newest_first(alice):
    posts = [Post.objects.create(author=alice.user, body=f"post {i}") for i in range(5)]
    first = alice.api.get("/api/v1/posts/?page_size=2").json()
    assert [p["id"] for p in first["results"]] == [posts[4].pk, posts[3].pk]
    second = alice.api.get(first["next"]).json()
    third = alice.api.get(second["next"]).json()
    assert [p["id"] for p in second["results"] + third["results"]] == [posts[2].pk, posts[1].pk, posts[0].pk]
    assert third["next"] is None


def test_listing_posts_costs_a_fixed_number_of_queries(alice, bob, django_assert_num_queries):
    for i in range(30):
        post = Post.objects.create(author=alice.user if i % 2 else bob.user, body=f"p{i}")
        Like.objects.create(user=bob.user, post=post)
    alice.api.get("/api/v1/posts/")  # warm the throttle cache and token lookups alike
    # token auth (1) + one page of posts with authors and counts (1)
    with django_assert_num_queries(2):
        response = alice.api.get("/api/v1/posts/?page_size=25")
    assert len(response.json()["results"]) == 25


def test_author_deletes_own_post_softly(alice, alice_post, bob):
    assert alice.api.delete(f"/api/v1/posts/{alice_post.pk}/").status_code == 204
    alice_post.refresh_from_db()
    assert alice_post.deleted_at is not None  # the row stays for CDC and ranking
    assert bob.api.get(f"/api/v1/posts/{alice_post.pk}/").status_code == 404
    assert alice.api.delete(f"/api/v1/posts/{alice_post.pk}/").status_code == 404


def test_bob_cannot_delete_alices_post(alice_post, bob):
    response = bob.api.delete(f"/api/v1/posts/{alice_post.pk}/")
    assert response.status_code == 403
    assert response.json() == {"detail": "Only the author can delete a post."}
    alice_post.refresh_from_db()
    assert alice_post.deleted_at is None


def test_like_is_idempotent_and_unlike_too(alice_post, bob):
    url = f"/api/v1/posts/{alice_post.pk}/like/"
    first = bob.api.post(url)
    again = bob.api.post(url)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {"active": True, "created": False}
    assert Like.objects.filter(post=alice_post).count() == 1
    assert bob.api.delete(url).status_code == 204
    assert bob.api.delete(url).status_code == 204
    assert not Like.objects.filter(post=alice_post).exists()


def test_liking_a_deleted_post_is_404(alice_post, bob):
    Post.objects.filter(pk=alice_post.pk).update(deleted_at="2026-01-01T00:00:00Z")
    assert bob.api.post(f"/api/v1/posts/{alice_post.pk}/like/").status_code == 404


def test_comments_are_created_and_listed_newest_first(alice_post, bob, charlie, django_assert_num_queries):
    url = f"/api/v1/posts/{alice_post.pk}/comments/"
    assert bob.api.post(url, {"body": "first"}, format="json").status_code == 201
    created = charlie.api.post(url, {"body": "second"}, format="json")
    assert created.json()["user"]["username"] == "charlie"
    for i in range(10):
        Comment.objects.create(user=bob.user, post=alice_post, body=f"c{i}")
    bob.api.get(url)
    # token auth, the post, one page of comments with their authors
    with django_assert_num_queries(3):
        results = bob.api.get(url).json()["results"]
    assert len(results) == 12
    assert results[-1]["body"] == "first"
